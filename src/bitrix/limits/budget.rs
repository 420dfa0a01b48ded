//! Bitrix24's per-method run-time budget (480 s of server time per 10 minutes).
//!
//! Each success reports `time.operating` (seconds used) and `time.operating_reset_at` (when
//! the window resets, on the portal's clock). A 429 OPERATION_TIME_LIMIT pauses that method
//! alone until the reset plus a second; other methods go on.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Past the reset, so the portal's window has surely rolled over.
const RESET_MARGIN: Duration = Duration::from_secs(1);
/// How long to pause when the portal never told us its reset time (the JS SDK's minimum).
const UNKNOWN_RESET_PAUSE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default)]
struct MethodState {
    operating: f64,
    /// When the window resets, as a local instant (portal clock skew removed).
    reset_at: Option<Instant>,
    paused_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct MethodBudgets {
    methods: Mutex<HashMap<String, MethodState>>,
}

/// What the budget says about calling a method now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Paused until this instant.
    PausedUntil(Instant),
}

impl MethodBudgets {
    /// Records what a success said. `reset_at_unix` is on the portal's clock, so it is measured
    /// from the portal's own `time.finish` when given, which removes any clock skew.
    pub fn record(
        &self,
        method: &str,
        operating: Option<f64>,
        reset_at_unix: Option<f64>,
        portal_now_unix: Option<f64>,
        now: Instant,
    ) {
        let mut map = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let state = map.entry(method.to_ascii_lowercase()).or_default();
        if let Some(op) = operating {
            state.operating = op;
        }
        if let Some(reset) = reset_at_unix {
            let portal_now = portal_now_unix.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default()
            });
            let ahead = (reset - portal_now).clamp(0.0, 600.0);
            state.reset_at = Some(now + Duration::from_secs_f64(ahead));
        }
        if state.paused_until.is_some_and(|p| p <= now) {
            state.paused_until = None;
        }
    }

    /// The method hit OPERATION_TIME_LIMIT: pause it until its window resets.
    pub fn exhausted(&self, method: &str, now: Instant) -> Instant {
        let mut map = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let state = map.entry(method.to_ascii_lowercase()).or_default();
        let until = match state.reset_at {
            Some(reset) if reset > now => reset + RESET_MARGIN,
            _ => now + UNKNOWN_RESET_PAUSE,
        };
        state.paused_until = Some(until);
        until
    }

    pub fn gate(&self, method: &str, now: Instant) -> Gate {
        let map = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        match map
            .get(&method.to_ascii_lowercase())
            .and_then(|s| s.paused_until)
        {
            Some(until) if until > now => Gate::PausedUntil(until),
            _ => Gate::Open,
        }
    }

    /// Seconds of server time the method used in the current window, as last reported.
    #[cfg(test)]
    pub fn operating(&self, method: &str) -> Option<f64> {
        let map = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&method.to_ascii_lowercase()).map(|s| s.operating)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn pauses_one_method_until_reset() {
        let b = MethodBudgets::default();
        let now = Instant::now();
        b.record(
            "tasks.task.getaccess",
            Some(470.0),
            Some(unix_now() + 5.0),
            None,
            now,
        );
        // A portal clock an hour ahead changes nothing: the reset is measured from its `finish`.
        b.record(
            "landing.site.getRights",
            None,
            Some(unix_now() + 3605.0),
            Some(unix_now() + 3600.0),
            now,
        );
        let skewed = b.exhausted("landing.site.getRights", now) - now;
        assert!(
            skewed > Duration::from_secs(5) && skewed < Duration::from_secs(7),
            "{skewed:?}"
        );
        assert_eq!(b.operating("tasks.task.getaccess"), Some(470.0));
        let until = b.exhausted("tasks.task.getaccess", now);
        let wait = until - now;
        assert!(
            wait > Duration::from_secs(5) && wait < Duration::from_secs(7),
            "{wait:?}"
        );
        assert_eq!(
            b.gate("TASKS.TASK.GETACCESS", now),
            Gate::PausedUntil(until)
        );
        assert_eq!(b.gate("sonet_group.feature.access", now), Gate::Open);
        assert_eq!(b.gate("tasks.task.getaccess", until), Gate::Open);
    }

    #[test]
    fn unknown_reset_pauses_briefly() {
        let b = MethodBudgets::default();
        let now = Instant::now();
        assert_eq!(b.exhausted("x", now) - now, UNKNOWN_RESET_PAUSE);
    }
}
