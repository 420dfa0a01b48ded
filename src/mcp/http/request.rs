//! One request's way in: each guard either lets it on or answers it, in this order.

use std::{convert::Infallible, sync::Arc};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming};
use tower_service::Service;

use super::auth::CallerKey;
use super::{
    auth::Authenticator,
    body::read_body,
    density::refuse_dense_json,
    duplicates::refuse_duplicate_keys,
    host::single_host,
    ids::{Head, InFlightIds},
    mcp_service::McpService,
    reply::{Body, Refusal, plain},
    route::route,
    sessions::{Admission, Sessions},
    slots::Slot,
};
use crate::mcp::team_pages::{self, TeamPages};

/// The longest a team page (sign-in, a form) may take, its small body included.
const PAGE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything a request passes through, shared by every connection.
pub struct Gate {
    pub mcp: McpService,
    /// The team server's own pages (sign-in, authorization, approval), when it signs people in.
    pub team: Option<Arc<TeamPages>>,
    pub auth: Authenticator,
    pub sessions: Arc<Sessions>,
    pub ids: Arc<InFlightIds>,
}

/// Gives the connection's slot back to reading once the answer is sent.
struct Answering(Arc<Slot>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.reading();
    }
}

impl Gate {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Result<Response<Body>, Infallible> {
        Ok(match self.pass(req, slot).await {
            Ok(response) => response,
            Err(refusal) => *refusal,
        })
    }

    async fn pass(
        &self,
        mut req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Result<Response<Body>, Refusal> {
        if let Some(team) = &self.team
            && team_pages::handles(req.uri().path())
        {
            return self.team_page(team, req, slot).await;
        }
        route(&req)?;
        single_host(&req)?;
        let who = self.auth.authenticate(&req).await?;
        let caller = CallerKey::named(&who.key());
        let admission = self.sessions.admit(&req, &caller).await?;
        req.extensions_mut().insert(who);
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body).await?;
        refuse_dense_json(&bytes)?;
        refuse_duplicate_keys(&bytes)?;
        let head = Head::of(&bytes);
        let held = self.ids.claim_request(&parts.headers, head.as_ref())?;
        let ping = head.as_ref().and_then(|h| h.method.as_deref()) == Some("ping");
        let in_use = match &admission {
            Admission::Session(id) if !ping => self
                .sessions
                .use_session(id, parts.method != hyper::Method::GET),
            _ => None,
        };
        // Read in full: from here on the connection keeps its slot until the answer is sent.
        if !slot.answering() {
            return Err(plain(StatusCode::SERVICE_UNAVAILABLE, "the server is full\n").into());
        }
        let answering = Answering(slot);
        let req = Request::from_parts(parts, Full::new(bytes));
        let Ok(response) = self.mcp.clone().call(req).await;
        if let Admission::Opening(opening) = admission {
            opening.opened(&response);
        }
        // The answer may still be streaming: the id, the session's use and the slot are given
        // back once the body is done.
        let kept = (held, in_use, answering);
        Ok(response.map(|body| {
            body.map_err(|never| match never {})
                .map_frame(move |frame| {
                    let _ = &kept;
                    frame
                })
                .boxed_unsync()
        }))
    }

    /// The team server's own pages: answered in full, within a deadline, holding the slot.
    async fn team_page(
        &self,
        team: &TeamPages,
        req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Result<Response<Body>, Refusal> {
        single_host(&req)?;
        if !slot.answering() {
            return Err(plain(StatusCode::SERVICE_UNAVAILABLE, "the server is full\n").into());
        }
        let _answering = Answering(slot);
        match tokio::time::timeout(PAGE_DEADLINE, team.respond(req)).await {
            Ok(page) => Ok(page.map(BodyExt::boxed_unsync)),
            Err(_) => {
                Err(plain(StatusCode::REQUEST_TIMEOUT, "the request took over 30 s\n").into())
            }
        }
    }
}
