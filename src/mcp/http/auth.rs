//! Who is calling. Today one optional shared bearer token (`BITRIX24_HTTP_TOKEN`) guards the
//! whole server, so every caller who passes is the same `Caller`; per-person sign-in replaces
//! `Authenticator` and gives each person a `Caller` of their own. The rest of the request path
//! reads the caller from the request's extensions and never looks at credentials itself.

use std::sync::Arc;

use hyper::{
    Request, StatusCode,
    header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE},
};
use secrecy::{ExposeSecret, SecretString};

use super::reply::{Refusal, plain};

/// The identity a request was accepted as; limits that are per person (sessions) key by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller(Arc<str>);

impl Caller {
    fn named(name: &str) -> Self {
        Self(Arc::from(name))
    }
}

/// Decides whether a request may come in, and as whom.
pub struct Authenticator {
    token: Option<SecretString>,
}

impl Authenticator {
    pub fn new(token: Option<SecretString>) -> Self {
        Self { token }
    }

    /// The caller, or the refusal to send back.
    pub fn authenticate<B>(&self, req: &Request<B>) -> Result<Caller, Refusal> {
        let Some(expected) = &self.token else {
            // Loopback without a token: anyone on this machine, all one caller.
            return Ok(Caller::named("local"));
        };
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given
            .is_some_and(|g| constant_time_eq(g.as_bytes(), expected.expose_secret().as_bytes()))
        {
            return Ok(Caller::named("token"));
        }
        let mut denied = plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        denied
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(denied.into())
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
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
