//! The project's benchmark: `cargo bench --bench bench` (add `-- --quick` for a short run).
//!
//! It drives the release binary over raw stdio (no MCP client library in the measured path)
//! against the loopback test portal from the integration tests, and prints one table. Nothing
//! here asserts a speed: the figures go into the README with the machine they came from.

#[path = "../tests/it/portal.rs"]
#[allow(dead_code)]
mod portal;

use std::{
    collections::HashMap,
    process::Stdio,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use portal::{TestPortal, ok};

const BIN: &str = env!("CARGO_BIN_EXE_bitrix24-permissions-mcp");

/// One server process spoken to in raw JSON-RPC lines.
struct Raw {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl Raw {
    fn spawn(env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        // A throwaway ledger: the benchmark must not write the user's real one.
        let ledger =
            std::env::temp_dir().join(format!("b24-bench-{}.ledger.sqlite3", std::process::id()));
        cmd.env_clear()
            .env("RUST_LOG", "warn")
            .env("BITRIX24_LEDGER", ledger)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn server");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            next_id: 1,
        }
    }

    async fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        id
    }

    async fn notify(&mut self, method: &str) {
        let line = json!({"jsonrpc": "2.0", "method": method}).to_string();
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads until the answer to `id`; returns it and its size in bytes.
    async fn answer(&mut self, id: u64) -> (Value, usize) {
        loop {
            let line = self
                .stdout
                .next_line()
                .await
                .unwrap()
                .expect("server closed stdout");
            let value: Value = serde_json::from_str(&line).unwrap();
            if value["id"] == id {
                return (value, line.len());
            }
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> (Value, usize) {
        let id = self.send(method, params).await;
        self.answer(id).await
    }

    /// Spawns a server and completes the handshake.
    async fn ready(env: &[(&str, &str)]) -> Self {
        let mut raw = Self::spawn(env);
        raw.initialize().await;
        raw
    }

    async fn initialize(&mut self) {
        self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        )
        .await;
        self.notify("notifications/initialized").await;
    }

    fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }
}

/// What any spawned process costs here: spawn `cat`, send it a line, read the line back.
/// `None` where there is no `cat`.
async fn spawn_floor(spawns: usize) -> Option<Duration> {
    let mut samples = Vec::new();
    for _ in 0..spawns {
        let started = Instant::now();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        stdin.write_all(b"{}\n").await.ok()?;
        lines.next_line().await.ok()??;
        samples.push(started.elapsed());
    }
    Some(percentile(&mut samples, 0.5))
}

fn call_params(i: u64) -> Value {
    json!({"name": "landing_site_get_rights", "arguments": {"id": i}})
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let (what, value) = (what.into(), value.into());
        eprintln!("  {what}: {value}");
        self.0.push((what, value));
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `-- --pacing` runs only the pacing scenarios (slow: tens of seconds each).
    if std::env::args().any(|a| a == "--pacing") {
        let mut table = Table(Vec::new());
        pacing_scenarios(&mut table).await;
        print_table(&table);
        return;
    }
    // `-- --who-can` runs only the who_can scenarios on the large sandbox company.
    if std::env::args().any(|a| a == "--who-can") {
        let mut table = Table(Vec::new());
        who_can_scenarios(&mut table).await;
        print_table(&table);
        return;
    }
    let scale = if quick { 10 } else { 1 };
    let mut table = Table(Vec::new());
    // `-- --http-sessions` runs only the HTTP session scenario.
    if std::env::args().any(|a| a == "--http-sessions") {
        http_sessions(&mut table, 5000 / scale).await;
        print_table(&table);
        return;
    }
    let portal = TestPortal::always(ok(json!(["read", "edit"]))).await;
    let url = portal.webhook_url();
    let lifted = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_RATE_LIMIT", "10000/10000"),
    ];

    // Cold start: spawn to the initialize reply, to the tools/list reply, and to the first
    // tool answer, the way a client starts a session.
    let spawns = if quick { 20 } else { 60 };
    let (mut to_init, mut to_list, mut to_call) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_bytes, mut list_count) = (0, 0);
    for _ in 0..spawns {
        let started = Instant::now();
        let mut raw = Raw::spawn(&lifted);
        raw.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        )
        .await;
        to_init.push(started.elapsed());
        raw.notify("notifications/initialized").await;
        let (listed, bytes) = raw.request("tools/list", json!({})).await;
        to_list.push(started.elapsed());
        list_bytes = bytes;
        list_count = listed["result"]["tools"].as_array().map_or(0, Vec::len);
        let (answer, _) = raw.request("tools/call", call_params(0)).await;
        to_call.push(started.elapsed());
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    table.row(
        format!("cold start → initialize reply (median of {spawns})"),
        ms(percentile(&mut to_init, 0.5)),
    );
    table.row(
        format!("cold start → tools/list reply (median of {spawns})"),
        ms(percentile(&mut to_list, 0.5)),
    );
    let first_answer = percentile(&mut to_call, 0.5);
    table.row(
        format!("cold start → first tools/call answer (median of {spawns})"),
        ms(first_answer),
    );
    if let Some(floor) = spawn_floor(spawns).await {
        table.row(
            format!("the machine's floor: spawn `cat` → a line back (median of {spawns})"),
            ms(floor),
        );
    }
    table.row(
        format!("tools/list size, default ({list_count} tools; budget 15 tools, 20 KB)"),
        format!("{list_bytes} bytes"),
    );
    for (label, extra) in [
        (
            "tools/list size, --toolsets all",
            ("BITRIX24_TOOLSETS", "all"),
        ),
        (
            "tools/list size, --read-only",
            ("BITRIX24_READ_ONLY", "true"),
        ),
        (
            "tools/list size, --toolsets tasks",
            ("BITRIX24_TOOLSETS", "tasks"),
        ),
    ] {
        let mut raw = Raw::ready(&[lifted[0], lifted[1], extra]).await;
        let (_, bytes) = raw.request("tools/list", json!({})).await;
        table.row(label, format!("{bytes} bytes"));
    }

    // Memory, and latency added over a direct HTTP request to the same portal.
    let calls = 1000 / scale;
    let mut raw = Raw::ready(&lifted).await;
    table.row(
        "peak RSS after start",
        format!("{} KiB", raw.peak_rss_kib()),
    );
    let http = bitrix24_permissions_mcp::testing::http_client();
    let direct_url = format!("{url}landing.site.getRights.json");
    let (mut direct, mut via_mcp) = (Vec::new(), Vec::new());
    for i in 0..calls as u64 {
        let started = Instant::now();
        let body = http
            .post(&direct_url)
            .header("content-type", "application/json")
            .body(json!({"id": i}).to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        direct.push(started.elapsed());
        assert!(!body.is_empty());
        let started = Instant::now();
        let (answer, _) = raw.request("tools/call", call_params(i)).await;
        via_mcp.push(started.elapsed());
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    table.row(
        format!("peak RSS after {calls} calls"),
        format!("{} KiB", raw.peak_rss_kib()),
    );
    let (d50, d99) = (percentile(&mut direct, 0.5), percentile(&mut direct, 0.99));
    let (m50, m99) = (
        percentile(&mut via_mcp, 0.5),
        percentile(&mut via_mcp, 0.99),
    );
    table.row(
        "direct HTTP call, median / p99",
        format!("{} / {}", ms(d50), ms(d99)),
    );
    table.row(
        "tool call over stdio, median / p99",
        format!("{} / {}", ms(m50), ms(m99)),
    );
    // Issue 15's bar for a cold start, in this run's own terms.
    let target = Duration::from_micros(2500) + m50 * 3;
    table.row(
        "first-answer target: 2.5 ms + 3 × a later tool call",
        format!(
            "{}: {} (first answer {})",
            ms(target),
            if first_answer <= target {
                "met"
            } else {
                "missed"
            },
            ms(first_answer)
        ),
    );
    table.row(
        "added by the server, median / p99",
        format!(
            "{} / {}",
            ms(m50.saturating_sub(d50)),
            ms(m99.saturating_sub(d99))
        ),
    );

    // Concurrent throughput with the limiter lifted: 32 calls in flight on one connection.
    let total = 4000 / scale;
    let started = Instant::now();
    pipelined(&mut raw, total, 32).await;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    table.row(
        format!("throughput, limiter lifted ({total} calls, 32 in flight)"),
        format!("{rate:.0} calls/s"),
    );
    drop(raw);

    // The limiter itself when it is not limiting: default 2/50, calls spaced inside the burst.
    let mut raw = Raw::ready(&[("BITRIX24_WEBHOOK_URL", url.as_str())]).await;
    let mut limited_idle = Vec::new();
    for i in 0..40u64 {
        let started = Instant::now();
        raw.request("tools/call", call_params(i)).await;
        limited_idle.push(started.elapsed());
    }
    drop(raw);
    let idle50 = percentile(&mut limited_idle, 0.5);
    table.row(
        "call at the default 2/50 limit, inside the burst (median)",
        ms(idle50),
    );
    // The limiter's own work when it does not limit: one reservation, measured in-process.
    use bitrix24_permissions_mcp::testing::{Limiter, RateLimiter};
    let limiter = RateLimiter::new("10000/10000".parse().unwrap());
    let far = Instant::now() + Duration::from_secs(86_400);
    // Past slow start first, as a server is after its first few thousand answers: until then
    // most reservations would only be told to ask again.
    for _ in 0..10_000 {
        let _ = limiter.try_reserve(Instant::now(), far);
        limiter.on_success(Instant::now());
    }
    let rounds = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = std::hint::black_box(limiter.try_reserve(Instant::now(), far));
    }
    table.row(
        "limiter cost when not limiting (one reservation)",
        format!(
            "{:.0} ns",
            started.elapsed().as_nanos() as f64 / f64::from(rounds)
        ),
    );

    // Limited: the portal enforces 10/s with a burst of 10, the server is configured the same.
    let (rate_cfg, burst) = (10.0, 10u32);
    let n = if quick { 40 } else { 110 };
    let (limited_portal, refused) =
        TestPortal::rate_limited(rate_cfg, burst, ok(json!(["read"]))).await;
    let limited_url = limited_portal.webhook_url();
    let mut raw = Raw::ready(&[
        ("BITRIX24_WEBHOOK_URL", limited_url.as_str()),
        ("BITRIX24_RATE_LIMIT", "10/10"),
    ])
    .await;
    let started = Instant::now();
    let errors = pipelined(&mut raw, n, n).await.len();
    let took = started.elapsed().as_secs_f64();
    let ideal = (n as f64 - f64::from(burst)) / rate_cfg;
    let sustained = (n as f64 - f64::from(burst)) / took;
    table.row(
        format!("limited: {n} concurrent calls at 10/s, burst 10"),
        format!("{took:.2} s (ideal {ideal:.2} s), {sustained:.2} calls/s beyond the burst, {errors} tool errors"),
    );
    let extra = refused.load(Ordering::SeqCst);
    table.row(
        "503s seen per 100 calls",
        format!("{:.1}", extra as f64 * 100.0 / n as f64),
    );
    drop(raw);

    // Batch against single calls, on a portal 20 ms away (a cloud portal is usually further).
    let checks = if quick { 50 } else { 200 };
    let far = TestPortal::start(|r: &portal::Received| {
        let answer = if r.method == "batch" {
            let keys = r.body["cmd"]
                .as_object()
                .map(|c| c.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            let results: serde_json::Map<String, Value> = keys
                .into_iter()
                .map(|k| (k, json!({"allowedActions": {"503": {"EDIT": true}}})))
                .collect();
            ok(json!({"result": results, "result_error": []}))
        } else {
            ok(json!({"allowedActions": {"503": {"EDIT": true}}}))
        };
        portal::Reply::Delay(Duration::from_millis(20), Box::new(answer))
    })
    .await;
    let far_url = far.webhook_url();
    let mut raw = Raw::ready(&[
        ("BITRIX24_WEBHOOK_URL", far_url.as_str()),
        ("BITRIX24_RATE_LIMIT", "10000/10000"),
    ])
    .await;
    let started = Instant::now();
    for task in 0..checks as u64 {
        let params = json!({"name": "tasks_task_get_access", "arguments": {"taskId": task + 1, "users": [503]}});
        raw.request("tools/call", params).await;
    }
    let single = started.elapsed();
    let single_requests = far.count();
    let items: Vec<Value> = (0..checks)
        .map(|t| json!({"tool": "tasks_task_get_access", "arguments": {"taskId": t + 1, "users": [503]}}))
        .collect();
    let started = Instant::now();
    let (answer, _) = raw
        .request(
            "tools/call",
            json!({"name": "batch", "arguments": {"items": items}}),
        )
        .await;
    let batched = started.elapsed();
    assert_eq!(
        answer["result"]["structuredContent"]["succeeded"], checks,
        "{answer}"
    );
    table.row(
        format!("{checks} checks, single calls (portal 20 ms away)"),
        format!(
            "{} requests, {:.2} s",
            single_requests,
            single.as_secs_f64()
        ),
    );
    table.row(
        format!("{checks} checks, one batch call"),
        format!(
            "{} requests, {:.3} s ({:.0}x faster)",
            far.count() - single_requests,
            batched.as_secs_f64(),
            single.as_secs_f64() / batched.as_secs_f64()
        ),
    );
    drop(raw);

    if !quick {
        pacing_scenarios(&mut table).await;
    }
    http_sessions(&mut table, 5000 / scale).await;
    print_table(&table);
}

/// `serve --http` under session attempts that never close: the session cap must hold the
/// process's memory, and the sessions it admitted must keep working.
async fn http_sessions(table: &mut Table, attempts: usize) {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("RUST_LOG", "error")
        .args(["--sandbox", "serve", "--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next_line().await.unwrap().expect("server listening");
        if let Some(url) = line.split("serving MCP at ").nth(1) {
            break url.trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    .to_string();
    let http = bitrix24_permissions_mcp::testing::http_client();
    let started = Instant::now();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut first_session = None;
    let mut done = 0;
    while done < attempts {
        let wave: Vec<_> = (0..50.min(attempts - done))
            .map(|_| {
                tokio::spawn(
                    http.post(&url)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .body(init.clone())
                        .send(),
                )
            })
            .collect();
        for handle in wave {
            let response = handle.await.unwrap().expect("an answer");
            if first_session.is_none() {
                first_session = response
                    .headers()
                    .get("mcp-session-id")
                    .map(|v| v.to_str().unwrap().to_owned());
            }
            *statuses.entry(response.status().as_u16()).or_default() += 1;
        }
        done += 50;
    }
    let took = started.elapsed();
    let session = first_session.expect("at least one session admitted");
    let still = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap()
        .status();
    let pid = child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    table.row(
        format!("HTTP: {attempts} session attempts, never closed (default cap 64)"),
        format!(
            "peak RSS {peak} KiB, {} admitted, {} refused with 503, {:.1} s; an admitted session still answers {still}",
            statuses.get(&200).copied().unwrap_or(0),
            statuses.get(&503).copied().unwrap_or(0),
            took.as_secs_f64()
        ),
    );
    let _ = child.kill().await;
}

/// A portal that is the large sandbox company behind Bitrix24's bucket (2/s, burst 50),
/// answering 503 QUERY_LIMIT_EXCEEDED past it; with the count of what it refused.
async fn large_company_portal() -> (TestPortal, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use bitrix24_permissions_mcp::testing::{Api, Catalog, SandboxPortal, SandboxSize};
    let catalog = Catalog::embedded().unwrap();
    let company = std::sync::Mutex::new(SandboxPortal::of_size(&catalog, SandboxSize::Large));
    let bucket = portal::LeakyBucket::new(2.0, 50);
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = refused.clone();
    let portal = TestPortal::start(move |r: &portal::Received| {
        if !bucket.admit() {
            counter.fetch_add(1, Ordering::SeqCst);
            return portal::error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
        }
        let api = if r.v3 { Api::V3 } else { Api::Classic };
        let (status, body) = company.lock().unwrap().call_at(api, &r.method, &r.body);
        portal::Reply::Json(status, body)
    })
    .await;
    (portal, refused)
}

/// A server for `portal` at the defaults (2/50, 30 s timeout), with who_can published and
/// room for a 5,000-object answer.
async fn who_can_server(portal: &TestPortal) -> Raw {
    paced_server(
        portal,
        &[
            ("BITRIX24_TOOLS", "who_can,landing_site_set_rights"),
            ("BITRIX24_MAX_RESULT_BYTES", "10000000"),
            ("BITRIX24_CONFIRM_WRITES", "never"),
        ],
    )
    .await
}

/// One who_can call: its structured answer and how long it took.
async fn who_can_call(raw: &mut Raw, arguments: Value) -> (Value, f64) {
    let started = Instant::now();
    let (answer, _) = raw
        .request(
            "tools/call",
            json!({"name": "who_can", "arguments": arguments}),
        )
        .await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    (answer["result"]["structuredContent"].clone(), took)
}

/// Issue 24's figures on the large company, each against a fresh portal bucket: requests
/// sent, wall time against the bucket's ideal, the server's peak memory.
async fn who_can_scenarios(table: &mut Table) {
    use bitrix24_permissions_mcp::testing::large_sandbox::{ALL_HANDS, FIRST_TASK, TASKS};
    let ideal = |requests: usize| (requests.saturating_sub(50)) as f64 / 2.0;

    // "Who can edit each of these 5,000 tasks?", checking 50 people.
    let (portal, refused) = large_company_portal().await;
    let mut raw = who_can_server(&portal).await;
    let rss_start = raw.peak_rss_kib();
    let mut ids: Vec<u64> = vec![8017, 8020];
    ids.extend(FIRST_TASK..FIRST_TASK + TASKS - 2);
    let users: Vec<u64> = (1..=50).collect();
    let (answer, took) = who_can_call(
        &mut raw,
        json!({"object": "task", "ids": ids, "users": users, "action": "EDIT"}),
    )
    .await;
    let sent = portal.count();
    let objects = answer["objects"].as_array().map_or(0, Vec::len);
    let minimum = (ids.len() + 1).div_ceil(50);
    table.row(
        format!("who can edit each of {objects} tasks (50 people checked), vs portal 2/s burst 50"),
        format!(
            "{sent} requests (minimum ⌈({} checks + 1 naming read)/50⌉ = {minimum}), {took:.2} s (ideal {:.2} s, {:.2}x), {} 503s, peak RSS {} KiB (after start {rss_start} KiB)",
            ids.len(),
            ideal(sent),
            took / ideal(sent),
            refused.load(Ordering::SeqCst),
            raw.peak_rss_kib()
        ),
    );
    drop(raw);

    // "Who can edit site 645?", after one set was written through this server: the site's own
    // read, the set's codes resolved (All hands: 1,003 members), in the fewest rounds.
    let (portal, refused) = large_company_portal().await;
    let mut raw = who_can_server(&portal).await;
    let mut set = json!({"id": 645, "rights": {"AU": ["read"], "U1": ["read", "edit", "sett", "public", "delete"],
        "D5": ["read", "edit"], "G1": ["read", "edit", "sett"]}});
    set["rights"][format!("SG{ALL_HANDS}_K")] = json!(["read", "edit"]);
    let (written, _) = raw
        .request(
            "tools/call",
            json!({"name": "landing_site_set_rights", "arguments": set}),
        )
        .await;
    assert_eq!(written["result"]["isError"], false, "{written}");
    let before = portal.count();
    let (answer, took) = who_can_call(
        &mut raw,
        json!({"object": "site", "ids": [645], "action": "edit"}),
    )
    .await;
    let sent = portal.count() - before;
    let site = &answer["objects"][0];
    table.row(
        "who can edit site 645 (the set written through this server: AU, U1, All hands, D5, G1), vs portal 2/s burst 50",
        format!(
            "{sent} requests (the site's reads with the codes' first round, then their users: 2 rounds), {} people, {} unknown, {took:.3} s (ideal {:.2} s: within the burst), {} 503s, peak RSS {} KiB",
            site["people"].as_array().map_or(0, Vec::len),
            site["unknown"].as_array().map_or(0, Vec::len),
            ideal(sent),
            refused.load(Ordering::SeqCst),
            raw.peak_rss_kib()
        ),
    );
}

fn print_table(table: &Table) {
    // The table is the benchmark's output, so it goes to stdout (the lint guards the server).
    #[allow(clippy::print_stdout)]
    {
        println!("\n| measure | value |\n|---|---|");
        for (what, value) in &table.0 {
            println!("| {what} | {value} |");
        }
        println!("\nmachine: {} cores, {}", num_cpus(), cpu_model());
    }
}

/// A limiter store of the scenario's own: a fresh directory, so no state carries over.
fn fresh_store() -> String {
    let dir = std::env::temp_dir().join(format!(
        "b24-bench-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    format!("file:{}", dir.display())
}

/// One server process for `portal` with pacing state of its own, plus `env`.
async fn paced_server(portal: &TestPortal, env: &[(&str, &str)]) -> Raw {
    let url = portal.webhook_url();
    let store = fresh_store();
    let mut all = vec![
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_LIMITER_URL", store.as_str()),
    ];
    all.extend_from_slice(env);
    Raw::ready(&all).await
}

/// One row: wall time against the ideal, the 503s the portal sent, the failures clients saw.
/// Each failure's text goes to stderr under the row: it says what failed and why.
fn pacing_row(
    table: &mut Table,
    what: String,
    took: f64,
    ideal: f64,
    refused: usize,
    failures: &[String],
) {
    let failed = failures.len();
    table.row(
        what,
        format!(
            "{took:.2} s (ideal {ideal:.2} s, {:.2}x), {refused} 503s, {failed} failures",
            took / ideal
        ),
    );
    for text in failures {
        eprintln!("    failure: {text}");
    }
}

/// The pacing scenarios: portals that enforce Bitrix24's bucket, servers at the
/// defaults unless said otherwise.
async fn pacing_scenarios(table: &mut Table) {
    // One process at the default 2/50 against a 2/s burst-5 portal, 20 calls.
    for concurrent in [false, true] {
        let (portal, refused) = TestPortal::rate_limited(2.0, 5, ok(json!(["read"]))).await;
        let mut raw = paced_server(&portal, &[]).await;
        let started = Instant::now();
        let failed = if concurrent {
            pipelined(&mut raw, 20, 20).await
        } else {
            let mut failed = Vec::new();
            for i in 0..20 {
                let (answer, _) = raw.request("tools/call", call_params(i)).await;
                failed.extend(failure_text(&answer));
            }
            failed
        };
        let took = started.elapsed().as_secs_f64();
        let how = if concurrent {
            "concurrent"
        } else {
            "sequential"
        };
        pacing_row(
            table,
            format!("1 process (2/50) vs portal 2/s burst 5, 20 calls {how}"),
            took,
            7.5,
            refused.load(Ordering::SeqCst),
            &failed,
        );
    }

    // What slow start costs where the portal's bucket is as big as configured (the default
    // case): 50 concurrent calls at a 2/s burst-50 portal that answers in 100 ms. Sent all
    // at once they would take one answer's time.
    {
        let slow = portal::Reply::Delay(Duration::from_millis(100), Box::new(ok(json!(["read"]))));
        let (portal, refused) = TestPortal::rate_limited(2.0, 50, slow).await;
        let mut raw = paced_server(&portal, &[]).await;
        let started = Instant::now();
        let failed = pipelined(&mut raw, 50, 50).await;
        pacing_row(
            table,
            "1 process (2/50) vs portal 2/s burst 50 answering in 100 ms, 50 concurrent calls (slow start's cost)".to_owned(),
            started.elapsed().as_secs_f64(),
            0.1,
            refused.load(Ordering::SeqCst),
            &failed,
        );
    }

    // Three processes on one webhook, 20 concurrent calls each, 2/s burst-10 portal.
    let redis = BenchRedis::start();
    let mut stores = vec![("machine-wide file", fresh_store())];
    if let Some(redis) = &redis {
        stores.push(("Redis", redis.url.clone()));
    }
    for (name, store) in stores {
        let (portal, refused) = TestPortal::rate_limited(2.0, 10, ok(json!(["read"]))).await;
        let url = portal.webhook_url();
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(
                Raw::ready(&[
                    ("BITRIX24_WEBHOOK_URL", url.as_str()),
                    ("BITRIX24_LIMITER_URL", store.as_str()),
                ])
                .await,
            );
        }
        let started = Instant::now();
        let runs: Vec<_> = servers
            .into_iter()
            .map(|mut raw| {
                tokio::spawn(async move {
                    let failed = pipelined(&mut raw, 20, 20).await;
                    drop(raw);
                    failed
                })
            })
            .collect();
        let mut failed = Vec::new();
        for run in runs {
            failed.extend(run.await.unwrap());
        }
        let took = started.elapsed().as_secs_f64();
        pacing_row(
            table,
            format!("3 processes ({name}) vs portal 2/s burst 10, 20 concurrent calls each"),
            took,
            25.0,
            refused.load(Ordering::SeqCst),
            &failed,
        );
    }
    drop(redis);

    // 200 concurrent calls in one session at --rate-limit 5/10, 5/s burst-10 portal.
    let (portal, refused) = TestPortal::rate_limited(5.0, 10, ok(json!(["read"]))).await;
    let mut raw = paced_server(&portal, &[("BITRIX24_RATE_LIMIT", "5/10")]).await;
    let started = Instant::now();
    let failed = pipelined(&mut raw, 200, 200).await;
    let took = started.elapsed().as_secs_f64();
    pacing_row(
        table,
        "1 session (5/10) vs portal 5/s burst 10, 200 concurrent calls".to_owned(),
        took,
        38.0,
        refused.load(Ordering::SeqCst),
        &failed,
    );
}

/// A redis-server of the benchmark's own, if the binary is there.
struct BenchRedis {
    child: std::process::Child,
    url: String,
}

impl BenchRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("  (no redis-server: {e}; the Redis scenario is skipped)"))
            .ok()?;
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Self {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a `tools/call` answer that is not a success: a tool error, or a JSON-RPC error.
fn failure_text(answer: &Value) -> Option<String> {
    if answer["result"]["isError"] == false {
        return None;
    }
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .map_or_else(|| answer.to_string(), str::to_owned);
    Some(text)
}

/// Sends `total` calls keeping `window` in flight; returns the texts of those that came back
/// as errors.
async fn pipelined(raw: &mut Raw, total: usize, window: usize) -> Vec<String> {
    let mut pending: HashMap<u64, ()> = HashMap::new();
    let mut sent = 0usize;
    let mut errors = Vec::new();
    while sent < total || !pending.is_empty() {
        while sent < total && pending.len() < window {
            let id = raw.send("tools/call", call_params(sent as u64)).await;
            pending.insert(id, ());
            sent += 1;
        }
        let line = raw
            .stdout
            .next_line()
            .await
            .unwrap()
            .expect("server closed stdout");
        let value: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = value["id"].as_u64()
            && pending.remove(&id).is_some()
        {
            errors.extend(failure_text(&value));
        }
    }
    errors
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_owned(), |s| s.trim().to_owned())
}
