//! Both lifecycles: the `initialize` handshake and the 2026-07-28 `server/discover` opener.

use serde_json::json;

use crate::{
    portal::{TestPortal, ok},
    util::{Launch, is_error},
};

#[tokio::test]
async fn initialize_lifecycle_carries_instructions() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let server = Launch::new(&portal.webhook_url()).start().await;
    let info = server.client.peer_info().expect("server info");
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(instructions.contains("landing_site_set_rights") && instructions.len() < 2048);
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("bitrix24-permissions-mcp")
    );
    let result = server
        .call("landing_site_get_rights", json!({"id": 3}))
        .await;
    assert!(!is_error(&result));
    server.stop().await;
}

#[tokio::test]
async fn discover_lifecycle_carries_instructions_and_serves_tools() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let server = Launch::new(&portal.webhook_url()).discover().start().await;
    let info = server.client.peer_info().expect("server info");
    assert_eq!(info.protocol_version.as_str(), "2026-07-28");
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or_default()
            .contains("Bitrix24")
    );
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "tasks_task_get_access"));
    let result = server
        .call("landing_site_get_rights", json!({"id": 3}))
        .await;
    assert!(!is_error(&result));
    assert_eq!(result.structured_content, Some(json!({"result": ["read"]})));
    assert_eq!(portal.received().len(), 1);
    server.stop().await;
}

/// The instructions speak only of what the filters publish: no tool outside the list, and no
/// advice about writing when nothing can write.
#[tokio::test]
async fn instructions_follow_the_filters() {
    let portal = TestPortal::always(ok(json!(true))).await;
    let url = portal.webhook_url();
    for (args, forbidden) in [
        (
            vec!["--toolsets", "tasks"],
            &["profile", "scope", "batch", "landing_site_set_rights"][..],
        ),
        (
            vec!["--read-only"],
            &["REPLACE", "Writes", "landing_role_enable"][..],
        ),
    ] {
        let mut launch = Launch::new(&url);
        for arg in &args {
            launch = launch.arg(arg);
        }
        let server = launch.start().await;
        let instructions = server
            .client
            .peer_info()
            .and_then(|info| info.instructions.clone())
            .unwrap_or_default();
        let tools = server.client.list_all_tools().await.unwrap();
        for word in forbidden {
            assert!(
                !instructions.contains(word),
                "{args:?}: {word} in\n{instructions}"
            );
        }
        // Every tool-like word (snake_case) it names is published.
        for word in instructions.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.contains('_') && word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                assert!(
                    word == "insufficient_scope" || tools.iter().any(|t| t.name == word),
                    "{args:?}: names {word}:\n{instructions}"
                );
            }
        }
        server.stop().await;
    }
}
