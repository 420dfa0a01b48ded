//! Bitrix24's limits and a faulty portal: what the model sees, and how many requests the
//! portal got for it (no duplicate writes, no retries of what must not be retried).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::{
    portal::{Reply, TestPortal, error, guarded, ok},
    util::{Launch, is_error, text_of, wait_until},
};

const READ: &str = "landing_site_get_rights";
const WRITE: &str = "landing_site_set_rights";

/// The REST method behind READ or WRITE, for counting what reached the portal.
fn method_of(tool: &str) -> &'static str {
    if tool == WRITE {
        "landing.site.setRights"
    } else {
        "landing.site.getRights"
    }
}

fn read_args() -> Value {
    json!({"id": 645})
}

fn write_args() -> Value {
    json!({"id": 645, "rights": {"AU": ["read"]}})
}

/// Answers `first` for the first `n` requests, then `then`.
async fn portal_first(n: usize, first: Reply, then: Reply) -> TestPortal {
    let seen = AtomicUsize::new(0);
    TestPortal::start(guarded(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < n {
            first.clone()
        } else {
            then.clone()
        }
    }))
    .await
}

/// A fast limiter, so retry tests do not wait on the production default of 2/s.
fn fast(url: &str) -> Launch<'_> {
    Launch::new(url).env("BITRIX24_RATE_LIMIT", "20/5")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A success whose `time` says the method's run-time window resets in `reset_in` seconds.
fn ok_with_reset(result: Value, reset_in: f64) -> Reply {
    let now = unix_now();
    Reply::Json(
        200,
        json!({"result": result, "time": {"finish": now, "operating": 470.0, "operating_reset_at": now + reset_in}}),
    )
}

#[tokio::test]
async fn a_run_of_query_limit_errors_is_absorbed() {
    let portal = portal_first(
        3,
        error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        ok(json!(["read"])),
    )
    .await;
    let server = fast(&portal.webhook_url()).start().await;
    let result = server.call(READ, read_args()).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(result.structured_content, Some(json!({"result": ["read"]})));
    assert_eq!(
        portal.count(),
        4,
        "three refusals, then the one that worked"
    );
    // Writes too, the refusals' count and the cancel during a backoff: in the gateway's own
    // tests, on a paused clock (src/bitrix/limits/gateway_tests.rs).
    server.stop().await;
}

#[tokio::test]
async fn never_retried_failures_reach_the_portal_once() {
    let never: Vec<(Reply, &str)> = vec![
        (
            error(503, "OVERLOAD_LIMIT", "REST API is blocked due to overload"),
            "OVERLOAD_LIMIT",
        ),
        (
            error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            "INTERNAL_SERVER_ERROR",
        ),
        (
            error(
                500,
                "ERROR_UNEXPECTED_ANSWER",
                "Server returned an unexpected response",
            ),
            "ERROR_UNEXPECTED_ANSWER",
        ),
        (
            error(401, "NO_AUTH_FOUND", "Wrong authorization data"),
            "NO_AUTH_FOUND",
        ),
        (error(403, "insufficient_scope", ""), "insufficient_scope"),
        (error(403, "ACCESS_DENIED", ""), "ACCESS_DENIED"),
        (
            error(500, "PORTAL_DELETED", "Portal was deleted"),
            "PORTAL_DELETED",
        ),
        (
            error(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            ),
            "ERROR_BATCH_LENGTH_EXCEEDED",
        ),
        (error(400, "BRAND_NEW_CODE", "?"), "BRAND_NEW_CODE"),
        (
            Reply::Raw {
                status: 200,
                content_type: "text/plain",
                body: b"maintenance".to_vec(),
            },
            "not JSON",
        ),
    ];
    for (reply, shown) in never {
        for (tool, args) in [(READ, read_args()), (WRITE, write_args())] {
            let portal = TestPortal::always(reply.clone()).await;
            let server = fast(&portal.webhook_url()).start().await;
            let result = server.call(tool, args).await;
            assert!(is_error(&result));
            assert!(
                text_of(&result).contains(shown),
                "{shown}: {}",
                text_of(&result)
            );
            assert!(text_of(&result).contains("What to do"));
            let method = method_of(tool);
            assert_eq!(
                portal.count_of(method),
                1,
                "{shown} on {tool} must not be retried"
            );
            server.stop().await;
        }
    }
}

