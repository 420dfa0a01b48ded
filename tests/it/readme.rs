//! Tables generated from the catalog (README's tool and scope tables, the scopes reference
//! page); these fail when one is stale. Regenerate with `UPDATE_README=1 cargo test readme`.

use bitrix24_permissions_mcp::testing::{
    Catalog, configuration_markdown, default_tools_list, markdown_table, scope_table,
};

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
    keep_in_step("README.md", "default-tools", &default_tools_list(&catalog));
    keep_in_step("docs/tools.md", "tool-table", &markdown_table(&catalog));
    keep_in_step("docs/tools.md", "scope-table", &scope_table(&catalog));
    keep_in_step(
        "src/mcp/reference/scopes.md",
        "scope-table",
        &scope_table(&catalog),
    );
}

/// docs/configuration.md is written from the clap definitions, whole.
#[test]
fn the_configuration_page_matches_the_options() {
    let path = format!("{}/docs/configuration.md", env!("CARGO_MANIFEST_DIR"));
    let page = configuration_markdown();
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text, page,
        "docs/configuration.md is stale: run UPDATE_README=1 cargo test readme"
    );
}

/// A newcomer reads the README whole: it stays short, and every page it links to exists.
#[test]
fn the_readme_is_short_and_its_links_resolve() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(text.len() <= 10 * 1024, "README.md is {} bytes", text.len());
    for link in text.split("](").skip(1) {
        let target = link.split([')', '#']).next().unwrap();
        if target.starts_with("http") || target.is_empty() {
            continue;
        }
        assert!(
            std::path::Path::new(&format!("{root}/{target}")).exists(),
            "README links to {target}, which does not exist"
        );
    }
    assert!(
        !text.contains("npx -y bitrix24-permissions-mcp")
            || text.contains("After the first release"),
        "npx lines only where they say they wait for the first release"
    );
}
