//! Configuration: raw flags and environment are parsed once by clap ([`Args`]), then resolved
//! into one validated [`Config`]. The webhook URL is read from the environment or a file only,
//! never from the command line, where `ps` and shell history would show it.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, builder::BoolishValueParser};

use crate::{
    bitrix::{WebhookError, WebhookUrl, limits::RateLimit},
    ledger,
    mcp::HttpLimits,
    pipeline::{ConfirmWrites, Filters},
    sandbox::Size as SandboxSize,
};

pub const WEBHOOK_ENV: &str = "BITRIX24_WEBHOOK_URL";
const WEBHOOK_FILE_ENV: &str = "BITRIX24_WEBHOOK_URL_FILE";
const READ_ONLY_ENV: &str = "BITRIX24_READ_ONLY";

/// Settings read only from the environment, never from flags, where `ps` and shell history
/// would show them; with what each means, for the configuration page.
pub const SECRET_VARIABLES: [(&str, &str); 5] = [
    (
        WEBHOOK_ENV,
        "the inbound webhook, `https://<portal>/rest/<user_id>/<secret>/` (plain `http://` only for \
         loopback hosts). Unset, with no file either: the built-in sandbox portal",
    ),
    (
        crate::mcp::HTTP_TOKEN_ENV,
        "one shared bearer token for `serve --http` with a webhook (16 characters or more): every \
         request carrying it acts as the webhook's user. A team signs in with Bitrix24 OAuth instead",
    ),
    (
        OAUTH_CLIENT_ID_ENV,
        "the client id (`local.…`) of the Bitrix24 local application a team server signs people in with",
    ),
    (OAUTH_SECRET_ENV, "that application's client secret"),
    (
        OAUTH_SECRET_FILE_ENV,
        "a file holding the client secret, instead of the variable",
    ),
];

const OAUTH_CLIENT_ID_ENV: &str = "BITRIX24_OAUTH_CLIENT_ID";
const OAUTH_SECRET_ENV: &str = "BITRIX24_OAUTH_CLIENT_SECRET";
const OAUTH_SECRET_FILE_ENV: &str = "BITRIX24_OAUTH_CLIENT_SECRET_FILE";

/// The most of the URL file read: a webhook URL is a few hundred bytes, and a file like
/// `/dev/zero` must not be read without end.
const WEBHOOK_FILE_MAX: u64 = 4096;

