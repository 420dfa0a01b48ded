//! Request ids under way, per session: a second request reusing one would take over the
//! first one's answer channel and leave the first unanswered.

use std::{collections::HashSet, sync::Arc};

use hyper::HeaderMap;
use serde_json::Value;

use super::reply::{Refusal, json_error};

/// The members of a message the guards look at; the rest (a large `params`) is skipped, not
/// copied. `None` for a batch or anything that is not one JSON-RPC object.
#[derive(serde::Deserialize)]
pub struct Head {
    pub method: Option<String>,
    id: Option<Value>,
}

impl Head {
    pub fn of(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[derive(Default)]
pub struct InFlightIds(std::sync::Mutex<HashSet<(String, String)>>);

/// Removes its id from the set when the request ends, however it ends.
pub struct IdGuard(Arc<InFlightIds>, (String, String));

impl Drop for IdGuard {
    fn drop(&mut self) {
        self.0
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl InFlightIds {
    fn claim(self: &Arc<Self>, session: &str, id: &Value) -> Option<IdGuard> {
        let key = (session.to_owned(), id.to_string());
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(key.clone()).then(|| IdGuard(self.clone(), key))
    }

    /// Holds the id of a request in a session until the guard is dropped; a request with an
    /// id already held is refused. Notifications, answers and session-less requests hold none.
    pub fn claim_request(
        self: &Arc<Self>,
        headers: &HeaderMap,
        head: Option<&Head>,
    ) -> Result<Option<IdGuard>, Refusal> {
        let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let Some(Head {
            method: Some(_),
            id: Some(id),
        }) = head
        else {
            return Ok(None);
        };
        match self.claim(session, id) {
            Some(guard) => Ok(Some(guard)),
            None => Err(json_error(
                id,
                -32600,
                "Invalid request: this id belongs to a request still under way in this session; use a new id",
            )
            .into()),
        }
    }
}
