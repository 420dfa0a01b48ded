//! Which failures are retried, written as one table.
//!
//! The rule: a write is re-sent only when the portal certainly did not run it (it said it was
//! throttled or out of run time, or the connection was refused before anything was sent). A
//! write whose answer was lost after sending is never re-sent, whatever the catalog's
//! idempotent hint says: someone may have changed the same thing in between, and a repeat
//! would overwrite that. A read may be repeated once when its answer was lost. Everything a
//! retry cannot fix, and anything unknown, goes straight back to the model with an explanation.

use crate::bitrix::{BadAnswerKind, PortalError, TransportKind};

/// What kind of failure a [`PortalError`] is, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 503 QUERY_LIMIT_EXCEEDED: the portal's request bucket is full.
    RateLimited,
    /// 429 OPERATION_TIME_LIMIT: this method used up its run-time budget.
    RunTimeExhausted,
    /// Could not connect; nothing was sent.
    NoConnection,
    /// Sent, but the answer was lost: timeout, reset, cut-off body or cut-off JSON.
    AnswerLost,
    /// An HTML 502/503/504 page from a gateway in front of the portal.
    Gateway,
    /// Webhook, scope or access problems: only a person can fix them.
    Refused,
    /// OVERLOAD_LIMIT: a manual block by Bitrix24 support.
    Blocked,
    /// PORTAL_DELETED.
    Gone,
    /// INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER.
    ServerFault,
    /// The batch codes.
    Batch,
    /// Anything else, including the method's own errors and unusable answers.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Never,
    /// Paced by the (slowed-down) limiter plus jitter, up to this many retries.
    Backoff {
        retries: u32,
    },
    /// After the method's run-time window resets, once.
    AfterReset,
    /// Once.
    Once,
}

/// The retry policy: a failure, what a read does, what a write does. Tested row by row;
/// change it here and nowhere else.
pub const POLICY: &[(Failure, Retry, Retry)] = &[
    (
        Failure::RateLimited,
        Retry::Backoff { retries: 6 },
        Retry::Backoff { retries: 6 },
    ),
    (
        Failure::RunTimeExhausted,
        Retry::AfterReset,
        Retry::AfterReset,
    ),
    (Failure::NoConnection, Retry::Once, Retry::Once),
    (Failure::AnswerLost, Retry::Once, Retry::Never),
    (Failure::Gateway, Retry::Once, Retry::Never),
    (Failure::Refused, Retry::Never, Retry::Never),
    (Failure::Blocked, Retry::Never, Retry::Never),
    (Failure::Gone, Retry::Never, Retry::Never),
    (Failure::ServerFault, Retry::Never, Retry::Never),
    (Failure::Batch, Retry::Never, Retry::Never),
    (Failure::Other, Retry::Never, Retry::Never),
];

/// What to do after `failure`; `write` comes from the catalog (not read-only).
pub fn rule(failure: Failure, write: bool) -> Retry {
    POLICY
        .iter()
        .find(|(f, _, _)| *f == failure)
        .map_or(
            Retry::Never,
            |(_, read, written)| {
                if write { *written } else { *read }
            },
        )
}

