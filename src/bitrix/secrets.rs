//! The one registry of secrets this process has held, and the masking of them.
//!
//! Every credential registers its secret here the moment it exists, and nothing is ever
//! removed: a rotated OAuth token or a replaced webhook may still be echoed by a slow answer.
//! Everything that leaves the process (tool results, error texts, logs) goes through it, and
//! the logger reads the registry itself rather than a copy taken at start-up.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, OnceLock, RwLock},
};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What replaces a secret wherever it would be shown.
pub const MASK: &str = "***";

/// The shortest piece of a secret masked at the edge of a cut excerpt: shorter pieces are
/// too common in ordinary text to hide, and too short to help anyone guess the rest.
pub const EDGE_FRAGMENT: usize = 4;

/// A handle on a set of secrets; clones share the set.
#[derive(Clone, Default)]
pub struct Secrets {
    held: Arc<RwLock<Vec<SecretString>>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} held)", self.read().len())
    }
}

impl Secrets {
    /// The process-wide registry: credentials register here, and the logger and every
    /// front end mask with it.
    pub fn global() -> &'static Secrets {
        static GLOBAL: OnceLock<Secrets> = OnceLock::new();
        GLOBAL.get_or_init(Secrets::default)
    }

    /// Adds a secret; registering the same one twice changes nothing.
    pub fn register(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        if !held.iter().any(|s| s.expose_secret() == secret) {
            held.push(SecretString::from(secret.to_owned()));
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<SecretString>> {
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The text with every registered secret replaced by [`MASK`], wherever it appears in
    /// any letter case, and with any of its characters written as a JSON `\uXXXX` escape or
    /// a `%XX` percent escape: portals and proxies echo URLs in all of these forms.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with(text, false)
    }

    /// Like [`Secrets::redact`], for an excerpt of outside text that may begin or end in the
    /// middle of a secret (a body cut off in transit): a leading end or a trailing start of a
    /// secret, at least [`EDGE_FRAGMENT`] characters long, is masked too.
    pub fn redact_excerpt<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with(text, true)
    }

    fn redact_with<'a>(&self, text: &'a str, edges: bool) -> Cow<'a, str> {
        let held = self.read();
        let mut out = Cow::Borrowed(text);
        for secret in held.iter().map(ExposeSecret::expose_secret) {
            if let Some(masked) = mask_one(&out, secret.as_bytes(), edges) {
                out = Cow::Owned(masked);
            }
        }
        out
    }

    /// Masks every secret in every string and key of a JSON value, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.read().is_empty() {
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

