//! The MCP authorization flow, with this server as the authorization server in front of
//! Bitrix24 sign-in: protected resource metadata (RFC 9728), server metadata (RFC 8414),
//! dynamic registration (RFC 7591) and client ID metadata documents, authorization with
//! PKCE S256 and a consent page here before anyone is sent to the portal, tokens bound to this
//! server's MCP endpoint (RFC 8707), refresh with rotation, and revocation (RFC 7009).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use reqwest::Url;
use serde_json::{Value, json};

use super::{ACCESS_LIFE, REFRESH_LIFE, Team, hash};
use crate::{
    ledger::{ClientRow, TokenKind},
    pipeline::approval::random_token,
};

/// A code handed to a client lives this long, once.
pub const CODE_LIFE: Duration = Duration::from_secs(60);
/// Access tokens start so, which is how a request's token is told from a personal one.
pub const ACCESS_PREFIX: &str = "b24a_";
const REFRESH_PREFIX: &str = "b24r_";
/// A client ID metadata document is small; a larger answer is not one.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// An authorization request that passed its checks.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub client_id: String,
    /// As the client calls itself: shown escaped, never trusted.
    pub client_name: String,
    pub redirect_uri: Url,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
}

/// A code given to a client after the person signed in.
pub struct IssuedCode {
    pub request: ClientRequest,
    pub member_id: String,
    pub user_id: u64,
    pub at: Instant,
}

/// Why an authorization request is refused.
pub enum Refusal {
    /// Shown on a page here: the redirect address could not be trusted.
    Page(String),
    /// Sent back to the client's (checked) redirect address.
    Redirect(Url),
}

type Params = HashMap<String, String>;

fn oauth_error(code: &str, description: &str) -> (u16, Value) {
    let status = if code == "invalid_client" { 401 } else { 400 };
    (
        status,
        json!({"error": code, "error_description": description}),
    )
}

/// Redirect addresses a client may register: https anywhere, http on loopback only, and a
/// native app's own scheme (RFC 8252). Never `javascript:`, `data:` or `file:`.
fn acceptable_redirect(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => matches!(
            url.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        ),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ws" | "wss" => false,
        scheme => scheme.contains('.') || scheme.len() > 2,
    }
}

impl Team {
    /// RFC 9728: where this resource's authorization server is.
    pub fn resource_metadata(&self) -> Value {
        json!({
            "resource": self.resource(),
            "authorization_servers": [self.base.as_str().trim_end_matches('/')],
            "bearer_methods_supported": ["header"],
            "resource_name": "Bitrix24 permissions (MCP)",
            "resource_documentation": self.url("signin"),
        })
    }

