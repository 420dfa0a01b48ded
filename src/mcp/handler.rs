//! The MCP handler. It knows nothing of transports: the app picks one.

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};

use rmcp::{
    Peer,
    model::{ProgressNotificationParam, ProgressToken},
};

use serde_json::{Map, Value, json};

use super::{
    caller::Caller,
    human::{Abilities, Rounds, SessionHuman},
    instructions, resources,
    shutdown::InFlight,
    toolsets::ToolsetMemory,
};
use crate::{
    bitrix::acting,
    bitrix::limits::{NoProgress, Progress},
    catalog::{Entry, Kind, ToolSpec},
    pipeline::{FailureKind, Human, Outcome, Pipeline, ToolFailure},
};

/// One per MCP session (or, over stateless HTTP, per request); what a caller enabled at run
/// time lives in the [`ToolsetMemory`] its server's handlers share.
#[derive(Clone)]
pub struct PermissionsServer {
    pipeline: Arc<Pipeline>,
    toolsets: ToolsetMemory,
    /// Built from the tools published at start; sent on both lifecycles.
    instructions: Arc<str>,
    in_flight: InFlight,
    /// Whether an answer given in the client is its person's: true over stdio, where the
    /// client is the person's own program; over HTTP anyone holding a token could answer.
    personal_client: bool,
}

impl PermissionsServer {
    /// The handler of a stdio server: one client, the person's own.
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self {
            personal_client: true,
            ..Self::sharing(pipeline, ToolsetMemory::default(), InFlight::default())
        }
    }

    /// A handler of a server whose handlers share what callers enabled and the count of
    /// calls under way (Streamable HTTP makes one per session or request).
    pub fn sharing(pipeline: Arc<Pipeline>, toolsets: ToolsetMemory, in_flight: InFlight) -> Self {
        let instructions = instructions::build(&instructions::Published {
            tools: pipeline.published().map(|e| &*e.spec).collect(),
            writes_later: pipeline.writes_may_be_enabled(),
            sandbox: pipeline.sandboxed(),
        });
        Self {
            pipeline,
            toolsets,
            instructions: instructions.into(),
            in_flight,
            personal_client: false,
        }
    }

    /// Who is asking, in words for the question and the ledger. The client's name is the
    /// client's own claim, so it comes last and is never the only name.
    fn asker(&self, context: &RequestContext<RoleServer>, caller: Option<&Caller>) -> String {
        let client = context
            .client_info()
            .map(|c| format!("{} {}", c.name, c.version))
            .unwrap_or_else(|| "an unnamed MCP client".to_owned());
        match caller {
            Some(caller) => format!("{} through {client}", caller.label()),
            None if self.personal_client => format!("{} through {client}", local_user()),
            None => format!("an HTTP caller through {client}"),
        }
    }

    fn tools(&self, enabled: &[String]) -> Vec<Tool> {
        let sandbox = self.pipeline.sandboxed();
        self.pipeline
            .published_with(enabled)
            .map(|e| tool_definition(&e.spec, sandbox))
            .collect()
    }

    /// `enable_toolset`: publishes a toolset for the rest of this caller's session (or, with
    /// no sessions, for the caller's later requests) and tells the client its tool list
    /// changed. A client that ignores the notice can still call the new tools.
    async fn enable_toolset(&self, args: &Value, caller: &str, peer: &Peer<RoleServer>) -> Outcome {
        let wanted = args["toolset"].as_str().unwrap_or_default().to_owned();
        let valid = self.pipeline.toolsets();
        if wanted != "all" && !valid.contains(&wanted.as_str()) {
            return Err(ToolFailure::new(
                FailureKind::InvalidArguments,
                format!(
                    "There is no toolset {wanted:?}. What to do: use one of {}, all.",
                    valid.join(", ")
                ),
            ));
        }
        let names = |enabled: &[String]| -> Vec<String> {
            self.pipeline
                .published_with(enabled)
                .map(|e| e.summary.name.clone())
                .collect()
        };
        let before = names(&self.toolsets.enabled(caller));
        self.toolsets.enable(caller, &wanted);
        let added: Vec<String> = names(&self.toolsets.enabled(caller))
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if !added.is_empty()
            && let Err(err) = peer.notify_tool_list_changed().await
        {
            tracing::debug!(%err, "tools/list_changed not sent");
        }
        tracing::info!(toolset = %wanted, added = added.len(), "toolset enabled");
        Ok(json!({"result": {"toolset": wanted, "added": added}}))
    }

    /// The calls under way on this server, for a shutdown that lets them finish.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.clone()
    }

    /// A call of `enable_toolset`. The handler answers it, not the pipeline: it changes what
    /// this caller is shown, which only the handler keeps.
    async fn toolset_call(
        &self,
        entry: &Entry,
        arguments: Option<&Map<String, Value>>,
        caller: &str,
        peer: &Peer<RoleServer>,
    ) -> Outcome {
        let args = Value::Object(arguments.cloned().unwrap_or_default());
        if entry.check_arguments(&args).is_empty() {
            self.enable_toolset(&args, caller, peer).await
        } else {
            Err(ToolFailure::new(
                FailureKind::InvalidArguments,
                "enable_toolset takes one argument, toolset. What to do: pass one of the toolset names its schema lists.",
            ))
        }
    }

    /// Who confirms this call's write, and through what: a client on the 2026-07-28 protocol
    /// keeps no session, so the question travels back in the call's own result.
    fn human(
        &self,
        context: &RequestContext<RoleServer>,
        who: Option<&Caller>,
        request: &CallToolRequestParams,
    ) -> CallHuman {
        // A signed-in person's client is theirs, as a stdio client is its user's: its answer
        // is the person's own. A shared token or no token says nothing about who answers.
        let trusted = self.personal_client || matches!(who, Some(Caller::Person(_)));
        let abilities = Abilities::of(context.client_capabilities().as_ref());
        let stateless = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let asker = self.asker(context, who);
        if stateless {
            CallHuman::Rounds(Rounds::new(
                asker,
                abilities,
                trusted,
                request.input_responses.clone(),
                request.request_state.clone(),
            ))
        } else {
            CallHuman::Session(SessionHuman {
                peer: context.peer.clone(),
                asker,
                abilities,
                trusted,
            })
        }
    }
}

