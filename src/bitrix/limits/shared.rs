//! One bucket per portal for every server process on this machine: Bitrix24 counts requests
//! per portal and source address, not per process, so three assistant sessions on one
//! webhook must not each believe they own the whole bucket.
//!
//! The state is a small JSON file per portal identity (host and webhook user), changed only
//! under an advisory lock on the file itself. The operating system drops such a lock when its
//! holder exits or is killed, so a crash never blocks another process; the lock is held for
//! one read and one write, never across a wait.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fs4::fs_std::FileExt;

use super::{
    Grant, Limiter, Ticket,
    rate::{Bucket, RateLimit, RateLimiter, seconds_since},
};
use crate::{bitrix::Identity, private_files};

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

/// Why a shared state could not be read or written; the limiter then paces this process
/// alone until the store works again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state file (or its folder) could not be used.
    #[error(transparent)]
    File(#[from] std::io::Error),
    /// Redis could not be reached, or refused a command.
    #[error("{at}: {source}")]
    Redis {
        at: String,
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered something no command here answers.
    #[error("{at}: unexpected reply to reading the state: {reply}")]
    Reply { at: String, reply: String },
    /// Redis (or something at its URL) answered more than any command here answers.
    #[error("{at}: a reply longer than {limit} bytes, more than any command here answers")]
    ReplyTooLarge { at: String, limit: u64 },
    /// Other processes changed the state every time this one tried.
    #[error("{at}: {races} lost races in a row")]
    Races { at: String, races: usize },
    /// Redis failed a moment ago and is left alone for a while.
    #[error("{at} failed a moment ago")]
    Resting { at: String },
    /// The store answered without ever reading the state.
    #[error("the store did not read the state")]
    NotRead,
}

/// Where a shared bucket is kept. `update` reads it (None when absent or unreadable), lets
/// `apply` compute the new state, and stores that, atomically with respect to every other
/// process using the same store.
pub trait StateStore: Send + Sync + fmt::Debug {
    fn update(&self, apply: &mut dyn FnMut(Option<Bucket>) -> Bucket) -> Result<(), StoreError>;
    /// Where the state is, for logs.
    fn describe(&self) -> String;
    /// Whether an update waits on the network: see [`Limiter::blocks`].
    fn blocks(&self) -> bool {
        false
    }
}

/// A [`Limiter`] whose state lives in a [`StateStore`], with this process's own bucket to
/// fall back on while the store fails, so pacing never stops the server.
#[derive(Debug)]
pub struct SharedLimiter {
    limit: RateLimit,
    store: Box<dyn StateStore>,
    /// How far ahead of this process's clock a stored state may lie and still be believed.
    horizon: f64,
    fallback: RateLimiter,
    failing: AtomicBool,
}

/// The most of a stored state read: one is about 300 bytes, and a store holding more (a
/// damaged file, a stray value under the key) must not cost its size in memory.
pub const MAX_STATE_BYTES: u64 = 4096;

impl SharedLimiter {
    /// A limiter on `store` for calls that wait at most `longest_wait` for their slot;
    /// fails when the store cannot be used right now.
    pub fn new(
        limit: RateLimit,
        longest_wait: Duration,
        store: Box<dyn StateStore>,
    ) -> Result<Self, StoreError> {
        let limiter = Self {
            limit,
            store,
            horizon: Bucket::horizon(limit, longest_wait.as_secs_f64()),
            fallback: RateLimiter::new(limit),
            failing: AtomicBool::new(false),
        };
        // Proves the store can be read and written before any call relies on it.
        limiter.update(|_, _, _| ())?;
        Ok(limiter)
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// `f` may run more than once when a store loses a race; only the stored run's result
    /// is returned. `now` and the instants `f` is given are read in Unix time, from the wall
    /// clock at each change rather than tied to it once: this process's monotonic clock
    /// stops while the machine sleeps, and one tied at start fell behind every other process
    /// by the time slept, so the states they wrote looked far in the future to it.
    fn update<T>(
        &self,
        f: impl Fn(&mut Bucket, RateLimit, &UnixClock) -> T,
    ) -> Result<T, StoreError> {
        let clock = UnixClock::now();
        let now = clock.at(clock.instant);
        let mut result = None;
        let mut reset = None;
        self.store.update(&mut |stored| {
            reset = None;
            let mut bucket = match stored {
                Some(b) if b.is_stale(now, STALE_AFTER_SECS) => b.renewed(self.limit, now),
                Some(b) if b.ahead_of(now) > self.horizon => {
                    reset = Some(b.ahead_of(now));
                    b.renewed(self.limit, now)
                }
                Some(b) => b.within(self.limit),
                None => Bucket::new(self.limit, now),
            };
            result = Some(f(&mut bucket, self.limit, &clock));
            bucket
        })?;
        if let Some(ahead) = reset {
            tracing::warn!(
                store = %self.describe(),
                ahead_secs = ahead.round(),
                horizon_secs = self.horizon.round(),
                "the shared rate-limit state lies further ahead of this process's clock than any call can \
                 have queued: another process's clock is ahead, or the state is damaged; it was started afresh"
            );
        }
        result.ok_or(StoreError::NotRead)
    }

    /// Runs `f` on the shared state, or on this process's own while the store fails.
    fn with<T>(
        &self,
        shared: impl Fn(&mut Bucket, RateLimit, &UnixClock) -> T,
        local: impl FnOnce(&RateLimiter) -> T,
    ) -> T {
        match self.update(shared) {
            Ok(result) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(store = %self.describe(), "the shared rate-limit state works again");
                }
                result
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        store = %self.describe(),
                        %error,
                        "the shared rate-limit state is unusable: pacing this process alone until it works again"
                    );
                }
                local(&self.fallback)
            }
        }
    }
}

