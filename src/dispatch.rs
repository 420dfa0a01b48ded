//! The call pipeline shared by every front end: look the tool up, check the arguments
//! against its published schema, forward, repair documented quirks, mask the secret.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{
    catalog::{ArgumentProblem, Catalog, Entry},
    explain::explain,
    portal::PortalClient,
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
    portal: PortalClient,
    read_only: bool,
}

impl Dispatcher {
    pub fn new(catalog: Arc<Catalog>, portal: PortalClient, read_only: bool) -> Self {
        Self {
            catalog,
            portal,
            read_only,
        }
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

    pub async fn call(&self, entry: &Entry, arguments: Option<Map<String, Value>>) -> Outcome {
        let spec = &entry.spec;
        let args = Value::Object(arguments.unwrap_or_default());
        let problems = entry.check_arguments(&args);
        if !problems.is_empty() {
            tracing::info!(tool = %spec.name, problems = problems.len(), "arguments refused");
            return Outcome::ToolError(self.describe_problems(&spec.name, &problems));
        }
        tracing::debug!(tool = %spec.name, method = %spec.method, "forwarding");
        match self.portal.call(&spec.method, &args).await {
            Ok(success) => {
                let mut result = success.result;
                spec.normalize.apply(&mut result);
                Outcome::Success(json!({ "result": result }))
            }
            Err(err) => {
                tracing::warn!(tool = %spec.name, error = %err, "call failed");
                let text = explain(&err, spec);
                Outcome::ToolError(self.portal.redactor().redact(&text).into_owned())
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
        self.portal.redactor().redact(&text).into_owned()
    }
}
