//! The one registry of secrets this process has held, and the masking of them.
//!
//! Every credential registers its secret here the moment it exists, and nothing is ever
//! removed: a rotated OAuth token or a replaced webhook may still be echoed by a slow answer.
//! Everything that leaves the process (tool results, error texts, logs) goes through it, and
//! the logger reads the registry itself rather than a copy taken at start-up.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, OnceLock, RwLock},
};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What replaces a secret wherever it would be shown.
pub const MASK: &str = "***";

/// A handle on a set of secrets; clones share the set.
#[derive(Clone, Default)]
pub struct Secrets {
    held: Arc<RwLock<Vec<SecretString>>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} held)", self.read().len())
    }
}

impl Secrets {
    /// The process-wide registry: credentials register here, and the logger and every
    /// front end mask with it.
    pub fn global() -> &'static Secrets {
        static GLOBAL: OnceLock<Secrets> = OnceLock::new();
        GLOBAL.get_or_init(Secrets::default)
    }

    /// Adds a secret; registering the same one twice changes nothing.
    pub fn register(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        if !held.iter().any(|s| s.expose_secret() == secret) {
            held.push(SecretString::from(secret.to_owned()));
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<SecretString>> {
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The text with every registered secret replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let held = self.read();
        let mut out = Cow::Borrowed(text);
        for secret in held.iter().map(ExposeSecret::expose_secret) {
            if out.contains(secret) {
                out = Cow::Owned(out.replace(secret, MASK));
            }
        }
        out
    }

    /// Masks every secret in every string and key of a JSON value, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.read().is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                let dirty_keys: Vec<String> = map
                    .keys()
                    .filter(|k| matches!(self.redact(k), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in dirty_keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_value(v));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "abcd1234efgh5678";

    #[test]
    fn redacts_text_and_json() {
        let s = Secrets::default();
        s.register(SECRET);
        assert_eq!(
            s.redact("see /rest/1/abcd1234efgh5678/x"),
            "see /rest/1/***/x"
        );
        let mut v = json!({"a": ["x abcd1234efgh5678"], "abcd1234efgh5678": 1});
        s.redact_value(&mut v);
        assert!(!v.to_string().contains(SECRET), "{v}");
        assert_eq!(v["a"][0], "x ***");
    }

    #[test]
    fn keeps_every_secret_it_ever_held() {
        let s = Secrets::default();
        let reader = s.clone();
        s.register("first-secret-1");
        s.register("second-secret-2");
        assert_eq!(reader.redact("first-secret-1 second-secret-2"), "*** ***");
    }
}
