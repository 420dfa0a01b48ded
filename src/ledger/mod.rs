//! The ledger: a journal of every write this server sends, in an SQLite file that several
//! server processes share. A row is written before the call is sent and completed after, so
//! a crash in between leaves an `unknown` row, never a missing one.
//!
//! SQLite blocks: another process may hold the file's lock, and this one then waits (up to
//! the busy timeout) for it. So every statement runs on tokio's blocking pool, through
//! [`Ledger::write`] and [`Ledger::read`], never on the server's one runtime thread: a slow
//! or locked file delays only the call that needs it.

mod approvals;
mod changes;
mod people;
mod reserve;
mod schema;
mod unusable;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use rusqlite::Connection;
use serde_json::Value;

use self::{
    changes::{Finished, NewRow},
    reserve::Reserve,
};
use crate::{
    bitrix::Identity,
    pipeline::{
        BeforeFuture, CallHook, CallInfo, FailureKind, HistoryQuery, HookFuture, Journal, Known,
        ObjectRef, Outcome, ToolFailure,
    },
    private_files,
};

pub use self::people::{ClientRow, TokenKind, TokenRow};
pub use self::unusable::Unusable;

/// The variable that names the ledger's file, or `off`.
pub const LEDGER_ENV: &str = "BITRIX24_LEDGER";

/// How long a statement waits for another process that holds the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the ledger lives when `BITRIX24_LEDGER` is not set: the user's state directory
/// (`~/.local/state` on Linux), else their local data directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|dir| dir.join("bitrix24-permissions-mcp").join("ledger.sqlite3"))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the ledger {path}: {source}")]
pub struct OpenError {
    path: String,
    #[source]
    source: OpenProblem,
}

/// What stood in the way of opening the ledger's file.
#[derive(Debug, thiserror::Error)]
pub enum OpenProblem {
    #[error(transparent)]
    File(#[from] std::io::Error),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

/// Why the ledger could not be used: its file would not open, or a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The file would not open (when it was first needed); shared by every later use.
    #[error(transparent)]
    Open(Arc<OpenError>),
    /// The blocking task doing the work died.
    #[error("the ledger's work stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// A connection, opened on first use; the error says why it could not be.
type Lazy = OnceLock<Result<Mutex<Connection>, Arc<OpenError>>>;

/// A handle on the ledger; clones share the file's connections.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    identity: Identity,
    /// Opened on first use when the ledger was opened `deferred`: most sessions only read, and
    /// opening SQLite (schema parse, WAL files) is a third of a millisecond on a server's start.
    writer: Lazy,
    /// Reads get a connection of their own: in WAL mode it reads while the writer waits for
    /// a lock another process holds, so `history` answers during such a wait.
    reader: Lazy,
    /// The row each call in flight writes to, by the pipeline's call id.
    rows: Mutex<HashMap<u64, Slot>>,
    reserve: Reserve,
}

/// Where a call in flight stands with its row.
enum Slot {
    Row(i64),
    /// The call was given up while its row was being inserted: whoever inserts it marks it
    /// as never sent.
    Abandoned,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating and migrating as needed) the ledger at `path` for calls made as
    /// `identity`, now: a problem with the file is found before anything runs.
    pub fn open(path: &Path, identity: Identity) -> Result<Self, OpenError> {
        let ledger = Self::deferred(path, identity)?;
        let conn = connect(path)?;
        let _ = ledger.inner.writer.set(Ok(Mutex::new(conn)));
        Ok(ledger)
    }