/// Ways an answer is lost after the request was sent, and what the model is shown for each.
fn lost_answers() -> Vec<(Reply, &'static str)> {
    vec![
        (Reply::Reset, "lost the connection"),
        (
            Reply::CutOff(json!({"result": ["read", "edit", "sett", "public"]})),
            "lost the connection",
        ),
        (
            Reply::Raw {
                status: 200,
                content_type: "application/json",
                body: br#"{"result":["re"#.to_vec(),
            },
            "cut off",
        ),
        (
            Reply::Raw {
                status: 502,
                content_type: "text/html",
                body: b"<html><title>502 Bad Gateway</title></html>".to_vec(),
            },
            "502 Bad Gateway",
        ),
        (
            Reply::Raw {
                status: 504,
                content_type: "text/html",
                body: b"<html><title>504 Gateway Time-out</title></html>".to_vec(),
            },
            "504",
        ),
    ]
}

#[tokio::test]
async fn lost_answers_to_reads_are_retried_once() {
    for (reply, shown) in lost_answers() {
        // Once lost, then fine: the model sees a success, the portal two requests.
        let portal = portal_first(1, reply.clone(), ok(json!(["read"]))).await;
        let server = fast(&portal.webhook_url()).start().await;
        let result = server.call(READ, read_args()).await;
        assert!(!is_error(&result), "{shown}: {}", text_of(&result));
        assert_eq!(result.structured_content, Some(json!({"result": ["read"]})));
        assert_eq!(portal.count(), 2, "{shown}: retried exactly once");
        assert!(
            portal.received().iter().all(|r| r.body == read_args()),
            "the retry repeats the same request"
        );
        server.stop().await;

        // Lost twice: one retry only, then an explanation.
        let portal = TestPortal::always(reply.clone()).await;
        let server = fast(&portal.webhook_url()).start().await;
        let result = server.call(READ, read_args()).await;
        assert!(is_error(&result));
        assert!(
            text_of(&result).contains(shown),
            "{shown}: {}",
            text_of(&result)
        );
        assert!(
            text_of(&result).contains("tried 2 times"),
            "{}",
            text_of(&result)
        );
        assert_eq!(portal.count(), 2);
        server.stop().await;
    }
}

/// The model's view of a write whose answer was lost: unknown outcome, how to check, and
/// the promise that nothing was re-sent.
fn assert_outcome_unknown(text: &str) {
    assert!(
        text.contains("outcome of landing.site.setRights is unknown")
            && text.contains("may or may not have applied")
            && text.contains("Nothing was re-sent")
            && text.contains("landing_site_get_rights"),
        "{text}"
    );
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_sent_exactly_once() {
    let mut lost = lost_answers();
    // A timeout after sending: the portal answers long after the client gave up.
    lost.push((
        Reply::Delay(Duration::from_secs(30), Box::new(ok(json!(true)))),
        "in time",
    ));
    // A non-2xx status is never a success, whatever the body holds.
    lost.push((Reply::Json(503, json!({"result": true})), "HTTP 503"));
    for (reply, shown) in lost {
        // Even when a second try would succeed, the write is not sent again.
        let portal = TestPortal::start(guarded({
            let reply = reply.clone();
            let seen = AtomicUsize::new(0);
            move |_| {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    reply.clone()
                } else {
                    ok(json!(true))
                }
            }
        }))
        .await;
        let server = fast(&portal.webhook_url())
            .env("BITRIX24_TIMEOUT_SECS", "1")
            .start()
            .await;
        let result = server.call(WRITE, write_args()).await;
        assert!(is_error(&result), "{shown}: {}", text_of(&result));
        let text = text_of(&result);
        assert_outcome_unknown(&text);
        assert!(text.contains(shown), "{shown}: {text}");
        assert_eq!(
            portal.count_of("landing.site.setRights"),
            1,
            "{shown}: exactly one request reached the portal"
        );
        server.stop().await;
    }
}

/// A refused connection sent nothing, so even a write may go again; driven at the gateway,
/// since a portal that refuses connections cannot also count requests.
#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_write() {
    use bitrix24_permissions_mcp::testing::{
        Api, CallError, Gateway, NoProgress, PortalClient, RateLimiter, WebhookUrl,
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/rest/7/abcdefgh12345678/");
    let webhook = WebhookUrl::parse(&url).unwrap();
    let client = PortalClient::new(Arc::new(webhook), Duration::from_secs(5));
    let limiter = Arc::new(RateLimiter::new("20/5".parse().unwrap()));
    let gateway = Gateway::new(client, limiter, Duration::from_secs(5));
    let err = gateway
        .call(
            "landing.site.setRights",
            Api::Classic,
            &write_args(),
            true,
            gateway.deadline(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Portal { attempts: 2, .. }),
        "{err:?}"
    );
}

