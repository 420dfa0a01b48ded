//! The call pipeline shared by every front end (MCP over stdio and HTTP, the `call` and
//! `doctor` commands): look the tool up, check the arguments against its published schema,
//! run the write's guards and the hooks, forward through the gateway, repair documented
//! quirks, and keep the secret out of whatever comes back.

pub mod approval;
mod arguments;
mod batch;
mod change;
mod confirm;
mod explain;
mod failure;
mod floor;
mod guards;
mod hook;
mod question;
mod resolve;
mod selection;
mod shown;
mod who_can;
mod write;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};

#[cfg(test)]
pub use self::confirm::Confirmation;
pub use self::{
    approval::{
        Approval, ApprovalState, ApprovalStore, ChangeId, Decided, MemoryApprovals, ServerKey,
        StoreError, StoreFuture,
    },
    confirm::{Answer, ApprovalDesk, BoxFuture, ConfirmWrites, Human, LinkAnswer, Seal},
    failure::{FailureKind, ToolFailure},
    hook::{
        BeforeFuture, CallHook, CallInfo, HistoryQuery, HookFuture, Journal, Known, KnownSet,
        ObjectRef, WriteLog,
    },
    selection::{Filters, Selection},
};
use self::{
    arguments::{describe_problems, settle_integers},
    explain::{failure, oversized, unexpected},
    selection::Hidden,
};
use crate::{
    bitrix::{
        Api,
        limits::{Gateway, Progress},
    },
    catalog::{Catalog, Entry, Kind, Summary, ToolSpec},
};

/// What a tool call comes to, before any framing: the complete answer, already shaped as the
/// tool's `structuredContent`, or a typed failure.
pub type Outcome = Result<Value, ToolFailure>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown tool `{name}`; the tools are: {known}")]
    Unknown { name: String, known: String },
    #[error(
        "tool `{name}` writes to the portal and this server runs read-only (BITRIX24_READ_ONLY / --read-only)"
    )]
    ReadOnly { name: String },
    #[error(
        "tool `{name}` is not enabled on this server (BITRIX24_TOOLSETS / BITRIX24_TOOLS / BITRIX24_EXCLUDE_TOOLS)"
    )]
    Filtered { name: String },
}

pub struct Pipeline {
    catalog: Arc<Catalog>,
    gateway: Gateway,
    selection: Selection,
    max_result_bytes: usize,
    /// Set when calls go to the built-in sandbox: added to every answer.
    sandbox_notice: Option<&'static str>,
    hooks: Vec<Arc<dyn CallHook>>,
    journal: Option<Arc<dyn Journal>>,
    confirm_writes: ConfirmWrites,
    approvals: Arc<dyn ApprovalStore>,
    key: Arc<ServerKey>,
    desk: Option<Arc<dyn ApprovalDesk>>,
    /// How long a person has to answer a question in the client.
    confirm_timeout: Duration,
}

