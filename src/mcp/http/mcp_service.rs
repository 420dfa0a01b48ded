//! rmcp's Streamable HTTP service, set up for this server: Origin and Host checks against DNS
//! rebinding, JSON answers, and one memory of enabled toolsets for every handler.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use crate::{
    mcp::{handler::PermissionsServer, shutdown::InFlight, toolsets::ToolsetMemory},
    pipeline::Pipeline,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

pub type McpService = StreamableHttpService<PermissionsServer, LocalSessionManager>;

pub struct Mcp {
    pub service: McpService,
    pub sessions: Arc<LocalSessionManager>,
    /// Ends every session at shutdown.
    pub stop_sessions: Box<dyn FnOnce() + Send>,
}

/// `public` is the address people reach the server at through a reverse proxy: its host and
/// origin are allowed besides loopback's.
pub fn mcp_service(
    bound: SocketAddr,
    public: Option<&url::Url>,
    idle: Duration,
    pipeline: Arc<Pipeline>,
) -> Mcp {
    let mut origins: Vec<String> = [
        "http://localhost:*",
        "http://127.0.0.1:*",
        "http://[::1]:*",
        "https://localhost:*",
    ]
    .map(String::from)
    .to_vec();
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if let Some(public) = public {
        origins.push(public.origin().ascii_serialization());
        hosts.extend(public.host_str().map(str::to_owned));
    }
    let mut config = StreamableHttpServerConfig::default()
        // Browsers send Origin; a page on another site must not reach this server.
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_allowed_hosts(hosts)
        .with_json_response(true);
    if !bound.ip().is_loopback() {
        // Clients reach a shared server by names we cannot know; the token guards it instead.
        config = config.disable_allowed_hosts();
    }
    let cancel = config.cancellation_token.clone();
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(idle);
    let sessions = Arc::new(manager);
    // Without sessions, each request gets a handler of its own: they share one memory.
    let (toolsets, in_flight) = (ToolsetMemory::default(), InFlight::default());
    let service = StreamableHttpService::new(
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
    Mcp {
        service,
        sessions,
        stop_sessions: Box::new(move || cancel.cancel()),
    }
}
