//! The team server on the sandbox: people sign in through its OAuth stand-in and act as
//! themselves; nobody gets in without a token; a write is asked of, approved by and recorded
//! under the person who made it; tokens renew, rotate and can be revoked.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::util::{http_server_as_is, jsonrpc_answer as answer};

/// A team server on the sandbox. `env` adds to the defaults.
struct Team {
    _child: tokio::process::Child,
    mcp: String,
    base: String,
    ledger: std::path::PathBuf,
}

async fn start(env: &[(&str, &str)]) -> Team {
    let ledger = crate::util::ledger_path();
    let ledger_text = ledger.display().to_string();
    let mut all = vec![
        ("BITRIX24_LEDGER", ledger_text.as_str()),
        ("BITRIX24_CONFIRM_WRITES", "auto"),
        ("BITRIX24_TOOLSETS", "all"),
    ];
    all.extend_from_slice(env);
    let (child, mcp) = http_server_as_is(&all, &["--sandbox"]).await;
    let base = mcp.trim_end_matches("/mcp").to_owned();
    Team {
        _child: child,
        mcp,
        base,
        ledger,
    }
}

fn client() -> reqwest::Client {
    bitrix24_permissions_mcp::testing::http_client()
}

/// A GET without the test token; the status, `Location` and `Set-Cookie`, and the body.
async fn get(url: &str, cookie: Option<&str>) -> (u16, Option<String>, Option<String>, String) {
    let mut request = client().get(url).header("authorization", "");
    if let Some(c) = cookie {
        request = request.header("cookie", format!("b24_session={c}"));
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (location, cookie) = (header("location"), header("set-cookie"));
    let status = response.status().as_u16();
    (status, location, cookie, response.text().await.unwrap())
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {text}"))
        + start.len();
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap()]
}

fn cookie_value(set_cookie: &str) -> String {
    between(set_cookie, "b24_session=", ";").to_owned()
}

/// Signs `user` in through `/signin` and the sandbox's authorize page: their personal token
/// and their browser's session cookie.
async fn sign_in(team: &Team, user: u64) -> (String, String) {
    let (status, to_portal, _, _) = get(&format!("{}/signin", team.base), None).await;
    assert_eq!(status, 303);
    let (status, _, _, chooser) = get(to_portal.as_ref().unwrap(), None).await;
    assert_eq!(status, 200);
    assert!(
        chooser.contains("Oleg Petrov") && chooser.contains("Maria Ivanova"),
        "{chooser}"
    );
    let (status, back, _, _) = get(&format!("{}&as={user}", to_portal.unwrap()), None).await;
    assert_eq!(status, 302);
    let (status, _, cookie, page) = get(&back.unwrap(), None).await;
    assert_eq!(status, 200, "{page}");
    let token = between(&page, "<pre id=\"token\">", "</pre>").to_owned();
    (token, cookie_value(&cookie.unwrap()))
}

/// One MCP session as the holder of `token`.
struct Session<'a> {
    team: &'a Team,
    token: String,
    id: String,
}

async fn post(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client()
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(id) = session {
        request = request
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

impl<'a> Session<'a> {
    async fn open(team: &'a Team, token: &str) -> Self {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "team-test", "version": "1"}}});
        let (status, headers, body) = post(&team.mcp, token, None, &init).await;
        assert_eq!(status, 200, "{body}");
        let id = headers["mcp-session-id"].to_str().unwrap().to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(&team.mcp, token, Some(&id), &note).await;
        Self {
            team,
            token: token.to_owned(),
            id,
        }
    }

    async fn call(&self, name: &str, arguments: Value) -> Value {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);
        let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}});
        let (status, _, body) = post(&self.team.mcp, &self.token, Some(&self.id), &call).await;
        assert_eq!(status, 200, "{body}");
        answer(&body)["result"].clone()
    }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn nobody_gets_in_without_a_token_and_the_401_points_to_the_metadata() {
    let team = start(&[]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for token in [
        "",
        "b24p_forged0000000000000000000000",
        bitrix24_permissions_mcp::testing::HTTP_TOKEN,
    ] {
        let (status, headers, body) = post(&team.mcp, token, None, &init).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                team.base
            )),
            "{challenge}"
        );
    }
    let (status, _, _, metadata) = get(
        &format!("{}/.well-known/oauth-protected-resource", team.base),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["resource"], team.mcp);
    assert_eq!(metadata["authorization_servers"][0], team.base);
    let (_, _, _, server) = get(
        &format!("{}/.well-known/oauth-authorization-server", team.base),
        None,
    )
    .await;
    let server: Value = serde_json::from_str(&server).unwrap();
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));
}

