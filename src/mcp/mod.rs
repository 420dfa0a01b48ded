//! The MCP face: the handler every transport shares, the stdio and Streamable HTTP
//! transports, and the reference pages published as resources.

mod approval_page;
mod caller;
mod duplicate_keys;
mod handler;
mod http;
mod human;
mod instructions;
mod resources;
mod shutdown;
mod stdio;
mod team_pages;
mod toolsets;

pub use approval_page::{LocalDesk, page as approval_page};
pub use duplicate_keys::{duplicate_message, first_duplicate};
pub use handler::{PermissionsServer, local_user, tool_definition};
pub use http::{
    Access, HttpLimits, HttpSetup, PATH as HTTP_PATH, TOKEN_ENV as HTTP_TOKEN_ENV,
    serve as serve_http,
};
pub use shutdown::Shutdown;
pub use stdio::stdio;
pub use team_pages::{TeamDesk, TeamPages};