    /// A ledger whose file is opened by the first write, `last_ok` or history that needs it.
    /// Only the directory is made now, so a path that cannot exist still fails at start; a
    /// file that cannot be opened later refuses the write that needed it, with the reason.
    pub fn deferred(path: &Path, identity: Identity) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent() {
            private_files::create_dir(dir).map_err(|e| OpenError {
                path: path.display().to_string(),
                source: e.into(),
            })?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                identity,
                writer: OnceLock::new(),
                reader: OnceLock::new(),
                rows: Mutex::default(),
                reserve: Reserve::beside(path),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the connection that writes, on tokio's blocking pool. The work starts
    /// now, not when the future is first polled, and runs to its end even if nobody waits for
    /// it any more: a row a caller gave up on is still completed.
    pub fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, Unavailable>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Unavailable> + Send + 'static,
    {
        let inner = self.inner.clone();
        joined(tokio::task::spawn_blocking(move || work(&*inner.writer()?)))
    }

    /// Runs `work` on the connection that reads, on tokio's blocking pool, as [`Self::write`].
    pub fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T, Unavailable>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Unavailable> + Send + 'static,
    {
        let inner = self.inner.clone();
        joined(tokio::task::spawn_blocking(move || work(&*inner.reader()?)))
    }

    /// Inserts the row of a write about to be sent, and keeps its id for `after`. If the
    /// call is given up (its client went away) before the row is in, the row is marked as
    /// never sent rather than left `unknown`.
    async fn begin(&self, call: &CallInfo<'_>) -> Result<(), Unavailable> {
        let new = NewRow::new(call, &self.inner.identity);
        let (inner, call_id) = (self.inner.clone(), call.call_id);
        let mut waiting = Waiting {
            ledger: self,
            call_id,
            settled: false,
        };
        let inserted = self.write(move |conn| {
            inner.reserve.keep();
            let inserted = new.insert(conn);
            let mut rows = inner.rows();
            let abandoned = matches!(rows.remove(&call_id), Some(Slot::Abandoned));
            match inserted {
                Ok(row) if abandoned => inner.complete(conn, row, &Finished::not_sent()),
                Ok(row) => {
                    rows.insert(call_id, Slot::Row(row));
                    Ok(())
                }
                Err(err) => Err(err),
            }
        });
        let result = inserted.await;
        waiting.settled = true;
        result
    }
}

/// A call's `before` while its row is being inserted; dropped unsettled, the call was given
/// up before anything was sent.
struct Waiting<'a> {
    ledger: &'a Ledger,
    call_id: u64,
    settled: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut rows = self.ledger.inner.rows();
        match rows.remove(&self.call_id) {
            // Dropped as the runtime shuts down: no thread is left to mark the row on.
            Some(Slot::Row(_)) if tokio::runtime::Handle::try_current().is_err() => {}
            Some(Slot::Row(row)) => {
                drop(rows);
                let inner = self.ledger.inner.clone();
                drop(
                    self.ledger
                        .write(move |conn| inner.complete(conn, row, &Finished::not_sent())),
                );
            }
            _ => {
                rows.insert(self.call_id, Slot::Abandoned);
            }
        }
    }
}

/// The result of a blocking task, with a task that died (a panic) as one more reason.
async fn joined<T>(
    task: tokio::task::JoinHandle<Result<T, Unavailable>>,
) -> Result<T, Unavailable> {
    task.await.map_err(Unavailable::Stopped)?
}

impl Inner {
    /// Completes `row`; on a full disk, with the room its reserve frees.
    fn complete(
        &self,
        conn: &Connection,
        row: i64,
        finished: &Finished,
    ) -> Result<(), Unavailable> {
        match finished.store(conn, row) {
            Err(err)
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
                    && self.reserve.release() =>
            {
                tracing::error!(
                    path = %self.path.display(),
                    reserve = %self.reserve.path().display(),
                    row,
                    "the ledger's disk is full: its reserve was freed to record how a sent write ended; \
                     free some space, or the next writes are refused"
                );
                Ok(finished.store(conn, row)?)
            }
            other => Ok(other?),
        }
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn writer_cell(&self) -> &Result<Mutex<Connection>, Arc<OpenError>> {
        self.writer
            .get_or_init(|| connect(&self.path).map(Mutex::new).map_err(Arc::new))
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>, Unavailable> {
        locked(self.writer_cell())
    }

    fn reader(&self) -> Result<MutexGuard<'_, Connection>, Unavailable> {
        let reader = self.reader.get_or_init(|| {
            // The writer's connection creates and migrates the file; it is not locked here,
            // so a write waiting on another process does not hold this up.
            self.writer_cell().as_ref().map_err(Arc::clone)?;
            let fail = |e: rusqlite::Error| {
                Arc::new(OpenError {
                    path: self.path.display().to_string(),
                    source: e.into(),
                })
            };
            let conn = Connection::open(&self.path).map_err(fail)?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
            Ok(Mutex::new(conn))
        });
        locked(reader)
    }
}

fn locked(
    conn: &Result<Mutex<Connection>, Arc<OpenError>>,
) -> Result<MutexGuard<'_, Connection>, Unavailable> {
    match conn {
        Ok(conn) => Ok(conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)),
        Err(why) => Err(Unavailable::Open(Arc::clone(why))),
    }
}