const EXAMPLES: &str = "\
Examples:
  Try it on the built-in sandbox portal (no Bitrix24 needed):
    bitrix24-permissions-mcp --sandbox call landing_site_get_rights '{\"id\": 645}'
    bitrix24-permissions-mcp --sandbox tools
  Check a real webhook: who it acts as, which scopes it lacks:
    BITRIX24_WEBHOOK_URL_FILE=~/.bitrix24-webhook bitrix24-permissions-mcp doctor
  Call one tool from the shell (exit 0 success, 1 tool error, 2 usage error):
    bitrix24-permissions-mcp call tasks_task_get_access '{\"taskId\": 8017, \"users\": [503]}'
  List the tools as full MCP definitions:
    bitrix24-permissions-mcp --read-only tools --json
  A team server over Streamable HTTP (endpoint /mcp), each person signed in with Bitrix24
  (try it on the sandbox, then open http://127.0.0.1:8808/; a real portal: docs/team.md):
    bitrix24-permissions-mcp --sandbox serve --http 127.0.0.1:8808

Register it with your assistant (it then runs with no subcommand, serving MCP on stdio); keep
the webhook URL in a file only you can read, e.g. ~/.bitrix24-webhook:
  Claude Code (-s user: in every project, not only this directory):
    claude mcp add -s user bitrix24-permissions -e BITRIX24_WEBHOOK_URL_FILE=\"$HOME/.bitrix24-webhook\" -- bitrix24-permissions-mcp
  Cursor (~/.cursor/mcp.json or .cursor/mcp.json):
    {\"mcpServers\": {\"bitrix24-permissions\": {\"command\": \"bitrix24-permissions-mcp\",
      \"env\": {\"BITRIX24_WEBHOOK_URL_FILE\": \"/home/you/.bitrix24-webhook\"}}}}
  Codex (~/.codex/config.toml):
    [mcp_servers.bitrix24-permissions]
    command = \"bitrix24-permissions-mcp\"
    env = { BITRIX24_WEBHOOK_URL_FILE = \"/home/you/.bitrix24-webhook\" }
  If the assistant shows the server as failed, run `bitrix24-permissions-mcp doctor` with the
  same environment and arguments: it says what is wrong.

Without a webhook the server runs on the sandbox portal, and says so in every answer.";

/// The command line: options, then an optional subcommand (none means `serve`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "bitrix24-permissions-mcp",
    version,
    about = "MCP server for Bitrix24 access permissions (workgroups, sites, tasks).",
    long_about = "MCP server for Bitrix24 access permissions.\n\n\
        It publishes one tool per Bitrix24 REST permission method and forwards each call to the \
        portal through the inbound webhook in BITRIX24_WEBHOOK_URL (or the file named by \
        BITRIX24_WEBHOOK_URL_FILE). The webhook URL is never accepted as a command-line argument.",
    after_long_help = EXAMPLES,
    after_help = "Run with --help for examples and how to register the server in Claude Code, Cursor and Codex."
)]
pub struct Cli {
    #[command(flatten)]
    pub args: Args,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout (the default), or over Streamable HTTP with --http.
    Serve {
        /// Serve Streamable HTTP at this address (endpoint /mcp) instead of stdio, e.g.
        /// 127.0.0.1:8808. A non-loopback address needs BITRIX24_HTTP_TOKEN.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
    },
    /// List the published tools (every filter applies).
    Tools {
        /// Print the full MCP tool definitions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one tool call through the same pipeline as MCP and print its JSON result.
    Call {
        /// Tool name, e.g. landing_site_get_rights.
        tool: String,
        /// Arguments as a JSON object, e.g. '{"id": 645}'. Default: {}.
        arguments: Option<String>,
    },
    /// Check the configuration and the webhook: who it acts as, its scopes, which tools work.
    Doctor,
    /// Read a change waiting for your approval and approve or decline it at this terminal;
    /// with no id, list the changes waiting.
    Approve {
        /// The approval's id, from the assistant's message or the list.
        id: Option<String>,
    },
    /// Decline a change waiting for approval: nothing is sent.
    Decline {
        /// The approval's id.
        id: String,
    },
    /// Write who holds which rights on objects as an access matrix (people × objects), each
    /// right with its source: Markdown (default), CSV or a self-contained HTML page.
    Report(super::report::ReportArgs),
    /// List the permission changes made through this server (its ledger), newest first.
    History {
        /// One JSON object per line (at, tool, method, arguments, outcome, ...).
        #[arg(long)]
        json: bool,
        /// Only changes to this object (a site or role id).
        #[arg(long)]
        id: Option<String>,
        /// Only changes made with this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only changes at or after this UTC date or time, e.g. 2026-11-23.
        #[arg(long)]
        since: Option<String>,
        /// At most this many changes.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Every portal in the ledger file, not only the configured one.
        #[arg(long)]
        all_portals: bool,
    },
}

/// Options shared by every subcommand; each may also come after the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// File holding the webhook URL (instead of BITRIX24_WEBHOOK_URL).
    #[arg(long, global = true, env = WEBHOOK_FILE_ENV, value_name = "PATH")]
    pub webhook_url_file: Option<PathBuf>,

    /// Upper bound, in seconds, for each HTTP request to the portal.
    #[arg(
        long,
        global = true,
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
        global = true,
        env = "BITRIX24_RATE_LIMIT",
        default_value = "2/50",
        value_name = "RATE/BURST"
    )]
    pub rate_limit: RateLimit,

    /// Largest answer, in bytes of JSON, passed on to the model; a larger one is refused with
    /// advice on a narrower call.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_MAX_RESULT_BYTES",
        default_value_t = 40_000,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1_000..=10_000_000)
    )]
    pub max_result_bytes: u64,

    /// Where the rate-limit state lives. Default: a file per portal in the user's runtime
    /// directory, shared by every server process on this machine; `redis://host:port/db`
    /// Redis, shared across hosts; `file:<dir>` another directory; `memory` this process only.
    #[arg(long, global = true, env = "BITRIX24_LIMITER_URL", value_name = "URL")]
    pub limiter_url: Option<String>,

    /// Publish only these groups of tools (comma-separated, e.g. people,sites; `tools` shows
    /// each tool's group); `default` the common tools, `all` every tool. Default: the common
    /// tools only, to keep the model's context small (enable_toolset adds groups later).
    #[arg(
        long,
        global = true,
        env = "BITRIX24_TOOLSETS",
        value_delimiter = ',',
        value_name = "SETS"
    )]
    pub toolsets: Option<Vec<String>>,

    /// Publish these tools (comma-separated), in addition to any --toolsets.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_TOOLS",
        value_delimiter = ',',
        value_name = "TOOLS"
    )]
    pub tools: Option<Vec<String>>,

    /// Never publish these tools (comma-separated); beats --tools and --toolsets.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_EXCLUDE_TOOLS",
        value_delimiter = ',',
        value_name = "TOOLS"
    )]
    pub exclude_tools: Vec<String>,

    /// Use the built-in sandbox portal (invented data, no network), even if a webhook is set.
    #[arg(long, global = true, env = "BITRIX24_SANDBOX", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true",
          value_name = "BOOL")]
    pub sandbox: bool,

    /// With serve --http: the Bitrix24 portal a team signs in to, e.g. https://acme.bitrix24.com
    /// (with BITRIX24_OAUTH_CLIENT_ID and its secret; see docs/team.md).
    #[arg(long, global = true, env = "BITRIX24_PORTAL_URL", value_name = "URL")]
    pub portal_url: Option<String>,

    /// The Bitrix24 OAuth server that trades sign-in codes for tokens.
    #[arg(long, global = true, env = "BITRIX24_OAUTH_SERVER", value_name = "URL",
          default_value = crate::bitrix::oauth::DEFAULT_OAUTH_SERVER)]
    pub oauth_server: String,

    /// With serve --http: the address people reach this server at, when a reverse proxy in
    /// front of it serves TLS, e.g. https://mcp.example.com. Default: http://<listening address>.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_HTTP_PUBLIC_URL",
        value_name = "URL"
    )]
    pub public_url: Option<String>,

    /// With serve --http on a loopback address: requests without a token may read (never
    /// write), as the webhook's user. For local tools that cannot send a token.
    #[arg(long, global = true, env = "BITRIX24_HTTP_ALLOW_ANONYMOUS_READS",
          value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL")]
    pub http_allow_anonymous_reads: bool,

    /// How big the sandbox company is: small (the docs' examples), or large (10,000 people,
    /// 1,000 departments, 300 sites, 5,000 tasks; for trying `report` and measuring).
    #[arg(long, global = true, env = "BITRIX24_SANDBOX_SIZE", default_value_t = SandboxSize::Small,
          value_name = "small|large")]
    pub sandbox_size: SandboxSize,

    /// Write logs to this file (appending) instead of stderr, for clients that hide stderr.
    #[arg(long, global = true, env = "BITRIX24_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Log level or filter (error, warn, info, debug, trace, or a RUST_LOG-style filter).
    /// Default: RUST_LOG, else info for serve --http and warn otherwise (assistants file every
    /// stderr line of a stdio server under errors).
    #[arg(long, global = true, env = "BITRIX24_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// With serve --http: the most live MCP sessions; beyond it a new session gets 503 with
    /// Retry-After, and the sessions already open keep working.
    #[arg(long, global = true, env = "BITRIX24_HTTP_MAX_SESSIONS", default_value_t = 64,
          value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub http_max_sessions: u64,

    /// With serve --http: the most live MCP sessions one caller may hold (with a shared token,
    /// every holder of it is one caller).
    #[arg(long, global = true, env = "BITRIX24_HTTP_MAX_SESSIONS_PER_CALLER", default_value_t = 16,
          value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub http_max_sessions_per_caller: u64,

    /// With serve --http: seconds after which an unused session is closed (pings are not use).
    #[arg(long, global = true, env = "BITRIX24_HTTP_IDLE_SECS", default_value_t = 300,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http_idle_secs: u64,

    /// With serve --http: the most open connections; more wait to be accepted.
    #[arg(long, global = true, env = "BITRIX24_HTTP_MAX_CONNECTIONS", default_value_t = 256,
          value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub http_max_connections: u64,

    /// With serve --http: seconds a connection has to send a request's headers; a slower one
    /// is closed.
    #[arg(long, global = true, env = "BITRIX24_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub http_header_timeout_secs: u64,

    /// Publish only read-only tools; write tools are neither listed nor callable.
    /// Beats every other setting.
    #[arg(
        long,
        global = true,
        env = READ_ONLY_ENV,
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub read_only: bool,

    /// How a person approves each write: auto (a question in the client when it can ask its
    /// person over stdio, else an approval page or `approve` in a terminal), always (only the
    /// approval page or a terminal count), never (writes go out unasked).
    #[arg(
        long,
        global = true,
        env = "BITRIX24_CONFIRM_WRITES",
        default_value = "auto",
        value_name = "auto|always|never"
    )]
    pub confirm_writes: ConfirmWrites,

    /// Seconds a person has to answer a confirmation in the client; unanswered, nothing is
    /// written. (An approval link stays good for 10 minutes.)
    #[arg(long, global = true, env = "BITRIX24_CONFIRM_TIMEOUT_SECS", default_value_t = 300,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(10..=3_600))]
    pub confirm_timeout_secs: u64,

    /// The ledger of permission changes (an SQLite file several servers may share), or `off`.
    /// Default: ledger.sqlite3 in the user's state directory.
    #[arg(long, global = true, env = ledger::LEDGER_ENV, value_name = "PATH|off")]
    pub ledger: Option<String>,
    /// Publish enable_toolset, the tool that lets the model publish more toolsets at run
    /// time, even though --toolsets or --tools name the tools. Without this flag they are a
    /// ceiling the model cannot widen; with the default set, enable_toolset is published.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_DYNAMIC_TOOLSETS",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub dynamic_toolsets: bool,
    /// Do not publish enable_toolset, even with the default set (for clients that mishandle
    /// tools/list_changed; use --toolsets instead). Beats --dynamic-toolsets.
    #[arg(
        long,
        global = true,
        env = "BITRIX24_NO_DYNAMIC_TOOLSETS",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub no_dynamic_toolsets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("set only one of {WEBHOOK_ENV} and {WEBHOOK_FILE_ENV}")]
    TwoWebhooks,
    #[error("cannot read {WEBHOOK_FILE_ENV} file {path}: {reason}")]
    WebhookFile { path: String, reason: String },
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The problem is part of the message, not a source: the message is complete alone.
    #[error("{WEBHOOK_FILE_ENV} file {path} does not hold a Bitrix24 webhook URL: {problem}")]
    WebhookInFile { path: String, problem: WebhookError },
    #[error(
        "no per-user state directory is known on this system; set BITRIX24_LEDGER to a file path, or to off"
    )]
    NoLedgerPath,
    #[error(
        "BITRIX24_LIMITER_URL {0:?} is not understood: use redis://host:port/db, file:<directory> or memory, or leave it unset"
    )]
    LimiterUrl(String),
    #[error("{0}")]
    OAuth(String),
}