/// This process's monotonic clock read against the wall clock at one moment.
struct UnixClock {
    instant: Instant,
    unix: f64,
}

impl UnixClock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    fn at(&self, t: Instant) -> f64 {
        self.unix + seconds_since(self.instant, t)
    }
}

impl Limiter for SharedLimiter {
    fn try_reserve(&self, now: Instant, latest: Instant) -> Result<Grant, Duration> {
        self.with(
            |b, limit, clock| {
                b.reserve(limit, clock.at(now), clock.at(latest))
                    .map(Grant::from_secs)
                    .map_err(Duration::from_secs_f64)
            },
            |local| local.try_reserve(now, latest),
        )
    }

    fn on_success(&self, now: Instant) {
        self.with(
            |b, limit, clock| b.on_success(limit, clock.at(now)),
            |l| l.on_success(now),
        );
    }

    fn on_settled(&self, now: Instant) {
        self.with(
            |b, _, clock| b.on_settled(clock.at(now)),
            |l| l.on_settled(now),
        );
    }

    fn on_throttled(&self, ticket: Ticket, now: Instant) {
        self.with(
            |b, limit, clock| b.on_throttled(limit, ticket, clock.at(now)),
            |l| l.on_throttled(ticket, now),
        );
    }

    fn current_rate(&self) -> f64 {
        self.with(
            |b, limit, _| b.current_rate(limit),
            RateLimiter::current_rate,
        )
    }

    fn blocks(&self) -> bool {
        self.store.blocks()
    }
}

/// The state in a small JSON file per portal, changed under an advisory lock on the file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path, identity: &Identity) -> Result<Self, StoreError> {
        private_files::create_dir(dir)?;
        Ok(Self {
            path: dir.join(format!("bucket-{:016x}.json", identity_hash(identity))),
        })
    }

    fn update_io(&self, apply: &mut dyn FnMut(Option<Bucket>) -> Bucket) -> std::io::Result<()> {
        let mut file = private_files::open(&self.path, OpenOptions::new().read(true).write(true))?;
        FileExt::lock_exclusive(&file)?;
        let result = self.rewrite(&mut file, apply);
        let _ = FileExt::unlock(&file);
        result
    }

    fn rewrite(
        &self,
        file: &mut File,
        apply: &mut dyn FnMut(Option<Bucket>) -> Bucket,
    ) -> std::io::Result<()> {
        let mut text = Vec::new();
        Read::by_ref(file)
            .take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut text)?;
        let stored = if text.len() as u64 > MAX_STATE_BYTES {
            tracing::warn!(
                path = %self.path.display(),
                "the shared rate-limit state file is over {MAX_STATE_BYTES} bytes, more than any state: it was started afresh"
            );
            None
        } else {
            serde_json::from_slice(&text).ok()
        };
        let bucket = apply(stored);
        let text = serde_json::to_vec(&bucket).map_err(std::io::Error::other)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&text)?;
        // Cut what is left of a longer old state after writing, not to zero before it: ext4
        // flushes a file truncated to zero when it is closed (and discards its block), which
        // cost ~1 ms of every start and of every call.
        file.set_len(text.len() as u64)
    }
}

