//! How calls authenticate: the [`Credentials`] seam, and today's one implementation, the
//! inbound webhook.
//!
//! The whole webhook URL is a credential (the secret is a path segment), so it lives in a
//! `SecretString`, only a masked form can be displayed, and its secret is registered with
//! [`Secrets::global`] as soon as it is parsed, because the portal or a proxy in front of it
//! may echo the URL back. OAuth tokens that rotate would be a second implementation: they
//! would register each new token the same way.

use std::{fmt, net::IpAddr};

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::{
    api::Api,
    secrets::{MASK, Secrets},
};

/// What the portal client needs from a way of authenticating.
pub trait Credentials: Send + Sync + fmt::Debug + fmt::Display {
    /// The address `method` is called at through `api`. Only the HTTP client may see it.
    fn method_url(&self, api: Api, method: &str) -> String;
    /// The portal and the user calls act as, without any secret: it names the portal's
    /// shared rate bucket and the rows of a journal.
    fn identity(&self) -> Identity;
    /// True when the portal is reached over plain http on loopback (the sandbox, tests):
    /// such a client needs no root certificates.
    fn is_loopback_http(&self) -> bool;
    /// Which access token `method_url` uses now; it changes when [`Credentials::renew`] gets a
    /// new one. A webhook never changes.
    fn generation(&self) -> u64 {
        0
    }
    /// Gets a new access token after the portal said the one of `seen` expired, unless
    /// another call already did. `None`: these credentials cannot be renewed.
    fn renew(&self, seen: u64) -> Option<BoxFuture<'_, Result<(), String>>> {
        let _ = seen;
        None
    }
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Who calls go out as: the portal's host (with port) and the acting user's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub host: String,
    pub user_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error(
        "BITRIX24_WEBHOOK_URL is not a URL ({masked}). Expected https://<portal>/rest/<user_id>/<secret>/"
    )]
    NotAUrl { masked: String },
    #[error(
        "BITRIX24_WEBHOOK_URL must use https ({masked}); plain http is accepted only for loopback hosts (127.0.0.1, ::1, localhost)"
    )]
    InsecureScheme { masked: String },
    #[error(
        "BITRIX24_WEBHOOK_URL must look like https://<portal>/rest/<user_id>/<secret>/ ({masked}): {problem}"
    )]
    BadShape {
        masked: String,
        problem: &'static str,
    },
}

/// A validated inbound-webhook base URL: `<scheme>://<host>/rest/<user_id>/<secret>/`.
#[derive(Clone)]
pub struct WebhookUrl {
    base: SecretString,
    /// The same webhook on REST 3.0: `/rest/api/<user_id>/<secret>/`.
    v3_base: SecretString,
    masked: String,
    identity: Identity,
    loopback_http: bool,
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.masked).finish()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|_| WebhookError::NotAUrl {
            masked: mask_unparsed(raw),
        })?;
        let masked = mask_parsed(&url);
        let loopback = is_loopback(&url);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(WebhookError::InsecureScheme { masked }),
        }
        let bad = |problem| WebhookError::BadShape {
            masked: masked.clone(),
            problem,
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the portal host is missing"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("remove the user name and password before the host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("remove everything after '?' or '#'"));
        }
        let path = url.path().trim_end_matches('/');
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["rest", user, secret] => {
                if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the segment after /rest/ must be the numeric user id"));
                }
                if secret.len() < 8
                    || !secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(bad(
                        "the secret must be the webhook code Bitrix24 generated (8 or more letters and digits)",
                    ));
                }
                let host = format!(
                    "{}{}",
                    url.host_str().unwrap_or_default(),
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                );
                let base = format!("{}://{host}/rest/{user}/{secret}/", url.scheme());
                let v3_base = format!("{}://{host}/rest/api/{user}/{secret}/", url.scheme());
                Secrets::global().register(secret);
                Ok(Self {
                    base: SecretString::from(base),
                    v3_base: SecretString::from(v3_base),
                    masked,
                    identity: Identity {
                        host,
                        user_id: (*user).to_owned(),
                    },
                    loopback_http: loopback && url.scheme() == "http",
                })
            }
            ["rest", _, _, ..] => Err(bad(
                "remove the method name after the secret; the server appends it itself",
            )),
            _ => Err(bad("the path must be /rest/<user_id>/<secret>/")),
        }
    }
}

