//! The Bitrix24 REST client: one POST per call, addressed by the [`Credentials`].

use std::{fmt, future::Future, pin::Pin, sync::Arc, sync::OnceLock, time::Duration};

use serde_json::Value;

use super::{
    api::Api,
    credentials::Credentials,
    envelope::{BadAnswerKind, PortalError, Success, TransportKind, parse_envelope},
    secrets::Secrets,
};

pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// The most of a body ever read into memory. Permission answers are small; anything near this
/// is a misbehaving proxy, and reading it whole would only cost memory.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The `Idempotency-Key` of one call: sent on every attempt of a REST 3.0 write, so a retry
/// after a lost answer is replayed by the portal instead of run twice. Reads carry none (the
/// portal has nothing to deduplicate), and classic REST ignores the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh key for a call of a method through `api`, or `None` where the portal would not
    /// use one. 32 hex digits: well inside the documented 1–255 printable ASCII characters.
    pub fn for_call(api: Api, write: bool) -> Option<Self> {
        (api == Api::V3 && write).then(|| {
            let key: String = (0..32)
                .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
                .collect();
            Self(key)
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One attempt's answer, as a future the gateway can drop to abandon the request.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Success, PortalError>> + Send + 'a>>;

/// The seam between the gateway and the network: send one request, read its answer. The
/// gateway's pacing, retries and cancellation are written against this, so they are tested
/// with an in-process portal on tokio's paused clock; [`PortalClient`] is the real one.
pub trait Portal: Send + Sync + fmt::Debug {
    /// Calls `method` once through `api`; dropping the future abandons the request.
    fn send<'a>(
        &'a self,
        method: &'a str,
        api: Api,
        params: &'a Value,
        key: Option<&'a IdempotencyKey>,
    ) -> Answer<'a>;
}

impl Portal for PortalClient {
    fn send<'a>(
        &'a self,
        method: &'a str,
        api: Api,
        params: &'a Value,
        key: Option<&'a IdempotencyKey>,
    ) -> Answer<'a> {
        Box::pin(self.call(method, api, params, key))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Makes ring, the one TLS provider compiled in, the process's own: reqwest picks none by
/// itself. A second call (another client) changes nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
                install_tls_provider();
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

    /// The credentials the current call runs with: the signed-in person's inside
    /// [`super::acting::as_person`], the configured ones otherwise.
    pub fn credentials(&self) -> Arc<dyn Credentials> {
        super::acting::current().unwrap_or_else(|| self.credentials.clone())
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The request one attempt sends: a POST with a JSON object body (the only body REST 3.0
    /// accepts, and one every classic method used here reads), plus the call's idempotency key.
    fn request(
        &self,
        http: &reqwest::Client,
        method: &str,
        api: Api,
        params: &Value,
        key: Option<&IdempotencyKey>,
    ) -> reqwest::RequestBuilder {
        let body = serde_json::to_vec(params).unwrap_or_else(|_| b"{}".to_vec());
        let request = http
            .post(self.credentials().method_url(api, method))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        match key {
            Some(key) => request.header("Idempotency-Key", key.as_str()),
            None => request,
        }
    }

    /// Calls `method` once through `api` with a JSON object body. No retry happens here; a
    /// retry passes the same `key` again. The one exception is an expired access token: the
    /// portal refused the request unrun, so it is renewed and the request sent once more.
    pub async fn call(
        &self,
        method: &str,
        api: Api,
        params: &Value,
        key: Option<&IdempotencyKey>,
    ) -> Result<Success, PortalError> {
        let credentials = self.credentials();
        let seen = credentials.generation();
        let first = self.call_once(method, api, params, key).await;
        let expired =
            matches!(&first, Err(PortalError::Api { code, .. }) if code == "expired_token");
        let Some(renewal) = expired.then(|| credentials.renew(seen)).flatten() else {
            return first;
        };
        match renewal.await {
            Ok(()) => self.call_once(method, api, params, key).await,
            Err(why) => Err(PortalError::Api {
                status: 401,
                code: "expired_token".to_owned(),
                description: self
                    .secrets
                    .redact(&format!(
                        "the access token expired and could not be renewed: {why}"
                    ))
                    .into_owned(),
            }),
        }
    }

    async fn call_once(
        &self,
        method: &str,
        api: Api,
        params: &Value,
        key: Option<&IdempotencyKey>,
    ) -> Result<Success, PortalError> {
        let http = self.http().map_err(|e| PortalError::Transport {
            kind: TransportKind::Connect,
            detail: e.to_string(),
        })?;
        let response = self
            .request(http, method, api, params, key)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitrix::WebhookUrl;
    use serde_json::json;

    fn client() -> PortalClient {
        let url = WebhookUrl::parse("http://127.0.0.1:9/rest/7/abcd1234efgh5678/").unwrap();
        PortalClient::new(Arc::new(url), Duration::from_secs(5))
    }

    fn built(api: Api, write: bool) -> reqwest::Request {
        let c = client();
        let key = IdempotencyKey::for_call(api, write);
        c.request(
            c.http().unwrap(),
            "tasks.task.update",
            api,
            &json!({"id": 1}),
            key.as_ref(),
        )
        .build()
        .unwrap()
    }

    #[test]
    fn a_v3_write_goes_to_the_api_path_with_a_json_body_and_a_key() {
        let r = built(Api::V3, true);
        assert_eq!(r.method(), reqwest::Method::POST);
        assert_eq!(
            r.url().path(),
            "/rest/api/7/abcd1234efgh5678/tasks.task.update"
        );
        assert_eq!(r.url().query(), None, "REST 3.0 reads no query string");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.body().and_then(reqwest::Body::as_bytes).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(body).unwrap(),
            json!({"id": 1})
        );
        let key = r.headers()["idempotency-key"].to_str().unwrap();
        assert!(
            (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()),
            "{key}"
        );
    }

    #[test]
    fn reads_and_classic_calls_carry_no_key() {
        for (api, write) in [
            (Api::V3, false),
            (Api::Classic, true),
            (Api::Classic, false),
        ] {
            let r = built(api, write);
            assert!(
                r.headers().get("idempotency-key").is_none(),
                "{api:?} {write}"
            );
        }
        assert_eq!(
            built(Api::Classic, false).url().path(),
            "/rest/7/abcd1234efgh5678/tasks.task.update.json"
        );
    }

    #[test]
    fn each_call_gets_its_own_key() {
        let a = IdempotencyKey::for_call(Api::V3, true).unwrap();
        let b = IdempotencyKey::for_call(Api::V3, true).unwrap();
        assert_ne!(a, b);
    }
}
