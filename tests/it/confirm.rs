//! Confirmation by the user, dry run and the ledger, through every path: an MCP client that
//! answers elicitation (both lifecycles), one that cannot, the `call` command, and crashes.

use std::{path::Path, process::Stdio, time::Duration};

use rmcp::model::ElicitationAction;
use serde_json::{Value, json};

use crate::{
    portal::{Received, Reply, TestPortal, error, guarded, ok},
    util::{Launch, Server, command, is_error, ledger_path, text_of},
};

const WRITE: &str = "landing.site.setRights";

fn rights(extra: Value) -> Value {
    json!({"id": 645, "rights": extra})
}

/// A portal in the extended model that saves every write.
async fn saving_portal() -> TestPortal {
    TestPortal::start(guarded(|_: &Received| ok(json!(true)))).await
}

async fn history(server: &Server) -> Vec<Value> {
    let result = server.call("permission_history", json!({})).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let structured = result.structured_content.unwrap();
    assert!(
        structured["note"]
            .as_str()
            .unwrap()
            .contains("only changes made through this server")
    );
    structured["changes"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_accepting_user_lets_exactly_one_write_through_and_sees_what_changes() {
    let portal = saving_portal().await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Accept, Some(json!({"apply": true})))
        .start()
        .await;
    let first = rights(json!({"AU": ["read"], "U1": ["read", "edit", "sett"]}));
    let result = server.call("landing_site_set_rights", first).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count_of(WRITE), 1);
    let asked = server.recorder.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    for line in [
        "Asked by: ",
        "Runs as: user 7",
        "• Site (id): 645",
        "- AU \"AU\": \"read\"",
        "- U1 \"U1\": \"read\", \"edit\", \"sett\"",
        "every code not listed loses its individual rights on the site",
    ] {
        assert!(asked[0].contains(line), "{line}: {}", asked[0]);
    }
    assert!(
        asked[0].ends_with("Nothing has been sent yet."),
        "{}",
        asked[0]
    );
    assert!(asked[0].contains("cannot be listed"), "{}", asked[0]);
    let form = server.recorder.forms.lock().unwrap()[0].clone();
    assert_eq!(form["properties"]["apply"]["type"], "boolean");

    // The second change is compared with the first, which the ledger remembers.
    let second = rights(json!({"AU": ["read"], "U1": ["read"]}));
    let result = server.call("landing_site_set_rights", second).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count_of(WRITE), 2);
    let asked = server.recorder.asked.lock().unwrap().clone();
    assert!(
        asked[1].contains("Compared with the last set written through this server"),
        "{}",
        asked[1]
    );
    assert!(
        asked[1].contains("U1 \"U1\": loses edit, sett"),
        "{}",
        asked[1]
    );

    let rows = history(&server).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["outcome"], "ok");
    assert_eq!(rows[0]["confirmation"], "accepted");
    assert_eq!(rows[0]["method"], WRITE);
    assert_eq!(rows[0]["object"], "site 645");
    assert_eq!(rows[0]["answer"], true);
    server.stop().await;
}

