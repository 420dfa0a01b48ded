//! The client-side model of the portal's leaky bucket.
//!
//! It mirrors Bitrix24's own bucket (a burst, then a steady drain) as a GCRA. The portal's
//! burst is not known at first: the configured one (50 by default) is only what most plans
//! allow, and other clients may share the bucket. So a fresh bucket starts with a small
//! allowance and grows it with every success, like TCP's slow start, up to the configured
//! burst; until then a call that does not fit is not given a far slot but asks again shortly,
//! so a growing allowance serves it at once. A `QUERY_LIMIT_EXCEEDED` says the portal's bucket
//! is full right now: what it admitted until then is its burst (learned, and kept), and the
//! next request may go once one unit has drained at the portal's rate. Only a refusal of a
//! request reserved after that means someone else drains the same bucket: then the rate
//! halves, once per congestion episode, and is earned back after a run of successes. Every
//! rate change rescales the queue of slots already handed out.

use std::{
    fmt,
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Grant, Limiter, Ticket};

/// Successes in a row before the rate steps back up after a slowdown.
const RECOVERY_RUN: u32 = 10;
/// The slowest the limiter goes, as a fraction of the configured rate.
const MIN_FACTOR: f64 = 0.125;
/// The allowance before the portal has shown its bucket. Small enough that the first round
/// fits any plan's bucket and the test portals' (5 and 10), so a fresh start is not refused.
const START_BURST: f64 = 4.0;
/// Each success widens the allowance by this much for the next round of slow start: the
/// requests sent per round double, so a portal with the default burst of 50 gets it after
/// four round trips (4, 8, 16, then the last 22 requests).
const GROWTH_PER_SUCCESS: f64 = 2.0;
/// How soon a call that does not fit the allowance during slow start asks again (answers in
/// its own process wake it sooner).
const ASK_AGAIN_SECS: f64 = 0.05;
/// A slow-start round whose answers have not all come back within this long is taken as
/// over: a process killed mid-round holds up the others for no longer.
const ROUND_EXPIRY_SECS: f64 = 1.0;
/// A slot that relies on the portal's drain is taken this much later (a fraction of the
/// interval, at most 100 ms): requests reach the portal with varying delays, and a request
/// that arrives a little earlier than the one before would find the bucket still full.
const SLACK_OF_INTERVAL: f64 = 0.2;
const MAX_SLACK_SECS: f64 = 0.1;
/// Seconds summed in floating point drift by far less than this; comparisons allow it.
const EPSILON: f64 = 1e-6;

/// `<per second>/<burst>`, e.g. `2/50` (most plans) or `5/250` (Enterprise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 50,
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.per_second, self.burst)
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || format!("{s:?} is not <per second>/<burst>, e.g. 2/50 or 5/250");
        let (rate, burst) = s.trim().split_once('/').ok_or_else(shape)?;
        let per_second: f64 = rate.trim().parse().map_err(|_| shape())?;
        let burst: u32 = burst.trim().parse().map_err(|_| shape())?;
        // The floor keeps the interval between requests a representable duration (1e-20
        // per second would be 3e12 years, and panicked when turned into one).
        if !(per_second.is_finite() && (0.001..=10_000.0).contains(&per_second)) {
            return Err(format!(
                "the rate in {s:?} must be from 0.001 to 10000 per second"
            ));
        }
        if !(1..=10_000).contains(&burst) {
            return Err(format!("the burst in {s:?} must be from 1 to 10000"));
        }
        Ok(Self { per_second, burst })
    }
}

