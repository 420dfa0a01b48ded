use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use bitrix24_permissions_mcp::{
    catalog::Catalog, config::Config, dispatch::Dispatcher, limits::Gateway, logging,
    portal::PortalClient, selection::Selection, server::PermissionsServer, transport,
};
use rmcp::ServiceExt;

// One thread serves stdio well: calls are I/O-bound, and worker threads would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (config, dispatcher) = match prepare() {
        Ok(ready) => ready,
        Err(err) => {
            eprintln!("bitrix24-permissions-mcp: {err:#}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.webhook.redactor());
    match serve(config, dispatcher).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything that can be wrong with the configuration is found here, before serving.
fn prepare() -> anyhow::Result<(Config, Arc<Dispatcher>)> {
    let config = Config::from_env()?;
    let catalog = Arc::new(Catalog::embedded()?);
    let selection = Selection::resolve(&catalog, &config.filters)?;
    let portal = PortalClient::new(config.webhook.clone(), config.timeout);
    let gateway = Gateway::new(portal, config.rate_limit, config.timeout);
    let dispatcher = Dispatcher::new(catalog, gateway, selection, config.max_result_bytes);
    Ok((config, Arc::new(dispatcher)))
}

async fn serve(config: Config, dispatcher: Arc<Dispatcher>) -> anyhow::Result<()> {
    tracing::info!(
        portal = %config.webhook,
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
