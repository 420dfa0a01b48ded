//! The team server's own addresses besides `/mcp`: the sign-in pages, the portal's callback,
//! the MCP authorization endpoints, and the approval page, which here opens only for the
//! signed-in person whose change it is.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
};
use serde_json::Value;

use super::{
    approval_page::{self, Decider, Page, escape, html},
    caller::Caller,
};
use crate::team::{Denied, Pending, Refusal, SignedIn, Team};

type Body = Full<Bytes>;

/// The browser session's cookie.
const COOKIE: &str = "b24_session";
/// Forms and registration bodies are small.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The addresses this module answers.
pub fn handles(path: &str) -> bool {
    path == "/"
        || path == "/signin"
        || path == "/oauth/callback"
        || path == "/register"
        || path == "/authorize"
        || path == "/token"
        || path == "/revoke"
        || path.starts_with("/.well-known/")
        || path.starts_with(approval_page::PATH)
}

pub struct TeamPages {
    pub team: Arc<Team>,
    pub page: Page,
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn json(status: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Browser-based clients read metadata and trade codes from their own origin; none of
    // these endpoints reads a cookie.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn redirect(to: &str, cookie: Option<(&str, bool)>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some((value, secure)) = cookie {
        set_cookie(&mut response, value, secure);
    }
    response
}

