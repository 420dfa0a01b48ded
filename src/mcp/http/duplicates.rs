//! The same refusal as over stdio for a key sent twice: the checks must see what is sent.

use serde_json::Value;

use super::reply::{Refusal, json_error};
use crate::mcp::duplicate_keys::{duplicate_message, first_duplicate};

pub fn refuse_duplicate_keys(bytes: &[u8]) -> Result<(), Refusal> {
    let Some(key) = std::str::from_utf8(bytes).ok().and_then(first_duplicate) else {
        return Ok(());
    };
    let id = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|m| m.get("id").cloned())
        .unwrap_or(Value::Null);
    Err(json_error(&id, -32600, &duplicate_message(&key)).into())
}
