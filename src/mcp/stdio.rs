//! The stdio transport: newline-delimited JSON-RPC, framed here rather than by rmcp, so that
//! every line gets an answer and no line is read into memory past a stated size.
//!
//! rmcp drops what it cannot parse without a word (invalid UTF-8, a lone surrogate, `1e309`,
//! a batch array), which leaves the client waiting for its own timeout. Here each such line is
//! answered with a JSON-RPC error on the same writer the responses use: -32700 with id null
//! for what is not JSON, -32600 for a batch or a message of no known shape, -32602 for a
//! known method whose params do not fit it. Good messages go to rmcp unchanged.
//!
//! rmcp also ends the session when the first message it reads is a notification or a
//! response, since only `initialize` (or `server/discover`, or a stateless request) may open
//! one. A client that sends `notifications/cancelled` a moment too early would then lose the
//! whole server, so until the first request arrives anything else is logged and dropped.

use std::sync::Arc;

use rmcp::{
    RoleServer,
    model::{ClientRequest, JsonRpcMessage},
    service::{RxJsonRpcMessage, TxJsonRpcMessage},
    transport::Transport,
};
use serde_json::{Value, json};

use super::{
    duplicate_keys::{duplicate_message, first_duplicate},
    shutdown::Shutdown,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    sync::Mutex,
    task::JoinHandle,
};

/// The longest request line read: the same bound as an HTTP request body. A longer line is
/// answered with an error and skipped without being held in memory.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The request methods rmcp knows (its `ClientRequest` union). rmcp reads a known method
/// whose params do not fit as an unknown custom request and answers "method not found";
/// the client deserves "invalid params" instead.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "server/discover",
    "ping",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/directory/read",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "skills/list",
    "skills/get",
];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

enum LineRead {
    Line,
    Oversized,
    Eof,
}

type Writer<W> = Arc<Mutex<Option<W>>>;

/// Newline-delimited JSON-RPC over any reader and writer.
pub struct LineTransport<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    max_line: usize,
    /// Set after an oversized line was refused, until its newline has gone by. Kept here,
    /// not in a local, because `receive` is polled in a `select!` and may be dropped.
    discarding: bool,
    write: Writer<W>,
    /// The error reply to a bad line, written by a task of its own so that a cancelled
    /// `receive` never leaves half a reply on the wire; awaited before the next read.
    replying: Option<JoinHandle<()>>,
    /// Once asked, no further line is read: the calls under way finish, nothing new starts.
    shutdown: Option<Shutdown>,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub fn new(read: R, write: W, max_line: usize) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            max_line,
            discarding: false,
            write: Arc::new(Mutex::new(Some(write))),
            replying: None,
            shutdown: None,
        }
    }

    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Reads one line into `self.line`, never letting it grow past `max_line`. Cancel-safe:
    /// nothing is consumed from the reader without being copied or skipped on purpose.
    async fn read_line(&mut self) -> std::io::Result<LineRead> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(LineRead::Eof);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let result = if self.discarding {
                if newline.is_some() {
                    self.discarding = false;
                }
                None
            } else if self.line.len() + take > self.max_line {
                self.line.clear();
                self.discarding = newline.is_none();
                Some(LineRead::Oversized)
            } else {
                self.line.extend_from_slice(&available[..take]);
                newline.map(|_| LineRead::Line)
            };
            self.read.consume(take);
            if let Some(result) = result {
                return Ok(result);
            }
        }
    }

    fn reply(&mut self, reply: Value) {
        let write = self.write.clone();
        self.replying = Some(tokio::spawn(async move {
            let mut bytes = reply.to_string().into_bytes();
            bytes.push(b'\n');
            if let Err(err) = write_line(&write, &bytes).await {
                tracing::warn!(%err, "could not answer a bad message");
            }
        }));
    }

    async fn reply_done(&mut self) {
        if let Some(handle) = self.replying.as_mut() {
            let _ = handle.await;
            self.replying = None;
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin>(write: &Writer<W>, bytes: &[u8]) -> std::io::Result<()> {
    let mut guard = write.lock().await;
    let Some(w) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    w.write_all(bytes).await?;
    w.flush().await
}

fn error_reply(id: Value, code: i32, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// What a line comes to: a message for rmcp, an error reply to send, or nothing at all.
enum Verdict {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    Reply(Value),
    Skip,
}

fn judge(line: &[u8]) -> Verdict {
    let line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
    let parse_error = |why: String| {
        Verdict::Reply(error_reply(
            Value::Null,
            -32700,
            format!("Parse error: {why}. Send one JSON-RPC message per line, as UTF-8 JSON."),
        ))
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return parse_error("the line is not valid UTF-8".to_owned());
    };
    if text.trim().is_empty() {
        return Verdict::Skip;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return parse_error(format!("not valid JSON ({e})")),
    };
    let Value::Object(object) = &value else {
        let message = if value.is_array() {
            "Invalid request: JSON-RPC batches are not supported; send each message on its own line"
        } else {
            "Invalid request: a JSON-RPC message is a JSON object"
        };
        return Verdict::Reply(error_reply(Value::Null, -32600, message.to_owned()));
    };
    // Only a string or an integer id can be echoed back; anything else is answered with null.
    let id = match object.get("id") {
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n.clone())),
        Some(_) => Some(Value::Null),
        None => None,
    };
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(key) = first_duplicate(text) {
        return Verdict::Reply(error_reply(
            id.unwrap_or(Value::Null),
            -32600,
            duplicate_message(&key),
        ));
    }
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        Ok(JsonRpcMessage::Request(request)) if matches!(&request.request, ClientRequest::CustomRequest(c) if KNOWN_METHODS.contains(&c.method.as_str())) =>
        {
            let method = method.unwrap_or_default();
            Verdict::Reply(invalid_params(id.unwrap_or(Value::Null), &method))
        }
        Ok(message) => Verdict::Message(Box::new(message)),
        Err(e) => match (id, method) {
            // A notification nobody asked for an answer to, e.g. another protocol's chatter.
            (None, Some(method)) => {
                tracing::debug!(%method, "ignored a notification that could not be read: {e}");
                Verdict::Skip
            }
            (Some(id), Some(method)) if KNOWN_METHODS.contains(&method.as_str()) => {
                Verdict::Reply(invalid_params(id, &method))
            }
            (id, _) => Verdict::Reply(error_reply(
                id.unwrap_or(Value::Null),
                -32600,
                format!(
                    "Invalid request: not a JSON-RPC 2.0 request, notification or response ({e})"
                ),
            )),
        },
    }
}