/// A Bitrix24 local application a team server signs people in with.
#[derive(Clone)]
pub struct OAuthSettings {
    pub portal: url::Url,
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
    pub server: url::Url,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("portal", &self.portal.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The local application, when one is configured: the portal's address and the client id
/// and secret, all three or none.
fn oauth_settings(args: &Args) -> Result<Option<OAuthSettings>, ConfigError> {
    let env = |name| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let client_id = env(OAUTH_CLIENT_ID_ENV);
    let secret = match (env(OAUTH_SECRET_ENV), env(OAUTH_SECRET_FILE_ENV)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::OAuth(format!(
                "set only one of {OAUTH_SECRET_ENV} and {OAUTH_SECRET_FILE_ENV}"
            )));
        }
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| {
                    ConfigError::OAuth(format!(
                        "cannot read {OAUTH_SECRET_FILE_ENV} file {path}: {e}"
                    ))
                })?,
        ),
        (None, None) => None,
    };
    let portal = args
        .portal_url
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let (client_id, secret, portal) = match (client_id, secret, portal) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(secret), Some(portal)) if !secret.is_empty() => (id, secret, portal),
        _ => {
            return Err(ConfigError::OAuth(format!(
                "team sign-in needs all three of --portal-url (BITRIX24_PORTAL_URL), {OAUTH_CLIENT_ID_ENV} and \
                 {OAUTH_SECRET_ENV} (or {OAUTH_SECRET_FILE_ENV}); see docs/team.md"
            )));
        }
    };
    let url = |what: &str, raw: &str| {
        let parsed = url::Url::parse(raw)
            .map_err(|_| ConfigError::OAuth(format!("{what} {raw:?} is not a URL")))?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(ConfigError::OAuth(format!("{what} must use https")));
        }
        Ok(parsed)
    };
    Ok(Some(OAuthSettings {
        portal: url("--portal-url", portal)?,
        client_id,
        client_secret: secrecy::SecretString::from(secret),
        server: url("--oauth-server", &args.oauth_server)?,
    }))
}

