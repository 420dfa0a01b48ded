use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use bitrix24_permissions_mcp::{
    catalog::Catalog, config::Config, dispatch::Dispatcher, limits::Gateway, logging,
    portal::PortalClient, server::PermissionsServer, transport,
};
use rmcp::ServiceExt;

// One thread serves stdio well: calls are I/O-bound, and worker threads would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("bitrix24-permissions-mcp: {err}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.webhook.redactor());
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog::embedded()?);
    let portal = PortalClient::new(config.webhook.clone(), config.timeout);
    tracing::info!(
        portal = %config.webhook,
        read_only = config.read_only,
        rate_limit = %config.rate_limit,
        "serving MCP over stdio"
    );
    let gateway = Gateway::new(portal, config.rate_limit, config.timeout);
    let dispatcher = Arc::new(Dispatcher::new(
        catalog,
        gateway,
        config.read_only,
        config.max_result_bytes,
    ));
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
