//! The sandbox's stand-in for Bitrix24 OAuth: an authorize page where one of the sandbox's
//! people signs in, and the token endpoint that trades a code (good for 30 s, once) or a
//! refresh token (rotated on every use) for an access token. It answers in the shapes the
//! real OAuth server documents, so the team server's sign-in runs unchanged against it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{html::escape, pipeline::approval::random_token};

/// How long a code from the authorize page may wait to be exchanged, as on Bitrix24.
const CODE_LIFE: Duration = Duration::from_secs(30);

/// The sandbox's one local application.
pub const CLIENT_ID: &str = "local.sandbox0000000001";

/// The member id of the sandbox portal, as a token answer names it.
pub const MEMBER_ID: &str = "5a4db0x000000000000000000sandbox";

/// What a stand-in call asks for: `name=value` pairs from the query and the form body.
pub type Params = HashMap<String, String>;

/// Where a call lands after the stand-in has read it.
pub enum Reply {
    /// A page to show.
    Page(String),
    /// Go on to this address.
    Redirect(String),
    /// A JSON answer with its status.
    Json(u16, Value),
}

/// Tokens and codes the stand-in has handed out.
pub struct StandIn {
    client_secret: String,
    access_life: Duration,
    /// The portal's own address (`127.0.0.1:<port>`), for links and token answers.
    host: String,
    codes: HashMap<String, (u64, Instant)>,
    access: HashMap<String, (u64, Instant)>,
    refresh: HashMap<String, u64>,
}

/// Who the authorize page offers, with a word on their rights.
pub struct Person {
    pub id: u64,
    pub name: String,
    pub admin: bool,
}

/// Why a REST call's `auth` was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Expired,
    Unknown,
}

impl StandIn {
    pub fn new(host: String, access_life: Duration) -> Self {
        Self {
            client_secret: random_token(16),
            access_life,
            host,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
        }
    }

    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The user an access token acts as.
    pub fn user_of(&self, token: &str) -> Result<u64, Refused> {
        match self.access.get(token) {
            Some((user, until)) if Instant::now() < *until => Ok(*user),
            Some(_) => Err(Refused::Expired),
            None => Err(Refused::Unknown),
        }
    }

