//! Only the MCP endpoint is served; every other path is a 404.

use hyper::{Request, StatusCode};

use super::reply::{Refusal, plain};

/// Where the MCP endpoint lives, as MCP clients and the conformance suite expect.
pub const PATH: &str = "/mcp";

pub fn route<B>(req: &Request<B>) -> Result<(), Refusal> {
    if req.uri().path() == PATH {
        Ok(())
    } else {
        Err(plain(StatusCode::NOT_FOUND, "the MCP endpoint is /mcp\n").into())
    }
}
