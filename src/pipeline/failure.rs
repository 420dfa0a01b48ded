//! A failed tool call, kept structured from where it happens to the edge that renders it, so
//! that logging, counting, confirmation and the journal can tell failures apart by kind.

use crate::bitrix::limits::CallError;

/// What kind of failure a tool call met. Every kind is rendered as an `isError` result whose
/// text says what happened and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The arguments do not fit the tool's schema; nothing was sent.
    InvalidArguments,
    /// A guard before a write refused it; nothing was written.
    Refused,
    /// The portal answered with an error code (in `code`).
    Portal,
    /// The portal could not be reached, or answered something unusable; for a read.
    Transport,
    /// A write was sent and its answer lost: the portal may or may not have applied it.
    OutcomeUnknown,
    /// A Bitrix24 limit (rate or run time) stopped the call before it was sent.
    Limit,
    /// The answer came, but is over the size the model may receive.
    TooLarge,
}

impl FailureKind {
    /// A short stable name, for logs and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArguments => "invalid_arguments",
            Self::Refused => "refused",
            Self::Portal => "portal_error",
            Self::Transport => "transport",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Limit => "limit",
            Self::TooLarge => "too_large",
        }
    }
}

/// A failed tool call: its kind, the portal's error code where there is one, the text the
/// model reads, and the error that caused it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{text}")]
pub struct ToolFailure {
    pub kind: FailureKind,
    pub code: Option<String>,
    pub text: String,
    #[source]
    pub source: Option<CallError>,
}

impl ToolFailure {
    pub fn new(kind: FailureKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            text: text.into(),
            source: None,
        }
    }

    /// The same failure with other text, e.g. a notice put in front.
    pub fn map_text(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.text = f(self.text);
        self
    }
}
