//! The seam around one tool call: hooks see a call after its arguments and guards passed and
//! just before anything is sent, may stop it there, and see how it ended. A journal of changes
//! and a person's confirmation plug in here without the pipeline knowing them.

use std::{future::Future, pin::Pin};

use serde_json::Value;

use super::{Outcome, failure::ToolFailure};
use crate::catalog::ToolSpec;

/// What a hook learns about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    pub spec: &'a ToolSpec,
    /// The arguments as checked against the tool's schema and sent.
    pub arguments: &'a Value,
}

pub type BeforeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ToolFailure>> + Send + 'a>>;

pub trait CallHook: Send + Sync {
    /// Runs just before the call is sent; an error stops it, and nothing is sent.
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a>;
    /// Runs once the call has ended, whether it was sent or stopped by a hook.
    fn after(&self, call: CallInfo<'_>, outcome: &Outcome);
}

/// Logs every write as it is sent and how it ended, so the log alone tells what was changed.
pub struct WriteLog;

impl CallHook for WriteLog {
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a> {
        if call.spec.is_write() {
            tracing::info!(tool = %call.spec.name, arguments = %call.arguments, "sending a write");
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn after(&self, call: CallInfo<'_>, outcome: &Outcome) {
        if call.spec.is_write() {
            match outcome {
                Ok(answer) => tracing::info!(tool = %call.spec.name, %answer, "write answered"),
                Err(failure) => tracing::warn!(
                    tool = %call.spec.name,
                    kind = failure.kind.as_str(),
                    code = ?failure.code,
                    "write failed"
                ),
            }
        }
    }
}