/// The pacing state of one portal, in seconds on whatever clock the store uses (this
/// process's own, or Unix time when processes share it). Plain data, so a store can keep it
/// anywhere and apply the same arithmetic under its own lock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// GCRA's theoretical arrival time: `tat - now` is the bucket's level times the interval.
    tat: f64,
    /// Current rate as a fraction of the configured one (1.0 unless slowed down).
    factor: f64,
    /// The burst in use: the slow-start allowance, then the portal's as far as it is known.
    burst: f64,
    /// The portal's burst once known: shown by a refusal, or the configured one reached
    /// without any. None while slow start lasts. It outlives a stale state: the portal's
    /// bucket does not change size while nobody calls.
    #[serde(default)]
    known: Option<f64>,
    /// Requests the portal admitted, drained at the current rate, as of `admitted_at`: its
    /// level when it next says the bucket is full is the best guess of the portal's burst.
    admitted: f64,
    admitted_at: f64,
    /// When the portal last said its bucket was full.
    full_at: Option<f64>,
    /// Refusals taken in so far: a refusal of a slot handed out before the last one belongs
    /// to the same congestion episode and changes nothing more.
    #[serde(default)]
    episode: u64,
    /// Slow start goes in rounds: a round's allowance is fixed when it opens, and the next
    /// opens only once all its requests are answered. Answers of one round come back in any
    /// order, so growing the allowance with each success would let the successes send more
    /// before the round's refusals are taken in.
    #[serde(default)]
    round: Round,
    successes: u32,
}

/// The slow-start round in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Round {
    /// Successes since the allowance last grew: the next growth is twice this.
    confirmed: f64,
    /// A call found the allowance full since it last grew. Only then does it grow: a round
    /// that did not use its allowance (too few callers) has not shown the portal takes more,
    /// and growing on its successes let the next round send far past the portal's bucket.
    limited: bool,
    /// Requests of this round not answered yet, as of `changed_at`.
    in_flight: u32,
    changed_at: f64,
    /// A call did not fit this round's allowance: nobody else joins it.
    closed: bool,
}

impl Bucket {
    pub fn new(limit: RateLimit, now: f64) -> Self {
        let configured = f64::from(limit.burst);
        let start = START_BURST.min(configured);
        Self {
            tat: now,
            factor: 1.0,
            burst: start,
            known: (start >= configured).then_some(configured),
            admitted: 0.0,
            admitted_at: now,
            full_at: None,
            episode: 0,
            round: Round::default(),
            successes: 0,
        }
    }

    /// A fresh state for a bucket left alone long enough to have drained, keeping what is
    /// known of the portal's burst so nobody pays for slow start again.
    pub fn renewed(&self, limit: RateLimit, now: f64) -> Self {
        let mut fresh = Self::new(limit, now);
        // Slots handed out before are still judged against the episodes they came from.
        fresh.episode = self.episode;
        if let Some(known) = self.known.filter(|k| k.is_finite()) {
            let known = known.clamp(1.0, f64::from(limit.burst));
            fresh.known = Some(known);
            fresh.burst = known;
        }
        fresh
    }

    /// A state another process stored, read by one configured with `limit`: never more burst
    /// than this process was told the portal allows.
    pub fn within(mut self, limit: RateLimit) -> Self {
        let configured = f64::from(limit.burst);
        if !(self.burst.is_finite() && self.burst <= configured) {
            self.burst = configured;
        }
        self.known = self.known.map(|k| k.min(configured));
        self
    }

    /// Slow start: the allowance still grows with each success.
    fn starting(&self) -> bool {
        self.known.is_none()
    }

    /// Opens the next slow-start round once the last one is answered (or long gone); if a
    /// call found the allowance full, it first grows by twice the successes since it last
    /// grew. True when nothing is in flight.
    fn open_round(&mut self, limit: RateLimit, now: f64) -> bool {
        let round = &mut self.round;
        if round.in_flight > 0 && now - round.changed_at < ROUND_EXPIRY_SECS {
            return false;
        }
        round.in_flight = 0;
        round.closed = false;
        if round.limited {
            let configured = f64::from(limit.burst);
            self.burst = (self.burst + GROWTH_PER_SUCCESS * round.confirmed).min(configured);
            round.limited = false;
            round.confirmed = 0.0;
            if self.burst >= configured {
                self.known = Some(configured);
            }
        }
        true
    }

    /// A request of the slow-start round came back.
    fn settle(&mut self, now: f64) {
        self.round.in_flight = self.round.in_flight.saturating_sub(1);
        self.round.changed_at = now;
    }

    fn slack(&self, limit: RateLimit) -> f64 {
        (self.interval(limit) * SLACK_OF_INTERVAL).min(MAX_SLACK_SECS)
    }

    fn interval(&self, limit: RateLimit) -> f64 {
        1.0 / (limit.per_second * self.factor)
    }

    fn tolerance(&self, limit: RateLimit) -> f64 {
        self.interval(limit) * (self.burst - 1.0)
    }