/// Where the rate-limit state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterStore {
    /// A file per portal in the user's runtime directory: shared by this machine's processes.
    Machine,
    /// A file per portal in this directory.
    Dir(PathBuf),
    /// This process only.
    Memory,
    /// Redis at this URL: shared by processes on several hosts.
    Redis(String),
}

impl LimiterStore {
    fn parse(url: Option<&str>) -> Result<Self, ConfigError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::Machine);
        };
        if url == "memory" {
            return Ok(Self::Memory);
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(Self::Redis(url.to_owned()));
        }
        match url.strip_prefix("file:") {
            Some(dir) if !dir.is_empty() => {
                Ok(Self::Dir(PathBuf::from(dir.trim_start_matches("//"))))
            }
            _ => Err(ConfigError::LimiterUrl(url.to_owned())),
        }
    }
}

/// Where calls go.
#[derive(Debug, Clone)]
pub enum PortalChoice {
    Webhook(WebhookUrl),
    /// The built-in sandbox; `asked` is false when it was chosen because no webhook is set.
    Sandbox {
        asked: bool,
        size: SandboxSize,
    },
    /// No webhook, but a local application: a team server where each person signs in.
    Team,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub portal: PortalChoice,
    pub timeout: Duration,
    pub rate_limit: RateLimit,
    pub max_result_bytes: usize,
    pub limiter: LimiterStore,
    /// Which tools to publish; checked against the catalog when the server is built.
    pub filters: Filters,
    pub http: HttpLimits,
    pub confirm_writes: ConfirmWrites,
    pub confirm_timeout: Duration,
    /// The ledger's file; `None` when it is off, or when `ledger_problem` says why none can be.
    pub ledger: Option<PathBuf>,
    /// Why no ledger file is known although one was asked for. Only a read-only server
    /// starts so (it sends no write to record); anything else refuses to start.
    pub ledger_problem: Option<String>,
    /// The local application a team server signs people in with, if one is configured.
    pub oauth: Option<OAuthSettings>,
    pub public_url: Option<url::Url>,
    pub http_allow_anonymous_reads: bool,
}