/// Masks every occurrence of `secret` in `text`; `None` when there is none.
fn mask_one(text: &str, secret: &[u8], edges: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    let push = |out: &mut Option<String>, from: usize, to: usize, copied: &mut usize| {
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        o.push_str(&text[*copied..from]);
        o.push_str(MASK);
        *copied = to;
    };
    if edges {
        // A secret's tail at the very start of the excerpt.
        for skip in 1..secret.len().saturating_sub(EDGE_FRAGMENT - 1) {
            if let Some(end) = match_at(bytes, 0, &secret[skip..])
                && text.is_char_boundary(end)
            {
                push(&mut out, 0, end, &mut copied);
                i = end;
                break;
            }
        }
    }
    while i < bytes.len() {
        let found = match_at(bytes, i, secret)
            .filter(|&end| text.is_char_boundary(i) && text.is_char_boundary(end));
        match found {
            Some(end) => {
                push(&mut out, i, end, &mut copied);
                i = end;
            }
            None => {
                if edges && text.is_char_boundary(i) && reaches_end_as_prefix(bytes, i, secret) {
                    push(&mut out, i, bytes.len(), &mut copied);
                    i = bytes.len();
                } else {
                    i += 1;
                }
            }
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// Where a match of `secret` starting at `at` ends, if there is one.
fn match_at(text: &[u8], mut at: usize, secret: &[u8]) -> Option<usize> {
    for &want in secret {
        at += unit_at(text, at, want)?;
    }
    Some(at)
}

/// Whether the text from `at` to its end is a start of `secret` at least
/// [`EDGE_FRAGMENT`] characters long.
fn reaches_end_as_prefix(text: &[u8], mut at: usize, secret: &[u8]) -> bool {
    for (matched, &want) in secret.iter().enumerate() {
        if at == text.len() {
            return matched >= EDGE_FRAGMENT;
        }
        match unit_at(text, at, want) {
            Some(len) => at += len,
            // An escape cut off in the middle still ends the piece.
            None => {
                let rest = &text[at..];
                let cut_escape = rest.len() < 6 && matches!(rest.first(), Some(b'%' | b'\\'));
                return cut_escape && matched >= EDGE_FRAGMENT;
            }
        }
    }
    false
}

/// How many bytes of `text` at `at` spell the secret byte `want`: the byte itself in either
/// letter case, `%XX`, or `\uXXXX` (hex digits in either case); `None` when they do not.
fn unit_at(text: &[u8], at: usize, want: u8) -> Option<usize> {
    let same = |b: u8| b.eq_ignore_ascii_case(&want);
    let first = *text.get(at)?;
    if same(first) {
        return Some(1);
    }
    let hex = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        let digits = std::str::from_utf8(digits).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    match first {
        b'%' => {
            let v = hex(at + 1..at + 3)?;
            same(u8::try_from(v).ok()?).then_some(3)
        }
        b'\\' if text.get(at + 1) == Some(&b'u') && want.is_ascii() => {
            let v = hex(at + 2..at + 6)?;
            same(u8::try_from(v).ok()?).then_some(6)
        }
        _ => None,
    }
}

/// Compares two secrets without an early exit, so response times say nothing about them.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
    use serde_json::json;

    const SECRET: &str = "abcd1234efgh5678";

    #[test]
    fn redacts_text_and_json() {
        let s = Secrets::default();
        s.register(SECRET);
        assert_eq!(
            s.redact("see /rest/1/abcd1234efgh5678/x"),
            "see /rest/1/***/x"
        );
        let mut v = json!({"a": ["x abcd1234efgh5678"], "abcd1234efgh5678": 1});
        s.redact_value(&mut v);
        assert!(!v.to_string().contains(SECRET), "{v}");
        assert_eq!(v["a"][0], "x ***");
    }

    #[test]
    fn masks_escaped_and_recased_echoes() {
        let s = Secrets::default();
        s.register(SECRET);
        for echo in [
            "ABCD1234EFGH5678",
            "AbCd1234eFgH5678",
            r"\u0061\u0062\u0063\u0064\u0031\u0032\u0033\u0034\u0065\u0066\u0067\u0068\u0035\u0036\u0037\u0038",
            r"a\u0062cd12\u00334EFGH56\u00378",
            r"\u0041BCD1234efgh5678",
            "%61%62%63%641234efgh5678",
            "abcd%31%32%33%34efGH%35%36%37%38",
        ] {
            let text = format!("before {echo} after");
            assert_eq!(s.redact(&text), "before *** after", "{echo}");
        }
        assert_eq!(s.redact("abcd1234efgh567"), "abcd1234efgh567");
    }

    #[test]
    fn masks_pieces_at_the_edges_of_an_excerpt() {
        let s = Secrets::default();
        s.register(SECRET);
        assert_eq!(s.redact_excerpt("cut here abcd1234ef"), "cut here ***");
        assert_eq!(s.redact_excerpt("h5678 rest"), "*** rest");
        assert_eq!(s.redact_excerpt("x abc"), "x abc");
        assert_eq!(s.redact_excerpt(r"x abcd12\u00"), "x ***");
        assert_eq!(s.redact("cut here abcd1234ef"), "cut here abcd1234ef");
    }

    #[test]
    fn keeps_every_secret_it_ever_held() {
        let s = Secrets::default();
        let reader = s.clone();
        s.register("first-secret-1");
        s.register("second-secret-2");
        assert_eq!(reader.redact("first-secret-1 second-secret-2"), "*** ***");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "s3cr3tW3bh00kC0de";

    /// One way to write the secret: each character raw, recased, `\\uXXXX` or `%XX`.
    fn spelled() -> impl Strategy<Value = String> {
        prop::collection::vec(0u8..4, SECRET.len()).prop_map(|forms| {
            SECRET
                .bytes()
                .zip(forms)
                .map(|(b, form)| match form {
                    0 => char::from(b).to_string(),
                    1 => char::from(b.to_ascii_uppercase()).to_string(),
                    2 => format!("\\u{:04X}", b),
                    _ => format!("%{:02x}", b),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn no_spelling_survives(before in "[ -~]{0,40}", after in "[ -~]{0,40}", echo in spelled()) {
            let s = Secrets::default();
            s.register(SECRET);
            let text = format!("{before}{echo}{after}");
            let masked = s.redact(&text);
            prop_assert!(!masked.to_ascii_lowercase().contains(&SECRET.to_ascii_lowercase()), "{}", masked);
            prop_assert!(masked.contains(MASK));
        }
    }
}