/// Guard reads and the write share one deadline: slow guards leave no time for the write,
/// which is then not sent at all (before, each had a deadline of its own).
#[tokio::test]
async fn one_deadline_covers_the_guards_and_the_write() {
    let portal = TestPortal::start(|r| {
        let slow = |reply| Reply::Delay(Duration::from_millis(900), Box::new(reply));
        match r.method.as_str() {
            "landing.role.isEnabled" => slow(ok(json!(false))),
            "access.name" => slow(ok(json!({"AU": {"name": "All"}}))),
            _ => ok(json!(true)),
        }
    })
    .await;
    let server = fast(&portal.webhook_url())
        .env("BITRIX24_TIMEOUT_SECS", "1")
        .start()
        .await;
    let result = server.call(WRITE, write_args()).await;
    let text = text_of(&result);
    assert!(is_error(&result), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert_eq!(portal.count_of("landing.site.setRights"), 0);
    server.stop().await;
}

#[tokio::test]
async fn run_time_limit_pauses_only_that_method() {
    // Site reads: a success that says the window resets in 1 s, then a 429, then fine again.
    let reads = AtomicUsize::new(0);
    let portal = TestPortal::start(move |r| match r.method.as_str() {
        "landing.site.getRights" => match reads.fetch_add(1, Ordering::SeqCst) {
            0 => ok_with_reset(json!(["read"]), 1.0),
            1 => error(
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
            _ => ok(json!(["read", "edit"])),
        },
        _ => ok(json!(true)),
    })
    .await;
    let server = fast(&portal.webhook_url()).start().await;
    assert!(!is_error(&server.call(READ, read_args()).await));

    let server = Arc::new(server);
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move { server.call(READ, read_args()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another method goes on while getRights is paused: it is answered first.
    let other = server
        .call(
            "sonet_group_feature_access",
            json!({"GROUP_ID": 1, "FEATURE": "tasks", "OPERATION": "view"}),
        )
        .await;
    assert!(!is_error(&other));
    assert!(
        !waiting.is_finished(),
        "the paused read ended before the other"
    );

    let result = waiting.await.unwrap();
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(
        result.structured_content,
        Some(json!({"result": ["read", "edit"]}))
    );
    let site_reads = portal
        .received()
        .iter()
        .filter(|r| r.method == "landing.site.getRights")
        .count();
    assert_eq!(
        site_reads, 3,
        "first read, the 429, one retry after the reset"
    );
    let messages = server.recorder.progress.lock().unwrap().clone();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("run-time limit of landing.site.getRights: waiting")),
        "progress while paused: {messages:?}"
    );
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

#[tokio::test]
async fn a_long_run_time_pause_is_a_clear_error_and_sends_nothing_more() {
    let reads = AtomicUsize::new(0);
    let portal = TestPortal::start(move |r| match r.method.as_str() {
        "landing.site.getRights" => match reads.fetch_add(1, Ordering::SeqCst) {
            0 => ok_with_reset(json!(["read"]), 300.0),
            _ => error(
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
        },
        _ => ok(json!({"allowedActions": []})),
    })
    .await;
    let server = fast(&portal.webhook_url()).start().await;
    assert!(!is_error(&server.call(READ, read_args()).await));
    for _ in 0..2 {
        let result = server.call(READ, read_args()).await;
        let text = text_of(&result);
        assert!(is_error(&result));
        assert!(
            text.contains("run-time budget")
                && text.contains("UTC")
                && text.contains("other tools still work"),
            "{text}"
        );
    }
    assert_eq!(
        portal.count(),
        2,
        "the paused method is not called again until its reset"
    );
    let other = server
        .call("tasks_task_get_access", json!({"taskId": 1}))
        .await;
    assert!(!is_error(&other), "{}", text_of(&other));
    server.stop().await;
}

#[tokio::test]
async fn oversized_answers_are_not_passed_on() {
    let users: serde_json::Map<String, Value> = (1..=40)
        .map(|u| {
            (
                u.to_string(),
                json!({"EDIT": true, "REMOVE": false, "COMPLETE": true, "APPROVE": false}),
            )
        })
        .collect();
    let portal = TestPortal::always(ok(json!({"allowedActions": users}))).await;
    let url = portal.webhook_url();
    let server = fast(&url)
        .env("BITRIX24_MAX_RESULT_BYTES", "1000")
        .start()
        .await;
    let result = server
        .call(
            "tasks_task_get_access",
            json!({"taskId": 1, "users": (1..=40).collect::<Vec<_>>()}),
        )
        .await;
    let text = text_of(&result);
    assert!(is_error(&result));
    assert!(
        text.contains("above the 1000-byte limit") && text.contains("fewer `users`"),
        "{text}"
    );
    let small = server
        .call("tasks_task_get_access", json!({"taskId": 1, "users": [1]}))
        .await;
    assert!(
        is_error(&small),
        "the stand-in portal answers all 40 users whatever is asked"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancellation_stops_a_call_at_once() {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
    use rmcp::service::PeerRequestOptions;

    // In flight: the portal holds its first answer; the cancelled call must hang up on it.
    // Later calls are answered at once, so the last check below costs no wait.
    let answered = AtomicUsize::new(0);
    let portal = TestPortal::start(move |_| {
        if answered.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Delay(Duration::from_secs(20), Box::new(ok(json!([]))))
        } else {
            ok(json!(["read"]))
        }
    })
    .await;
    let server = fast(&portal.webhook_url()).start().await;
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new(READ).with_arguments(read_args().as_object().unwrap().clone()),
    ));
    let handle = server
        .client
        .peer()
        .send_cancellable_request(request.clone(), PeerRequestOptions::no_options())
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the request to reach the portal",
        || async { portal.count() == 1 },
    )
    .await;
    handle
        .cancel(Some("user pressed Esc".into()))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(3),
        "the request to be abandoned",
        || async { portal.aborted() > 0 },
    )
    .await;
    assert_eq!(portal.aborted(), 1, "the HTTP request was not abandoned");
    // A cancel during a backoff sends nothing more: in the gateway's own tests, on a paused
    // clock (src/bitrix/limits/gateway_tests.rs).

    // The server is not wedged by the cancel: the next call is forwarded and answered.
    let result = server.call(READ, read_args()).await;
    assert_eq!(
        result.structured_content,
        Some(json!({"result": ["read"]})),
        "{}",
        text_of(&result)
    );
    assert_eq!(portal.count(), 2);
    server.stop().await;
}

/// Many concurrent calls against a portal that enforces the same bucket as the server.
#[tokio::test]
async fn under_load_the_limiter_keeps_every_call_alive() {
    const CALLS: usize = 30;
    let (portal, refused) = TestPortal::rate_limited(10.0, 5, ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    let server = Arc::new(
        Launch::new(&url)
            .env("BITRIX24_RATE_LIMIT", "10/5")
            .start()
            .await,
    );
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move { server.call(READ, json!({"id": i})).await })
        })
        .collect();
    for call in calls {
        let result = call.await.unwrap();
        assert!(!is_error(&result), "{}", text_of(&result));
    }
    let extra = portal.count() - CALLS;
    assert_eq!(extra, refused.load(Ordering::SeqCst));
    assert!(extra <= 3, "{extra} extra requests");
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

