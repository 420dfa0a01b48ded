//! The schema checker against the reference: for every catalog schema, the documented
//! requests and answers and many generated values get the same verdict from the checker as
//! from the `jsonschema` crate. Values are grown from each schema's own shape (so most of them
//! reach deep into it) and then often broken in one place: a wrong type, 1.0 for 1, a missing
//! or an extra key, a string past a length limit, a repeated item.

use proptest::{
    prelude::*,
    strategy::{BoxedStrategy, Just, Union},
    test_runner::{Config, TestRng, TestRunner},
};
use serde_json::{Map, Value, json};

use super::{Catalog, checker::Checker};

/// A runner with a fixed seed: the same values every run, so the tallies below cannot flake.
fn runner(config: Config) -> TestRunner {
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    TestRunner::new_with_rng(config, rng)
}

fn agree(
    tool: &str,
    which: &str,
    reference: &jsonschema::Validator,
    checker: &Checker,
    value: &Value,
) {
    let expected = reference.is_valid(value);
    assert_eq!(
        checker.is_valid(value),
        expected,
        "{tool} {which}: the checker and jsonschema disagree on {value}"
    );
    assert_eq!(
        checker.violations(value).is_empty(),
        expected,
        "{tool} {which}: the violations disagree with the verdict on {value}"
    );
}

/// The documented requests and answers of every method, as the contract tests read them.
fn documented() -> Vec<(String, Value, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("tests/fixtures/docs exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let method = fixture["method"].as_str().unwrap().to_owned();
        for example in fixture["examples"].as_array().into_iter().flatten() {
            out.push((
                method.clone(),
                example["request"].clone(),
                example["response"].clone(),
            ));
        }
    }
    out
}

#[test]
fn documented_values_get_the_reference_verdict() {
    let catalog = Catalog::shared();
    let mut checked = 0;
    for e in catalog.entries() {
        let s = &e.spec;
        let input = jsonschema::validator_for(&s.input_schema).unwrap();
        let output = jsonschema::validator_for(&s.output_schema).unwrap();
        let input_checker = Checker::compile(&s.input_schema).unwrap();
        let output_checker = Checker::compile(&s.output_schema).unwrap();
        let mut answers = Vec::new();
        if let Some(example) = &s.example {
            agree(&s.name, "input", &input, &input_checker, &example.arguments);
            answers.push(example.answer.clone());
        }
        for (method, request, response) in documented() {
            if method.eq_ignore_ascii_case(&s.method) {
                agree(&s.name, "input", &input, &input_checker, &request);
                answers.push(response["result"].clone());
            }
        }
        for mut answer in answers {
            s.normalize.apply(&mut answer);
            let published = json!({ "result": answer });
            agree(&s.name, "output", &output, &output_checker, &published);
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} documented answers");
}

#[test]
fn generated_values_get_the_reference_verdict() {
    let catalog = Catalog::shared();
    for e in catalog.entries() {
        let s = &e.spec;
        for (which, schema) in [("input", &s.input_schema), ("output", &s.output_schema)] {
            let reference = jsonschema::validator_for(schema).unwrap();
            let checker = Checker::compile(schema).unwrap();
            let mut runner = runner(Config {
                cases: 96,
                failure_persistence: None,
                ..Config::default()
            });
            let values = (
                shaped(schema, 0),
                prop::collection::vec(any::<u32>(), 1..10),
                0..3u8,
            );
            let (valid, invalid) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
            runner
                .run(&values, |(mut value, choices, mutations)| {
                    for round in 0..mutations {
                        mutate(&mut value, &choices[usize::from(round)..]);
                    }
                    let expected = reference.is_valid(&value);
                    let tally = if expected { &valid } else { &invalid };
                    tally.set(tally.get() + 1);
                    prop_assert_eq!(
                        checker.is_valid(&value),
                        expected,
                        "{} {}: {}",
                        s.name,
                        which,
                        value
                    );
                    prop_assert_eq!(checker.violations(&value).is_empty(), expected, "{}", value);
                    Ok(())
                })
                .unwrap_or_else(|err| panic!("{}", err));
            // Both verdicts must be exercised, or the agreement says little.
            let (valid, invalid) = (valid.get(), invalid.get());
            assert!(
                valid > 0 && invalid > 0,
                "{} {which}: {valid} valid, {invalid} invalid",
                s.name
            );
        }
    }
}

#[test]
fn arbitrary_values_get_the_reference_verdict() {
    let catalog = Catalog::shared();
    let schemas: Vec<(String, Value)> = catalog
        .entries()
        .flat_map(|e| {
            [
                (
                    format!("{} input", e.spec.name),
                    Value::clone(&e.spec.input_schema),
                ),
                (
                    format!("{} output", e.spec.name),
                    Value::clone(&e.spec.output_schema),
                ),
            ]
        })
        .collect();
    let compiled: Vec<_> = schemas
        .iter()
        .map(|(name, s)| {
            (
                name,
                jsonschema::validator_for(s).unwrap(),
                Checker::compile(s).unwrap(),
            )
        })
        .collect();
    let mut runner = runner(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any_json(3), |value| {
            for (name, reference, checker) in &compiled {
                prop_assert_eq!(
                    checker.is_valid(&value),
                    reference.is_valid(&value),
                    "{}: {}",
                    name,
                    value
                );
            }
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{}", err));
}

/// Any JSON value, nested up to `depth`, with the numbers and strings that sit on edges.
fn any_json(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..300).prop_map(Value::from),
        prop_oneof![Just(0.0), Just(1.0), Just(-1.0), Just(1.5), Just(2.0e9)].prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text(0..6).prop_map(Value::String),
        prop_oneof![
            Just("AU"),
            Just("U1"),
            Just("read"),
            Just("12"),
            Just("SG3_K"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Object keys: the catalog's usual names and access codes, and some noise.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        prop_oneof![
            Just("id"),
            Just("result"),
            Just("rights"),
            Just("AU"),
            Just("U1"),
            Just("dry_run"),
            Just("ID"),
            Just("name"),
            Just("0"),
        ]
        .prop_map(str::to_owned),
        text(1..4),
    ]
    .boxed()
}

/// Strings mixing ASCII with two-byte and astral characters, so lengths in code points,
/// bytes and UTF-16 units differ.
fn text(len: std::ops::Range<usize>) -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just('7'),
            Just('_'),
            Just('ё'),
            Just('😀'),
            Just(' ')
        ],
        len,
    )
    .prop_map(|chars| chars.into_iter().collect())
    .boxed()
}

