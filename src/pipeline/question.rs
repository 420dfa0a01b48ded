//! The question a person approves a write by: who asks, as whom it runs, every argument that
//! will be sent (field by field, with the catalog's labels, and codes and user ids named by the
//! portal), and what the change does, in the catalog's words and against the last set written.
//!
//! Everything in it that the model or the portal supplied is shown through [`shown`]: control,
//! line-break and bidi characters are escaped, and long values are cut with a marker, so no
//! value can write lines of its own into the question or reorder what the person reads.

use serde_json::{Map, Value};

use super::{
    change::Change,
    shown::{name_in, shown},
};
use crate::catalog::{FieldSpec, Names, QuestionSpec};

/// A value in quotes, so where it starts and ends is never in doubt.
fn quoted(text: &str) -> String {
    format!("\"{}\"", shown(text))
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Who asks and as whom the call runs, said at the top of every question.
pub struct Parties<'a> {
    pub portal: &'a str,
    pub asked_by: &'a str,
    /// Built from [`shown`] parts already, so it is not escaped again.
    pub runs_as: String,
}

/// One write, ready to be put into words.
pub struct Question<'a> {
    pub change: &'a Change<'a>,
    /// What the portal said of the write's people right now (roles read by a guard).
    pub facts: &'a [String],
}

impl Question<'_> {
    fn spec(&self) -> Option<&QuestionSpec> {
        self.change.spec.question.as_ref()
    }

    fn names(&self) -> &Map<String, Value> {
        &self.change.names
    }

    /// `value` named as the kind says: `547 "Ann Lee"`.
    fn named(&self, value: &str, kind: Option<Names>) -> String {
        let Some(kind) = kind else {
            return quoted(value);
        };
        let code = kind.code_for(value);
        match self.names().get(&code).and_then(name_in) {
            Some(name) => format!("{} {}", shown(value), quoted(name)),
            None => format!("{} (no name from the portal)", shown(value)),
        }
    }

    /// A scalar with the catalog's word for it, named where it can be.
    fn scalar(&self, value: &Value, field: &FieldSpec) -> String {
        let text = plain(value);
        if let Some(word) = field.values.get(&text) {
            return format!("{} ({word})", quoted(&text));
        }
        match value {
            Value::Number(_) | Value::Bool(_) if field.names.is_none() => text,
            Value::String(_) | Value::Number(_) => self.named(&text, field.names),
            other => shown(&other.to_string()),
        }
    }

    /// A value on one line, as effects quote it.
    fn inline(&self, value: &Value, field: &FieldSpec) -> String {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|i| self.inline(i, field))
                .collect::<Vec<_>>()
                .join(", "),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}: {}", shown(k), self.inline(v, field)))
                .collect::<Vec<_>>()
                .join("; "),
            scalar => self.scalar(scalar, field),
        }
    }

    /// Lines for one value, indented under its field.
    fn lines(&self, value: &Value, field: &FieldSpec, depth: usize, out: &mut Vec<String>) {
        let pad = "    ".repeat(depth);
        match value {
            Value::Array(items) if items.is_empty() => {
                out.push(format!("{pad}(none: an empty list)"))
            }
            Value::Object(map) if map.is_empty() => out.push(format!("{pad}(none: an empty set)")),
            Value::Array(items) => {
                for item in items {
                    match (item, field.item_key.as_deref()) {
                        (Value::Object(map), Some(key)) => {
                            let parts: Vec<String> = map
                                .iter()
                                .map(|(k, v)| {
                                    let shown_value = if k == key {
                                        self.named(&plain(v), field.names)
                                    } else {
                                        quoted(&plain(v))
                                    };
                                    format!("{}: {shown_value}", shown(k))
                                })
                                .collect();
                            out.push(format!("{pad}- {}", parts.join(", ")));
                        }
                        (Value::Object(_) | Value::Array(_), _) => {
                            out.push(format!("{pad}-"));
                            self.lines(item, field, depth + 1, out);
                        }
                        (scalar, _) => out.push(format!("{pad}- {}", self.scalar(scalar, field))),
                    }
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let key_shown = match field.names {
                        Some(kind) if field.item_key.is_none() => self.named(key, Some(kind)),
                        _ => shown(key),
                    };
                    match item {
                        Value::Object(_) => {
                            out.push(format!("{pad}- {key_shown}:"));
                            self.lines(item, field, depth + 1, out);
                        }
                        Value::Array(items) => {
                            let words: Vec<String> = items
                                .iter()
                                .map(|i| self.scalar(i, &FieldSpec::bare(field)))
                                .collect();
                            out.push(format!("{pad}- {key_shown}: {}", words.join(", ")));
                        }
                        scalar => out.push(format!(
                            "{pad}- {key_shown}: {}",
                            self.scalar(scalar, &FieldSpec::bare(field))
                        )),
                    }
                }
            }
            scalar => out.push(format!("{pad}{}", self.scalar(scalar, field))),
        }
    }

    /// Every argument that will be sent, field by field.
    fn sent(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Value::Object(arguments) = self.change.arguments else {
            return out;
        };
        let unlabelled = FieldSpec::unlabelled();
        for (key, value) in arguments {
            let field = self
                .spec()
                .and_then(|q| q.fields.get(key))
                .unwrap_or(&unlabelled);
            let label = if field.label.is_empty() {
                key
            } else {
                &field.label
            };
            let mut lines = Vec::new();
            self.lines(value, field, 2, &mut lines);
            match lines.as_slice() {
                [one] if !matches!(value, Value::Array(_) | Value::Object(_)) => {
                    out.push(format!(
                        "  • {label} ({}): {}",
                        shown(key),
                        one.trim_start()
                    ));
                }
                _ => {
                    out.push(format!("  • {label} ({}):", shown(key)));
                    out.extend(lines);
                }
            }
        }
        out
    }

    /// The catalog's sentences with the values put in.
    fn effects(&self) -> Vec<String> {
        let Some(spec) = self.spec() else {
            return Vec::new();
        };
        spec.effects
            .iter()
            .map(|effect| {
                let mut text = effect.clone();
                for (key, field) in &spec.fields {
                    let value = self.change.arguments.get(key);
                    let id = value.map_or_else(|| "(not sent)".to_owned(), |v| shown(&plain(v)));
                    let whole =
                        value.map_or_else(|| "(not sent)".to_owned(), |v| self.inline(v, field));
                    text = text
                        .replace(&format!("{{{key}.id}}"), &id)
                        .replace(&format!("{{{key}}}"), &whole);
                }
                format!("  • {text}")
            })
            .collect()
    }

    /// The question, complete.
    pub fn render(&self, parties: &Parties<'_>) -> String {
        let spec = self.change.spec;
        let mut out = format!(
            "Approve this change on the Bitrix24 portal {}?\n{} ({})\nAsked by: {}\nRuns as: {}\n",
            shown(parties.portal),
            spec.title,
            spec.method,
            shown(parties.asked_by),
            parties.runs_as,
        );
        out.push_str("\nWhat is sent:\n");
        for line in self.sent() {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str("\nWhat it changes:\n");
        for line in self.effects() {
            out.push_str(&line);
            out.push('\n');
        }
        for line in self.change.comparison() {
            out.push_str(&format!("  • {line}\n"));
        }
        if !self.facts.is_empty() {
            out.push_str("\nOn the portal now:\n");
            for fact in self.facts {
                out.push_str(&format!("  • {fact}\n"));
            }
        }
        out.push_str("\nNothing has been sent yet.");
        out
    }
}

