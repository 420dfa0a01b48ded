//! The MCP face of the server. It knows nothing of transports: `main` decides that.

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};

use crate::dispatch::{Dispatcher, LookupError, Outcome};

/// Sent on both lifecycles (`initialize` and `server/discover`); under 2 KB, key sentence first.
pub const INSTRUCTIONS: &str = "\
Reads and changes access permissions on one Bitrix24 portal through its inbound webhook; every call acts with the rights of the webhook's user.
- Reading tools (read-only) check workgroup features, site rights and task actions; they never change anything.
- landing_site_set_rights REPLACES all individual rights of a site: send the complete set, never a single grant, and confirm with the user first.
- A tool error says what happened and what to do; follow it rather than retrying unchanged. An insufficient_scope error names the webhook scope to tick.
- IDs of groups, sites, tasks and users come from the user or from the portal; do not guess them.";

#[derive(Clone)]
pub struct PermissionsServer {
    dispatcher: Arc<Dispatcher>,
    tools: Arc<Vec<Tool>>,
}

impl PermissionsServer {
    pub fn new(dispatcher: Arc<Dispatcher>) -> Self {
        let tools = dispatcher.published().map(|e| e.spec.to_tool()).collect();
        Self {
            dispatcher,
            tools: Arc::new(tools),
        }
    }
}

pub fn to_call_result(outcome: Outcome) -> CallToolResult {
    match outcome {
        Outcome::Success(value) => CallToolResult::structured(value),
        Outcome::ToolError(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
    }
}

impl ServerHandler for PermissionsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_title("Bitrix24 permissions"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let entry = self.dispatcher.lookup(&request.name).map_err(|e| match e {
            LookupError::Unknown { .. } | LookupError::ReadOnly { .. } => {
                McpError::invalid_params(e.to_string(), None)
            }
        })?;
        tokio::select! {
            outcome = self.dispatcher.call(entry, request.arguments) => Ok(to_call_result(outcome).into()),
            // The client gave up on this call; rmcp sends no answer for it.
            () = context.ct.cancelled() => Err(McpError::internal_error("cancelled by the client", None)),
        }
    }
}
