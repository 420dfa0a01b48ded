//! Configuration: raw flags and environment are parsed once by clap ([`Args`]), then resolved
//! into one validated [`Config`]. The webhook URL is read from the environment or a file only,
//! never from the command line, where `ps` and shell history would show it.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, builder::BoolishValueParser};

use crate::{
    limits::rate::RateLimit,
    selection::Filters,
    webhook::{WebhookError, WebhookUrl},
};

pub const WEBHOOK_ENV: &str = "BITRIX24_WEBHOOK_URL";
pub const WEBHOOK_FILE_ENV: &str = "BITRIX24_WEBHOOK_URL_FILE";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bitrix24-permissions-mcp",
    version,
    about = "MCP stdio server for Bitrix24 access permissions (workgroups, sites, tasks).",
    long_about = "MCP stdio server for Bitrix24 access permissions.\n\n\
        It publishes one tool per Bitrix24 REST permission method and forwards each call to the \
        portal through the inbound webhook in BITRIX24_WEBHOOK_URL (or the file named by \
        BITRIX24_WEBHOOK_URL_FILE). The webhook URL is never accepted as a command-line argument.",
    after_help = "Register it in Claude Code:\n  \
        claude mcp add bitrix24-permissions -e BITRIX24_WEBHOOK_URL=https://<portal>/rest/<user_id>/<secret>/ \
        -- bitrix24-permissions-mcp"
)]
pub struct Args {
    /// File holding the webhook URL (instead of BITRIX24_WEBHOOK_URL).
    #[arg(long, env = WEBHOOK_FILE_ENV, value_name = "PATH")]
    pub webhook_url_file: Option<PathBuf>,

    /// Upper bound, in seconds, for each HTTP request to the portal.
    #[arg(
        long,
        env = "BITRIX24_TIMEOUT_SECS",
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub timeout_secs: u64,

    /// Client-side request-rate limit, `<per second>/<burst>`: 2/50 for most plans, 5/250 for
    /// Enterprise. Other clients may share the portal's bucket; the server adapts to them.
    #[arg(
        long,
        env = "BITRIX24_RATE_LIMIT",
        default_value = "2/50",
        value_name = "RATE/BURST"
    )]
    pub rate_limit: RateLimit,

    /// Largest answer, in bytes of JSON, passed on to the model; a larger one is refused with
    /// advice on a narrower call.
    #[arg(
        long,
        env = "BITRIX24_MAX_RESULT_BYTES",
        default_value_t = 40_000,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1_000..=10_000_000)
    )]
    pub max_result_bytes: u64,

    /// Publish only these groups of tools (comma-separated): access, sites, workgroups, tasks,
    /// batch. Default: all.
    #[arg(
        long,
        env = "BITRIX24_TOOLSETS",
        value_delimiter = ',',
        value_name = "SETS"
    )]
    pub toolsets: Option<Vec<String>>,

    /// Publish these tools (comma-separated), in addition to any --toolsets.
    #[arg(
        long,
        env = "BITRIX24_TOOLS",
        value_delimiter = ',',
        value_name = "TOOLS"
    )]
    pub tools: Option<Vec<String>>,

    /// Never publish these tools (comma-separated); beats --tools and --toolsets.
    #[arg(
        long,
        env = "BITRIX24_EXCLUDE_TOOLS",
        value_delimiter = ',',
        value_name = "TOOLS"
    )]
    pub exclude_tools: Vec<String>,

    /// Publish only read-only tools; write tools are neither listed nor callable.
    /// Beats every other setting.
    #[arg(
        long,
        env = "BITRIX24_READ_ONLY",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no webhook configured: set {WEBHOOK_ENV} to https://<portal>/rest/<user_id>/<secret>/ \
         (Bitrix24: Developer resources → Other → Inbound webhook), or {WEBHOOK_FILE_ENV} to a file holding it"
    )]
    MissingWebhook,
    #[error("set only one of {WEBHOOK_ENV} and {WEBHOOK_FILE_ENV}")]
    TwoWebhooks,
    #[error("cannot read {WEBHOOK_FILE_ENV} file {path}: {reason}")]
    WebhookFile { path: String, reason: String },
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub webhook: WebhookUrl,
    pub timeout: Duration,
    pub rate_limit: RateLimit,
    pub max_result_bytes: usize,
    /// Which tools to publish; checked against the catalog when the server is built.
    pub filters: Filters,
}

impl Config {
    /// Resolves parsed flags plus the webhook variable (passed in so tests need no process env).
    pub fn resolve(args: &Args, webhook_env: Option<String>) -> Result<Self, ConfigError> {
        let webhook_env = webhook_env.filter(|v| !v.trim().is_empty());
        let raw = match (webhook_env, &args.webhook_url_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoWebhooks),
            (Some(url), None) => url,
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|e| ConfigError::WebhookFile {
                    path: path.display().to_string(),
                    reason: e.kind().to_string(),
                })?
            }
            (None, None) => return Err(ConfigError::MissingWebhook),
        };
        Ok(Self {
            webhook: WebhookUrl::parse(&raw)?,
            timeout: Duration::from_secs(args.timeout_secs),
            rate_limit: args.rate_limit,
            max_result_bytes: usize::try_from(args.max_result_bytes).unwrap_or(usize::MAX),
            filters: Filters {
                toolsets: args.toolsets.clone().map(trimmed),
                tools: args.tools.clone().map(trimmed),
                exclude_tools: trimmed(args.exclude_tools.clone()),
                read_only: args.read_only,
            },
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::resolve(&Args::parse(), std::env::var(WEBHOOK_ENV).ok())
    }
}

/// Drops blanks and surrounding spaces, so "sites, tasks" and a trailing comma both work.
fn trimmed(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://example.bitrix24.com/rest/1/abcd1234efgh5678/";

    fn args(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("x").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(&args(&[]), Some(URL.into())).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(!c.filters.read_only);
        let c = Config::resolve(&args(&["--toolsets", "sites, tasks,"]), Some(URL.into())).unwrap();
        assert_eq!(
            c.filters.toolsets,
            Some(vec!["sites".to_owned(), "tasks".to_owned()])
        );
        assert!(args(&["--read-only"]).read_only);
        assert!(args(&["--read-only=yes"]).read_only);
        assert!(!args(&["--read-only=false"]).read_only);
    }

    #[test]
    fn webhook_sources() {
        assert!(matches!(
            Config::resolve(&args(&[]), None),
            Err(ConfigError::MissingWebhook)
        ));
        let dir = std::env::temp_dir().join(format!("b24cfg-{}", std::process::id()));
        std::fs::write(&dir, format!("{URL}\n")).unwrap();
        let from_file = args(&["--webhook-url-file", dir.to_str().unwrap()]);
        assert!(Config::resolve(&from_file, None).is_ok());
        assert!(matches!(
            Config::resolve(&from_file, Some(URL.into())),
            Err(ConfigError::TwoWebhooks)
        ));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            Config::resolve(&from_file, None),
            Err(ConfigError::WebhookFile { .. })
        ));
    }

    #[test]
    fn rate_limit_flag() {
        assert_eq!(args(&[]).rate_limit, RateLimit::default());
        assert_eq!(args(&["--rate-limit", "5/250"]).rate_limit.burst, 250);
        assert!(Args::try_parse_from(["x", "--rate-limit", "fast"]).is_err());
    }

    #[test]
    fn timeout_bounds() {
        assert!(Args::try_parse_from(["x", "--timeout-secs", "0"]).is_err());
        assert_eq!(args(&["--timeout-secs", "5"]).timeout_secs, 5);
    }
}
