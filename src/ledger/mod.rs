//! The ledger: a journal of every write this server sends, in an SQLite file that several
//! server processes share. A row is written before the call is sent and completed after, so
//! a crash in between leaves an `unknown` row, never a missing one.

mod schema;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::{
    bitrix::{Identity, Secrets},
    pipeline::{
        BeforeFuture, CallHook, CallInfo, FailureKind, HistoryQuery, Journal, KnownSet, ObjectRef,
        Outcome, ToolFailure,
    },
};

/// The variable that names the ledger's file, or `off`.
pub const LEDGER_ENV: &str = "BITRIX24_LEDGER";

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
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub struct Ledger {
    /// Opened on first use when the ledger was opened `deferred`: most sessions only read, and
    /// opening SQLite (schema parse, WAL files) is a third of a millisecond on a server's start.
    conn: OnceLock<Result<Mutex<Connection>, String>>,
    path: PathBuf,
    identity: Identity,
    /// The row each call in flight writes to, by the pipeline's call id.
    rows: Mutex<HashMap<u64, i64>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A stored time: UTC, ISO 8601, milliseconds; sorts as text.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

impl Ledger {
    /// Opens (creating and migrating as needed) the ledger at `path` for calls made as
    /// `identity`, now: a problem with the file is found before anything runs.
    pub fn open(path: &Path, identity: Identity) -> Result<Self, OpenError> {
        let ledger = Self::deferred(path, identity)?;
        let conn = connect(path)?;
        let _ = ledger.conn.set(Ok(Mutex::new(conn)));
        Ok(ledger)
    }

    /// A ledger whose file is opened by the first write, `last_ok` or history that needs it.
    /// Only the directory is made now, so a path that cannot exist still fails at start; a
    /// file that cannot be opened later refuses the write that needed it, with the reason.
    pub fn deferred(path: &Path, identity: Identity) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| OpenError {
                path: path.display().to_string(),
                source: e.into(),
            })?;
        }
        Ok(Self {
            conn: OnceLock::new(),
            path: path.to_owned(),
            identity,
            rows: Mutex::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, Unavailable> {
        let conn = self.conn.get_or_init(|| {
            connect(&self.path)
                .map(Mutex::new)
                .map_err(|e| e.to_string())
        });
        match conn {
            Ok(conn) => Ok(conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)),
            Err(why) => Err(Unavailable(why.clone())),
        }
    }

    fn begin(&self, call: &CallInfo<'_>) -> Result<i64, Unavailable> {
        let secrets = Secrets::global();
        let arguments = secrets.redact(&call.arguments.to_string()).into_owned();
        let conn = self.conn()?;
        conn.execute(
            &format!(
                "INSERT INTO changes (at, portal, user_id, tool, method, object_kind, object_id, \
                 arguments, confirmation, outcome, pid) \
                 VALUES ({NOW}, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'unknown', ?9)"
            ),
            params![
                self.identity.host,
                self.identity.user_id,
                call.spec.name,
                call.spec.method,
                call.object.map(|o| o.kind.as_str()),
                call.object.map(|o| o.id.as_str()),
                arguments,
                call.confirmation.as_str(),
                std::process::id(),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn finish(&self, row: i64, outcome: &Outcome) -> Result<(), Unavailable> {
        let secrets = Secrets::global();
        let (state, answer, code) = match outcome {
            Ok(value) => (
                "ok",
                Some(secrets.redact(&value["result"].to_string()).into_owned()),
                None,
            ),
            Err(failure) => (
                outcome_of(failure),
                None,
                Some(
                    failure
                        .code
                        .clone()
                        .unwrap_or_else(|| failure.kind.as_str().to_owned()),
                ),
            ),
        };
        self.conn()?.execute(
            &format!(
                "UPDATE changes SET outcome = ?1, answer = ?2, error_code = ?3, finished_at = {NOW} \
                 WHERE id = ?4"
            ),
            params![state, answer, code, row],
        )?;
        Ok(())
    }

    /// Reads rows back, newest first; `portal` None means every portal in the file.
    pub fn rows(
        &self,
        portal: Option<&str>,
        query: &HistoryQuery,
    ) -> Result<Vec<Value>, Unavailable> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, at, portal, user_id, tool, method, object_kind, object_id, arguments, \
             confirmation, outcome, answer, error_code, finished_at FROM changes \
             WHERE (?1 IS NULL OR portal = ?1) AND (?2 IS NULL OR object_id = ?2) \
             AND (?3 IS NULL OR tool = ?3) AND (?4 IS NULL OR at >= ?4) \
             ORDER BY id DESC LIMIT ?5",
        )?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(
            params![portal, query.id, query.tool, query.since, limit],
            |r| {
                let text = |i: usize| r.get::<_, Option<String>>(i);
                let json_of = |s: Option<String>| {
                    s.map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
                };
                let object = match (text(6)?, text(7)?) {
                    (Some(kind), Some(id)) => Value::from(ObjectRef { kind, id }.to_string()),
                    _ => Value::Null,
                };
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "at": text(1)?,
                    "portal": text(2)?,
                    "user_id": text(3)?,
                    "tool": text(4)?,
                    "method": text(5)?,
                    "object": object,
                    "arguments": json_of(text(8)?),
                    "confirmation": text(9)?,
                    "outcome": text(10)?,
                    "answer": json_of(text(11)?),
                    "error_code": text(12)?,
                    "finished_at": text(13)?,
                }))
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Opens the file, waits for other processes rather than failing, and migrates it.
fn connect(path: &Path) -> Result<Connection, OpenError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| OpenError {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(|e| fail(e.into()))?;
    // Other server processes may hold the file for a moment; wait for them, not fail.
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| fail(e.into()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail(e.into()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| fail(e.into()))?;
    schema::migrate(&conn).map_err(fail)?;
    Ok(conn)
}

/// Why the ledger could not be used: its file would not open, or a statement failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(String);

impl From<rusqlite::Error> for Unavailable {
    fn from(err: rusqlite::Error) -> Self {
        Self(err.to_string())
    }
}

/// How a failed write is recorded: only a portal's own error is certainly not applied.
fn outcome_of(failure: &ToolFailure) -> &'static str {
    match failure.kind {
        FailureKind::Declined => "declined",
        // The request may have reached the portal: say so rather than guess.
        FailureKind::OutcomeUnknown | FailureKind::Transport => "unknown",
        // The portal said success in a shape we do not know: it most likely applied the write.
        FailureKind::UnexpectedAnswer => "unknown",
        _ => "error",
    }
}

impl CallHook for Ledger {
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a> {
        let result = if call.spec.is_write() {
            match self.begin(&call) {
                Ok(row) => {
                    self.rows
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(call.call_id, row);
                    Ok(())
                }
                Err(err) => {
                    tracing::error!(path = %self.path.display(), %err, "the ledger cannot record a write");
                    Err(ToolFailure::new(
                        FailureKind::Refused,
                        format!(
                            "Nothing was written: the ledger ({}) could not record this change ({err}), and \
                             no write goes out unrecorded. What to do: ask the person who runs this server to \
                             check that file (BITRIX24_LEDGER), then call again.",
                            self.path.display()
                        ),
                    ))
                }
            }
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }

    fn after(&self, call: CallInfo<'_>, outcome: &Outcome) {
        let row = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&call.call_id);
        if let Some(row) = row
            && let Err(err) = self.finish(row, outcome)
        {
            // The row stays `unknown`, which is true enough: say why in the log.
            tracing::error!(path = %self.path.display(), %err, row, "the ledger cannot complete a row");
        }
    }
}

impl Journal for Ledger {
    fn last_ok(&self, tool: &str, object: &ObjectRef) -> Option<KnownSet> {
        let conn = match self.conn() {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "the ledger could not be read");
                return None;
            }
        };
        let found = conn
            .query_row(
                "SELECT at, arguments FROM changes WHERE portal = ?1 AND tool = ?2 \
                 AND object_kind = ?3 AND object_id = ?4 AND outcome = 'ok' \
                 AND (answer IS NULL OR answer != 'false') ORDER BY id DESC LIMIT 1",
                params![self.identity.host, tool, object.kind, object.id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional();
        match found {
            Ok(found) => found.and_then(|(at, arguments)| {
                Some(KnownSet {
                    at,
                    arguments: serde_json::from_str(&arguments).ok()?,
                })
            }),
            Err(err) => {
                tracing::warn!(%err, "the ledger could not be read");
                None
            }
        }
    }

    fn history(&self, query: &HistoryQuery) -> Result<Vec<Value>, String> {
        let portal = (!query.every_portal).then_some(self.identity.host.as_str());
        self.rows(portal, query).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
