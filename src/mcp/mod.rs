//! The MCP face: the handler every transport shares, the stdio and Streamable HTTP
//! transports, and the reference pages published as resources.

mod handler;
mod http;
mod human;
mod instructions;
mod resources;
mod shutdown;
mod stdio;
mod toolsets;

pub use handler::{PermissionsServer, tool_definition};
pub use http::{
    HttpLimits, HttpSetup, PATH as HTTP_PATH, TOKEN_ENV as HTTP_TOKEN_ENV, serve as serve_http,
};
pub use shutdown::Shutdown;
pub use stdio::stdio;
