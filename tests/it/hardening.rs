//! The attacks from the hardening review, each kept as a case: the secret at every cut,
//! bad messages on stdin, hostile configuration, and the HTTP transport under load.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::{
    portal::{Reply, SECRET, TestPortal, error, ok},
    util::{command, http_server, run, wait_for, wait_until},
};

/// Any 6 consecutive characters of the secret, in any letter case.
fn part_of_secret(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    (0..=SECRET.len() - 6)
        .map(|i| &SECRET[i..i + 6])
        .find(|w| lower.contains(&w.to_ascii_lowercase()))
}

fn assert_hidden(what: &str, text: &str) {
    if let Some(piece) = part_of_secret(text) {
        panic!("{what}: `{piece}` of the secret shows in:\n{text}");
    }
}

/// `call` and `doctor` against a portal that always answers `reply`; every output checked.
async fn assert_never_shown(reply: Reply, env: &[(&str, &str)]) {
    let portal = TestPortal::always(reply).await;
    let url = portal.webhook_url();
    let mut env = env.to_vec();
    env.push(("BITRIX24_WEBHOOK_URL", &url));
    let call = run(&env, &["call", "landing_site_get_rights", r#"{"id": 1}"#]).await;
    assert_eq!(call.code, Some(1), "{}", call.stderr);
    assert_hidden("call stdout", &call.stdout);
    assert_hidden("call stderr", &call.stderr);
    let doctor = run(&env, &["doctor"]).await;
    assert_hidden("doctor stdout", &doctor.stdout);
    assert_hidden("doctor stderr", &doctor.stderr);
}

fn html(status: u16, page: String) -> Reply {
    Reply::Raw {
        status,
        content_type: "text/html",
        body: page.into_bytes(),
    }
}

#[tokio::test]
async fn a_secret_straddling_the_excerpt_cut_is_masked_whole() {
    // The excerpt is cut at 200 characters; put the secret across that cut at every offset.
    // Each offset is a server run of its own, so they run side by side.
    let mut checks = tokio::task::JoinSet::new();
    for before in (200 - SECRET.len())..=200 {
        let pad = "x".repeat(before - "http://upstream/".len());
        let quoted = format!("http://upstream/{pad}{SECRET}/rest");
        let page = format!("<!DOCTYPE html><html><title>{quoted}</title></html>");
        checks.spawn(assert_never_shown(html(502, page), &[]));
        let text = Reply::Raw {
            status: 502,
            content_type: "text/plain",
            body: quoted.into_bytes(),
        };
        checks.spawn(assert_never_shown(text, &[]));
    }
    while let Some(checked) = checks.join_next().await {
        checked.unwrap();
    }
}

#[tokio::test]
async fn escaped_and_recased_echoes_are_masked() {
    let escaped: String = SECRET.bytes().map(|b| format!("\\u{b:04x}")).collect();
    let percent: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
    let mixed: String = SECRET
        .bytes()
        .enumerate()
        .map(|(i, b)| match i % 3 {
            0 => format!("\\u{b:04X}"),
            1 => format!("%{b:02x}"),
            _ => char::from(b.to_ascii_uppercase()).to_string(),
        })
        .collect();
    for spelling in [&escaped, &percent, &mixed] {
        // Inside a malformed body, quoted as it stands.
        assert_never_shown(
            Reply::Raw {
                status: 500,
                content_type: "application/json",
                body: format!(r#"{{"error":"x","error_description":"{spelling}"#).into_bytes(),
            },
            &[],
        )
        .await;
    }
    assert_never_shown(
        error(401, "NO_AUTH_FOUND", &SECRET.to_ascii_uppercase()),
        &[],
    )
    .await;
    assert_never_shown(error(401, "NO_AUTH_FOUND", &percent), &[]).await;
}

#[tokio::test]
async fn error_texts_obey_the_result_size_limit() {
    let huge = "y".repeat(7_000_000);
    let portal = TestPortal::always(error(400, "ERROR_CORE", &huge)).await;
    let url = portal.webhook_url();
    let r = run(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_MAX_RESULT_BYTES", "1000"),
            // Only the error text on stderr, no log lines.
            ("BITRIX24_LOG_LEVEL", "off"),
        ],
        &["call", "landing_site_get_rights", r#"{"id": 1}"#],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.len() <= 1_001, "{} bytes", r.stderr.len());
    assert!(r.stderr.contains("error text cut"), "{}", r.stderr);
}

/// The server on raw stdio: lines in, reply lines out, for messages no SDK would send.
pub struct RawStdio {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stderr: std::path::PathBuf,
}

impl Drop for RawStdio {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl RawStdio {
    pub async fn start(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut raw = Self::bare(env, args);
        raw.send(INITIALIZE.as_bytes()).await;
        assert_eq!(raw.reply().await["id"], 0);
        raw.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        raw
    }

    /// Not initialized: for the 2026-07-28 lifecycle, where each request says who it is.
    pub fn bare(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = command(env, args);
        let stderr = crate::util::stderr_path();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    pub async fn send(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line on stdout, which must be JSON.
    pub async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.stdout.next_line())
            .await
            .expect("a reply within 20 s")
            .unwrap()
            .expect("stdout still open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}"))
    }

    /// Peak resident memory so far, from /proc (Linux only), in MiB.
    fn peak_mib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024)
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

#[tokio::test]
async fn every_bad_line_on_stdin_is_answered() {
    let mut raw = RawStdio::start(&[], &["--sandbox"]).await;
    let unparseable: [&[u8]; 3] = [
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}}",
        br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":"\ud800"}}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"x":1e309}}"#,
    ];
    for line in unparseable {
        raw.send(line).await;
        let r = raw.reply().await;
        assert_eq!(r["error"]["code"], -32700, "{r}");
        assert_eq!(r["id"], Value::Null, "{r}");
    }
    raw.send(br#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#)
        .await;
    let r = raw.reply().await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    for (id, arguments) in [(5, "[1]"), (6, r#""x""#), (7, "8")] {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"profile","arguments":{arguments}}}}}"#
        );
        raw.send(line.as_bytes()).await;
        let r = raw.reply().await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert_eq!(r["id"], id, "{r}");
    }
    // The session is still there after all that.
    raw.send(br#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#)
        .await;
    let r = raw.reply().await;
    assert_eq!(r["id"], 8, "{r}");
    assert!(r.get("result").is_some(), "{r}");
}

#[tokio::test]
async fn an_oversized_line_is_refused_unread() {
    let mut raw = RawStdio::start(&[], &["--sandbox"]).await;
    // 9 MB and 17 MB lines: over the 4 MiB line limit and over rmcp's own 16 MiB one.
    for size in [9_000_000, 17_000_000] {
        let padding = "x".repeat(size);
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"profile","arguments":{{"pad":"{padding}"}}}}}}"#
        );
        raw.send(line.as_bytes()).await;
        let r = raw.reply().await;
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("4194304"),
            "{r}"
        );
    }
    raw.send(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .await;
    assert_eq!(raw.reply().await["id"], 2);
    if let Some(peak) = raw.peak_mib() {
        assert!(peak < 100, "peak resident memory {peak} MiB");
    }
}