impl Config {
    /// Resolves parsed flags plus the webhook variable (passed in so tests need no process env).
    pub fn resolve(args: &Args, webhook_env: Option<String>) -> Result<Self, ConfigError> {
        let webhook_env = webhook_env.filter(|v| !v.trim().is_empty());
        let portal = match (webhook_env, &args.webhook_url_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoWebhooks),
            _ if args.sandbox => PortalChoice::Sandbox {
                asked: true,
                size: args.sandbox_size,
            },
            (Some(url), None) => PortalChoice::Webhook(WebhookUrl::parse(clean(&url))?),
            // A file named but empty is a mistake, not a wish for invented data: an assistant
            // would show the server as connected and answer from the sandbox.
            (None, Some(path)) => PortalChoice::Webhook(webhook_from_file(path)?),
            (None, None) => PortalChoice::Sandbox {
                asked: false,
                size: args.sandbox_size,
            },
        };
        let (ledger, ledger_problem) = match args.ledger.as_deref().map(str::trim) {
            Some(off) if off.eq_ignore_ascii_case("off") => (None, None),
            Some(path) if !path.is_empty() => (Some(PathBuf::from(path)), None),
            _ => match ledger::default_path() {
                Some(path) => (Some(path), None),
                None => (None, Some(ConfigError::NoLedgerPath.to_string())),
            },
        };
        let oauth = oauth_settings(args)?;
        let portal = match portal {
            PortalChoice::Sandbox { asked: false, .. } if oauth.is_some() => PortalChoice::Team,
            other => other,
        };
        Ok(Self {
            portal,
            confirm_writes: args.confirm_writes,
            confirm_timeout: Duration::from_secs(args.confirm_timeout_secs),
            ledger,
            ledger_problem,
            oauth,
            public_url: match args
                .public_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
            {
                Some(raw) => Some(url::Url::parse(raw).map_err(|_| {
                    ConfigError::OAuth(format!("--public-url {raw:?} is not a URL"))
                })?),
                None => None,
            },
            http_allow_anonymous_reads: args.http_allow_anonymous_reads,
            timeout: Duration::from_secs(args.timeout_secs),
            rate_limit: args.rate_limit,
            max_result_bytes: usize::try_from(args.max_result_bytes).unwrap_or(usize::MAX),
            http: HttpLimits {
                max_sessions: usize::try_from(args.http_max_sessions).unwrap_or(usize::MAX),
                max_sessions_per_caller: usize::try_from(args.http_max_sessions_per_caller)
                    .unwrap_or(usize::MAX),
                idle: Duration::from_secs(args.http_idle_secs),
                max_connections: usize::try_from(args.http_max_connections).unwrap_or(usize::MAX),
                header_timeout: Duration::from_secs(args.http_header_timeout_secs),
                // A call under way at shutdown gets its own deadline, plus a moment to answer.
                drain: Duration::from_secs(args.timeout_secs + 5),
            },
            limiter: LimiterStore::parse(args.limiter_url.as_deref())?,
            filters: Filters {
                toolsets: args.toolsets.clone().map(trimmed),
                tools: args.tools.clone().map(trimmed),
                exclude_tools: trimmed(args.exclude_tools.clone()),
                read_only: args.read_only,
                dynamic: !args.no_dynamic_toolsets && (args.dynamic_toolsets || default_set(args)),
            },
        })
    }

    pub fn load(args: &Args) -> Result<Self, ConfigError> {
        let mut config = Self::resolve(args, std::env::var(WEBHOOK_ENV).ok())?;
        // clap lets a flag hide its variable; read-only must win wherever it is asked for.
        config.filters.read_only |= std::env::var(READ_ONLY_ENV).is_ok_and(|v| says_true(&v));
        if config.ledger_problem.is_some() && !config.filters.read_only {
            return Err(ConfigError::NoLedgerPath);
        }
        Ok(config)
    }
}