    /// RFC 8414: this server's endpoints.
    pub fn server_metadata(&self) -> Value {
        json!({
            "issuer": self.base.as_str().trim_end_matches('/'),
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "registration_endpoint": self.url("register"),
            "revocation_endpoint": self.url("revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "client_id_metadata_document_supported": true,
        })
    }

    /// RFC 7591: a public client registers its redirect addresses.
    pub async fn register(&self, body: &[u8]) -> (u16, Value) {
        let Ok(asked) = serde_json::from_slice::<Value>(body) else {
            return oauth_error("invalid_client_metadata", "the body is not a JSON object");
        };
        let uris: Vec<String> = asked["redirect_uris"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect();
        if uris.is_empty() || !uris.iter().all(|u| acceptable_redirect(u)) {
            return oauth_error(
                "invalid_redirect_uri",
                "redirect_uris must be https, http on loopback, or an application's own scheme",
            );
        }
        let name: String = asked["client_name"]
            .as_str()
            .unwrap_or("an MCP client")
            .chars()
            .take(100)
            .collect();
        let client = ClientRow {
            client_id: format!("mcp_{}", random_token(12)),
            name,
            redirect_uris: uris,
        };
        if let Err(e) = self.ledger.register_client(client.clone()).await {
            return (
                500,
                json!({"error": "server_error", "error_description": e.to_string()}),
            );
        }
        tracing::info!(client = %client.client_id, "MCP client registered");
        (
            201,
            json!({
                "client_id": client.client_id,
                "client_id_issued_at": crate::pipeline::approval::now(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }),
        )
    }

    /// A registered client, or one whose id is the https address of its metadata document.
    async fn client(&self, client_id: &str) -> Option<ClientRow> {
        if client_id.starts_with("https://") {
            return self.client_document(client_id).await;
        }
        self.ledger.client(client_id).await.ok().flatten()
    }

    async fn client_document(&self, client_id: &str) -> Option<ClientRow> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        let answer = http.get(client_id).send().await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let body = answer.bytes().await.ok()?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return None;
        }
        let doc: Value = serde_json::from_slice(&body).ok()?;
        // The document must name itself, or anyone's page could speak for any client.
        if doc["client_id"].as_str() != Some(client_id) {
            return None;
        }
        let uris: Vec<String> = doc["redirect_uris"]
            .as_array()?
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .filter(|u| acceptable_redirect(u))
            .collect();
        Some(ClientRow {
            client_id: client_id.to_owned(),
            name: doc["client_name"]
                .as_str()
                .unwrap_or(client_id)
                .chars()
                .take(100)
                .collect(),
            redirect_uris: uris,
        })
    }

    /// Checks `/authorize`'s query. The redirect address is checked first: until it is, a
    /// refusal is shown here rather than sent anywhere.
    pub async fn check_authorize(&self, q: &Params) -> Result<ClientRequest, Refusal> {
        let client_id = q.get("client_id").cloned().unwrap_or_default();
        let Some(client) = self.client(&client_id).await else {
            return Err(Refusal::Page(
                "This MCP client is not registered with this server. What to do: remove the server from the client and add it again, so the client registers."
                    .into(),
            ));
        };
        let redirect = match q.get("redirect_uri") {
            Some(given) if client.redirect_uris.iter().any(|u| u == given) => given.clone(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            _ => {
                return Err(Refusal::Page(
                    "The client's return address is not one it registered, so this request is refused. What to do: remove the server from the client and add it again."
                        .into(),
                ));
            }
        };
        let Ok(redirect_uri) = Url::parse(&redirect) else {
            return Err(Refusal::Page(
                "The client's return address is not a URL.".into(),
            ));
        };
        let state = q.get("state").cloned();
        let back = |code: &str, why: &str| {
            let mut url = redirect_uri.clone();
            url.query_pairs_mut()
                .append_pair("error", code)
                .append_pair("error_description", why);
            if let Some(s) = &state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Refusal::Redirect(url)
        };
        if q.get("response_type").map(String::as_str) != Some("code") {
            return Err(back("unsupported_response_type", "only code is supported"));
        }
        let challenge = q.get("code_challenge").filter(|c| c.len() >= 43);
        if challenge.is_none() || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        {
            return Err(back("invalid_request", "PKCE with S256 is required"));
        }
        let resource = q
            .get("resource")
            .cloned()
            .unwrap_or_else(|| self.resource());
        if resource.trim_end_matches('/') != self.resource() {
            return Err(back(
                "invalid_target",
                "this server issues tokens only for its own MCP endpoint",
            ));
        }
        Ok(ClientRequest {
            client_id,
            client_name: client.name,
            redirect_uri,
            state,
            code_challenge: challenge.cloned().unwrap_or_default(),
            resource: self.resource(),
        })
    }

    /// Keeps a checked request until the person answers the consent page.
    pub fn await_consent(&self, request: ClientRequest) -> String {
        let id = random_token(16);
        let mut waiting = self.consents.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|_, (_, at)| at.elapsed() < super::PENDING_LIFE);
        waiting.insert(id.clone(), (request, Instant::now()));
        id
    }

    /// The person's answer on the consent page: the portal's sign-in, or back to the client.
    pub fn consented(&self, id: &str, allow: bool) -> Option<String> {
        let (request, _) = self
            .consents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .filter(|(_, at)| at.elapsed() < super::PENDING_LIFE)?;
        if allow {
            return Some(self.start_sign_in(super::sign_in::Pending::Client(request)));
        }
        let mut back = request.redirect_uri.clone();
        back.query_pairs_mut().append_pair("error", "access_denied");
        if let Some(s) = &request.state {
            back.query_pairs_mut().append_pair("state", s);
        }
        Some(back.into())
    }

    /// The token endpoint: a code with its PKCE verifier, or a refresh token, for a new pair.
    pub async fn token(&self, form: &Params) -> (u16, Value) {
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.trade_code(form).await,
            Some("refresh_token") => self.trade_refresh(form).await,
            _ => oauth_error(
                "unsupported_grant_type",
                "use authorization_code or refresh_token",
            ),
        }
    }