impl Credentials for WebhookUrl {
    fn method_url(&self, api: Api, method: &str) -> String {
        match api {
            Api::Classic => format!("{}{method}.json", self.base.expose_secret()),
            // The REST 3.0 pages never show a `.json` suffix, so none is risked.
            Api::V3 => format!("{}{method}", self.v3_base.expose_secret()),
        }
    }

    fn identity(&self) -> Identity {
        self.identity.clone()
    }

    fn is_loopback_http(&self) -> bool {
        self.loopback_http
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `scheme://host[:port]/rest/<user>/***/`: only `rest` and a numeric user id are shown;
/// any other segment of a malformed URL might be the secret, so it is hidden.
fn mask_parsed(url: &Url) -> String {
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let mut shown = String::new();
    let mut hidden = segments.len();
    if segments.first() == Some(&"rest") {
        shown.push_str("/rest");
        hidden -= 1;
        if let Some(user) = segments
            .get(1)
            .filter(|u| u.bytes().all(|b| b.is_ascii_digit()))
        {
            shown.push('/');
            shown.push_str(user);
            hidden -= 1;
        }
    }
    if hidden > 0 || url.query().is_some() || url.fragment().is_some() {
        shown.push('/');
        shown.push_str(MASK);
    }
    format!(
        "{}://{}{}{}/",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        shown
    )
}

fn mask_unparsed(raw: &str) -> String {
    if raw.is_empty() {
        "empty".to_owned()
    } else {
        format!("{} characters, not shown", raw.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "abcd1234efgh5678";

    #[test]
    fn accepts_the_documented_shape() {
        for raw in [
            "https://example.bitrix24.com/rest/1/abcd1234efgh5678/",
            "https://example.bitrix24.com/rest/1/abcd1234efgh5678",
            "http://127.0.0.1:8080/rest/12/abcd1234efgh5678/",
            "http://localhost/rest/12/abcd1234efgh5678",
            "http://[::1]:9/rest/12/abcd1234efgh5678",
        ] {
            let w = WebhookUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert!(!w.to_string().contains(SECRET));
            assert!(!format!("{w:?}").contains(SECRET));
            assert!(!w.identity().host.is_empty());
            assert_eq!(
                Secrets::global().redact("x abcd1234efgh5678 y"),
                "x *** y",
                "parsing registers the secret"
            );
            assert!(
                w.method_url(Api::Classic, "profile")
                    .ends_with("/rest/12/abcd1234efgh5678/profile.json")
                    || w.method_url(Api::Classic, "profile")
                        .ends_with("/rest/1/abcd1234efgh5678/profile.json")
            );
            let v3 = w.method_url(Api::V3, "main.eventlog.list");
            assert!(
                v3.contains("/rest/api/1/abcd1234efgh5678/main.eventlog.list")
                    || v3.contains("/rest/api/12/abcd1234efgh5678/main.eventlog.list"),
                "{v3}"
            );
            assert!(v3.ends_with("/main.eventlog.list"), "no .json on REST 3.0");
        }
    }

    #[test]
    fn refuses_and_masks() {
        let cases = [
            ("http://example.com/rest/1/abcd1234efgh5678/", "https"),
            ("https://example.com/rest/x/abcd1234efgh5678/", "user id"),
            (
                "https://example.com/rest/1/abcd1234efgh5678/profile.json",
                "method name",
            ),
            ("https://example.com/abcd1234efgh5678/", "path"),
            (
                "https://example.com/rest/1/abcd1234efgh5678/?a=b",
                "after '?'",
            ),
            (
                "https://u:p@example.com/rest/1/abcd1234efgh5678/",
                "password",
            ),
            ("abcd1234efgh5678", "not a URL"),
            ("https://example.com/rest/1/abc/", "secret"),
        ];
        for (raw, expected) in cases {
            let err = WebhookUrl::parse(raw).expect_err(raw).to_string();
            assert!(err.contains(expected), "{raw}: {err}");
            assert!(!err.contains(SECRET), "{raw}: secret leaked in {err}");
        }
    }
}