#[tokio::test]
async fn a_declining_or_cancelling_user_keeps_every_write_from_the_portal() {
    let answers = [
        (ElicitationAction::Decline, None),
        (ElicitationAction::Cancel, None),
        (ElicitationAction::Accept, Some(json!({"apply": false}))),
    ];
    for (action, content) in answers {
        let portal = saving_portal().await;
        let server = Launch::new(&portal.webhook_url())
            .answering(action.clone(), content)
            .start()
            .await;
        let result = server
            .call("landing_site_set_rights", rights(json!({"AU": ["read"]})))
            .await;
        assert!(is_error(&result), "{action:?}");
        assert!(
            text_of(&result).contains("Declined by the user; nothing was written"),
            "{}",
            text_of(&result)
        );
        assert_eq!(portal.count_of(WRITE), 0, "{action:?}");
        let rows = history(&server).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["outcome"], "declined");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_stateless_lifecycle_asks_with_an_input_required_round() {
    for (content, writes) in [(json!({"apply": true}), 1), (json!({"apply": false}), 0)] {
        let portal = saving_portal().await;
        let server = Launch::new(&portal.webhook_url())
            .discover()
            .answering(ElicitationAction::Accept, Some(content))
            .start()
            .await;
        let result = server
            .call("landing_site_set_rights", rights(json!({"AU": ["read"]})))
            .await;
        assert_eq!(is_error(&result), writes == 0, "{}", text_of(&result));
        assert_eq!(portal.count_of(WRITE), writes);
        assert_eq!(server.recorder.asked.lock().unwrap().len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn never_sends_unasked_even_to_a_client_that_could_ask() {
    let portal = saving_portal().await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_CONFIRM_WRITES", "never")
        .answering(ElicitationAction::Decline, None)
        .start()
        .await;
    let result = server
        .call("landing_site_set_rights", rights(json!({"AU": ["read"]})))
        .await;
    assert!(!is_error(&result));
    assert_eq!(portal.count_of(WRITE), 1);
    assert!(server.recorder.asked.lock().unwrap().is_empty());
    assert_eq!(
        history(&server).await[0]["confirmation"],
        "not asked (confirmation off)"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_dry_run_sends_only_the_guard_reads() {
    let portal = saving_portal().await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Accept, Some(json!({"apply": true})))
        .start()
        .await;
    let args = json!({"id": 645, "rights": {"AU": ["read"]}, "dry_run": true});
    let result = server.call("landing_site_set_rights", args).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let methods: Vec<String> = portal.received().into_iter().map(|r| r.method).collect();
    // One naming read serves the guard and the question (the codes and the user it runs as).
    assert_eq!(methods, ["landing.role.isEnabled", "access.name"]);
    let named = &portal.received()[1].body["ACCESS"];
    assert_eq!(named, &json!(["AU", "U7"]));
    let dry = &result.structured_content.unwrap()["dry_run"];
    assert_eq!(dry["written"], false);
    assert_eq!(dry["method"], WRITE);
    assert_eq!(dry["would_send"], rights(json!({"AU": ["read"]})));
    assert!(server.recorder.asked.lock().unwrap().is_empty());
    assert!(history(&server).await.is_empty());

    // After a real write, a dry run says what would change.
    server
        .call(
            "landing_site_set_rights",
            rights(json!({"U1": ["read", "edit"]})),
        )
        .await;
    let args = json!({"id": 645, "rights": {"U1": ["read"]}, "dry_run": true});
    let result = server.call("landing_site_set_rights", args).await;
    let dry = &result.structured_content.unwrap()["dry_run"];
    assert_eq!(dry["differences"], json!(["U1 \"U1\": loses edit"]));
    assert_eq!(portal.count_of(WRITE), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_portal_error_is_recorded_with_its_code() {
    let portal = TestPortal::start(guarded(|_: &Received| {
        error(403, "IS_NOT_ADMIN", "Access denied")
    }))
    .await;
    let server = Launch::new(&portal.webhook_url()).start().await;
    let result = server
        .call("landing_site_set_rights", rights(json!({"AU": ["read"]})))
        .await;
    assert!(is_error(&result));
    let rows = history(&server).await;
    assert_eq!(rows[0]["outcome"], "error");
    assert_eq!(rows[0]["error_code"], "IS_NOT_ADMIN");
    server.stop().await;
}

async fn history_lines(portal: &TestPortal, ledger: &Path) -> Vec<Value> {
    let url = portal.webhook_url();
    let ledger = ledger.to_str().unwrap();
    let out = command(
        &[("BITRIX24_WEBHOOK_URL", &url), ("BITRIX24_LEDGER", ledger)],
        &["history", "--json"],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_server_killed_mid_write_leaves_an_unknown_row() {
    // The portal takes the write and never answers.
    let portal = TestPortal::start(guarded(|_: &Received| {
        Reply::Delay(Duration::from_secs(3600), Box::new(ok(json!(true))))
    }))
    .await;
    let ledger = ledger_path();
    let url = portal.webhook_url();
    let mut child = command(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
        ],
        &[
            "call",
            "landing_site_set_rights",
            r#"{"id": 645, "rights": {"AU": ["read"]}}"#,
        ],
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    crate::util::wait_until(
        Duration::from_secs(30),
        "the write to reach the portal",
        || async { portal.count_of(WRITE) > 0 },
    )
    .await;
    child.kill().await.unwrap(); // SIGKILL: nothing runs after it.
    let rows = history_lines(&portal, &ledger).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["outcome"], "unknown");
    assert_eq!(row["tool"], "landing_site_set_rights");
    assert_eq!(row["method"], WRITE);
    assert_eq!(row["arguments"], rights(json!({"AU": ["read"]})));
    assert!(row["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(row["confirmation"], "not asked (confirmation off)");
}

#[tokio::test]
async fn processes_share_one_ledger() {
    let portal = saving_portal().await;
    let ledger = ledger_path();
    let url = portal.webhook_url();
    let children: Vec<_> = (0..6)
        .map(|n| {
            let args = json!({"id": 700 + n, "rights": {"AU": ["read"]}}).to_string();
            command(
                &[
                    ("BITRIX24_WEBHOOK_URL", &url),
                    ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
                ],
                &["call", "landing_site_set_rights", &args],
            )
            .output()
        })
        .collect();
    for out in futures_join(children).await {
        assert_eq!(out.unwrap().status.code(), Some(0));
    }
    let rows = history_lines(&portal, &ledger).await;
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["outcome"] == "ok"));
    let mut objects: Vec<String> = rows
        .iter()
        .map(|r| r["object"].as_str().unwrap().to_owned())
        .collect();
    objects.sort();
    assert_eq!(objects[0], "site 700");
    assert_eq!(portal.count_of(WRITE), 6);
}

/// Runs every future at once and waits for all.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_ledger_can_be_off() {
    let portal = saving_portal().await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_LEDGER", "off")
        .start()
        .await;
    let result = server.call("permission_history", json!({})).await;
    let text = result.structured_content.unwrap()["note"].to_string();
    assert!(text.contains("off"), "{text}");
    server.stop().await;
}
