//! Tables generated from the catalog (README's tool and scope tables, the scopes reference
//! page); these fail when one is stale. Regenerate with `UPDATE_README=1 cargo test readme`.

use bitrix24_permissions_mcp::testing::{Catalog, markdown_table, scope_table};

/// Replaces the text between `<!-- NAME:begin ... -->` and `<!-- NAME:end -->` in `file`
/// (when UPDATE_README is set), or checks that it already is `table`.
fn keep_in_step(file: &str, name: &str, table: &str) {
    let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = format!("<!-- {name}:begin");
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("{file} has no {begin} marker"));
    let start = start + text[start..].find("-->\n").unwrap() + "-->\n".len();
    let end = format!("<!-- {name}:end -->");
    let stop = start
        + text[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("{file} has no {end} marker"));
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &text[..start], &text[stop..])).unwrap();
        return;
    }
    assert_eq!(
        &text[start..stop],
        table,
        "{file}: the {name} is stale: run UPDATE_README=1 cargo test readme"
    );
}

#[test]
fn readme_tables_match_the_catalog() {
    let catalog = Catalog::embedded().unwrap();
    keep_in_step("README.md", "tool-table", &markdown_table(&catalog));
    keep_in_step("README.md", "scope-table", &scope_table(&catalog));
    keep_in_step(
        "src/mcp/reference/scopes.md",
        "scope-table",
        &scope_table(&catalog),
    );
}
