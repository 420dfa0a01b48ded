//! The gateway's pacing, retries, pauses and cancellation against an in-process portal, on
//! tokio's paused clock: waits of seconds take no time, and no answer depends on the machine's
//! speed. tests/it/limits.rs keeps one run of each behaviour through the real binary.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::json;

use super::{
    CallError, Gateway, Progress, RateLimiter,
    fake_portal::{
        FakePortal, Reply, lost, ok, read_args, refused, success, throttled, unused_client,
    },
};
use crate::bitrix::{Api, PortalError, TransportKind};

const READ: &str = "landing.site.getRights";
const WRITE: &str = "landing.site.setRights";

fn gateway(portal: &Arc<FakePortal>, rate: &str, timeout_secs: u64) -> Gateway {
    let limiter = Arc::new(RateLimiter::new(rate.parse().unwrap()));
    Gateway::over(
        unused_client(),
        portal.clone(),
        limiter,
        Duration::from_secs(timeout_secs),
    )
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn waiting(&self, message: String) {
        self.0.lock().unwrap().push(message);
    }
}

impl Recorder {
    fn any(&self, starts: &str) -> bool {
        self.0.lock().unwrap().iter().any(|m| m.contains(starts))
    }
}

async fn call(g: &Gateway, method: &str, write: bool) -> Result<serde_json::Value, CallError> {
    g.call(
        method,
        Api::Classic,
        &read_args(),
        write,
        g.deadline(),
        &Recorder::default(),
    )
    .await
    .map(|s| s.result)
}

