//! The `batch` tool: many read-only tool calls sent as Bitrix24 `batch` requests of at most
//! 50 commands each, through the same limiter as every other call. Each item is checked
//! against its own tool's schema, and answers one result or one error, in order.

use serde_json::{Map, Value, json};

use crate::{
    catalog::{Entry, Kind},
    dispatch::Dispatcher,
    explain::explain,
    limits::Progress,
    portal::PortalError,
};

/// Bitrix24 runs at most this many commands in one `batch` request.
pub const PER_REQUEST: usize = 50;

/// Inside `batch`, `$result[key]` in a parameter is replaced by an earlier command's answer;
/// a value that happens to contain it would not be sent as written.
const BATCH_REFERENCE: &str = "$result[";

pub async fn run(d: &Dispatcher, args: &Value, progress: &dyn Progress) -> Result<Value, String> {
    let items = args["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut answers: Vec<Option<Value>> = vec![None; items.len()];
    let mut pending: Vec<(usize, &Entry, Value)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tool = item["tool"].as_str().unwrap_or_default();
        let item_args = item.get("arguments").cloned().unwrap_or_else(|| json!({}));
        match check_item(d, tool, &item_args) {
            Ok(entry) => pending.push((index, entry, item_args)),
            Err(text) => answers[index] = Some(failed(tool, &text)),
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
        let batch_spec = &d
            .catalog()
            .by_method("batch")
            .expect("the batch tool is in the catalog")
            .spec;
        match d
            .gateway()
            .call("batch", &json!({"halt": 0, "cmd": cmd}), true, progress)
            .await
        {
            Ok(success) => {
                let results = success.result.get("result").and_then(Value::as_object);
                let errors = success
                    .result
                    .get("result_error")
                    .and_then(Value::as_object);
                for (index, entry, _) in chunk {
                    let k = key(*index);
                    let spec = &entry.spec;
                    answers[*index] = Some(if let Some(result) = results.and_then(|r| r.get(&k)) {
                        let mut result = result.clone();
                        spec.normalize.apply(&mut result);
                        json!({"tool": spec.name, "ok": true, "result": result})
                    } else if let Some(error) = errors.and_then(|e| e.get(&k)) {
                        failed(&spec.name, &explain(&sub_error(error).into(), spec))
                    } else {
                        failed(
                            &spec.name,
                            "Bitrix24 answered the batch without an answer for this item. What to do: call the tool on its own.",
                        )
                    });
                }
            }
            Err(err) => {
                let text = explain(&err, batch_spec);
                for (index, entry, _) in chunk {
                    answers[*index] = Some(failed(&entry.spec.name, &text));
                }
            }
        }
    }

    let items: Vec<Value> = answers.into_iter().map(Option::unwrap_or_default).collect();
    let succeeded = items.iter().filter(|i| i["ok"] == true).count();
    Ok(json!({
        "items": items,
        "succeeded": succeeded,
        "failed": items.len() - succeeded,
        "requests": requests,
    }))
}

fn check_item<'a>(d: &'a Dispatcher, tool: &str, args: &Value) -> Result<&'a Entry, String> {
    let entry = d.lookup(tool).map_err(|e| {
        format!(
            "{e}. What to do: use one of the read-only tools this server lists, or drop the item."
        )
    })?;
    let spec = &entry.spec;
    if spec.kind == Kind::Batch {
        return Err(
            "batch cannot contain batch. What to do: put these items into the outer batch directly."
                .to_owned(),
        );
    }
    if spec.is_write() {
        return Err(format!(
            "{tool} writes to the portal; batch runs read-only tools only. What to do: call {tool} on its own."
        ));
    }
    let problems = entry.check_arguments(args);
    if !problems.is_empty() {
        return Err(d.describe_problems(tool, &problems));
    }
    if contains_reference(args) {
        return Err(format!(
            "An argument contains \"{BATCH_REFERENCE}\", which Bitrix24 batch would replace. What to do: call {tool} on its own."
        ));
    }
    Ok(entry)
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
pub fn php_query(args: &Value) -> String {
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
