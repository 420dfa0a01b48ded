//! The client-side leaky bucket, shared by every concurrent call of the process.
//!
//! It mirrors Bitrix24's own bucket (a burst, then a steady drain) as a GCRA: each call
//! reserves the next slot under a lock and then sleeps outside it, so callers are served in
//! the order they arrived and nobody polls. Other clients may share the portal's bucket, so a
//! `QUERY_LIMIT_EXCEEDED` still happens; then the limiter assumes the portal's bucket is full,
//! halves its own rate, and earns the rate back after a run of successes.

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

#[derive(Debug)]
struct State {
    /// GCRA's theoretical arrival time: when the bucket would be empty again.
    tat: Instant,
    /// Current rate as a fraction of the configured one (1.0 unless slowed down).
    factor: f64,
    successes: u32,
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            state: Mutex::new(State {
                tat: Instant::now(),
                factor: 1.0,
                successes: 0,
            }),
        }
    }

    fn interval(&self, factor: f64) -> Duration {
        Duration::from_secs_f64(1.0 / (self.limit.per_second * factor))
    }
}

impl Limiter for RateLimiter {
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Duration, Duration> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let interval = self.interval(s.factor);
        let tolerance = interval * (self.limit.burst - 1);
        let tat = s.tat.max(now);
        let allowed_at = tat.checked_sub(tolerance).unwrap_or(now).max(now);
        if allowed_at > latest {
            return Err(allowed_at - now);
        }
        s.tat = tat + interval;
        Ok(allowed_at - now)
    }

    /// Assumes no burst is left and slows down.
    fn on_throttled(&self, _sent_at: Instant, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.factor = (s.factor / 2.0).max(MIN_FACTOR);
        s.successes = 0;
        let interval = self.interval(s.factor);
        // A full bucket: the next slot opens one interval from now.
        let full = now + interval * self.limit.burst;
        s.tat = s.tat.max(full);
    }

    fn on_success(&self, _now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.factor >= 1.0 {
            return;
        }
        s.successes += 1;
        if s.successes >= RECOVERY_RUN {
            s.successes = 0;
            s.factor = (s.factor * 1.5).min(1.0);
        }
    }

    fn current_rate(&self) -> f64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.limit.per_second * s.factor
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

    #[test]
    fn throttling_slows_down_and_recovers() {
        let limiter = RateLimiter::new("4/4".parse().unwrap());
        let t0 = Instant::now();
        limiter.on_throttled(t0, t0);
        assert_eq!(limiter.current_rate(), 2.0);
        // No burst left right after a 503: the next call waits.
        assert!(!limiter.reserve(t0).is_zero());
        for _ in 0..RECOVERY_RUN {
            limiter.on_success(t0);
        }
        assert_eq!(limiter.current_rate(), 3.0);
        for _ in 0..RECOVERY_RUN {
            limiter.on_success(t0);
        }
        assert_eq!(limiter.current_rate(), 4.0);
        for _ in 0..10 {
            limiter.on_throttled(t0, t0);
        }
        assert_eq!(limiter.current_rate(), 4.0 * MIN_FACTOR);
    }
}
