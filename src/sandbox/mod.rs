//! `--sandbox`: a Bitrix24 stand-in served on loopback inside this process, so a newcomer sees
//! real answers without a portal, and the real HTTP client, limiter and error paths still run.

mod oauth;
pub(crate) mod portal;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use oauth::{Reply, StandIn};
use portal::Portal;
pub use portal::Size;

use crate::{
    bitrix::{Api, Credentials, Identity, WebhookUrl},
    catalog::Catalog,
};

/// Added to every answer's structured content, so no one takes sandbox data for their portal.
pub const NOTICE: &str = "SANDBOX: invented data from the built-in sandbox portal, not your Bitrix24. Set BITRIX24_WEBHOOK_URL for a real portal.";

/// The portal every sandbox run is, whatever port it listens on: the ledger keys its rows by
/// portal, so a newcomer's sandbox writes show in `history` across runs. No real portal's host
/// lacks a dot, so it cannot be taken for one.
pub const PORTAL: &str = "sandbox";

/// The sandbox's webhook, with the sandbox's one stable identity.
#[derive(Debug)]
pub struct SandboxCredentials(WebhookUrl);

impl std::fmt::Display for SandboxCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the built-in sandbox portal ({})", self.0)
    }
}

impl Credentials for SandboxCredentials {
    fn method_url(&self, api: Api, method: &str) -> String {
        self.0.method_url(api, method)
    }

    fn identity(&self) -> Identity {
        Identity {
            host: PORTAL.to_owned(),
            user_id: portal::ME.to_string(),
        }
    }

    fn is_loopback_http(&self) -> bool {
        true
    }
}

/// The sandbox's OAuth application, for a team server signing people in to the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxApp {
    /// The portal's address, `http://127.0.0.1:<port>`: its authorize page is under it.
    pub portal: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A running sandbox: the webhook it answers, and its OAuth stand-in's application.
pub struct Sandbox {
    pub credentials: SandboxCredentials,
    pub app: SandboxApp,
}

/// What the sandbox's listener holds: the company, and the tokens its people were given.
struct State {
    portal: Mutex<Portal>,
    oauth: Mutex<StandIn>,
    secret: String,
}

/// Starts the sandbox portal on a free loopback port; it lives as long as the runtime.
/// Access tokens from its OAuth stand-in last `token_life` (an hour, as on Bitrix24, unless a
/// test wants to see one expire).
pub async fn start(
    catalog: Arc<Catalog>,
    size: Size,
    token_life: Duration,
) -> std::io::Result<Sandbox> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let host = format!("127.0.0.1:{port}");
    // A fresh secret each run, so the masking of secrets is exercised here too.
    let secret: String = (0..16).map(|_| fastrand::alphanumeric()).collect();
    let oauth = StandIn::new(host.clone(), token_life);
    let app = SandboxApp {
        portal: format!("http://{host}"),
        client_id: oauth::CLIENT_ID.to_owned(),
        client_secret: oauth.client_secret().to_owned(),
    };
    let state = Arc::new(State {
        portal: Mutex::new(Portal::of_size(&catalog, size)),
        oauth: Mutex::new(oauth),
        secret: secret.clone(),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, state.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("http://{host}/rest/{}/{secret}/", portal::ME);
    let credentials = WebhookUrl::parse(&url)
        .map(SandboxCredentials)
        .map_err(std::io::Error::other)?;
    Ok(Sandbox { credentials, app })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who a REST call acts as, from its path (a webhook) or its `auth` parameter (a token).
enum Caller {
    User(u64),
    Refused(u16, Value),
}

fn caller(state: &State, rest: &[&str], query: &oauth::Params, body: &Value) -> Caller {
    let refused = |status, code: &str, description: &str| {
        Caller::Refused(
            status,
            json!({"error": code, "error_description": description}),
        )
    };
    match rest {
        [user, secret, _] => match user.parse::<u64>() {
            Ok(user) if *secret == state.secret && user == portal::ME => Caller::User(user),
            _ => refused(401, "INVALID_CREDENTIALS", "Invalid request credentials"),
        },
        [_] => {
            let token = query
                .get("auth")
                .map(String::as_str)
                .or_else(|| body["auth"].as_str());
            let Some(token) = token else {
                return refused(401, "NO_AUTH_FOUND", "Wrong authorization data");
            };
            match lock(&state.oauth).user_of(token) {
                Ok(user) => Caller::User(user),
                Err(oauth::Refused::Expired) => refused(
                    401,
                    "expired_token",
                    "The access token provided has expired.",
                ),
                Err(oauth::Refused::Unknown) => refused(
                    401,
                    "invalid_token",
                    "The access token provided is invalid.",
                ),
            }
        }
        _ => refused(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
    }
}

async fn answer(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = oauth::params(req.uri().query().unwrap_or_default());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path.starts_with("/oauth/") {
        return Ok(oauth_answer(&state, &path, query, &body));
    }
    let (api, rest) = match path.strip_prefix("/rest/api/") {
        Some(rest) => (Api::V3, rest),
        None => (
            Api::Classic,
            path.strip_prefix("/rest/").unwrap_or_default(),
        ),
    };
    let rest: Vec<&str> = rest.split('/').collect();
    let method = rest
        .last()
        .copied()
        .unwrap_or_default()
        .trim_end_matches(".json");
    let mut params: Value =
        serde_json::from_slice(&body).unwrap_or(Value::Object(Default::default()));
    let (status, mut json) = match caller(&state, &rest, &query, &params) {
        Caller::User(user) => {
            if let Value::Object(map) = &mut params {
                map.remove("auth");
            }
            lock(&state.portal).call_as(user, api, method, &params)
        }
        Caller::Refused(status, json) => (status, json),
    };
    if let Value::Object(map) = &mut json {
        map.insert(
            "time".into(),
            serde_json::json!({"operating": 0, "operating_reset_at": unix_now() + 600.0, "finish": unix_now()}),
        );
    }
    Ok(respond(status, "application/json", json.to_string(), None))
}

fn oauth_answer(
    state: &State,
    path: &str,
    mut query: oauth::Params,
    body: &[u8],
) -> Response<Full<Bytes>> {
    // The token endpoint takes its parameters in the query or a form body.
    query.extend(oauth::params(&String::from_utf8_lossy(body)));
    let reply = match path.trim_end_matches('/') {
        "/oauth/authorize" => {
            let people: Vec<oauth::Person> = {
                let portal = lock(&state.portal);
                portal::PEOPLE
                    .iter()
                    .chain([&portal::SHUT_OUT])
                    .filter_map(|id| {
                        Some(oauth::Person {
                            id: *id,
                            name: portal.name_of(*id)?,
                            admin: portal.is_admin(*id),
                        })
                    })
                    .collect()
            };
            lock(&state.oauth).authorize(&query, &people)
        }
        "/oauth/token" => lock(&state.oauth).token(&query),
        _ => Reply::Json(404, json!({"error": "not_found"})),
    };
    match reply {
        Reply::Page(page) => respond(200, "text/html; charset=utf-8", page, None),
        Reply::Redirect(to) => respond(302, "text/plain", String::new(), Some(to)),
        Reply::Json(status, json) => respond(status, "application/json", json.to_string(), None),
    }
}

fn respond(
    status: u16,
    kind: &str,
    body: String,
    location: Option<String>,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", kind);
    if let Some(to) = location {
        builder = builder.header("location", to);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long the OAuth stand-in's access tokens live, as on Bitrix24.
pub const TOKEN_LIFE: Duration = Duration::from_secs(3600);