#[tokio::test]
async fn integers_are_sent_as_integers_or_refused() {
    let portal = TestPortal::always(ok(json!({"allowedActions": {}}))).await;
    let url = portal.webhook_url();
    let env = [("BITRIX24_WEBHOOK_URL", url.as_str())];
    let r = run(
        &env,
        &["call", "tasks_task_get_access", r#"{"taskId": 8017.0}"#],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let sent = &portal.received()[0].body;
    assert!(sent["taskId"].is_i64(), "sent {sent}");
    assert_eq!(sent["taskId"], 8017);
    for huge in ["18446744073709551616", "1e300", "8017.5"] {
        let args = format!(r#"{{"taskId": {huge}, "users": [1]}}"#);
        let r = run(&env, &["call", "tasks_task_get_access", &args]).await;
        assert_eq!(r.code, Some(1), "{huge}: {}", r.stderr);
        assert!(r.stderr.contains("taskId"), "{}", r.stderr);
    }
    assert_eq!(portal.count(), 1, "nothing out of range was sent");
}

#[tokio::test]
async fn start_up_numbers_are_checked() {
    for rate in ["1e-20/1", "NaN/1", "inf/50", "2/0"] {
        let r = run(&[], &["--sandbox", "--rate-limit", rate, "tools"]).await;
        assert_eq!(r.code, Some(2), "{rate}: {}", r.stdout);
        assert!(r.stderr.contains("rate"), "{rate}: {}", r.stderr);
    }
}

#[tokio::test]
async fn read_only_wins_from_any_source() {
    let r = run(
        &[("BITRIX24_READ_ONLY", "true")],
        &["--sandbox", "--read-only=false", "tools"],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains(" write"), "{}", r.stdout);
    assert!(r.stdout.contains(" read"), "{}", r.stdout);
}

#[tokio::test]
async fn the_url_file_takes_a_bom_and_refuses_an_endless_file() {
    let portal = TestPortal::always(ok(json!([]))).await;
    let path = crate::util::stderr_path().with_extension("url");
    std::fs::write(&path, format!("\u{feff} {}\r\n", portal.webhook_url())).unwrap();
    let file = path.to_str().unwrap();
    let r = run(&[("BITRIX24_WEBHOOK_URL_FILE", file)], &["tools"]).await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    if std::path::Path::new("/dev/zero").exists() {
        let r = run(&[("BITRIX24_WEBHOOK_URL_FILE", "/dev/zero")], &["tools"]).await;
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("4096"), "{}", r.stderr);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_log_file_is_private_and_never_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::util::stderr_path().with_extension("log");
    let log = path.to_str().unwrap();
    let r = run(&[], &["--sandbox", "--log-file", log, "tools"]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(mode, 0o600, "{mode:o}");
    // Serving: stdout is the protocol stream here.
    let r = run(&[], &["--sandbox", "--log-file", "/dev/stdout"]).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("stdout"), "{}", r.stderr);
}

#[tokio::test]
async fn call_and_doctor_print_no_terminal_escapes() {
    let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}red \u{9b}31m text";
    for reply in [
        error(400, "ERROR_CORE", hostile),
        html(502, format!("<html><title>{hostile}</title></html>")),
    ] {
        let portal = TestPortal::always(reply).await;
        let url = portal.webhook_url();
        let env = [
            ("BITRIX24_WEBHOOK_URL", url.as_str()),
            ("BITRIX24_LOG_LEVEL", "off"),
        ];
        let call = run(&env, &["call", "landing_site_get_rights", r#"{"id": 1}"#]).await;
        let doctor = run(&env, &["doctor"]).await;
        for (what, text) in [
            ("call stdout", &call.stdout),
            ("call stderr", &call.stderr),
            ("doctor", &doctor.stdout),
        ] {
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{what}: {text:?}"
            );
        }
        assert!(call.stderr.contains("red"), "{}", call.stderr);
    }
}

fn initialize_request() -> Value {
    serde_json::from_str(INITIALIZE).unwrap()
}

async fn http_post(
    url: &str,
    body: &Value,
    session: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = bitrix24_permissions_mcp::testing::http_client()
        .post(url)
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
    (status, headers, response.text().await.unwrap_or_default())
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn exit_code(child: &mut tokio::process::Child) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exited")
        .unwrap()
        .code()
}

#[tokio::test]
async fn sessions_beyond_the_cap_get_503_and_open_ones_keep_working() {
    let (_child, url) = http_server(&[], &["--sandbox", "--http-max-sessions", "3"]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (status, headers, body) = http_post(&url, &initialize_request(), None).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(headers["mcp-session-id"].to_str().unwrap().to_owned());
    }
    for _ in 0..20 {
        let (status, headers, body) = http_post(&url, &initialize_request(), None).await;
        assert_eq!(status, 503, "{body}");
        assert!(headers.contains_key("retry-after"), "{headers:?}");
    }
    for id in &sessions {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let (status, _, body) = http_post(&url, &list, Some(id)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("access_name"), "{body}");
    }
}

#[tokio::test]
async fn a_trickled_header_is_cut_off() {
    let (_child, url) = http_server(&[], &["--sandbox", "--http-header-timeout-secs", "1"]).await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 1")
        .await
        .unwrap();
    // Without a header timeout the server would wait for the rest for ever; with one it
    // closes the connection, and the read below ends.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the trickling connection is still open");
}

#[tokio::test]
async fn sigterm_over_http_finishes_the_call_under_way_and_exits_0() {
    let portal = TestPortal::always(Reply::Delay(
        Duration::from_secs(2),
        Box::new(ok(json!([{"ACCESS_CODE": "G1", "TASK_ID": 1}]))),
    ))
    .await;
    let webhook = portal.webhook_url();
    let (mut child, url) = http_server(&[("BITRIX24_WEBHOOK_URL", &webhook)], &[]).await;
    let (_, headers, _) = http_post(&url, &initialize_request(), None).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": "landing_site_get_rights", "arguments": {"id": 1}}});
    let url2 = url.clone();
    let answer = tokio::spawn(async move { http_post(&url2, &call, Some(&session)).await });
    wait_until(
        Duration::from_secs(30),
        "the call to reach the portal",
        || async { portal.count() > 0 },
    )
    .await;
    signal(&child, "TERM");
    let (status, _, body) = answer.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("G1"), "{body}");
    assert_eq!(exit_code(&mut child).await, Some(0));
}

#[tokio::test]
async fn sigterm_on_stdio_finishes_the_call_under_way_and_a_second_one_exits_at_once() {
    let portal = TestPortal::always(Reply::Delay(
        Duration::from_secs(2),
        Box::new(ok(json!([{"ACCESS_CODE": "G1", "TASK_ID": 1}]))),
    ))
    .await;
    let webhook = portal.webhook_url();
    let env = [("BITRIX24_WEBHOOK_URL", webhook.as_str())];
    let call = br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"landing_site_get_rights","arguments":{"id":1}}}"#;

    let mut raw = RawStdio::start(&env, &[]).await;
    raw.send(call).await;
    wait_until(
        Duration::from_secs(30),
        "the call to reach the portal",
        || async { portal.count() > 0 },
    )
    .await;
    signal(&raw.child, "TERM");
    let r = raw.reply().await;
    assert_eq!(r["id"], 5, "{r}");
    assert!(r.to_string().contains("G1"), "{r}");
    assert_eq!(exit_code(&mut raw.child).await, Some(0));

    // A call that would take a minute: the second signal does not wait for it.
    let slow = TestPortal::always(Reply::Delay(
        Duration::from_secs(120),
        Box::new(ok(json!([]))),
    ))
    .await;
    let webhook = slow.webhook_url();
    let env = [("BITRIX24_WEBHOOK_URL", webhook.as_str())];
    let mut raw = RawStdio::start(&env, &[]).await;
    raw.send(call).await;
    wait_until(
        Duration::from_secs(30),
        "the call to reach the portal",
        || async { slow.count() > 0 },
    )
    .await;
    signal(&raw.child, "TERM");
    // Two signals close together may arrive as one; send the second once the first is seen.
    wait_until(
        Duration::from_secs(30),
        "the first signal to be seen",
        || async {
            std::fs::read_to_string(&raw.stderr)
                .unwrap_or_default()
                .contains("signal received")
        },
    )
    .await;
    signal(&raw.child, "INT");
    assert_eq!(exit_code(&mut raw.child).await, Some(130));
}

