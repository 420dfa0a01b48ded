//! The stdio transport, made tolerant of stray messages before the first request.
//!
//! rmcp ends the session when the first message it reads is a notification or a response,
//! since only `initialize` (or `server/discover`, or a stateless request) may open one. A client
//! that sends `notifications/cancelled` a moment too early would then lose the whole server.
//! Until the first request arrives, anything that is not a request is logged and dropped.

use rmcp::{
    RoleServer,
    model::JsonRpcMessage,
    service::{RxJsonRpcMessage, TxJsonRpcMessage},
    transport::{Transport, async_rw::AsyncRwTransport},
};

struct OpeningTolerant<T> {
    inner: T,
    opened: bool,
}

impl<T> OpeningTolerant<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            opened: false,
        }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for OpeningTolerant<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let message = self.inner.receive().await?;
            if self.opened || matches!(message, JsonRpcMessage::Request(_)) {
                self.opened = true;
                return Some(message);
            }
            tracing::warn!("ignored a message that arrived before the first request");
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// stdin/stdout as an MCP server transport, on the non-blocking pipe driver when possible.
pub fn stdio() -> impl Transport<RoleServer> {
    let (read, write) = rmcp::transport::io::stdio_pipes();
    OpeningTolerant::new(AsyncRwTransport::new_server(read, write))
}