/// Whether a variable's value means true, as clap's boolish parser reads it.
fn says_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "t" | "true" | "on" | "1"
    )
}

/// Editors and PowerShell put a byte-order mark in front; it is never part of a URL.
fn clean(raw: &str) -> &str {
    raw.trim().trim_start_matches('\u{feff}').trim()
}

fn webhook_from_file(path: &std::path::Path) -> Result<WebhookUrl, ConfigError> {
    let text = read_webhook_file(path)?;
    let raw = clean(&text);
    if raw.is_empty() {
        return Err(ConfigError::WebhookFile {
            path: path.display().to_string(),
            reason: "it is empty; put the inbound webhook's URL in it \
                     (https://<portal>/rest/<user_id>/<secret>/), or unset the variable to use the sandbox"
                .to_owned(),
        });
    }
    WebhookUrl::parse(raw).map_err(|problem| ConfigError::WebhookInFile {
        path: path.display().to_string(),
        problem,
    })
}

fn read_webhook_file(path: &std::path::Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let failed = |reason: String| ConfigError::WebhookFile {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.kind().to_string()))?;
    let mut bytes = Vec::new();
    file.take(WEBHOOK_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.kind().to_string()))?;
    if bytes.len() as u64 > WEBHOOK_FILE_MAX {
        return Err(failed(format!(
            "it is over {WEBHOOK_FILE_MAX} bytes; it should hold only the webhook URL"
        )));
    }
    String::from_utf8(bytes).map_err(|_| failed("it is not UTF-8 text".to_owned()))
}

