//! The `batch` tool: many read-only tool calls sent as Bitrix24 `batch` requests of at most
//! 50 commands each, through the same limiter as every other call. Each item is checked
//! against its own tool's schema, and answers one result or one error, in order.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{
    explain::{failure, unexpected},
    failure::{FailureKind, ToolFailure},
    floor::{size, smallest},
};
use crate::{
    bitrix::{
        Api, PortalError,
        limits::{CallError, Gateway, Progress},
        methods,
    },
    catalog::{Entry, ToolSpec},
};

/// Bitrix24 runs at most this many commands in one `batch` request.
const PER_REQUEST: usize = 50;

/// Inside `batch`, `$result[key]` in a parameter is replaced by an earlier command's answer;
/// a value that happens to contain it would not be sent as written.
const BATCH_REFERENCE: &str = "$result[";

/// One item as the pipeline checked it: the tool and its arguments, or the tool's name and
/// why it cannot be called.
pub type CheckedItem<'a> = Result<(&'a Entry, Value), (String, String)>;

/// Sends the callable items in requests of at most [`PER_REQUEST`] and answers one result or
/// one error per item, in order.
pub async fn run(
    gateway: &Gateway,
    batch_spec: &ToolSpec,
    items: Vec<CheckedItem<'_>>,
    only_keys: &[String],
    deadline: Instant,
    progress: &dyn Progress,
) -> Value {
    let mut answers: Vec<Option<Value>> = vec![None; items.len()];
    let mut pending: Vec<(usize, &Entry, Value)> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Ok((entry, item_args)) => pending.push((index, entry, item_args)),
            Err((tool, text)) => answers[index] = Some(failed(&tool, &text)),
        }
    }

    let mut requests = 0;
    for chunk in pending.chunks(PER_REQUEST) {
        let cmd: Map<String, Value> = chunk
            .iter()
            .map(|(index, entry, item_args)| {
                let query = php_query(item_args);
                (
                    key(*index),
                    Value::String(format!("{}?{query}", entry.spec.method)),
                )
            })
            .collect();
        requests += 1;
        match gateway
            .call(
                methods::batch::METHOD,
                Api::Classic,
                &methods::batch::request(cmd),
                false,
                deadline,
                progress,
            )
            .await
        {
            Ok(success) => {
                let (results, errors) = methods::batch::answers(&success.result);
                for (index, entry, _) in chunk {
                    let k = key(*index);
                    let result = results.and_then(|r| r.get(&k));
                    let error = errors.and_then(|e| e.get(&k));
                    answers[*index] = Some(item_answer(entry, result, error, only_keys));
                }
            }
            Err(err) => {
                let text = failure(&err, batch_spec).text;
                for (index, entry, _) in chunk {
                    answers[*index] = Some(failed(&entry.spec.name, &text));
                }
            }
        }
    }

    let items: Vec<Value> = answers.into_iter().map(Option::unwrap_or_default).collect();
    let succeeded = items.iter().filter(|i| i["ok"] == true).count();
    json!({
        "items": items,
        "succeeded": succeeded,
        "failed": items.len() - succeeded,
        "requests": requests,
    })
}

/// One item's place in the batch's answer: its result, checked against its tool's schema, or
/// its error, or that the portal left it out.
fn item_answer(
    entry: &Entry,
    result: Option<&Value>,
    error: Option<&Value>,
    only_keys: &[String],
) -> Value {
    let spec = &entry.spec;
    if let Some(result) = result {
        let mut result = result.clone();
        spec.normalize.apply(&mut result);
        if !only_keys.is_empty() {
            project(&mut result, only_keys);
        }
        let answer = json!({ "result": result });
        match entry.check_answer(&answer) {
            Ok(()) => json!({"tool": spec.name, "ok": true, "result": answer["result"]}),
            Err(problem) => failed(
                &spec.name,
                &unexpected(spec, &answer["result"], &problem).text,
            ),
        }
    } else if let Some(error) = error {
        let error = CallError::from(sub_error(error));
        failed(&spec.name, &failure(&error, spec).text)
    } else {
        failed(
            &spec.name,
            "Bitrix24 answered the batch without an answer for this item. What to do: call the tool on its own.",
        )
    }
}

