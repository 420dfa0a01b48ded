//! Staying inside Bitrix24's limits: every portal call goes through [`Gateway::call`], which
//! waits for the method's run-time budget and the shared rate limiter, calls once, and retries
//! exactly what [`retry::POLICY`] allows, all within twice the request timeout.

mod budget;
#[cfg(test)]
mod fake_portal;
#[cfg(test)]
mod gateway_tests;
mod rate;
mod redis_store;
mod retry;
mod shared;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use self::{
    budget::{Gate, MethodBudgets},
    retry::{Failure, Retry, classify, rule},
};
pub use self::{
    rate::{RateLimit, RateLimiter},
    redis_store::RedisStore,
    shared::{FileStore, SharedLimiter, default_dir},
};
use super::{Api, IdempotencyKey, Portal, PortalClient, PortalError, Success, TransportKind};

/// Waits shorter than this are not worth telling the client about.
const REPORT_AFTER: Duration = Duration::from_secs(1);
/// While a long wait goes on, progress is repeated this often so clients keep the call alive.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The longest pause for a method's run-time budget before answering "try again later".
const MAX_BUDGET_PAUSE: Duration = Duration::from_secs(20);

/// Receives "still waiting" messages for a call; the MCP server turns them into progress
/// notifications when the client asked for them.
pub trait Progress: Send + Sync {
    fn waiting(&self, message: String);
}

/// What a reservation gives a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant<T = Duration> {
    /// A slot is the call's: send after this wait; hand the ticket back if the portal
    /// refuses the request.
    Go(T, Ticket),
    /// Nothing is reserved yet (the limiter is still finding the portal's burst, and the
    /// allowance grows with every success): ask again after this wait.
    AskAgain(T),
}

/// Which congestion episode a slot was reserved in. A refusal is judged by what the limiter
/// knew when the slot was handed out, not by clocks: a refusal taken in while another
/// process waited for the shared state must not look like a new episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub(crate) u64);

impl Grant {
    fn from_secs(grant: Grant<f64>) -> Self {
        match grant {
            Grant::Go(s, ticket) => Self::Go(Duration::from_secs_f64(s), ticket),
            Grant::AskAgain(s) => Self::AskAgain(Duration::from_secs_f64(s)),
        }
    }
}

/// Paces the calls to one portal: the seam between the gateway and where the pacing state
/// lives. [`RateLimiter`] keeps it in this process, [`SharedLimiter`] shares it with every
/// process that uses the same [`StateStore`].
pub trait Limiter: Send + Sync + fmt::Debug {
    /// Reserves the next slot if it opens by `latest` and returns how long to wait for it
    /// (or when to ask again); otherwise reserves nothing and returns the wait it would have
    /// taken.
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Grant, Duration>;
    /// The portal answered a call.
    fn on_success(&self, now: Instant);
    /// A request ended without telling anything about the portal's bucket.
    fn on_settled(&self, now: Instant);
    /// The portal said its bucket is full (QUERY_LIMIT_EXCEEDED) for a request whose slot
    /// came with `ticket`.
    fn on_throttled(&self, ticket: Ticket, now: Instant);
    /// The current rate in calls per second, after any slowdown.
    fn current_rate(&self) -> f64;
    /// Whether a call waits on the network (Redis: up to its timeout when Redis is gone):
    /// then the gateway runs it on the blocking pool, so the server's one runtime thread never
    /// stalls. A file lock is held by others for one read and one write, less than the
    /// thread hop would cost, so the file store stays inline.
    fn blocks(&self) -> bool {
        false
    }
}

/// For callers that show no progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn waiting(&self, _message: String) {}
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("{error} (attempt {attempts})")]
    Portal { error: PortalError, attempts: u32 },
    /// The method's run-time budget is used up for longer than is worth waiting.
    #[error("run-time budget of {method} exhausted until unix {resume_unix}")]
    Paused {
        method: String,
        resume_unix: u64,
        wait: Duration,
    },
    /// The call's time ran out before this request could be sent (guard reads, waits or
    /// retries used it up).
    #[error("the call's deadline passed before {method} was sent")]
    Deadline { method: String },
    /// The rate-limiter queue is longer than the call's deadline allows it to wait.
    #[error("rate-limit queue too long ({wait:?})")]
    Queue { wait: Duration, rate: f64 },
}