    /// `/oauth/authorize/`: the choice of person, then back to the application with a code.
    pub fn authorize(&mut self, q: &Params, people: &[Person]) -> Reply {
        if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
            return Reply::Json(
                400,
                json!({"error": "invalid_client", "error_description": "Unknown client_id"}),
            );
        }
        // A real portal takes the address from the application's settings; the sandbox's
        // application has none, so the caller names it.
        let Some(back) = q.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else {
            return Reply::Json(
                400,
                json!({"error": "invalid_request", "error_description": "redirect_uri is missing"}),
            );
        };
        let chosen = q.get("as").and_then(|a| a.parse::<u64>().ok());
        match chosen.filter(|c| people.iter().any(|p| p.id == *c)) {
            Some(user) => {
                let code = random_token(16);
                self.codes.insert(code.clone(), (user, Instant::now()));
                let mut back = back;
                back.query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", q.get("state").map_or("", String::as_str))
                    .append_pair("domain", &self.host)
                    .append_pair("member_id", MEMBER_ID)
                    .append_pair("scope", "user,landing,sonet_group,task")
                    .append_pair("server_domain", &self.host);
                Reply::Redirect(back.into())
            }
            None => Reply::Page(self.chooser(q, people)),
        }
    }

    fn chooser(&self, q: &Params, people: &[Person]) -> String {
        let mut rows = String::new();
        for p in people {
            let mut link = url::Url::parse(&format!("http://{}/oauth/authorize/", self.host))
                .expect("a loopback address parses");
            {
                let mut pairs = link.query_pairs_mut();
                for (k, v) in q.iter().filter(|(k, _)| *k != "as") {
                    pairs.append_pair(k, v);
                }
                pairs.append_pair("as", &p.id.to_string());
            }
            let role = match (p.admin, p.id == super::portal::SHUT_OUT) {
                (_, true) => "employee; the application is not open to her",
                (true, false) => "administrator",
                (false, false) => "employee",
            };
            rows.push_str(&format!(
                "<li><a class=\"person\" data-user=\"{id}\" href=\"{href}\">{name}</a> (user {id}, {role})</li>\n",
                id = p.id,
                href = escape(link.as_str()),
                name = escape(&p.name),
            ));
        }
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sandbox sign-in</title></head>\
             <body><h1>Sign in to the sandbox portal</h1>\
             <p>This is the built-in sandbox's stand-in for Bitrix24 sign-in. Choose who you are:</p>\
             <ul>{rows}</ul></body></html>"
        )
    }

    /// `/oauth/token/`: a code or a refresh token for a new pair.
    pub fn token(&mut self, q: &Params) -> Reply {
        let client_ok = q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && q.get("client_secret") == Some(&self.client_secret);
        if !client_ok {
            return Reply::Json(
                401,
                json!({"error": "invalid_client", "error_description": "Wrong client credentials"}),
            );
        }
        let user = match q.get("grant_type").map(String::as_str) {
            Some("authorization_code") => q
                .get("code")
                .and_then(|c| self.codes.remove(c))
                .filter(|(_, at)| at.elapsed() <= CODE_LIFE)
                .map(|(user, _)| user),
            Some("refresh_token") => q.get("refresh_token").and_then(|r| self.refresh.remove(r)),
            _ => None,
        };
        let Some(user) = user else {
            return Reply::Json(
                400,
                json!({"error": "invalid_grant", "error_description": "Invalid authorization code or refresh token"}),
            );
        };
        // The application is not open to everyone: their code trades for `user_access_error`.
        if user == super::portal::SHUT_OUT {
            return Reply::Json(
                401,
                json!({"error": "user_access_error", "error_description": "The user does not have access to the application."}),
            );
        }
        let (access, refresh) = (random_token(20), random_token(20));
        self.access
            .insert(access.clone(), (user, Instant::now() + self.access_life));
        self.refresh.insert(refresh.clone(), user);
        let expires = crate::pipeline::approval::now() + self.access_life.as_secs();
        Reply::Json(
            200,
            json!({
                "access_token": access,
                "expires": expires,
                "expires_in": self.access_life.as_secs(),
                "scope": "user,landing,sonet_group,task",
                // On Bitrix24 `domain` is the OAuth server, not the portal.
                "domain": self.host,
                "server_endpoint": format!("http://{}/oauth/", self.host),
                "status": "L",
                "client_endpoint": format!("http://{}/rest/", self.host),
                "member_id": MEMBER_ID,
                "user_id": user,
                "refresh_token": refresh,
            }),
        )
    }
}

/// Reads `a=b&c=d` into pairs.
pub fn params(query: &str) -> Params {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<Person> {
        vec![Person {
            id: 7,
            name: "Ann Lee".into(),
            admin: false,
        }]
    }

    fn q(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_code_is_traded_once_and_refresh_tokens_rotate() {
        let mut s = StandIn::new("127.0.0.1:1".into(), Duration::from_secs(3600));
        let secret = s.client_secret().to_owned();
        let Reply::Redirect(back) = s.authorize(
            &q(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", "http://127.0.0.1:2/cb"),
                ("state", "xyz"),
                ("as", "7"),
            ]),
            &people(),
        ) else {
            panic!("no redirect")
        };
        let back = url::Url::parse(&back).unwrap();
        let got: Params = back.query_pairs().into_owned().collect();
        assert_eq!(got["state"], "xyz");
        let code = got["code"].clone();
        let grant = |s: &mut StandIn, kind: &str, key: &str, value: &str| {
            s.token(&q(&[
                ("grant_type", kind),
                ("client_id", CLIENT_ID),
                ("client_secret", &secret),
                (key, value),
            ]))
        };
        let Reply::Json(200, first) = grant(&mut s, "authorization_code", "code", &code) else {
            panic!("code refused")
        };
        assert!(matches!(
            grant(&mut s, "authorization_code", "code", &code),
            Reply::Json(400, _)
        ));
        assert_eq!(s.user_of(first["access_token"].as_str().unwrap()), Ok(7));
        let old = first["refresh_token"].as_str().unwrap().to_owned();
        let Reply::Json(200, second) = grant(&mut s, "refresh_token", "refresh_token", &old) else {
            panic!("refresh refused")
        };
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        assert!(matches!(
            grant(&mut s, "refresh_token", "refresh_token", &old),
            Reply::Json(400, _)
        ));
        assert_eq!(s.user_of("nope"), Err(Refused::Unknown));
    }
}