#[tokio::test]
async fn two_people_get_their_own_answers_through_one_server() {
    let team = start(&[]).await;
    let (ann, _) = sign_in(&team, 7).await;
    let (oleg, _) = sign_in(&team, 503).await;
    assert_ne!(ann, oleg);
    let ann_session = Session::open(&team, &ann).await;
    let oleg_session = Session::open(&team, &oleg).await;
    // Site 645 grants U7 read, edit, sett and public, and everyone (AU) read.
    let a = ann_session
        .call("landing_site_get_rights", json!({"id": 645}))
        .await;
    let o = oleg_session
        .call("landing_site_get_rights", json!({"id": 645}))
        .await;
    assert_eq!(
        a["structuredContent"]["result"],
        json!(["read", "edit", "sett", "public"]),
        "{a}"
    );
    assert_eq!(o["structuredContent"]["result"], json!(["read"]), "{o}");
    let me = oleg_session.call("profile", json!({})).await;
    assert_eq!(me["structuredContent"]["result"]["ID"], "503", "{me}");
    // A session belongs to whoever opened it.
    let stolen = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                        "params": {"name": "profile", "arguments": {}}});
    let (status, _, _) = post(&team.mcp, &ann, Some(&oleg_session.id), &stolen).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_write_is_asked_of_approved_by_and_recorded_under_its_person() {
    let team = start(&[]).await;
    let (oleg, oleg_browser) = sign_in(&team, 503).await;
    let (_, ann_browser) = sign_in(&team, 7).await;
    let session = Session::open(&team, &oleg).await;
    // Oleg owns workgroup 77, so he may add people to it.
    let args = json!({"GROUP_ID": 77, "USER_ID": 45});
    // This client cannot show a form: the person gets a link on the team server.
    let first = session.call("sonet_group_user_add", args.clone()).await;
    assert_eq!(first["isError"], true);
    let link = text(&first);
    let link = between(&link, &format!("{}/approve/", team.base), " ").to_owned();
    let page = format!("{}/approve/{link}", team.base);
    // Someone else's browser cannot decide it; no browser at all is sent to sign in.
    let (status, _, _, body) = get(&page, Some(&ann_browser)).await;
    assert_eq!(status, 403, "{body}");
    let (status, to, _, _) = get(&page, None).await;
    assert_eq!(
        (status, to.as_deref()),
        (303, Some(format!("/signin?next=/approve/{link}").as_str()))
    );
    let (status, _, _, body) = get(&page, Some(&oleg_browser)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Oleg Petrov (user 503)"), "{body}");
    let form_token = between(&body, "name=\"token\" value=\"", "\"");
    let decided = client()
        .post(&page)
        .header("authorization", "")
        .header("cookie", format!("b24_session={oleg_browser}"))
        .header("origin", &team.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("token", form_token), ("decision", "approve")]))
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status().as_u16(), 200);
    let again = session.call("sonet_group_user_add", args).await;
    assert_eq!(again["isError"], false, "{again}");
    let history = session.call("permission_history", json!({})).await;
    let row = &history["structuredContent"]["changes"][0];
    assert_eq!(row["outcome"], "ok", "{history}");
    assert!(
        row["asked_by"]
            .as_str()
            .unwrap()
            .starts_with("Oleg Petrov (user 503) through team-test"),
        "{row}"
    );
    assert!(
        row["approved_by"]
            .as_str()
            .unwrap()
            .contains("Oleg Petrov (user 503)"),
        "{row}"
    );
    assert!(row["runs_as"].as_str().unwrap().contains("503"), "{row}");
    let _ = &team.ledger;
}