/// A tool as published. In the sandbox every answer carries a `sandbox` notice, so the output
/// schema says so too.
pub fn tool_definition(spec: &ToolSpec, sandbox: bool) -> Tool {
    let mut tool = spec.to_tool();
    if sandbox && let Some(schema) = tool.output_schema.as_mut() {
        let schema = Arc::make_mut(schema);
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            properties.insert(
                "sandbox".to_owned(),
                json!({"type": "string", "description": "Sandbox mode: invented data."}),
            );
        }
    }
    tool
}

/// The edge where a failure becomes text: its kind and code stay in the log.
fn to_call_result(tool: &str, outcome: Outcome) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(failure) => {
            tracing::debug!(tool, kind = failure.kind.as_str(), code = ?failure.code, "tool error");
            CallToolResult::error(vec![ContentBlock::text(failure.text)])
        }
    }
}

/// An unauthenticated caller may only read: its write is refused here, before its arguments
/// are even checked, so nothing of it reaches the portal.
fn anonymous_write(entry: &Entry, tool: &str, who: Option<&Caller>) -> Option<ToolFailure> {
    (matches!(who, Some(Caller::AnonymousReader)) && entry.summary.is_write()).then(|| {
        ToolFailure::new(
            FailureKind::Refused,
            format!(
                "{tool} changes the portal, and this caller is not signed in: unauthenticated callers may only read. \
                 Nothing was sent. What to do: ask the user to sign in to this server and configure the client with their token."
            ),
        )
    })
}

/// A signed-in person's call runs with their own Bitrix24 token, every request of it.
async fn as_caller(who: Option<&Caller>, call: impl Future<Output = Outcome>) -> Outcome {
    match who {
        Some(Caller::Person(person)) => acting::as_person(person.credentials.clone(), call).await,
        _ => call.await,
    }
}

