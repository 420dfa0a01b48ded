//! Who is calling. Every request on every address is authenticated, loopback included: a
//! signed-in person's token (the team server), the server's one shared token (a webhook's
//! user), or, only where the operator allowed it on loopback, no token for reading. The rest
//! of the request path reads who it is (`crate::mcp::caller::Caller`) from the request's
//! extensions and never looks at credentials itself; sessions are booked by its [`CallerKey`].

use std::sync::Arc;

use hyper::{
    Request, StatusCode,
    body::Incoming,
    header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE},
};
use secrecy::{ExposeSecret, SecretString};

use super::reply::{Refusal, plain};
use crate::bitrix::constant_time_eq;
use crate::mcp::{caller::Caller as Who, team_pages::TeamPages};

/// The key sessions are booked and capped by: one per person, one for every holder of the
/// shared token, one for anonymous readers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerKey(Arc<str>);

impl CallerKey {
    pub fn named(name: &str) -> Self {
        Self(Arc::from(name))
    }
}

/// Decides whether a request may come in, and as whom.
pub struct Authenticator {
    pub token: Option<SecretString>,
    pub team: Option<Arc<TeamPages>>,
    pub anonymous_reads: bool,
}

impl Authenticator {
    /// The caller, or the refusal to send back.
    pub async fn authenticate(&self, req: &Request<Incoming>) -> Result<Who, Refusal> {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let (Some(given), Some(expected)) = (given, &self.token)
            && constant_time_eq(given.as_bytes(), expected.expose_secret().as_bytes())
        {
            return Ok(Who::TokenHolder);
        }
        if given.is_none() && self.anonymous_reads {
            return Ok(Who::AnonymousReader);
        }
        match &self.team {
            Some(team) => team
                .authenticate(req)
                .await
                .map_err(|r| Box::new(r.map(http_body_util::BodyExt::boxed_unsync))),
            None => {
                let mut denied = plain(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token: send 'Authorization: Bearer <token>'\n",
                );
                denied
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(denied.into())
            }
        }
    }
}