#[tokio::test]
async fn a_person_the_application_is_not_open_to_is_told_so() {
    let team = start(&[]).await;
    let (_, to_portal, _, _) = get(&format!("{}/signin", team.base), None).await;
    let (_, back, _, _) = get(&format!("{}&as=547", to_portal.unwrap()), None).await;
    let (status, _, cookie, page) = get(&back.unwrap(), None).await;
    assert_eq!(status, 400);
    assert!(cookie.is_none());
    assert!(page.contains("open only to some people"), "{page}");
    assert!(!page.contains("b24p_"), "{page}");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_once_and_the_refresh_token_rotates() {
    let log = crate::util::stderr_path();
    let log_text = log.display().to_string();
    let team = start(&[
        ("BITRIX24_SANDBOX_TOKEN_SECONDS", "2"),
        ("RUST_LOG", "info"),
        ("BITRIX24_LOG_FILE", &log_text),
    ])
    .await;
    let (ann, _) = sign_in(&team, 7).await;
    let session = Session::open(&team, &ann).await;
    assert_eq!(session.call("profile", json!({})).await["isError"], false);
    let renewals = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("access token renewed")
            .count()
    };
    // On a loaded machine the sign-in itself may outlive a token: count from here.
    let before = renewals();
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    // Both calls find the token expired; one renewal serves both.
    let (a, b) = tokio::join!(
        session.call("profile", json!({})),
        session.call("landing_site_get_rights", json!({"id": 645}))
    );
    assert_eq!(a["isError"], false, "{a}");
    assert_eq!(b["isError"], false, "{b}");
    assert_eq!(renewals() - before, 1, "one renewal for both calls");
    // The ledger holds the rotated refresh token, sealed: never in the clear.
    let bytes = std::fs::read(&team.ledger).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains(&ann));
}

