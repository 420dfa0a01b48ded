//! The app: flags and configuration, logging, and the commands. It builds the corridor
//! config → catalog → pipeline → client once, then hands it to the command that was asked for.

mod approvals;
mod commands;
mod config;
mod escape;
mod exposure;
mod logging;
mod reference;
mod report;
mod team_server;
mod terminal;

pub use reference::configuration_markdown;

use std::{io::Write, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::Parser;
use rmcp::ServiceExt;

use self::config::{Cli, Command, Config, LimiterStore, PortalChoice};
use crate::{
    bitrix::{
        Credentials, Identity, PortalClient,
        limits::{self, FileStore, Gateway, Limiter, RateLimiter, RedisStore, SharedLimiter},
        oauth::PortalOnly,
    },
    catalog::Catalog,
    ledger::{Ledger, Unusable},
    mcp::{self, PermissionsServer},
    pipeline::{self, MemoryApprovals, Pipeline, Selection, ServerKey, WriteLog},
    sandbox,
};

/// The file, beside the ledger, holding the key that confirmations are sealed with.
const KEY_FILE: &str = "confirmation.key";

/// Runs the program as the command line asks, and says how it ended.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.clone().unwrap_or(Command::Serve { http: None });
    let (config, pipeline, team) = match prepare(&cli, &command).await {
        Ok(ready) => ready,
        Err(err) => {
            eprintln!("bitrix24-permissions-mcp: {err:#}");
            return ExitCode::from(commands::USAGE);
        }
    };
    let result = execute(command, &config, pipeline, team).await;
    let _ = std::io::stdout().flush();
    result.unwrap_or_else(|err: anyhow::Error| {
        // `tools | head -1`: the reader has what it wanted, so a closed pipe is a normal end.
        if err.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            return ExitCode::SUCCESS;
        }
        tracing::error!("{err:#}");
        ExitCode::FAILURE
    })
}