pub fn classify(err: &PortalError) -> Failure {
    match err {
        PortalError::Api { code, .. } => match code.to_ascii_uppercase().as_str() {
            "QUERY_LIMIT_EXCEEDED" => Failure::RateLimited,
            "OPERATION_TIME_LIMIT" => Failure::RunTimeExhausted,
            "NO_AUTH_FOUND"
            | "EXPIRED_TOKEN"
            | "INSUFFICIENT_SCOPE"
            | "ACCESS_DENIED"
            | "INVALID_CREDENTIALS"
            | "USER_ACCESS_ERROR"
            | "INVALID_REQUEST" => Failure::Refused,
            "OVERLOAD_LIMIT" => Failure::Blocked,
            "PORTAL_DELETED" => Failure::Gone,
            "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => Failure::ServerFault,
            "ERROR_BATCH_METHOD_NOT_ALLOWED" | "ERROR_BATCH_LENGTH_EXCEEDED" => Failure::Batch,
            _ => Failure::Other,
        },
        PortalError::Transport { kind, .. } => match kind {
            TransportKind::Connect => Failure::NoConnection,
            TransportKind::Timeout | TransportKind::Broken => Failure::AnswerLost,
        },
        PortalError::BadAnswer { status, kind, .. } => match kind {
            BadAnswerKind::Truncated => Failure::AnswerLost,
            BadAnswerKind::Html | BadAnswerKind::UnexpectedStatus
                if matches!(status, 502..=504) =>
            {
                Failure::Gateway
            }
            _ => Failure::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> PortalError {
        PortalError::Api {
            status: 400,
            code: code.into(),
            description: String::new(),
        }
    }

    #[test]
    fn every_failure_has_exactly_one_row() {
        let all = [
            Failure::RateLimited,
            Failure::RunTimeExhausted,
            Failure::NoConnection,
            Failure::AnswerLost,
            Failure::Gateway,
            Failure::Refused,
            Failure::Blocked,
            Failure::Gone,
            Failure::ServerFault,
            Failure::Batch,
            Failure::Other,
        ];
        for f in all {
            assert_eq!(
                POLICY.iter().filter(|(g, _, _)| *g == f).count(),
                1,
                "{f:?}"
            );
        }
        assert_eq!(POLICY.len(), all.len());
    }

    #[test]
    fn the_policy() {
        const ONCE_READS: (Retry, Retry) = (Retry::Once, Retry::Never);
        const NEVER: (Retry, Retry) = (Retry::Never, Retry::Never);
        let cases: &[(PortalError, (Retry, Retry))] = &[
            (
                api("QUERY_LIMIT_EXCEEDED"),
                (Retry::Backoff { retries: 6 }, Retry::Backoff { retries: 6 }),
            ),
            (
                api("OPERATION_TIME_LIMIT"),
                (Retry::AfterReset, Retry::AfterReset),
            ),
            (
                PortalError::Transport {
                    kind: TransportKind::Connect,
                    detail: String::new(),
                },
                (Retry::Once, Retry::Once),
            ),
            (
                PortalError::Transport {
                    kind: TransportKind::Timeout,
                    detail: String::new(),
                },
                ONCE_READS,
            ),
            (
                PortalError::Transport {
                    kind: TransportKind::Broken,
                    detail: String::new(),
                },
                ONCE_READS,
            ),
            (
                PortalError::BadAnswer {
                    status: 200,
                    kind: BadAnswerKind::Truncated,
                    excerpt: String::new(),
                },
                ONCE_READS,
            ),
            (
                PortalError::BadAnswer {
                    status: 502,
                    kind: BadAnswerKind::Html,
                    excerpt: String::new(),
                },
                ONCE_READS,
            ),
            (
                PortalError::BadAnswer {
                    status: 200,
                    kind: BadAnswerKind::Html,
                    excerpt: String::new(),
                },
                NEVER,
            ),
            (
                PortalError::BadAnswer {
                    status: 200,
                    kind: BadAnswerKind::NotJson,
                    excerpt: String::new(),
                },
                NEVER,
            ),
            (
                PortalError::BadAnswer {
                    status: 503,
                    kind: BadAnswerKind::UnexpectedStatus,
                    excerpt: String::new(),
                },
                ONCE_READS,
            ),
            (
                PortalError::BadAnswer {
                    status: 500,
                    kind: BadAnswerKind::UnexpectedStatus,
                    excerpt: String::new(),
                },
                NEVER,
            ),
        ];
        for (err, (read, write)) in cases {
            assert_eq!(rule(classify(err), false), *read, "read: {err:?}");
            assert_eq!(rule(classify(err), true), *write, "write: {err:?}");
        }
        for never in [
            "NO_AUTH_FOUND",
            "insufficient_scope",
            "ACCESS_DENIED",
            "INVALID_CREDENTIALS",
            "user_access_error",
            "expired_token",
            "INVALID_REQUEST",
            "OVERLOAD_LIMIT",
            "PORTAL_DELETED",
            "INTERNAL_SERVER_ERROR",
            "ERROR_UNEXPECTED_ANSWER",
            "ERROR_BATCH_METHOD_NOT_ALLOWED",
            "ERROR_BATCH_LENGTH_EXCEEDED",
            "",
            "100",
            "IS_NOT_ADMIN",
            "SOMETHING_NEW",
        ] {
            assert_eq!(rule(classify(&api(never)), false), Retry::Never, "{never}");
            assert_eq!(rule(classify(&api(never)), true), Retry::Never, "{never}");
        }
    }
}
