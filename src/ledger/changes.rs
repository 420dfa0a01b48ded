//! The `changes` table: one row per write, inserted before the write is sent and completed
//! after. Plain functions on a connection; the ledger decides which thread runs them.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::Unavailable;
use crate::{
    bitrix::{Identity, Secrets},
    pipeline::{
        CallInfo, FailureKind, HistoryQuery, Known, KnownSet, ObjectRef, Outcome, ToolFailure,
    },
};

/// A stored time: UTC, ISO 8601, milliseconds; sorts as text.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A row about to be written, owned, so it can go to another thread.
pub struct NewRow {
    portal: String,
    user_id: String,
    tool: String,
    method: String,
    object: Option<ObjectRef>,
    arguments: String,
    confirmation: &'static str,
    asked_by: String,
    approved_by: Option<String>,
    runs_as: String,
}

impl NewRow {
    pub fn new(call: &CallInfo<'_>, identity: &Identity) -> Self {
        Self {
            portal: identity.host.clone(),
            user_id: identity.user_id.clone(),
            tool: call.spec.name.clone(),
            method: call.spec.method.clone(),
            object: call.object.cloned(),
            arguments: Secrets::global()
                .redact(&call.arguments.to_string())
                .into_owned(),
            confirmation: call.confirmation.as_str(),
            asked_by: call.asked_by.to_owned(),
            approved_by: call.confirmation.by().map(str::to_owned),
            runs_as: call.runs_as.to_owned(),
        }
    }

    pub fn insert(&self, conn: &Connection) -> Result<i64, Unavailable> {
        conn.execute(
            &format!(
                "INSERT INTO changes (at, portal, user_id, tool, method, object_kind, object_id, \
                 arguments, confirmation, outcome, pid, asked_by, approved_by, runs_as) \
                 VALUES ({NOW}, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'unknown', ?9, ?10, ?11, ?12)"
            ),
            params![
                self.portal,
                self.user_id,
                self.tool,
                self.method,
                self.object.as_ref().map(|o| o.kind.as_str()),
                self.object.as_ref().map(|o| o.id.as_str()),
                self.arguments,
                self.confirmation,
                std::process::id(),
                self.asked_by,
                self.approved_by,
                self.runs_as,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }
}

/// How a call ended, as its row records it.
pub struct Finished {
    outcome: &'static str,
    answer: Option<String>,
    code: Option<String>,
}

/// What a row whose call was abandoned before anything was sent records as its error code.
pub const NOT_SENT: &str = "CANCELLED_BEFORE_SENDING";

impl Finished {
    pub fn new(outcome: &Outcome) -> Self {
        let secrets = Secrets::global();
        match outcome {
            Ok(value) => Self {
                outcome: "ok",
                answer: Some(secrets.redact(&value["result"].to_string()).into_owned()),
                code: None,
            },
            Err(failure) => Self {
                outcome: outcome_of(failure),
                answer: None,
                code: Some(
                    failure
                        .code
                        .clone()
                        .unwrap_or_else(|| failure.kind.as_str().to_owned()),
                ),
            },
        }
    }

    /// The call was given up (its client went away) before anything was sent.
    pub fn not_sent() -> Self {
        Self {
            outcome: "error",
            answer: None,
            code: Some(NOT_SENT.to_owned()),
        }
    }

    pub fn store(&self, conn: &Connection, row: i64) -> rusqlite::Result<()> {
        conn.execute(
            &format!(
                "UPDATE changes SET outcome = ?1, answer = ?2, error_code = ?3, finished_at = {NOW} \
                 WHERE id = ?4"
            ),
            params![self.outcome, self.answer, self.code, row],
        )?;
        Ok(())
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

/// The rows of the writes with `tool` to `object` on `portal` that the portal accepted
/// (`ok`, and not answered `false`).
const ACCEPTED: &str = "portal = ?1 AND tool = ?2 AND object_kind = ?3 AND object_id = ?4 \
     AND outcome = 'ok' AND (answer IS NULL OR answer != 'false')";

/// The last set the portal accepted for `object`, and the latest attempt after it whose
/// outcome is unknown.
pub fn known(
    conn: &Connection,
    portal: &str,
    tool: &str,
    object: &ObjectRef,
) -> Result<Known, Unavailable> {
    let set = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
    let args = params![portal, tool, object.kind, object.id];
    let ok = conn
        .query_row(
            &format!("SELECT at, arguments FROM changes WHERE {ACCEPTED} ORDER BY id DESC LIMIT 1"),
            args,
            set,
        )
        .optional()?;
    let unsure = conn
        .query_row(
            &format!(
                "SELECT at, arguments FROM changes WHERE portal = ?1 AND tool = ?2 \
                 AND object_kind = ?3 AND object_id = ?4 AND outcome = 'unknown' \
                 AND id > (SELECT coalesce(max(id), 0) FROM changes WHERE {ACCEPTED}) \
                 ORDER BY id DESC LIMIT 1"
            ),
            args,
            set,
        )
        .optional()?;
    let parsed = |found: Option<(String, String)>| {
        found.and_then(|(at, arguments)| {
            Some(KnownSet {
                at,
                arguments: serde_json::from_str(&arguments).ok()?,
            })
        })
    };
    Ok(Known {
        ok: parsed(ok),
        unsure: parsed(unsure),
    })
}

/// Reads rows back, newest first; `portal` None means every portal in the file.
pub fn select(
    conn: &Connection,
    portal: Option<&str>,
    query: &HistoryQuery,
) -> Result<Vec<Value>, Unavailable> {
    let mut stmt = conn.prepare(
        "SELECT id, at, portal, user_id, tool, method, object_kind, object_id, arguments, \
         confirmation, outcome, answer, error_code, finished_at, asked_by, approved_by, runs_as \
         FROM changes \
         WHERE (?1 IS NULL OR portal = ?1) AND (?2 IS NULL OR object_id = ?2) \
         AND (?3 IS NULL OR tool = ?3) AND (?4 IS NULL OR at >= ?4) \
         ORDER BY id DESC LIMIT ?5",
    )?;
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(
        params![portal, query.id, query.tool, query.since, limit],
        |r| {
            let text = |i: usize| r.get::<_, Option<String>>(i);
            let json_of =
                |s: Option<String>| s.map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)));
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
                "asked_by": text(14)?,
                "approved_by": text(15)?,
                "runs_as": text(16)?,
            }))
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
