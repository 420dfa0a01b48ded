//! A session belongs to the caller who opened it: a request naming someone else's session id
//! is answered as if the session did not exist, so a leaked or guessed id gives nobody
//! another person's session (its enabled toolsets, its questions).

use std::{collections::HashMap, sync::Mutex};

use hyper::{Request, Response, StatusCode};

use super::reply::{Refusal, plain};

/// Session ids a server keeps track of before forgetting the oldest.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub struct SessionOwners(Mutex<HashMap<String, String>>);

fn session_of(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl SessionOwners {
    /// Refuses a request for a session another caller opened.
    pub fn check<B>(&self, req: &Request<B>, caller: &str) -> Result<(), Refusal> {
        let Some(session) = session_of(req.headers()) else {
            return Ok(());
        };
        let owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match owners.get(&session) {
            Some(owner) if owner != caller => {
                tracing::warn!("a request named a session another caller opened");
                Err(plain(StatusCode::NOT_FOUND, "session not found\n").into())
            }
            _ => Ok(()),
        }
    }

    /// Notes who opened the session a response announces.
    pub fn record<B>(&self, response: &Response<B>, caller: &str) {
        let Some(session) = session_of(response.headers()) else {
            return;
        };
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if owners.len() >= MAX_REMEMBERED {
            owners.clear();
        }
        owners.entry(session).or_insert_with(|| caller.to_owned());
    }
}