fn attempts(result: &Result<serde_json::Value, CallError>) -> Option<u32> {
    match result {
        Err(CallError::Portal { attempts, .. }) => Some(*attempts),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_of_query_limit_refusals_is_absorbed_for_reads_and_writes() {
    let portal = FakePortal::first(3, throttled(), ok(json!(["read"])));
    let g = gateway(&portal, "20/5", 30);
    assert_eq!(call(&g, READ, false).await.unwrap(), json!(["read"]));
    assert_eq!(
        portal.count(),
        4,
        "three refusals, then the one that worked"
    );
    // The portal did not run a throttled write: it goes again too.
    let portal = FakePortal::first(2, throttled(), ok(json!(true)));
    let g = gateway(&portal, "20/5", 30);
    assert_eq!(call(&g, WRITE, true).await.unwrap(), json!(true));
    assert_eq!(portal.count_of(WRITE), 3);
}

#[tokio::test(start_paused = true)]
async fn endless_query_limit_refusals_give_up_after_six_retries() {
    let portal = FakePortal::always(throttled());
    let g = gateway(&portal, "20/5", 30);
    let result = call(&g, READ, false).await;
    assert_eq!(attempts(&result), Some(7), "{result:?}");
    assert_eq!(portal.count(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_is_retried_once_for_a_read_and_never_for_a_write() {
    let portal = FakePortal::first(1, lost(), ok(json!(["read"])));
    let g = gateway(&portal, "20/5", 30);
    assert_eq!(call(&g, READ, false).await.unwrap(), json!(["read"]));
    assert_eq!(portal.count(), 2);

    let portal = FakePortal::always(lost());
    let g = gateway(&portal, "20/5", 30);
    assert_eq!(attempts(&call(&g, READ, false).await), Some(2));
    assert_eq!(portal.count(), 2);

    // Even when a second try would succeed.
    let portal = FakePortal::first(1, lost(), ok(json!(true)));
    let g = gateway(&portal, "20/5", 30);
    assert_eq!(attempts(&call(&g, WRITE, true).await), Some(1));
    assert_eq!(portal.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_answered_after_the_deadline_is_abandoned_not_resent() {
    let portal = FakePortal::first(
        1,
        ok(json!(true)).after(Duration::from_secs(30)),
        ok(json!(true)),
    );
    let g = gateway(&portal, "20/5", 1);
    let result = call(&g, WRITE, true).await;
    assert!(
        matches!(
            result,
            Err(CallError::Portal {
                error: PortalError::Transport {
                    kind: TransportKind::Timeout,
                    ..
                },
                attempts: 1
            })
        ),
        "{result:?}"
    );
    assert_eq!((portal.count(), portal.abandoned()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_read_is_retried_once() {
    let timed_out = Reply {
        after: Duration::from_secs(2),
        answer: Err(PortalError::Transport {
            kind: TransportKind::Timeout,
            detail: "operation timed out".into(),
        }),
    };
    let portal = FakePortal::always(timed_out);
    let g = gateway(&portal, "20/5", 2);
    assert_eq!(attempts(&call(&g, READ, false).await), Some(2));
    assert_eq!(portal.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn progress_is_reported_for_rate_limit_waits() {
    let portal = FakePortal::always(ok(json!(["read"])));
    // One request per 2.5 s, no burst beyond one: of two calls sent together, one waits.
    let g = gateway(&portal, "0.4/1", 30);
    let progress = Recorder::default();
    let args = read_args();
    let one = || g.call(READ, Api::Classic, &args, false, g.deadline(), &progress);
    let (first, second) = tokio::join!(one(), one());
    assert!(first.is_ok() && second.is_ok());
    assert!(
        progress.any("Bitrix24 rate limit: waiting "),
        "{:?}",
        progress.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_abandons_its_request_and_sends_nothing_more() {
    // In flight: the request is dropped with the call.
    let portal = FakePortal::always(ok(json!([])).after(Duration::from_secs(20)));
    let g = Arc::new(gateway(&portal, "20/5", 30));
    let running = tokio::spawn({
        let g = g.clone();
        async move { call(&g, READ, false).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(portal.count(), 1);
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    assert_eq!(portal.abandoned(), 1);

    // During a backoff after refusals: nothing is sent after the cancel.
    let portal = FakePortal::always(throttled());
    let g = Arc::new(gateway(&portal, "2/1", 30));
    let running = tokio::spawn({
        let g = g.clone();
        async move { call(&g, READ, false).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.abort();
    let _ = running.await;
    let after_cancel = portal.count();
    assert!(after_cancel >= 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        portal.count(),
        after_cancel,
        "requests went on after the cancel"
    );
}

/// A success that says the method's run-time window resets in `reset_in` seconds.
fn ok_with_reset(result: serde_json::Value, reset_in: f64) -> Reply {
    let mut answer = success(result);
    (answer.operating, answer.finished_at) = (Some(470.0), Some(1_000.0));
    answer.operating_reset_at = Some(1_000.0 + reset_in);
    Reply {
        after: Duration::ZERO,
        answer: Ok(answer),
    }
}

/// `landing.site.getRights`: a success whose window resets in `reset_in` s, then a 429, then
/// (the window reset) a success; anything else answers at once.
fn paused_reads(reset_in: f64) -> Arc<FakePortal> {
    let reads = AtomicUsize::new(0);
    FakePortal::new(move |_, method| {
        if method != READ {
            return ok(json!(true));
        }
        match reads.fetch_add(1, Ordering::SeqCst) {
            0 => ok_with_reset(json!(["read"]), reset_in),
            1 => refused(429, "OPERATION_TIME_LIMIT"),
            _ if reset_in > 60.0 => refused(429, "OPERATION_TIME_LIMIT"),
            _ => ok(json!(["read", "edit"])),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_run_time_pause_holds_only_that_method() {
    let portal = paused_reads(1.0);
    let g = Arc::new(gateway(&portal, "20/5", 30));
    call(&g, READ, false).await.unwrap();
    let progress = Arc::new(Recorder::default());
    let waiting = tokio::spawn({
        let (g, progress) = (g.clone(), progress.clone());
        async move {
            let args = read_args();
            g.call(
                READ,
                Api::Classic,
                &args,
                false,
                g.deadline(),
                progress.as_ref(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another method goes on while getRights is paused.
    call(&g, "sonet.group.feature.access", false).await.unwrap();
    assert!(
        !waiting.is_finished(),
        "the paused read ended before the other"
    );
    let result = waiting.await.unwrap().unwrap();
    assert_eq!(result.result, json!(["read", "edit"]));
    assert_eq!(
        portal.count_of(READ),
        3,
        "first read, the 429, one retry after the reset"
    );
    assert!(progress.any("run-time limit of landing.site.getRights: waiting"));
}

#[tokio::test(start_paused = true)]
async fn a_long_run_time_pause_is_an_error_at_once_and_sends_nothing_more() {
    let portal = paused_reads(300.0);
    let g = gateway(&portal, "20/5", 30);
    call(&g, READ, false).await.unwrap();
    for _ in 0..2 {
        let result = call(&g, READ, false).await;
        assert!(
            matches!(result, Err(CallError::Paused { .. })),
            "{result:?}"
        );
    }
    assert_eq!(portal.count(), 2, "not called again until its reset");
    assert!(call(&g, "tasks.task.get", false).await.is_ok());
}
