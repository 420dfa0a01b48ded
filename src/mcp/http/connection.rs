//! One accepted connection, served until it closes, the server shuts down, or its slot is
//! taken while it only reads.

use std::{sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::{request::Gate, slots::Slot};
use crate::mcp::shutdown::Shutdown;

/// Serves `stream`, holding `slot` until it is done.
pub async fn serve_connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    gate: Arc<Gate>,
    header_timeout: Duration,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn({
        let slot = slot.clone();
        move |req| gate.clone().handle(req, slot.clone())
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = slot.evicted() => {
            // Only reading: closing it loses no answer.
            tracing::debug!("closed a reading connection to make room for a new one");
        }
        () = shutdown.requested() => {
            // Finish the request under way, then close; idle connections close now.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