/// Whether the published tools are the catalog's default set: nothing named, or only
/// `default`. Only then may the model widen them without being told it may.
fn default_set(args: &Args) -> bool {
    let only_default = |sets: &Vec<String>| sets.iter().all(|s| s.trim() == "default");
    args.tools.is_none() && args.toolsets.as_ref().is_none_or(only_default)
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
        Cli::try_parse_from(std::iter::once("x").chain(flags.iter().copied()))
            .unwrap()
            .args
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
            Config::resolve(&args(&[]), None).unwrap().portal,
            PortalChoice::Sandbox { asked: false, .. }
        ));
        assert!(matches!(
            Config::resolve(&args(&["--sandbox"]), Some(URL.into()))
                .unwrap()
                .portal,
            PortalChoice::Sandbox { asked: true, .. }
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
    fn an_empty_or_wrong_url_file_is_an_error_naming_it() {
        for (n, content) in ["", "  \n\t ", "not a url", "https://example.com/"]
            .into_iter()
            .enumerate()
        {
            let path = std::env::temp_dir().join(format!("b24cfg-bad-{}-{n}", std::process::id()));
            std::fs::write(&path, content).unwrap();
            let from_file = args(&["--webhook-url-file", path.to_str().unwrap()]);
            let err = Config::resolve(&from_file, None).unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert!(err.contains(path.to_str().unwrap()), "{content:?}: {err}");
        }
    }

    #[test]
    fn the_url_file_is_read_with_care() {
        let path = std::env::temp_dir().join(format!("b24cfg-bom-{}", std::process::id()));
        std::fs::write(&path, format!("\u{feff}  {URL} \r\n")).unwrap();
        let from_file = args(&["--webhook-url-file", path.to_str().unwrap()]);
        assert!(matches!(
            Config::resolve(&from_file, None).unwrap().portal,
            PortalChoice::Webhook(_)
        ));
        std::fs::remove_file(&path).unwrap();
        let zero = args(&["--webhook-url-file", "/dev/zero"]);
        if std::path::Path::new("/dev/zero").exists() {
            let err = Config::resolve(&zero, None).unwrap_err().to_string();
            assert!(err.contains("over 4096 bytes"), "{err}");
        }
    }

    #[test]
    fn limiter_store() {
        assert_eq!(LimiterStore::parse(None).unwrap(), LimiterStore::Machine);
        assert_eq!(
            LimiterStore::parse(Some("memory")).unwrap(),
            LimiterStore::Memory
        );
        assert_eq!(
            LimiterStore::parse(Some("file:///tmp/x")).unwrap(),
            LimiterStore::Dir("/tmp/x".into())
        );
        assert_eq!(
            LimiterStore::parse(Some("redis://127.0.0.1:6379/2")).unwrap(),
            LimiterStore::Redis("redis://127.0.0.1:6379/2".into())
        );
        assert!(LimiterStore::parse(Some("ftp://x")).is_err());
    }

    #[test]
    fn rate_limit_flag() {
        assert_eq!(args(&[]).rate_limit, RateLimit::default());
        assert_eq!(args(&["--rate-limit", "5/250"]).rate_limit.burst, 250);
        for bad in ["fast", "1e-20/1", "NaN/1", "inf/1", "0/1", "2/0", "1e5/1"] {
            assert!(
                Cli::try_parse_from(["x", "--rate-limit", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn timeout_bounds() {
        assert!(Cli::try_parse_from(["x", "--timeout-secs", "0"]).is_err());
        // Options may follow the subcommand.
        let cli =
            Cli::try_parse_from(["x", "--sandbox", "tools", "--json", "--read-only"]).unwrap();
        assert!(cli.args.sandbox);
        assert_eq!(cli.command, Some(Command::Tools { json: true }));
        assert!(cli.args.read_only);
        assert_eq!(args(&["--timeout-secs", "5"]).timeout_secs, 5);
    }
}
