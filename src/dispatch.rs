//! The call pipeline shared by every front end: look the tool up, check the arguments
//! against its published schema, forward, repair documented quirks, mask the secret.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{
    batch,
    catalog::{ArgumentProblem, Catalog, Entry, Kind, Preflight, ToolSpec},
    explain::{explain, oversized},
    limits::{CallError, Gateway, Progress},
    selection::{Hidden, Selection},
};

/// Longest argument-problem message passed on; a huge bad value must not flood the context.
const MAX_PROBLEM_CHARS: usize = 300;

/// What a tool call comes to, before any MCP framing.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The complete answer, already shaped as the tool's `structuredContent`.
    Success(Value),
    /// Text for an `isError: true` result: what happened and what to do.
    ToolError(String),
}

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

#[derive(Debug)]
pub struct Dispatcher {
    catalog: Arc<Catalog>,
    gateway: Gateway,
    selection: Selection,
    max_result_bytes: usize,
    /// Set when calls go to the built-in sandbox: added to every answer.
    sandbox_notice: Option<&'static str>,
}

impl Dispatcher {
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
        }
    }

    /// Marks every answer as coming from the sandbox, not the user's portal.
    pub fn with_sandbox_notice(mut self, notice: &'static str) -> Self {
        self.sandbox_notice = Some(notice);
        self
    }

    pub fn sandboxed(&self) -> bool {
        self.sandbox_notice.is_some()
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The tools this configuration publishes, in catalog order.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.catalog
            .entries()
            .filter(move |e| self.selection.allows(&e.spec.name))
    }

    pub fn lookup(&self, name: &str) -> Result<&Arc<Entry>, LookupError> {
        let Some(entry) = self.catalog.get(name) else {
            return Err(LookupError::Unknown {
                name: name.to_owned(),
                known: self
                    .published()
                    .map(|e| e.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
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
    ) -> Outcome {
        let spec = &entry.spec;
        let args = Value::Object(arguments.unwrap_or_default());
        let problems = entry.check_arguments(&args);
        let structured = if !problems.is_empty() {
            tracing::info!(tool = %spec.name, problems = problems.len(), "arguments refused");
            Err(self.describe_problems(&spec.name, &problems))
        } else {
            match spec.kind {
                Kind::Batch => batch::run(self, &args, progress).await,
                Kind::Rest => self.call_rest(spec, &args, progress).await,
            }
        };
        let outcome = match structured {
            Ok(structured) => {
                let size = structured.to_string().len();
                if size > self.max_result_bytes {
                    tracing::warn!(tool = %spec.name, size, "answer over the size limit");
                    Outcome::ToolError(oversized(spec, size, self.max_result_bytes))
                } else {
                    Outcome::Success(structured)
                }
            }
            Err(text) => Outcome::ToolError(self.redact(&text)),
        };
        match (outcome, self.sandbox_notice) {
            (Outcome::Success(Value::Object(mut map)), Some(notice)) => {
                map.insert("sandbox".to_owned(), Value::from(notice));
                Outcome::Success(Value::Object(map))
            }
            (Outcome::ToolError(text), Some(notice)) => {
                Outcome::ToolError(format!("{notice}\n{text}"))
            }
            (outcome, _) => outcome,
        }
    }

    async fn call_rest(
        &self,
        spec: &ToolSpec,
        args: &Value,
        progress: &dyn Progress,
    ) -> Result<Value, String> {
        self.preflight(spec, args, progress).await?;
        tracing::debug!(tool = %spec.name, method = %spec.method, "forwarding");
        let mut result = self
            .gateway
            .call(&spec.method, args, spec.hints.idempotent, progress)
            .await
            .map_err(|err| {
                tracing::info!(tool = %spec.name, error = %err, "call failed");
                explain(&err, spec)
            })?
            .result;
        spec.normalize.apply(&mut result);
        Ok(json!({ "result": result }))
    }

    /// Runs the write guards the catalog declares for `spec`. Any refusal, or any failure to
    /// check, means nothing is written.
    async fn preflight(
        &self,
        spec: &ToolSpec,
        args: &Value,
        progress: &dyn Progress,
    ) -> Result<(), String> {
        for check in &spec.preflight {
            match check {
                Preflight::RefuseIf {
                    method,
                    equals,
                    message,
                } => {
                    let answer = self.read(method, json!({}), spec, progress).await?;
                    if answer == *equals {
                        tracing::info!(tool = %spec.name, %method, "preflight refused the write");
                        return Err(message.clone());
                    }
                }
                Preflight::KnownAccessCodes { codes_at } => {
                    let codes = Preflight::codes_in(codes_at, args);
                    if codes.is_empty() {
                        continue;
                    }
                    let known = self
                        .read("access.name", json!({ "ACCESS": codes }), spec, progress)
                        .await?;
                    let unknown: Vec<&str> = codes
                        .iter()
                        .filter(|c| known.get(c.as_str()).is_none())
                        .map(String::as_str)
                        .collect();
                    if !unknown.is_empty() {
                        tracing::info!(tool = %spec.name, unknown = unknown.len(), "unknown access codes");
                        return Err(format!(
                            "The portal does not know these access codes: {}. Nothing was written: {} would save them \
                             without an error and they would grant nothing. What to do: correct them (access_name explains \
                             codes, sonet_group_user_groups lists workgroups, profile shows your own user id) and call again.",
                            unknown.join(", "),
                            spec.method
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A read made on behalf of a write's guard, repaired like the read tool's own answer.
    async fn read(
        &self,
        method: &str,
        params: Value,
        for_write: &ToolSpec,
        progress: &dyn Progress,
    ) -> Result<Value, String> {
        let reader = self.catalog.by_method(method).map(|e| &e.spec);
        match self.gateway.call(method, &params, true, progress).await {
            Ok(success) => {
                let mut result = success.result;
                if let Some(reader) = reader {
                    reader.normalize.apply(&mut result);
                }
                Ok(result)
            }
            Err(err) => Err(guard_failed(&err, method, reader.unwrap_or(for_write))),
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        self.gateway.portal().redactor().redact(text).into_owned()
    }

    pub(crate) fn describe_problems(&self, tool: &str, problems: &[ArgumentProblem]) -> String {
        let mut text = format!("Invalid arguments for {tool}; nothing was sent to Bitrix24.");
        for p in problems {
            let place = if p.path.is_empty() {
                "arguments".to_owned()
            } else {
                format!("argument `{}`", p.path.trim_start_matches('/'))
            };
            let mut message: String = p.message.chars().take(MAX_PROBLEM_CHARS).collect();
            if message.len() < p.message.len() {
                message.push('…');
            }
            text.push_str(&format!("\n- {place}: {message}"));
        }
        text.push_str(
            "\nWhat to do: fix these arguments as the tool's input schema says, then call again.",
        );
        self.gateway.portal().redactor().redact(&text).into_owned()
    }
}

fn guard_failed(err: &CallError, method: &str, spec: &ToolSpec) -> String {
    format!(
        "Nothing was written: the check made before this write ({method}) failed. {}",
        explain(err, spec)
    )
}