/// The command asked for, on the corridor `prepare` built.
async fn execute(
    command: Command,
    config: &Config,
    pipeline: Arc<Pipeline>,
    team: team_server::Parts,
) -> anyhow::Result<ExitCode> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match command {
        Command::Serve { http: None } => serve(config, pipeline).await.map(|()| ExitCode::SUCCESS),
        Command::Serve { http: Some(addr) } => serve_team(addr, config, pipeline, team).await,
        Command::Tools { json } => {
            commands::tools(&pipeline, json, &mut out.lock()).map_err(Into::into)
        }
        Command::Call { tool, arguments } => {
            commands::call(&pipeline, &tool, arguments.as_deref(), &mut out, &mut err)
                .await
                .map_err(Into::into)
        }
        Command::Report(args) => report::run(&pipeline, &args, &mut out, &mut err)
            .await
            .map_err(Into::into),
        Command::Doctor => commands::doctor(config, &pipeline, &mut out)
            .await
            .map_err(Into::into),
        Command::Approve { id: Some(id) } => approvals::approve(&pipeline, &id, &mut out)
            .await
            .map_err(Into::into),
        Command::Approve { id: None } => {
            let portal = (!no_portal_in_mind(config)).then(|| pipeline.identity().host);
            approvals::list(&pipeline, portal.as_deref(), &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Decline { id } => approvals::decline(&pipeline, &id, &mut out)
            .await
            .map_err(Into::into),
        Command::History {
            json,
            id,
            tool,
            since,
            limit,
            all_portals,
        } => {
            let query = pipeline::HistoryQuery {
                id,
                tool,
                since,
                limit,
                every_portal: all_portals || no_portal_in_mind(config),
            };
            commands::history(&pipeline, &query, json, &mut out, &mut err)
                .await
                .map_err(Into::into)
        }
    }
}

/// With no webhook configured, the person asking has no portal in mind: a shell without
/// BITRIX24_WEBHOOK_URL must not hide the changes made on theirs.
fn no_portal_in_mind(config: &Config) -> bool {
    matches!(config.portal, PortalChoice::Sandbox { asked: false, .. })
}

/// The team server over Streamable HTTP. A setup it refuses to serve is a usage error: the
/// person fixes the flags or the environment and runs it again.
async fn serve_team(
    addr: std::net::SocketAddr,
    config: &Config,
    pipeline: Arc<Pipeline>,
    team: team_server::Parts,
) -> anyhow::Result<ExitCode> {
    match team_server::serve_http(addr, config, pipeline, team).await {
        Ok(code) => Ok(code),
        Err(team_server::Refused(message)) => {
            eprintln!("bitrix24-permissions-mcp: {message}");
            Ok(ExitCode::from(commands::USAGE))
        }
    }
}

/// Everything that can be wrong with the configuration is found here, before anything runs.
async fn prepare(
    cli: &Cli,
    command: &Command,
) -> anyhow::Result<(Config, Arc<Pipeline>, team_server::Parts)> {
    let config = Config::load(&cli.args)?;
    let catalog = Arc::new(Catalog::embedded()?);
    let selection = Selection::resolve(&catalog, &config.filters)?;
    let mut sandbox_app = None;
    let (credentials, sandboxed): (Arc<dyn Credentials>, bool) = match &config.portal {
        PortalChoice::Webhook(w) => (Arc::new(w.clone()), false),
        PortalChoice::Team => {
            let Some(oauth) = &config.oauth else {
                unreachable!("Config chooses Team only with a local application");
            };
            if !matches!(command, Command::Serve { http: Some(_) }) {
                anyhow::bail!(
                    "no webhook is configured (BITRIX24_WEBHOOK_URL): only `serve --http` runs without one, signing each person in through the local application"
                );
            }
            (Arc::new(PortalOnly::new(&oauth.portal)), false)
        }
        PortalChoice::Sandbox { size, .. } => {
            let started = sandbox::start(catalog.clone(), *size, sandbox_token_life())
                .await
                .context("cannot start the sandbox portal")?;
            sandbox_app = Some(started.app);
            (Arc::new(started.credentials), true)
        }
    };
    // Clients such as Claude Code file every stderr line of a stdio server under errors, so
    // stdio says only what needs attention; the HTTP server is run by people who read logs.
    let default_level = if matches!(command, Command::Serve { http: Some(_) }) {
        "info,rmcp=warn"
    } else {
        "warn"
    };
    logging::init(
        cli.args.log_level.as_deref(),
        default_level,
        cli.args.log_file.as_deref(),
    )?;
    if let PortalChoice::Sandbox { asked: false, .. } = config.portal {
        tracing::warn!(
            "no webhook configured (BITRIX24_WEBHOOK_URL): answering from the built-in sandbox portal"
        );
    }
    let identity = credentials.identity();
    let portal = PortalClient::new(credentials, config.timeout);
    let limiter = limiter(&config, &*portal.credentials(), sandboxed)?;
    let gateway = Gateway::new(portal, limiter, config.timeout);
    let mut pipeline = Pipeline::new(catalog, gateway, selection, config.max_result_bytes)
        .with_hook(Arc::new(WriteLog))
        .with_confirm_writes(config.confirm_writes)
        .with_confirm_timeout(config.confirm_timeout);
    let ledger;
    (pipeline, ledger) = with_ledger(pipeline, &config, command, identity)?;
    let team = team_server::Parts::new(&config, command, sandbox_app, ledger)?;
    // A server that stays up serves the approval page; a command that exits at once points
    // to `approve` instead.
    if let Some(desk) = team.desk() {
        pipeline = pipeline.with_desk(desk);
    } else if matches!(command, Command::Serve { .. }) {
        let decider = format!("{} in a browser on this machine", mcp::local_user());
        let desk = mcp::LocalDesk::new(
            pipeline.approvals().clone(),
            pipeline.key().clone(),
            decider,
        );
        pipeline = pipeline.with_desk(Arc::new(desk));
    }
    if sandboxed {
        pipeline = pipeline.with_sandbox_notice(sandbox::NOTICE);
    }
    Ok((config, Arc::new(pipeline), team))
}

/// Adds the ledger the configuration asks for. A read-only server whose ledger cannot be used
/// starts without it, and its history says why.
fn with_ledger(
    pipeline: Pipeline,
    config: &Config,
    command: &Command,
    identity: Identity,
) -> anyhow::Result<(Pipeline, Option<Ledger>)> {
    let in_memory = |pipeline: Pipeline| {
        let key = Arc::new(ServerKey::ephemeral());
        pipeline.with_approvals(Arc::new(MemoryApprovals::default()), key)
    };
    if let Some(problem) = &config.ledger_problem {
        // Only a read-only configuration gets here (see `Config::load`).
        tracing::warn!(%problem, "read-only: serving without the ledger; its history is unavailable");
        return Ok((
            in_memory(pipeline).with_journal(Arc::new(Unusable::new(problem))),
            None,
        ));
    }
    let Some(path) = &config.ledger else {
        return Ok((in_memory(pipeline), None));
    };
    // A server opens its file on the first write (most sessions only read); the commands a
    // person runs open it now, so `doctor` and `history` report a bad file at once.
    let ledger = if matches!(command, Command::Serve { .. }) {
        Ledger::deferred(path, identity)
    } else {
        Ledger::open(path, identity)
    };
    let ledger = match ledger {
        Ok(ledger) => ledger,
        // A read-only server sends no write to record: it starts, and says why there is no
        // history.
        Err(err) if config.filters.read_only => {
            tracing::warn!(%err, "read-only: serving without the ledger; its history is unavailable");
            return Ok((
                in_memory(pipeline).with_journal(Arc::new(Unusable::new(err))),
                None,
            ));
        }
        Err(err) => {
            return Err(err).context(
                "every write is recorded before it is sent; set BITRIX24_LEDGER to a writable file, or to off",
            );
        }
    };
    tracing::debug!(path = %ledger.path().display(), "ledger open");
    // Beside the ledger, so every process sharing it opens the states another sealed.
    let key_path = path.with_file_name(KEY_FILE);
    let key = ServerKey::load_or_create(&key_path)
        .with_context(|| format!("cannot use the confirmation key {}", key_path.display()))?;
    let kept = ledger.clone();
    let ledger = Arc::new(ledger);
    Ok((
        pipeline
            .with_approvals(ledger.clone(), Arc::new(key))
            .with_journal(ledger),
        Some(kept),
    ))
}

/// The rate limiter the configuration asks for. The machine-wide store falls back to this
/// process alone, with a warning, when its directory is unusable: pacing must never stop
/// the server.
/// Redis, asked for by name, must answer at start-up: a server that silently paced alone
/// would defeat the point of configuring it.
fn limiter(
    config: &Config,
    credentials: &dyn Credentials,
    sandboxed: bool,
) -> anyhow::Result<Arc<dyn Limiter>> {
    // No call waits longer than the gateway's deadline for a call: twice the request timeout.
    let longest_wait = config.timeout * 2;
    let dir = match &config.limiter {
        // The sandbox is this process's own portal: nothing to share.
        _ if sandboxed => None,
        LimiterStore::Redis(url) => {
            let shared = RedisStore::connect(url, &credentials.identity())
                .and_then(|store| SharedLimiter::new(config.rate_limit, longest_wait, Box::new(store)))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "BITRIX24_LIMITER_URL: cannot use Redis ({e}). Start Redis, correct the URL, or unset BITRIX24_LIMITER_URL to share the limit only on this machine"
                    )
                })?;
            tracing::debug!(store = %shared.describe(), "rate-limit state shared through Redis");
            return Ok(Arc::new(shared));
        }
        LimiterStore::Memory => None,
        LimiterStore::Dir(dir) => Some(dir.clone()),
        LimiterStore::Machine => {
            let dir = limits::default_dir();
            if dir.is_none() {
                tracing::warn!(
                    "no runtime, state or cache directory: pacing this process alone, not shared with other server processes"
                );
            }
            dir
        }
    };
    if let Some(dir) = dir {
        let shared = FileStore::new(&dir, &credentials.identity())
            .and_then(|store| SharedLimiter::new(config.rate_limit, longest_wait, Box::new(store)));
        match shared {
            Ok(shared) => {
                tracing::debug!(path = %shared.describe(), "rate-limit state shared through a file");
                return Ok(Arc::new(shared));
            }
            Err(error) => tracing::warn!(
                dir = %dir.display(),
                %error,
                "cannot keep the rate-limit state there: pacing this process alone, not shared with other server processes"
            ),
        }
    }
    Ok(Arc::new(RateLimiter::new(config.rate_limit)))
}

