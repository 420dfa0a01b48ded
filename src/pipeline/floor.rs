//! The smallest answer a call can get, read from the catalog's output schemas: when even that
//! is over `BITRIX24_MAX_RESULT_BYTES`, the call is refused before it spends any request.
//!
//! Only a lower bound may refuse: an answer that might fit is always sent. So the bound is
//! the smallest JSON value each schema admits (required keys only, `minItems` items, the
//! shortest strings and numbers). Every answer passed on is checked against its schema after
//! any `only_keys` projection, so the bound holds for projected answers too.

use serde_json::{Map, Value};

use crate::catalog::{Schema, SchemaNode};

/// The smallest value `schema` admits. A schema this does not understand admits anything:
/// `0`, the shortest JSON.
pub fn smallest(schema: Option<&SchemaNode>) -> Value {
    let anything = || Value::from(0);
    let Some(schema) = schema.and_then(SchemaNode::schema) else {
        return anything();
    };
    if let Some(value) = schema.constant() {
        return value.clone();
    }
    if let Some(options) = schema.allowed() {
        return shortest(options.iter().cloned()).unwrap_or_else(anything);
    }
    if !schema.any_of().is_empty() {
        return shortest(schema.any_of().iter().map(Some).map(smallest)).unwrap_or_else(anything);
    }
    if !schema.all_of().is_empty() {
        // A value meets every part, so it is at least as large as the largest part's floor.
        return schema
            .all_of()
            .iter()
            .map(|part| smallest(Some(part)))
            .max_by_key(size)
            .unwrap_or_else(anything);
    }
    let types: &[&str] = match schema.type_names() {
        [] if schema.has_properties() || !schema.required().is_empty() => &["object"],
        [] => return anything(),
        names => names,
    };
    shortest(types.iter().map(|t| of_type(t, schema))).unwrap_or_else(anything)
}

fn of_type(kind: &str, schema: &Schema) -> Value {
    let count = |n: Option<usize>| n.unwrap_or(0);
    match kind {
        "object" => object(schema),
        "array" => {
            let item = smallest(schema.items());
            // Bounded: a schema asking for a million items is not built item by item.
            Value::Array(vec![item; count(schema.item_bounds().0).min(10_000)])
        }
        "string" => Value::String("x".repeat(count(schema.length_bounds().0).min(100_000))),
        "integer" | "number" => {
            let minimum = schema.minimum().unwrap_or(0.0);
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
fn object(schema: &Schema) -> Value {
    let whole: Map<String, Value> = schema
        .required()
        .iter()
        .map(|name| {
            let property = schema.property(name).or_else(|| schema.additional());
            (name.clone(), smallest(property))
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
    use crate::catalog::Checker;

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
        let floor = |schema: Value| {
            let model = Checker::compile(&schema).unwrap();
            smallest(Some(model.root()))
        };
        assert_eq!(
            floor(schema),
            json!({"allowedActions": {}, "ids": [10, 10], "name": "xxx", "n": ""})
        );
        assert_eq!(floor(json!({})), json!(0));
        assert_eq!(floor(json!({"enum": ["long", "s"]})), json!("s"));
    }
}