fn invalid_params(id: Value, method: &str) -> Value {
    let hint = if method == "tools/call" {
        " `params` must be an object with `name` (a string) and optional `arguments` (a JSON object)."
    } else {
        " `params` must be a JSON object as the MCP specification defines for this method."
    };
    error_reply(id, -32602, format!("Invalid params for {method}.{hint}"))
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item)?;
            bytes.push(b'\n');
            write_line(&write, &bytes).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            self.reply_done().await;
            let read = match self.shutdown.as_mut() {
                None => self.read_line().await,
                Some(shutdown) => {
                    let mut shutdown = shutdown.clone();
                    tokio::select! {
                        read = self.read_line() => read,
                        () = shutdown.requested() => std::future::pending().await,
                    }
                }
            };
            match read {
                Ok(LineRead::Line) => {}
                Ok(LineRead::Oversized) => {
                    tracing::warn!(
                        limit = self.max_line,
                        "refused a request line over the limit"
                    );
                    self.reply(error_reply(
                        Value::Null,
                        -32600,
                        format!(
                            "Invalid request: the line is over {} bytes and was not read. \
                             Send smaller requests (fewer items per call).",
                            self.max_line
                        ),
                    ));
                    continue;
                }
                Ok(LineRead::Eof) => return None,
                Err(err) => {
                    tracing::error!(%err, "cannot read stdin");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            let verdict = judge(body);
            // Keep the buffer's capacity only for ordinary sizes.
            if line.capacity() <= 64 * 1024 {
                self.line = line;
                self.line.clear();
            }
            match verdict {
                Verdict::Message(message) => return Some(*message),
                Verdict::Reply(reply) => self.reply(reply),
                Verdict::Skip => {}
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reply_done().await;
        if let Some(mut w) = self.write.lock().await.take() {
            w.flush().await?;
        }
        Ok(())
    }
}

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

/// stdin/stdout as an MCP server transport, on the non-blocking pipe driver when possible;
/// it stops reading once `shutdown` is asked for.
pub fn stdio(shutdown: Shutdown) -> impl Transport<RoleServer> {
    let (read, write) = rmcp::transport::io::stdio_pipes();
    OpeningTolerant::new(LineTransport::new(read, write, MAX_LINE_BYTES).with_shutdown(shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(line: &[u8]) -> Value {
        match judge(line) {
            Verdict::Reply(v) => v,
            Verdict::Message(m) => panic!("read as a message: {m:?}"),
            Verdict::Skip => panic!("skipped"),
        }
    }

    #[test]
    fn every_bad_line_is_answered() {
        for line in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}"[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\ud800"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":1e309}}"#,
            b"{",
        ] {
            let r = reply_of(line);
            assert_eq!(r["error"]["code"], -32700, "{r}");
            assert_eq!(r["id"], Value::Null);
        }
        let r = reply_of(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(r["error"]["code"], -32600, "{r}");
        for params in [
            r#"{"name":"profile","arguments":[1]}"#,
            r#"{"name":"profile","arguments":"x"}"#,
            r#"{"name":"profile","arguments":7}"#,
            "7",
            r#"{"name":5}"#,
        ] {
            let line =
                format!(r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{params}}}"#);
            let r = reply_of(line.as_bytes());
            assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
            assert_eq!(r["id"], 9);
        }
        let r = reply_of(br#"{"jsonrpc":"2.0","id":"a"}"#);
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert_eq!(r["id"], "a");
    }

    #[test]
    fn good_lines_pass() {
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"profile","arguments":{}}}"#),
            Verdict::Message(_)
        ));
        assert!(matches!(
            judge(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"),
            Verdict::Message(_)
        ));
        assert!(matches!(judge(b"  "), Verdict::Skip));
    }

    #[tokio::test]
    async fn an_oversized_line_is_refused_and_the_next_one_read() {
        let input = format!(
            "{}\n{}\n",
            "x".repeat(100),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        );
        let (out_w, mut out_r) = tokio::io::duplex(4096);
        let mut t = LineTransport::new(input.as_bytes(), out_w, 50);
        let message = t.receive().await.expect("the second line");
        assert!(matches!(message, JsonRpcMessage::Request(_)));
        t.close().await.unwrap();
        let mut written = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut out_r, &mut written)
            .await
            .unwrap();
        assert!(
            written.contains("-32600") && written.contains("over 50 bytes"),
            "{written}"
        );
    }
}
