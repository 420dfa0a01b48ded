//! `serve --http ADDR`: the same MCP handler over Streamable HTTP, for teams that run one
//! shared server. Every request on every address is authenticated (`auth`): a signed-in person,
//! the one shared token, or, opted into on loopback, readers only. Host and Origin are checked
//! against DNS rebinding.
//!
//! The layers, outside in: `listen` (the socket, the connection cap, shutdown), `connection`
//! (one connection's HTTP/1), `request` (the guards each request passes: `route`, `host`, `auth`,
//! `sessions`, `body`, `density`, `duplicates`, `ids`), with `slots` (a connection's hold on
//! its place) and `sessions` (caps per server and per caller, closing idle ones) kept across
//! them, and `mcp_service`, rmcp's service behind them. On a team server the sign-in,
//! authorization and approval pages are answered before `route` (`crate::mcp::team_pages`).

mod auth;
mod body;
mod connection;
mod density;
mod duplicates;
mod host;
mod ids;
mod listen;
mod mcp_service;
mod reply;
mod request;
mod route;
mod sessions;
mod setup;
mod slots;

use std::{net::SocketAddr, sync::Arc};

pub use route::PATH;
pub use setup::{Access, HttpError, HttpLimits, HttpSetup, TOKEN_ENV};

use self::{
    auth::Authenticator, ids::InFlightIds, mcp_service::mcp_service, request::Gate,
    sessions::Sessions,
};

use crate::{mcp::shutdown::Shutdown, pipeline::Pipeline};

/// Serves until `shutdown` is asked for, then stops accepting, lets the requests under way
/// finish (up to the drain time), and returns. Calls `ready` with the bound address (port 0
/// picks one).
pub async fn serve(
    setup: HttpSetup,
    pipeline: Arc<Pipeline>,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), HttpError> {
    let limits = setup.limits;
    let (listener, bound) = listen::bind(setup.addr).await?;
    let mcp = mcp_service(bound, setup.public.as_ref(), limits.idle, pipeline);
    let sessions = Sessions::new(
        mcp.sessions,
        limits.max_sessions,
        limits.max_sessions_per_caller,
        limits.idle,
    );
    tokio::spawn(sessions.clone().close_idle(shutdown.clone()));
    let team = setup.team.map(|make| make(bound));
    let gate = Arc::new(Gate {
        mcp: mcp.service,
        team: team.clone(),
        auth: Authenticator {
            token: setup.token,
            team,
            anonymous_reads: setup.anonymous_reads,
        },
        sessions: sessions.clone(),
        ids: Arc::new(InFlightIds::default()),
    });
    ready(bound);
    let tasks = listen::accept_loop(listener, &limits, gate, shutdown).await;
    listen::drain(tasks, limits.drain).await;
    (mcp.stop_sessions)();
    Ok(())
}
