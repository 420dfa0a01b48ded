//! Live sessions: how many there may be, whose they are, and when they end. Each costs memory
//! until it ends, so there is a cap for the server and a smaller one for each caller (one
//! caller cannot take every session), and a session nobody uses is closed after the idle time.
//! A `ping` is not use: a client that only pings would otherwise hold its session for ever.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::{
    SessionManager, local::LocalSessionManager,
};
use tokio::time::Instant;

use super::{
    auth::CallerKey,
    reply::{Refusal, busy, plain},
};
use crate::mcp::shutdown::Shutdown;

pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    max: usize,
    per_caller: usize,
    idle: Duration,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    live: HashMap<Arc<str>, Entry>,
    /// Sessions being opened (the answer with their id is not back yet), per caller.
    opening: HashMap<CallerKey, usize>,
}

struct Entry {
    caller: CallerKey,
    last_used: Instant,
    /// Requests of this session under way; it is never idle while one is.
    busy: usize,
}

/// What a request is to the sessions, decided before it goes on.
pub enum Admission {
    /// Opens a session (once its answer names it).
    Opening(Opening),
    /// Uses the named session.
    Session(Arc<str>),
    /// Neither (the 2026-07-28 lifecycle has no sessions; rmcp answers the rest).
    Other,
}

/// A session being opened: counts against its caller's cap until it is booked or dropped.
pub struct Opening {
    sessions: Arc<Sessions>,
    caller: CallerKey,
}

/// Marks its session in use until the answer is sent.
pub struct InUse {
    sessions: Arc<Sessions>,
    id: Arc<str>,
}

impl Sessions {
    pub fn new(
        manager: Arc<LocalSessionManager>,
        max: usize,
        per_caller: usize,
        idle: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            manager,
            max,
            per_caller,
            idle,
            book: Mutex::default(),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a request that would open one session too many, for the server or for its
    /// caller, and a request naming another caller's session.
    pub async fn admit<B>(
        self: &Arc<Self>,
        req: &Request<B>,
        caller: &CallerKey,
    ) -> Result<Admission, Refusal> {
        if let Some(id) = session_id(req.headers()) {
            let book = self.book();
            return match book.live.get(id) {
                Some(entry) if entry.caller != *caller => {
                    Err(plain(StatusCode::NOT_FOUND, "no such session\n").into())
                }
                _ => Ok(Admission::Session(Arc::from(id))),
            };
        }
        // A POST without a session id is the only request that opens a session; existing
        // sessions keep working whatever the count.
        if req.method() != Method::POST {
            return Ok(Admission::Other);
        }
        let live: HashSet<Arc<str>> = self.manager.sessions.read().await.keys().cloned().collect();
        let mut book = self.book();
        book.live.retain(|id, _| live.contains(id));
        let opening = book.opening.get(caller).copied().unwrap_or(0);
        let mine = book.live.values().filter(|e| e.caller == *caller).count() + opening;
        if live.len() >= self.max {
            tracing::warn!(limit = self.max, "session cap reached");
            return Err(busy().into());
        }
        if mine >= self.per_caller {
            tracing::warn!(
                limit = self.per_caller,
                "session cap for one caller reached"
            );
            return Err(busy().into());
        }
        *book.opening.entry(caller.clone()).or_default() += 1;
        Ok(Admission::Opening(Opening {
            sessions: self.clone(),
            caller: caller.clone(),
        }))
    }

    /// A request in `id` that is use of it (anything but a ping). With `until_answered` the
    /// session is not idle until the answer is sent; a stream the client holds open (GET) is
    /// use when it starts only, or holding one would keep a session for ever.
    pub fn use_session(self: &Arc<Self>, id: &Arc<str>, until_answered: bool) -> Option<InUse> {
        let mut book = self.book();
        let entry = book.live.get_mut(id)?;
        entry.last_used = Instant::now();
        if !until_answered {
            return None;
        }
        entry.busy += 1;
        Some(InUse {
            sessions: self.clone(),
            id: id.clone(),
        })
    }

    /// Closes sessions unused for the idle time, until shutdown.
    pub async fn close_idle(self: Arc<Self>, mut shutdown: Shutdown) {
        let tick = (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        loop {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = shutdown.requested() => return,
            }
            for id in self.idle_ones() {
                tracing::info!("closing a session unused for {} s", self.idle.as_secs());
                let _ = self.manager.close_session(&id).await;
            }
        }
    }

    fn idle_ones(&self) -> Vec<Arc<str>> {
        let mut book = self.book();
        let idle: Vec<Arc<str>> = book
            .live
            .iter()
            .filter(|(_, e)| e.busy == 0 && e.last_used.elapsed() >= self.idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            book.live.remove(id);
        }
        idle
    }
}

impl Opening {
    /// Books the session the answer opened, if it opened one.
    pub fn opened<B>(self, response: &Response<B>) {
        if let Some(id) = session_id(response.headers()) {
            let entry = Entry {
                caller: self.caller.clone(),
                last_used: Instant::now(),
                busy: 0,
            };
            self.sessions.book().live.insert(Arc::from(id), entry);
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut book = self.sessions.book();
        if let Some(n) = book.opening.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                book.opening.remove(&self.caller);
            }
        }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut book = self.sessions.book();
        if let Some(entry) = book.live.get_mut(&self.id) {
            entry.busy -= 1;
            entry.last_used = Instant::now();
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("mcp-session-id")?.to_str().ok()
}