    async fn trade_code(&self, form: &Params) -> (u16, Value) {
        let code = form.get("code").map(String::as_str).unwrap_or_default();
        let issued = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code)
            .filter(|c| c.at.elapsed() < CODE_LIFE);
        let Some(issued) = issued else {
            return oauth_error("invalid_grant", "the code is unknown, used or expired");
        };
        let r = &issued.request;
        if form.get("client_id") != Some(&r.client_id)
            || form
                .get("redirect_uri")
                .is_some_and(|u| u != r.redirect_uri.as_str())
        {
            return oauth_error(
                "invalid_grant",
                "the code was issued to another client or address",
            );
        }
        let verifier = form
            .get("code_verifier")
            .map(String::as_str)
            .unwrap_or_default();
        if !pkce_matches(verifier, &r.code_challenge) {
            return oauth_error(
                "invalid_grant",
                "the code_verifier does not match the code_challenge",
            );
        }
        if form
            .get("resource")
            .is_some_and(|res| res.trim_end_matches('/') != r.resource)
        {
            return oauth_error("invalid_target", "the code was issued for another resource");
        }
        self.pair(&issued.member_id, issued.user_id, &r.client_id)
            .await
    }

    async fn trade_refresh(&self, form: &Params) -> (u16, Value) {
        let given = form
            .get("refresh_token")
            .map(String::as_str)
            .unwrap_or_default();
        let digest = hash(given);
        let row = match self.valid(&digest, TokenKind::Refresh).await {
            Ok(row) => row,
            Err(_) => {
                return oauth_error(
                    "invalid_grant",
                    "the refresh token is unknown, revoked or expired",
                );
            }
        };
        if form.get("client_id") != row.client_id.as_ref() {
            return oauth_error(
                "invalid_grant",
                "the refresh token was issued to another client",
            );
        }
        // Rotation: the refresh token is good once.
        if let Err(e) = self.ledger.revoke_token(&digest, false).await {
            return (
                500,
                json!({"error": "server_error", "error_description": e.to_string()}),
            );
        }
        let client = row.client_id.unwrap_or_default();
        self.pair(&row.member_id, row.user_id, &client).await
    }

    async fn pair(&self, member_id: &str, user_id: u64, client_id: &str) -> (u16, Value) {
        let person = (member_id, user_id);
        let client = Some(client_id.to_owned());
        let access = self
            .issue(
                TokenKind::Access,
                ACCESS_PREFIX,
                person,
                client.clone(),
                ACCESS_LIFE,
            )
            .await;
        let refresh = self
            .issue(
                TokenKind::Refresh,
                REFRESH_PREFIX,
                person,
                client,
                REFRESH_LIFE,
            )
            .await;
        match (access, refresh) {
            (Ok(access), Ok(refresh)) => (
                200,
                json!({
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": ACCESS_LIFE.as_secs(),
                    "refresh_token": refresh,
                }),
            ),
            (Err(e), _) | (_, Err(e)) => (
                500,
                json!({"error": "server_error", "error_description": e}),
            ),
        }
    }

    /// RFC 7009: answers 200 whatever the token was; a refresh token takes the access
    /// tokens of the same client and person with it.
    pub async fn revoke(&self, form: &Params) -> (u16, Value) {
        let token = form.get("token").map(String::as_str).unwrap_or_default();
        let family = token.starts_with(REFRESH_PREFIX);
        match self.ledger.revoke_token(&hash(token), family).await {
            Ok(n) => {
                tracing::info!(revoked = n, "token revoked");
                (200, json!({}))
            }
            Err(e) => (
                503,
                json!({"error": "temporarily_unavailable", "error_description": e.to_string()}),
            ),
        }
    }
}

/// RFC 7636 S256: the unpadded base64url SHA-256 of a verifier.
pub fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(digest.as_ref())
}

/// Whether `verifier` (43 to 128 characters) is the one `challenge` was made from.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && crate::bitrix::constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636, appendix B.
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn redirect_addresses() {
        assert!(acceptable_redirect("http://127.0.0.1:33418/callback"));
        assert!(acceptable_redirect("http://localhost:6274/oauth/callback"));
        assert!(acceptable_redirect(
            "https://claude.ai/api/mcp/auth_callback"
        ));
        assert!(acceptable_redirect(
            "cursor://anysphere.cursor-mcp/oauth/callback"
        ));
        assert!(!acceptable_redirect("http://evil.example/cb"));
        assert!(!acceptable_redirect("javascript:alert(1)"));
        assert!(!acceptable_redirect("https://x.example/cb#frag"));
    }
}
