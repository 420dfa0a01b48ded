//! bitrix24-permissions-mcp: an MCP server that publishes Bitrix24 REST permission methods
//! as typed tools and forwards calls through an inbound webhook.
//!
//! The wings, in the order data walks through them: `app` (flags, config, commands) builds the
//! `catalog` (the tools, from `tools/`), the `pipeline` (checks, guards, hooks, batch) and the
//! `bitrix` client (credentials, limits, envelope); `mcp` serves the pipeline; `sandbox` is a
//! stand-in portal.

mod app;
mod bitrix;
mod catalog;
mod html;
mod ledger;
mod mcp;
mod pipeline;
mod private_files;
mod sandbox;
mod team;

pub use app::run;

/// What the integration tests and the benchmark drive directly, below the binary.
pub mod testing {
    pub use crate::app::configuration_markdown;
    pub use crate::bitrix::{
        Api, Credentials, PortalClient, WebhookUrl,
        limits::{CallError, Gateway, Limiter, NoProgress, RateLimiter},
    };
    pub use crate::catalog::{
        Catalog, Entry as CatalogEntry, default_tools_list, markdown_table, scope_table,
    };
    pub use crate::sandbox::portal::{Portal as SandboxPortal, Size as SandboxSize};

    /// The large sandbox company's counts and the objects the tests and the benchmark ask about.
    pub mod large_sandbox {
        pub use crate::sandbox::portal::large::{
            ALL_HANDS, DEPARTMENTS, FIRST_TASK, SITES, TASKS, USERS,
        };
    }

    /// PKCE's S256 challenge of a verifier (RFC 7636), as an MCP client computes it.
    pub fn pkce_s256(verifier: &str) -> String {
        crate::team::s256(verifier)
    }

    /// The shared token test HTTP servers are started with (`BITRIX24_HTTP_TOKEN`), unless a
    /// test signs people in instead.
    pub const HTTP_TOKEN: &str = "test-token-0123456789abcdef";

    /// A plain HTTP client for talking to test servers, with the TLS provider this crate
    /// compiles in (reqwest finds none by itself). It sends [`HTTP_TOKEN`] unless a request
    /// sets its own `Authorization`.
    pub fn http_client() -> reqwest::Client {
        crate::bitrix::install_tls_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_static("Bearer test-token-0123456789abcdef"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain client builds")
    }
}
