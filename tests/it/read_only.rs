//! Read-only mode: write tools are neither listed nor callable.

use serde_json::json;

use crate::{
    portal::{TestPortal, ok},
    util::Launch,
};

#[tokio::test]
async fn read_only_hides_and_refuses_writes() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    for launch in [
        Launch::new(&url).env("BITRIX24_READ_ONLY", "true"),
        Launch::new(&url).arg("--read-only"),
        Launch::new(&url).env("BITRIX24_READ_ONLY", "1"),
    ] {
        let server = launch.start().await;
        let tools = server.client.list_all_tools().await.unwrap();
        assert!(!tools.is_empty());
        for t in &tools {
            assert_eq!(
                t.annotations.as_ref().unwrap().read_only_hint,
                Some(true),
                "{} listed",
                t.name
            );
        }
        let params = rmcp::model::CallToolRequestParams::new("landing_site_set_rights")
            .with_arguments(json!({"id": 1, "rights": {}}).as_object().unwrap().clone());
        let err = server
            .client
            .call_tool(params)
            .await
            .expect_err("write must be refused");
        assert!(err.to_string().contains("read-only"), "{err}");
        // Reads still work.
        let read = server
            .call("landing_site_get_rights", json!({"id": 1}))
            .await;
        assert_eq!(read.is_error, Some(false));
        server.stop().await;
    }
    assert!(
        portal
            .received()
            .iter()
            .all(|r| r.method != "landing.site.setRights")
    );
    assert_eq!(
        portal.received().len(),
        3,
        "only the three reads reached the portal"
    );
}

#[tokio::test]
async fn writes_are_listed_by_default() {
    let portal = TestPortal::always(ok(json!(true))).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_READ_ONLY", "false")
        .start()
        .await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "landing_site_set_rights"));
    server.stop().await;
}
