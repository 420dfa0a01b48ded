//! The human's yes under attack: every write asks, the question shows every field and nothing
//! raw, an answer is bound to one exact change and used once, and a client that cannot ask
//! gets an approval page (or `approve` at a terminal) instead of a write nobody approved.

use std::process::Stdio;

use rmcp::model::ElicitationAction;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{
    hardening::RawStdio,
    portal::{Received, TestPortal, guarded, ok},
    util::{BIN, Launch, command, is_error, ledger_path, text_of},
};

const SET_RIGHTS: &str = "landing.site.setRights";

/// Names every code as its own code, except the ones `names` gives.
fn naming(names: Value) -> impl Fn(&Received) -> crate::portal::Reply + Send + Sync + 'static {
    move |r: &Received| match r.method.as_str() {
        "landing.role.isEnabled" => ok(json!(false)),
        "access.name" => {
            let found: serde_json::Map<String, Value> = r.body["ACCESS"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|code| {
                    let name = names.get(code).cloned().unwrap_or(json!(code));
                    (
                        code.to_owned(),
                        json!({"name": name, "provider": "", "provider_id": "other"}),
                    )
                })
                .collect();
            ok(Value::Object(found))
        }
        "sonet_group.user.get" => ok(json!([
            {"USER_ID": "503", "ROLE": "K"},
            {"USER_ID": "547", "ROLE": "E"},
        ])),
        "sonet_group.user.update" => ok(json!([503])),
        _ => ok(json!(true)),
    }
}

#[tokio::test]
async fn adding_and_inviting_members_are_asked_about_too() {
    let portal = TestPortal::start(naming(json!({}))).await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Decline, None)
        .start()
        .await;
    for (tool, method) in [
        ("sonet_group_user_add", "sonet_group.user.add"),
        ("sonet_group_user_invite", "sonet_group.user.invite"),
    ] {
        let result = server
            .call(tool, json!({"GROUP_ID": 77, "USER_ID": [900]}))
            .await;
        assert!(is_error(&result), "{tool}: {}", text_of(&result));
        assert_eq!(portal.count_of(method), 0, "{tool} sent without a yes");
    }
    let asked = server.recorder.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[0].contains("Users to add (USER_ID):\n        - 900"),
        "{}",
        asked[0]
    );
    assert!(
        asked[0].contains("they hold SG77_K and SG77"),
        "{}",
        asked[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_question_names_the_role_and_what_a_moderator_loses() {
    let portal = TestPortal::start(naming(json!({"U547": "Sara Kim"}))).await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Decline, None)
        .start()
        .await;
    let result = server
        .call(
            "sonet_group_user_update",
            json!({"GROUP_ID": 77, "USER_ID": 547, "ROLE": "K"}),
        )
        .await;
    assert!(is_error(&result));
    let asked = server.recorder.asked.lock().unwrap()[0].clone();
    for line in [
        "New role (ROLE): \"K\"",
        "Members (USER_ID): 547 \"Sara Kim\"",
        "loses SG77_E",
        "547 \"Sara Kim\" is a moderator (SG77_E and SG77_K) of workgroup 77.",
    ] {
        assert!(asked.contains(line), "{line}: {asked}");
    }
    assert_eq!(portal.count_of("sonet_group.user.update"), 0);
    server.stop().await;
}

/// What the model writes and what the portal answers reach the person escaped: one line per
/// line of the question, no terminal escapes, no text turned around.
#[tokio::test]
async fn nothing_in_the_question_is_shown_raw() {
    let forged = format!(
        "Readers\n  • permissions: unchanged\nNothing has been sent yet.\n{}\u{202e}evil\u{1b}[31m\u{85}",
        "\n".repeat(40)
    );
    let portal = TestPortal::start(naming(json!({"U1": forged}))).await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Decline, None)
        .start()
        .await;
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"U1": ["read"]}}),
        )
        .await;
    assert!(is_error(&result));
    let asked = server.recorder.asked.lock().unwrap()[0].clone();
    let last_lines = asked.lines().filter(|l| *l == "Nothing has been sent yet.");
    assert_eq!(last_lines.count(), 1, "{asked}");
    assert!(asked.ends_with("\nNothing has been sent yet."), "{asked}");
    for raw in ['\u{202e}', '\u{1b}', '\u{85}'] {
        assert!(!asked.contains(raw), "{raw:?} shown raw: {asked}");
    }
    assert!(asked.contains("\\n"), "newlines escaped: {asked}");
    assert!(asked.lines().count() < 30, "{asked}");
    server.stop().await;
}

#[tokio::test]
async fn ids_are_normalised_before_they_are_compared_or_sent() {
    let portal = TestPortal::start(guarded(|_: &Received| ok(json!(true)))).await;
    let server = Launch::new(&portal.webhook_url()).start().await;
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": "0645", "rights": {"AU": ["read"]}}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let sent = portal
        .received()
        .into_iter()
        .find(|r| r.method == SET_RIGHTS)
        .unwrap();
    assert_eq!(sent.body["id"], 645);
    // A code with a leading zero is another spelling of a code, and is refused.
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"U0547": ["read"]}}),
        )
        .await;
    assert!(is_error(&result));
    assert!(text_of(&result).contains("rights"), "{}", text_of(&result));
    server.stop().await;
}

