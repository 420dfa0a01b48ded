//! The request body, read here rather than by the MCP service: bounded in size and time, so
//! that a client trickling it cannot hold a connection, and so the guards after it can see it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::{StatusCode, body::Incoming};

use super::reply::{Refusal, plain};

/// How long a client may take to send a request's body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request body read, as rmcp's own limit: larger ones get 413 unread.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub async fn read_body(body: Incoming) -> Result<Bytes, Refusal> {
    let read =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let read = match read {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<LengthLimitError>() => Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is over 4 MiB\n",
        )),
        Ok(Err(_)) => Err(plain(
            StatusCode::BAD_REQUEST,
            "the request body broke off\n",
        )),
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took over 30 s\n",
        )),
    };
    read.map_err(Box::new)
}