    /// Reserves the next slot if it opens by `latest`: the wait in seconds, or the wait it
    /// would have taken. During slow start a call that does not fit the allowance reserves
    /// nothing and is told when to ask again.
    pub fn reserve(&mut self, limit: RateLimit, now: f64, latest: f64) -> Result<Grant<f64>, f64> {
        let idle = self.starting() && self.open_round(limit, now);
        let grant = self.reserve_once(limit, now, latest);
        if idle && self.starting() && matches!(grant, Ok(Grant::AskAgain(_))) {
            // Nothing in flight, and this call found the allowance full: it grows now, so a
            // caller alone (one call after another) never waits for slow start.
            self.open_round(limit, now);
            return self.reserve_once(limit, now, latest);
        }
        grant
    }

    fn reserve_once(&mut self, limit: RateLimit, now: f64, latest: f64) -> Result<Grant<f64>, f64> {
        let tat = self.tat.max(now);
        let opens = tat - self.tolerance(limit);
        // Within the burst nothing relies on the drain; beyond it, the slack absorbs the
        // varying delays on the way to the portal.
        let go = if opens <= now + EPSILON {
            now
        } else {
            opens + self.slack(limit)
        };
        if go > latest + EPSILON {
            return Err(go - now);
        }
        if self.starting() {
            if go > now || self.round.closed {
                self.round.closed = true;
                self.round.limited = true;
                let soon = if go > now { go - now } else { ASK_AGAIN_SECS };
                return Ok(Grant::AskAgain(soon.min(ASK_AGAIN_SECS)));
            }
            self.round.in_flight += 1;
            self.round.changed_at = now;
        }
        self.tat = tat + self.interval(limit);
        Ok(Grant::Go(go - now, Ticket(self.episode)))
    }

    pub fn on_success(&mut self, limit: RateLimit, now: f64) {
        self.admitted = self.drained(limit, now) + 1.0;
        self.admitted_at = now;
        let configured = f64::from(limit.burst);
        if self.starting() {
            self.round.confirmed += 1.0;
            self.settle(now);
        } else if self.admitted.ceil() > self.burst && self.burst < configured {
            // The portal took more than the burst in use: its bucket is bigger than learned.
            let wider = self.admitted.ceil().min(configured);
            self.set_burst(limit, wider);
            self.known = Some(wider);
        }
        if self.factor >= 1.0 {
            return;
        }
        self.successes += 1;
        if self.successes >= RECOVERY_RUN {
            self.successes = 0;
            self.set_factor(limit, (self.factor * 1.5).min(1.0), now);
        }
    }

    /// A request ended without telling anything about the bucket (its answer was lost).
    pub fn on_settled(&mut self, now: f64) {
        if self.starting() {
            self.settle(now);
        }
    }

    /// The portal's bucket is full now: the next request may go once one unit has drained.
    /// `ticket` came with the refused request's slot.
    pub fn on_throttled(&mut self, limit: RateLimit, ticket: Ticket, now: f64) {
        self.successes = 0;
        if ticket.0 < self.episode {
            // Reserved before the last refusal was taken in: the same episode, already handled.
            return;
        }
        self.episode += 1;
        // Refused although sent at a pace that assumed a full bucket: someone else drains
        // it too. Slow down, once for this episode.
        if self.full_at.is_some() {
            self.set_factor(limit, (self.factor / 2.0).max(MIN_FACTOR), now);
        }
        self.full_at = Some(now);
        // The slots already handed out to waiting calls stay theirs; new ones come after them
        // and at least one interval from now.
        let queued = (self.tat - self.tolerance(limit) - now).max(0.0);
        let learned = self
            .drained(limit, now)
            .round()
            .clamp(1.0, f64::from(limit.burst));
        self.burst = learned;
        self.known = Some(learned);
        self.tat = now + queued.max(self.interval(limit)) + self.tolerance(limit);
    }

    fn drained(&self, limit: RateLimit, now: f64) -> f64 {
        let elapsed = (now - self.admitted_at).max(0.0);
        (self.admitted - elapsed / self.interval(limit)).max(0.0)
    }

