//! The Bitrix24 client wing: how calls authenticate, the secrets they carry, one HTTP call and
//! its envelope, and the limits every call passes through on its way to the portal.

pub(crate) mod acting;
mod api;
mod client;
mod credentials;
mod envelope;
pub(crate) mod limits;
pub(crate) mod methods;
pub(crate) mod oauth;
mod secrets;

pub use api::Api;
#[cfg(test)]
pub(crate) use client::Answer;
pub use client::{IdempotencyKey, Portal, PortalClient, install_tls_provider};
pub use credentials::{BoxFuture, Credentials, Identity, WebhookError, WebhookUrl};
#[cfg(test)]
pub(crate) use envelope::parse_envelope;
#[cfg(test)]
pub(crate) use envelope::properties;
pub use envelope::{BadAnswerKind, PortalError, Success, TransportKind};
pub use secrets::{Secrets, constant_time_eq};
