//! Who an MCP request over HTTP comes from, as the HTTP layer established it and put it in
//! the request's extensions. The handler reads it for every call: whose credentials the call
//! runs with, who the question and the ledger name, and whether the answer in the client is
//! that person's own.

use rmcp::{RoleServer, service::RequestContext};

use crate::team::Person;

#[derive(Debug, Clone)]
pub enum Caller {
    /// Signed in through Bitrix24: calls run with the person's own token.
    Person(Person),
    /// Holds the server's one HTTP token: calls run as the webhook's user.
    TokenHolder,
    /// No token, on loopback, where the server was told to allow reads: never a write.
    AnonymousReader,
}

impl Caller {
    /// The caller of a request; `None` over stdio, where the client is the person's own.
    pub fn of(context: &RequestContext<RoleServer>) -> Option<Self> {
        context
            .extensions
            .get::<hyper::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
    }

    /// How the question and the ledger name them, before "through <client>".
    pub fn label(&self) -> String {
        match self {
            Self::Person(p) => p.label(),
            Self::TokenHolder => "the holder of the server's HTTP token".to_owned(),
            Self::AnonymousReader => "an unauthenticated caller on this machine".to_owned(),
        }
    }

    /// Sessions are capped and bound per this key.
    pub fn key(&self) -> String {
        match self {
            Self::Person(p) => format!("person:{}", p.key()),
            Self::TokenHolder => "token".to_owned(),
            Self::AnonymousReader => "anonymous".to_owned(),
        }
    }
}