fn number(schema: &Value, name: &str) -> Option<f64> {
    schema.get(name).and_then(Value::as_f64)
}

fn count(schema: &Value, name: &str) -> Option<usize> {
    schema.get(name).and_then(Value::as_u64).map(|n| n as usize)
}

/// Values grown from `schema`'s shape: mostly fitting, sometimes on or just past an edge.
fn shaped(schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    if depth > 6 {
        return any_json(1);
    }
    let Some(map) = schema.as_object() else {
        return any_json(2);
    };
    // A schema with a type of its own grows from it; its `anyOf` then only narrows.
    if let Some(branches) = map.get("anyOf").and_then(Value::as_array)
        && !map.contains_key("type")
    {
        let options: Vec<_> = branches.iter().map(|b| shaped(b, depth + 1)).collect();
        return Union::new(options).boxed();
    }
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        let values = values.clone();
        return (0..values.len(), any::<bool>())
            .prop_map(move |(i, as_float)| match &values[i] {
                // 1.0 must count as the enum's 1.
                Value::Number(n) if as_float && n.is_i64() => json!(n.as_f64().unwrap()),
                v => v.clone(),
            })
            .boxed();
    }
    if let Some(value) = map.get("const") {
        return Just(value.clone()).boxed();
    }
    let types: Vec<&str> = match map.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return any_json(2),
    };
    let options: Vec<BoxedStrategy<Value>> =
        types.iter().map(|t| of_type(schema, t, depth)).collect();
    Union::new(options).boxed()
}

