//! The README's tool table is generated from the catalog; this fails when it is stale.
//! Regenerate with `UPDATE_README=1 cargo test readme`.

use bitrix24_permissions_mcp::testing::{Catalog, markdown_table};

const BEGIN: &str =
    "<!-- tool-table:begin (generated from tools/, UPDATE_README=1 cargo test readme) -->\n";
const END: &str = "<!-- tool-table:end -->";

#[test]
fn readme_tool_table_matches_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README has the tool-table begin marker")
        + BEGIN.len();
    let end = readme[start..]
        .find(END)
        .expect("README has the tool-table end marker")
        + start;
    let table = markdown_table(&Catalog::embedded().unwrap());
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(
            path,
            format!("{}{table}{}", &readme[..start], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README tool table is stale: run UPDATE_README=1 cargo test readme"
    );
}
