//! `serve --http ADDR`: the same MCP handler over Streamable HTTP, for teams that run one
//! shared server. Loopback by default; any other address needs a bearer token, and then every
//! request must carry it. Host and Origin are checked against DNS rebinding.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tower_service::Service;

use super::{
    duplicate_keys::{duplicate_message, first_duplicate},
    handler::PermissionsServer,
    shutdown::{InFlight, Shutdown},
    toolsets::ToolsetMemory,
};
use crate::pipeline::Pipeline;

/// How long a client may take to send a request's headers; a slow trickle is cut off.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// What a client refused for the session cap is told to wait before trying again.
const RETRY_AFTER_SECS: &str = "30";
/// The longest pause after failed accepts (for example at the file-descriptor limit).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The limits that keep a shared server standing: each live session costs memory until it
/// ends or idles out, each connection a file descriptor.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_sessions: usize,
    pub idle: Duration,
    pub max_connections: usize,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            idle: Duration::from_secs(300),
            max_connections: 256,
            drain: Duration::from_secs(30),
        }
    }
}

/// Where the MCP endpoint lives, as MCP clients and the conformance suite expect.
pub const PATH: &str = "/mcp";

pub const TOKEN_ENV: &str = "BITRIX24_HTTP_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, so anyone who can reach it could use \
         the webhook. Set {TOKEN_ENV} to a long random token (clients then send 'Authorization: Bearer <token>'), \
         or listen on 127.0.0.1"
    )]
    PublicWithoutToken { addr: SocketAddr },
    #[error("{TOKEN_ENV} is too short: use at least 16 characters")]
    WeakToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The checked listening setup.
pub struct HttpSetup {
    addr: SocketAddr,
    token: Option<SecretString>,
    limits: HttpLimits,
}

impl HttpSetup {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Result<Self, HttpError> {
        let token = token.filter(|t| !t.is_empty());
        if let Some(t) = &token
            && t.len() < 16
        {
            return Err(HttpError::WeakToken);
        }
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(HttpError::PublicWithoutToken { addr });
        }
        Ok(Self {
            addr,
            token: token.map(SecretString::from),
            limits: HttpLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    *response.status_mut() = status;
    response
}

/// The largest request body read, as rmcp's own limit: larger ones get 413 unread.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Request ids under way, per session: a second request reusing one would take over the
/// first one's answer channel and leave the first unanswered.
#[derive(Default)]
struct InFlightIds(std::sync::Mutex<std::collections::HashSet<(String, String)>>);

/// Removes its id from the set when the request ends, however it ends.
struct IdGuard(Arc<InFlightIds>, (String, String));

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
}

fn json_error(id: &Value, code: i32, message: &str) -> Response<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn busy() -> Response<Body> {
    let mut response = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many open MCP sessions on this server; try again later, or close sessions you no longer use\n",
    );
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
}

