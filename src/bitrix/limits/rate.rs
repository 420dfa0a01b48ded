//! The client-side model of the portal's leaky bucket.
//!
//! It mirrors Bitrix24's own bucket (a burst, then a steady drain) as a GCRA. A
//! `QUERY_LIMIT_EXCEEDED` says the portal's bucket is full right now, so the next request may
//! go once one unit has drained at the portal's rate; what the portal admitted until then
//! shows its burst, which may be smaller than the configured one. Only a refusal of a request
//! sent at that pace means someone else drains the same bucket: then the rate halves, once per
//! congestion episode, and is earned back after a run of successes. Every rate change
//! rescales the queue of slots already handed out.

use std::{
    fmt,
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::Limiter;

/// Successes in a row before the rate steps back up after a slowdown.
const RECOVERY_RUN: u32 = 10;
/// The slowest the limiter goes, as a fraction of the configured rate.
const MIN_FACTOR: f64 = 0.125;

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
    /// The burst in use: the configured one until the portal shows a smaller bucket.
    burst: f64,
    /// Requests the portal admitted, drained at the current rate, as of `admitted_at`: its
    /// level when it next says the bucket is full is the best guess of the portal's burst.
    admitted: f64,
    admitted_at: f64,
    /// When the portal last said its bucket was full. A refusal of a request sent before then
    /// belongs to the same congestion episode and changes nothing more.
    full_at: Option<f64>,
    successes: u32,
}

impl Bucket {
    pub fn new(limit: RateLimit, now: f64) -> Self {
        Self {
            tat: now,
            factor: 1.0,
            burst: f64::from(limit.burst),
            admitted: 0.0,
            admitted_at: now,
            full_at: None,
            successes: 0,
        }
    }

    fn interval(&self, limit: RateLimit) -> f64 {
        1.0 / (limit.per_second * self.factor)
    }

    fn tolerance(&self, limit: RateLimit) -> f64 {
        self.interval(limit) * (self.burst - 1.0)
    }

    /// Reserves the next slot if it opens by `latest`: the wait in seconds, or the wait it
    /// would have taken.
    pub fn reserve(&mut self, limit: RateLimit, now: f64, latest: f64) -> Result<f64, f64> {
        let tat = self.tat.max(now);
        let allowed_at = (tat - self.tolerance(limit)).max(now);
        if allowed_at > latest {
            return Err(allowed_at - now);
        }
        self.tat = tat + self.interval(limit);
        Ok(allowed_at - now)
    }

