//! The ledger's tables, one migration per schema version (`PRAGMA user_version`). A newer
//! server adds a step at the end; an older one refuses a file it does not understand.

use rusqlite::{Connection, TransactionBehavior};

/// Step `n` takes a file from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        portal TEXT NOT NULL,
        user_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        object_kind TEXT,
        object_id TEXT,
        arguments TEXT NOT NULL,
        confirmation TEXT NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'unknown'
            CHECK (outcome IN ('ok', 'error', 'unknown', 'declined')),
        answer TEXT,
        error_code TEXT,
        finished_at TEXT,
        pid INTEGER
    );
    CREATE INDEX changes_by_object ON changes (portal, tool, object_kind, object_id, outcome);
",
    "
    ALTER TABLE changes ADD COLUMN asked_by TEXT;
    ALTER TABLE changes ADD COLUMN approved_by TEXT;
    ALTER TABLE changes ADD COLUMN runs_as TEXT;
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        change TEXT NOT NULL,
        portal TEXT NOT NULL,
        tool TEXT NOT NULL,
        question TEXT NOT NULL,
        asked_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'approved', 'declined', 'used', 'closed')),
        decided_by TEXT,
        decided_at INTEGER
    );
    CREATE INDEX approvals_by_change ON approvals (change, state);
    CREATE TABLE spent_nonces (
        nonce TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
",
    // The team server: who signed in (their refresh token sealed), the MCP clients that
    // registered, and the hashes of every token this server handed out.
    "
    CREATE TABLE people (
        member_id TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        refresh_sealed BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (member_id, user_id)
    );
    CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        redirect_uris TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('personal', 'access', 'refresh', 'browser')),
        member_id TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        client_id TEXT,
        audience TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX tokens_by_person ON tokens (member_id, user_id, kind);
    ALTER TABLE approvals ADD COLUMN user_id TEXT;
",
];

/// Why the ledger's file could not be brought to this server's schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "its schema version is {found}, newer than this server's {known}; use a newer bitrix24-permissions-mcp \
         or another BITRIX24_LEDGER file"
    )]
    Newer { found: usize, known: usize },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub fn migrate(conn: &Connection) -> Result<(), SchemaError> {
    // An immediate transaction: two processes starting together migrate one after the other.
    let mut conn_tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let version: i64 = conn_tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(SchemaError::Newer {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    // A file already up to date is only read: writing its version again at every start made
    // SQLite begin a new WAL file and sync it and its directory on the first answer's path.
    if version < MIGRATIONS.len() {
        for step in &MIGRATIONS[version..] {
            conn_tx.execute_batch(step)?;
        }
        // A handful of migrations: the count always fits.
        let latest = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        conn_tx.pragma_update(None, "user_version", latest)?;
    }
    conn_tx.set_drop_behavior(rusqlite::DropBehavior::Commit);
    conn_tx.commit()?;
    Ok(())
}
