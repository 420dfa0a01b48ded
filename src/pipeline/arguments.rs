//! Argument problems, phrased for the model: each names the argument and says what to do.

use serde_json::{Number, Value};

use super::failure::{FailureKind, ToolFailure};
use crate::{
    bitrix::Secrets,
    catalog::{ArgumentProblem, Schema, SchemaNode, pointer_child as child},
};

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
pub fn settle_integers(schema: &SchemaNode, value: &mut Value) -> Vec<ArgumentProblem> {
    let mut problems = Vec::new();
    settle(schema, value, String::new(), &mut problems);
    problems
}

fn settle(node: &SchemaNode, value: &mut Value, path: String, problems: &mut Vec<ArgumentProblem>) {
    let Some(schema) = node.schema() else {
        return;
    };
    if !schema.any_of().is_empty() {
        settle_any_of(schema.any_of(), value, path, problems);
        return;
    }
    match value {
        Value::Number(n) if schema.wants_integer() => {
            if let Some(problem) = settle_number(n, &path) {
                problems.push(problem);
            } else if n.as_i64().is_none() {
                #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53
                let whole = n.as_f64().map_or(0, |f| f as i64);
                *value = Value::from(whole);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let sub = schema.property(key).or_else(|| {
                    schema
                        .additional()
                        .filter(|s| matches!(s, SchemaNode::Schema(_)))
                });
                if let Some(sub) = sub {
                    settle(sub, item, child(&path, key), problems);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.items() {
                for (i, item) in items.iter_mut().enumerate() {
                    settle(sub, item, child(&path, &i.to_string()), problems);
                }
            }
        }
        _ => {}
    }
}

/// A number the schema wants an integer: `None` when it is one, or a whole float within
/// ±2^53 that stands for exactly one.
fn settle_number(n: &Number, path: &str) -> Option<ArgumentProblem> {
    if n.as_i64().is_some() {
        return None;
    }
    let exact = n
        .as_f64()
        .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT_DOUBLE);
    match exact {
        Some(_) => None,
        None => Some(ArgumentProblem {
            path: path.to_owned(),
            message: format!(
                "{n} is not an integer Bitrix24 can take: send a whole number between {} and {}",
                i64::MIN,
                i64::MAX
            ),
        }),
    }
}

/// An id the schema takes as an integer or a string of digits is sent as the integer it
/// stands for: "0645" and 645 are one site, and the guards, the question and the ledger compare
/// ids as the portal reads them.
fn settle_any_of(
    alternatives: &[SchemaNode],
    value: &mut Value,
    path: String,
    problems: &mut Vec<ArgumentProblem>,
) {
    let integer = alternatives
        .iter()
        .find(|a| a.schema().is_some_and(Schema::wants_integer));
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
            let same = |a: &&SchemaNode| a.schema().and_then(Schema::single_type) == Some(kind);
            if let Some(alt) = alternatives.iter().find(same) {
                settle(alt, value, path, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::Checker;

    fn settle_integers(schema: &Value, value: &mut Value) -> Vec<ArgumentProblem> {
        super::settle_integers(Checker::compile(schema).unwrap().root(), value)
    }

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