fn stateless_call(id: u64, arguments: Value, answer: Option<(&str, bool)>) -> Vec<u8> {
    let mut params = json!({
        "name": "sonet_group_user_update",
        "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        },
    });
    if let Some((state, apply)) = answer {
        params["requestState"] = json!(state);
        params["inputResponses"] =
            json!({"confirm_write": {"action": "accept", "content": {"apply": apply}}});
    }
    serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
    )
    .unwrap()
}

/// The 2026-07-28 lifecycle carries the answer back in `requestState`: it opens one change,
/// once, in this process or any other sharing the ledger.
#[tokio::test]
async fn an_answer_is_bound_to_one_change_and_used_once() {
    let portal = TestPortal::start(naming(json!({}))).await;
    let url = portal.webhook_url();
    let ledger = ledger_path();
    let env = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
        ("BITRIX24_TOOLSETS", "all"),
        ("BITRIX24_CONFIRM_WRITES", "auto"),
    ];
    let member = json!({"GROUP_ID": 77, "USER_ID": 503, "ROLE": "K"});
    let moderator = json!({"GROUP_ID": 77, "USER_ID": 503, "ROLE": "E"});
    let mut raw = RawStdio::bare(&env, &[]);
    raw.send(&stateless_call(1, member.clone(), None)).await;
    let asked = raw.reply().await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();

    // The same yes for another change: asked anew, nothing sent.
    raw.send(&stateless_call(2, moderator, Some((&state, true))))
        .await;
    let other = raw.reply().await;
    assert_ne!(other["result"]["isError"], json!(false), "{other}");
    assert_eq!(portal.count_of("sonet_group.user.update"), 0);

    // The yes for its own change: sent once.
    raw.send(&stateless_call(3, member.clone(), Some((&state, true))))
        .await;
    let done = raw.reply().await;
    assert_eq!(done["result"]["isError"], json!(false), "{done}");
    assert_eq!(portal.count_of("sonet_group.user.update"), 1);

    // The same yes again, here and in a new process: refused.
    raw.send(&stateless_call(4, member.clone(), Some((&state, true))))
        .await;
    let again = raw.reply().await;
    assert_eq!(again["result"]["isError"], true, "{again}");
    let mut fresh = RawStdio::bare(&env, &[]);
    fresh
        .send(&stateless_call(5, member, Some((&state, true))))
        .await;
    let elsewhere = fresh.reply().await;
    assert_eq!(elsewhere["result"]["isError"], true, "{elsewhere}");
    assert!(elsewhere.to_string().contains("used before"), "{elsewhere}");
    assert_eq!(portal.count_of("sonet_group.user.update"), 1);
}

/// A tampered state is no state: asked anew.
#[tokio::test]
async fn a_forged_state_opens_nothing() {
    let portal = TestPortal::start(naming(json!({}))).await;
    let url = portal.webhook_url();
    let env = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_TOOLSETS", "all"),
        ("BITRIX24_CONFIRM_WRITES", "auto"),
    ];
    let member = json!({"GROUP_ID": 77, "USER_ID": 503, "ROLE": "K"});
    let mut raw = RawStdio::bare(&env, &[]);
    for (id, state) in [(1, "v1.aaaa.9999999999.bbbb"), (2, "anything")] {
        raw.send(&stateless_call(id, member.clone(), Some((state, true))))
            .await;
        let reply = raw.reply().await;
        assert_ne!(reply["result"]["isError"], json!(false), "{reply}");
    }
    assert_eq!(portal.count_of("sonet_group.user.update"), 0);
}

/// The approval's id and page link in a tool's answer.
fn link_in(text: &str) -> (String, String) {
    let start = text.find("http://127.0.0.1:").expect(text);
    let url: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let id = url.rsplit('/').next().unwrap().to_owned();
    (url, id)
}

/// The page's own form token.
fn token_in(page: &str) -> String {
    let at = page.find("name=\"token\" value=\"").expect(page) + 20;
    page[at..].chars().take_while(|c| *c != '"').collect()
}

async fn get(url: &str) -> String {
    let client = bitrix24_permissions_mcp::testing::http_client();
    client.get(url).send().await.unwrap().text().await.unwrap()
}

