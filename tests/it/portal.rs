//! A Bitrix24 stand-in on loopback. It speaks just enough HTTP/1.1 for reqwest, records every
//! request it gets, and answers whatever the test's handler says, down to broken framing and
//! reset connections, which a higher-level mock server cannot produce.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bitrix24_permissions_mcp::testing::{Api, Catalog};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub const SECRET: &str = "s3cr3tW3bh00kC0de";
pub const USER_ID: u32 = 7;

/// One request as the portal saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// The REST method taken from the path (`.json` removed).
    pub method: String,
    /// Sent to the REST 3.0 path, `/rest/api/<user>/<secret>/<method>`.
    pub v3: bool,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status.
    Json(u16, Value),
    /// Any bytes, framed correctly.
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Announces `Content-Length` of the whole body, sends half, and closes.
    CutOff(Value),
    /// Closes the connection with a TCP reset, no answer.
    Reset,
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
}

/// `{"result": value, "time": {...}}`, the way Bitrix24 wraps a success.
pub fn ok(result: Value) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({
            "result": result,
            "time": {"start": 1.0, "finish": 1.1, "duration": 0.1, "processing": 0.05,
                     "operating": 0.1, "operating_reset_at": 1773931520}
        }),
    )
}

/// `{"error": code, "error_description": description}` with this status.
pub fn error(status: u16, code: &str, description: &str) -> Reply {
    Reply::Json(
        status,
        serde_json::json!({"error": code, "error_description": description}),
    )
}

/// A REST 3.0 error: `{"error": {"code": "BITRIX_REST_V3_EXCEPTION_<name>", "message": ...}}`.
pub fn v3_error(status: u16, name: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        serde_json::json!({"error": {"code": format!("BITRIX_REST_V3_EXCEPTION_{name}"), "message": message}}),
    )
}

/// Whether a catalog method is called on the wrong path: a REST 3.0 method on the classic one,
/// or a classic method on the REST 3.0 one. A portal knows neither there (ERROR_METHOD_NOT_FOUND).
fn wrong_path(r: &Received) -> bool {
    static APIS: std::sync::OnceLock<std::collections::BTreeMap<String, bool>> =
        std::sync::OnceLock::new();
    let apis = APIS.get_or_init(|| {
        Catalog::embedded()
            .unwrap()
            .entries()
            .filter(|e| e.spec.is_portal_method())
            .map(|e| (e.spec.method.clone(), e.spec.api == Api::V3))
            .collect()
    });
    apis.get(&r.method).is_some_and(|v3| *v3 != r.v3)
}

/// Answers the reads that guard writes as a portal in the extended permission model does,
/// naming every access code it is asked about except the two no provider names (`UA` and a
/// bare `SG<id>`); everything else goes to `rest`.
pub fn guarded(
    rest: impl Fn(&Received) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Received) -> Reply + Send + Sync + 'static {
    move |r| match r.method.as_str() {
        "landing.role.isEnabled" => ok(Value::Bool(false)),
        "access.name" => {
            let known: serde_json::Map<String, Value> = r.body["ACCESS"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|code| !nameless(code))
                .map(|code| {
                    let about =
                        serde_json::json!({"name": code, "provider": "", "provider_id": "other"});
                    (code.to_owned(), about)
                })
                .collect();
            ok(Value::Object(known))
        }
        _ => rest(r),
    }
}

