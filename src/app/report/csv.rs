//! The matrix as CSV (RFC 4180): a row per person, a column per object, each cell the rights
//! with their codes. A cell that a spreadsheet would run as a formula starts with `'`.

use std::fmt::Write;

use super::{Cell, Matrix};

/// One field: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-`, `@` or control character defused, since spreadsheets run such cells as formulas.
pub fn field(text: &str) -> String {
    let defused = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn cell(rights: &[Cell]) -> String {
    rights
        .iter()
        .map(|r| format!("{} ({})", r.right, r.code))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn render(m: &Matrix) -> String {
    let mut out = String::new();
    let mut header = vec![field("person id"), field("person")];
    header.extend(m.columns.iter().map(|c| field(&c.label)));
    let _ = write!(out, "{}\r\n", header.join(","));
    for row in &m.rows {
        let mut line = vec![
            field(&row.id),
            field(row.name.as_deref().unwrap_or_default()),
        ];
        line.extend(row.cells.iter().map(|c| field(&cell(c))));
        let _ = write!(out, "{}\r\n", line.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let text = render(&super::super::tests::sample());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "person id,person,site 645,site 646 | <b>shop</b>");
        assert_eq!(lines[2], "13,Chloé O'Hara & <Sons>,edit (D4),");
        assert_eq!(
            lines[1],
            "7,\"'=HYPERLINK(\"\"x\"\")\",edit (checked),edit (U7)"
        );
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("-1"), "'-1");
    }
}
