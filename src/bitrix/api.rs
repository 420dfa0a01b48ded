//! Which Bitrix24 REST a method is served by: the one fact about a method that its address,
//! its error object and its idempotency depend on.

use serde::{Deserialize, Serialize};

/// Which Bitrix24 REST a method is served by; the catalog says, per method. Everything that
/// differs between the two (address, body, error object, idempotency) is decided in this wing
/// (credentials, client, envelope), nowhere else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/rest/<user>/<secret>/<method>.json`: every classic method.
    #[default]
    Classic,
    /// REST 3.0, `/rest/api/<user>/<secret>/<method>`: a JSON body only, errors as an object,
    /// and `Idempotency-Key` honoured on writes.
    V3,
}
