use std::{io::Write, process::ExitCode, sync::Arc};

use anyhow::Context;
use bitrix24_permissions_mcp::{
    catalog::Catalog,
    cli,
    config::{Cli, Command, Config, PortalChoice},
    dispatch::Dispatcher,
    http,
    limits::Gateway,
    logging,
    portal::PortalClient,
    sandbox,
    selection::Selection,
    server::PermissionsServer,
    transport,
};
use clap::Parser;
use rmcp::ServiceExt;

// One thread serves stdio well: calls are I/O-bound, and worker threads would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.clone().unwrap_or(Command::Serve { http: None });
    let (config, dispatcher) = match prepare(&cli, &command).await {
        Ok(ready) => ready,
        Err(err) => {
            eprintln!("bitrix24-permissions-mcp: {err:#}");
            return ExitCode::from(cli::USAGE);
        }
    };
    let result = match command {
        Command::Serve { http: None } => {
            serve(&config, dispatcher).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Serve { http: Some(addr) } => {
            match http::HttpSetup::new(addr, std::env::var(http::TOKEN_ENV).ok()) {
                Err(err) => {
                    eprintln!("bitrix24-permissions-mcp: {err}");
                    return ExitCode::from(cli::USAGE);
                }
                Ok(setup) => http::serve(setup, dispatcher, |bound| {
                    // Printed, not only logged, so scripts (and tests) can find a port chosen with :0.
                    eprintln!(
                        "bitrix24-permissions-mcp: serving MCP at http://{bound}{}",
                        http::PATH
                    );
                })
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(Into::into),
            }
        }
        Command::Tools { json } => {
            cli::tools(&dispatcher, json, &mut std::io::stdout().lock()).map_err(Into::into)
        }
        Command::Call { tool, arguments } => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            cli::call(&dispatcher, &tool, arguments.as_deref(), &mut out, &mut err)
                .await
                .map_err(Into::into)
        }
        Command::Doctor => cli::doctor(&config, &dispatcher, &mut std::io::stdout())
            .await
            .map_err(Into::into),
    };
    let _ = std::io::stdout().flush();
    result.unwrap_or_else(|err: anyhow::Error| {
        tracing::error!("{err:#}");
        ExitCode::FAILURE
    })
}

/// Everything that can be wrong with the configuration is found here, before anything runs.
async fn prepare(cli: &Cli, command: &Command) -> anyhow::Result<(Config, Arc<Dispatcher>)> {
    let config = Config::load(&cli.args)?;
    let catalog = Arc::new(Catalog::embedded()?);
    let selection = Selection::resolve(&catalog, &config.filters)?;
    let (webhook, sandboxed) = match &config.portal {
        PortalChoice::Webhook(w) => (w.clone(), false),
        PortalChoice::Sandbox { .. } => (
            sandbox::start()
                .await
                .context("cannot start the sandbox portal")?,
            true,
        ),
    };
    let default_level = if matches!(command, Command::Serve { .. }) {
        "info,rmcp=warn"
    } else {
        "warn"
    };
    logging::init(
        webhook.redactor(),
        cli.args.log_level.as_deref(),
        default_level,
        cli.args.log_file.as_deref(),
    )?;
    if let PortalChoice::Sandbox { asked: false } = config.portal {
        tracing::warn!(
            "no webhook configured (BITRIX24_WEBHOOK_URL): answering from the built-in sandbox portal"
        );
    }
    let portal = PortalClient::new(webhook, config.timeout);
    let gateway = Gateway::new(portal, config.rate_limit, config.timeout);
    let mut dispatcher = Dispatcher::new(catalog, gateway, selection, config.max_result_bytes);
    if sandboxed {
        dispatcher = dispatcher.with_sandbox_notice(sandbox::NOTICE);
    }
    Ok((config, Arc::new(dispatcher)))
}

async fn serve(config: &Config, dispatcher: Arc<Dispatcher>) -> anyhow::Result<()> {
    tracing::info!(
        portal = %dispatcher.gateway().portal().webhook(),
        read_only = config.filters.read_only,
        rate_limit = %config.rate_limit,
        tools = dispatcher.published().count(),
        "serving MCP over stdio"
    );
    let service = PermissionsServer::new(dispatcher.clone())
        .serve(transport::stdio())
        .await
        .context("MCP handshake failed")?;
    // The handshake is answered; get the HTTP client ready before the first call needs it.
    tokio::task::spawn_blocking(move || {
        if let Err(err) = dispatcher.gateway().portal().warm_up() {
            tracing::error!("{err}");
        }
    });
    service.waiting().await.context("MCP service stopped")?;
    Ok(())
}
