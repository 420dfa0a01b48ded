//! The smallest answer a call can get, read from the catalog's output schemas: when even that
//! is over `BITRIX24_MAX_RESULT_BYTES`, the call is refused before it spends any request.
//!
//! Only a lower bound may refuse: an answer that might fit is always sent. So the bound is
//! the smallest JSON value each schema admits (required keys only, `minItems` items, the
//! shortest strings and numbers). Every answer passed on is checked against its schema after
//! any `only_keys` projection, so the bound holds for projected answers too.

use serde_json::{Map, Value};

/// The smallest value `schema` admits. A schema this does not understand admits anything:
/// `0`, the shortest JSON.
pub fn smallest(schema: &Value) -> Value {
    let anything = || Value::from(0);
    let Some(schema) = schema.as_object() else {
        return anything();
    };
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return shortest(options.iter().cloned()).unwrap_or_else(anything);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            return shortest(options.iter().map(smallest)).unwrap_or_else(anything);
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        // A value meets every part, so it is at least as large as the largest part's floor.
        return parts
            .iter()
            .map(smallest)
            .max_by_key(size)
            .unwrap_or_else(anything);
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema.contains_key("properties") || schema.contains_key("required") => {
            vec!["object"]
        }
        _ => return anything(),
    };
    shortest(types.into_iter().map(|t| of_type(t, schema))).unwrap_or_else(anything)
}

fn of_type(kind: &str, schema: &Map<String, Value>) -> Value {
    let count = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    match kind {
        "object" => object(schema),
        "array" => {
            let item = smallest(schema.get("items").unwrap_or(&Value::Null));
            // Bounded: a schema asking for a million items is not built item by item.
            Value::Array(vec![item; count("minItems").min(10_000)])
        }
        "string" => Value::String("x".repeat(count("minLength").min(100_000))),
        "integer" | "number" => {
            let minimum = schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
            // No number at or above a positive minimum is written shorter than its ceiling.
            if minimum > 0.0 && minimum < 1e15 {
                Value::from(minimum.ceil() as u64)
            } else {
                Value::from(0)
            }
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::from(0),
    }
}

/// An object with its required keys at their smallest.
fn object(schema: &Map<String, Value>) -> Value {
    let properties = schema.get("properties").and_then(Value::as_object);
    let whole: Map<String, Value> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| {
            let property = properties.and_then(|p| p.get(name));
            let property = property.or_else(|| schema.get("additionalProperties"));
            (name.to_owned(), smallest(property.unwrap_or(&Value::Null)))
        })
        .collect();
    Value::Object(whole)
}

fn shortest(values: impl Iterator<Item = Value>) -> Option<Value> {
    values.min_by_key(size)
}

pub fn size(value: &Value) -> usize {
    value.to_string().len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_smallest_value_each_schema_admits() {
        let schema = json!({
            "type": "object",
            "required": ["allowedActions", "ids", "name", "n"],
            "properties": {
                "allowedActions": {"type": "object", "additionalProperties": {"type": "object"}},
                "ids": {"type": "array", "minItems": 2, "items": {"type": "integer", "minimum": 10}},
                "name": {"type": "string", "minLength": 3},
                "n": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
                "optional": {"type": "string"}
            }
        });
        assert_eq!(
            smallest(&schema),
            json!({"allowedActions": {}, "ids": [10, 10], "name": "xxx", "n": ""})
        );
        assert_eq!(smallest(&json!({})), json!(0));
        assert_eq!(smallest(&json!({"enum": ["long", "s"]})), json!("s"));
    }
}