/// Another client shares the portal's bucket: the server starts too fast, gets 503s, adapts,
/// and still answers every call.
#[tokio::test]
async fn a_shared_bucket_is_absorbed_without_tool_errors() {
    const CALLS: usize = 24;
    let (portal, _) = TestPortal::rate_limited(8.0, 4, ok(json!(true))).await;
    let url = portal.webhook_url();
    let server = Arc::new(
        Launch::new(&url)
            .env("BITRIX24_RATE_LIMIT", "20/10")
            .start()
            .await,
    );
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call(
                        "sonet_group_feature_access",
                        json!({"GROUP_ID": 1, "FEATURE": "tasks", "OPERATION": "view"}),
                    )
                    .await
            })
        })
        .collect();
    for call in calls {
        let result = call.await.unwrap();
        assert!(!is_error(&result), "{}", text_of(&result));
    }
    assert!(portal.count() > CALLS, "the portal must have refused some");
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

/// Three server processes, ten concurrent calls each, against a 10/s burst-5 portal, all
/// pacing through `store`: the calls that failed and the refusals the portal sent.
async fn three_processes_on_one_bucket(store: &str) -> (usize, usize) {
    three_processes_on(store, 5, "10/5").await
}

/// Three server processes configured with `rate_limit`, ten concurrent calls each, against a
/// 10/s portal with `burst`, all pacing through `store`.
async fn three_processes_on(store: &str, burst: u32, rate_limit: &str) -> (usize, usize) {
    const PROCESSES: usize = 3;
    const CALLS: usize = 10;
    let (portal, refused) = TestPortal::rate_limited(10.0, burst, ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    let mut servers = Vec::new();
    for _ in 0..PROCESSES {
        servers.push(Arc::new(
            Launch::new(&url)
                .env("BITRIX24_RATE_LIMIT", rate_limit)
                .env("BITRIX24_LIMITER_URL", store)
                .start()
                .await,
        ));
    }
    let calls: Vec<_> = servers
        .iter()
        .flat_map(|server| {
            (0..CALLS).map(move |i| {
                let server = server.clone();
                tokio::spawn(async move { server.call(READ, json!({"id": i})).await })
            })
        })
        .collect();
    let mut failed = 0;
    for call in calls {
        if is_error(&call.await.unwrap()) {
            failed += 1;
        }
    }
    let refused = refused.load(Ordering::SeqCst);
    assert_eq!(portal.count(), PROCESSES * CALLS + refused);
    for server in servers {
        Arc::try_unwrap(server).ok().unwrap().stop().await;
    }
    (failed, refused)
}

/// Three server processes on one webhook share one bucket through a state file: together
/// they pace at the portal's rate instead of three times it, and no call fails. (Pacing
/// each alone, they are refused about 25 times.)
#[tokio::test]
async fn processes_on_one_webhook_share_one_bucket() {
    let dir = std::env::temp_dir().join(format!(
        "b24-shared-bucket-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let (failed, refused) = three_processes_on_one_bucket(&format!("file:{}", dir.display())).await;
    assert_eq!(failed, 0, "{refused} refusals");
    assert!(
        refused < 12,
        "{refused} refusals: the bucket was not shared"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Three fresh processes believe the configured burst of 50; the portal's is 10. Slow start
/// sends 4, then 8 once those are answered: the portal refuses 2 of those (1 or 2 in practice),
/// which shows its burst to all three at once. Believing 50 from the start, they are refused
/// 20 times. The bound is what slow start can overshoot here at worst, its third round of 16,
/// reached only when the portal drains a lot between slow rounds on a loaded machine; the exact
/// rounds are tested with a clock of the test's own in `rate.rs`.
#[tokio::test]
async fn slow_start_shows_three_processes_a_smaller_bucket_after_few_refusals() {
    let dir = std::env::temp_dir().join(format!(
        "b24-slow-start-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let store = format!("file:{}", dir.display());
    let (failed, refused) = three_processes_on(&store, 10, "10/50").await;
    assert_eq!(failed, 0, "{refused} refusals");
    assert!(refused <= 16, "{refused} refusals");
    let _ = std::fs::remove_dir_all(dir);
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (failed, refused) = three_processes_on(&redis.url, 10, "10/50").await;
    assert_eq!(failed, 0, "{refused} refusals through Redis");
    assert!(refused <= 16, "{refused} refusals through Redis");
}

/// A `redis-server` of the test's own on a free loopback port, stopped when dropped.
pub struct RedisServer {
    pub child: std::process::Child,
    pub url: String,
}

impl RedisServer {
    /// None (with a notice) only where the binary is missing; CI installs it.
    pub fn start() -> Option<Self> {
        // Another test may take the free port before redis-server binds it: then it exits,
        // and another port is tried.
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = match std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!(
                        "NOTICE: redis-server is not installed; the Redis store test is skipped"
                    );
                    return None;
                }
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            for _ in 0..1000 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if answers_ping(port) {
                    return Some(Self {
                        child,
                        url: format!("redis://127.0.0.1:{port}/0"),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

/// Redis itself, not whatever else listens there, answers PING.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn processes_share_one_bucket_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (failed, refused) = three_processes_on_one_bucket(&redis.url).await;
    assert_eq!(failed, 0, "{refused} refusals");
    assert!(
        refused < 12,
        "{refused} refusals: the bucket was not shared"
    );
}

#[tokio::test]
async fn redis_unreachable_at_start_up_is_exit_2_and_later_a_fallback() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let url = portal.webhook_url();

    // Gone later: calls go on, paced by the process alone, and the log says so.
    let server = fast(&url)
        .env("BITRIX24_LIMITER_URL", &redis.url)
        .start()
        .await;
    assert!(!is_error(&server.call(READ, read_args()).await));
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    for _ in 0..3 {
        let result = server.call(READ, read_args()).await;
        assert!(!is_error(&result), "{}", text_of(&result));
    }
    let log = server.stop().await;
    assert!(
        log.contains("pacing this process alone"),
        "no fallback warning in: {log}"
    );

    // Unreachable at start-up: a clear message and exit status 2, before serving anything.
    let output = crate::util::command(
        &[
            ("BITRIX24_WEBHOOK_URL", url.as_str()),
            ("BITRIX24_LIMITER_URL", redis.url.as_str()),
        ],
        &[],
    )
    .stdin(std::process::Stdio::null())
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("BITRIX24_LIMITER_URL") && stderr.contains("Redis"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// The README's example at the default settings: 200 task checks in one batch. Every action
/// of user 503 makes the whole answer too large; only_keys ["EDIT"] brings it under the limit
/// with every item still there.
#[tokio::test]
async fn two_hundred_task_checks_fit_with_only_keys() {
    const ACTIONS: &[&str] = &[
        "COMPLETE",
        "APPROVE",
        "DISAPPROVE",
        "START",
        "PAUSE",
        "DELEGATE",
        "REMOVE",
        "EDIT",
        "DEFER",
        "RENEW",
        "CREATE",
        "RATE",
        "TAKE",
        "EDIT.ORIGINATOR",
        "CHECKLIST.REORDER",
        "ELAPSEDTIME.ADD",
        "DAYPLAN.TIMER.TOGGLE",
        "EDIT.PLAN",
        "CHANGE_DEADLINE",
        "CHECKLIST.ADD",
        "CHECKLIST_ADD_ITEMS",
        "FAVORITE.ADD",
        "ADD_FAVORITE",
    ];
    let portal = TestPortal::start(|r| {
        let results: serde_json::Map<String, Value> = r.body["cmd"]
            .as_object()
            .unwrap()
            .keys()
            .map(|key| {
                let actions: serde_json::Map<String, Value> =
                    ACTIONS.iter().map(|a| ((*a).to_owned(), json!(true))).collect();
                (key.clone(), json!({"allowedActions": {"503": actions}}))
            })
            .collect();
        ok(json!({"result": results, "result_error": [], "result_total": [], "result_next": [], "result_time": []}))
    })
    .await;
    let server = Launch::new(&portal.webhook_url()).start().await;
    let items: Vec<Value> = (1..=200)
        .map(|task| json!({"tool": "tasks_task_get_access", "arguments": {"taskId": task, "users": [503]}}))
        .collect();
    let whole = server.call("batch", json!({"items": items})).await;
    assert!(
        is_error(&whole),
        "the full answer is over the default limit"
    );
    assert!(text_of(&whole).contains("only_keys"), "{}", text_of(&whole));

    let before = portal.count();
    let result = server
        .call("batch", json!({"items": items, "only_keys": ["EDIT"]}))
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let answer = result.structured_content.unwrap();
    assert_eq!(answer["succeeded"], 200);
    assert_eq!(answer["requests"], 4);
    assert_eq!(portal.count() - before, 4);
    for item in answer["items"].as_array().unwrap() {
        assert_eq!(
            item["result"],
            json!({"allowedActions": {"503": {"EDIT": true}}})
        );
    }
    server.stop().await;
}

/// A batch whose smallest possible answer (each tool's smallest result by its output schema)
/// is over the limit is refused before any request, saying how many items fit; one that
/// might fit is sent.
#[tokio::test]
async fn a_batch_that_cannot_fit_is_refused_before_any_request() {
    let portal = TestPortal::start(|r| {
        let results: serde_json::Map<String, Value> = r.body["cmd"]
            .as_object()
            .unwrap()
            .keys()
            .map(|key| (key.clone(), json!({"allowedActions": {}})))
            .collect();
        ok(json!({"result": results, "result_error": []}))
    })
    .await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_MAX_RESULT_BYTES", "2000")
        .start()
        .await;
    let items = |n: u64| -> Vec<Value> {
        (1..=n)
            .map(|task| json!({"tool": "tasks_task_get_access", "arguments": {"taskId": task}}))
            .collect()
    };
    let refused = server
        .call("batch", json!({"items": items(100), "only_keys": ["EDIT"]}))
        .await;
    assert!(is_error(&refused));
    let text = text_of(&refused);
    assert!(
        text.contains("nothing was sent") && text.contains("at most 35 items"),
        "{text}"
    );
    assert_eq!(portal.count(), 0);

    let sent = server.call("batch", json!({"items": items(20)})).await;
    assert!(!is_error(&sent), "{}", text_of(&sent));
    assert_eq!(portal.count(), 1);
    server.stop().await;
}
