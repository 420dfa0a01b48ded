//! A bound on live sessions: each costs memory until it ends or idles out.

use std::sync::Arc;

use hyper::{Method, Request};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::reply::{Refusal, busy};

pub struct SessionCap {
    pub sessions: Arc<LocalSessionManager>,
    pub max: usize,
}

impl SessionCap {
    /// Refuses a request that would open one session too many.
    pub async fn admit<B>(&self, req: &Request<B>) -> Result<(), Refusal> {
        // A POST without a session id is the only request that opens a session; existing
        // sessions keep working whatever the count.
        let opens_session =
            req.method() == Method::POST && !req.headers().contains_key("mcp-session-id");
        if opens_session && self.sessions.sessions.read().await.len() >= self.max {
            tracing::warn!(limit = self.max, "session cap reached");
            return Err(busy().into());
        }
        Ok(())
    }
}
