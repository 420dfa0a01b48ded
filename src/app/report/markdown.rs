//! The matrix as Markdown: a table of people × objects (each cell: rights with their codes),
//! then the access codes' sources, what is unknown and the evidence. Portal text is escaped
//! so no name becomes markup, a link or a broken table.

use std::{collections::BTreeMap, fmt::Write};

use super::{Cell, Matrix};

/// Portal text as literal Markdown: punctuation that would start markup escaped, a table's
/// `|` too, and no line breaks.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn cell(rights: &[Cell]) -> String {
    rights
        .iter()
        .map(|r| format!("{} ({})", escape(&r.right), escape(&r.code)))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn render(m: &Matrix) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n\n{}\n", escape(&m.title), escape(&m.summary));
    if let Some(notice) = m.sandbox {
        let _ = writeln!(out, "> {}\n", escape(notice));
    }
    let header: Vec<String> = m
        .columns
        .iter()
        .map(|c| {
            let mark = if c.complete { "" } else { " (incomplete)" };
            format!("{}{mark}", escape(&c.label))
        })
        .collect();
    let _ = writeln!(out, "| person | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(m.columns.len()));
    for row in &m.rows {
        let cells: Vec<String> = row.cells.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} | {} |", escape(&row.label()), cells.join(" | "));
    }
    if m.rows.is_empty() {
        let _ = writeln!(out, "\nNobody is known to hold a right here.");
    }
    sources(m, &mut out);
    notes(m, &mut out);
    out
}

/// Each code once, with how its holders hold it: the cells name only the code.
fn sources(m: &Matrix, out: &mut String) {
    let mut by_code: BTreeMap<&str, &str> = BTreeMap::new();
    for row in &m.rows {
        for cell in row.cells.iter().flatten() {
            by_code.entry(&cell.code).or_insert(&cell.source);
        }
    }
    if by_code.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Where the rights come from\n");
    for (code, source) in by_code {
        let _ = writeln!(out, "- **{}**: {}", escape(code), escape(source));
    }
}

fn notes(m: &Matrix, out: &mut String) {
    let any = !m.unknown.is_empty()
        || m.columns
            .iter()
            .any(|c| !c.unknown.is_empty() || c.error.is_some() || !c.evidence.is_empty());
    if !any {
        return;
    }
    let _ = writeln!(out, "\n## What is not known, and the evidence\n");
    for (who, why) in &m.unknown {
        let _ = writeln!(out, "- Every object: **{}**: {}", escape(who), escape(why));
    }
    for c in &m.columns {
        let label = escape(&c.label);
        if let Some(error) = &c.error {
            let _ = writeln!(out, "- {label}: could not be read: {}", escape(error));
        }
        for (who, why) in &c.unknown {
            let _ = writeln!(out, "- {label}: **{}**: {}", escape(who), escape(why));
        }
        for e in &c.evidence {
            let _ = writeln!(out, "- {label}: evidence: {}", escape(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_text_stays_text() {
        let text = render(&super::super::tests::sample());
        assert!(
            text.contains("| Chloé O'Hara \\& \\<Sons\\> (13) | edit (D4) |  |"),
            "{text}"
        );
        assert!(text.contains("site 646 \\| \\<b\\>shop\\</b\\>"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
        assert!(text.contains("**D4**: D4 (R\\&D \\<Labs\\>)"), "{text}");
        assert!(text.contains("G1 (Administrators) \\[edit\\]"), "{text}");
        assert_eq!(escape("a\nb|c"), "a b\\|c");
    }
}
