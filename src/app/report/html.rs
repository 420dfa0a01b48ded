//! The matrix as one self-contained HTML page: people × objects, each right a chip whose
//! source shows on hover (or keyboard focus), a filter for long lists, and what is not known.
//! The page scrolls as a whole (the header row sticks): a scrolling box would clip the sources.
//! No external assets, and a Content-Security-Policy that forbids loading any; every string
//! from the portal is HTML-escaped.

use std::fmt::Write;

use super::{Cell, Matrix};

/// Text for an element's content or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2733; background: #f6f8fa; }
body { margin: 0; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.summary { color: #52606d; margin: 0 0 12px; }
.sandbox { background: #fff4d6; border: 1px solid #f0c36d; padding: 6px 10px; border-radius: 6px; }
details.notes { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 8px 14px; margin: 12px 0; }
details.notes summary { cursor: pointer; font-weight: 600; }
details.notes li { margin: 4px 0; }
.tools { display: flex; gap: 16px; align-items: center; margin: 12px 0; }
.tools input { font: inherit; padding: 4px 8px; border: 1px solid #b8c2cc; border-radius: 6px; min-width: 240px; }
.legend { color: #52606d; }
#shown { white-space: nowrap; }
.scroll { border: 1px solid #d8dee4; border-radius: 8px; background: #fff; width: max-content; min-width: 100%; }
table { border-collapse: separate; border-spacing: 0; min-width: 100%; }
th, td { padding: 6px 10px; border-bottom: 1px solid #eef1f4; text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: #eef2f6; z-index: 2; border-bottom: 1px solid #d8dee4; white-space: nowrap; }
thead th small { display: block; font-weight: normal; color: #a05a00; }
tbody th { font-weight: 500; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
.id { color: #7b8794; font-weight: normal; font-size: 12px; }
.right { position: relative; display: inline-block; margin: 1px 4px 1px 0; padding: 0 7px; border-radius: 10px; background: #e3effd; border: 1px solid #9cc3f5; cursor: help; outline: none; }
.right.ledger { background: #fdf3e3; border: 1px dashed #e0a85a; }
.right:focus-visible { box-shadow: 0 0 0 2px #1f6feb; }
.tip { display: none; position: absolute; left: 0; top: 100%; margin-top: 4px; z-index: 5; width: 340px; padding: 8px 10px; border-radius: 6px; background: #1d2733; color: #fff; font-size: 12px; line-height: 1.4; white-space: normal; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.right:hover .tip, .right:focus .tip { display: block; }
#none { padding: 12px; color: #52606d; }
"#;

const SCRIPT: &str = r#"
(function () {
  var filter = document.getElementById('filter');
  var rows = document.querySelectorAll('#matrix tbody tr');
  var shown = document.getElementById('shown');
  var none = document.getElementById('none');
  filter.addEventListener('input', function () {
    var q = filter.value.trim().toLowerCase(), n = 0;
    for (var i = 0; i < rows.length; i++) {
      var hit = !q || rows[i].getAttribute('data-search').indexOf(q) >= 0;
      rows[i].hidden = !hit;
      if (hit) n++;
    }
    shown.textContent = n + ' of ' + rows.length + ' people';
    none.hidden = n > 0;
  });
})();
"#;

fn chips(cells: &[Cell], out: &mut String) {
    for c in cells {
        let class = if c.ledger { "right ledger" } else { "right" };
        let _ = write!(
            out,
            r#"<span class="{class}" tabindex="0" data-code="{}">{}<span class="tip" role="tooltip">{}: {}</span></span>"#,
            escape(&c.code),
            escape(&c.right),
            escape(&c.right),
            escape(&c.source)
        );
    }
}

fn notes(m: &Matrix, out: &mut String) {
    let mut items = Vec::new();
    for (who, why) in &m.unknown {
        items.push(format!(
            "<b>Every object — {}</b>: {}",
            escape(who),
            escape(why)
        ));
    }
    for c in &m.columns {
        let label = escape(&c.label);
        if let Some(error) = &c.error {
            items.push(format!(
                "<b>{label}</b> could not be read: {}",
                escape(error)
            ));
        }
        for (who, why) in &c.unknown {
            items.push(format!("<b>{label} — {}</b>: {}", escape(who), escape(why)));
        }
        for e in &c.evidence {
            items.push(format!("<b>{label}</b>, evidence: {}", escape(e)));
        }
    }
    if items.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<details class="notes" id="notes"><summary>What is not known ({}), and the evidence</summary><ul>"#,
        items.len()
    );
    for item in items {
        let _ = write!(out, "<li>{item}</li>");
    }
    out.push_str("</ul></details>\n");
}

fn table(m: &Matrix, out: &mut String) {
    out.push_str(
        r#"<div class="scroll"><table id="matrix"><thead><tr><th scope="col">Person</th>"#,
    );
    for c in &m.columns {
        let mark = if c.complete {
            ""
        } else {
            "<small>incomplete: see above</small>"
        };
        let _ = write!(out, r#"<th scope="col">{}{mark}</th>"#, escape(&c.label));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &m.rows {
        let search =
            format!("{} {}", row.name.as_deref().unwrap_or_default(), row.id).to_lowercase();
        let name = row
            .name
            .as_deref()
            .map_or_else(|| "user".to_owned(), escape);
        let _ = write!(
            out,
            r#"<tr data-search="{}"><th scope="row">{name} <span class="id">{}</span></th>"#,
            escape(&search),
            escape(&row.id)
        );
        for cells in &row.cells {
            out.push_str("<td>");
            chips(cells, out);
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

pub fn render(m: &Matrix) -> String {
    let mut out = String::with_capacity(4096 + m.rows.len() * 400);
    let title = escape(&m.title);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title><style>{STYLE}</style></head>\n<body>\n<header><h1>{title}</h1><p class=\"summary\">{}</p>",
        escape(&m.summary)
    );
    if let Some(notice) = m.sandbox {
        let _ = write!(out, r#"<p class="sandbox">{}</p>"#, escape(notice));
    }
    out.push_str("</header>\n");
    notes(m, &mut out);
    let count = m.rows.len();
    let _ = write!(
        out,
        r#"<div class="tools"><label>Filter people <input id="filter" type="search" autocomplete="off" placeholder="name or ID"></label><span id="shown">{count} of {count} people</span><span class="legend">Solid: read from the portal now. Dashed: from the last set written through this server. Hover or focus a right for its source.</span></div>"#
    );
    out.push('\n');
    table(m, &mut out);
    let hidden = if count == 0 { "" } else { " hidden" };
    let _ = write!(
        out,
        "<p id=\"none\"{hidden}>Nobody is known to hold a right here.</p>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_text_is_escaped_everywhere() {
        let page = render(&super::super::tests::sample());
        assert!(!page.contains("<b>shop"), "a label became markup");
        assert!(!page.contains("<Sons>") && !page.contains("<Labs>"));
        assert!(page.contains("Chloé O&#39;Hara &amp; &lt;Sons&gt;"));
        assert!(page.contains("site 646 | &lt;b&gt;shop&lt;/b&gt;"));
        assert!(page.contains("D4 (R&amp;D &lt;Labs&gt;)"));
        assert!(page.contains(r#"data-search="chloé o&#39;hara &amp; &lt;sons&gt; 13""#));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external asset"
        );
        assert_eq!(page.matches("<tr data-search").count(), 2);
    }
}