/// A portal error met without any retry, e.g. one sub-call of a batch.
impl From<PortalError> for CallError {
    fn from(error: PortalError) -> Self {
        Self::Portal { error, attempts: 1 }
    }
}

#[derive(Debug)]
pub struct Gateway {
    portal: Arc<PortalClient>,
    /// Where requests go: the portal client itself, or a stand-in in tests.
    sender: Arc<dyn Portal>,
    limiter: Arc<dyn Limiter>,
    budgets: MethodBudgets,
    timeout: Duration,
    /// Wakes a call told to ask the limiter again when an answer came back; a call that
    /// then gets a slot wakes the next.
    answered: tokio::sync::Notify,
}

/// Now, on tokio's clock: the same as the system's, except in tests that pause it, where
/// every wait, deadline and limiter reading of a call then moves with the paused clock.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// One call under way: what it sends, by when, and how its attempts went so far.
struct Call<'a> {
    method: &'a str,
    api: Api,
    params: &'a Value,
    write: bool,
    deadline: Instant,
    /// A request needs time for its answer: a slot this close to the deadline is not taken.
    latest: Instant,
    key: Option<IdempotencyKey>,
    attempts: u32,
    retries: u32,
    last_error: Option<PortalError>,
    /// Told to ask again at least once since the last slot this call got.
    waited: bool,
}

impl Call<'_> {
    /// The error to end with when the call runs out of time or room: the last portal error
    /// if there was one.
    fn give_up(&mut self, otherwise: CallError) -> CallError {
        match self.last_error.take() {
            Some(error) => CallError::Portal {
                error,
                attempts: self.attempts,
            },
            None => otherwise,
        }
    }
}

/// What asking for a slot came to.
enum Slot {
    /// Send now, with this ticket.
    Go(Ticket),
    /// Ask again.
    Again,
}

impl Gateway {
    pub fn new(portal: PortalClient, limiter: Arc<dyn Limiter>, timeout: Duration) -> Self {
        let portal = Arc::new(portal);
        Self::over(portal.clone(), portal, limiter, timeout)
    }

    /// A gateway that sends through `sender` and reports `portal`'s credentials and secrets.
    pub(crate) fn over(
        portal: Arc<PortalClient>,
        sender: Arc<dyn Portal>,
        limiter: Arc<dyn Limiter>,
        timeout: Duration,
    ) -> Self {
        Self {
            portal,
            sender,
            limiter,
            budgets: MethodBudgets::default(),
            timeout,
            answered: tokio::sync::Notify::new(),
        }
    }

    pub fn portal(&self) -> &PortalClient {
        &self.portal
    }

    /// The deadline of a tool call starting now: everything it sends, guard reads, retries
    /// and waits included, ends by then.
    pub fn deadline(&self) -> Instant {
        now() + self.timeout * 2
    }

