//! The `approvals` and `spent_nonces` tables: every process sharing the ledger sees the same
//! approvals, so the page one process serves, the `approve` command, and the server the model
//! calls again all agree; and a nonce spent in one is refused in all.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Ledger, Unavailable};
use crate::pipeline::{
    Approval, ApprovalState, ApprovalStore, ChangeId, Decided, StoreError, StoreFuture,
    approval::{now, too_late},
};

const COLUMNS: &str = "id, change, portal, tool, question, asked_by, created_at, expires_at, \
                       state, decided_by, user_id";

/// Times are whole seconds since the epoch; SQLite keeps them as signed integers.
fn sql(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

fn secs(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or_default())
}

fn approval(row: &Row<'_>) -> rusqlite::Result<Approval> {
    let state: String = row.get(8)?;
    Ok(Approval {
        id: row.get(0)?,
        change: ChangeId::from_stored(row.get(1)?),
        portal: row.get(2)?,
        tool: row.get(3)?,
        question: row.get(4)?,
        asked_by: row.get(5)?,
        created_at: secs(row, 6)?,
        expires_at: secs(row, 7)?,
        state: ApprovalState::parse(&state).unwrap_or(ApprovalState::Closed),
        decided_by: row.get(9)?,
        user_id: row.get::<_, Option<String>>(10)?.unwrap_or_default(),
    })
}

fn find(conn: &Connection, id: &str) -> Result<Option<Approval>, Unavailable> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
            params![id],
            approval,
        )
        .optional()?)
}

/// Moves the first approval of `change` in state `from` to `to`, in one statement, so two
/// processes cannot both take it.
fn take(
    conn: &Connection,
    change: &str,
    from: ApprovalState,
    to: ApprovalState,
    at: u64,
) -> Result<Option<Approval>, Unavailable> {
    let taken = conn
        .query_row(
            &format!(
                "UPDATE approvals SET state = ?1 WHERE id = (SELECT id FROM approvals \
                 WHERE change = ?2 AND state = ?3 AND (?3 = 'declined' OR expires_at > ?4) \
                 ORDER BY created_at LIMIT 1) RETURNING {COLUMNS}"
            ),
            params![to.as_str(), change, from.as_str(), sql(at)],
            approval,
        )
        .optional()?;
    // The row is returned as it is now; say how it stood when taken.
    Ok(taken.map(|a| Approval { state: from, ..a }))
}

fn error(err: Unavailable) -> StoreError {
    StoreError(err.to_string())
}

impl ApprovalStore for Ledger {
    fn request<'a>(&'a self, wanted: Approval) -> StoreFuture<'a, Approval> {
        let work = self.write(move |conn| {
            let open = conn
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM approvals WHERE change = ?1 AND asked_by = ?2 \
                         AND state = 'pending' AND expires_at > ?3 ORDER BY created_at LIMIT 1"
                    ),
                    params![wanted.change.as_str(), wanted.asked_by, sql(now())],
                    approval,
                )
                .optional()?;
            if let Some(open) = open {
                return Ok(open);
            }
            conn.execute(
                "INSERT INTO approvals (id, change, portal, tool, question, asked_by, created_at, \
                 expires_at, state, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9)",
                params![
                    wanted.id,
                    wanted.change.as_str(),
                    wanted.portal,
                    wanted.tool,
                    wanted.question,
                    wanted.asked_by,
                    sql(wanted.created_at),
                    sql(wanted.expires_at),
                    wanted.user_id
                ],
            )?;
            Ok(wanted)
        });
        Box::pin(async move { work.await.map_err(error) })
    }

    fn find<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Approval>> {
        let id = id.to_owned();
        let work = self.read(move |conn| find(conn, &id));
        Box::pin(async move { work.await.map_err(error) })
    }

    fn decide<'a>(&'a self, id: &'a str, approve: bool, by: &'a str) -> StoreFuture<'a, Decided> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let to = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Declined
        };
        let work = self.write(move |conn| {
            let at = now();
            let changed = conn.execute(
                "UPDATE approvals SET state = ?1, decided_by = ?2, decided_at = ?3 \
                 WHERE id = ?4 AND state = 'pending' AND expires_at > ?3",
                params![to.as_str(), by, sql(at), id],
            )?;
            Ok(match (changed, find(conn, &id)?) {
                (1, _) => Decided::Done(to),
                (_, Some(found)) => Decided::TooLate(too_late(&found, at)),
                (_, None) => Decided::NotFound,
            })
        });
        Box::pin(async move { work.await.map_err(error) })
    }

    fn take_approved<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>> {
        let change = change.as_str().to_owned();
        let work = self.write(move |conn| {
            take(
                conn,
                &change,
                ApprovalState::Approved,
                ApprovalState::Used,
                now(),
            )
        });
        Box::pin(async move { work.await.map_err(error) })
    }

    fn take_declined<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>> {
        let change = change.as_str().to_owned();
        let work = self.write(move |conn| {
            take(
                conn,
                &change,
                ApprovalState::Declined,
                ApprovalState::Closed,
                now(),
            )
        });
        Box::pin(async move { work.await.map_err(error) })
    }

    fn spend<'a>(&'a self, nonce: &'a str, expires: u64) -> StoreFuture<'a, bool> {
        let nonce = nonce.to_owned();
        let work = self.write(move |conn| {
            // Spent nonces are kept until the state they came in would have expired anyway.
            conn.execute(
                "DELETE FROM spent_nonces WHERE expires_at <= ?1",
                params![sql(now())],
            )?;
            let added = conn.execute(
                "INSERT OR IGNORE INTO spent_nonces (nonce, expires_at) VALUES (?1, ?2)",
                params![nonce, sql(expires)],
            )?;
            Ok(added == 1)
        });
        Box::pin(async move { work.await.map_err(error) })
    }

    fn pending<'a>(&'a self, portal: Option<&'a str>) -> StoreFuture<'a, Vec<Approval>> {
        let portal = portal.map(str::to_owned);
        let work = self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' AND expires_at > ?1 \
                 AND (?2 IS NULL OR portal = ?2) ORDER BY created_at"
            ))?;
            let rows = stmt.query_map(params![sql(now()), portal], approval)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        });
        Box::pin(async move { work.await.map_err(error) })
    }
}
