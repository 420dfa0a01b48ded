//! What `serve --http` is started with, checked before anything listens.

use std::{net::SocketAddr, time::Duration};

use secrecy::SecretString;

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

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, so anyone who can reach it could use \
         the webhook. Set {TOKEN_ENV} to a long random token (clients then send 'Authorization: Bearer <token>'), \
         or listen on 127.0.0.1"
    )]
    PublicWithoutToken { addr: SocketAddr },
    #[error(
        "{TOKEN_ENV} is blank (only spaces, tabs or line breaks): set it to a long random token, \
         or unset it to listen on loopback without one"
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

/// The checked listening setup.
pub struct HttpSetup {
    pub(super) addr: SocketAddr,
    pub(super) token: Option<SecretString>,
    pub(super) limits: HttpLimits,
}

impl HttpSetup {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Result<Self, HttpError> {
        let token = checked_token(token)?;
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(HttpError::PublicWithoutToken { addr });
        }
        Ok(Self {
            addr,
            token,
            limits: HttpLimits::default(),
        })
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
        assert!(matches!(
            HttpSetup::new(public, Some(" ".repeat(16))),
            Err(HttpError::BlankToken)
        ));
        assert!(matches!(
            HttpSetup::new(public, Some(format!("  {}\n", "x".repeat(15)))),
            Err(HttpError::WeakToken)
        ));
        assert!(HttpSetup::new(public, Some("a-long-random-token-123".into())).is_ok());
        assert!(HttpSetup::new("127.0.0.1:0".parse().unwrap(), None).is_ok());
        assert!(HttpSetup::new("[::1]:0".parse().unwrap(), None).is_ok());
    }
}
