//! Argument problems, phrased for the model: each names the argument and says what to do.

use serde_json::Value;

use super::failure::{FailureKind, ToolFailure};
use crate::{bitrix::Secrets, catalog::ArgumentProblem};

/// Longest argument-problem message passed on; a huge bad value must not flood the context.
const MAX_PROBLEM_CHARS: usize = 300;

pub fn describe_problems(tool: &str, problems: &[ArgumentProblem]) -> ToolFailure {
    let mut text = format!("Invalid arguments for {tool}; nothing was sent to Bitrix24.");
    for p in problems {
        let place = if p.path.is_empty() {
            "arguments".to_owned()
        } else {
            format!("argument `{}`", p.path.trim_start_matches('/'))
        };
        // Masked before the cut, so a cut cannot leave most of a secret standing.
        let full = Secrets::global().redact(&p.message);
        let mut message: String = full.chars().take(MAX_PROBLEM_CHARS).collect();
        if message.len() < full.len() {
            message.push('…');
        }
        text.push_str(&format!("\n- {place}: {message}"));
    }
    text.push_str(
        "\nWhat to do: fix these arguments as the tool's input schema says, then call again.",
    );
    ToolFailure::new(
        FailureKind::InvalidArguments,
        Secrets::global().redact(&text).into_owned(),
    )
}

/// The largest magnitude a JSON number may have and still stand for one exact integer
/// as a double: 2^53.
const EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// Makes every number the tool's schema declares an integer an exact 64-bit integer, before
/// the schema check, so that nothing the portal receives is a float where it expects an ID.
/// A whole float within ±2^53 (`8017.0`) becomes that integer; any other float, and any
/// integer past the signed 64-bit range PHP can hold (`2^64` arrives as a double), is a
/// problem named back to the model instead of being sent rounded.
pub fn settle_integers(schema: &Value, value: &mut Value) -> Vec<ArgumentProblem> {
    let mut problems = Vec::new();
    settle(schema, value, String::new(), &mut problems);
    problems
}

fn settle(schema: &Value, value: &mut Value, path: String, problems: &mut Vec<ArgumentProblem>) {
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
        settle_any_of(alternatives, value, path, problems);
        return;
    }
    match value {
        Value::Number(n) if wants_integer(schema) => {
            if n.as_i64().is_some() {
                return;
            }
            let exact = n
                .as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT_DOUBLE);
            match exact {
                #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53
                Some(f) => *value = Value::from(f as i64),
                None => problems.push(ArgumentProblem {
                    path,
                    message: format!(
                        "{n} is not an integer Bitrix24 can take: send a whole number between {} and {}",
                        i64::MIN,
                        i64::MAX
                    ),
                }),
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()));
                if let Some(sub) = sub {
                    settle(sub, item, format!("{path}/{key}"), problems);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    settle(sub, item, format!("{path}/{i}"), problems);
                }
            }
        }
        _ => {}
    }
}

/// An id the schema takes as an integer or a string of digits is sent as the integer it
/// stands for: "0645" and 645 are one site, and the guards, the question and the ledger compare
/// ids as the portal reads them.
fn settle_any_of(
    alternatives: &[Value],
    value: &mut Value,
    path: String,
    problems: &mut Vec<ArgumentProblem>,
) {
    let integer = alternatives.iter().find(|a| wants_integer(a));
    match value {
        Value::String(s) if integer.is_some() => {
            let digits = !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
            if let Some(n) = digits.then(|| s.parse::<i64>().ok()).flatten() {
                *value = Value::from(n);
            }
        }
        Value::Number(_) => {
            if let Some(alt) = integer {
                settle(alt, value, path, problems);
            }
        }
        Value::Array(_) | Value::Object(_) => {
            let kind = if value.is_array() { "array" } else { "object" };
            if let Some(alt) = alternatives.iter().find(|a| a["type"] == kind) {
                settle(alt, value, path, problems);
            }
        }
        _ => {}
    }
}

fn wants_integer(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(types)) => {
            types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "number")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_are_exact_or_refused() {
        let schema = json!({"type": "object", "properties": {
            "taskId": {"type": "integer"},
            "users": {"type": "array", "items": {"type": "integer"}},
            "ratio": {"type": "number"}
        }});
        let mut args = json!({"taskId": 8017.0, "users": [1.0, 2], "ratio": 0.5});
        assert!(settle_integers(&schema, &mut args).is_empty());
        assert_eq!(args, json!({"taskId": 8017, "users": [1, 2], "ratio": 0.5}));
        assert_eq!(args["taskId"].to_string(), "8017");
        let mut args: Value = serde_json::from_str(
            r#"{"taskId": 18446744073709551616, "users": [1.5, 9223372036854775808]}"#,
        )
        .unwrap();
        let problems = settle_integers(&schema, &mut args);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/taskId", "/users/0", "/users/1"], "{problems:?}");
    }

    #[test]
    fn ids_given_as_digits_are_sent_as_the_integers_they_stand_for() {
        let id = json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]});
        let schema = json!({"type": "object", "properties": {
            "id": id,
            "USER_ID": {"anyOf": [{"type": "integer"}, {"type": "array", "items": id}]},
            "name": {"type": "string"}
        }});
        let mut args = json!({"id": "0645", "USER_ID": ["0547", 12.0], "name": "0645"});
        assert!(settle_integers(&schema, &mut args).is_empty());
        assert_eq!(
            args,
            json!({"id": 645, "USER_ID": [547, 12], "name": "0645"})
        );
    }
}
