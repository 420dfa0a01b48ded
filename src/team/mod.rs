//! The team server's people: who signed in through Bitrix24 OAuth, the tokens this server
//! gave them (only hashes are kept), and the credentials each person's calls run with.
//!
//! Two ways in, both ending at a [`Person`]: a personal token shown once after signing in
//! in a browser (for clients configured with a static header), and the MCP authorization
//! flow (`authorization.rs`), where a client registers, the person consents here and signs in
//! on the portal, and the client gets this server's own audience-bound token. A client's
//! token never goes to Bitrix24, and a Bitrix24 token never goes to a client.

mod authorization;
mod seal;
mod sign_in;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::Url;
use secrecy::SecretString;

pub use self::seal::Sealer;
use crate::{
    bitrix::{
        Credentials,
        oauth::{OAuthApp, PersonCredentials, TokenVault},
    },
    ledger::{Ledger, TokenKind, TokenRow},
    pipeline::{Pipeline, approval::random_token},
};

/// How long what this server issues stays good.
const PERSONAL_LIFE: Duration = Duration::from_secs(90 * 24 * 3600);
const ACCESS_LIFE: Duration = Duration::from_secs(3600);
const REFRESH_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);
const BROWSER_LIFE: Duration = Duration::from_secs(12 * 3600);
/// A sign-in started here must come back within this.
const PENDING_LIFE: Duration = Duration::from_secs(600);

/// The key file beside the ledger that seals refresh tokens.
pub const KEY_FILE: &str = "team.key";

/// A signed-in person, as one request reaches the handler.
#[derive(Clone)]
pub struct Person {
    pub member_id: String,
    pub user_id: u64,
    pub name: String,
    pub credentials: Arc<dyn Credentials>,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Person({})", self.label())
    }
}

impl Person {
    /// How questions, pages and the ledger name them.
    pub fn label(&self) -> String {
        format!("{} (user {})", self.name, self.user_id)
    }

    /// The key sessions are capped and bound by.
    pub fn key(&self) -> String {
        row_key(&self.member_id, self.user_id)
    }
}

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not one this server issued, or it was revoked or has expired")]
    Invalid,
    #[error("the token was issued for {0}, not this server's MCP endpoint")]
    Audience(String),
    #[error("sign in again: {0}")]
    SignInAgain(String),
}

/// The team server's setup.
pub struct TeamSetup {
    pub app: OAuthApp,
    /// Where people reach this server (`https://mcp.example.com/`), for redirects and the
    /// audience of its tokens.
    pub public_url: Url,
}

pub struct Team {
    app: Arc<OAuthApp>,
    ledger: Ledger,
    sealer: Arc<Sealer>,
    base: Url,
    pipeline: Arc<Pipeline>,
    pending: Mutex<HashMap<String, (sign_in::Pending, std::time::Instant)>>,
    codes: Mutex<HashMap<String, authorization::IssuedCode>>,
    consents: Mutex<HashMap<String, (authorization::ClientRequest, std::time::Instant)>>,
    /// The people whose tokens came in since the start, by `member_id:user_id`.
    live: Mutex<HashMap<String, Person>>,
    /// One stored refresh token renewed at a time: it is good once, so two requests after a
    /// restart must not both spend it.
    loading: tokio::sync::Mutex<()>,
}

/// Keeps rotated refresh tokens, sealed, in the ledger.
struct Vault {
    ledger: Ledger,
    sealer: Arc<Sealer>,
}

fn row_key(member_id: &str, user_id: u64) -> String {
    format!("{member_id}:{user_id}")
}

