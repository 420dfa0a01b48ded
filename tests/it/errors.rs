//! Every failure the model can see says what happened and what to do.

use serde_json::{Value, json};

use crate::{
    portal::{Reply, TestPortal, error},
    util::{Launch, Server, is_error, text_of},
};

const READ: (&str, fn() -> Value) = ("landing_site_get_rights", || json!({"id": 645}));

async fn failure_text(reply: Reply, tool: &str, args: Value) -> String {
    let portal = TestPortal::always(reply).await;
    let url = portal.webhook_url();
    let server = Launch::new(&url)
        .env("BITRIX24_RATE_LIMIT", "20/5")
        .start()
        .await;
    let result = server.call(tool, args).await;
    assert!(
        is_error(&result),
        "{tool}: expected a tool error, got {result:?}"
    );
    assert!(result.structured_content.is_none());
    server.stop().await;
    text_of(&result)
}

#[tokio::test]
async fn portal_errors_are_explained() {
    let cases: Vec<(Reply, &str, Value, &[&str])> = vec![
        (
            error(401, "NO_AUTH_FOUND", "Wrong authorization data"),
            READ.0,
            READ.1(),
            &[
                "NO_AUTH_FOUND",
                "Wrong authorization data",
                "deleted or has expired",
                "What to do",
            ],
        ),
        (
            error(
                403,
                "insufficient_scope",
                "The request requires higher privileges than provided by the webhook token",
            ),
            "tasks_task_get_access",
            json!({"taskId": 1}),
            &["insufficient_scope", "`task` scope", "tick"],
        ),
        (
            error(403, "insufficient_scope", "higher privileges"),
            "sonet_group_feature_access",
            json!({"GROUP_ID": 1, "FEATURE": "tasks", "OPERATION": "view"}),
            &["`sonet_group` scope"],
        ),
        (
            error(403, "ACCESS_DENIED", "Access denied"),
            "sonet_group_user_groups",
            json!({}),
            &["ACCESS_DENIED", "lacks the right"],
        ),
        // Landing documents its own meaning: no access to the Sites section.
        (
            error(403, "ACCESS_DENIED", "Access denied"),
            READ.0,
            READ.1(),
            &["ACCESS_DENIED", "Sites and Stores section"],
        ),
        (
            error(403, "IS_NOT_ADMIN", "Administrator rights required"),
            "landing_site_set_rights",
            json!({"id": 1, "rights": {}}),
            &["IS_NOT_ADMIN", "full access"],
        ),
        (
            error(400, "", "Wrong operation"),
            "sonet_group_feature_access",
            json!({"GROUP_ID": 1, "FEATURE": "chat", "OPERATION": "view"}),
            &["(no code)", "Wrong operation", "OPERATION is not valid"],
        ),
        (
            error(
                400,
                "100",
                "Invalid value {} to match with parameter {users}. Should be value of type array.",
            ),
            "tasks_task_get_access",
            json!({"taskId": 1}),
            &["100", "parameter {users}"],
        ),
        (
            error(400, "", "wrong task id"),
            "tasks_task_get_access",
            json!({"taskId": 1}),
            &["taskId has the wrong type"],
        ),
        (
            error(503, "OVERLOAD_LIMIT", "REST API is blocked due to overload"),
            READ.0,
            READ.1(),
            &["OVERLOAD_LIMIT", "support"],
        ),
        (
            error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            READ.0,
            READ.1(),
            &["INTERNAL_SERVER_ERROR", "internal error"],
        ),
        (
            error(403, "PORTAL_DELETED", "Portal was deleted"),
            READ.0,
            READ.1(),
            &["PORTAL_DELETED", "do not retry"],
        ),
        (
            error(418, "SOMETHING_NEW", "unheard of"),
            READ.0,
            READ.1(),
            &["SOMETHING_NEW", "unheard of", "What to do"],
        ),
        (
            Reply::Raw {
                status: 502,
                content_type: "text/html",
                body: b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
                    .to_vec(),
            },
            READ.0,
            READ.1(),
            &["HTML page", "502 Bad Gateway", "What to do"],
        ),
        (
            Reply::Raw {
                status: 200,
                content_type: "application/json",
                body: br#"{"result":["read","ed"#.to_vec(),
            },
            READ.0,
            READ.1(),
            &["cut off", "What to do"],
        ),
        (
            Reply::Raw {
                status: 200,
                content_type: "application/json",
                body: br#"{"status":"ok"}"#.to_vec(),
            },
            READ.0,
            READ.1(),
            &["without `result`"],
        ),
        (
            Reply::CutOff(json!({"result": ["read", "edit", "sett", "public", "delete"]})),
            READ.0,
            READ.1(),
            &["lost the connection", "Call again"],
        ),
        (
            Reply::Reset,
            "landing_site_set_rights",
            json!({"id": 1, "rights": {"AU": ["read"]}}),
            &[
                "lost the connection",
                "may or may not have applied this write",
            ],
        ),
    ];
    for (reply, tool, args, expected) in cases {
        let text = failure_text(reply.clone(), tool, args).await;
        for needle in expected {
            assert!(
                text.contains(needle),
                "{reply:?}: missing {needle:?} in: {text}"
            );
        }
    }
}

#[tokio::test]
async fn unreachable_portal_says_nothing_was_sent() {
    // A socket bound but never listening holds the port, so connections to it are refused and
    // no other process can take it while the test runs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/rest/1/abcdefgh12345678/");
    let server = Server::start(&url).await;
    let result = server.call(READ.0, READ.1()).await;
    let text = text_of(&result);
    assert!(is_error(&result));
    assert!(
        text.contains("could not connect") && text.contains("nothing was sent"),
        "{text}"
    );
    server.stop().await;
    drop(socket);
}
