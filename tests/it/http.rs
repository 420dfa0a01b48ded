//! `serve --http`: the same handler over Streamable HTTP, guarded by Host, Origin and an
//! optional bearer token.

use crate::util::{command, http_server};
use serde_json::{Value, json};

struct HttpServer {
    _child: tokio::process::Child,
    url: String,
}

async fn start(env: &[(&str, &str)]) -> HttpServer {
    let (child, url) = http_server(env, &["--sandbox"]).await;
    HttpServer { _child: child, url }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut request = bitrix24_permissions_mcp::testing::http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), session)
}

/// The JSON-RPC answer inside a JSON or SSE body.
fn answer(body: &str) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body))
        .find_map(|d| {
            serde_json::from_str::<Value>(d.trim())
                .ok()
                .filter(|v| v.get("id").is_some())
        })
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {body:?}"))
}

#[tokio::test]
async fn serves_the_same_tools_over_http() {
    let server = start(&[]).await;
    assert!(server.url.ends_with("/mcp"));
    let (status, body, session) = post(&server.url, &initialize(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        answer(&body)["result"]["instructions"]
            .as_str()
            .unwrap()
            .starts_with("SANDBOX MODE")
    );
    let session = session.expect("a session id");
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&server.url, &note, &headers).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (_, body, _) = post(&server.url, &list, &headers).await;
    let tools = answer(&body)["result"]["tools"].as_array().unwrap().len();
    // The default set, as over stdio.
    let over_stdio = crate::util::command(&[], &["--sandbox", "tools", "--json"])
        .output()
        .await
        .unwrap();
    let expected: Value = serde_json::from_slice(&over_stdio.stdout).unwrap();
    assert_eq!(tools, expected.as_array().unwrap().len());
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "landing_site_get_rights", "arguments": {"id": 645}}});
    let (_, body, _) = post(&server.url, &call, &headers).await;
    assert_eq!(
        answer(&body)["result"]["structuredContent"]["result"],
        json!(["read", "edit", "sett", "public"])
    );
}

#[tokio::test]
async fn rejects_foreign_origins_hosts_and_paths() {
    let server = start(&[]).await;
    let (status, _, _) = post(
        &server.url,
        &initialize(),
        &[("origin", "http://evil.example.com")],
    )
    .await;
    assert_eq!(status, 403, "DNS rebinding: a foreign Origin");
    let (status, _, _) = post(&server.url, &initialize(), &[("host", "evil.example.com")]).await;
    assert_eq!(status, 403, "DNS rebinding: a foreign Host");
    let (status, _, _) = post(
        &server.url,
        &initialize(),
        &[("origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(status, 200, "a local page may connect");
    let other = server.url.replace("/mcp", "/other");
    let (status, _, _) = post(&other, &initialize(), &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_configured_token_is_required_on_every_request() {
    let token = "a-long-random-token-for-tests";
    let server = start(&[("BITRIX24_HTTP_TOKEN", token)]).await;
    let (status, _, _) = post(&server.url, &initialize(), &[]).await;
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &server.url,
        &initialize(),
        &[("authorization", "Bearer wrong-token-of-some-length")],
    )
    .await;
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, body, _) = post(&server.url, &initialize(), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_webhook_server_without_a_way_in_is_refused_on_every_address() {
    let webhook = "http://127.0.0.1:9/rest/1/abcdefgh12345678/";
    for addr in ["0.0.0.0:0", "127.0.0.1:0"] {
        let out = command(
            &[("BITRIX24_WEBHOOK_URL", webhook)],
            &["serve", "--http", addr],
        )
        .output()
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not even on loopback") && stderr.contains("BITRIX24_HTTP_TOKEN"),
            "{stderr}"
        );
    }
    let out = command(
        &[
            ("BITRIX24_HTTP_TOKEN", "short"),
            ("BITRIX24_WEBHOOK_URL", webhook),
        ],
        &["serve", "--http", "0.0.0.0:0"],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = command(
        &[("BITRIX24_WEBHOOK_URL", webhook)],
        &[
            "serve",
            "--http",
            "0.0.0.0:0",
            "--http-allow-anonymous-reads",
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}

#[tokio::test]
async fn writes_over_http_are_recorded_in_the_ledger() {
    let server = start(&[("BITRIX24_TOOLSETS", "all")]).await;
    let (_, _, session) = post(&server.url, &initialize(), &[]).await;
    let session = session.unwrap();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&server.url, &note, &headers).await;
    let write = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "landing_site_set_rights", "arguments": {"id": 645, "rights": {"AU": ["read"]}}}});
    let (_, body, _) = post(&server.url, &write, &headers).await;
    assert_eq!(answer(&body)["result"]["isError"], false, "{body}");
    let history = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "permission_history", "arguments": {"id": 645}}});
    let (_, body, _) = post(&server.url, &history, &headers).await;
    let changes = &answer(&body)["result"]["structuredContent"]["changes"];
    assert_eq!(changes.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(changes[0]["outcome"], "ok");
    assert_eq!(changes[0]["tool"], "landing_site_set_rights");
}

/// A 2026-07-28 request: no session; version and capabilities travel with each request.
fn stateless(id: u64, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

async fn post_stateless(url: &str, body: &Value) -> Value {
    let method = body["method"].as_str().unwrap();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    let name = body["params"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !name.is_empty() {
        headers.push(("mcp-name", &name));
    }
    let (status, text, session) = post(url, body, &headers).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        session.is_none(),
        "the 2026-07-28 lifecycle has no sessions"
    );
    answer(&text)
}

#[tokio::test]
async fn a_toolset_enabled_without_sessions_is_callable_in_the_next_request() {
    let server = start(&[]).await;
    let call = |id| {
        stateless(
            id,
            "tools/call",
            json!({"name": "department_get", "arguments": {}}),
        )
    };
    let before = post_stateless(&server.url, &call(1)).await;
    assert!(
        before["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not enabled")),
        "not published by default: {before}"
    );
    let enable = stateless(
        2,
        "tools/call",
        json!({"name": "enable_toolset", "arguments": {"toolset": "people"}}),
    );
    let enabled = post_stateless(&server.url, &enable).await;
    assert_eq!(enabled["result"]["isError"], false, "{enabled}");
    let listed = post_stateless(&server.url, &stateless(3, "tools/list", json!({}))).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"department_get"), "{names:?}");
    let after = post_stateless(&server.url, &call(4)).await;
    assert_eq!(after["result"]["isError"], false, "{after}");
    assert!(
        after["result"]["structuredContent"]["result"].is_array(),
        "{after}"
    );
}