impl TokenVault for Vault {
    fn keep<'a>(
        &'a self,
        member_id: &'a str,
        user_id: u64,
        refresh: &'a SecretString,
    ) -> crate::bitrix::BoxFuture<'a, Result<(), String>> {
        let sealed = self.sealer.seal(&row_key(member_id, user_id), refresh);
        Box::pin(async move {
            self.ledger
                .keep_person(member_id, user_id, "", sealed)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// SHA-256 of a token, as the ledger keeps it.
fn hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Team {
    pub fn new(
        setup: TeamSetup,
        ledger: Ledger,
        sealer: Sealer,
        pipeline: Arc<Pipeline>,
    ) -> Arc<Self> {
        let mut base = setup.public_url;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Arc::new(Self {
            app: Arc::new(setup.app),
            ledger,
            sealer: Arc::new(sealer),
            base,
            pipeline,
            pending: Mutex::default(),
            codes: Mutex::default(),
            consents: Mutex::default(),
            live: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// This server's address for `path` (`mcp`, `authorize`, ...).
    pub fn url(&self, path: &str) -> String {
        self.base.join(path).map(String::from).unwrap_or_default()
    }

    /// The MCP endpoint: the audience every token this server issues is bound to.
    pub fn resource(&self) -> String {
        self.url("mcp")
    }

    /// Where a 401 points clients to (RFC 9728).
    pub fn metadata_url(&self) -> String {
        self.url(".well-known/oauth-protected-resource")
    }

    /// The person a bearer token belongs to.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Person, Denied> {
        let token = bearer.map(str::trim).filter(|t| !t.is_empty());
        let token = token.ok_or(Denied::Missing)?;
        let digest = hash(token);
        let kind = if token.starts_with(authorization::ACCESS_PREFIX) {
            TokenKind::Access
        } else {
            TokenKind::Personal
        };
        let row = self.valid(&digest, kind).await?;
        if kind == TokenKind::Access && row.audience != self.resource() {
            return Err(Denied::Audience(row.audience));
        }
        self.person(&row.member_id, row.user_id).await
    }

    /// The person a browser's cookie belongs to.
    pub async fn browser(&self, cookie: Option<&str>) -> Option<Person> {
        let row = self.valid(&hash(cookie?), TokenKind::Browser).await.ok()?;
        self.person(&row.member_id, row.user_id).await.ok()
    }

    async fn valid(&self, digest: &str, kind: TokenKind) -> Result<TokenRow, Denied> {
        let row = self
            .ledger
            .token(digest, kind)
            .await
            .map_err(|e| Denied::SignInAgain(e.to_string()))?;
        row.filter(|r| !r.revoked && r.expires_at > crate::pipeline::approval::now())
            .ok_or(Denied::Invalid)
    }

    /// A person with their credentials: the live one (no I/O on a request's path), or loaded
    /// from the ledger with their stored refresh token renewed.
    async fn person(&self, member_id: &str, user_id: u64) -> Result<Person, Denied> {
        let key = row_key(member_id, user_id);
        if let Some(person) = self.live_person(&key) {
            return Ok(person);
        }
        let _loading = self.loading.lock().await;
        if let Some(person) = self.live_person(&key) {
            return Ok(person);
        }
        let stored = self
            .ledger
            .person(member_id, user_id)
            .await
            .map_err(|e| Denied::SignInAgain(e.to_string()))?;
        let Some((name, sealed)) = stored else {
            return Err(Denied::Invalid);
        };
        let refresh = self
            .sealer
            .open(&key, &sealed)
            .map_err(|e| Denied::SignInAgain(e.to_string()))?;
        let grant = self
            .app
            .refresh(&refresh)
            .await
            .map_err(|e| Denied::SignInAgain(e.to_string()))?;
        let credentials = self.remember(grant).await.map_err(Denied::SignInAgain)?;
        let person = Person {
            member_id: member_id.to_owned(),
            user_id,
            name,
            credentials,
        };
        self.keep_live(person.clone());
        Ok(person)
    }

    fn live_person(&self, key: &str) -> Option<Person> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Makes `person` the one later requests with their tokens run as.
    fn keep_live(&self, person: Person) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(person.key(), person);
    }

    /// Keeps a fresh grant's refresh token, sealed, and makes credentials of it.
    async fn remember(
        &self,
        grant: crate::bitrix::oauth::Grant,
    ) -> Result<Arc<PersonCredentials>, String> {
        let (member_id, user_id) = (grant.member_id.clone(), grant.user_id);
        let key = row_key(&member_id, user_id);
        let sealed = self.sealer.seal(&key, &grant.refresh);
        self.ledger
            .keep_person(&member_id, user_id, "", sealed)
            .await
            .map_err(|e| e.to_string())?;
        let vault = Arc::new(Vault {
            ledger: self.ledger.clone(),
            sealer: self.sealer.clone(),
        });
        Ok(Arc::new(PersonCredentials::new(
            self.app.clone(),
            vault,
            grant,
        )))
    }

    /// Issues a token of `kind` to a person; only its hash is kept.
    async fn issue(
        &self,
        kind: TokenKind,
        prefix: &str,
        person: (&str, u64),
        client_id: Option<String>,
        life: Duration,
    ) -> Result<String, String> {
        let token = format!("{prefix}{}", random_token(24));
        let row = TokenRow {
            member_id: person.0.to_owned(),
            user_id: person.1,
            client_id,
            audience: self.resource(),
            expires_at: crate::pipeline::approval::now() + life.as_secs(),
            revoked: false,
        };
        self.ledger
            .add_token(hash(&token), kind, row)
            .await
            .map_err(|e| e.to_string())?;
        Ok(token)
    }
}

pub use self::{
    authorization::{Refusal, s256},
    sign_in::{Pending, SignedIn},
};

#[cfg(test)]
mod tests {
    #[test]
    fn token_hashes_are_sha256_hex() {
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
