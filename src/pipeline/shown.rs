//! Text from the model or the portal, made safe to show a person: one line, nothing
//! invisible, bounded. The question, the comparison and the ledger's notes all use it.

use serde_json::Value;

/// The longest value shown whole; longer ones are cut with a marker saying how much.
const MAX_SHOWN_CHARS: usize = 120;

/// Characters that change how text around them is displayed without being seen: bidi
/// embeddings, overrides and isolates, marks, zero-width characters and separators.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{180E}' | '\u{00AD}')
}

/// Untrusted text, made safe to put into a question: one line, nothing invisible, bounded.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    let total = text.chars().count();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SHOWN_CHARS {
            out.push_str(&format!("…[cut: {} more characters]", total - count));
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() || is_invisible(c) => {
                out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// A name the portal gave (`access.name`, `user.get`), if it gave one.
pub fn name_in(about: &Value) -> Option<&str> {
    about
        .get("name")
        .or_else(|| about.get("NAME"))
        .and_then(Value::as_str)
        .or_else(|| about.as_str())
        .filter(|n| !n.is_empty())
}
