//! One bucket per portal for every server process on this machine: Bitrix24 counts requests
//! per portal and source address, not per process, so three assistant sessions on one
//! webhook must not each believe they own the whole bucket.
//!
//! The state is a small JSON file per portal identity (host and webhook user), changed only
//! under an advisory lock on the file itself. The operating system drops such a lock when its
//! holder exits or is killed, so a crash never blocks another process; the lock is held for
//! one read and one write, never across a wait.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fs4::fs_std::FileExt;

use super::{
    Limiter,
    rate::{Bucket, RateLimit, RateLimiter, seconds_since},
};
use crate::bitrix::Identity;

/// A state left alone this long describes a bucket that has long drained: start afresh, so a
/// slowdown from an old episode does not outlive it.
const STALE_AFTER_SECS: f64 = 120.0;

/// Where the state files live when nothing else is configured: the user's runtime directory
/// (cleared at logout), else the state or cache directory.
pub fn default_dir() -> Option<PathBuf> {
    dirs::runtime_dir()
        .or_else(dirs::state_dir)
        .or_else(dirs::cache_dir)
        .map(|d| d.join(env!("CARGO_PKG_NAME")))
}

#[derive(Debug)]
pub struct FileLimiter {
    limit: RateLimit,
    path: PathBuf,
    /// This process's clock tied to Unix time once, so every process reads the same seconds.
    anchor: Instant,
    anchor_unix: f64,
    /// Used while the file cannot be, so a broken directory slows nothing down.
    fallback: RateLimiter,
    warned: AtomicBool,
}

impl FileLimiter {
    /// A limiter whose state is shared through `dir`; fails when `dir` cannot hold it.
    pub fn new(limit: RateLimit, dir: &Path, identity: &Identity) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let name = format!(
            "bucket-{:016x}.json",
            fnv1a(format!("{}\n{}", identity.host, identity.user_id).as_bytes())
        );
        let limiter = Self {
            limit,
            path: dir.join(name),
            anchor: Instant::now(),
            anchor_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            fallback: RateLimiter::new(limit),
            warned: AtomicBool::new(false),
        };
        // Proves the file can be opened, locked and written before any call relies on it.
        limiter.update(|_, _| ())?;
        Ok(limiter)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unix(&self, t: Instant) -> f64 {
        self.anchor_unix + seconds_since(self.anchor, t)
    }

    /// Reads the bucket, applies `f` and writes it back, all under the file's lock.
    fn update<T>(&self, f: impl FnOnce(&mut Bucket, RateLimit) -> T) -> std::io::Result<T> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        FileExt::lock_exclusive(&file)?;
        let result = self.update_locked(&mut file, f);
        let _ = FileExt::unlock(&file);
        result
    }

    fn update_locked<T>(
        &self,
        file: &mut File,
        f: impl FnOnce(&mut Bucket, RateLimit) -> T,
    ) -> std::io::Result<T> {
        let now = self.unix(Instant::now());
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut bucket = serde_json::from_str::<Bucket>(&text)
            .ok()
            .filter(|b| !b.is_stale(now, STALE_AFTER_SECS))
            .unwrap_or_else(|| Bucket::new(self.limit, now));
        let result = f(&mut bucket, self.limit);
        let text = serde_json::to_vec(&bucket).map_err(std::io::Error::other)?;
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(&text)?;
        Ok(result)
    }

    /// Runs `f` on the shared state, or on this process's own when the file fails.
    fn with<T>(
        &self,
        shared: impl FnOnce(&mut Bucket, RateLimit) -> T,
        local: impl FnOnce(&RateLimiter) -> T,
    ) -> T {
        match self.update(shared) {
            Ok(result) => result,
            Err(error) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        path = %self.path.display(),
                        %error,
                        "the shared rate-limit state is unusable: pacing this process alone until it works again"
                    );
                }
                local(&self.fallback)
            }
        }
    }
}

impl Limiter for FileLimiter {
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Duration, Duration> {
        let (n, l) = (self.unix(now), self.unix(latest));
        self.with(
            |b, limit| {
                b.reserve(limit, n, l)
                    .map(Duration::from_secs_f64)
                    .map_err(Duration::from_secs_f64)
            },
            |local| local.try_reserve(now, latest),
        )
    }

    fn on_success(&self, now: Instant) {
        let n = self.unix(now);
        self.with(|b, limit| b.on_success(limit, n), |l| l.on_success(now));
    }

    fn on_throttled(&self, sent_at: Instant, now: Instant) {
        let (s, n) = (self.unix(sent_at), self.unix(now));
        self.with(
            |b, limit| b.on_throttled(limit, s, n),
            |l| l.on_throttled(sent_at, now),
        );
    }

    fn current_rate(&self) -> f64 {
        self.with(|b, limit| b.current_rate(limit), RateLimiter::current_rate)
    }
}

/// FNV-1a: a file name that stays the same across builds and processes (std's hasher is
/// not promised to), and shows neither the host nor the user.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(host: &str) -> Identity {
        Identity {
            host: host.into(),
            user_id: "7".into(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "{}-{name}-{}-{}",
            env!("CARGO_PKG_NAME"),
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn two_limiters_on_one_portal_share_one_bucket() {
        let dir = temp_dir("share");
        let limit: RateLimit = "2/3".parse().unwrap();
        let a = FileLimiter::new(limit, &dir, &identity("a.bitrix24.com")).unwrap();
        let b = FileLimiter::new(limit, &dir, &identity("a.bitrix24.com")).unwrap();
        let other = FileLimiter::new(limit, &dir, &identity("b.bitrix24.com")).unwrap();
        assert_eq!(a.path(), b.path());
        assert_ne!(a.path(), other.path());
        let now = Instant::now();
        let far = now + Duration::from_secs(100);
        let waits: Vec<Duration> = [&a, &b, &a, &b]
            .iter()
            .map(|l| l.try_reserve(now, far).unwrap())
            .collect();
        // The burst of 3 is spent by both together; the fourth waits wherever it comes from.
        assert!(
            waits[..3].iter().all(|w| *w < Duration::from_millis(50)),
            "{waits:?}"
        );
        assert!(waits[3] > Duration::from_millis(400), "{waits:?}");
        assert!(
            other
                .try_reserve(now, now + Duration::from_millis(50))
                .is_ok()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_held_lock_dies_with_its_holder_and_a_broken_file_starts_afresh() {
        let dir = temp_dir("lock");
        let limit: RateLimit = "2/3".parse().unwrap();
        let a = FileLimiter::new(limit, &dir, &identity("a")).unwrap();
        {
            // Another holder takes the lock and goes away: closing the file releases it.
            let f = File::open(a.path()).unwrap();
            FileExt::lock_exclusive(&f).unwrap();
        }
        std::fs::write(a.path(), b"{not json").unwrap();
        let now = Instant::now();
        assert_eq!(a.try_reserve(now, now), Ok(Duration::ZERO));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unusable_directory_is_refused_up_front() {
        let dir = temp_dir("file");
        let not_a_dir = dir.join("plain");
        std::fs::write(&not_a_dir, b"").unwrap();
        assert!(FileLimiter::new("2/3".parse().unwrap(), &not_a_dir, &identity("a")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
