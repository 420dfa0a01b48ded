//! `--sandbox`: a Bitrix24 stand-in served on loopback inside this process, so a newcomer sees
//! real answers without a portal, and the real HTTP client, limiter and error paths still run.

pub(crate) mod portal;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

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

/// Starts the sandbox portal on a free loopback port; it lives as long as the runtime.
pub async fn start(catalog: Arc<Catalog>, size: Size) -> std::io::Result<SandboxCredentials> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    // A fresh secret each run, so the masking of secrets is exercised here too.
    let secret: String = (0..16).map(|_| fastrand::alphanumeric()).collect();
    let portal = Arc::new(Mutex::new(Portal::of_size(&catalog, size)));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let portal = portal.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, portal.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("http://127.0.0.1:{port}/rest/{}/{secret}/", portal::ME);
    WebhookUrl::parse(&url)
        .map(SandboxCredentials)
        .map_err(std::io::Error::other)
}

async fn answer(
    req: Request<Incoming>,
    portal: Arc<Mutex<Portal>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let api = if path.starts_with("/rest/api/") {
        Api::V3
    } else {
        Api::Classic
    };
    let method = path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Object(Default::default()));
    let (status, mut json) = portal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .call_at(api, &method, &params);
    if let Value::Object(map) = &mut json {
        map.insert(
            "time".into(),
            serde_json::json!({"operating": 0, "operating_reset_at": unix_now() + 600.0, "finish": unix_now()}),
        );
    }
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap_or_default();
    Ok(response)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