async fn serve(config: &Config, pipeline: Arc<Pipeline>) -> anyhow::Result<()> {
    tracing::info!(
        portal = %pipeline.gateway().portal().credentials(),
        read_only = config.filters.read_only,
        rate_limit = %config.rate_limit,
        tools = pipeline.published().count(),
        "serving MCP over stdio"
    );
    let shutdown = mcp::Shutdown::on_signals();
    let server = PermissionsServer::new(pipeline.clone());
    let in_flight = server.in_flight();
    let service = server
        .serve(mcp::stdio(shutdown.clone()))
        .await
        .context("MCP handshake failed")?;
    // While the client reads the initialize reply and sends tools/list, get ready what the
    // list and the first call need: the HTTP client on a thread of its own (for https it
    // loads the system's root certificates), and the published tools' entries and schemas on
    // this thread, otherwise idle until the next message arrives. Not before the handshake:
    // starting a thread there delays the initialize reply.
    let warming = pipeline.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(err) = warming.gateway().portal().warm_up() {
            tracing::error!("{err}");
        }
    });
    let preparing = pipeline.clone();
    tokio::spawn(async move {
        for entry in preparing.published() {
            entry.prepare();
        }
    });
    // On a signal the transport stops reading; once the calls under way have answered (or
    // their deadline has passed) the service is cancelled, which flushes what is pending.
    let stop = service.cancellation_token();
    let drain = config.http.drain;
    let mut asked = shutdown;
    tokio::spawn(async move {
        asked.requested().await;
        in_flight.settled(drain).await;
        stop.cancel();
    });
    service.waiting().await.context("MCP service stopped")?;
    Ok(())
}

/// How long the sandbox's access tokens live: an hour, as on Bitrix24, unless a test asks
/// for less to see one expire and be renewed.
fn sandbox_token_life() -> std::time::Duration {
    std::env::var("BITRIX24_SANDBOX_TOKEN_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map_or(sandbox::TOKEN_LIFE, std::time::Duration::from_secs)
}
