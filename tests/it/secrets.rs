//! The webhook secret never leaves the process: not in results, errors or logs, even when
//! the portal echoes it back.

use serde_json::json;

use crate::{
    portal::{Reply, SECRET, TestPortal, error, ok},
    util::{Server, text_of},
};

#[tokio::test]
async fn echoed_secret_is_masked_everywhere() {
    let echoes: Vec<Reply> = vec![
        error(
            401,
            "NO_AUTH_FOUND",
            &format!("Unknown webhook /rest/7/{SECRET}/"),
        ),
        error(400, SECRET, "code is the secret"),
        ok(json!([
            format!("https://portal.example/rest/7/{SECRET}/"),
            "read"
        ])),
        Reply::Json(
            200,
            json!({"result": {SECRET: true, "nested": [{"k": SECRET}]}}),
        ),
        Reply::Raw {
            status: 502,
            content_type: "text/html",
            body: format!("<html><title>Bad gateway for /rest/7/{SECRET}/x</title></html>")
                .into_bytes(),
        },
        Reply::Raw {
            status: 200,
            content_type: "text/plain",
            body: format!("oops {SECRET}").into_bytes(),
        },
        Reply::Reset,
    ];
    for reply in echoes {
        let portal = TestPortal::always(reply.clone()).await;
        let server = Server::start(&portal.webhook_url()).await;
        let result = server
            .call("landing_site_get_rights", json!({"id": 1}))
            .await;
        let wire = serde_json::to_string(&result).unwrap();
        assert!(
            !wire.contains(SECRET),
            "{reply:?}: secret in the result: {wire}"
        );
        assert!(!text_of(&result).is_empty());
        let stderr = server.stop().await;
        assert!(!stderr.is_empty(), "RUST_LOG=trace should produce logs");
        assert!(!stderr.contains(SECRET), "{reply:?}: secret in stderr");
        assert!(!portal.received().is_empty());
        assert!(
            portal.received()[0].path.contains(SECRET),
            "the real request does carry it"
        );
    }
}

#[tokio::test]
async fn masked_url_is_what_the_logs_show() {
    let portal = TestPortal::always(ok(json!([]))).await;
    let server = Server::start(&portal.webhook_url()).await;
    server
        .call("landing_site_get_rights", json!({"id": 1}))
        .await;
    let stderr = server.stop().await;
    assert!(stderr.contains("/rest/7/***/"), "{stderr}");
    assert!(!stderr.contains(SECRET));
}
