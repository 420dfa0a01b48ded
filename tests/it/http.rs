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

use crate::util::jsonrpc_answer as answer;

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

/// The server's `host:port`.
fn address(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned()
}

/// Sends `head` on a connection of its own and reads the status line of the answer.
async fn raw_status(url: &str, head: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address(url)).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut answer))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

use std::time::Duration;

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let server = start(&[]).await;
    let host = address(&server.url);
    // 100 GB announced, none sent: the answer cannot wait for the body.
    let status = raw_status(
        &server.url,
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {token}\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 100000000000\r\n\r\n",
            token = bitrix24_permissions_mcp::testing::HTTP_TOKEN
        ),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

#[tokio::test]
async fn a_request_with_two_host_headers_is_refused() {
    let server = start(&[]).await;
    let host = address(&server.url);
    let body = initialize().to_string();
    let status = raw_status(
        &server.url,
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nHost: evil.example.com\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
}

#[tokio::test]
async fn a_blank_or_short_token_is_refused_at_start() {
    let spaces = " ".repeat(16);
    let padded = format!("   {}   ", "x".repeat(15));
    for (token, says) in [(spaces.as_str(), "blank"), (padded.as_str(), "too short")] {
        let mut child = command(
            &[("BITRIX24_HTTP_TOKEN", token)],
            &["--sandbox", "serve", "--http", "127.0.0.1:0"],
        )
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .unwrap_or_else(|_| panic!("a token of {token:?} was accepted: the server runs"))
            .unwrap();
        assert_eq!(ended.code(), Some(2), "{token:?}");
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
            .await
            .unwrap();
        assert!(
            stderr.contains(says) && stderr.contains("BITRIX24_HTTP_TOKEN"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn one_caller_cannot_take_every_session() {
    let (_child, url) =
        crate::util::http_server(&[], &["--sandbox", "--http-max-sessions-per-caller", "2"]).await;
    for _ in 0..2 {
        let (status, body, session) = post(&url, &initialize(), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(session.is_some());
    }
    // The server's own cap (64) is far off; this caller's is reached.
    let (status, body, _) = post(&url, &initialize(), &[]).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn a_session_that_only_pings_is_closed_when_idle() {
    let (_child, url) =
        crate::util::http_server(&[], &["--sandbox", "--http-idle-secs", "1"]).await;
    let (_, _, session) = post(&url, &initialize(), &[]).await;
    let session = session.unwrap();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&url, &note, &headers).await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    // Pinging all along (every 20 ms) does not keep it open.
    crate::util::wait_until(Duration::from_secs(20), "the session to close", || async {
        post(&url, &ping, &headers).await.0 == 404
    })
    .await;
}

/// A connection that sends `head`, then one byte of `drip` every 100 ms, until it is closed.
async fn trickler(url: &str, head: String) -> tokio::net::tcp::OwnedReadHalf {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpStream::connect(address(url)).await.unwrap();
    let (read, mut write) = socket.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        while write.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    read
}

/// Whether the server closed this connection (within a bound, so a test cannot hang).
async fn closed(read: &mut tokio::net::tcp::OwnedReadHalf) -> bool {
    let mut byte = [0; 1];
    matches!(
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncReadExt::read(read, &mut byte)
        )
        .await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn slow_readers_give_their_connection_slots_up_to_new_clients() {
    let (_child, url) =
        crate::util::http_server(&[], &["--sandbox", "--http-max-connections", "2"]).await;
    let host = address(&url);
    // Both slots taken: one connection trickles its headers, the other its body.
    let mut headers = trickler(
        &url,
        format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\nX-Slow: "),
    )
    .await;
    let mut body = trickler(
        &url,
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {token}\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n",
            token = bitrix24_permissions_mcp::testing::HTTP_TOKEN
        ),
    )
    .await;
    // Each new client is served at once (well inside the 10 s header and 30 s body
    // deadlines), in the slot of the connection that has been reading longest. The clients
    // stay, so their idle connections keep the slots they got.
    let mut clients = Vec::new();
    for _ in 0..2 {
        let client = bitrix24_permissions_mcp::testing::http_client();
        let answered = client
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize().to_string())
            .send();
        let response = tokio::time::timeout(Duration::from_secs(8), answered)
            .await
            .expect("served before a reader's deadline")
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
        clients.push(client);
    }
    assert!(
        closed(&mut headers).await,
        "the header trickler keeps its slot"
    );
    assert!(closed(&mut body).await, "the body trickler keeps its slot");
}

/// Peak resident memory of a process so far, from /proc (Linux only), in bytes.
fn peak_bytes(child: &tokio::process::Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[tokio::test]
async fn a_body_costs_at_most_twice_its_size_in_memory() {
    let (child, url) = crate::util::http_server(&[], &["--sandbox"]).await;
    let (_, _, session) = post(&url, &initialize(), &[]).await;
    let session = session.unwrap();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    // Just under 4 MiB each: one long string, and two million small numbers (which, parsed,
    // would cost about 100 times their text).
    let long = json!({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"pad": "x".repeat(4_000_000)}});
    let numbers = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{"pad":[{}1]}}}}"#,
        "1,".repeat(1_999_000)
    );
    let numbers: Value = serde_json::from_str(&numbers).unwrap();
    for (body, expected) in [(long, 200), (numbers, 413)] {
        let size = body.to_string().len() as u64;
        let before = peak_bytes(&child);
        let (status, text, _) = post(&url, &body, &headers).await;
        assert_eq!(status, expected, "{}", &text[..text.len().min(200)]);
        if let (Some(before), Some(after)) = (before, peak_bytes(&child)) {
            let grew = after.saturating_sub(before);
            assert!(grew <= 2 * size + (2 << 20), "{size} bytes cost {grew}");
        }
    }
}