impl StateStore for FileStore {
    fn update(&self, apply: &mut dyn FnMut(Option<Bucket>) -> Bucket) -> Result<(), StoreError> {
        Ok(self.update_io(apply)?)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The name of a portal's shared state: the same in every process, showing neither host nor user.
pub fn identity_hash(identity: &Identity) -> u64 {
    fnv1a(format!("{}\n{}", identity.host, identity.user_id).as_bytes())
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

    fn file_limiter(limit: RateLimit, dir: &Path, host: &str) -> Result<SharedLimiter, StoreError> {
        let store = FileStore::new(dir, &identity(host))?;
        SharedLimiter::new(limit, Duration::from_secs(60), Box::new(store))
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
        let a = file_limiter(limit, &dir, "a.bitrix24.com").unwrap();
        let b = file_limiter(limit, &dir, "a.bitrix24.com").unwrap();
        let other = file_limiter(limit, &dir, "b.bitrix24.com").unwrap();
        assert_eq!(a.describe(), b.describe());
        assert_ne!(a.describe(), other.describe());
        let now = Instant::now();
        let far = now + Duration::from_secs(100);
        let waits: Vec<Duration> = [&a, &b, &a, &b]
            .iter()
            .map(|l| match l.try_reserve(now, far) {
                Ok(Grant::Go(wait, _)) => wait,
                other => panic!("{other:?}"),
            })
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
        let a = file_limiter(limit, &dir, "a").unwrap();
        {
            // Another holder takes the lock and goes away: closing the file releases it.
            let f = File::open(a.describe()).unwrap();
            FileExt::lock_exclusive(&f).unwrap();
        }
        std::fs::write(a.describe(), b"{not json").unwrap();
        let now = Instant::now();
        assert_eq!(
            a.try_reserve(now, now),
            Ok(Grant::Go(Duration::ZERO, Ticket(0)))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_state_from_the_future_or_too_large_is_started_afresh() {
        let dir = temp_dir("future");
        let limit: RateLimit = "2/3".parse().unwrap();
        let a = file_limiter(limit, &dir, "a").unwrap();
        let now = Instant::now();
        let unix = UnixClock::now().at(now);
        // A state whose queue reaches an hour past this clock: no call of this configuration
        // could have queued that, and no call waits for it.
        let mut future = Bucket::new(limit, unix + 3600.0);
        future.reserve(limit, unix + 3600.0, unix + 3600.0).unwrap();
        std::fs::write(a.describe(), serde_json::to_vec(&future).unwrap()).unwrap();
        assert_eq!(
            a.try_reserve(now, now),
            Ok(Grant::Go(Duration::ZERO, Ticket(0)))
        );
        let stored: Bucket = serde_json::from_slice(&std::fs::read(a.describe()).unwrap()).unwrap();
        assert!(stored.ahead_of(unix) < 10.0, "{stored:?}");
        // A file far larger than any state is not read whole, and is replaced.
        std::fs::write(a.describe(), vec![b' '; 1 << 20]).unwrap();
        assert!(a.try_reserve(now, now).is_ok());
        assert!(std::fs::metadata(a.describe()).unwrap().len() < MAX_STATE_BYTES);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unusable_directory_is_refused_up_front() {
        let dir = temp_dir("file");
        let not_a_dir = dir.join("plain");
        std::fs::write(&not_a_dir, b"").unwrap();
        assert!(FileStore::new(&not_a_dir, &identity("a")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
