//! Bitrix24 OAuth for a local application: the authorize address a person is sent to, the
//! token exchange, and [`PersonCredentials`], the second implementation of the
//! [`Credentials`] seam, which calls as one signed-in person and renews their access token
//! when the portal says it expired.
//!
//! Every token is registered with [`Secrets::global`] the moment it is seen, so an echo of one
//! in an answer, an error or a log line is masked like the webhook's secret.

use std::{fmt, sync::RwLock, time::Duration};

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Api, Credentials, Identity, Secrets, credentials::BoxFuture};

/// The OAuth server the English docs name; the token answer's `server_endpoint` says which
/// one a portal uses.
pub const DEFAULT_OAUTH_SERVER: &str = "https://oauth.bitrix.info/";

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the Bitrix24 OAuth server could not be reached: {0}")]
    Unreachable(String),
    #[error("the Bitrix24 OAuth server refused: {code} ({description})")]
    Refused { code: String, description: String },
    #[error("the Bitrix24 OAuth server answered something that is not a token: {0}")]
    BadAnswer(String),
    #[error(
        "the token is for the portal {got}, but this server serves {expected}; sign in on {expected}"
    )]
    OtherPortal { expected: String, got: String },
    #[error("the signed-in person's tokens could not be stored: {0}")]
    Store(String),
}

impl OAuthError {
    /// The application is limited to some users and this person is not one of them.
    pub fn is_user_access_error(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code == "user_access_error")
    }
}

/// A local application on one portal.
pub struct OAuthApp {
    /// The portal's own address: its authorize page is `<portal>/oauth/authorize/`.
    portal: Url,
    client_id: String,
    client_secret: SecretString,
    /// Where tokens are asked for: `<server>/oauth/token/`.
    server: Url,
    /// The portal's name in identities (the ledger's rows, the rate bucket): its host, or the
    /// sandbox's one stable name.
    name: String,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("portal", &self.portal.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What the token endpoint answers.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    member_id: String,
    user_id: serde_json::Value,
    client_endpoint: String,
}

/// A person's tokens, fresh from the OAuth server.
pub struct Grant {
    pub access: SecretString,
    pub refresh: SecretString,
    pub member_id: String,
    pub user_id: u64,
    /// The portal's REST base, `https://<portal>/rest/`: calls go there, not to `domain`.
    pub client_endpoint: Url,
}

impl OAuthApp {
    pub fn new(
        portal: Url,
        client_id: String,
        client_secret: SecretString,
        server: Url,
        timeout: Duration,
    ) -> Result<Self, OAuthError> {
        Secrets::global().register(client_secret.expose_secret());
        super::install_tls_provider();
        let loopback = portal.scheme() == "http" && server.scheme() == "http";
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        let builder = if loopback {
            builder.tls_certs_only(std::iter::empty())
        } else {
            builder
        };
        let http = builder
            .build()
            .map_err(|e| OAuthError::Unreachable(e.without_url().to_string()))?;
        Ok(Self {
            name: host_of(&portal),
            portal,
            client_id,
            client_secret,
            server,
            http,
        })
    }

    /// Names the portal in identities other than by its host (the sandbox).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The portal's host (with port), as identities name it.
    pub fn portal_host(&self) -> String {
        host_of(&self.portal)
    }

    /// Where a person signs in. `state` ties the callback to this attempt.
    pub fn authorize_url(&self, state: &str, redirect_uri: &str) -> String {
        let mut url = self
            .portal
            .join("oauth/authorize/")
            .expect("a relative path joins");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("state", state)
            .append_pair("redirect_uri", redirect_uri);
        url.into()
    }

    /// Trades a callback's code (good for 30 s) for tokens.
    pub async fn exchange(&self, code: &str) -> Result<Grant, OAuthError> {
        self.grant(&[("grant_type", "authorization_code"), ("code", code)])
            .await
    }

    /// Trades a refresh token for a new pair; the old refresh token is dead afterwards.
    pub async fn refresh(&self, refresh: &SecretString) -> Result<Grant, OAuthError> {
        self.grant(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ])
        .await
    }

    async fn grant(&self, pairs: &[(&str, &str)]) -> Result<Grant, OAuthError> {
        let mut url = self
            .server
            .join("oauth/token/")
            .expect("a relative path joins");
        url.query_pairs_mut()
            .extend_pairs(pairs)
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose_secret());
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OAuthError::Unreachable(masked(&e.without_url().to_string())))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| OAuthError::Unreachable(masked(&e.without_url().to_string())))?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| OAuthError::BadAnswer(format!("HTTP {status}, not JSON")))?;
        if let Some(code) = json["error"].as_str() {
            return Err(OAuthError::Refused {
                code: code.to_owned(),
                description: masked(json["error_description"].as_str().unwrap_or_default()),
            });
        }
        let t: TokenAnswer = serde_json::from_value(json)
            .map_err(|e| OAuthError::BadAnswer(masked(&e.to_string())))?;
        self.accept(t)
    }

    fn accept(&self, t: TokenAnswer) -> Result<Grant, OAuthError> {
        Secrets::global().register(&t.access_token);
        Secrets::global().register(&t.refresh_token);
        let client_endpoint = Url::parse(&t.client_endpoint)
            .map_err(|_| OAuthError::BadAnswer("client_endpoint is not a URL".into()))?;
        // A local application is valid on one portal: a token for another is not ours.
        if host_of(&client_endpoint) != self.portal_host() {
            return Err(OAuthError::OtherPortal {
                expected: self.portal_host(),
                got: host_of(&client_endpoint),
            });
        }
        let user_id = match &t.user_id {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| OAuthError::BadAnswer("user_id is missing".into()))?;
        Ok(Grant {
            access: SecretString::from(t.access_token),
            refresh: SecretString::from(t.refresh_token),
            member_id: t.member_id,
            user_id,
            client_endpoint,
        })
    }
}