/// The codes a real `access.name` leaves out although Sites accept them.
pub fn nameless(code: &str) -> bool {
    code == "UA"
        || code
            .strip_prefix("SG")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

pub struct TestPortal {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    aborted: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestPortal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestPortal {
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let aborted = Arc::new(Mutex::new(0));
        // Every test portal serves each catalog method on its own path only, as Bitrix24 does.
        let handler: Handler = Arc::new(move |r: &Received| {
            if wrong_path(r) {
                error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            } else {
                handler(r)
            }
        });
        let log = received.clone();
        let hangups = aborted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    handler.clone(),
                    log.clone(),
                    hangups.clone(),
                ));
            }
        });
        Self {
            port,
            received,
            aborted,
            task,
        }
    }

    /// A portal in the extended permission model that knows every access code (so write
    /// guards pass) and answers every other method with the same reply.
    pub async fn always(reply: Reply) -> Self {
        Self::start(guarded(move |_| reply.clone())).await
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/rest/{USER_ID}/{SECRET}/", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Requests for one REST method.
    pub fn count_of(&self, method: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    /// How many clients hung up while a delayed answer was pending.
    pub fn aborted(&self) -> u32 {
        *self.aborted.lock().unwrap()
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Received>>>,
    aborted: Arc<Mutex<u32>>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        log.lock().unwrap().push(request.clone());
        let mut reply = handler(&request);
        while let Reply::Delay(wait, inner) = reply {
            // A client that gives up closes its end; notice that instead of sleeping through it.
            let mut probe = [0u8; 1];
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                read = stream.read(&mut probe) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        *aborted.lock().unwrap() += 1;
                        return;
                    }
                }
            }
            reply = *inner;
        }
        let keep_open = match reply {
            Reply::Json(status, body) => {
                write_response(
                    &mut stream,
                    status,
                    "application/json",
                    &body.to_string().into_bytes(),
                    None,
                )
                .await
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => write_response(&mut stream, status, content_type, &body, None).await,
            Reply::CutOff(body) => {
                let bytes = body.to_string().into_bytes();
                let _ = write_response(
                    &mut stream,
                    200,
                    "application/json",
                    &bytes,
                    Some(bytes.len() / 2),
                )
                .await;
                false
            }
            Reply::Reset => {
                // Zero linger turns the close into an RST: a connection reset mid-request.
                let _ = stream.set_zero_linger();
                false
            }
            Reply::Delay(..) => unreachable!(),
        };
        if !keep_open {
            return;
        }
    }
}

/// Writes a response; `cut_at` sends only that many body bytes. Returns whether the
/// connection can take another request.
async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    cut_at: Option<usize>,
) -> bool {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // One write, as real servers do: a head and a body in two small writes meet Nagle's
    // algorithm and the client's delayed ACK, and every answer would stall for 40 ms.
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&body[..cut_at.unwrap_or(body.len())]);
    stream.write_all(&wire).await.is_ok() && stream.flush().await.is_ok() && cut_at.is_none()
}

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body_bytes: Vec<u8> = buf.drain(..body_start + length).skip(body_start).collect();
    let body = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let method = path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_owned();
    Some(Received {
        v3: path.starts_with("/rest/api/"),
        path,
        method,
        headers,
        body,
    })
}

impl TestPortal {
    /// A portal that enforces its own request bucket, answering 503 QUERY_LIMIT_EXCEEDED past
    /// it, and `answer` otherwise; returned with the count of requests it refused.
    pub async fn rate_limited(
        per_second: f64,
        burst: u32,
        answer: Reply,
    ) -> (Self, Arc<AtomicUsize>) {
        let bucket = LeakyBucket::new(per_second, burst);
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = refused.clone();
        let portal = Self::start(move |_| {
            if bucket.admit() {
                answer.clone()
            } else {
                counter.fetch_add(1, Ordering::SeqCst);
                error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            }
        })
        .await;
        (portal, refused)
    }
}

/// Bitrix24's own request bucket, to stand in for a portal that enforces its limit.
pub struct LeakyBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, std::time::Instant)>,
}

impl LeakyBucket {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            state: Mutex::new((0.0, std::time::Instant::now())),
        }
    }

    /// Takes one request in, or refuses it when the bucket is full.
    pub fn admit(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        let now = std::time::Instant::now();
        let drained = now.duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 - drained).max(0.0);
        s.1 = now;
        if s.0 + 1.0 > self.burst {
            return false;
        }
        s.0 += 1.0;
        true
    }
}
