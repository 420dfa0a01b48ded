//! What `serve --http` is started with, checked before anything listens.

use std::{net::SocketAddr, time::Duration};

use secrecy::SecretString;

pub const TOKEN_ENV: &str = "BITRIX24_HTTP_TOKEN";

/// The limits that keep a shared server standing: each live session costs memory until it
/// ends or idles out, each connection a file descriptor.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_sessions: usize,
    pub idle: Duration,
    pub max_connections: usize,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            idle: Duration::from_secs(300),
            max_connections: 256,
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
    pub(super) addr: SocketAddr,
    pub(super) token: Option<SecretString>,
    pub(super) limits: HttpLimits,
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
            limits: HttpLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }
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
}
