//! Text from the ledger on its way to a terminal. The ledger holds what models and portals
//! sent, and a terminal obeys some characters instead of showing them: C0 and C1 controls
//! (escape sequences that move the cursor, recolour or retitle the window), and Unicode's
//! bidirectional controls, which reorder the characters around them so a line reads other
//! than it is. Each is shown as its code instead.

use std::borrow::Cow;

use serde_json::Value;

/// Whether a terminal would act on `c` rather than show it.
fn unshown(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' // ALM, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}') // line and paragraph separators
}

fn escaped_with(text: &str, code: impl Fn(char) -> String) -> Cow<'_, str> {
    if !text.chars().any(unshown) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if unshown(c) { code(c) } else { c.to_string() })
            .collect(),
    )
}

/// `text` for a table: each such character as `\u{202E}`.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    escaped_with(text, |c| format!("\\u{{{:04X}}}", u32::from(c)))
}

/// `value` as one line of JSON with each such character as a JSON escape (`\u202e`), so the
/// line still parses to the same value. serde_json escapes only C0 by itself.
pub fn json_line(value: &Value) -> String {
    // Every such character is in the BMP, so one `\uXXXX` is its whole JSON escape, and it
    // can only stand inside a string: JSON's own syntax is ASCII.
    escaped_with(&value.to_string(), |c| format!("\\u{:04x}", u32::from(c))).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_c1_and_bidi_are_shown_as_codes() {
        let hostile = "a\u{1b}[31mb\u{9b}2Jc\u{202E}d\u{2066}e\nf";
        assert_eq!(
            for_terminal(hostile),
            "a\\u{001B}[31mb\\u{009B}2Jc\\u{202E}d\\u{2066}e\\u{000A}f"
        );
        let line = json_line(&serde_json::json!({"k": hostile}));
        assert!(!line.chars().any(unshown), "{line}");
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["k"], hostile);
        assert!(matches!(for_terminal("plain ü"), Cow::Borrowed(_)));
    }
}
