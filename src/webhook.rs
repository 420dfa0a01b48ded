//! The webhook URL and the masking of its secret.
//!
//! The whole URL is a credential (the secret is a path segment), so it lives in a
//! `SecretString` and only a masked form can be displayed. Everything that leaves the
//! process (tool results, error texts, logs) goes through [`Redactor`], because the portal
//! or a proxy in front of it may echo the URL back.

use std::{borrow::Cow, fmt, net::IpAddr};

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What replaces the secret wherever it would be shown.
pub const MASK: &str = "***";

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
    secret: SecretString,
    masked: String,
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
                let base = format!(
                    "{}://{}{}/rest/{user}/{secret}/",
                    url.scheme(),
                    url.host_str().unwrap_or_default(),
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                );
                Ok(Self {
                    base: SecretString::from(base),
                    secret: SecretString::from(secret.to_string()),
                    masked,
                })
            }
            ["rest", _, _, ..] => Err(bad(
                "remove the method name after the secret; the server appends it itself",
            )),
            _ => Err(bad("the path must be /rest/<user_id>/<secret>/")),
        }
    }

    /// The URL a method is called at. Only the HTTP client may see it.
    pub(crate) fn method_url(&self, method: &str) -> String {
        format!("{}{method}.json", self.base.expose_secret())
    }

    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.secret.expose_secret())
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

/// Replaces the webhook secret in any text or JSON before it leaves the process.
#[derive(Clone)]
pub struct Redactor {
    needle: Option<SecretString>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}

impl Redactor {
    pub fn new(secret: &str) -> Self {
        Self {
            needle: (!secret.is_empty()).then(|| SecretString::from(secret.to_owned())),
        }
    }

    /// A redactor with nothing to hide.
    #[cfg(test)]
    pub fn none() -> Self {
        Self { needle: None }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.needle {
            Some(n) if text.contains(n.expose_secret()) => {
                Cow::Owned(text.replace(n.expose_secret(), MASK))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Masks the secret in every string and key of a JSON value, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.needle.is_none() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                let dirty_keys: Vec<String> = map
                    .keys()
                    .filter(|k| matches!(self.redact(k), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in dirty_keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_value(v));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            assert!(
                w.method_url("profile")
                    .ends_with("/abcd1234efgh5678/profile.json")
            );
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

    #[test]
    fn redacts_text_and_json() {
        let r = Redactor::new(SECRET);
        assert_eq!(
            r.redact("see /rest/1/abcd1234efgh5678/x"),
            "see /rest/1/***/x"
        );
        let mut v = json!({"a": ["x abcd1234efgh5678"], "abcd1234efgh5678": 1});
        r.redact_value(&mut v);
        assert!(!v.to_string().contains(SECRET), "{v}");
        assert_eq!(v["a"][0], "x ***");
    }
}
