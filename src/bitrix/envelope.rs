//! The Bitrix24 answer envelope: `result` or `error`, read by what is there, not by the HTTP
//! status alone, and trusting nothing about the body.

use serde_json::{Map, Value};

use super::secrets::Secrets;

/// How much of an unexpected body is quoted back, so the model sees what came instead
/// of JSON without drowning in an HTML page.
const EXCERPT_CHARS: usize = 200;

/// The most of an `error_description` kept: real ones are a sentence, and a huge one would
/// flood every log line and error text that quotes it.
const DESCRIPTION_CHARS: usize = 2_000;

/// A successful answer: `result` plus what `time` says about the method's run-time budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
    pub operating: Option<f64>,
    pub operating_reset_at: Option<f64>,
    /// `time.finish`: the portal's clock when it answered.
    pub finished_at: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAnswerKind {
    /// An HTML page, usually from a proxy or load balancer in front of the portal.
    Html,
    /// JSON that stops in the middle.
    Truncated,
    /// Anything else that is not JSON.
    NotJson,
    /// JSON, but neither `result` nor `error` at the top.
    UnexpectedShape,
    /// A body larger than anything a permission method answers.
    TooLarge,
    /// A `result` under a status that is not 2xx: whatever sent it did not succeed, or at
    /// least cannot be trusted to have.
    UnexpectedStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Could not connect: nothing reached the portal.
    Connect,
    /// No complete answer within the timeout; the portal may have acted.
    Timeout,
    /// The connection broke after the request was sent; the portal may have acted.
    Broken,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortalError {
    /// The portal answered with its error envelope.
    #[error("Bitrix24 error {code:?} (HTTP {status}): {description}")]
    Api {
        status: u16,
        code: String,
        description: String,
    },
    #[error("unusable answer (HTTP {status}, {kind:?}): {excerpt}")]
    BadAnswer {
        status: u16,
        kind: BadAnswerKind,
        excerpt: String,
    },
    #[error("transport failure ({kind:?}): {detail}")]
    Transport { kind: TransportKind, detail: String },
}

/// Reads a Bitrix24 answer. An error is recognised by the presence of the `error` key, not by
/// the HTTP status or the truthiness of the code: some methods answer `"error": ""` and some
/// codes are numbers.
pub fn parse_envelope(status: u16, body: &[u8], secrets: &Secrets) -> Result<Success, PortalError> {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(bad_body(status, body, e.is_eof(), secrets)),
    };
    secrets.redact_value(&mut value);
    let Value::Object(mut top) = value else {
        return Err(PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::UnexpectedShape,
            excerpt: excerpt(&value.to_string()),
        });
    };
    if let Some(error) = top.get("error") {
        let (code, description) = match error {
            // REST 3.0: {"error": {"code", "message", "validation": [{"field", "message"}]}}.
            // Its system errors (QUERY_LIMIT_EXCEEDED, NO_AUTH_FOUND, ...) keep the classic
            // string form below, so both are read on either path.
            Value::Object(v3) => v3_error(v3),
            code => (text(Some(code)), text(top.get("error_description"))),
        };
        return Err(PortalError::Api {
            status,
            code: cut(code, DESCRIPTION_CHARS),
            description: cut(description, DESCRIPTION_CHARS),
        });
    }
    let Some(result) = top.remove("result") else {
        return Err(PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::UnexpectedShape,
            excerpt: excerpt(&Value::Object(top).to_string()),
        });
    };
    if !(200..300).contains(&status) {
        return Err(PortalError::BadAnswer {
            status,
            kind: BadAnswerKind::UnexpectedStatus,
            excerpt: excerpt(&result.to_string()),
        });
    }
    let time = top.get("time").and_then(Value::as_object);
    let number = |m: Option<&Map<String, Value>>, k: &str| m.and_then(|m| m.get(k)?.as_f64());
    Ok(Success {
        result,
        total: top.get("total").and_then(Value::as_u64),
        next: top.get("next").and_then(Value::as_u64),
        operating: number(time, "operating"),
        operating_reset_at: number(time, "operating_reset_at"),
        finished_at: number(time, "finish"),
    })
}