fn set_cookie(response: &mut Response<Body>, value: &str, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age=43200{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn cookie(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn form(req: Request<Incoming>) -> Option<(HashMap<String, String>, Bytes)> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let fields = url::form_urlencoded::parse(&body).into_owned().collect();
    Some((fields, body))
}

impl TeamPages {
    fn secure(&self) -> bool {
        self.team.url("").starts_with("https://")
    }

    /// The caller of an `/mcp` request, or the 401 that points to this server's metadata.
    pub async fn authenticate(&self, req: &Request<Incoming>) -> Result<Caller, Response<Body>> {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match self.team.authenticate(bearer).await {
            Ok(person) => Ok(Caller::Person(person)),
            Err(denied) => Err(self.unauthorized(&denied)),
        }
    }

    fn unauthorized(&self, denied: &Denied) -> Response<Body> {
        let error = match denied {
            Denied::Missing => String::new(),
            other => format!(
                ", error=\"invalid_token\", error_description=\"{}\"",
                other.to_string().replace('"', "'")
            ),
        };
        let challenge = format!(
            "Bearer resource_metadata=\"{}\"{error}",
            self.team.metadata_url()
        );
        let mut response = Response::new(Full::new(Bytes::from(format!(
            "{denied}. Sign in at {} to get a token, or let your MCP client sign you in.\n",
            self.team.url("signin")
        ))));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }

    pub async fn respond(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/") => self.home(),
            (Method::GET, "/signin") => self.sign_in(&req),
            (Method::GET, "/oauth/callback") => self.callback(&req).await,
            (Method::GET, p) if p.starts_with("/.well-known/oauth-protected-resource") => {
                json(200, &self.team.resource_metadata())
            }
            (Method::GET, p)
                if p.starts_with("/.well-known/oauth-authorization-server")
                    || p.starts_with("/.well-known/openid-configuration") =>
            {
                json(200, &self.team.server_metadata())
            }
            (Method::POST, "/register") => match form(req).await {
                Some((_, body)) => {
                    let (status, value) = self.team.register(&body).await;
                    json(status, &value)
                }
                None => json(400, &serde_json::json!({"error": "invalid_request"})),
            },
            (Method::GET, "/authorize") => self.authorize(&req).await,
            (Method::POST, "/authorize") => self.consent(req).await,
            (Method::POST, "/token") => match form(req).await {
                Some((fields, _)) => {
                    let (status, value) = self.team.token(&fields).await;
                    json(status, &value)
                }
                None => json(400, &serde_json::json!({"error": "invalid_request"})),
            },
            (Method::POST, "/revoke") => match form(req).await {
                Some((fields, _)) => {
                    let (status, value) = self.team.revoke(&fields).await;
                    json(status, &value)
                }
                None => json(400, &serde_json::json!({"error": "invalid_request"})),
            },
            (Method::OPTIONS, _) => preflight(),
            (_, p) if p.starts_with(approval_page::PATH) => self.approval(req).await,
            _ => html(
                StatusCode::NOT_FOUND,
                "No such page",
                "<p>This server has no page here.</p>",
            ),
        }
    }

    fn home(&self) -> Response<Body> {
        html(
            StatusCode::OK,
            "Bitrix24 permissions: team server",
            &format!(
                "<p>This server lets your AI assistant read and, with your approval, change access \
                 permissions on Bitrix24, as you: with your own rights, and every change recorded under your name.</p>\
                 <p><a id=\"signin\" href=\"/signin\">Sign in with Bitrix24</a> to get your personal token, \
                 or add <code>{}</code> to a client that signs you in itself.</p>",
                escape(&self.team.resource())
            ),
        )
    }

    fn sign_in(&self, req: &Request<Incoming>) -> Response<Body> {
        // Only this server's approval pages are a place to come back to: never another site.
        let next = query(req).get("next").cloned().filter(|n| {
            n.starts_with(approval_page::PATH)
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/')
        });
        redirect(&self.team.start_sign_in(Pending::Browser { next }), None)
    }

    async fn callback(&self, req: &Request<Incoming>) -> Response<Body> {
        let secure = self.secure();
        match self.team.finish_sign_in(&query(req)).await {
            Ok(SignedIn::Next { cookie, next }) => redirect(&next, Some((&cookie, secure))),
            Ok(SignedIn::Client {
                cookie,
                redirect: to,
            }) => redirect(&to, Some((&cookie, secure))),
            Ok(SignedIn::Personal {
                person,
                cookie,
                token,
            }) => {
                let mut page = html(
                    StatusCode::OK,
                    "Signed in",
                    &personal_token_page(&person.label(), &token, &self.team.resource()),
                );
                set_cookie(&mut page, &cookie, secure);
                page
            }
            Err(e) => html(
                StatusCode::BAD_REQUEST,
                "Not signed in",
                &format!(
                    "<p id=\"problem\">{}</p><p><a href=\"/signin\">Sign in again</a></p>",
                    escape(&e.to_string())
                ),
            ),
        }
    }

    async fn authorize(&self, req: &Request<Incoming>) -> Response<Body> {
        match self.team.check_authorize(&query(req)).await {
            Ok(request) => {
                let client = request.client_name.clone();
                let back = request.redirect_uri.origin().ascii_serialization();
                let back = if back == "null" {
                    request.redirect_uri.scheme().to_owned() + ":"
                } else {
                    back
                };
                let id = self.team.await_consent(request);
                let mut page = html(
                    StatusCode::OK,
                    "Allow an MCP client to act as you?",
                    &format!(
                        "<p>The client calling itself <b id=\"client\">{client}</b> (it says so itself; this server cannot check it) \
                         asks to use the Bitrix24 permission tools as you. After you sign in on the portal it gets a token \
                         for this server only, sent to <b id=\"redirect\">{back}</b>. Every change it asks for still needs your approval.</p>\
                         <form method=\"post\" action=\"/authorize\"><input type=\"hidden\" name=\"consent\" value=\"{id}\">\
                         <button class=\"approve\" id=\"allow\" name=\"decision\" value=\"allow\">Continue to Bitrix24 sign-in</button>\
                         <button class=\"decline\" id=\"deny\" name=\"decision\" value=\"deny\">Cancel</button></form>",
                        client = escape(&client),
                        back = escape(&back),
                    ),
                );
                // The form's answer goes on to the portal or back to the client: both are
                // other origins, which a `form-action 'self'` policy would block.
                page.headers_mut().insert(
                    "content-security-policy",
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                    ),
                );
                page
            }
            Err(Refusal::Redirect(url)) => redirect(url.as_str(), None),
            Err(Refusal::Page(why)) => html(
                StatusCode::BAD_REQUEST,
                "Refused",
                &format!("<p id=\"problem\">{}</p>", escape(&why)),
            ),
        }
    }

    async fn consent(&self, req: Request<Incoming>) -> Response<Body> {
        if !self.same_origin(&req) {
            return html(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>Answer on this server's own page.</p>",
            );
        }
        let Some((fields, _)) = form(req).await else {
            return html(
                StatusCode::BAD_REQUEST,
                "Refused",
                "<p>That was not this page's form.</p>",
            );
        };
        let allow = fields.get("decision").map(String::as_str) == Some("allow");
        let id = fields
            .get("consent")
            .map(String::as_str)
            .unwrap_or_default();
        match self.team.consented(id, allow) {
            Some(to) => redirect(&to, None),
            None => html(
                StatusCode::BAD_REQUEST,
                "Too late",
                "<p>This request is over 10 minutes old or was answered. Start again from your client.</p>",
            ),
        }
    }

    fn same_origin(&self, req: &Request<Incoming>) -> bool {
        approval_page::from_origin(req.headers(), &self.page.origin)
    }

    /// The approval page, for the person whose change it is, signed in in this browser.
    async fn approval(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(person) = self.team.browser(cookie(&req).as_deref()).await else {
            let back = format!("/signin?next={}", req.uri().path());
            return redirect(&back, None);
        };
        let id = req
            .uri()
            .path()
            .trim_start_matches(approval_page::PATH)
            .to_owned();
        if let Ok(Some(approval)) = self.page.store.find(&id).await
            && approval.user_id != person.user_id.to_string()
        {
            return html(
                StatusCode::FORBIDDEN,
                "Not your change",
                "<p id=\"problem\">This change was asked for by someone else, and only they can approve it. \
                 Nothing was changed.</p>",
            );
        }
        let decider = Decider(format!("{} on the approval page", person.label()));
        self.page.respond(req, &decider).await
    }
}