async fn post_decision(url: &str, origin: &str, token: &str, decision: &str) -> (u16, String) {
    let response = bitrix24_permissions_mcp::testing::http_client()
        .post(url)
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&decision={decision}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_client_that_cannot_ask_gets_an_approval_page_and_exactly_one_write() {
    let portal = TestPortal::start(guarded(|_: &Received| ok(json!(true)))).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_CONFIRM_WRITES", "auto")
        .start()
        .await;
    let args = json!({"id": 645, "rights": {"AU": ["read"]}});
    let first = server.call("landing_site_set_rights", args.clone()).await;
    let text = text_of(&first);
    assert!(is_error(&first), "{text}");
    assert!(text.contains("nothing has been sent"), "{text}");
    assert!(text.contains("bitrix24-permissions-mcp approve"), "{text}");
    assert_eq!(portal.count_of(SET_RIGHTS), 0);
    let (url, _) = link_in(&text);
    let origin = url.split("/approve/").next().unwrap().to_owned();

    let page = get(&url).await;
    assert!(page.contains("What is sent:"), "{page}");
    assert!(page.contains("AU &quot;AU&quot;"), "{page}");
    let token = token_in(&page);

    // Not from this page: refused, still pending.
    let (status, _) = post_decision(&url, "http://evil.example", &token, "approve").await;
    assert_eq!(status, 403);
    let (status, _) = post_decision(&url, &origin, "forged", "approve").await;
    assert_eq!(status, 403);
    let again = server.call("landing_site_set_rights", args.clone()).await;
    assert!(is_error(&again));
    assert_eq!(portal.count_of(SET_RIGHTS), 0);

    let (status, body) = post_decision(&url, &origin, &token, "approve").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Approved"), "{body}");

    // Another change is not covered by this yes.
    let other = json!({"id": 645, "rights": {"AU": ["read", "edit"]}});
    let result = server.call("landing_site_set_rights", other).await;
    assert!(is_error(&result));
    assert_eq!(portal.count_of(SET_RIGHTS), 0);

    let result = server.call("landing_site_set_rights", args.clone()).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count_of(SET_RIGHTS), 1);
    let result = server.call("landing_site_set_rights", args).await;
    assert!(is_error(&result), "one approval, one write");
    assert_eq!(portal.count_of(SET_RIGHTS), 1);

    let history = server.call("permission_history", json!({})).await;
    let rows = history.structured_content.unwrap()["changes"].clone();
    let ok_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == "ok")
        .unwrap()
        .clone();
    assert!(
        ok_row["confirmation"]
            .as_str()
            .unwrap()
            .starts_with("approved"),
        "{ok_row}"
    );
    assert!(ok_row["asked_by"].as_str().is_some(), "{ok_row}");
    assert!(
        ok_row["runs_as"].as_str().unwrap().contains("user 7"),
        "{ok_row}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_declined_approval_sends_nothing() {
    let portal = TestPortal::start(guarded(|_: &Received| ok(json!(true)))).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_CONFIRM_WRITES", "always")
        .answering(ElicitationAction::Accept, Some(json!({"apply": true})))
        .start()
        .await;
    let args = json!({"id": 645, "rights": {"AU": ["read"]}});
    let first = server.call("landing_site_set_rights", args.clone()).await;
    // `always` never takes a yes from inside the client, even one that can ask.
    assert!(server.recorder.asked.lock().unwrap().is_empty());
    let (url, _) = link_in(&text_of(&first));
    let origin = url.split("/approve/").next().unwrap().to_owned();
    let page = get(&url).await;
    let (status, _) = post_decision(&url, &origin, &token_in(&page), "decline").await;
    assert_eq!(status, 200);
    let result = server.call("landing_site_set_rights", args).await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("Declined"),
        "{}",
        text_of(&result)
    );
    assert_eq!(portal.count_of(SET_RIGHTS), 0);
    server.stop().await;
}

#[tokio::test]
async fn approve_at_a_terminal_and_only_at_one() {
    let portal = TestPortal::start(guarded(|_: &Received| ok(json!(true)))).await;
    let url = portal.webhook_url();
    let ledger = ledger_path();
    let server = Launch::new(&url)
        .env("BITRIX24_LEDGER", ledger.to_str().unwrap())
        .env("BITRIX24_CONFIRM_WRITES", "always")
        .start()
        .await;
    let args = json!({"id": 646, "rights": {"AU": ["read"]}});
    let first = server.call("landing_site_set_rights", args.clone()).await;
    let (_, id) = link_in(&text_of(&first));
    let env = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
    ];

    // A program (or an assistant) has no terminal: refused.
    let out = command(&env, &["approve", &id]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("terminal"));
    let listed = command(&env, &["approve"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));

    // A person at a terminal (a pseudo-terminal from `script`) reads it and says yes.
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &format!("{BIN} approve {id}"), "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"yes\n").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("What is sent:"), "{shown}");
    assert!(shown.contains("Approved."), "{shown}");

    let result = server.call("landing_site_set_rights", args).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count_of(SET_RIGHTS), 1);
    server.stop().await;
}

/// A key given twice is two different calls to two readers: refused wherever JSON comes in.
#[tokio::test]
async fn duplicate_keys_are_refused_by_name() {
    let mut raw = RawStdio::start(&[], &["--sandbox"]).await;
    raw.send(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"landing_site_set_rights","arguments":{"id":645,"rights":{"AU":["read"]},"id":646}}}"#,
    )
    .await;
    let reply = raw.reply().await;
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("appears twice"), "{message}");
    assert!(message.contains("id"), "{message}");

    let out = command(
        &[],
        &[
            "--sandbox",
            "call",
            "landing_site_get_rights",
            r#"{"id": 645, "id": 646}"#,
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"id\""));
}