/// How long a person has to answer in the client, unless configured.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(300);

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("gateway", &self.gateway)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    pub fn new(
        catalog: Arc<Catalog>,
        gateway: Gateway,
        selection: Selection,
        max_result_bytes: usize,
    ) -> Self {
        Self {
            catalog,
            gateway,
            selection,
            max_result_bytes,
            sandbox_notice: None,
            hooks: Vec::new(),
            journal: None,
            confirm_writes: ConfirmWrites::default(),
            approvals: Arc::new(MemoryApprovals::default()),
            key: Arc::new(ServerKey::ephemeral()),
            desk: None,
            confirm_timeout: CONFIRM_TIMEOUT,
        }
    }

    /// Where approvals and spent nonces are kept, and the key questions are sealed with: the
    /// ledger's, so that every process sharing it agrees.
    pub fn with_approvals(mut self, store: Arc<dyn ApprovalStore>, key: Arc<ServerKey>) -> Self {
        self.approvals = store;
        self.key = key;
        self
    }

    /// Where people approve changes outside the model's channel.
    pub fn with_desk(mut self, desk: Arc<dyn ApprovalDesk>) -> Self {
        self.desk = Some(desk);
        self
    }

    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    pub fn key(&self) -> &Arc<ServerKey> {
        &self.key
    }

    pub fn approvals(&self) -> &Arc<dyn ApprovalStore> {
        &self.approvals
    }

    /// The portal and user calls run as, without any secret.
    pub fn identity(&self) -> crate::bitrix::Identity {
        self.gateway.portal().credentials().identity()
    }

    /// Keeps a journal of writes: a hook that the confirmation, the dry run and the history
    /// tool also read.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.hooks.push(journal.clone());
        self.journal = Some(journal);
        self
    }

    pub fn with_confirm_writes(mut self, mode: ConfirmWrites) -> Self {
        self.confirm_writes = mode;
        self
    }

    /// Marks every answer as coming from the sandbox, not the user's portal.
    pub fn with_sandbox_notice(mut self, notice: &'static str) -> Self {
        self.sandbox_notice = Some(notice);
        self
    }

    /// Adds a hook around every call; hooks run in the order they were added.
    pub fn with_hook(mut self, hook: Arc<dyn CallHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    pub fn sandboxed(&self) -> bool {
        self.sandbox_notice.is_some()
    }

    /// The journal's record of changes, or `None` when no journal is kept.
    pub async fn history(&self, query: &HistoryQuery) -> Option<Result<Vec<Value>, String>> {
        match &self.journal {
            Some(journal) => Some(journal.history(query).await),
            None => None,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The tools this configuration publishes, in catalog order.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.published_with(&[])
    }

    /// The tools published once a session has enabled `toolsets` at run time as well.
    pub fn published_with<'a>(
        &'a self,
        toolsets: &'a [String],
    ) -> impl Iterator<Item = &'a Arc<Entry>> {
        self.catalog
            .entries()
            .filter(move |e| self.enabled_in(&e.summary, toolsets))
    }

    fn enabled_in(&self, tool: &Summary, toolsets: &[String]) -> bool {
        self.selection.allows(&tool.name)
            || (tool.kind != Kind::EnableToolset
                && toolsets.iter().any(|t| t == "all" || *t == tool.toolset)
                && self.selection.may_enable(&self.catalog, &tool.name))
    }

    /// Whether a session may publish a write tool later: `enable_toolset` is published and
    /// some write tool may be enabled (not read-only, not excluded).
    pub fn writes_may_be_enabled(&self) -> bool {
        let dynamic = self
            .published()
            .any(|e| e.summary.kind == Kind::EnableToolset);
        dynamic
            && self.catalog.entries().any(|e| {
                e.summary.is_write() && self.selection.may_enable(&self.catalog, &e.summary.name)
            })
    }

    /// The toolsets a session may enable, sorted.
    pub fn toolsets(&self) -> Vec<&str> {
        self.catalog.toolsets()
    }

    pub fn lookup(&self, name: &str) -> Result<&Arc<Entry>, LookupError> {
        self.lookup_with(name, &[])
    }

    /// The command line has no context to save: unless toolsets or tools were named, it may
    /// call every tool a session could enable. Exclusions and read-only mode still hold.
    pub fn lookup_for_command_line(&self, name: &str) -> Result<&Arc<Entry>, LookupError> {
        if self.selection.budget_only() {
            self.lookup_with(name, &["all".to_owned()])
        } else {
            self.lookup(name)
        }
    }

    /// A reading tool the server's own diagnostics (`doctor`) call, whatever the filters
    /// publish: the person running them asked for the check, not the model.
    pub fn lookup_for_diagnostics(&self, name: &str) -> Option<&Arc<Entry>> {
        self.catalog.get(name).filter(|e| !e.summary.is_write())
    }

    /// Looks a tool up as a session that has enabled `toolsets` at run time sees it.
    pub fn lookup_with(&self, name: &str, toolsets: &[String]) -> Result<&Arc<Entry>, LookupError> {
        let Some(entry) = self.catalog.get(name) else {
            return Err(LookupError::Unknown {
                name: name.to_owned(),
                known: self
                    .published_with(toolsets)
                    .map(|e| e.summary.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if self.enabled_in(&entry.summary, toolsets) {
            return Ok(entry);
        }
        match self.selection.hidden(&self.catalog, name) {
            None => Ok(entry),
            Some(Hidden::ReadOnly) => Err(LookupError::ReadOnly {
                name: name.to_owned(),
            }),
            Some(Hidden::Filtered) => Err(LookupError::Filtered {
                name: name.to_owned(),
            }),
        }
    }

    pub async fn call(
        &self,
        entry: &Entry,
        arguments: Option<Map<String, Value>>,
        progress: &dyn Progress,
        human: &dyn Human,
    ) -> Outcome {
        let spec = &entry.spec;
        let mut args = Value::Object(arguments.unwrap_or_default());
        let mut problems = settle_integers(entry.input_model(), &mut args);
        if problems.is_empty() {
            problems = entry.check_arguments(&args);
        }
        // Checked with the schema above, then taken out: the portal never sees it.
        let dry_run = spec.is_write()
            && args
                .as_object_mut()
                .and_then(|map| map.remove("dry_run"))
                .is_some_and(|v| v == true);
        // One deadline for the whole call: guard reads, the write, retries and waits.
        let deadline = self.gateway.deadline();
        let outcome = if !problems.is_empty() {
            tracing::info!(tool = %spec.name, problems = problems.len(), "arguments refused");
            Err(describe_problems(&spec.name, &problems))
        } else {
            match spec.kind {
                Kind::Batch => self.call_batch(&args, deadline, progress).await,
                Kind::History => self.call_history(&args).await,
                Kind::Rest => {
                    self.call_rest(entry, &args, deadline, progress, human, dry_run)
                        .await
                }
                Kind::ResolveAccessCodes => resolve::run(self, &args, deadline, progress).await,
                Kind::WhoCan => who_can::run(self, &args, deadline, progress).await,
                Kind::EnableToolset => Err(ToolFailure::new(
                    FailureKind::Refused,
                    format!(
                        "{} works only inside an MCP session. What to do: start the server with --toolsets instead.",
                        spec.name
                    ),
                )),
            }
        };
        let outcome = match outcome {
            Ok(structured) => {
                let size = structured.to_string().len();
                if size > self.max_result_bytes {
                    tracing::warn!(tool = %spec.name, size, "answer over the size limit");
                    Err(oversized(spec, size, self.max_result_bytes))
                } else {
                    Ok(structured)
                }
            }
            Err(failure) => {
                let secrets = self.gateway.portal().secrets();
                Err(failure
                    .map_text(|text| secrets.redact(&text).into_owned())
                    .capped(self.max_result_bytes))
            }
        };
        match (outcome, self.sandbox_notice) {
            (Ok(Value::Object(mut map)), Some(notice)) => {
                map.insert("sandbox".to_owned(), Value::from(notice));
                Ok(Value::Object(map))
            }
            (Err(failure), Some(notice)) => {
                Err(failure.map_text(|text| format!("{notice}\n{text}")))
            }
            (outcome, _) => outcome,
        }
    }

    async fn call_rest(
        &self,
        entry: &Entry,
        args: &Value,
        deadline: Instant,
        progress: &dyn Progress,
        human: &dyn Human,
        dry_run: bool,
    ) -> Outcome {
        let spec = &entry.spec;
        let plan = match spec.is_write() {
            true => Some(write::plan(self, spec, args).await),
            false => None,
        };
        let also_name = plan.as_ref().map_or(&[][..], |plan| &plan.also_name[..]);
        let facts = guards::run(self, spec, args, also_name, deadline, progress).await?;
        let Some(plan) = plan else {
            return self.send(entry, args, deadline, progress).await;
        };
        let asked_by = human.asker();
        let prepared = write::prepare(self, plan, facts, &asked_by, deadline, progress).await;
        if dry_run {
            return Ok(prepared.change.dry_run(&prepared.question));
        }
        let gate = confirm::Gate {
            mode: self.confirm_writes,
            store: self.approvals.as_ref(),
            key: &self.key,
            desk: self.desk.as_deref(),
            timeout: self.confirm_timeout,
        };
        let identity = self.identity();
        let asked = confirm::Asked {
            change: &prepared.id,
            portal: &identity.host,
            user: &identity.user_id,
            tool: &spec.name,
            title: &spec.title,
            question: &prepared.question,
        };
        let confirmation = confirm::obtain(&gate, human, &asked).await?;
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let info = CallInfo {
            call_id: CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            spec,
            arguments: args,
            object: prepared.object.as_ref(),
            confirmation: &confirmation,
            asked_by: &asked_by,
            runs_as: &prepared.runs_as,
        };
        // A person's time to answer is not the portal's: after a question the write gets a
        // deadline of its own; unasked, the guards and the write share one.
        let deadline = match confirmation {
            confirm::Confirmation::Off => deadline,
            _ => self.gateway.deadline(),
        };
        self.with_hooks(info, async {
            if confirmation.refused() {
                Err(confirmation.refusal(self.confirm_timeout))
            } else {
                self.send(entry, args, deadline, progress).await
            }
        })
        .await
    }

    /// Runs the hooks around a write: any `before` may stop it, every `after` sees its end.
    async fn with_hooks(
        &self,
        info: CallInfo<'_>,
        call: impl std::future::Future<Output = Outcome>,
    ) -> Outcome {
        let mut stopped = None;
        for hook in &self.hooks {
            if let Err(failure) = hook.before(info).await {
                stopped = Some(failure);
                break;
            }
        }
        let outcome = match stopped {
            Some(failure) => Err(failure),
            None => call.await,
        };
        for hook in &self.hooks {
            hook.after(info, &outcome).await;
        }
        outcome
    }

    /// Forwards the call and checks the answer against the tool's output schema, before any
    /// sandbox notice is added and before the hooks see it.
    async fn send(
        &self,
        entry: &Entry,
        args: &Value,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Outcome {
        let spec = &entry.spec;
        self.forward(spec, args, deadline, progress)
            .await
            .and_then(|answer| match entry.check_answer(&answer) {
                Ok(()) => Ok(answer),
                Err(problem) => Err(unexpected(spec, &answer["result"], &problem)),
            })
    }

    /// Reads the journal back; without one, says how to turn it on.
    async fn call_history(&self, args: &Value) -> Outcome {
        const NOTE: &str = "The ledger knows only changes made through this server (and other \
            processes sharing its ledger file); changes made in the portal or by other apps are not in it.";
        let Some(journal) = &self.journal else {
            return Ok(json!({
                "changes": [],
                "note": format!("The ledger is off (BITRIX24_LEDGER=off), so no changes are recorded. {NOTE}"),
            }));
        };
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let query = HistoryQuery {
            id: args.get("id").and_then(text),
            tool: args.get("tool").and_then(text),
            since: args.get("since").and_then(text),
            limit: args
                .get("limit")
                .and_then(Value::as_u64)
                .map_or(20, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            every_portal: false,
        };
        match journal.history(&query).await {
            Ok(changes) => Ok(json!({ "changes": changes, "note": NOTE })),
            Err(problem) => Err(ToolFailure::new(
                FailureKind::Transport,
                format!(
                    "The ledger could not be read: {problem}. What to do: check BITRIX24_LEDGER's file and try again."
                ),
            )),
        }
    }

    async fn forward(
        &self,
        spec: &ToolSpec,
        args: &Value,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Outcome {
        tracing::debug!(tool = %spec.name, method = %spec.method, "forwarding");
        let success = self
            .gateway
            .call(
                &spec.method,
                spec.api,
                args,
                spec.is_write(),
                deadline,
                progress,
            )
            .await
            .map_err(|err| {
                tracing::info!(tool = %spec.name, error = %err, "call failed");
                failure(&err, spec)
            })?;
        let mut result = success.result;
        spec.normalize.apply(&mut result);
        let mut answer = json!({ "result": result });
        // A paged list's position travels with it, where the tool's output schema has room.
        let declared = &spec.output_schema["properties"];
        for (field, value) in [("total", success.total), ("next", success.next)] {
            if let Some(value) = value
                && declared.get(field).is_some()
            {
                answer[field] = json!(value);
            }
        }
        Ok(answer)
    }

    /// Resolves and checks every item of a `batch` call here, where tools are looked up, and
    /// hands only the callable ones to the batch sender.
    async fn call_batch(
        &self,
        args: &Value,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Outcome {
        let items = args["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let checked: Vec<_> = items
            .iter()
            .map(|item| {
                let tool = item["tool"].as_str().unwrap_or_default();
                let mut item_args = item.get("arguments").cloned().unwrap_or_else(|| json!({}));
                self.batch_item(tool, &mut item_args)
                    .map(|entry| (entry.as_ref(), item_args))
                    .map_err(|text| (tool.to_owned(), text))
            })
            .collect();
        let batch_spec = &self
            .catalog
            .by_method(crate::bitrix::methods::batch::METHOD)
            .expect("the batch tool is in the catalog")
            .spec;
        let only_keys: Vec<String> = args["only_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        batch::refuse_oversized(&checked, self.max_result_bytes)?;
        Ok(batch::run(
            &self.gateway,
            batch_spec,
            checked,
            &only_keys,
            deadline,
            progress,
        )
        .await)
    }

    fn batch_item(&self, tool: &str, args: &mut Value) -> Result<&Arc<Entry>, String> {
        let entry = self.lookup(tool).map_err(|e| {
            format!(
                "{e}. What to do: use one of the read-only tools this server lists, or drop the item."
            )
        })?;
        let spec = &entry.spec;
        if !matches!(spec.kind, Kind::Rest | Kind::Batch) {
            return Err(format!(
                "{tool} cannot run inside batch. What to do: call it on its own."
            ));
        }
        if spec.kind == Kind::Batch {
            return Err(
                "batch cannot contain batch. What to do: put these items into the outer batch directly."
                    .to_owned(),
            );
        }
        if spec.is_write() {
            return Err(format!(
                "{tool} writes to the portal; batch runs read-only tools only. What to do: call {tool} on its own."
            ));
        }
        if spec.api == Api::V3 {
            return Err(format!(
                "{tool} is a REST 3.0 method, which classic batch cannot carry. What to do: call {tool} on its own."
            ));
        }
        let mut problems = settle_integers(entry.input_model(), args);
        if problems.is_empty() {
            problems = entry.check_arguments(args);
        }
        if !problems.is_empty() {
            return Err(describe_problems(tool, &problems).text);
        }
        batch::check_references(tool, args)?;
        Ok(entry)
    }
}
