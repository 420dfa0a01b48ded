//! A write's change in plain words: the object, the complete new set with every access code
//! named, and what differs from the last set written through this server. The user reads it
//! in the confirmation; the model reads it as a dry run's answer.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{
    hook::{KnownSet, ObjectRef},
    shown::{name_in, shown},
};
use crate::catalog::ToolSpec;

pub struct Change<'a> {
    pub spec: &'a ToolSpec,
    pub arguments: &'a Value,
    pub object: Option<ObjectRef>,
    /// `access.name`'s answer for the codes in the set, when they are access codes.
    pub names: Map<String, Value>,
    pub known: Option<KnownSet>,
    /// A later attempt whose outcome is unknown: the portal may hold its set already.
    pub unsure: Option<KnownSet>,
}

pub fn object_of(spec: &ToolSpec, args: &Value) -> Option<ObjectRef> {
    let change = spec.change.as_ref()?;
    let id = match change.id_at.as_deref().and_then(|p| args.pointer(p)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Some(ObjectRef {
        kind: change.object.clone(),
        id,
    })
}

impl Change<'_> {
    fn set_at(&self) -> &str {
        self.spec.change.as_ref().map_or("", |c| c.set_at.as_str())
    }

    fn new_set(&self) -> &Value {
        self.arguments
            .pointer(self.set_at())
            .unwrap_or(&Value::Null)
    }

    fn old_set(&self) -> Option<&Value> {
        self.known.as_ref()?.arguments.pointer(self.set_at())
    }

    /// Whether the write replaces the whole set, so that what it leaves out is lost.
    fn replaces(&self) -> bool {
        self.spec.change.as_ref().is_none_or(|c| c.replaces)
    }

    fn object_text(&self) -> String {
        self.object
            .as_ref()
            .map_or_else(|| "the portal".to_owned(), ToString::to_string)
    }

    /// A key or item of the set as the user reads it: `U1 (John Smith)`, `site 12`.
    fn label(&self, key: &str) -> String {
        if let Some(name) = self.names.get(key).and_then(name_in) {
            return format!("{} \"{}\"", shown(key), shown(name));
        }
        let key = &shown(key);
        match self.spec.change.as_ref().and_then(|c| c.items.as_deref()) {
            Some(items) if key == "0" => format!("{items} 0 (the default for every other {items})"),
            Some(items) => format!("{items} {key}"),
            None => key.to_owned(),
        }
    }

    /// Codes of the last known set that the new set drops, and so that no guard has named.
    pub fn unnamed_old_codes(&self) -> Vec<String> {
        if !self.spec.set_holds_access_codes() {
            return Vec::new();
        }
        let old = match self.old_set() {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            Some(old @ Value::Array(_)) => strings(Some(old)).into_iter().collect(),
            _ => Vec::new(),
        };
        old.into_iter()
            .filter(|code: &String| !self.names.contains_key(code))
            .collect()
    }

    /// The complete new set, one line per entry.
    pub fn new_lines(&self) -> Vec<String> {
        match self.new_set() {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}: {}", self.label(k), list(v)))
                .collect(),
            Value::Array(items) => items.iter().map(|v| self.label(&plain(v))).collect(),
            other => vec![plain(other)],
        }
    }

    /// What changes compared with the last known set; `None` when no set is known.
    pub fn differences(&self) -> Option<Vec<String>> {
        if !self.replaces() {
            return None;
        }
        let old = self.old_set()?;
        let new = self.new_set();
        let mut lines = Vec::new();
        match (old, new) {
            (Value::Object(old), Value::Object(new)) => {
                let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
                for key in keys {
                    let before = strings(old.get(key.as_str()));
                    let after = strings(new.get(key.as_str()));
                    let label = self.label(key);
                    if after.is_empty() {
                        lines.push(format!("{label}: loses all its rights ({})", join(&before)));
                        continue;
                    }
                    let lost: Vec<_> = before.difference(&after).cloned().collect();
                    let gained: Vec<_> = after.difference(&before).cloned().collect();
                    let mut parts = Vec::new();
                    if !lost.is_empty() {
                        parts.push(format!("loses {}", lost.join(", ")));
                    }
                    if !gained.is_empty() {
                        parts.push(format!("gains {}", gained.join(", ")));
                    }
                    if before.is_empty() {
                        parts.push("new in the set".to_owned());
                    }
                    if !parts.is_empty() {
                        lines.push(format!("{label}: {}", parts.join("; ")));
                    }
                }
            }
            (Value::Array(_), Value::Array(_)) => {
                let (before, after) = (strings(Some(old)), strings(Some(new)));
                for gone in before.difference(&after) {
                    lines.push(format!("{}: removed", self.label(gone)));
                }
                for added in after.difference(&before) {
                    lines.push(format!("{}: added", self.label(added)));
                }
            }
            (old, new) if old != new => lines.push(format!("{} → {}", plain(old), plain(new))),
            _ => {}
        }
        Some(lines)
    }

    /// What the write does against what this server last wrote there, for the question: the
    /// gains and losses of each code, or why they cannot be listed.
    pub fn comparison(&self) -> Vec<String> {
        if !self.replaces() || !matches!(self.new_set(), Value::Object(_) | Value::Array(_)) {
            return Vec::new();
        }
        let object = self.object_text();
        let mut lines = match (self.differences(), &self.known) {
            (Some(diff), Some(known)) if diff.is_empty() => vec![format!(
                "This is the same set as the last one written through this server ({}).",
                known.at
            )],
            (Some(diff), Some(known)) => {
                let mut lines = vec![format!(
                    "Compared with the last set written through this server ({}):",
                    known.at
                )];
                lines.extend(diff.into_iter().map(|line| format!("    - {line}")));
                lines
            }
            _ if self.unsure.is_some() => vec![format!(
                "No change of {object} made through this server is known to have been applied, and the \
                 portal cannot show the current set, so what is lost cannot be listed."
            )],
            _ => vec![format!(
                "No earlier change of {object} was made through this server, and the portal cannot \
                 show the current set, so what each code loses cannot be listed."
            )],
        };
        lines.extend(self.unsure_note());
        lines
    }

    /// Says that an earlier attempt may have been applied, and what it sent (escaped: the
    /// model wrote it).
    pub fn unsure_note(&self) -> Option<String> {
        let unsure = self.unsure.as_ref()?;
        let sent = unsure
            .arguments
            .pointer(self.set_at())
            .unwrap_or(&unsure.arguments);
        Some(format!(
            "An earlier attempt to change {} through this server ({}) got no answer: it may have been \
             applied, so the portal may hold the set it sent already: {}",
            self.object_text(),
            unsure.at,
            shown(&sent.to_string())
        ))
    }

    /// A dry run's answer: exactly what would be sent, what it would change, and the question
    /// the person would be asked.
    pub fn dry_run(&self, question: &str) -> Value {
        json!({
            "dry_run": {
                "written": false,
                "question": question,
                "method": self.spec.method,
                "would_send": self.arguments,
                "object": self.object_text(),
                "new_set": self.new_lines(),
                "compared_with": self.known.as_ref().map(|k| json!({"at": k.at, "arguments": k.arguments})),
                "differences": self.differences(),
                "earlier_attempt_may_have_applied": self.unsure.as_ref().map(|u| json!({
                    "at": u.at,
                    "arguments": u.arguments,
                    "note": self.unsure_note(),
                })),
                "note": "Nothing was written. The comparison uses the last set written through this \
                         server (its ledger); changes made elsewhere are not known to it.",
            }
        })
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(plain)
        .collect()
}

