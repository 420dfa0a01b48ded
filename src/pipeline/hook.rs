//! The seam around one tool call: hooks see a call after its arguments and guards passed and
//! the user was asked, just before anything is sent; they may stop it there, and see how it
//! ended. A journal of changes plugs in here without the pipeline knowing it.
//!
//! Every method returns a future, so a hook that waits (the ledger waits for its SQLite file,
//! which another process may hold) does it off the server's one runtime thread.

use std::{future::Future, pin::Pin};

use serde_json::Value;

use super::{Outcome, confirm::Confirmation, failure::ToolFailure};
use crate::catalog::ToolSpec;

/// What a hook learns about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// Tells one call from another, so a hook can pair its `before` with its `after`.
    pub call_id: u64,
    pub spec: &'a ToolSpec,
    /// The arguments as checked against the tool's schema and sent.
    pub arguments: &'a Value,
    /// The object a write changes (`site 645`), when its catalog entry names one.
    pub object: Option<&'a ObjectRef>,
    /// What the user said about this call, if anyone was asked.
    pub confirmation: &'a Confirmation,
    /// Who asked for the call: the person behind the client, as the front end knows them.
    pub asked_by: &'a str,
    /// Whom the portal runs the call as: the webhook's (or the signed-in person's) user.
    pub runs_as: &'a str,
}

/// The object a write changes: its kind from the catalog and its id from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for a portal-wide write.
    pub id: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.id.is_empty() {
            write!(f, "the {}", self.kind)
        } else {
            write!(f, "{} {}", self.kind, self.id)
        }
    }
}

/// What every hook and journal method returns.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type BeforeFuture<'a> = HookFuture<'a, Result<(), ToolFailure>>;

pub trait CallHook: Send + Sync {
    /// Runs just before the call is sent; an error stops it, and nothing is sent.
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a>;
    /// Runs once the call has ended, whether it was sent or stopped by a hook or the user.
    fn after<'a>(&'a self, call: CallInfo<'a>, outcome: &'a Outcome) -> HookFuture<'a, ()>;
}

/// The last set written to an object through this server, as a journal remembers it.
#[derive(Debug, Clone)]
pub struct KnownSet {
    /// When it was written (UTC, ISO 8601).
    pub at: String,
    /// The arguments of that write.
    pub arguments: Value,
}

/// What a journal knows of the writes made to one object through this server.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The last set the portal accepted.
    pub ok: Option<KnownSet>,
    /// The latest attempt after that whose outcome is unknown (its answer was lost, or it is
    /// under way in another process): the portal may hold its set already.
    pub unsure: Option<KnownSet>,
}

/// What the history tool asks a journal for.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub id: Option<String>,
    pub tool: Option<String>,
    pub since: Option<String>,
    pub limit: usize,
    /// Every portal in the journal, not only the one this server talks to.
    pub every_portal: bool,
}

/// A hook that also keeps what it saw: the confirmation and the dry run compare against the
/// last set it knows, and the history tool reads it back.
pub trait Journal: CallHook {
    /// What is known of the writes with `tool` to `object`.
    fn known<'a>(&'a self, tool: &'a str, object: &'a ObjectRef) -> HookFuture<'a, Known>;
    /// The recorded changes (on this server's portal unless `every_portal`), newest first.
    fn history<'a>(&'a self, query: &'a HistoryQuery)
    -> HookFuture<'a, Result<Vec<Value>, String>>;
}

/// Logs every write as it is sent and how it ended, so the log alone tells what was changed.
pub struct WriteLog;

impl CallHook for WriteLog {
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a> {
        if call.spec.is_write() {
            tracing::info!(
                tool = %call.spec.name,
                arguments = %call.arguments,
                confirmation = call.confirmation.as_str(),
                "sending a write"
            );
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn after<'a>(&'a self, call: CallInfo<'a>, outcome: &'a Outcome) -> HookFuture<'a, ()> {
        if call.spec.is_write() {
            match outcome {
                Ok(answer) => tracing::info!(tool = %call.spec.name, %answer, "write answered"),
                Err(_) if call.confirmation.refused() => tracing::info!(
                    tool = %call.spec.name,
                    answer = call.confirmation.as_str(),
                    "the user refused the write; nothing was sent"
                ),
                Err(failure) => tracing::warn!(
                    tool = %call.spec.name,
                    kind = failure.kind.as_str(),
                    code = ?failure.code,
                    "write failed"
                ),
            }
        }
        Box::pin(std::future::ready(()))
    }
}
