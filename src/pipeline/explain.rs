//! Turns a failed call into text the model can act on: what happened, then what to do.
//! Claude Code drops `structuredContent` on errors, so this text is all the model gets.

use serde_json::Value;

use super::failure::{FailureKind, ToolFailure};
use crate::{
    bitrix::{
        BadAnswerKind, PortalError, TransportKind,
        limits::{CallError, clock_utc},
    },
    catalog::{AnswerProblem, ToolSpec},
};

/// A failed portal call of `spec` as a typed failure with its explanation.
pub fn failure(err: &CallError, spec: &ToolSpec) -> ToolFailure {
    let (kind, code) = match err {
        CallError::Portal { error, .. } => match error {
            PortalError::Api { code, .. } => (FailureKind::Portal, Some(code.clone())),
            PortalError::Transport {
                kind: TransportKind::Connect,
                ..
            } => (FailureKind::Transport, None),
            // Sent, and the answer lost or unusable: a write may have been applied.
            PortalError::Transport { .. } | PortalError::BadAnswer { .. } if spec.is_write() => {
                (FailureKind::OutcomeUnknown, None)
            }
            PortalError::Transport { .. } | PortalError::BadAnswer { .. } => {
                (FailureKind::Transport, None)
            }
        },
        CallError::Paused { .. } | CallError::Queue { .. } | CallError::Deadline { .. } => {
            (FailureKind::Limit, None)
        }
    };
    let text = match err {
        CallError::Portal { error, .. } if kind == FailureKind::OutcomeUnknown => {
            outcome_unknown(error, spec)
        }
        _ => explain(err, spec),
    };
    ToolFailure {
        kind,
        code,
        text,
        source: Some(err.clone()),
    }
}

/// A write was sent and its answer lost: say so, say nothing was re-sent, and how to check.
fn outcome_unknown(error: &PortalError, spec: &ToolSpec) -> String {
    let what = match error {
        PortalError::Transport {
            kind: TransportKind::Timeout,
            detail,
        } => format!("no complete answer came in time ({detail})"),
        PortalError::Transport { detail, .. } => {
            format!("lost the connection before a complete answer arrived ({detail})")
        }
        PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::Html,
            excerpt,
        } => format!(
            "a gateway in front of the portal answered an HTML page (HTTP {status}: \"{excerpt}\")"
        ),
        PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::Truncated,
            ..
        } => format!("it got an answer that was cut off (HTTP {status})"),
        PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::UnexpectedStatus,
            excerpt,
        } => format!(
            "the answer came with HTTP {status}, which is not a success, whatever its body says ({excerpt})"
        ),
        PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::NotJson,
            excerpt,
        } => format!("the answer was not JSON (HTTP {status}: \"{excerpt}\")"),
        PortalError::BadAnswer {
            status, excerpt, ..
        } => format!("the answer was unusable (HTTP {status}: \"{excerpt}\")"),
        PortalError::Api { .. } => "the portal answered an error".to_owned(),
    };
    let check = match &spec.check_with {
        Some(reader) => format!(
            "call {reader} to see whether the change is there (or ask the user to look on the portal)"
        ),
        None => "ask the user to look on the portal whether the change is there (REST cannot read it back)"
            .to_owned(),
    };
    format!(
        "The outcome of {method} is unknown: the request was sent, then {what}. Bitrix24 may or may not have applied this write. \
         Nothing was re-sent, so it was not applied twice. What to do: {check}; call {name} again only if the change is missing.",
        method = spec.method,
        name = spec.name,
    )
}

