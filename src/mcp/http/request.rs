//! One request's way in: each guard either lets it on or answers it, in this order.

use std::{convert::Infallible, sync::Arc};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use tower_service::Service;

use super::{
    auth::Authenticator,
    body::read_body,
    duplicates::refuse_duplicate_keys,
    ids::InFlightIds,
    mcp_service::McpService,
    reply::{Body, Refusal},
    route::route,
    session_cap::SessionCap,
    session_owner::SessionOwners,
};
use crate::mcp::team_pages::{self, TeamPages};

/// Everything a request passes through, shared by every connection.
pub struct Gate {
    pub mcp: McpService,
    /// The team server's own pages (sign-in, authorization, approval), when it signs people in.
    pub team: Option<Arc<TeamPages>>,
    /// Which caller opened each session: nobody else may use it.
    pub owners: SessionOwners,
    pub auth: Authenticator,
    pub cap: SessionCap,
    pub ids: Arc<InFlightIds>,
}

impl Gate {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        Ok(match self.pass(req).await {
            Ok(response) => response,
            Err(refusal) => *refusal,
        })
    }

    async fn pass(&self, mut req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
        if let Some(team) = &self.team
            && team_pages::handles(req.uri().path())
        {
            return Ok(team.respond(req).await.map(BodyExt::boxed_unsync));
        }
        route(&req)?;
        let caller = self.auth.authenticate(&req).await?;
        let owner = caller.key();
        self.owners.check(&req, &owner)?;
        req.extensions_mut().insert(caller);
        self.cap.admit(&req).await?;
        let (parts, body) = req.into_parts();
        let bytes = read_body(body).await?;
        refuse_duplicate_keys(&bytes)?;
        let held = self.ids.claim_request(&parts.headers, &bytes)?;
        let req = Request::from_parts(parts, Full::new(bytes));
        let Ok(response) = self.mcp.clone().call(req).await;
        self.owners.record(&response, &owner);
        // The answer may still be streaming: the id is free once the body is done.
        Ok(response.map(|body| {
            body.map_err(|never| match never {})
                .map_frame(move |frame| {
                    let _ = &held;
                    frame
                })
                .boxed_unsync()
        }))
    }
}