fn masked(text: &str) -> String {
    Secrets::global().redact(text).into_owned()
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

/// Keeps a person's refresh token when it rotates, before the new one is used.
pub trait TokenVault: Send + Sync {
    fn keep<'a>(
        &'a self,
        member_id: &'a str,
        user_id: u64,
        refresh: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Calls as one signed-in person.
pub struct PersonCredentials {
    app: std::sync::Arc<OAuthApp>,
    vault: std::sync::Arc<dyn TokenVault>,
    member_id: String,
    user_id: u64,
    client_endpoint: Url,
    tokens: RwLock<(SecretString, SecretString)>,
    /// How many times the access token was renewed: a call that saw an older one knows
    /// another call already renewed.
    generation: std::sync::atomic::AtomicU64,
    /// One renewal at a time: a rotated refresh token is good once.
    renewing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for PersonCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonCredentials(user {})", self.user_id)
    }
}

impl fmt::Display for PersonCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} as user {} (OAuth)",
            self.client_endpoint.origin().ascii_serialization(),
            self.user_id
        )
    }
}

impl PersonCredentials {
    pub fn new(
        app: std::sync::Arc<OAuthApp>,
        vault: std::sync::Arc<dyn TokenVault>,
        grant: Grant,
    ) -> Self {
        Self {
            app,
            vault,
            member_id: grant.member_id,
            user_id: grant.user_id,
            client_endpoint: grant.client_endpoint,
            tokens: RwLock::new((grant.access, grant.refresh)),
            generation: Default::default(),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    fn access(&self) -> SecretString {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    async fn renew_from(&self, seen: u64) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let _one = self.renewing.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Another call renewed while this one waited.
            return Ok(());
        }
        let refresh = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone();
        let grant = self
            .app
            .refresh(&refresh)
            .await
            .map_err(|e| e.to_string())?;
        // Kept before it is used: the old refresh token is already dead.
        self.vault
            .keep(&self.member_id, self.user_id, &grant.refresh)
            .await
            .map_err(|e| OAuthError::Store(e).to_string())?;
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = (grant.access, grant.refresh);
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(user = self.user_id, "access token renewed");
        Ok(())
    }
}

impl Credentials for PersonCredentials {
    fn method_url(&self, api: Api, method: &str) -> String {
        let base = self.client_endpoint.as_str();
        let path = match api {
            Api::Classic => format!("{base}{method}.json"),
            Api::V3 => format!("{base}api/{method}"),
        };
        let mut url = Url::parse(&path).unwrap_or_else(|_| self.client_endpoint.clone());
        url.query_pairs_mut()
            .append_pair("auth", self.access().expose_secret());
        url.into()
    }

    fn identity(&self) -> Identity {
        Identity {
            host: self.app.name.clone(),
            user_id: self.user_id.to_string(),
        }
    }

    fn is_loopback_http(&self) -> bool {
        self.client_endpoint.scheme() == "http"
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn renew(&self, seen: u64) -> Option<BoxFuture<'_, Result<(), String>>> {
        Some(Box::pin(self.renew_from(seen)))
    }
}

/// A portal with no credentials of its own: a team server without a webhook. Calls outside
/// a signed-in person's scope carry no token, so the portal refuses them; nothing runs as
/// anyone by accident.
#[derive(Debug)]
pub struct PortalOnly {
    rest: Url,
    host: String,
}

impl PortalOnly {
    pub fn new(portal: &Url) -> Self {
        Self {
            rest: portal.join("rest/").expect("a relative path joins"),
            host: host_of(portal),
        }
    }
}

impl fmt::Display for PortalOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (each person signs in)",
            self.rest.origin().ascii_serialization()
        )
    }
}

impl Credentials for PortalOnly {
    fn method_url(&self, api: Api, method: &str) -> String {
        match api {
            Api::Classic => format!("{}{method}.json", self.rest),
            Api::V3 => format!("{}api/{method}", self.rest),
        }
    }

    fn identity(&self) -> Identity {
        Identity {
            host: self.host.clone(),
            user_id: "0".to_owned(),
        }
    }

    fn is_loopback_http(&self) -> bool {
        self.rest.scheme() == "http"
    }
}
