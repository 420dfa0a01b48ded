//! The approval page: where a person reads a change in full and approves or declines it,
//! outside the model's channel. A stdio server serves it on a loopback port of its own, opened
//! the first time a change needs it; the team server serves it on its own listener.
//!
//! The address holds an unguessable approval id. Deciding takes a POST carrying a form token
//! only this server makes (an HMAC of the id), from the page's own origin: a tool that can only
//! fetch a URL, or a page on another site, cannot approve. Everything shown is escaped HTML
//! of the same question the ledger keeps.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;

use crate::pipeline::{
    ApprovalDesk, ApprovalState, ApprovalStore, Decided, ServerKey, StoreError, approval::now,
};

/// Where pages live: `/approve/<id>`.
pub const PATH: &str = "/approve/";

/// A form is a few dozen bytes; anything larger is not one.
const MAX_FORM_BYTES: usize = 4096;

/// What the page needs to answer one request.
pub struct Page {
    pub store: Arc<dyn ApprovalStore>,
    pub key: Arc<ServerKey>,
    /// The page's own origin (`http://127.0.0.1:40123`): the only one a decision may come from.
    pub origin: String,
}

/// The page for a server whose own origin is `origin`.
pub fn page(store: Arc<dyn ApprovalStore>, key: Arc<ServerKey>, origin: String) -> Page {
    Page { store, key, origin }
}

/// Who decides on this page, as the ledger records them.
pub struct Decider(pub String);

type Body = Full<Bytes>;

pub(super) use crate::html::escape;

