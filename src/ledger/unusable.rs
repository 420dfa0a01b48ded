//! The journal of a read-only server whose ledger cannot be used: such a server sends no
//! write, so it starts anyway, and its history says why there is none.

use serde_json::Value;

use crate::pipeline::{
    BeforeFuture, CallHook, CallInfo, FailureKind, HistoryQuery, HookFuture, Journal, Known,
    ObjectRef, Outcome, ToolFailure,
};

#[derive(Debug)]
pub struct Unusable {
    why: String,
}

impl Unusable {
    pub fn new(why: impl std::fmt::Display) -> Self {
        Self {
            why: format!("the ledger is unavailable to this read-only server: {why}"),
        }
    }
}

impl CallHook for Unusable {
    fn before<'a>(&'a self, call: CallInfo<'a>) -> BeforeFuture<'a> {
        // No write is published read-only; one that got here anyway goes out unrecorded never.
        let result = if call.spec.is_write() {
            Err(ToolFailure::new(
                FailureKind::Refused,
                format!(
                    "Nothing was written: {}. What to do: set BITRIX24_LEDGER to a writable file.",
                    self.why
                ),
            ))
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }

    fn after<'a>(&'a self, _call: CallInfo<'a>, _outcome: &'a Outcome) -> HookFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

impl Journal for Unusable {
    fn known<'a>(&'a self, _tool: &'a str, _object: &'a ObjectRef) -> HookFuture<'a, Known> {
        Box::pin(std::future::ready(Known::default()))
    }

    fn history<'a>(
        &'a self,
        _query: &'a HistoryQuery,
    ) -> HookFuture<'a, Result<Vec<Value>, String>> {
        Box::pin(std::future::ready(Err(self.why.clone())))
    }
}