    /// A new rate rescales the schedule: the queue keeps its length in requests, not seconds.
    fn set_factor(&mut self, limit: RateLimit, factor: f64, now: f64) {
        let old = self.interval(limit);
        self.admitted = self.drained(limit, now);
        self.admitted_at = now;
        self.factor = factor;
        let level = (self.tat - now).max(0.0) / old;
        self.tat = now + level * self.interval(limit);
    }

    /// A new burst keeps the next slot where it is.
    fn set_burst(&mut self, limit: RateLimit, burst: f64) {
        let old = self.tolerance(limit);
        self.burst = burst;
        self.tat += self.tolerance(limit) - old;
    }

    pub fn current_rate(&self, limit: RateLimit) -> f64 {
        limit.per_second * self.factor
    }

    /// How far past `now` the latest time in the state lies (0 when none does); infinite
    /// when a time is not a number.
    pub fn ahead_of(&self, now: f64) -> f64 {
        let times = [
            self.tat,
            self.admitted_at,
            self.full_at.unwrap_or(now),
            self.round.changed_at,
        ];
        if times.iter().any(|t| !t.is_finite()) {
            return f64::INFINITY;
        }
        times.iter().fold(0.0, |ahead, t| ahead.max(t - now))
    }

    /// The furthest ahead of its writer's clock a state of this configuration can lie, when
    /// no call waits longer than `longest_wait` seconds: the queue that many seconds and a
    /// full burst make, stretched by every slowdown down to the slowest rate (a slowdown
    /// keeps the queue's length in requests, so its seconds grow). Anything further comes
    /// from a clock ahead of this one, or a damaged state.
    pub fn horizon(limit: RateLimit, longest_wait: f64) -> f64 {
        (longest_wait + f64::from(limit.burst) / limit.per_second) / MIN_FACTOR + 1.0
    }

    /// Left alone so long that the portal's bucket has surely drained: nothing in it still
    /// tells anything.
    pub fn is_stale(&self, now: f64, after: f64) -> bool {
        now - self
            .tat
            .max(self.admitted_at)
            .max(self.full_at.unwrap_or(f64::MIN))
            > after
            || !self.tat.is_finite()
    }
}

/// Seconds from `anchor` to `t`, negative when `t` is earlier.
pub fn seconds_since(anchor: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(anchor) {
        Some(d) => d.as_secs_f64(),
        None => -anchor.duration_since(t).as_secs_f64(),
    }
}

/// The bucket in this process's memory, shared by its concurrent calls. Each call reserves
/// the next slot under a lock and then sleeps outside it, so callers are served in the order
/// they arrived and nobody polls.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    anchor: Instant,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            anchor: Instant::now(),
            bucket: Mutex::new(Bucket::new(limit, 0.0)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Bucket, RateLimit) -> T) -> T {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut bucket, self.limit)
    }

    fn secs(&self, t: Instant) -> f64 {
        seconds_since(self.anchor, t)
    }
}

impl Limiter for RateLimiter {
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Grant, Duration> {
        let (n, l) = (self.secs(now), self.secs(latest));
        self.with(|b, limit| b.reserve(limit, n, l))
            .map(Grant::from_secs)
            .map_err(Duration::from_secs_f64)
    }

    fn on_throttled(&self, ticket: Ticket, now: Instant) {
        let n = self.secs(now);
        self.with(|b, limit| b.on_throttled(limit, ticket, n));
    }

    fn on_success(&self, now: Instant) {
        let n = self.secs(now);
        self.with(|b, limit| b.on_success(limit, n));
    }

    fn on_settled(&self, now: Instant) {
        let n = self.secs(now);
        self.with(|b, _| b.on_settled(n));
    }

