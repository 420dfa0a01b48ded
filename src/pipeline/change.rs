//! A write's change in plain words: the object, the complete new set with every access code
//! named, and what differs from the last set written through this server. The user reads it
//! in the confirmation; the model reads it as a dry run's answer.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::hook::{KnownSet, ObjectRef};
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
            return format!("{key} ({name})");
        }
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

    /// The confirmation's message: plain words, everything the user needs to decide.
    pub fn message(&self, host: &str) -> String {
        let object = self.object_text();
        let mut out = format!(
            "Apply this change on the Bitrix24 portal {host}?\n\n{} ({}) on {object}.\n",
            self.spec.title, self.spec.method
        );
        let replaces_set =
            self.replaces() && matches!(self.new_set(), Value::Object(_) | Value::Array(_));
        let lines = self.new_lines();
        if !self.replaces() {
            out.push_str("It applies to:\n");
            for line in &lines {
                out.push_str(&format!("  • {line}\n"));
            }
            out.push_str("Nothing else is changed by this call.\n");
        } else if replaces_set && lines.is_empty() {
            out.push_str("The new set is EMPTY: every individual right listed there is removed.\n");
        } else if replaces_set {
            out.push_str("The complete new set:\n");
            for line in &lines {
                out.push_str(&format!("  • {line}\n"));
            }
            out.push_str(&format!(
                "Everything not listed loses its individual rights on {object}.\n"
            ));
        } else {
            out.push_str(&format!("New value: {}\n", lines.join(", ")));
        }
        match (self.differences(), &self.known) {
            (Some(diff), Some(known)) if diff.is_empty() => out.push_str(&format!(
                "This is the same set as the last one written through this server ({}).\n",
                known.at
            )),
            (Some(diff), Some(known)) => {
                out.push_str(&format!(
                    "Compared with the last set written through this server ({}):\n",
                    known.at
                ));
                for line in diff {
                    out.push_str(&format!("  • {line}\n"));
                }
            }
            _ if !self.replaces() => {}
            _ if self.unsure.is_some() => out.push_str(&format!(
                "No change of {object} made through this server is known to have been applied, and the \
                 portal cannot show the current set, so what is lost cannot be listed.\n"
            )),
            _ => out.push_str(&format!(
                "No earlier change of {object} was made through this server, and the portal cannot \
                 show the current set, so what is lost cannot be listed.\n"
            )),
        }
        if let Some(note) = self.unsure_note() {
            out.push_str(&note);
            out.push('\n');
        }
        out.push_str("Nothing has been sent yet.");
        out
    }

    /// Says that an earlier attempt may have been applied, and what it sent.
    fn unsure_note(&self) -> Option<String> {
        let unsure = self.unsure.as_ref()?;
        let sent = unsure
            .arguments
            .pointer(self.set_at())
            .unwrap_or(&unsure.arguments);
        Some(format!(
            "An earlier attempt to change {} through this server ({}) got no answer: it may have been \
             applied, so the portal may hold the set it sent already: {sent}",
            self.object_text(),
            unsure.at
        ))
    }

    /// A dry run's answer: exactly what would be sent, and what it would change.
    pub fn dry_run(&self) -> Value {
        json!({
            "dry_run": {
                "written": false,
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

fn name_in(about: &Value) -> Option<&str> {
    about
        .get("name")
        .or_else(|| about.get("NAME"))
        .and_then(Value::as_str)
        .or_else(|| about.as_str())
        .filter(|n| !n.is_empty())
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
        let message = change.message("example.bitrix24.com");
        assert!(
            message.contains("AU (All authorized users): read"),
            "{message}"
        );
        assert!(
            message.contains("Everything not listed loses its individual rights on site 645"),
            "{message}"
        );
        assert!(message.contains("U1 (John Smith): loses sett"), "{message}");
        assert!(
            message.contains("U7: loses all its rights (read)"),
            "{message}"
        );
        assert!(
            message.contains("AU (All authorized users): gains read; new in the set"),
            "{message}"
        );
        let unknown = Change {
            known: None,
            ..change
        };
        assert!(unknown.message("h").contains("cannot be listed"));
        assert_eq!(unknown.dry_run()["dry_run"]["differences"], Value::Null);
    }
}