    /// Calls `method`, pacing and retrying by the policy, and gives up at `deadline`.
    /// `write` comes from the catalog (the tool is not read-only): a write is re-sent only
    /// when the portal certainly did not run it. `api` comes from the catalog too; a REST 3.0
    /// write carries one idempotency key on every attempt.
    pub async fn call(
        &self,
        method: &str,
        api: Api,
        params: &Value,
        write: bool,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Result<Success, CallError> {
        let mut call = Call {
            method,
            api,
            params,
            write,
            deadline,
            latest: deadline.checked_sub(self.timeout / 2).unwrap_or(deadline),
            key: IdempotencyKey::for_call(api, write),
            attempts: 0,
            retries: 0,
            last_error: None,
            waited: false,
        };
        loop {
            self.wait_for_budget(&call, progress).await?;
            let Slot::Go(ticket) = self.acquire(&mut call, progress).await? else {
                continue;
            };
            match self.send(&mut call).await {
                Ok(success) => {
                    self.after_success(method, &success).await;
                    return Ok(success);
                }
                Err(error) => self.after_failure(&mut call, error, ticket).await?,
            }
        }
    }

    /// Waits out the method's run-time budget, if it is used up for a while that is worth
    /// waiting and ends before the call must be sent.
    async fn wait_for_budget(
        &self,
        call: &Call<'_>,
        progress: &dyn Progress,
    ) -> Result<(), CallError> {
        let Gate::PausedUntil(until) = self.budgets.gate(call.method, now()) else {
            return Ok(());
        };
        let wait = until.saturating_duration_since(now());
        if wait > MAX_BUDGET_PAUSE || until > call.latest {
            return Err(CallError::Paused {
                method: call.method.to_owned(),
                resume_unix: unix_in(wait),
                wait,
            });
        }
        let what = format!("Bitrix24 run-time limit of {}", call.method);
        wait_reporting(&what, until, progress).await;
        Ok(())
    }

    /// Reserves a slot from the limiter and waits for it (or, told to ask again, waits for an
    /// answer or the time given). Fails when the call's time is up or the queue is too long.
    async fn acquire(
        &self,
        call: &mut Call<'_>,
        progress: &dyn Progress,
    ) -> Result<Slot, CallError> {
        let start = now();
        if start >= call.latest {
            let method = call.method.to_owned();
            return Err(call.give_up(CallError::Deadline { method }));
        }
        let latest = call.latest;
        let (wait, ticket) = match self.limiter(move |l| l.try_reserve(start, latest)).await {
            Ok(Grant::Go(wait, ticket)) => (wait, ticket),
            Ok(Grant::AskAgain(after)) => {
                // An answer in this process may open room at once; other processes'
                // answers are seen when the time is up.
                call.waited = true;
                let answered = self.answered.notified();
                tokio::select! {
                    () = answered => {}
                    () = tokio::time::sleep(after) => {}
                }
                return Ok(Slot::Again);
            }
            Err(wait) => {
                let rate = self.limiter(|l| l.current_rate()).await;
                return Err(call.give_up(CallError::Queue { wait, rate }));
            }
        };
        if std::mem::take(&mut call.waited) {
            // A round may have opened: pass the turn on to the next waiting call, so a round
            // fills one call after another without waking them all.
            self.answered.notify_one();
        }
        let jitter = if call.retries > 0 {
            Duration::from_millis(fastrand::u64(0..=250))
        } else {
            Duration::ZERO
        };
        let start_at = (start + wait + jitter).min(call.latest.max(start + wait));
        if start_at > start + REPORT_AFTER {
            wait_reporting(&waiting_for(call), start_at, progress).await;
        } else if start_at > now() {
            // Only when there is a wait: tokio's timer ticks in milliseconds, so even a zero
            // sleep would add about a millisecond to every call.
            tokio::time::sleep_until(start_at.into()).await;
        }
        Ok(Slot::Go(ticket))
    }

    /// Sends one attempt, cut off at the call's deadline.
    async fn send(&self, call: &mut Call<'_>) -> Result<Success, PortalError> {
        call.attempts += 1;
        let answer = self
            .sender
            .send(call.method, call.api, call.params, call.key.as_ref());
        tokio::time::timeout_at(call.deadline.into(), answer)
            .await
            .unwrap_or_else(|_| {
                Err(PortalError::Transport {
                    kind: TransportKind::Timeout,
                    detail: "the call's deadline (twice BITRIX24_TIMEOUT_SECS) passed".into(),
                })
            })
    }

    async fn after_success(&self, method: &str, success: &Success) {
        self.settle(|limiter| limiter.on_success(now())).await;
        tracing::debug!(method, operating = ?success.operating, "run-time budget used (s of 480)");
        self.budgets.record(
            method,
            success.operating,
            success.operating_reset_at,
            success.finished_at,
            now(),
        );
    }

    /// Tells the limiter and the budgets what the failure says, then decides: `Ok` to try
    /// again, or the error to end the call with.
    async fn after_failure(
        &self,
        call: &mut Call<'_>,
        error: PortalError,
        ticket: Ticket,
    ) -> Result<(), CallError> {
        let failure = classify(&error);
        match failure {
            Failure::RateLimited => {
                self.settle(move |limiter| limiter.on_throttled(ticket, now()))
                    .await;
            }
            Failure::RunTimeExhausted => {
                self.settle(|limiter| limiter.on_settled(now())).await;
                self.budgets.exhausted(call.method, now());
            }
            _ => self.settle(|limiter| limiter.on_settled(now())).await,
        }
        let retry = match rule(failure, call.write) {
            Retry::Never => false,
            Retry::Backoff { retries: max } => call.retries < max,
            Retry::AfterReset | Retry::Once => call.retries < 1,
        };
        let (method, attempt, write) = (call.method, call.attempts, call.write);
        tracing::info!(
            method,
            attempt,
            ?failure,
            write,
            retry,
            "portal call failed"
        );
        if !retry || now() >= call.latest {
            return Err(CallError::Portal {
                error,
                attempts: call.attempts,
            });
        }
        call.retries += 1;
        call.last_error = Some(error);
        Ok(())
    }
}

/// What a call waiting for its slot is waiting for, in words for the client.
fn waiting_for(call: &Call<'_>) -> String {
    match call.last_error.as_ref().map(classify) {
        Some(Failure::RateLimited) => {
            "Bitrix24 asked to slow down (QUERY_LIMIT_EXCEEDED): retrying".to_owned()
        }
        Some(_) => format!("retrying {}", call.method),
        None => "Bitrix24 rate limit".to_owned(),
    }
}

impl Gateway {
    /// Tells the limiter how a request ended (`f`), then wakes one call told to ask again:
    /// the answer may have opened room for it.
    async fn settle(&self, f: impl FnOnce(&dyn Limiter) + Send + 'static) {
        self.limiter(f).await;
        self.answered.notify_one();
    }

