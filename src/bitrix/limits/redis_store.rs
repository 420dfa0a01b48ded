//! The shared bucket in Redis, for server processes on several hosts that reach the portal
//! from one address. The pacing arithmetic stays in Rust ([`Bucket`]); Redis keeps the state
//! and one Lua script makes each change atomic: it stores the new state only if the stored
//! one is still the state it was computed from, so a lost race is simply computed again.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{Client, Script};

use self::bounded::Bounded as Connection;

use super::{
    rate::Bucket,
    shared::{MAX_STATE_BYTES, StateStore, StoreError, identity_hash},
};
use crate::bitrix::Identity;

/// Connecting and every command wait no longer: a pacing decision must not stall a call.
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, Redis is not tried again for this long, so a dead host costs one
/// timeout now and then, not one per call.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Lost races in a row before giving up on this change (then the process paces alone once).
const MAX_RACES: usize = 32;
/// A state nobody touches expires: the portal's bucket has long drained by then.
const EXPIRE_SECS: u64 = 600;

mod bounded;

const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
";

/// Reads the state, never more of it than ARGV[1] bytes: a longer value (nothing this server
/// writes) is deleted, and only its length comes back, so a stray value under the key does
/// not cost its size in this process's memory.
const BOUNDED_GET: &str = r"
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return size
end
return redis.call('GET', KEYS[1])
";

struct Link {
    connection: Option<Connection>,
    /// No attempt before this instant, after a failure.
    quiet_until: Option<Instant>,
}

pub struct RedisStore {
    client: Client,
    key: String,
    shown: String,
    script: Script,
    read: Script,
    link: Mutex<Link>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("at", &self.shown)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) and checks that Redis answers.
    pub fn connect(url: &str, identity: &Identity) -> Result<Self, StoreError> {
        let shown = without_password(url);
        let client = Client::open(url).map_err(|source| StoreError::Redis {
            at: shown.clone(),
            source,
        })?;
        let store = Self {
            client,
            key: format!(
                "{}:bucket:{:016x}",
                env!("CARGO_PKG_NAME"),
                identity_hash(identity)
            ),
            shown,
            script: Script::new(COMPARE_AND_SET),
            read: Script::new(BOUNDED_GET),
            link: Mutex::new(Link {
                connection: None,
                quiet_until: None,
            }),
        };
        let mut link = store.link.lock().unwrap_or_else(|e| e.into_inner());
        let mut connection = store.open()?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(|e| store.failed(e))
            .map_err(|e| store.refused_if_overflowed(&connection, e))?;
        link.connection = Some(connection);
        drop(link);
        Ok(store)
    }

    fn failed(&self, source: redis::RedisError) -> StoreError {
        StoreError::Redis {
            at: self.shown.clone(),
            source,
        }
    }

    /// `error`, or that a reply was too long when that is what it was.
    fn refused_if_overflowed(&self, connection: &Connection, error: StoreError) -> StoreError {
        if connection.overflowed() {
            return StoreError::ReplyTooLarge {
                at: self.shown.clone(),
                limit: bounded::MAX_REPLY_BYTES,
            };
        }
        error
    }

    fn open(&self) -> Result<Connection, StoreError> {
        Connection::connect(self.client.get_connection_info(), IO_TIMEOUT)
            .map_err(|e| self.failed(e))
    }

    fn exchange(
        &self,
        connection: &mut Connection,
        apply: &mut dyn FnMut(Option<Bucket>) -> Bucket,
    ) -> Result<(), StoreError> {
        for _ in 0..MAX_RACES {
            let stored = self.read_state(connection)?;
            let bucket = apply(stored.as_deref().and_then(|s| serde_json::from_str(s).ok()));
            // A bucket is numbers only: it always serialises.
            let next = serde_json::to_string(&bucket).unwrap_or_default();
            let stored_now: i64 = self
                .script
                .key(&self.key)
                .arg(stored.unwrap_or_default())
                .arg(next)
                .arg(EXPIRE_SECS)
                .invoke(connection)
                .map_err(|e| self.failed(e))?;
            if stored_now == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Races {
            at: self.shown.clone(),
            races: MAX_RACES,
        })
    }
}

impl RedisStore {
    /// The stored state as text, `None` when there is none (or it was too long to be one).
    fn read_state(&self, connection: &mut Connection) -> Result<Option<String>, StoreError> {
        let reply: redis::Value = self
            .read
            .key(&self.key)
            .arg(MAX_STATE_BYTES)
            .invoke(connection)
            .map_err(|e| self.failed(e))?;
        match reply {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(bytes) => Ok(String::from_utf8(bytes).ok()),
            redis::Value::Int(size) => {
                tracing::warn!(
                    store = %self.describe(),
                    size,
                    "the shared rate-limit state in Redis is {size} bytes, more than any state \
                     ({MAX_STATE_BYTES} at most): it was deleted unread and started afresh"
                );
                Ok(None)
            }
            other => Err(StoreError::Reply {
                at: self.shown.clone(),
                reply: format!("{other:?}"),
            }),
        }
    }
}

impl StateStore for RedisStore {
    fn update(&self, apply: &mut dyn FnMut(Option<Bucket>) -> Bucket) -> Result<(), StoreError> {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if link.quiet_until.is_some_and(|t| Instant::now() < t) {
            return Err(StoreError::Resting {
                at: self.shown.clone(),
            });
        }
        let mut connection = match link.connection.take() {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => c,
                Err(e) => {
                    link.quiet_until = Some(Instant::now() + RETRY_AFTER);
                    return Err(e);
                }
            },
        };
        match self.exchange(&mut connection, apply) {
            Ok(()) => {
                link.connection = Some(connection);
                link.quiet_until = None;
                Ok(())
            }
            Err(e) => {
                link.quiet_until = Some(Instant::now() + RETRY_AFTER);
                Err(self.refused_if_overflowed(&connection, e))
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} key {}", self.shown, self.key)
    }

    fn blocks(&self) -> bool {
        true
    }
}

/// The URL as it may be logged: any password replaced.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "the Redis URL".to_owned(),
    }
}
