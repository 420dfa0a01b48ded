use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use bitrix24_permissions_mcp::{
    catalog::Catalog, config::Config, dispatch::Dispatcher, logging, portal::PortalClient,
    server::PermissionsServer,
};
use rmcp::{ServiceExt, transport::stdio};

#[tokio::main]
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
    let portal = PortalClient::new(config.webhook.clone(), config.timeout)?;
    tracing::info!(
        portal = %config.webhook,
        read_only = config.read_only,
        "serving MCP over stdio"
    );
    let dispatcher = Arc::new(Dispatcher::new(catalog, portal, config.read_only));
    let service = PermissionsServer::new(dispatcher)
        .serve(stdio())
        .await
        .context("MCP handshake failed")?;
    service.waiting().await.context("MCP service stopped")?;
    Ok(())
}
