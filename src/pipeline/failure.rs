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
    /// The portal answered success with a shape the tool's output schema does not allow.
    UnexpectedAnswer,
    /// The user declined or cancelled the confirmation; nothing was written.
    Declined,
    /// The user must be asked through another round of the request (2026-07-28 lifecycle);
    /// nothing was written yet.
    AwaitingUser,
    /// The person approves outside the model's channel (a page or a terminal); nothing was
    /// written yet, and the same call made again goes out once they have approved.
    AwaitingApproval,
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
            Self::UnexpectedAnswer => "unexpected_answer",
            Self::Declined => "declined",
            Self::AwaitingUser => "awaiting_user",
            Self::AwaitingApproval => "awaiting_approval",
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

    /// The same failure with its text cut to `max` bytes (plus a note saying so), for texts
    /// quoted from the portal that can be as large as any answer. Cut after masking.
    pub fn capped(self, max: usize) -> Self {
        self.map_text(|text| cap_text(text, max))
    }

    /// The same failure with other text, e.g. a notice put in front.
    pub fn map_text(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.text = f(self.text);
        self
    }
}

fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let note = format!(
        "\n[error text cut: it was {} bytes, over the {max}-byte limit (BITRIX24_MAX_RESULT_BYTES)]",
        text.len()
    );
    let mut keep = max.saturating_sub(note.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{note}", &text[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_with_a_note() {
        let short = ToolFailure::new(FailureKind::Portal, "short").capped(1000);
        assert_eq!(short.text, "short");
        let long = ToolFailure::new(FailureKind::Portal, "é".repeat(5000)).capped(1000);
        assert!(long.text.len() <= 1000, "{}", long.text.len());
        assert!(long.text.contains("error text cut"), "{}", long.text);
    }
}
