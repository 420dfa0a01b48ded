//! The Bitrix24 REST client: one POST per call, addressed by the [`Credentials`].

use std::{sync::Arc, sync::OnceLock, time::Duration};

use serde_json::Value;

use super::{
    credentials::Credentials,
    envelope::{BadAnswerKind, PortalError, Success, TransportKind, parse_envelope},
    secrets::Secrets,
};

pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// The most of a body ever read into memory. Permission answers are small; anything near this
/// is a misbehaving proxy, and reading it whole would only cost memory.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Talks to one portal through one webhook. The HTTP client (one connection pool) is built on
/// first use: for https, building it loads the system's root certificates, which is most of
/// this program's start-up cost and is not needed to answer `initialize` or `tools/list`.
#[derive(Debug)]
pub struct PortalClient {
    http: OnceLock<Result<reqwest::Client, ClientBuildError>>,
    timeout: Duration,
    credentials: Arc<dyn Credentials>,
    secrets: Secrets,
}

impl PortalClient {
    pub fn new(credentials: Arc<dyn Credentials>, timeout: Duration) -> Self {
        Self {
            http: OnceLock::new(),
            timeout,
            credentials,
            secrets: Secrets::global().clone(),
        }
    }

    /// Builds the HTTP client now (call it off the request path, e.g. in `spawn_blocking`).
    pub fn warm_up(&self) -> Result<(), ClientBuildError> {
        self.http().map(|_| ())
    }

    fn http(&self) -> Result<&reqwest::Client, ClientBuildError> {
        self.http
            .get_or_init(|| {
                let builder = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout.min(Duration::from_secs(10)))
                    // A redirect would resend the secret-bearing request elsewhere.
                    .redirect(reqwest::redirect::Policy::none());
                // Plain http on loopback (the sandbox, a local test portal) never verifies a
                // certificate, so it skips loading the system's root store, the costliest
                // step of a first call.
                let builder = if self.credentials.is_loopback_http() {
                    builder.tls_certs_only(std::iter::empty())
                } else {
                    builder
                };
                builder
                    .build()
                    .map_err(|e| ClientBuildError::Http(e.without_url().to_string()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn credentials(&self) -> &dyn Credentials {
        self.credentials.as_ref()
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Calls `method` once with a JSON object body. No retry happens here.
    pub async fn call(&self, method: &str, params: &Value) -> Result<Success, PortalError> {
        let body = serde_json::to_vec(params).unwrap_or_else(|_| b"{}".to_vec());
        let http = self.http().map_err(|e| PortalError::Transport {
            kind: TransportKind::Connect,
            detail: e.to_string(),
        })?;
        let response = http
            .post(self.credentials.method_url(method))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(PortalError::BadAnswer {
                    status,
                    kind: BadAnswerKind::TooLarge,
                    excerpt: format!("more than {MAX_BODY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        parse_envelope(status, &body, &self.secrets)
    }

    fn transport_error(&self, err: reqwest::Error) -> PortalError {
        let kind = if err.is_connect() {
            TransportKind::Connect
        } else if err.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Broken
        };
        // reqwest puts the request URL, secret included, into its Display.
        let err = err.without_url();
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        PortalError::Transport {
            kind,
            detail: self.secrets.redact(&detail).into_owned(),
        }
    }
}
