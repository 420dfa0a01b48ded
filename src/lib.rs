//! bitrix24-permissions-mcp: an MCP server that publishes Bitrix24 REST permission methods
//! as typed tools and forwards calls through an inbound webhook.

pub mod batch;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod explain;
pub mod http;
pub mod limits;
pub mod logging;
pub mod portal;
pub mod resources;
pub mod sandbox;
pub mod selection;
pub mod server;
pub mod transport;
pub mod webhook;