/// What a Bitrix24 error code means for the user, for codes every method can answer.
fn common_advice(code: &str, spec: &ToolSpec) -> Option<String> {
    let code = code.to_ascii_uppercase();
    // REST 3.0 spells its codes BITRIX_REST_V3_EXCEPTION_<NAME>; the two it shares with
    // classic REST get the same advice.
    let code = match code.strip_prefix(V3_PREFIX) {
        Some("INSUFFICIENTSCOPEEXCEPTION") => "INSUFFICIENT_SCOPE",
        Some("ACCESSDENIEDEXCEPTION") => "ACCESS_DENIED",
        Some(name) => return v3_advice(name.strip_prefix("VALIDATION_").unwrap_or(name), spec),
        None => code.as_str(),
    };
    let text = match code {
        "NO_AUTH_FOUND" => "The webhook URL is wrong, or the webhook was deleted or has expired. \
             Check BITRIX24_WEBHOOK_URL against Developer resources → Other → Inbound webhook on the portal, \
             or create a new webhook, then restart this server."
            .to_owned(),
        "INSUFFICIENT_SCOPE" => format!(
            "The webhook lacks the `{scope}` scope that {method} needs. Edit the inbound webhook on the portal, \
             tick the `{scope}` scope, save, and call again (the URL stays the same).",
            scope = spec.scope,
            method = spec.method
        ),
        "ACCESS_DENIED" => "The webhook's user lacks the right for this (or the portal's plan has no REST access). \
             Ask a portal administrator to grant the right, or use a webhook made by a user who has it. \
             Do not retry unchanged."
            .to_owned(),
        "INVALID_CREDENTIALS" => "The webhook's user lacks the permissions this method needs. \
             Ask a portal administrator to grant them, or use a webhook made by a user who has them."
            .to_owned(),
        "USER_ACCESS_ERROR" => "The portal administrator restricted this application to some users. \
             Ask the administrator to allow the webhook's user."
            .to_owned(),
        "INVALID_REQUEST" => "The portal requires HTTPS. Set BITRIX24_WEBHOOK_URL to the https:// address."
            .to_owned(),
        "QUERY_LIMIT_EXCEEDED" => "Bitrix24's request-rate limit was exceeded (other clients may share it). \
             Wait a few seconds and call again; send fewer calls at once."
            .to_owned(),
        "OPERATION_TIME_LIMIT" => format!(
            "{} used up its server run-time budget (480 s per 10 minutes). \
             Wait until the budget resets (up to 10 minutes) before calling it again; other methods still work.",
            spec.method
        ),
        "OVERLOAD_LIMIT" => "Bitrix24 support has blocked REST on this portal by hand. \
             Nothing will work until the portal's owner contacts Bitrix24 support; do not retry."
            .to_owned(),
        "PORTAL_DELETED" => "The portal was deleted or its public part is closed. Check the portal address \
             with its owner; do not retry."
            .to_owned(),
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => {
            "The portal had an internal error. Try once more later; if it persists, \
             the portal's owner should contact Bitrix24 support."
                .to_owned()
        }
        "ERROR_METHOD_NOT_FOUND" => format!(
            "The portal does not know {} (its module may be missing or disabled on this portal or plan).",
            spec.method
        ),
        "ERROR_MANIFEST_IS_NOT_AVAILABLE" => "The manifest is not available on this portal.".to_owned(),
        "EXPIRED_TOKEN" => "The access token expired. Restart the server with a valid webhook.".to_owned(),
        "MISSING_PARAMS" => "A required parameter did not reach the portal. Check the arguments against the tool's schema.".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// How every REST 3.0 error code begins.
const V3_PREFIX: &str = "BITRIX_REST_V3_EXCEPTION_";

/// What the REST 3.0 codes every v3 method can answer mean (api-reference/rest-v3.md), by the
/// name after the prefix.
fn v3_advice(name: &str, spec: &ToolSpec) -> Option<String> {
    let text = match name {
        "REQUESTVALIDATIONEXCEPTION" => "The portal did not accept the arguments; the parameters it \
             named are listed above as (field: problem). Correct exactly those (types count: an id is a \
             number, not a string), then call again. Do not retry unchanged."
            .to_owned(),
        "ENTITYNOTFOUNDEXCEPTION" => "No record has this id, or the webhook's user cannot see it. \
             Look the id up with the matching list tool, then call again with an id from its answer. \
             Do not retry unchanged."
            .to_owned(),
        "INVALIDPAGINATIONEXCEPTION" => "pagination was not understood: page, limit and offset must be \
             numbers and limit must not be 0. Call again with, for example, {\"page\": 1, \"limit\": 50}."
            .to_owned(),
        "UNKNOWNDTOPROPERTYEXCEPTION" => "select, filter or order names a field this method does not \
             have. Use only the field names the tool's schema lists, then call again."
            .to_owned(),
        "UNKNOWNFILTEROPERATOREXCEPTION" => "A filter condition uses an operator the portal does not \
             know. Use one of = != > >= < <= in between, as [field, operator, value], then call again."
            .to_owned(),
        "INVALIDSELECTEXCEPTION" => "select must be a list of field names, e.g. [\"id\", \"name\"]. \
             Correct it and call again."
            .to_owned(),
        "INVALIDJSONEXCEPTION" => format!(
            "The portal could not read the request body as JSON. This server always sends JSON, so \
             something between it and the portal changed the request. Tell the user; calling {} again \
             will likely fail the same way.",
            spec.name
        ),
        "IDEMPOTENCYKEYREUSEDEXCEPTION" => format!(
            "The portal already saw this call's idempotency key with a different request, so it did not \
             run it. Nothing was changed by this attempt. Read the current state first, then call {} \
             again if the change is still needed: a new call gets a new key.",
            spec.name
        ),
        "INVALIDIDEMPOTENCYKEYEXCEPTION" => format!(
            "The portal refused this call's idempotency key, so it did not run it. Call {} again \
             (a new call gets a new key); if it persists, tell the server's maintainers.",
            spec.name
        ),
        _ => return None,
    };
    Some(text)
}

/// The full error text for a failed call of `spec`.
fn explain(err: &CallError, spec: &ToolSpec) -> String {
    match err {
        CallError::Portal { error, attempts } => {
            let text = explain_portal(error, spec);
            if *attempts > 1 {
                format!("{text} (The server tried {attempts} times before giving up.)")
            } else {
                text
            }
        }
        CallError::Paused {
            method,
            resume_unix,
            wait,
        } => format!(
            "Bitrix24 paused {method}: it used up its run-time budget (OPERATION_TIME_LIMIT, 480 s of server time per 10 minutes). \
             It resets at {} (in {} s); nothing was sent. What to do: call this tool again after that; other tools still work.",
            clock_utc(*resume_unix),
            wait.as_secs_f64().ceil()
        ),
        CallError::Deadline { method } => format!(
            "This call used up its time (twice BITRIX24_TIMEOUT_SECS, checks before a write included) before {method} could be sent; \
             nothing was sent. What to do: call again; if the portal is slow, ask the user to raise BITRIX24_TIMEOUT_SECS."
        ),
        CallError::Queue { wait, rate } => format!(
            "Too many calls are queued for Bitrix24's rate limit ({rate:.2} requests/s): this one would have had to wait {} s, \
             longer than its deadline (twice BITRIX24_TIMEOUT_SECS) allows. Nothing was sent. What to do: send fewer calls at once and call this again in {} s.",
            wait.as_secs_f64().ceil(),
            wait.as_secs_f64().ceil()
        ),
    }
}

/// The failure for an answer too large to pass on.
pub fn oversized(spec: &ToolSpec, size: usize, limit: usize) -> ToolFailure {
    let narrower = spec.narrow.as_deref().unwrap_or(
        "Ask for less in one call (fewer IDs), or raise BITRIX24_MAX_RESULT_BYTES if the user agrees.",
    );
    ToolFailure::new(
        FailureKind::TooLarge,
        format!(
            "The answer of {method} is {size} bytes, above the {limit}-byte limit (BITRIX24_MAX_RESULT_BYTES), \
             so it is not passed on. The call itself succeeded. What to do: {narrower}",
            method = spec.method
        ),
    )
}

/// How much of an unexpected answer the failure quotes: enough to see its shape.
const EXCERPT_CHARS: usize = 200;

/// The failure for a successful answer that does not fit the tool's output schema. Passing it
/// on would make clients that check `structuredContent` reject it with a less useful message.
pub fn unexpected(spec: &ToolSpec, answer: &Value, problem: &AnswerProblem) -> ToolFailure {
    let text = answer.to_string();
    let excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    let cut = if excerpt.len() < text.len() {
        "…"
    } else {
        ""
    };
    tracing::warn!(
        tool = %spec.name,
        at = %problem.path,
        problem = %problem.message,
        excerpt = %excerpt,
        "answer does not fit the output schema"
    );
    let what_to_do = if spec.is_write() {
        "the write was sent and may have been applied: read the current state with the matching read tool before calling again"
    } else {
        "do not rely on this answer; the portal may run a module version this tool was not checked against.          Tell the user, and report it to the server's maintainers with the excerpt"
    };
    ToolFailure::new(
        FailureKind::UnexpectedAnswer,
        format!(
            "{method} answered in a shape this tool does not publish (at {at}: {message}). It answered: {excerpt}{cut}.              What to do: {what_to_do}.",
            method = spec.method,
            at = if problem.path.is_empty() {
                "/"
            } else {
                &problem.path
            },
            message = problem.message,
        ),
    )
}

fn explain_portal(err: &PortalError, spec: &ToolSpec) -> String {
    match err {
        PortalError::Api {
            status,
            code,
            description,
        } => explain_refusal(*status, code, description, spec),
        PortalError::BadAnswer {
            status,
            kind,
            excerpt,
        } => explain_bad_answer(*status, *kind, excerpt, spec),
        PortalError::Transport {
            kind: TransportKind::Connect,
            detail,
        } if speaks_plain_http(detail) => format!(
            "Calling {method} could not start TLS: the webhook URL says https://, but the server at that \
             address and port answers plain HTTP ({detail}). Nothing was sent. What to do: use the portal's \
             HTTPS address in BITRIX24_WEBHOOK_URL (usually without a port, i.e. 443), or http:// if that \
             port really serves plain HTTP, then restart this server.",
            method = spec.method
        ),
        PortalError::Transport { kind, detail } => explain_transport(*kind, detail, spec),
    }
}

/// The portal answered with an error envelope.
fn explain_refusal(status: u16, code: &str, description: &str, spec: &ToolSpec) -> String {
    let shown_code = if code.is_empty() {
        "(no code)".to_owned()
    } else {
        code.to_owned()
    };
    let advice = spec
        .errors
        .iter()
        .find(|a| a.matches(code, description))
        .map(|a| a.advice.clone())
        .or_else(|| common_advice(code, spec))
        .unwrap_or_else(|| {
            "The portal refused the call. Read the portal's description above, \
             correct the arguments if it names one, and do not retry unchanged."
                .to_owned()
        });
    let said = if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    };
    // Sub-calls of a batch carry no HTTP status of their own.
    let http = if status == 0 {
        String::new()
    } else {
        format!(" (HTTP {status})")
    };
    format!(
        "Bitrix24 rejected {method}: {shown_code}{http}{said}. What to do: {advice}",
        method = spec.method
    )
}

/// The portal (or something in front of it) answered what is no envelope.
fn explain_bad_answer(status: u16, kind: BadAnswerKind, excerpt: &str, spec: &ToolSpec) -> String {
    let (what, todo) = match kind {
        BadAnswerKind::Html => (
            format!(
                "an HTML page (HTTP {status}) instead of JSON, usually from a proxy or gateway in front of the portal: \"{excerpt}\""
            ),
            "The portal or its gateway is having trouble. Try again in a minute; if it persists, check the portal in a browser.",
        ),
        BadAnswerKind::Truncated => (
            format!("a JSON answer that was cut off (HTTP {status})"),
            "The answer was lost on the way, so nothing from it is used. Call again; for a write, check its effect first with the matching read tool.",
        ),
        BadAnswerKind::NotJson => (
            format!("a body that is not JSON (HTTP {status}): \"{excerpt}\""),
            "Check that BITRIX24_WEBHOOK_URL points at the Bitrix24 portal itself, then try again.",
        ),
        BadAnswerKind::TooLarge => (
            format!("a body too large to be a permission answer (HTTP {status}, {excerpt})"),
            "Check that BITRIX24_WEBHOOK_URL points at the Bitrix24 portal's /rest/ endpoint, not a proxy that answers something else.",
        ),
        BadAnswerKind::UnexpectedStatus => (
            format!(
                "HTTP {status}, which is not a success, with a `result` in its body: {excerpt}"
            ),
            "The portal or something in front of it failed, so the answer is not used. Try again in a minute; if it persists, check the portal in a browser.",
        ),
        BadAnswerKind::UnexpectedShape => (
            format!("JSON without `result` or `error` (HTTP {status}): {excerpt}"),
            "Check that BITRIX24_WEBHOOK_URL points at the Bitrix24 portal's /rest/ endpoint.",
        ),
    };
    format!(
        "Bitrix24 answered {method} with {what}. What to do: {todo}",
        method = spec.method
    )
}

/// No complete answer arrived.
fn explain_transport(kind: TransportKind, detail: &str, spec: &ToolSpec) -> String {
    let (what, todo) = match kind {
        TransportKind::Connect => (
            "could not connect to the portal, so nothing was sent",
            "Check the portal address and this machine's network or proxy, then call again.",
        ),
        TransportKind::Timeout => (
            "got no complete answer within the timeout (BITRIX24_TIMEOUT_SECS)",
            if spec.hints.read_only {
                "Call again; if it keeps timing out the portal is slow or unreachable."
            } else {
                "The portal may or may not have applied this write. Check with the matching read tool before calling again."
            },
        ),
        TransportKind::Broken => (
            "lost the connection before a complete answer arrived",
            if spec.hints.read_only {
                "Call again."
            } else {
                "The portal may or may not have applied this write. Check with the matching read tool before calling again."
            },
        ),
    };
    format!(
        "Calling {method} {what} ({detail}). What to do: {todo}",
        method = spec.method
    )
}

/// Whether a failed TLS handshake met a plain-HTTP server: rustls reports the HTTP reply as
/// a record of an unknown content type, OpenSSL as a wrong version number.
fn speaks_plain_http(detail: &str) -> bool {
    let detail = detail.to_ascii_lowercase();
    [
        "invalidcontenttype",
        "corrupt message",
        "wrong version number",
    ]
    .iter()
    .any(|sign| detail.contains(sign))
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        bitrix::{Secrets, parse_envelope, properties::any_json},
        catalog::Catalog,
    };

    /// Whatever the portal answers, every tool's error text says what to do.
    fn check(status: u16, body: &[u8]) {
        if let Err(error) = parse_envelope(status, body, &Secrets::default()) {
            let error = CallError::Portal { error, attempts: 1 };
            for entry in Catalog::shared().entries() {
                let text = failure(&error, &entry.spec).text;
                assert!(text.contains("What to do"), "{text}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn every_portal_failure_says_what_to_do(status in 100u16..600, value in any_json()) {
            check(status, value.to_string().as_bytes());
        }

        #[test]
        fn every_unusable_body_says_what_to_do(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..256)) {
            check(status, &body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn explained(status: u16, code: &str, description: &str) -> ToolFailure {
        let spec = &Catalog::shared().by_method("user.get").unwrap().spec;
        let error = CallError::from(PortalError::Api {
            status,
            code: code.into(),
            description: description.into(),
        });
        failure(&error, spec)
    }

    #[test]
    fn rest_v3_codes_say_what_happened_and_what_to_do() {
        let f = explained(
            400,
            "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION",
            "Error validating request object (id: Required field `id` is not specified)",
        );
        assert_eq!(f.kind, FailureKind::Portal);
        assert!(
            f.text
                .contains("(id: Required field `id` is not specified)"),
            "{}",
            f.text
        );
        assert!(
            f.text
                .contains("What to do: The portal did not accept the arguments"),
            "{}",
            f.text
        );
        for (status, code, says) in [
            (
                400,
                "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION",
                "No record has this id",
            ),
            (
                403,
                "BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION",
                "lacks the right",
            ),
            (
                403,
                "BITRIX_REST_V3_EXCEPTION_INSUFFICIENTSCOPEEXCEPTION",
                "`user` scope",
            ),
            (
                400,
                "BITRIX_REST_V3_EXCEPTION_INVALIDPAGINATIONEXCEPTION",
                "limit must not be 0",
            ),
            (
                400,
                "BITRIX_REST_V3_EXCEPTION_UNKNOWNDTOPROPERTYEXCEPTION",
                "field names",
            ),
            (
                400,
                "BITRIX_REST_V3_EXCEPTION_UNKNOWNFILTEROPERATOREXCEPTION",
                "operator",
            ),
            (
                422,
                "BITRIX_REST_V3_EXCEPTION_IDEMPOTENCYKEYREUSEDEXCEPTION",
                "did not run it",
            ),
        ] {
            let f = explained(status, code, "x");
            assert!(f.text.contains(code), "{code}: {}", f.text);
            assert!(f.text.contains(says), "{code}: {}", f.text);
            assert_eq!(f.code.as_deref(), Some(code));
        }
    }
}