fn list(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => plain(other),
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn names_codes_and_lists_losses() {
        let spec = &Catalog::shared()
            .get("landing_site_set_rights")
            .unwrap()
            .spec;
        let args = json!({"id": 645, "rights": {"AU": ["read"], "U1": ["read", "edit"]}});
        let change = Change {
            spec,
            arguments: &args,
            object: object_of(spec, &args),
            names: json!({"AU": {"name": "All authorized users"}, "U1": {"name": "John Smith"}})
                .as_object()
                .cloned()
                .unwrap(),
            known: Some(KnownSet {
                at: "2026-11-23T10:00:00Z".into(),
                arguments: json!({"id": 645, "rights": {"U1": ["read", "edit", "sett"], "U7": ["read"]}}),
            }),
            unsure: None,
        };
        let question = crate::pipeline::question::Question {
            change: &change,
            facts: &[],
        }
        .render(&crate::pipeline::question::Parties {
            portal: "example.bitrix24.com",
            asked_by: "local user alice through a test",
            runs_as: "user 1".into(),
        });
        for line in [
            "Asked by: local user alice through a test",
            "Runs as: user 1",
            "  • Complete new rights (access code → operations) (rights):",
            "        - AU \"All authorized users\": \"read\"",
            "        - U1 \"John Smith\": \"read\", \"edit\"",
            "  • Site (id): 645",
            "every code not listed loses its individual rights on the site",
            "    - U1 \"John Smith\": loses sett",
            "    - U7: loses all its rights (read)",
            "    - AU \"All authorized users\": gains read; new in the set",
        ] {
            assert!(question.contains(line), "{line}\n{question}");
        }
        let unknown = Change {
            known: None,
            ..change
        };
        assert!(unknown.comparison()[0].contains("cannot be listed"));
        assert_eq!(unknown.dry_run("q")["dry_run"]["differences"], Value::Null);
    }
}