    fn current_rate(&self) -> f64 {
        self.with(|b, limit| b.current_rate(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RateLimiter {
        /// A limiter past slow start, as if the portal had shown the configured burst.
        fn started(limit: &str) -> Self {
            let limiter = Self::new(limit.parse().unwrap());
            limiter.with(|b, limit| {
                b.burst = f64::from(limit.burst);
                b.known = Some(b.burst);
            });
            limiter
        }

        fn reserve_ticket(&self, now: Instant) -> (Duration, Ticket) {
            match self.try_reserve(now, now + Duration::from_secs(86_400 * 365)) {
                Ok(Grant::Go(wait, ticket)) => (wait, ticket),
                other => panic!("{other:?}"),
            }
        }

        fn reserve(&self, now: Instant) -> Duration {
            self.reserve_ticket(now).0
        }

        /// Reserves for `calls` callers at `now`: the waits of those that got a slot.
        fn flood(&self, calls: usize, now: Instant) -> Vec<Duration> {
            let far = now + Duration::from_secs(86_400);
            (0..calls)
                .filter_map(|_| match self.try_reserve(now, far) {
                    Ok(Grant::Go(wait, _)) => Some(wait),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn parses() {
        assert_eq!(
            "5/250".parse::<RateLimit>().unwrap(),
            RateLimit {
                per_second: 5.0,
                burst: 250
            }
        );
        assert_eq!("0.5/1".parse::<RateLimit>().unwrap().per_second, 0.5);
        for bad in ["", "2", "2/", "/50", "0/50", "-1/5", "2/0", "x/y", "inf/2"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < ms(2)
    }

    #[test]
    fn burst_then_steady_rate_with_slack_beyond_the_burst() {
        let limiter = RateLimiter::started("2/5");
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..8).map(|_| limiter.reserve(t0)).collect();
        assert!(waits[..5].iter().all(Duration::is_zero), "{waits:?}");
        // Every slot that relies on the drain comes 100 ms (a fifth of the interval) late.
        for (i, wait) in waits[5..].iter().enumerate() {
            assert!(close(*wait, ms(600 + 500 * i as u64)), "{waits:?}");
        }
    }

    #[test]
    fn refused_reservation_holds_no_slot() {
        let limiter = RateLimiter::new("1/1".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(
            limiter.try_reserve(t0, t0),
            Ok(Grant::Go(Duration::ZERO, Ticket(0)))
        );
        assert_eq!(limiter.try_reserve(t0, t0), Err(ms(1100)));
        assert_eq!(limiter.try_reserve(t0, t0), Err(ms(1100)));
        assert_eq!(
            limiter.try_reserve(t0, t0 + ms(1100)),
            Ok(Grant::Go(ms(1100), Ticket(0)))
        );
    }

    #[test]
    fn bucket_drains_over_time() {
        let limiter = RateLimiter::new("2/2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.reserve(t0).is_zero());
        assert!(limiter.reserve(t0).is_zero());
        assert!(!limiter.reserve(t0).is_zero());
        // Long after, the burst is available again.
        let later = t0 + Duration::from_secs(10);
        assert!(limiter.reserve(later).is_zero());
        assert!(limiter.reserve(later).is_zero());
    }

    /// A portal whose bucket is as big as configured (the default 2/50) gets all of it after
    /// four round trips of a flood, with no refusal, and the limiter then knows it.
    #[test]
    fn slow_start_reaches_the_configured_burst_in_four_rounds() {
        let limiter = RateLimiter::new(RateLimit::default());
        let mut now = Instant::now();
        let (mut sent, mut rounds) = (0, 0);
        while sent < 50 {
            let granted = limiter.flood(50 - sent, now);
            assert!(granted.iter().all(Duration::is_zero), "{granted:?}");
            sent += granted.len();
            rounds += 1;
            now += ms(20);
            for _ in &granted {
                limiter.on_success(now);
            }
        }
        assert_eq!((sent, rounds), (50, 4));
        // Slow start is over: the next caller gets a slot in the queue, not "ask again".
        assert!(limiter.reserve(now) > Duration::ZERO);
    }

    /// During slow start a caller that does not fit is told to ask again soon, and nothing
    /// is reserved for it: a success opens room for it at once.
    #[test]
    fn slow_start_asks_again_instead_of_queueing_far_ahead() {
        let limiter = RateLimiter::new(RateLimit::default());
        let t0 = Instant::now();
        assert_eq!(limiter.flood(20, t0).len(), 4);
        assert_eq!(
            limiter.try_reserve(t0, t0 + Duration::from_secs(60)),
            Ok(Grant::AskAgain(ms(50)))
        );
        // The next round opens only when this one is answered, whatever the answers' order:
        // a refusal still on its way must be taken in before more are sent.
        let t1 = t0 + ms(5);
        for _ in 0..3 {
            limiter.on_success(t1);
        }
        assert!(limiter.flood(20, t1).is_empty());
        limiter.on_settled(t1);
        // Three successes widen the allowance from 4 to 10; 4 are in the bucket already.
        assert_eq!(limiter.flood(20, t1).len(), 6);
    }

    /// A round its callers did not fill shows nothing about the portal's bucket: its
    /// successes do not grow the allowance. (They did, and the next round, from the other
    /// processes, sent 14 into a bucket with room for 2.)
    #[test]
    fn a_round_nobody_found_full_does_not_grow_the_allowance() {
        let limiter = RateLimiter::new(RateLimit::default());
        let t0 = Instant::now();
        assert_eq!(limiter.flood(20, t0).len(), 4);
        for _ in 0..4 {
            limiter.on_success(t0);
        }
        // The allowance grew to 12; only 6 callers come, and all are answered.
        assert_eq!(limiter.flood(6, t0).len(), 6);
        for _ in 0..6 {
            limiter.on_success(t0);
        }
        // Still 12: two more fit, not 14.
        assert_eq!(limiter.flood(20, t0).len(), 2);
    }

    /// One call after another never waits for slow start: a call that finds the allowance
    /// full with nothing in flight grows it at once.
    #[test]
    fn a_caller_alone_never_waits_for_slow_start() {
        let limiter = RateLimiter::new(RateLimit::default());
        let t0 = Instant::now();
        for _ in 0..50 {
            assert_eq!(limiter.reserve(t0), Duration::ZERO);
            limiter.on_success(t0);
        }
        limiter.with(|b, _| assert_eq!(b.known, Some(50.0)));
    }

    /// A process killed in the middle of a round holds the others up for a second at most.
    #[test]
    fn a_round_nobody_answers_is_over_after_a_second() {
        let limiter = RateLimiter::new(RateLimit::default());
        let t0 = Instant::now();
        assert_eq!(limiter.flood(20, t0).len(), 4);
        assert!(limiter.flood(20, t0 + ms(900)).is_empty());
        // A new round of 4, of which 2 have drained from the bucket by then.
        assert_eq!(limiter.flood(20, t0 + ms(1001)).len(), 2);
    }

    /// The case: 2/50 configured, a 2/s burst-5 portal, 20 calls at once. Slow start
    /// sends 4, then 8 of which the portal takes 1.
    fn a_burst_refused_by_a_smaller_bucket() -> (RateLimiter, Instant) {
        let limiter = RateLimiter::new("2/50".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(limiter.flood(20, t0).len(), 4);
        let back = t0 + ms(10);
        for _ in 0..4 {
            limiter.on_success(back);
        }
        assert_eq!(limiter.flood(16, back).len(), 8);
        let refused = back + ms(10);
        limiter.on_success(refused);
        for _ in 0..7 {
            limiter.on_throttled(Ticket(0), refused);
        }
        (limiter, refused)
    }

    #[test]
    fn a_refusal_shows_the_portals_burst_and_the_next_request_goes_once_one_unit_drained() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        limiter.with(|b, _| assert_eq!(b.known, Some(5.0)));
        // Not tens of seconds: one interval and the slack, then the portal's pace, for the 7
        // refused and the 8 not yet sent.
        let waits: Vec<Duration> = (0..15).map(|_| limiter.reserve(now)).collect();
        for (i, wait) in waits.iter().enumerate() {
            assert!(close(*wait, ms(600 + 500 * i as u64)), "{waits:?}");
        }
        // Seven concurrent refusals are one episode: no slowdown at all.
        assert_eq!(limiter.current_rate(), 2.0);
    }

    #[test]
    fn the_learned_burst_is_the_portals_after_an_idle_spell() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        let idle = now + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..7).map(|_| limiter.reserve(idle)).collect();
        assert!(waits[..5].iter().all(Duration::is_zero), "{waits:?}");
        assert!(
            close(waits[5], ms(600)) && close(waits[6], ms(1100)),
            "{waits:?}"
        );
    }

    /// A state renewed after it went stale starts with the portal's burst, not slow start.
    #[test]
    fn a_renewed_state_keeps_the_known_burst() {
        let limit = RateLimit::default();
        let mut bucket = Bucket::new(limit, 0.0);
        assert!(bucket.starting());
        bucket.reserve(limit, 0.0, 1.0).unwrap();
        bucket.on_throttled(limit, Ticket(0), 0.01);
        let renewed = bucket.renewed(limit, 1000.0);
        assert_eq!((renewed.known, renewed.burst), (Some(1.0), 1.0));
        let fresh = Bucket::new(limit, 0.0).renewed(limit, 1000.0);
        assert!(fresh.starting());
        assert_eq!(fresh.burst, START_BURST);
    }

    /// The single failure the benchmark saw with three processes: slots handed out on the
    /// belief of a burst of 50 go out after the portal's first refusal and are refused too.
    /// Judged by clock they looked like a second episode: the rate halved, the queue doubled,
    /// and a refused call's retry lay past its deadline. By ticket they are the same episode.
    #[test]
    fn a_slot_handed_out_before_the_first_refusal_is_of_that_episode() {
        let limiter = RateLimiter::started("2/50");
        let t0 = Instant::now();
        let tickets: Vec<Ticket> = (0..60).map(|_| limiter.reserve_ticket(t0).1).collect();
        limiter.on_throttled(tickets[10], t0 + ms(10));
        // The 51st slot goes out half a second later, into a bucket still full.
        limiter.on_throttled(tickets[50], t0 + ms(600));
        assert_eq!(limiter.current_rate(), 2.0);
        // So the 50 refused calls still fit their deadline (45 s of the default 60 s).
        let now = t0 + ms(600);
        let latest = t0 + Duration::from_secs(45);
        for _ in 0..50 {
            assert!(
                matches!(limiter.try_reserve(now, latest), Ok(Grant::Go(..))),
                "a retry was pushed past its deadline"
            );
        }
    }

    /// A process configured for a burst of 1 that reads a state stored by one configured for
    /// 3 paces by its own burst.
    #[test]
    fn a_shared_state_is_read_within_this_process_s_burst() {
        let wide: RateLimit = "2/3".parse().unwrap();
        let narrow: RateLimit = "2/1".parse().unwrap();
        let stored = Bucket::new(wide, 0.0);
        assert_eq!((stored.known, stored.burst), (Some(3.0), 3.0));
        let read = stored.within(narrow);
        assert_eq!((read.known, read.burst), (Some(1.0), 1.0));
        assert_eq!(stored.within(wide), stored);
    }

    #[test]
    fn a_refusal_at_the_portals_pace_slows_down_once_per_episode() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        let (wait, ticket) = limiter.reserve_ticket(now);
        let refused = now + wait + ms(20);
        // Several requests reserved at that pace are refused at once: one halving, not several.
        for _ in 0..5 {
            limiter.on_throttled(ticket, refused);
        }
        assert_eq!(limiter.current_rate(), 1.0);
        // A later episode halves again, down to the floor and no further.
        let mut t = refused;
        for _ in 0..10 {
            let (_, ticket) = limiter.reserve_ticket(t);
            t += ms(50);
            limiter.on_throttled(ticket, t);
        }
        assert_eq!(limiter.current_rate(), 2.0 * MIN_FACTOR);
    }

    #[test]
    fn a_rate_change_rescales_the_queue() {
        let limiter = RateLimiter::new("4/1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..4 {
            limiter.reserve(t0);
        }
        limiter.on_throttled(Ticket(0), t0);
        // A slot handed out after that refusal is refused too: someone else drains the bucket.
        let sent = t0 + ms(100);
        limiter.on_throttled(Ticket(1), sent);
        assert_eq!(limiter.current_rate(), 2.0);
        // 3.6 requests were queued at 4/s (0.9 s); at 2/s they take 1.8 s (and the slack),
        // not more.
        let slowed = limiter.reserve(sent);
        assert!(close(slowed, ms(1900)), "{slowed:?}");
        // Earning the rate back brings the next slot closer, never further.
        let before = limiter.try_reserve(sent, sent).unwrap_err();
        for _ in 0..RECOVERY_RUN {
            limiter.on_success(sent);
        }
        assert_eq!(limiter.current_rate(), 3.0);
        let after = limiter.try_reserve(sent, sent).unwrap_err();
        assert!(after < before, "{after:?} vs {before:?}");
    }
}