fn of_type(schema: &Value, kind: &str, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
        "integer" | "number" => {
            let low = number(schema, "minimum").unwrap_or(-5.0) as i64;
            let high = number(schema, "maximum").unwrap_or(low as f64 + 1000.0) as i64;
            let fraction = kind == "number";
            let n = prop_oneof![9 => low..=high, 1 => prop_oneof![Just(low - 1), Just(high + 1)]];
            (n, 0..5u8)
                .prop_map(move |(n, form)| match form {
                    // An integer written with a zero fraction.
                    0 => json!(n as f64),
                    1 if fraction => json!(n as f64 + 0.25),
                    _ => json!(n),
                })
                .boxed()
        }
        "string" => {
            let min = count(schema, "minLength").unwrap_or(0);
            let max = count(schema, "maxLength").unwrap_or(min + 8);
            match schema.get("pattern").and_then(Value::as_str) {
                Some(pattern) => {
                    let unanchored: String = pattern
                        .chars()
                        .filter(|c| !matches!(c, '^' | '$'))
                        .collect();
                    let fitting = proptest::string::string_regex(&unanchored)
                        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
                        .boxed();
                    prop_oneof![9 => fitting, 1 => text(0..max + 2)]
                        .prop_map(Value::String)
                        .boxed()
                }
                None => prop_oneof![
                    12 => text(min..max + 1),
                    1 => text(min.saturating_sub(1)..max + 2),
                    // Exactly at each limit, in astral characters: long in bytes and units.
                    1 => Just("😀".repeat(min)),
                    1 => Just("😀".repeat(max)),
                    1 => Just("ё".repeat(max + 1)),
                ]
                .prop_map(Value::String)
                .boxed(),
            }
        }
        "array" => {
            let min = count(schema, "minItems").unwrap_or(0);
            let max = count(schema, "maxItems").unwrap_or(min + 3).min(min + 4);
            let prefix: Vec<BoxedStrategy<Value>> = schema
                .get("prefixItems")
                .and_then(Value::as_array)
                .map(|list| list.iter().map(|s| shaped(s, depth + 1)).collect())
                .unwrap_or_default();
            let item = schema
                .get("items")
                .map_or_else(|| any_json(1), |s| shaped(s, depth + 1));
            let repeat = prop::bool::weighted(0.1);
            let length = prop_oneof![
                9 => min..=max,
                1 => prop_oneof![Just(min.saturating_sub(1)), Just(max + 1)],
            ];
            let items = length.prop_flat_map(move |n| prop::collection::vec(item.clone(), n));
            (prefix, items, repeat)
                .prop_map(|(mut head, tail, repeat)| {
                    head.extend(tail);
                    if repeat && let Some(first) = head.first().cloned() {
                        head.push(floated(&first));
                    }
                    Value::Array(head)
                })
                .boxed()
        }
        "object" => {
            let required: Vec<String> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
            for (name, sub) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let name = name.clone();
                let present = if required.contains(&name) { 1.0 } else { 0.6 };
                fields.push(
                    (prop::bool::weighted(present), shaped(sub, depth + 1))
                        .prop_map(move |(keep, v)| keep.then(|| (name.clone(), v)))
                        .boxed(),
                );
            }
            let extra_key = match schema
                .get("propertyNames")
                .and_then(|p| p.get("pattern"))
                .and_then(Value::as_str)
            {
                Some(pattern) => {
                    let unanchored: String = pattern
                        .chars()
                        .filter(|c| !matches!(c, '^' | '$'))
                        .collect();
                    prop_oneof![4 => proptest::string::string_regex(&unanchored).unwrap().boxed(), 1 => key()].boxed()
                }
                None => key(),
            };
            let extra_value = match schema.get("additionalProperties") {
                Some(Value::Bool(false)) | None => any_json(1),
                Some(s) => shaped(s, depth + 1),
            };
            // Undeclared keys are rare where they are refused, common where a schema says
            // what they hold.
            let refused = schema.get("additionalProperties") == Some(&Value::Bool(false));
            let extras = prop::collection::vec((extra_key, extra_value), 0..4);
            (fields, extras, prop::bool::weighted(0.1))
                .prop_map(move |(fields, mut extra, keep)| {
                    if refused && !keep {
                        extra.clear();
                    }
                    (fields, extra)
                })
                .prop_map(|(fields, extra)| {
                    let mut object: Map<String, Value> = fields.into_iter().flatten().collect();
                    object.extend(extra);
                    Value::Object(object)
                })
                .boxed()
        }
        other => panic!("unknown type {other}"),
    }
}

/// `value` with every integer written as a float: the same JSON value.
fn floated(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(floated).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), floated(v))).collect())
        }
        other => other.clone(),
    }
}

/// Breaks `value` in one place that `choices` pick: walking down, then changing what it finds.
fn mutate(value: &mut Value, choices: &[u32]) {
    let mut choices = choices.iter().copied().chain(std::iter::repeat(7));
    let mut next = move || choices.next().unwrap_or(0) as usize;
    let mut node = value;
    loop {
        let descend = next() % 3 != 0;
        let children = match node {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => 0,
        };
        if !descend || children == 0 {
            break;
        }
        let i = next() % children;
        node = match node {
            Value::Array(items) => &mut items[i],
            Value::Object(map) => map.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
    let op = next();
    match node {
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            *node = match op % 4 {
                0 => json!(f),
                1 => json!(f + 0.5),
                2 => json!(-1),
                _ => json!(u64::MAX),
            };
        }
        Value::String(s) => match op % 4 {
            0 => s.push('😀'),
            1 => {
                s.pop();
            }
            2 => s.insert(0, 'x'),
            _ => *node = json!(s.parse::<i64>().unwrap_or(0)),
        },
        Value::Array(items) => match op % 4 {
            // A repeat written differently (1.0 for 1) is still a repeat.
            0 if !items.is_empty() => items.push(floated(&items[0])),
            1 if !items.is_empty() => {
                items.remove(next() % items.len());
            }
            2 => items.push(json!("x")),
            _ => *node = json!({}),
        },
        Value::Object(map) => match op % 4 {
            0 if !map.is_empty() => {
                let key = map.keys().nth(next() % map.len()).unwrap().clone();
                map.remove(&key);
            }
            1 if !map.is_empty() => {
                // The same name in another case is another key.
                let key = map.keys().nth(next() % map.len()).unwrap().clone();
                let value = map.remove(&key).unwrap();
                map.insert(key.to_uppercase(), value);
            }
            2 => {
                map.insert("extra".to_owned(), json!(1));
            }
            _ => *node = json!([]),
        },
        other => {
            *other = match op % 3 {
                0 => json!("true"),
                1 => json!(0),
                _ => Value::Null,
            }
        }
    }
}