#[tokio::test]
async fn a_duplicate_in_flight_id_over_http_is_answered_with_an_error() {
    let portal = TestPortal::always(Reply::Delay(
        Duration::from_secs(2),
        Box::new(ok(json!([{"ACCESS_CODE": "G1", "TASK_ID": 1}]))),
    ))
    .await;
    let webhook = portal.webhook_url();
    let (_child, url) = http_server(&[("BITRIX24_WEBHOOK_URL", &webhook)], &[]).await;
    let (_, headers, _) = http_post(&url, &initialize_request(), None).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": "landing_site_get_rights", "arguments": {"id": 1}}});
    let (url2, call2, session2) = (url.clone(), call.clone(), session.clone());
    let first = tokio::spawn(async move { http_post(&url2, &call2, Some(&session2)).await });
    wait_until(
        Duration::from_secs(30),
        "the call to reach the portal",
        || async { portal.count() > 0 },
    )
    .await;
    let (status, _, body) = http_post(&url, &call, Some(&session)).await;
    let second: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status}: {body}"));
    assert_eq!(second["id"], 5, "{body}");
    assert_eq!(second["error"]["code"], -32600, "{body}");
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("G1"), "{body}");
    assert_eq!(portal.count(), 1, "the duplicate was not sent");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn at_the_descriptor_limit_accept_backs_off_and_serves_again() {
    let log = crate::util::stderr_path();
    let script = format!(
        "ulimit -n 48; exec {} --sandbox serve --http 127.0.0.1:0 2>{}",
        crate::util::BIN,
        log.display()
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .env("RUST_LOG", "warn")
        .env(
            "BITRIX24_HTTP_TOKEN",
            bitrix24_permissions_mcp::testing::HTTP_TOKEN,
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = wait_for(Duration::from_secs(30), "the server to listen", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let url = text.split("serving MCP at ").nth(1)?;
        Some(url.lines().next()?.trim().to_owned())
    })
    .await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    // More idle connections than the process has descriptors left.
    let mut hogs = Vec::new();
    for _ in 0..80 {
        hogs.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let failures = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("accept failed")
            .count()
    };
    wait_until(
        Duration::from_secs(30),
        "the failed accepts to be logged",
        || async { failures() > 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A spinning loop logs thousands of failures a second; backing off, a handful.
    let seen = failures();
    assert!(seen < 100, "{seen} failed accepts logged: the loop spins");
    drop(hogs);
    // The header timeout frees the descriptors; then a legitimate client is served.
    let (status, _, body) = http_post(&url, &initialize_request(), None).await;
    assert_eq!(status, 200, "{body}");
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&log);
}
