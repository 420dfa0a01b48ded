//! What every client sees in `tools/list`.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use serde_json::Value;

use crate::{
    portal::TestPortal,
    util::{Launch, Server, is_error, text_of},
};

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

/// The context budget: what every session pays for before its first question.
const DEFAULT_MAX_TOOLS: usize = 15;
const DEFAULT_MAX_BYTES: usize = 20_000;

#[tokio::test]
async fn default_tools_list_fits_the_context_budget() {
    let portal = TestPortal::always(crate::portal::ok(Value::Null)).await;
    let server = Launch::new(&portal.webhook_url())
        .default_tools()
        .start()
        .await;
    let tools = server.client.list_all_tools().await.unwrap();
    let bytes = serde_json::to_string(&serde_json::json!({ "tools": tools }))
        .unwrap()
        .len();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.len() <= DEFAULT_MAX_TOOLS,
        "{} tools: {names:?}",
        names.len()
    );
    assert!(
        bytes <= DEFAULT_MAX_BYTES,
        "default tools/list is {bytes} bytes"
    );
    assert!(names.contains(&"enable_toolset"), "{names:?}");
    let all = Server::start(&portal.webhook_url()).await;
    let every = all.client.list_all_tools().await.unwrap();
    assert!(every.len() > tools.len(), "--toolsets all publishes more");
    all.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn enable_toolset_publishes_a_toolset_and_says_so() {
    let portal = TestPortal::always(crate::portal::ok(serde_json::json!([]))).await;
    let server = Launch::new(&portal.webhook_url())
        .default_tools()
        .start()
        .await;
    let capabilities = server
        .client
        .peer_info()
        .unwrap()
        .capabilities
        .tools
        .clone();
    assert_eq!(capabilities.and_then(|t| t.list_changed), Some(true));
    let before = server.client.list_all_tools().await.unwrap();
    assert!(!before.iter().any(|t| t.name == "department_get"));
    let refused = server
        .client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("department_get")
                .with_arguments(serde_json::Map::new()),
        )
        .await;
    assert!(refused.is_err(), "not yet published, not callable");

    let result = server
        .call("enable_toolset", serde_json::json!({"toolset": "people"}))
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let added = result.structured_content.unwrap()["result"]["added"].clone();
    assert!(
        added
            .as_array()
            .unwrap()
            .contains(&Value::from("department_get")),
        "{added}"
    );
    let after = server.client.list_all_tools().await.unwrap();
    assert!(after.iter().any(|t| t.name == "department_get"));
    assert!(!is_error(
        &server.call("department_get", serde_json::json!({})).await
    ));
    // The notice is sent before the answer; give the client's notification task its turn.
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the list-changed notice",
        || async { server.recorder.list_changed.load(Ordering::SeqCst) > 0 },
    )
    .await;
    assert_eq!(server.recorder.list_changed.load(Ordering::SeqCst), 1);

    let unknown = server
        .call("enable_toolset", serde_json::json!({"toolset": "nope"}))
        .await;
    assert!(is_error(&unknown));
    server.stop().await;
}

#[tokio::test]
async fn read_only_beats_a_toolset_enabled_at_run_time() {
    let portal = TestPortal::always(crate::portal::ok(serde_json::json!(true))).await;
    let server = Launch::new(&portal.webhook_url())
        .default_tools()
        .arg("--read-only")
        .start()
        .await;
    let result = server
        .call("enable_toolset", serde_json::json!({"toolset": "sites"}))
        .await;
    let added = result.structured_content.unwrap()["result"]["added"].clone();
    assert!(
        added
            .as_array()
            .unwrap()
            .contains(&Value::from("landing_role_get_list"))
    );
    assert!(
        !added
            .as_array()
            .unwrap()
            .contains(&Value::from("landing_site_set_rights"))
    );
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(
        tools
            .iter()
            .all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true))
    );
    server.stop().await;

    let off = Launch::new(&portal.webhook_url())
        .default_tools()
        .arg("--no-dynamic-toolsets")
        .start()
        .await;
    let tools = off.client.list_all_tools().await.unwrap();
    assert!(!tools.iter().any(|t| t.name == "enable_toolset"));
    off.stop().await;
}