/// Refuses, before any request, a batch whose smallest possible answer is over `limit`: every
/// callable item at the smallest result its tool's output schema admits (or an empty error,
/// whichever is shorter), every refused item exactly as it will read.
pub fn refuse_oversized(items: &[CheckedItem<'_>], limit: usize) -> Result<(), ToolFailure> {
    let envelope = size(&json!({"items": [], "succeeded": 0, "failed": 0, "requests": 0}));
    let mut total = envelope;
    let mut fit = 0;
    for (n, item) in items.iter().enumerate() {
        let least = match item {
            Ok((entry, _)) => {
                let name = &entry.spec.name;
                let result = smallest(entry.result_model());
                let answered = size(&json!({"tool": name, "ok": true, "result": result}));
                answered.min(size(&failed(name, "")))
            }
            Err((tool, text)) => size(&failed(tool, text)),
        };
        total += least + usize::from(n > 0);
        if total <= limit {
            fit = n + 1;
        }
    }
    if total <= limit {
        return Ok(());
    }
    Err(ToolFailure::new(
        FailureKind::TooLarge,
        format!(
            "The answer to these {count} items would be at least {total} bytes whatever Bitrix24 \
             answers (each tool's smallest answer), above the {limit}-byte limit \
             (BITRIX24_MAX_RESULT_BYTES), so nothing was sent. What to do: send at most {fit} \
             items per batch call and make several calls, or raise BITRIX24_MAX_RESULT_BYTES if \
             the user agrees.",
            count = items.len(),
        ),
    ))
}

/// Cuts every object that holds at least one of `keys` down to those keys; objects without
/// any of them stay whole and are searched further, so nothing unasked-for is lost silently.
fn project(value: &mut Value, keys: &[String]) {
    match value {
        Value::Object(map) => {
            if keys.iter().any(|k| map.contains_key(k)) {
                map.retain(|k, _| keys.contains(k));
            } else {
                map.values_mut().for_each(|v| project(v, keys));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| project(v, keys)),
        _ => {}
    }
}

/// Refuses arguments that Bitrix24's batch would not send as written.
pub fn check_references(tool: &str, args: &Value) -> Result<(), String> {
    if contains_reference(args) {
        return Err(format!(
            "An argument contains \"{BATCH_REFERENCE}\", which Bitrix24 batch would replace. What to do: call {tool} on its own."
        ));
    }
    Ok(())
}

fn contains_reference(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(BATCH_REFERENCE),
        Value::Array(items) => items.iter().any(contains_reference),
        Value::Object(map) => map.values().any(contains_reference),
        _ => false,
    }
}

fn key(index: usize) -> String {
    format!("i{index}")
}

fn failed(tool: &str, text: &str) -> Value {
    json!({"tool": tool, "ok": false, "error": text})
}

/// A sub-call's error as a portal error; it has no HTTP status of its own.
fn sub_error(error: &Value) -> PortalError {
    let field = |name| match error.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    PortalError::Api {
        status: 0,
        code: field("error"),
        description: field("error_description"),
    }
}

/// Parameters the way Bitrix24's `batch` reads a command's query string: PHP's
/// `http_build_query` (`users[0]=503&users[1]=547`), URL-encoded.
fn php_query(args: &Value) -> String {
    fn flatten(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    flatten(format!("{prefix}[{k}]"), v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    flatten(format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            Value::Bool(b) => out.push((prefix, if *b { "1" } else { "0" }.to_owned())),
            Value::Number(n) => out.push((prefix, n.to_string())),
            Value::String(s) => out.push((prefix, s.clone())),
        }
    }
    let mut pairs = Vec::new();
    if let Value::Object(map) = args {
        for (k, v) in map {
            flatten(k.clone(), v, &mut pairs);
        }
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        query.append_pair(k, v);
    }
    query.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_cut_objects_that_hold_them() {
        let mut v = json!({"allowedActions": {
            "503": {"EDIT": true, "REMOVE": false, "COMPLETE": true},
            "7": {"EDIT": false, "RATE": true}
        }, "other": [{"EDIT": 1, "X": 2}, {"Y": 3}]});
        project(&mut v, &["EDIT".to_owned()]);
        assert_eq!(
            v,
            json!({"allowedActions": {"503": {"EDIT": true}, "7": {"EDIT": false}},
                   "other": [{"EDIT": 1}, {"Y": 3}]})
        );
    }

    #[test]
    fn encodes_like_http_build_query() {
        assert_eq!(
            php_query(&json!({"taskId": 8017, "users": [503, 547]})),
            "taskId=8017&users%5B0%5D=503&users%5B1%5D=547"
        );
        assert_eq!(php_query(&json!({"full": true})), "full=1");
        assert_eq!(
            php_query(&json!({"FEATURE": "a b&c=d", "x": null})),
            "FEATURE=a+b%26c%3Dd"
        );
        assert_eq!(
            php_query(&json!({"r": {"AU": ["read"]}})),
            "r%5BAU%5D%5B0%5D=read"
        );
        assert_eq!(php_query(&json!({})), "");
    }

    #[test]
    fn finds_batch_references() {
        assert!(contains_reference(&json!({"a": ["x", "$result[k]"]})));
        assert!(!contains_reference(&json!({"a": "$result"})));
    }
}