    /// Runs `f` on the limiter: at once when it never waits on I/O, else on the blocking pool.
    async fn limiter<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Limiter) -> T + Send + 'static,
    ) -> T {
        if !self.limiter.blocks() {
            return f(self.limiter.as_ref());
        }
        let limiter = self.limiter.clone();
        match tokio::task::spawn_blocking(move || f(limiter.as_ref())).await {
            Ok(value) => value,
            // A blocking task is only lost to a panic (passed on) or to a runtime shutting
            // down, when no call is waiting for it any more.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

/// Sleeps until `until`, telling `progress` what it waits for: at once, then every few seconds.
async fn wait_reporting(what: &str, until: Instant, progress: &dyn Progress) {
    loop {
        let left = until.saturating_duration_since(now());
        if left.is_zero() {
            return;
        }
        progress.waiting(format!("{what}: waiting {} s", left.as_secs_f64().ceil()));
        tokio::time::sleep(left.min(REPORT_EVERY)).await;
    }
}

fn unix_in(wait: Duration) -> u64 {
    SystemTime::now()
        .checked_add(wait)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// `HH:MM:SS UTC` for a Unix time, for messages the model relays to a person.
pub fn clock_utc(unix: u64) -> String {
    let day = unix % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        (day % 3600) / 60,
        day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, mpsc};

    use super::*;
    use crate::bitrix::WebhookUrl;

    /// A store that waits on something only another task of the same runtime provides.
    #[derive(Debug)]
    struct Waiting(Mutex<mpsc::Receiver<()>>);

    impl Limiter for Waiting {
        fn try_reserve(&self, _now: Instant, _latest: Instant) -> Result<Grant, Duration> {
            let receiver = self.0.lock().unwrap();
            match receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(()) => Ok(Grant::Go(Duration::ZERO, Ticket(0))),
                Err(_) => Err(Duration::MAX),
            }
        }
        fn on_success(&self, _now: Instant) {}
        fn on_settled(&self, _now: Instant) {}
        fn on_throttled(&self, _ticket: Ticket, _now: Instant) {}
        fn current_rate(&self) -> f64 {
            1.0
        }
        fn blocks(&self) -> bool {
            true
        }
    }

    /// The server runs on one runtime thread: a limiter waiting on Redis must not hold it,
    /// or every other call (here, the one that would release it) stops too.
    #[tokio::test(flavor = "current_thread")]
    async fn a_limiter_that_blocks_runs_off_the_runtime_thread() {
        let webhook = WebhookUrl::parse("http://127.0.0.1:9/rest/7/abcdefgh12345678/").unwrap();
        let client = PortalClient::new(Arc::new(webhook), Duration::from_secs(5));
        let (release, waiting) = mpsc::channel();
        let gateway = Gateway::new(
            client,
            Arc::new(Waiting(Mutex::new(waiting))),
            Duration::from_secs(5),
        );
        tokio::spawn(async move { release.send(()).unwrap() });
        let now = Instant::now();
        let reserved = gateway
            .limiter(move |limiter| limiter.try_reserve(now, now))
            .await;
        assert_eq!(reserved, Ok(Grant::Go(Duration::ZERO, Ticket(0))));
    }
}
