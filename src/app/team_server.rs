//! `serve --http`: who may come in, and the team server's parts. With a Bitrix24 local
//! application (or the sandbox's stand-in for one) people sign in and act as themselves;
//! with `BITRIX24_HTTP_TOKEN` the token's holders act as the webhook's user; nobody comes
//! in with nothing, except readers on loopback where the operator allowed it.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use reqwest::Url;

use super::config::{Command, Config, PortalChoice};
use crate::{
    bitrix::oauth::OAuthApp,
    ledger::Ledger,
    mcp::{self, TeamDesk, TeamPages},
    pipeline::{ApprovalDesk, Pipeline},
    sandbox::{self, SandboxApp},
    team::{self, Sealer, Team, TeamSetup},
};

/// Why the server did not start: said to the person who started it (exit 2).
pub struct Refused(pub String);

/// What a team server needs beyond the pipeline, found while the pipeline is built.
pub struct Parts {
    /// `BITRIX24_HTTP_TOKEN`, read once.
    token: Option<String>,
    team: Option<TeamParts>,
}

struct TeamParts {
    app: OAuthApp,
    ledger: Ledger,
    sealer: Sealer,
    desk: TeamDesk,
}

impl Parts {
    /// Team sign-in is on for `serve --http` with a local application, and in the sandbox
    /// unless a shared token was asked for.
    pub fn new(
        config: &Config,
        command: &Command,
        sandbox_app: Option<SandboxApp>,
        ledger: Option<Ledger>,
    ) -> anyhow::Result<Self> {
        let serving = matches!(command, Command::Serve { http: Some(_) });
        let token = std::env::var(mcp::HTTP_TOKEN_ENV).ok();
        let shared = token.as_deref().is_some_and(|t| !t.trim().is_empty());
        let timeout = config.timeout;
        let app = match (&config.oauth, sandbox_app, &config.portal) {
            _ if !serving => None,
            (_, Some(sandbox), PortalChoice::Sandbox { .. }) if !shared => {
                Some(sandbox_app_of(&sandbox, timeout)?)
            }
            (Some(o), _, PortalChoice::Team | PortalChoice::Webhook(_)) => Some(OAuthApp::new(
                o.portal.clone(),
                o.client_id.clone(),
                o.client_secret.clone(),
                o.server.clone(),
                timeout,
            )?),
            _ => None,
        };
        let Some(app) = app else {
            return Ok(Self { token, team: None });
        };
        let Some(ledger) = ledger else {
            anyhow::bail!(
                "a team server records who asked for and approved each change: set BITRIX24_LEDGER to a file (not off)"
            );
        };
        let key = ledger.path().with_file_name(team::KEY_FILE);
        let sealer = Sealer::load_or_create(&key)?;
        Ok(Self {
            token,
            team: Some(TeamParts {
                app,
                ledger,
                sealer,
                desk: TeamDesk::default(),
            }),
        })
    }

    /// Where approval links point on a team server.
    pub fn desk(&self) -> Option<Arc<dyn ApprovalDesk>> {
        self.team
            .as_ref()
            .map(|t| Arc::new(t.desk.clone()) as Arc<dyn ApprovalDesk>)
    }
}

fn sandbox_app_of(sandbox: &SandboxApp, timeout: Duration) -> anyhow::Result<OAuthApp> {
    let portal = Url::parse(&sandbox.portal)?;
    Ok(OAuthApp::new(
        portal.clone(),
        sandbox.client_id.clone(),
        sandbox.client_secret.clone().into(),
        portal,
        timeout,
    )?
    .named(sandbox::PORTAL))
}

/// Serves until a signal; `Refused` when the setup lets nobody in or everybody.
pub async fn serve_http(
    addr: SocketAddr,
    config: &Config,
    pipeline: Arc<Pipeline>,
    parts: Parts,
) -> Result<ExitCode, Refused> {
    let access = mcp::Access {
        token: parts.token,
        team: parts.team.is_some(),
        anonymous_reads: config.http_allow_anonymous_reads,
    };
    let setup = mcp::HttpSetup::new(addr, access)
        .map_err(|e| Refused(e.to_string()))?
        .with_limits(config.http)
        .with_public_url(config.public_url.clone());
    let setup = match parts.team {
        Some(team) => {
            let (pipeline, public) = (pipeline.clone(), config.public_url.clone());
            setup.with_team(Box::new(move |bound| {
                team_pages(team, pipeline, public, bound)
            }))
        }
        None => setup,
    };
    mcp::serve_http(setup, pipeline, mcp::Shutdown::on_signals(), |bound| {
        // Printed, not only logged, so scripts (and tests) can find a port chosen with :0.
        eprintln!(
            "bitrix24-permissions-mcp: serving MCP at http://{bound}{}",
            mcp::HTTP_PATH
        );
    })
    .await
    .map(|()| ExitCode::SUCCESS)
    .map_err(|e| Refused(e.to_string()))
}

fn team_pages(
    parts: TeamParts,
    pipeline: Arc<Pipeline>,
    public: Option<Url>,
    bound: SocketAddr,
) -> Arc<TeamPages> {
    let public = public.unwrap_or_else(|| {
        Url::parse(&format!("http://{bound}/")).expect("a socket address makes a URL")
    });
    let origin = public.origin().ascii_serialization();
    let _ = parts.desk.0.set(public.to_string());
    eprintln!(
        "bitrix24-permissions-mcp: people sign in at {}signin",
        public
    );
    let page = mcp::approval_page(pipeline.approvals().clone(), pipeline.key().clone(), origin);
    let setup = TeamSetup {
        app: parts.app,
        public_url: public,
    };
    let team: Arc<Team> = Team::new(setup, parts.ledger, parts.sealer, pipeline);
    Arc::new(TeamPages { team, page })
}
