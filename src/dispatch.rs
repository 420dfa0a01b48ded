//! The call pipeline shared by every front end: look the tool up, check the arguments
//! against its published schema, forward, repair documented quirks, mask the secret.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{
    catalog::{ArgumentProblem, Catalog, Entry},
    explain::{explain, oversized},
    limits::{Gateway, Progress},
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
}

#[derive(Debug)]
pub struct Dispatcher {
    catalog: Arc<Catalog>,
    gateway: Gateway,
    read_only: bool,
    max_result_bytes: usize,
}

impl Dispatcher {
    pub fn new(
        catalog: Arc<Catalog>,
        gateway: Gateway,
        read_only: bool,
        max_result_bytes: usize,
    ) -> Self {
        Self {
            catalog,
            gateway,
            read_only,
            max_result_bytes,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The tools this configuration publishes, in catalog order. Read-only mode wins over
    /// every other setting.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.catalog
            .entries()
            .filter(move |e| !(self.read_only && e.spec.is_write()))
    }

    pub fn lookup(&self, name: &str) -> Result<&Arc<Entry>, LookupError> {
        match self.catalog.get(name) {
            Some(e) if self.read_only && e.spec.is_write() => Err(LookupError::ReadOnly {
                name: name.to_owned(),
            }),
            Some(e) => Ok(e),
            None => Err(LookupError::Unknown {
                name: name.to_owned(),
                known: self
                    .published()
                    .map(|e| e.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
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
        if !problems.is_empty() {
            tracing::info!(tool = %spec.name, problems = problems.len(), "arguments refused");
            return Outcome::ToolError(self.describe_problems(&spec.name, &problems));
        }
        tracing::debug!(tool = %spec.name, method = %spec.method, "forwarding");
        let redactor = self.gateway.portal().redactor();
        match self
            .gateway
            .call(&spec.method, &args, spec.hints.idempotent, progress)
            .await
        {
            Ok(success) => {
                let mut result = success.result;
                spec.normalize.apply(&mut result);
                let structured = json!({ "result": result });
                let size = structured.to_string().len();
                if size > self.max_result_bytes {
                    tracing::warn!(tool = %spec.name, size, "answer over the size limit");
                    return Outcome::ToolError(oversized(spec, size, self.max_result_bytes));
                }
                Outcome::Success(structured)
            }
            Err(err) => {
                tracing::warn!(tool = %spec.name, error = %err, "call failed");
                Outcome::ToolError(redactor.redact(&explain(&err, spec)).into_owned())
            }
        }
    }

    fn describe_problems(&self, tool: &str, problems: &[ArgumentProblem]) -> String {
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