/// Opens the file, waits for other processes rather than failing, and migrates it.
fn connect(path: &Path) -> Result<Connection, OpenError> {
    let fail = |source: OpenProblem| OpenError {
        path: path.display().to_string(),
        source,
    };
    // Made here, 0600: SQLite would create it 0644, and its -wal and -shm files take the
    // main file's mode.
    private_files::ensure_file(path).map_err(|e| fail(e.into()))?;
    Reserve::beside(path).keep();
    let conn = Connection::open(path).map_err(|e| fail(e.into()))?;
    // Other server processes may hold the file for a moment; wait for them, not fail.
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(e.into()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail(e.into()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| fail(e.into()))?;
    schema::migrate(&conn).map_err(|e| fail(e.into()))?;
    Ok(conn)
}

impl CallHook for Ledger {
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a> {
        if !call.spec.is_write() {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(async move {
            self.begin(&call).await.map_err(|err| {
                let path = self.inner.path.display();
                tracing::error!(path = %path, %err, "the ledger cannot record a write");
                ToolFailure::new(
                    FailureKind::Refused,
                    format!(
                        "Nothing was written: the ledger ({path}) could not record this change ({err}), and \
                         no write goes out unrecorded. What to do: ask the person who runs this server to \
                         check that file (BITRIX24_LEDGER), then call again."
                    ),
                )
            })
        })
    }

    fn after<'a>(&'a self, call: CallInfo<'a>, outcome: &'a Outcome) -> HookFuture<'a, ()> {
        let Some(Slot::Row(row)) = self.inner.rows().remove(&call.call_id) else {
            return Box::pin(std::future::ready(()));
        };
        let finished = Finished::new(outcome);
        // Started here, so the row is completed even if this call's future is dropped.
        let inner = self.inner.clone();
        let stored = self.write(move |conn| inner.complete(conn, row, &finished));
        Box::pin(async move {
            if let Err(err) = stored.await {
                // The row stays `unknown`, which is true enough: say why in the log.
                let path = self.inner.path.display();
                tracing::error!(path = %path, %err, row, "the ledger cannot complete a row");
            }
        })
    }
}

impl Journal for Ledger {
    fn known<'a>(&'a self, tool: &'a str, object: &'a ObjectRef) -> HookFuture<'a, Known> {
        let portal = self.inner.identity.host.clone();
        let (tool, object) = (tool.to_owned(), object.clone());
        let found = self.read(move |conn| changes::known(conn, &portal, &tool, &object));
        Box::pin(async move {
            found.await.unwrap_or_else(|err| {
                tracing::warn!(%err, "the ledger could not be read");
                Known::default()
            })
        })
    }

    fn history<'a>(
        &'a self,
        query: &'a HistoryQuery,
    ) -> HookFuture<'a, Result<Vec<Value>, String>> {
        let portal = (!query.every_portal).then(|| self.inner.identity.host.clone());
        let query = query.clone();
        let rows = self.read(move |conn| changes::select(conn, portal.as_deref(), &query));
        Box::pin(async move { rows.await.map_err(|e| e.to_string()) })
    }
}

#[cfg(test)]
mod tests;