pub(super) fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}}\
         pre{{white-space:pre-wrap;background:#f4f4f4;padding:1rem;border-radius:6px;font-size:.95rem}}\
         button{{font-size:1rem;padding:.6rem 1.4rem;margin-right:1rem;border-radius:6px;border:1px solid #555;cursor:pointer}}\
         .approve{{background:#1f6f3f;color:#fff}} .decline{{background:#fff}}\
         .state{{font-weight:600}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        // Nothing but this page's own inline style; forms post only to this server; never framed.
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        // `no-referrer` would make Chromium send `Origin: null` with the form, which the
        // origin check must refuse; `same-origin` leaks nothing to other sites.
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

fn form_token(key: &ServerKey, id: &str) -> String {
    key.tag(&format!("approval-page:{id}"))
}

impl Page {
    /// Answers one request for `/approve/<id>`.
    pub async fn respond(&self, req: Request<Incoming>, decider: &Decider) -> Response<Body> {
        let id = req
            .uri()
            .path()
            .strip_prefix(PATH)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        let Some(id) = id else {
            return html(
                StatusCode::NOT_FOUND,
                "No such page",
                "<p>This server has no page here.</p>",
            );
        };
        match *req.method() {
            Method::GET => self.show(&id).await,
            Method::POST => self.decide(&id, req, decider).await,
            _ => html(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "<p>Open the page and use its buttons.</p>",
            ),
        }
    }

    async fn show(&self, id: &str) -> Response<Body> {
        let found = match self.store.find(id).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return html(
                    StatusCode::NOT_FOUND,
                    "No such change",
                    "<p>No change waits for approval under this address.</p>",
                );
            }
            Err(err) => return unavailable(&err.to_string()),
        };
        let question = format!("<pre id=\"question\">{}</pre>", escape(&found.question));
        let open = found.state == ApprovalState::Pending && !found.expired(now());
        let action = if open {
            format!(
                "<form method=\"post\" action=\"{PATH}{id}\">\
                 <input type=\"hidden\" name=\"token\" value=\"{token}\">\
                 <button class=\"approve\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button>\
                 <button class=\"decline\" name=\"decision\" value=\"decline\" id=\"decline\">Decline</button>\
                 </form><p>Asked by {asked}. Nothing has been sent. Approve sends exactly this change, \
                 once; Decline sends nothing.</p>",
                token = form_token(&self.key, id),
                asked = escape(&found.asked_by),
            )
        } else {
            format!(
                "<p class=\"state\" id=\"state\">This change cannot be decided any more: {}.</p>",
                escape(&crate::pipeline::approval::too_late(&found, now()))
            )
        };
        html(
            StatusCode::OK,
            "Approve a change to Bitrix24 permissions",
            &format!("{question}{action}"),
        )
    }

    async fn decide(&self, id: &str, req: Request<Incoming>, decider: &Decider) -> Response<Body> {
        if self.sent_from_elsewhere(req.headers()) {
            return html(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>A decision is taken only from this server's own page.</p>",
            );
        }
        let not_the_form = || {
            html(
                StatusCode::BAD_REQUEST,
                "Refused",
                "<p>That was not this page's form.</p>",
            )
        };
        let Some(fields) = read_form(req).await else {
            return not_the_form();
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let token_ok =
            field("token").is_some_and(|t| self.key.checks(&format!("approval-page:{id}"), t));
        let approve = match field("decision") {
            Some("approve") => true,
            Some("decline") => false,
            _ => return not_the_form(),
        };
        if !token_ok {
            return html(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>This form was not made by this server. Open the approval link again.</p>",
            );
        }
        decided(self.store.decide(id, approve, &decider.0).await)
    }

    /// A decision posted by a page on another site is never the person's:
    /// browsers name the sender in `Origin` and `Sec-Fetch-Site`.
    fn sent_from_elsewhere(&self, headers: &header::HeaderMap) -> bool {
        !from_origin(headers, &self.origin)
    }
}

/// Whether a form post comes from a page of `origin`: a browser says where a post comes from
/// in `Origin` and `Sec-Fetch-Site`; a client that sends neither is not a browser page.
pub(super) fn from_origin(headers: &header::HeaderMap, origin: &str) -> bool {
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_none_or(|o| o.as_bytes() == origin.as_bytes());
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|s| s.as_bytes() == b"same-origin" || s.as_bytes() == b"none");
    origin_ok && site_ok
}

/// The posted form's fields; `None` when the body cannot be read whole or is larger than any form.
async fn read_form(req: Request<Incoming>) -> Option<Vec<(String, String)>> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .ok()?
        .to_bytes();
    Some(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The page after a decision: what happens next, or why nothing changed.
fn decided(result: Result<Decided, StoreError>) -> Response<Body> {
    match result {
        Ok(Decided::Done(ApprovalState::Approved)) => html(
            StatusCode::OK,
            "Approved",
            "<p class=\"state\" id=\"state\">Approved. Go back to your assistant and tell it you \
             approved: the change is sent, once, when it calls again with the same arguments.</p>",
        ),
        Ok(Decided::Done(_)) => html(
            StatusCode::OK,
            "Declined",
            "<p class=\"state\" id=\"state\">Declined. Nothing was sent, and nothing will be.</p>",
        ),
        Ok(Decided::TooLate(why)) => html(
            StatusCode::CONFLICT,
            "Too late",
            &format!(
                "<p class=\"state\" id=\"state\">Nothing changed: {}.</p>",
                escape(&why)
            ),
        ),
        Ok(Decided::NotFound) => html(
            StatusCode::NOT_FOUND,
            "No such change",
            "<p>No change waits here.</p>",
        ),
        Err(err) => unavailable(&err.to_string()),
    }
}

fn unavailable(why: &str) -> Response<Body> {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not available",
        &format!("<p>The approvals could not be read: {}.</p>", escape(why)),
    )
}

/// The page of a stdio server: a loopback port of its own, opened at the first link asked for.
pub struct LocalDesk {
    store: Arc<dyn ApprovalStore>,
    key: Arc<ServerKey>,
    decider: String,
    bound: OnceLock<Result<SocketAddr, String>>,
}

impl LocalDesk {
    pub fn new(store: Arc<dyn ApprovalStore>, key: Arc<ServerKey>, decider: String) -> Self {
        Self {
            store,
            key,
            decider,
            bound: OnceLock::new(),
        }
    }

    fn start(&self) -> Result<SocketAddr, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let page = Arc::new(Page {
            store: self.store.clone(),
            key: self.key.clone(),
            origin: format!("http://{addr}"),
        });
        let decider = Arc::new(Decider(self.decider.clone()));
        tokio::spawn(serve(listener, page, decider));
        tracing::info!(%addr, "approval page listening");
        Ok(addr)
    }
}

impl ApprovalDesk for LocalDesk {
    fn link(&self, id: &str) -> Result<String, String> {
        let addr = self.bound.get_or_init(|| self.start()).clone()?;
        Ok(format!("http://{addr}{PATH}{id}"))
    }
}

async fn serve(listener: tokio::net::TcpListener, page: Arc<Page>, decider: Arc<Decider>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most often: retrying at once would only spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (page, decider) = (page.clone(), decider.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (page, decider) = (page.clone(), decider.clone());
                async move {
                    // Another name for this address is a DNS-rebinding page, not the person.
                    let host_ok = req.headers().get(header::HOST).is_some_and(|h| {
                        page.origin
                            .ends_with(&format!("//{}", h.to_str().unwrap_or_default()))
                    });
                    if !host_ok {
                        return Ok::<_, Infallible>(html(
                            StatusCode::FORBIDDEN,
                            "Refused",
                            "<p>Wrong host.</p>",
                        ));
                    }
                    Ok(page.respond(req, &decider).await)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
