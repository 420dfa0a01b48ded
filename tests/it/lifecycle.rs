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
