//! The request body, read here rather than by the MCP service: bounded in size and time, so
//! that a client trickling it cannot hold a connection, and so the guards after it can see it.
//!
//! It is read into one buffer, sized by `Content-Length` when the client declares one, and
//! each chunk is dropped once copied: the body costs its size once, not once per chunk list
//! plus once more joined.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::{
    HeaderMap, StatusCode,
    body::Incoming,
    header::{CONNECTION, CONTENT_LENGTH, HeaderValue},
};

use super::reply::{Refusal, plain};

/// How long a client may take to send a request's body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request body read, as rmcp's own limit: larger ones get 413 unread.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a body was not read whole.
enum Unread {
    TooLarge,
    BrokeOff,
}

pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Refusal> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |n| n as usize);
    match tokio::time::timeout(BODY_TIMEOUT, collect(body, capacity)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(Unread::TooLarge)) => Err(too_large()),
        Ok(Err(Unread::BrokeOff)) => {
            Err(plain(StatusCode::BAD_REQUEST, "the request body broke off\n").into())
        }
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took over 30 s\n",
        )
        .into()),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn collect(mut body: Incoming, capacity: usize) -> Result<Bytes, Unread> {
    let mut buffer = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Unread::BrokeOff)?;
        if let Ok(chunk) = frame.into_data() {
            if buffer.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Unread::TooLarge);
            }
            buffer.extend_from_slice(&chunk);
        }
    }
    Ok(buffer.freeze())
}

/// The body stays unread, so the connection cannot carry another request.
fn too_large() -> Refusal {
    let mut response = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is over 4 MiB\n",
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response.into()
}