/// Serves until `shutdown` is asked for, then stops accepting, lets the requests under way
/// finish (up to the drain time), and returns. Calls `ready` with the bound address (port 0
/// picks one).
pub async fn serve(
    setup: HttpSetup,
    pipeline: Arc<Pipeline>,
    mut shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), HttpError> {
    let limits = setup.limits;
    let listener = TcpListener::bind(setup.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: setup.addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: setup.addr,
        source,
    })?;
    let mut config = StreamableHttpServerConfig::default()
        // Browsers send Origin; a page on another site must not reach this server.
        .with_allowed_origins([
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "https://localhost:*",
        ])
        .enforce_origin_validation()
        .with_json_response(true);
    if !bound.ip().is_loopback() {
        // Clients reach a shared server by names we cannot know; the token guards it instead.
        config = config.disable_allowed_hosts();
    }
    let stop_sessions = config.cancellation_token.clone();
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(limits.idle);
    let sessions = Arc::new(manager);
    // One memory of enabled toolsets for every handler: without sessions, each request
    // gets a handler of its own.
    let (toolsets, in_flight) = (ToolsetMemory::default(), InFlight::default());
    let mcp = StreamableHttpService::new(
        move || {
            Ok(PermissionsServer::sharing(
                pipeline.clone(),
                toolsets.clone(),
                in_flight.clone(),
            ))
        },
        sessions.clone(),
        config,
    );
    let token = Arc::new(setup.token);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let ids = Arc::new(InFlightIds::default());
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::ZERO;
    ready(bound);
    loop {
        // At the connection cap, wait here: new clients queue in the kernel's backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
            () = shutdown.requested() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.requested() => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(err) => {
                // Out of file descriptors, most often: retrying at once only spins.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tracing::warn!(%err, pause_ms = backoff.as_millis(), "accept failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mcp = mcp.clone();
        let token = token.clone();
        let sessions = sessions.clone();
        let ids = ids.clone();
        let mut conn_shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<Incoming>| {
                let mut mcp = mcp.clone();
                let token = token.clone();
                let sessions = sessions.clone();
                let ids = ids.clone();
                async move {
                    if req.uri().path() != PATH {
                        return Ok::<_, Infallible>(plain(
                            StatusCode::NOT_FOUND,
                            "the MCP endpoint is /mcp\n",
                        ));
                    }
                    if let Some(expected) = token.as_ref() {
                        let given = req
                            .headers()
                            .get(hyper::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "));
                        if !given.is_some_and(|g| {
                            constant_time_eq(g.as_bytes(), expected.expose_secret().as_bytes())
                        }) {
                            let mut denied =
                                plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
                            denied.headers_mut().insert(
                                hyper::header::WWW_AUTHENTICATE,
                                hyper::header::HeaderValue::from_static("Bearer"),
                            );
                            return Ok(denied);
                        }
                    }
                    // A POST without a session id is the only request that opens a session;
                    // existing sessions keep working whatever the count.
                    let opens_session = req.method() == hyper::Method::POST
                        && !req.headers().contains_key("mcp-session-id");
                    if opens_session && sessions.sessions.read().await.len() >= limits.max_sessions
                    {
                        tracing::warn!(limit = limits.max_sessions, "session cap reached");
                        return Ok(busy());
                    }
                    // The body is read here, bounded in size and time, so that a client
                    // trickling it cannot hold a connection, and so its id can be checked.
                    let (parts, body) = req.into_parts();
                    let read = tokio::time::timeout(
                        BODY_TIMEOUT,
                        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
                    )
                    .await;
                    let bytes = match read {
                        Ok(Ok(collected)) => collected.to_bytes(),
                        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
                            return Ok(plain(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "the request body is over 4 MiB\n",
                            ));
                        }
                        Ok(Err(_)) => {
                            return Ok(plain(StatusCode::BAD_REQUEST, "the request body broke off\n"));
                        }
                        Err(_) => {
                            return Ok(plain(
                                StatusCode::REQUEST_TIMEOUT,
                                "the request body took over 30 s\n",
                            ));
                        }
                    };
                    // The same refusal as over stdio: the checks must see what is sent.
                    if let Some(key) = std::str::from_utf8(&bytes).ok().and_then(first_duplicate) {
                        let id = serde_json::from_slice::<Value>(&bytes)
                            .ok()
                            .and_then(|m| m.get("id").cloned())
                            .unwrap_or(Value::Null);
                        return Ok(json_error(&id, -32600, &duplicate_message(&key)));
                    }
                    let session = parts
                        .headers
                        .get("mcp-session-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let mut held = None;
                    if let Some(session) = session
                        && let Ok(message) = serde_json::from_slice::<Value>(&bytes)
                        && message.get("method").is_some()
                        && let Some(id) = message.get("id")
                    {
                        match ids.claim(&session, id) {
                            Some(guard) => held = Some(guard),
                            None => {
                                return Ok(json_error(
                                    id,
                                    -32600,
                                    "Invalid request: this id belongs to a request still under way in this session; use a new id",
                                ));
                            }
                        }
                    }
                    let req = Request::from_parts(parts, Full::new(bytes));
                    let response = mcp.call(req).await?;
                    // The answer may still be streaming: the id is free once the body is done.
                    Ok(response.map(|body| {
                        body.map_err(|never| match never {})
                            .map_frame(move |frame| {
                                let _ = &held;
                                frame
                            })
                            .boxed_unsync()
                    }))
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = conn_shutdown.requested() => {
                    // Finish the request under way, then close; idle connections close now.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "stopped accepting; finishing requests under way"
    );
    let drained = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still running after the drain time; ending them");
    }
    stop_sessions.cancel();
    Ok(())
}

/// Compares without an early exit, so response times say nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_need_a_token() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(matches!(
            HttpSetup::new(public, None),
            Err(HttpError::PublicWithoutToken { .. })
        ));
        assert!(matches!(
            HttpSetup::new(public, Some("short".into())),
            Err(HttpError::WeakToken)
        ));
        assert!(HttpSetup::new(public, Some("a-long-random-token-123".into())).is_ok());
        assert!(HttpSetup::new("127.0.0.1:0".parse().unwrap(), None).is_ok());
        assert!(HttpSetup::new("[::1]:0".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
