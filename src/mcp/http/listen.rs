//! The listening socket: accepts up to the connection cap, backs off when accepting fails, and
//! at shutdown stops accepting and waits (up to the drain time) for the connections under way.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::{HttpError, HttpLimits, connection::serve_connection, request::Gate, slots::Slots};
use crate::mcp::shutdown::Shutdown;

/// The longest pause after failed accepts (for example at the file-descriptor limit).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HttpError> {
    let bind_error = |source| HttpError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Accepts until shutdown is asked for; returns the connections still being served.
pub async fn accept_loop(
    listener: TcpListener,
    limits: &HttpLimits,
    gate: Arc<Gate>,
    mut shutdown: Shutdown,
) -> JoinSet<()> {
    let slots = Slots::new(limits.max_connections);
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.requested() => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let Some(stream) = accepted_or_backoff(accepted, &mut backoff).await else {
            continue;
        };
        // At the connection cap, with every connection answering a request, wait here:
        // further clients queue in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.take() => slot,
            () = shutdown.requested() => break,
        };
        tasks.spawn(serve_connection(
            stream,
            slot,
            gate.clone(),
            limits.header_timeout,
            shutdown.clone(),
        ));
    }
    tasks
}

async fn accepted_or_backoff(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    backoff: &mut Duration,
) -> Option<TcpStream> {
    match accepted {
        Ok((stream, _)) => {
            *backoff = Duration::ZERO;
            Some(stream)
        }
        Err(err) => {
            // Out of file descriptors, most often: retrying at once only spins.
            *backoff = (*backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
            tracing::warn!(%err, pause_ms = backoff.as_millis(), "accept failed");
            tokio::time::sleep(*backoff).await;
            None
        }
    }
}

/// Lets the connections under way finish, up to `drain`.
pub async fn drain(mut tasks: JoinSet<()>, drain: Duration) {
    tracing::info!(
        connections = tasks.len(),
        "stopped accepting; finishing requests under way"
    );
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("requests still running after the drain time; ending them");
    }
}