#[tokio::test]
async fn the_mcp_authorization_flow_with_pkce_consent_refresh_and_revocation() {
    let team = start(&[]).await;
    let registered = client()
        .post(format!("{}/register", team.base))
        .header("authorization", "")
        .header("content-type", "application/json")
        .body(json!({"client_name": "Test <b>client</b>", "redirect_uris": ["http://127.0.0.1:9/callback"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    let registered: Value = serde_json::from_str(&registered.text().await.unwrap()).unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let verifier = "a-long-enough-code-verifier-0123456789-abcdefghij";
    let challenge = {
        use sha2_free::s256;
        s256(verifier)
    };
    let (consent, q) = authorize_as_503(&team, &client_id, &challenge).await;
    // The client's own name is shown escaped, never as markup.
    assert!(
        consent.contains("Test &lt;b&gt;client&lt;/b&gt;"),
        "{consent}"
    );
    assert_eq!(q["state"], "st8");
    let trade = |form: Vec<(&'static str, String)>| {
        let base = team.base.clone();
        async move {
            let r = client()
                .post(format!("{base}/token"))
                .header("authorization", "")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(&form))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
            )
        }
    };
    let code_form = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", q["code"].clone()),
            ("client_id", client_id.clone()),
            ("redirect_uri", "http://127.0.0.1:9/callback".to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let (status, _) = trade(code_form(
        "a-wrong-code-verifier-0123456789-abcdefghijklmnop",
    ))
    .await;
    assert_eq!(
        status, 400,
        "a wrong verifier is refused (and the code is spent)"
    );
    // Again, with the right verifier: the code was good once, so the flow starts over.
    let (status, _) = trade(code_form(verifier)).await;
    assert_eq!(status, 400);
    let (tokens, refresh) = full_flow(&team, &client_id, verifier, &challenge).await;
    let session = Session::open(&team, &tokens).await;
    let me = session.call("profile", json!({})).await;
    assert_eq!(me["structuredContent"]["result"]["ID"], "503", "{me}");
    // Refresh rotates: the old refresh token is good once.
    let refresh_form = |r: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", r.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let (status, renewed) = trade(refresh_form(&refresh)).await;
    assert_eq!(status, 200, "{renewed}");
    let (status, _) = trade(refresh_form(&refresh)).await;
    assert_eq!(status, 400);
    let new_access = renewed["access_token"].as_str().unwrap().to_owned();
    Session::open(&team, &new_access).await;
    // Revoking the refresh token takes its access tokens with it.
    let revoked = client()
        .post(format!("{}/revoke", team.base))
        .header("authorization", "")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[(
            "token",
            renewed["refresh_token"].as_str().unwrap(),
        )]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, _, _) = post(&team.mcp, &new_access, None, &init).await;
    assert_eq!(status, 401);
}

/// Authorize, consent and sign in as Oleg (503): the consent page, and the query the client's
/// redirect address gets (`code`, `state`, `iss`).
async fn authorize_as_503(
    team: &Team,
    client_id: &str,
    challenge: &str,
) -> (String, HashMap<String, String>) {
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback\
         &code_challenge={challenge}&code_challenge_method=S256&state=st8&resource={}",
        team.base,
        urlencode(&team.mcp)
    );
    let (status, _, _, consent) = get(&authorize, None).await;
    assert_eq!(status, 200, "{consent}");
    let consent_id = between(&consent, "name=\"consent\" value=\"", "\"");
    let allowed = client()
        .post(format!("{}/authorize", team.base))
        .header("authorization", "")
        .header("origin", &team.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("consent", consent_id), ("decision", "allow")]))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 303);
    let to_portal = allowed.headers()["location"].to_str().unwrap().to_owned();
    let (_, back, _, _) = get(&format!("{to_portal}&as=503"), None).await;
    let (status, to_client, _, _) = get(&back.unwrap(), None).await;
    assert_eq!(status, 303);
    let to_client = url::Url::parse(&to_client.unwrap()).unwrap();
    let q = to_client.query_pairs().into_owned().collect();
    (consent, q)
}

/// A fresh authorization as Oleg, traded for this server's access and refresh tokens.
async fn full_flow(
    team: &Team,
    client_id: &str,
    verifier: &str,
    challenge: &str,
) -> (String, String) {
    let (_, q) = authorize_as_503(team, client_id, challenge).await;
    let r = client()
        .post(format!("{}/token", team.base))
        .header("authorization", "")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("code_verifier", verifier),
            ("resource", team.mcp.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tokens: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// PKCE's S256 without a hashing crate in the tests: the library computes it.
mod sha2_free {
    pub fn s256(verifier: &str) -> String {
        bitrix24_permissions_mcp::testing::pkce_s256(verifier)
    }
}

fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k.as_ref(), v.as_ref());
    }
    out.finish()
}

#[tokio::test]
async fn behind_a_reverse_proxy_the_public_host_is_served_and_others_are_not() {
    let (_child, url) = crate::util::http_server(
        &[("BITRIX24_HTTP_PUBLIC_URL", "https://mcp.example.test")],
        &["--sandbox"],
    )
    .await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let send = |host: &'static str| {
        let url = url.clone();
        let init = init.clone();
        async move {
            client()
                .post(&url)
                .header("host", host)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(init.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("mcp.example.test").await, 200);
    assert_eq!(send("evil.example.test").await, 403);
}

#[tokio::test]
async fn sessions_are_capped_per_person() {
    let team = start(&[("BITRIX24_HTTP_MAX_SESSIONS_PER_CALLER", "2")]).await;
    let (ann, _) = sign_in(&team, 7).await;
    let (oleg, _) = sign_in(&team, 503).await;
    let _first = Session::open(&team, &ann).await;
    let _second = Session::open(&team, &ann).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, _, _) = post(&team.mcp, &ann, None, &init).await;
    assert_eq!(status, 503, "Ann's third session");
    Session::open(&team, &oleg).await;
}
