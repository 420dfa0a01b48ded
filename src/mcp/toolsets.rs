//! The toolsets a caller enabled at run time with `enable_toolset`.
//!
//! On the session lifecycles a session is one handler, and what it enabled could live in that
//! handler. Over Streamable HTTP on the 2026-07-28 lifecycle there are no sessions: every
//! request gets a handler of its own, so what one request enabled must outlive it. The memory
//! is therefore shared by every handler of a server and keyed by who is asking: the HTTP
//! session when there is one, else the caller's credentials (a hash, never the token), else
//! the one local client of a stdio server.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, PoisonError},
};

use hyper::http::request::Parts;
use rmcp::{RoleServer, service::RequestContext};

/// How many callers' choices are kept; the oldest is forgotten first. A forgotten caller
/// sees the default tools again, which is safe: enabling only ever widens the list.
const MAX_CALLERS: usize = 1024;

#[derive(Default)]
struct Memory {
    sets: HashMap<String, Vec<String>>,
    order: VecDeque<String>,
}

/// Shared by the handlers of one server.
#[derive(Clone, Default)]
pub struct ToolsetMemory {
    inner: Arc<Mutex<Memory>>,
    /// Keys callers' hashes, so that a key never holds a token.
    hasher: RandomState,
}

impl ToolsetMemory {
    /// The toolsets the caller of this request has enabled.
    pub fn enabled(&self, key: &str) -> Vec<String> {
        let memory = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        memory.sets.get(key).cloned().unwrap_or_default()
    }

    /// Adds a toolset for this caller; answers whether it was new.
    pub fn enable(&self, key: &str, toolset: &str) -> bool {
        let mut memory = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !memory.sets.contains_key(key) {
            if memory.order.len() >= MAX_CALLERS
                && let Some(oldest) = memory.order.pop_front()
            {
                memory.sets.remove(&oldest);
            }
            memory.order.push_back(key.to_owned());
        }
        let sets = memory.sets.entry(key.to_owned()).or_default();
        if sets.iter().any(|s| s == toolset) {
            return false;
        }
        sets.push(toolset.to_owned());
        true
    }

    /// Who is asking, as a key of this memory.
    pub fn key(&self, context: &RequestContext<RoleServer>) -> String {
        let Some(parts) = context.extensions.get::<Parts>() else {
            return "local".to_owned();
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        if let Some(session) = header("mcp-session-id") {
            return format!("session:{session}");
        }
        match header("authorization") {
            Some(credentials) => format!("caller:{:016x}", self.hasher.hash_one(credentials)),
            None => "caller:anonymous".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_caller_and_forgets_the_oldest() {
        let memory = ToolsetMemory::default();
        assert!(memory.enable("a", "sites"));
        assert!(!memory.enable("a", "sites"));
        assert_eq!(memory.enabled("a"), ["sites"]);
        assert!(memory.enabled("b").is_empty());
        for n in 0..MAX_CALLERS {
            memory.enable(&format!("other-{n}"), "people");
        }
        assert!(
            memory.enabled("a").is_empty(),
            "the oldest caller is forgotten"
        );
        assert_eq!(memory.enabled("other-1"), ["people"]);
    }
}
