//! Each tool forwards exactly its arguments and returns the whole answer in structuredContent.

use serde_json::{Value, json};

use crate::{
    portal::{TestPortal, ok},
    util::{Server, is_error, text_of},
};

struct Case {
    tool: &'static str,
    method: &'static str,
    args: Value,
    answer: Value,
    expected: Value,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            tool: "sonet_group_feature_access",
            method: "sonet_group.feature.access",
            args: json!({"GROUP_ID": 77, "FEATURE": "blog", "OPERATION": "write_post"}),
            answer: json!(true),
            expected: json!({"result": true}),
        },
        Case {
            tool: "landing_site_get_rights",
            method: "landing.site.getRights",
            args: json!({"id": 645}),
            answer: json!(["read", "edit", "sett"]),
            expected: json!({"result": ["read", "edit", "sett"]}),
        },
        Case {
            tool: "landing_site_get_rights",
            method: "landing.site.getRights",
            args: json!({"id": 645}),
            answer: json!([]),
            expected: json!({"result": []}),
        },
        Case {
            tool: "landing_site_set_rights",
            method: "landing.site.setRights",
            args: json!({"id": 645, "rights": {"AU": ["read"], "U3": ["read", "edit", "sett", "public"], "SG12_K": ["denied"]}}),
            answer: json!(true),
            expected: json!({"result": true}),
        },
        Case {
            tool: "landing_site_set_rights",
            method: "landing.site.setRights",
            args: json!({"id": 0, "rights": {}}),
            answer: json!(false),
            expected: json!({"result": false}),
        },
        Case {
            tool: "tasks_task_get_access",
            method: "tasks.task.getaccess",
            args: json!({"taskId": 8017, "users": [503, 547]}),
            answer: json!({"allowedActions": {"503": {"EDIT": true, "REMOVE": false}, "547": {"EDIT": false}}}),
            expected: json!({"result": {"allowedActions": {"503": {"EDIT": true, "REMOVE": false}, "547": {"EDIT": false}}}}),
        },
        Case {
            // The documented quirk: [] for a task the caller cannot see becomes {}.
            tool: "tasks_task_get_access",
            method: "tasks.task.getaccess",
            args: json!({"taskId": 9}),
            answer: json!({"allowedActions": []}),
            expected: json!({"result": {"allowedActions": {}}}),
        },
    ]
}

#[tokio::test]
async fn each_tool_forwards_exactly_and_returns_the_result() {
    for case in cases() {
        let portal = TestPortal::always(ok(case.answer.clone())).await;
        let server = Server::start(&portal.webhook_url()).await;
        let tools = server.client.list_all_tools().await.unwrap();
        let result = server.call(case.tool, case.args.clone()).await;
        assert!(!is_error(&result), "{}: {}", case.tool, text_of(&result));

        let received: Vec<_> = portal
            .received()
            .into_iter()
            .filter(|r| r.method == case.method)
            .collect();
        assert_eq!(received.len(), 1, "{}: exactly one request", case.tool);
        let request = &received[0];
        assert_eq!(request.method, case.method);
        assert_eq!(request.body, case.args, "{}: forwarded verbatim", case.tool);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(
            request
                .header("user-agent")
                .unwrap()
                .starts_with("bitrix24-permissions-mcp/")
        );

        let structured = result
            .structured_content
            .clone()
            .expect("structuredContent");
        assert_eq!(structured, case.expected, "{}", case.tool);
        // The text block carries the same JSON for clients that ignore structuredContent.
        assert_eq!(
            serde_json::from_str::<Value>(&text_of(&result)).unwrap(),
            case.expected
        );

        let tool = tools.iter().find(|t| t.name == case.tool).unwrap();
        let schema = Value::Object(tool.output_schema.as_deref().unwrap().clone());
        let validator = jsonschema::validator_for(&schema).unwrap();
        let problems: Vec<String> = validator
            .iter_errors(&structured)
            .map(|e| e.to_string())
            .collect();
        assert!(
            problems.is_empty(),
            "{}: structuredContent breaks outputSchema: {problems:?}",
            case.tool
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_arguments_never_reach_the_portal() {
    let bad: &[(&str, Value, &str)] = &[
        (
            "sonet_group_feature_access",
            json!({"GROUP_ID": "abc", "FEATURE": "blog", "OPERATION": "view"}),
            "GROUP_ID",
        ),
        (
            "sonet_group_feature_access",
            json!({"GROUP_ID": 1, "FEATURE": "blog"}),
            "OPERATION",
        ),
        (
            "sonet_group_feature_access",
            json!({"group_id": 1, "GROUP_ID": 1, "FEATURE": "blog", "OPERATION": "view"}),
            "group_id",
        ),
        ("landing_site_get_rights", json!({}), "id"),
        ("landing_site_get_rights", json!({"id": "six"}), "id"),
        ("landing_site_set_rights", json!({"id": 1}), "rights"),
        (
            "landing_site_set_rights",
            json!({"id": 1, "rights": {"everyone": ["read"]}}),
            "everyone",
        ),
        (
            "landing_site_set_rights",
            json!({"id": 1, "rights": {"AU": ["write"]}}),
            "rights/AU/0",
        ),
        (
            "landing_site_set_rights",
            json!({"id": 1, "rights": {"AU": []}}),
            "rights/AU",
        ),
        (
            "tasks_task_get_access",
            json!({"taskId": 5, "users": "503"}),
            "users",
        ),
        (
            "tasks_task_get_access",
            json!({"taskId": 5, "users": [503, "547"]}),
            "users/1",
        ),
        ("tasks_task_get_access", json!({"users": [1]}), "taskId"),
    ];
    let portal = TestPortal::always(ok(json!(true))).await;
    let server = Server::start(&portal.webhook_url()).await;
    for (tool, args, names) in bad {
        let result = server.call(tool, args.clone()).await;
        let text = text_of(&result);
        assert!(is_error(&result), "{tool} {args}: accepted");
        assert!(
            text.contains(names),
            "{tool} {args}: does not name `{names}`: {text}"
        );
        assert!(text.contains("nothing was sent"), "{text}");
    }
    assert!(
        portal.received().is_empty(),
        "a bad argument reached the portal"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error() {
    let portal = TestPortal::always(ok(json!(true))).await;
    let server = Server::start(&portal.webhook_url()).await;
    let params =
        rmcp::model::CallToolRequestParams::new("no_such_tool").with_arguments(Default::default());
    let err = server
        .client
        .call_tool(params)
        .await
        .expect_err("unknown tool must fail");
    let message = err.to_string();
    assert!(
        message.contains("no_such_tool") && message.contains("-32602"),
        "{message}"
    );
    assert!(portal.received().is_empty());
    server.stop().await;
}
