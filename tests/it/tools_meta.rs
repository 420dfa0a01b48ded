//! What every client sees in `tools/list`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{portal::TestPortal, util::Server};

/// The seed tools and their required arguments, as the core issue names them.
const SEED_TOOLS: &[(&str, &[&str])] = &[
    ("landing_site_get_rights", &["id"]),
    ("landing_site_set_rights", &["id", "rights"]),
    (
        "sonet_group_feature_access",
        &["FEATURE", "GROUP_ID", "OPERATION"],
    ),
    ("tasks_task_get_access", &["taskId"]),
];

#[tokio::test]
async fn every_tool_is_fully_described() {
    let portal = TestPortal::always(crate::portal::ok(Value::Null)).await;
    let server = Server::start(&portal.webhook_url()).await;
    let tools = server.client.list_all_tools().await.unwrap();
    let name_pattern = regex_lite(r"^[a-z0-9_]{1,64}$");
    assert!(tools.len() >= SEED_TOOLS.len());
    for tool in &tools {
        let name = tool.name.as_ref();
        assert!(name_pattern(name), "{name}: bad name");
        assert!(
            tool.title.as_deref().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let a = tool
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no annotations"));
        assert!(a.read_only_hint.is_some(), "{name}: readOnlyHint unset");
        assert!(
            a.destructive_hint.is_some(),
            "{name}: destructiveHint unset"
        );
        assert!(a.idempotent_hint.is_some(), "{name}: idempotentHint unset");
        assert!(a.open_world_hint.is_some(), "{name}: openWorldHint unset");
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            !description.is_empty() && description.len() < 2048,
            "{name}: description size {}",
            description.len()
        );
        let first_line = description.lines().next().unwrap();
        assert!(
            first_line.len() > 40 && first_line.contains(['.', ';']),
            "{name}: key sentence first: {first_line}"
        );
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no outputSchema"));
        assert_eq!(output.get("type"), Some(&Value::from("object")), "{name}");
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&Value::from("object")),
            "{name}"
        );
    }
    let by_name: BTreeMap<&str, _> = tools.iter().map(|t| (t.name.as_ref(), t)).collect();
    for (name, required) in SEED_TOOLS {
        let tool = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        let mut listed: Vec<&str> = tool.input_schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(&listed, required, "{name}: required arguments");
    }
    let set_rights = by_name["landing_site_set_rights"]
        .annotations
        .clone()
        .unwrap();
    assert_eq!(
        (
            set_rights.read_only_hint,
            set_rights.destructive_hint,
            set_rights.idempotent_hint
        ),
        (Some(false), Some(true), Some(true))
    );
    for reader in [
        "landing_site_get_rights",
        "sonet_group_feature_access",
        "tasks_task_get_access",
    ] {
        let a = by_name[reader].annotations.clone().unwrap();
        assert_eq!(
            (
                a.read_only_hint,
                a.destructive_hint,
                a.idempotent_hint,
                a.open_world_hint
            ),
            (Some(true), Some(false), Some(true), Some(true)),
            "{reader}"
        );
    }
    server.stop().await;
}

/// One snapshot per tool, so a schema change shows as one small diff next to its tool.
/// Review changes with `cargo insta review` (or accept with `INSTA_UPDATE=always`).
#[tokio::test]
async fn one_snapshot_per_tool() {
    let catalog = bitrix24_permissions_mcp::testing::Catalog::embedded().unwrap();
    let names: Vec<String> = catalog.entries().map(|e| e.spec.name.clone()).collect();
    let portal = TestPortal::always(crate::portal::ok(Value::Null)).await;
    let server = crate::util::Launch::new(&portal.webhook_url())
        .env("BITRIX24_TOOLS", &names.join(","))
        .start()
        .await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), names.len(), "every catalog tool is published");
    for tool in &tools {
        insta::assert_json_snapshot!(format!("tool__{}", tool.name), tool);
    }
    server.stop().await;

    // A snapshot whose tool left the catalog would never be checked again: refuse it.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/snapshots");
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap().file_name().into_string().unwrap();
        if let Some(tool) = file
            .strip_prefix("it__tools_meta__tool__")
            .and_then(|f| f.strip_suffix(".snap"))
        {
            assert!(
                names.iter().any(|n| n == tool),
                "{file} belongs to no catalog tool: delete it"
            );
        }
    }
}

fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let schema = serde_json::json!({"type": "string", "pattern": pattern});
    let validator = jsonschema::validator_for(&schema).unwrap();
    move |s| validator.is_valid(&Value::from(s))
}
