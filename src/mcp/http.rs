//! `serve --http ADDR`: the same MCP handler over Streamable HTTP, for teams that run one
//! shared server. Loopback by default; any other address needs a bearer token, and then every
//! request must carry it. Host and Origin are checked against DNS rebinding.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tower_service::Service;

use super::handler::PermissionsServer;
use crate::pipeline::Pipeline;

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
        })
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    *response.status_mut() = status;
    response
}

/// Serves until the process ends. Calls `ready` with the bound address (port 0 picks one).
pub async fn serve(
    setup: HttpSetup,
    pipeline: Arc<Pipeline>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), HttpError> {
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
    let mcp = StreamableHttpService::new(
        move || Ok(PermissionsServer::new(pipeline.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token = Arc::new(setup.token);
    ready(bound);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mcp = mcp.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let mut mcp = mcp.clone();
                let token = token.clone();
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
                    let response = mcp.call(req).await?;
                    Ok(response.map(|body| body.map_err(|never| match never {}).boxed_unsync()))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
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
