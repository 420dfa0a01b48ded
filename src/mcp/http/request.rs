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
};

/// Everything a request passes through, shared by every connection.
pub struct Gate {
    pub mcp: McpService,
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
        route(&req)?;
        let caller = self.auth.authenticate(&req)?;
        req.extensions_mut().insert(caller);
        self.cap.admit(&req).await?;
        let (parts, body) = req.into_parts();
        let bytes = read_body(body).await?;
        refuse_duplicate_keys(&bytes)?;
        let held = self.ids.claim_request(&parts.headers, &bytes)?;
        let req = Request::from_parts(parts, Full::new(bytes));
        let Ok(response) = self.mcp.clone().call(req).await;
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