/// A JSON value as text: strings as they are, `null` or nothing as empty, anything else as JSON.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The code and description of a REST 3.0 error object. The fields a request failed on are
/// written into the description as `(field: problem; ...)`, the one place every reader of a
/// [`PortalError`] already quotes, so the model sees which argument to correct.
fn v3_error(error: &Map<String, Value>) -> (String, String) {
    let code = text(error.get("code"));
    let mut description = text(error.get("message"));
    let fields: Vec<String> = error
        .get("validation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| {
            let field = text(item.get("field"));
            let problem = text(item.get("message"));
            match (field.is_empty(), problem.is_empty()) {
                (false, false) => format!("{field}: {problem}"),
                (true, _) => problem,
                (false, true) => field,
            }
        })
        .filter(|f| !f.is_empty())
        .collect();
    if !fields.is_empty() {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&format!("({})", fields.join("; ")));
    }
    (code, description)
}

fn bad_body(status: u16, body: &[u8], eof: bool, secrets: &Secrets) -> PortalError {
    // Masked before anything is cut: a secret straddling the cut would otherwise show all
    // but its last characters.
    let text = String::from_utf8_lossy(body);
    let text = secrets.redact_excerpt(&text);
    let trimmed = text.trim_start();
    let lower_start: String = trimmed
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    let kind = if lower_start.starts_with("<!doctype html") || lower_start.starts_with("<html") {
        BadAnswerKind::Html
    } else if eof && (trimmed.starts_with('{') || trimmed.starts_with('[')) {
        BadAnswerKind::Truncated
    } else {
        BadAnswerKind::NotJson
    };
    let shown = if kind == BadAnswerKind::Html {
        html_title(trimmed).unwrap_or_else(|| excerpt(trimmed))
    } else {
        excerpt(trimmed)
    };
    PortalError::BadAnswer {
        status,
        kind,
        excerpt: shown,
    }
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = html.get(start..end)?.trim();
    (!title.is_empty()).then(|| excerpt(title))
}

/// Text already masked, cut to `max` characters with a mark where it was cut.
fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((end, _)) => format!("{}… (cut)", &text[..end]),
    }
}

fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(status: u16, body: &str) -> Result<Success, PortalError> {
        let secrets = Secrets::default();
        secrets.register("abcd1234efgh5678");
        parse_envelope(status, body.as_bytes(), &secrets)
    }

    #[test]
    fn success_with_time() {
        let ok = parse(
            200,
            r#"{"result":true,"time":{"operating":0.1,"operating_reset_at":1773931520}}"#,
        )
        .unwrap();
        assert_eq!(ok.result, json!(true));
        assert_eq!(ok.operating, Some(0.1));
        assert_eq!(ok.operating_reset_at, Some(1773931520.0));
    }

    #[test]
    fn empty_and_numeric_codes_are_errors() {
        let e = parse(400, r#"{"error":"","error_description":"Wrong operation"}"#).unwrap_err();
        assert_eq!(
            e,
            PortalError::Api {
                status: 400,
                code: String::new(),
                description: "Wrong operation".into()
            }
        );
        let e = parse(400, r#"{"error":100,"error_description":"x"}"#).unwrap_err();
        assert!(matches!(e, PortalError::Api { code, .. } if code == "100"));
        // An error envelope with HTTP 200 is still an error.
        let e = parse(200, r#"{"error":"QUERY_LIMIT_EXCEEDED"}"#).unwrap_err();
        assert!(matches!(e, PortalError::Api { code, .. } if code == "QUERY_LIMIT_EXCEEDED"));
    }

    #[test]
    fn rest_v3_error_objects_read_like_classic_errors() {
        let e = parse(
            400,
            r#"{"error":{"code":"BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION","message":"Error validating request object","validation":[{"message":"Required field `id` is not specified","field":"id"},{"field":"select","message":"Unknown"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PortalError::Api {
                status: 400,
                code: "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION".into(),
                description: "Error validating request object (id: Required field `id` is not specified; select: Unknown)".into()
            }
        );
        let e = parse(
            403,
            r#"{"error":{"code":"BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION","message":"Access denied"}}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, PortalError::Api { status: 403, code, description }
            if code == "BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION" && description == "Access denied")
        );
        // System errors keep the classic string form on the REST 3.0 path too.
        let e = parse(
            503,
            r#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, PortalError::Api { code, .. } if code == "QUERY_LIMIT_EXCEEDED"));
        // An echoed secret is masked inside the object as well.
        let e = parse(
            400,
            r#"{"error":{"code":"X","message":"m","validation":[{"field":"abcd1234efgh5678","message":"bad"}]}}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("abcd1234efgh5678"));
    }

    #[test]
    fn rest_v3_successes_keep_their_item_items_or_result() {
        for result in [
            json!({"item": {"id": 1, "accessCode": "DR1"}}),
            json!({"items": [{"id": 1002}]}),
            json!({"result": true}),
        ] {
            let body = json!({"result": result, "time": {"operating": 0.2}}).to_string();
            let ok = parse(200, &body).unwrap();
            assert_eq!(ok.result, result);
            assert_eq!(
                (ok.total, ok.next),
                (None, None),
                "REST 3.0 lists page without them"
            );
            assert_eq!(ok.operating, Some(0.2));
        }
    }

    #[test]
    fn a_result_under_a_failed_status_is_no_success() {
        for status in [302, 401, 403, 404, 429, 500, 503] {
            assert!(
                matches!(
                    parse(status, r#"{"result":true}"#).unwrap_err(),
                    PortalError::BadAnswer { kind: BadAnswerKind::UnexpectedStatus, status: s, .. } if s == status
                ),
                "{status}"
            );
        }
        assert!(parse(201, r#"{"result":true}"#).is_ok());
    }

    #[test]
    fn bad_bodies() {
        let html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>";
        assert!(matches!(
            parse(502, html).unwrap_err(),
            PortalError::BadAnswer { kind: BadAnswerKind::Html, excerpt, .. } if excerpt == "502 Bad Gateway"
        ));
        assert!(matches!(
            parse(200, r#"{"result":{"allowedActions":{"1":"#).unwrap_err(),
            PortalError::BadAnswer {
                kind: BadAnswerKind::Truncated,
                ..
            }
        ));
        assert!(matches!(
            parse(200, "").unwrap_err(),
            PortalError::BadAnswer {
                kind: BadAnswerKind::NotJson,
                ..
            }
        ));
        assert!(matches!(
            parse(200, r#"{"foo":1}"#).unwrap_err(),
            PortalError::BadAnswer {
                kind: BadAnswerKind::UnexpectedShape,
                ..
            }
        ));
        assert!(matches!(
            parse(200, "[1,2]").unwrap_err(),
            PortalError::BadAnswer {
                kind: BadAnswerKind::UnexpectedShape,
                ..
            }
        ));
    }

    #[test]
    fn echoed_secret_is_masked() {
        let e = parse(
            401,
            r#"{"error":"NO_AUTH_FOUND","error_description":"bad /rest/1/abcd1234efgh5678/"}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("abcd1234efgh5678"));
        let e = parse(502, "<html><title>no abcd1234efgh5678</title></html>").unwrap_err();
        assert!(!e.to_string().contains("abcd1234efgh5678"));
        let ok = parse(200, r#"{"result":["abcd1234efgh5678"]}"#).unwrap();
        assert_eq!(ok.result, json!(["***"]));
    }
}

#[cfg(test)]
pub(crate) mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Arbitrary JSON shaped a little like envelopes; other wings' property tests reuse it.
    pub(crate) fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    "(result|error|error_description|time|[a-z]{1,6})",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Any 6 consecutive characters of the secret, in any letter case.
    pub(crate) fn shows_part_of(text: &str, secret: &str) -> Option<String> {
        let text = text.to_ascii_lowercase();
        let secret = secret.to_ascii_lowercase();
        (0..=secret.len().saturating_sub(6))
            .map(|i| &secret[i..i + 6])
            .find(|w| text.contains(w))
            .map(str::to_owned)
    }

    /// The secret, each character raw, recased, JSON-escaped or percent-encoded.
    fn spelled(secret: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(0u8..4, secret.len()).prop_map(move |forms| {
            secret
                .bytes()
                .zip(forms)
                .map(|(b, form)| match form {
                    0 => char::from(b).to_string(),
                    1 => char::from(b.to_ascii_uppercase()).to_string(),
                    2 => format!("\\u{b:04x}"),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        })
    }

    /// Body shapes a proxy or a broken portal answers with; `{}` is where the text goes.
    const SHAPES: [&str; 6] = [
        "<!DOCTYPE html><html><head><title>{}</title></head><body>x</body></html>",
        "<html><body>{}</body></html>",
        "{\"result\":{\"x\":\"{}",
        "{\"error\":\"E\",\"error_description\":\"{}\"",
        "{}",
        "{\"foo\":\"{}\"}",
    ];

    fn check(status: u16, body: &[u8]) {
        let secrets = Secrets::default();
        secrets.register("abcd1234efgh5678");
        match parse_envelope(status, body, &secrets) {
            Ok(success) => assert!(!success.result.to_string().contains("abcd1234efgh5678")),
            Err(error) => assert!(!error.to_string().contains("abcd1234efgh5678")),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..512)) {
            check(status, &body);
        }

        #[test]
        fn arbitrary_json_never_panics(status in 100u16..600, value in any_json()) {
            check(status, value.to_string().as_bytes());
        }

        /// Mask first, cut later: wherever the secret sits in a body, in whatever spelling,
        /// no 6 of its characters in a row reach the error text.
        #[test]
        fn secret_at_any_offset_never_shows(
            filler in "[i-z <>/:,.]{0,400}",
            at in 0usize..400,
            shape in 0usize..SHAPES.len(),
            echo in spelled("abcd1234efgh5678"),
            cut in prop::option::of(0usize..600),
        ) {
            let at = at.min(filler.len());
            let text = format!("{}{}{}", &filler[..at], echo, &filler[at..]);
            let mut body = SHAPES[shape].replace("{}", &text).into_bytes();
            // A body may also stop in transit, inside the secret.
            if let Some(cut) = cut {
                body.truncate(cut);
            }
            let secrets = Secrets::default();
            secrets.register("abcd1234efgh5678");
            let shown = match parse_envelope(502, &body, &secrets) {
                Ok(success) => success.result.to_string(),
                Err(error) => error.to_string(),
            };
            prop_assert!(shows_part_of(&shown, "abcd1234efgh5678").is_none(), "{}", shown);
        }

        #[test]
        fn any_prefix_of_a_real_answer_is_handled(cut in 0usize..120) {
            let full = br#"{"result":{"allowedActions":{"503":{"EDIT":true}}},"time":{"operating":0.1,"operating_reset_at":1773931520}}"#;
            let body = &full[..cut.min(full.len())];
            let parsed = parse_envelope(200, body, &Secrets::default());
            prop_assert_eq!(parsed.is_ok(), cut >= full.len());
        }

        #[test]
        fn only_a_2xx_status_is_ever_a_success(status in 100u16..600, value in any_json()) {
            let parsed = parse_envelope(status, value.to_string().as_bytes(), &Secrets::default());
            prop_assert!(parsed.is_err() || (200..300).contains(&status));
        }
    }
}