    pub fn on_success(&mut self, limit: RateLimit, now: f64) {
        self.admitted = self.drained(limit, now) + 1.0;
        self.admitted_at = now;
        // The portal took more than the burst in use: its bucket is bigger than guessed.
        let configured = f64::from(limit.burst);
        if self.admitted.ceil() > self.burst && self.burst < configured {
            let wider = self.admitted.ceil().min(configured);
            self.set_burst(limit, wider);
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

    /// The portal's bucket is full now: the next request may go once one unit has drained.
    pub fn on_throttled(&mut self, limit: RateLimit, sent_at: f64, now: f64) {
        self.successes = 0;
        if self.full_at.is_some_and(|full| sent_at < full) {
            // Sent before the last refusal was taken in: the same episode, already handled.
            return;
        }
        // Refused although sent at a pace that assumed a full bucket: someone else drains
        // it too. Slow down, once for this episode.
        if self.full_at.is_some() {
            self.set_factor(limit, (self.factor / 2.0).max(MIN_FACTOR), now);
        }
        self.full_at = Some(now);
        // The slots already handed out to waiting calls stay theirs; new ones come after them
        // and at least one interval from now.
        let queued = (self.tat - self.tolerance(limit) - now).max(0.0);
        let learned = self.drained(limit, now).round().clamp(1.0, self.burst);
        self.burst = learned;
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
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Duration, Duration> {
        let (n, l) = (self.secs(now), self.secs(latest));
        self.with(|b, limit| b.reserve(limit, n, l))
            .map(Duration::from_secs_f64)
            .map_err(Duration::from_secs_f64)
    }

    fn on_throttled(&self, sent_at: Instant, now: Instant) {
        let (s, n) = (self.secs(sent_at), self.secs(now));
        self.with(|b, limit| b.on_throttled(limit, s, n));
    }

    fn on_success(&self, now: Instant) {
        let n = self.secs(now);
        self.with(|b, limit| b.on_success(limit, n));
    }

    fn current_rate(&self) -> f64 {
        self.with(|b, limit| b.current_rate(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RateLimiter {
        fn reserve(&self, now: Instant) -> Duration {
            self.try_reserve(now, now + Duration::from_secs(86_400 * 365))
                .unwrap_or_else(|wait| wait)
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

    #[test]
    fn burst_then_steady_rate() {
        let limiter = RateLimiter::new("2/5".parse().unwrap());
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..8).map(|_| limiter.reserve(t0)).collect();
        assert!(waits[..5].iter().all(Duration::is_zero), "{waits:?}");
        assert_eq!(waits[5], Duration::from_millis(500));
        assert_eq!(waits[6], Duration::from_millis(1000));
        assert_eq!(waits[7], Duration::from_millis(1500));
    }

    #[test]
    fn refused_reservation_holds_no_slot() {
        let limiter = RateLimiter::new("1/1".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(limiter.try_reserve(t0, t0), Ok(Duration::ZERO));
        assert_eq!(limiter.try_reserve(t0, t0), Err(Duration::from_secs(1)));
        assert_eq!(limiter.try_reserve(t0, t0), Err(Duration::from_secs(1)));
        assert_eq!(
            limiter.try_reserve(t0, t0 + Duration::from_secs(1)),
            Ok(Duration::from_secs(1))
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < ms(2)
    }

    /// The case: 2/50 configured, a 2/s burst-5 portal, 20 calls at once.
    fn a_burst_refused_by_a_smaller_bucket() -> (RateLimiter, Instant) {
        let limiter = RateLimiter::new("2/50".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.reserve(t0).is_zero());
        }
        let back = t0 + ms(10);
        for _ in 0..5 {
            limiter.on_success(back);
        }
        for _ in 0..15 {
            limiter.on_throttled(t0, back);
        }
        (limiter, back)
    }

    #[test]
    fn after_a_refusal_the_next_request_goes_once_one_unit_drained() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        // Not tens of seconds: one interval, then the portal's pace, for all 15 retries.
        let waits: Vec<Duration> = (0..15).map(|_| limiter.reserve(now)).collect();
        for (i, wait) in waits.iter().enumerate() {
            assert!(close(*wait, ms(500 * (i as u64 + 1))), "{waits:?}");
        }
        // Fifteen concurrent refusals are one episode: no slowdown at all.
        assert_eq!(limiter.current_rate(), 2.0);
    }

    #[test]
    fn the_learned_burst_is_the_portals_after_an_idle_spell() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        let idle = now + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..7).map(|_| limiter.reserve(idle)).collect();
        assert!(waits[..5].iter().all(Duration::is_zero), "{waits:?}");
        assert!(
            close(waits[5], ms(500)) && close(waits[6], ms(1000)),
            "{waits:?}"
        );
    }

    #[test]
    fn a_refusal_at_the_portals_pace_slows_down_once_per_episode() {
        let (limiter, now) = a_burst_refused_by_a_smaller_bucket();
        let sent = now + limiter.reserve(now);
        let refused = sent + ms(20);
        // Several requests sent at that pace are refused at once: one halving, not several.
        for _ in 0..5 {
            limiter.on_throttled(sent, refused);
        }
        assert_eq!(limiter.current_rate(), 1.0);
        // A later episode halves again, down to the floor and no further.
        let mut t = refused;
        for _ in 0..10 {
            t += ms(50);
            limiter.on_throttled(t, t + ms(1));
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
        limiter.on_throttled(t0, t0);
        let sent = t0 + ms(100);
        limiter.on_throttled(sent, sent);
        assert_eq!(limiter.current_rate(), 2.0);
        // 3.6 requests were queued at 4/s (0.9 s); at 2/s they take 1.8 s, not more.
        let slowed = limiter.reserve(sent);
        assert!(close(slowed, ms(1800)), "{slowed:?}");
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
