//! What `serve --http` is started with, checked before anything listens.

use std::{net::SocketAddr, time::Duration};

use secrecy::SecretString;
use std::sync::Arc;

use crate::mcp::team_pages::TeamPages;

pub const TOKEN_ENV: &str = "BITRIX24_HTTP_TOKEN";

/// The limits that keep a shared server standing: each live session costs memory until it
/// ends or idles out, each connection a file descriptor.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_sessions: usize,
    /// Sessions one caller (as `auth` knows callers) may hold at once.
    pub max_sessions_per_caller: usize,
    pub idle: Duration,
    pub max_connections: usize,
    /// How long a client may take to send a request's headers; a slow trickle is cut off.
    pub header_timeout: Duration,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            max_sessions_per_caller: 16,
            idle: Duration::from_secs(300),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

/// How people get in: at least one of these, checked by [`HttpSetup::new`].
#[derive(Default)]
pub struct Access {
    /// The server's one shared token: whoever holds it acts as the webhook's user.
    pub token: Option<String>,
    /// People sign in with Bitrix24 OAuth, each acting as themselves.
    pub team: bool,
    /// Requests without a token may read, on loopback only.
    pub anonymous_reads: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "serve --http lets nobody in without a token, not even on loopback. Sign people in with Bitrix24 OAuth \
         (--portal-url, BITRIX24_OAUTH_CLIENT_ID and its secret; see docs/team.md), or set {TOKEN_ENV} to a long \
         random token (clients send 'Authorization: Bearer <token>' and act as the webhook's user), or, on a \
         loopback address only, add --http-allow-anonymous-reads to let local tools read"
    )]
    NoWayIn,
    #[error(
        "refusing --http-allow-anonymous-reads on {addr}: it is not a loopback address. Listen on 127.0.0.1, or drop the flag"
    )]
    AnonymousNotLoopback { addr: SocketAddr },
    #[error(
        "set either team sign-in or {TOKEN_ENV}, not both: with sign-in each person acts as themselves, while the token acts as the webhook's user"
    )]
    TokenAndTeam,
    #[error(
        "{TOKEN_ENV} is blank (only spaces, tabs or line breaks): set it to a long random token, or unset it"
    )]
    BlankToken,
    #[error(
        "{TOKEN_ENV} is too short: use at least 16 characters (not counting surrounding spaces)"
    )]
    WeakToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The team server's pages, made once the address people reach it at is known.
pub type MakeTeam = Box<dyn FnOnce(SocketAddr) -> Arc<TeamPages> + Send>;

/// The checked listening setup.
pub struct HttpSetup {
    pub(super) addr: SocketAddr,
    pub(super) token: Option<SecretString>,
    pub(super) anonymous_reads: bool,
    pub(super) team: Option<MakeTeam>,
    /// The address people reach the server at, behind a reverse proxy.
    pub(super) public: Option<url::Url>,
    pub(super) limits: HttpLimits,
}

impl HttpSetup {
    pub fn new(addr: SocketAddr, access: Access) -> Result<Self, HttpError> {
        let token = checked_token(access.token)?;
        if access.anonymous_reads && !addr.ip().is_loopback() {
            return Err(HttpError::AnonymousNotLoopback { addr });
        }
        if token.is_some() && access.team {
            return Err(HttpError::TokenAndTeam);
        }
        if token.is_none() && !access.team && !access.anonymous_reads {
            return Err(HttpError::NoWayIn);
        }
        Ok(Self {
            addr,
            token,
            anonymous_reads: access.anonymous_reads,
            team: None,
            public: None,
            limits: HttpLimits::default(),
        })
    }

    /// Where people reach the server, when a reverse proxy stands in front of it.
    pub fn with_public_url(mut self, public: Option<url::Url>) -> Self {
        self.public = public;
        self
    }

    /// Signs people in: `make` builds the pages once the listening address is known.
    pub fn with_team(mut self, make: MakeTeam) -> Self {
        self.team = Some(make);
        self
    }

    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// The token as clients will send it: HTTP drops a header value's surrounding whitespace, so a
/// token is compared without it, and what is left must be long enough to guess at no cost.
/// An empty variable is an unset one (shells export empty values freely).
fn checked_token(token: Option<String>) -> Result<Option<SecretString>, HttpError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let trimmed = token.trim();
    if trimmed.is_empty() {
        return Err(HttpError::BlankToken);
    }
    if trimmed.chars().count() < 16 {
        return Err(HttpError::WeakToken);
    }
    Ok(Some(SecretString::from(trimmed.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str) -> Access {
        Access {
            token: Some(t.into()),
            ..Access::default()
        }
    }

    #[test]
    fn every_address_needs_a_way_in() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        for addr in [public, loopback, "[::1]:0".parse().unwrap()] {
            assert!(matches!(
                HttpSetup::new(addr, Access::default()),
                Err(HttpError::NoWayIn)
            ));
            assert!(matches!(
                HttpSetup::new(addr, token("short")),
                Err(HttpError::WeakToken)
            ));
            assert!(matches!(
                HttpSetup::new(addr, token(&" ".repeat(20))),
                Err(HttpError::BlankToken)
            ));
            assert!(HttpSetup::new(addr, token("a-long-random-token-123")).is_ok());
        }
        let anonymous = || Access {
            anonymous_reads: true,
            ..Access::default()
        };
        assert!(HttpSetup::new(loopback, anonymous()).is_ok());
        assert!(matches!(
            HttpSetup::new(public, anonymous()),
            Err(HttpError::AnonymousNotLoopback { .. })
        ));
        let both = Access {
            token: Some("a-long-random-token-123".into()),
            team: true,
            ..Access::default()
        };
        assert!(matches!(
            HttpSetup::new(public, both),
            Err(HttpError::TokenAndTeam)
        ));
        assert!(matches!(
            HttpSetup::new(public, token(&" ".repeat(16))),
            Err(HttpError::BlankToken)
        ));
        assert!(matches!(
            HttpSetup::new(public, token(&format!("  {}\n", "x".repeat(15)))),
            Err(HttpError::WeakToken)
        ));
    }
}