impl FieldSpec {
    fn unlabelled() -> Self {
        Self {
            label: String::new(),
            names: None,
            item_key: None,
            values: Default::default(),
        }
    }

    /// The same field for the values inside a map: its words, not its naming of keys.
    fn bare(field: &Self) -> Self {
        Self {
            names: None,
            item_key: None,
            ..field.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_break_lines_or_reorder_them() {
        let injected = "Readers\n  • permissions: unchanged\nNothing has been sent yet.\n";
        let out = shown(injected);
        assert!(!out.contains('\n'), "{out}");
        assert!(out.contains("\\n  • permissions"), "{out}");
        let bidi = "abc\u{202E}fed\u{2066}\u{1b}[31m\u{85}";
        let out = shown(bidi);
        for c in ['\u{202E}', '\u{2066}', '\u{1b}', '\u{85}'] {
            assert!(!out.contains(c), "{c:?} in {out}");
        }
        assert!(
            out.contains("\\u{202e}") && out.contains("\\u{001b}"),
            "{out}"
        );
        let long = "x".repeat(500);
        let out = shown(&long);
        assert!(out.ends_with("…[cut: 380 more characters]"), "{out}");
        assert_eq!(
            shown("a\"b"),
            "a\\\"b",
            "a quote cannot close the value early"
        );
    }
}