fn preflight() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, mcp-protocol-version"),
    );
    response
}

fn personal_token_page(who: &str, token: &str, mcp: &str) -> String {
    let (who, token, mcp) = (escape(who), escape(token), escape(mcp));
    format!(
        "<p>Signed in as <b id=\"person\">{who}</b>. Your personal token is shown this once; it replaces any \
         earlier one. Keep it like a password: whoever holds it acts as you.</p>\
         <pre id=\"token\">{token}</pre>\
         <p>Claude Code:</p><pre>claude mcp add --transport http -s user bitrix24-permissions {mcp} --header \"Authorization: Bearer {token}\"</pre>\
         <p>Cursor (<code>~/.cursor/mcp.json</code>):</p>\
         <pre>{{\"mcpServers\": {{\"bitrix24-permissions\": {{\"url\": \"{mcp}\", \"headers\": {{\"Authorization\": \"Bearer {token}\"}}}}}}}}</pre>\
         <p>Codex (<code>~/.codex/config.toml</code>, with the token in the environment variable B24_MCP_TOKEN):</p>\
         <pre>[mcp_servers.bitrix24-permissions]\nurl = \"{mcp}\"\nbearer_token_env_var = \"B24_MCP_TOKEN\"</pre>"
    )
}

/// Approval links on the team server: its own address (known once it listens), where the
/// page opens only for the person asked.
#[derive(Clone, Default)]
pub struct TeamDesk(pub Arc<std::sync::OnceLock<String>>);

impl crate::pipeline::ApprovalDesk for TeamDesk {
    fn link(&self, id: &str) -> Result<String, String> {
        match self.0.get() {
            Some(base) => Ok(format!(
                "{}{}{id}",
                base.trim_end_matches('/'),
                approval_page::PATH
            )),
            None => Err("the team server is not listening yet".to_owned()),
        }
    }
}