/// The person who confirms one call's write.
enum CallHuman {
    /// Asked in the call's result, answered when the client calls again.
    Rounds(Rounds),
    /// Asked over the session, while the call waits.
    Session(SessionHuman),
}

impl CallHuman {
    fn as_human(&self) -> &dyn Human {
        match self {
            Self::Rounds(rounds) => rounds,
            Self::Session(session) => session,
        }
    }

    /// A call that stopped to ask answers with the question, where the protocol carries it
    /// in the result; every other outcome is the tool's own result.
    fn response(&self, tool: &str, outcome: Outcome) -> CallToolResponse {
        if let Err(failure) = &outcome
            && failure.kind == FailureKind::AwaitingUser
            && let Self::Rounds(rounds) = self
            && let Some(question) = rounds.question()
        {
            return question.into();
        }
        to_call_result(tool, outcome).into()
    }
}

impl ServerHandler for PermissionsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .with_title("Bitrix24 permissions"),
        )
        .with_instructions(self.instructions.to_string())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let enabled = self.toolsets.enabled(&self.toolsets.key(&context));
        Ok(ListToolsResult::with_all_items(self.tools(&enabled)))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        match resources::read(&request.uri) {
            Some(contents) => Ok(ReadResourceResult::new(vec![contents]).into()),
            None => Err(McpError::resource_not_found(
                format!(
                    "no resource {}; the resources are: {}",
                    request.uri,
                    resources::uris().join(", ")
                ),
                None,
            )),
        }
    }

    /// Any tool some caller may have published here: rmcp asks with no caller to name, to
    /// check a request's headers against the tool's schema.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        let entry = self.pipeline.lookup_with(name, &["all".to_owned()]).ok()?;
        Some(tool_definition(&entry.spec, self.pipeline.sandboxed()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let _busy = self.in_flight.enter();
        let caller = self.toolsets.key(&context);
        let toolsets = self.toolsets.enabled(&caller);
        let entry = self
            .pipeline
            .lookup_with(&request.name, &toolsets)
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        if entry.spec.kind == Kind::EnableToolset {
            let outcome = self
                .toolset_call(entry, request.arguments.as_ref(), &caller, &context.peer)
                .await;
            return Ok(to_call_result(&request.name, outcome).into());
        }
        let progress: Box<dyn Progress> = match context.meta.get_progress_token() {
            Some(token) => Box::new(PeerProgress::new(context.peer.clone(), token)),
            None => Box::new(NoProgress),
        };
        let who = Caller::of(&context);
        if let Some(refusal) = anonymous_write(entry, &request.name, who.as_ref()) {
            return Ok(to_call_result(&request.name, Err(refusal)).into());
        }
        let human = self.human(&context, who.as_ref(), &request);
        let call = self.pipeline.call(
            entry,
            request.arguments,
            progress.as_ref(),
            human.as_human(),
        );
        tokio::select! {
            outcome = as_caller(who.as_ref(), call) => Ok(human.response(&request.name, outcome)),
            // The client gave up on this call; rmcp sends no answer for it.
            () = context.ct.cancelled() => Err(McpError::internal_error("cancelled by the client", None)),
        }
    }
}

/// Sends "still waiting" messages as `notifications/progress` for the client's own token.
struct PeerProgress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    step: std::sync::atomic::AtomicU32,
}

impl PeerProgress {
    fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Self {
        Self {
            peer,
            token,
            step: Default::default(),
        }
    }
}

impl Progress for PeerProgress {
    fn waiting(&self, message: String) {
        // Progress must grow with every notification, even though the total is unknown.
        let step = self.step.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let param = ProgressNotificationParam::new(self.token.clone(), f64::from(step))
            .with_message(message);
        let peer = self.peer.clone();
        tokio::spawn(async move {
            if let Err(err) = peer.notify_progress(param).await {
                tracing::debug!(%err, "progress notification not sent");
            }
        });
    }
}

/// The local account the stdio client runs under, as the environment names it.
pub fn local_user() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("USERNAME")) {
        Ok(user) if !user.is_empty() => format!("local user {user}"),
        _ => "the local user".to_owned(),
    }
}
