//! The wider permission family: forwarding and errors for every tool, the write guards,
//! batch, filters and resources.

use bitrix24_permissions_mcp::testing::Catalog;
use serde_json::{Map, Value, json};

use crate::{
    portal::{Received, Reply, TestPortal, error, guarded, ok, v3_error},
    util::{Launch, Server, is_error, text_of},
};

/// One valid call per REST tool, with a portal answer of the documented shape: each catalog
/// entry's `[example]`, so a new tool is covered here without editing this file.
fn valid_calls() -> Vec<(String, String, Value, Value)> {
    Catalog::embedded()
        .unwrap()
        .entries()
        .filter_map(|e| {
            let s = &e.spec;
            let example = s.example.as_ref()?;
            Some((
                s.name.clone(),
                s.method.clone(),
                example.arguments.clone(),
                example.answer.clone(),
            ))
        })
        .collect()
}

/// The scope each tool's method needs, as the catalog says.
fn scope_of(tool: &str) -> String {
    let catalog = Catalog::embedded().unwrap();
    catalog
        .entries()
        .find(|e| e.spec.name == tool)
        .map(|e| e.spec.scope.clone())
        .unwrap()
}

fn output_problems(tool: &rmcp::model::Tool, structured: &Value) -> Vec<String> {
    let schema = Value::Object(tool.output_schema.as_deref().unwrap().clone());
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(structured)
        .map(|e| e.to_string())
        .collect()
}

#[tokio::test]
async fn every_tool_forwards_and_matches_its_output_schema() {
    let portal = TestPortal::start(guarded(|r: &Received| {
        let answer = valid_calls()
            .into_iter()
            .find(|(_, method, _, _)| *method == r.method)
            .map_or(Value::Null, |(_, _, _, answer)| answer);
        ok(answer)
    }))
    .await;
    // Forwarding is what is tested here, not pacing: the guards' reads and every tool's call
    // are more than the default burst of 50, and 2 per second after it cost seconds.
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_RATE_LIMIT", "1000/1000")
        .start()
        .await;
    let tools = server.client.list_all_tools().await.unwrap();
    let calls = valid_calls();
    // The tools that are not one REST method have tests of their own.
    let rest_tools: Vec<_> = tools
        .iter()
        .filter(|t| {
            ![
                "batch",
                "enable_toolset",
                "permission_history",
                "resolve_access_codes",
                "who_can",
            ]
            .contains(&t.name.as_ref())
        })
        .collect();
    assert_eq!(
        rest_tools.len(),
        calls.len(),
        "every REST tool has a case here"
    );
    for (tool, method, args, answer) in calls {
        let result = server.call(&tool, args.clone()).await;
        assert!(!is_error(&result), "{tool}: {}", text_of(&result));
        let sent: Vec<_> = portal
            .received()
            .into_iter()
            .filter(|r| r.method == method)
            .collect();
        assert_eq!(
            sent.last().map(|r| &r.body),
            Some(&args),
            "{tool}: forwarded verbatim"
        );
        let structured = result.structured_content.clone().unwrap();
        assert_eq!(structured, json!({"result": answer}), "{tool}");
        let listed = tools.iter().find(|t| t.name == tool).unwrap();
        let problems = output_problems(listed, &structured);
        assert!(problems.is_empty(), "{tool}: {problems:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn every_tool_names_its_scope_when_the_webhook_lacks_it() {
    // Every method lacks its scope, except the access.name a write's guard asks (basic scope,
    // always there); the access_name tool's own call is told apart by its codes.
    let guard = guarded(|_| Reply::Reset);
    let portal = TestPortal::start(move |r: &Received| {
        if r.method == "access.name" && r.body["ACCESS"] != json!(["G2", "AU"]) {
            guard(r)
        } else if r.method == "user.get" && r.body["FILTER"].get("@ID").is_some() {
            // The user lookup guarding disk_folder_share_to_user, told apart by its filter.
            ok(json!([{"ID": "503"}]))
        } else if r.v3 {
            v3_error(
                403,
                "INSUFFICIENTSCOPEEXCEPTION",
                "Insufficient access rights: required scope is missing",
            )
        } else {
            error(
                403,
                "insufficient_scope",
                "The request requires higher privileges than provided by the webhook token",
            )
        }
    })
    .await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_RATE_LIMIT", "50/50")
        .start()
        .await;
    for (tool, _, args, _) in valid_calls() {
        let result = server.call(&tool, args).await;
        let text = text_of(&result);
        assert!(is_error(&result), "{tool}");
        let scope = scope_of(&tool);
        assert!(text.contains(&format!("`{scope}` scope")), "{tool}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn normalised_empty_answers() {
    let portal = TestPortal::start(|_| ok(json!([]))).await;
    let server = Server::start(&portal.webhook_url()).await;
    let names = server
        .call("access_name", json!({"ACCESS": ["U999999"]}))
        .await;
    assert_eq!(names.structured_content, Some(json!({"result": {}})));
    let rights = server
        .call("landing_role_get_rights", json!({"id": 99}))
        .await;
    assert_eq!(rights.structured_content, Some(json!({"result": {}})));
    server.stop().await;
}

#[tokio::test]
async fn set_rights_is_refused_under_the_role_model_and_nothing_is_written() {
    // Every method answers true, landing.role.isEnabled included: the role model is on.
    let portal = TestPortal::start(|_| ok(json!(true))).await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"AU": ["read"]}}),
        )
        .await;
    let text = text_of(&result);
    assert!(is_error(&result));
    assert!(
        text.contains("role model")
            && text.contains("nothing was written")
            && text.contains("landing_role_set_rights"),
        "{text}"
    );
    assert_eq!(
        portal.count_of("landing.site.setRights"),
        0,
        "the guard let a write through"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_access_codes_are_named_and_nothing_is_written() {
    // The portal knows AU and U3 only.
    let portal = TestPortal::start(|r: &Received| match r.method.as_str() {
        "landing.role.isEnabled" => ok(json!(false)),
        "access.name" => ok(json!({
            "AU": {"name": "All authorized users", "provider": "", "provider_id": "other"},
            "U3": {"name": "Ann Lee", "provider": "User", "provider_id": "user"}
        })),
        _ => ok(json!(true)),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let cases = [
        (
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"AU": ["read"], "U3": ["edit"], "SG404_K": ["read"], "DR9": ["read"]}}),
            "landing.site.setRights",
            vec!["DR9", "SG404_K"],
        ),
        (
            "landing_role_set_access_codes",
            json!({"id": 11, "codes": ["U3", "G77"]}),
            "landing.role.setAccessCodes",
            vec!["G77"],
        ),
    ];
    for (tool, args, method, expected) in cases {
        let result = server.call(tool, args).await;
        let text = text_of(&result);
        assert!(is_error(&result), "{tool}");
        // Exactly the unknown codes are named: none of the known ones, none left out.
        let listed = text
            .split("does not know these access codes: ")
            .nth(1)
            .and_then(|rest| rest.split(". ").next())
            .unwrap_or_else(|| panic!("{tool}: no list of unknown codes in {text}"));
        let mut named: Vec<&str> = listed.split(", ").collect();
        named.sort_unstable();
        assert_eq!(named, expected, "{tool}: {text}");
        assert_eq!(
            portal.count_of(method),
            0,
            "{tool}: written despite unknown codes"
        );
    }
    let first = server
        .call(
            "landing_site_set_rights",
            json!({"id": 1, "rights": {"SG404_K": ["read"], "AU": ["read"]}}),
        )
        .await;
    let text = text_of(&first);
    assert!(
        text.contains("SG404_K") && !text.contains("AU,") && !text.contains(": AU"),
        "{text}"
    );
    // Known codes only: written, once.
    let fine = server
        .call(
            "landing_role_set_access_codes",
            json!({"id": 11, "codes": ["AU", "U3"]}),
        )
        .await;
    assert!(!is_error(&fine), "{}", text_of(&fine));
    assert_eq!(portal.count_of("landing.role.setAccessCodes"), 1);
    // Clearing needs no codes checked.
    let before = portal.count_of("access.name");
    let cleared = server
        .call("landing_site_set_rights", json!({"id": 1, "rights": {}}))
        .await;
    assert!(!is_error(&cleared));
    // Only the question's naming read: the user the call runs as.
    let named: Vec<Value> = portal
        .received()
        .into_iter()
        .filter(|r| r.method == "access.name")
        .skip(before)
        .map(|r| r.body["ACCESS"].clone())
        .collect();
    assert_eq!(named, [json!(["U7"])]);
    server.stop().await;
}

#[tokio::test]
async fn a_guard_that_cannot_check_writes_nothing() {
    let portal = TestPortal::start(|r: &Received| match r.method.as_str() {
        "landing.role.isEnabled" => error(
            400,
            "IS_NOT_ADMIN",
            "To perform this action, you must be an administrator.",
        ),
        _ => ok(json!(true)),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"AU": ["read"]}}),
        )
        .await;
    let text = text_of(&result);
    assert!(is_error(&result));
    assert!(
        text.starts_with("Nothing was written") && text.contains("IS_NOT_ADMIN"),
        "{text}"
    );
    assert_eq!(portal.count_of("landing.site.setRights"), 0);
    server.stop().await;
}

/// Answers Bitrix24 `batch` requests the way the portal does: each command is
/// `method?query`, results and errors come back in two maps keyed like `cmd`.
fn batch_portal(r: &Received) -> Reply {
    let Some(cmd) = r.body["cmd"].as_object() else {
        return error(400, "ERROR_BATCH", "no cmd");
    };
    assert!(cmd.len() <= 50, "more than 50 commands in one batch");
    let mut results = Map::new();
    let mut errors = Map::new();
    for (key, command) in cmd {
        let (method, query) = command.as_str().unwrap().split_once('?').unwrap();
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        match method {
            "tasks.task.getaccess" => {
                let task: u64 = param("taskId").unwrap().parse().unwrap();
                if task.is_multiple_of(7) {
                    errors.insert(
                        key.clone(),
                        json!({"error": "", "error_description": "wrong task id"}),
                    );
                } else if task.is_multiple_of(11) {
                    results.insert(key.clone(), json!({"allowedActions": []}));
                } else {
                    let user = param("users[0]").unwrap();
                    results.insert(
                        key.clone(),
                        json!({"allowedActions": {user: {"EDIT": task.is_multiple_of(2), format!("T{task}"): true}}}),
                    );
                }
            }
            "user.access" => {
                results.insert(
                    key.clone(),
                    json!(param("ACCESS[0]").as_deref() == Some("AU")),
                );
            }
            other => panic!("unexpected {other} in batch"),
        }
    }
    let empty_as_list = |m: Map<String, Value>| {
        if m.is_empty() {
            json!([])
        } else {
            Value::Object(m)
        }
    };
    ok(
        json!({"result": empty_as_list(results), "result_error": empty_as_list(errors), "result_total": [], "result_next": [], "result_time": []}),
    )
}

#[tokio::test]
async fn batch_of_120_makes_3_requests_and_answers_in_order() {
    let portal = TestPortal::start(|r: &Received| {
        assert_eq!(r.method, "batch", "everything goes through batch");
        batch_portal(r)
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let items: Vec<Value> = (1..=120)
        .map(|task| json!({"tool": "tasks_task_get_access", "arguments": {"taskId": task, "users": [503]}}))
        .collect();
    let result = server.call("batch", json!({"items": items})).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count(), 3, "120 checks in ceil(120/50) requests");
    let out = result.structured_content.clone().unwrap();
    let answers = out["items"].as_array().unwrap();
    assert_eq!(answers.len(), 120);
    for (i, answer) in answers.iter().enumerate() {
        let task = i as u64 + 1;
        assert_eq!(answer["tool"], "tasks_task_get_access");
        if task.is_multiple_of(7) {
            assert_eq!(answer["ok"], false, "task {task}");
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .contains("taskId has the wrong type"),
                "{answer}"
            );
        } else if task.is_multiple_of(11) {
            assert_eq!(
                answer["result"],
                json!({"allowedActions": {}}),
                "normalised per item"
            );
        } else {
            assert_eq!(
                answer["result"]["allowedActions"]["503"][format!("T{task}")],
                true,
                "item {i} out of order"
            );
        }
    }
    let failed = (1..=120u64).filter(|t| t.is_multiple_of(7)).count();
    assert_eq!(out["failed"], failed);
    assert_eq!(out["succeeded"], 120 - failed);
    assert_eq!(out["requests"], 3);
    let tools = server.client.list_all_tools().await.unwrap();
    let batch_tool = tools.iter().find(|t| t.name == "batch").unwrap();
    assert!(output_problems(batch_tool, &out).is_empty());
    // Parameters arrive PHP-encoded, one command per item, keyed by position.
    let first = &portal.received()[0];
    assert_eq!(first.body["halt"], 0);
    assert_eq!(
        first.body["cmd"]["i0"],
        "tasks.task.getaccess?taskId=1&users%5B0%5D=503"
    );
    server.stop().await;
}

#[tokio::test]
async fn batch_items_that_cannot_run_fail_alone_and_are_never_sent() {
    let portal = TestPortal::start(batch_portal).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_EXCLUDE_TOOLS", "profile")
        .start()
        .await;
    let items = json!([
        {"tool": "user_access", "arguments": {"ACCESS": ["AU"]}},
        {"tool": "landing_site_set_rights", "arguments": {"id": 1, "rights": {}}},
        {"tool": "tasks_task_get_access", "arguments": {"taskId": "x"}},
        {"tool": "no_such_tool", "arguments": {}},
        {"tool": "batch", "arguments": {"items": []}},
        {"tool": "profile"},
        {"tool": "user_access", "arguments": {"ACCESS": ["$result[i0]"]}},
        {"tool": "user_access", "arguments": {"ACCESS": ["G1"]}},
    ]);
    let result = server.call("batch", json!({"items": items})).await;
    let out = result
        .structured_content
        .clone()
        .expect("per-item errors are not a tool error");
    let answers = out["items"].as_array().unwrap();
    let expect = [
        (true, ""),
        (false, "batch runs read-only tools only"),
        (false, "taskId"),
        (false, "unknown tool"),
        (false, "batch cannot contain batch"),
        (false, "not enabled"),
        (false, "$result["),
        (true, ""),
    ];
    for (answer, (ok, needle)) in answers.iter().zip(expect) {
        assert_eq!(answer["ok"], ok, "{answer}");
        if !ok {
            assert!(
                answer["error"].as_str().unwrap().contains(needle),
                "{answer}"
            );
        }
    }
    assert_eq!(answers[0]["result"], true);
    assert_eq!(answers[7]["result"], false);
    assert_eq!(portal.count(), 1);
    assert_eq!(
        portal.received()[0].body["cmd"].as_object().unwrap().len(),
        2,
        "only runnable items are sent"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failed_batch_request_fails_its_items_with_the_reason() {
    let portal = TestPortal::always(error(401, "NO_AUTH_FOUND", "Wrong authorization data")).await;
    let server = Server::start(&portal.webhook_url()).await;
    let items: Vec<Value> = (0..3).map(|_| json!({"tool": "user_admin"})).collect();
    let result = server.call("batch", json!({"items": items})).await;
    let out = result.structured_content.clone().unwrap();
    assert_eq!(out["failed"], 3);
    for item in out["items"].as_array().unwrap() {
        assert!(
            item["error"].as_str().unwrap().contains("NO_AUTH_FOUND"),
            "{item}"
        );
    }
    server.stop().await;
}

async fn names_with(env: &[(&str, &str)], args: &[&str]) -> Vec<String> {
    let portal = TestPortal::always(ok(Value::Null)).await;
    let url = portal.webhook_url();
    let mut launch = Launch::new(&url).default_tools();
    for (k, v) in env {
        launch = launch.env(k, v);
    }
    for a in args {
        launch = launch.arg(a);
    }
    let server = launch.start().await;
    let names = server
        .client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    server.stop().await;
    names
}

/// What the filters should publish, worked out from the catalog independently of the server:
/// toolsets and tools add up (neither: everything), exclude beats both, read-only beats all.
/// Neither toolsets nor tools: the catalog's default set. enable_toolset is published only
/// with the default set: named toolsets and tools are a ceiling the model cannot widen.
fn expected(toolsets: &[&str], tools: &[&str], exclude: &[&str], read_only: bool) -> Vec<String> {
    let default_set = tools.is_empty() && toolsets.iter().all(|t| *t == "default");
    let mut names: Vec<String> = Catalog::embedded()
        .unwrap()
        .entries()
        .map(|e| &e.spec)
        .filter(|s| {
            if s.name == "enable_toolset" {
                return default_set;
            }
            (toolsets.is_empty() && tools.is_empty() && s.default)
                || toolsets.contains(&"all")
                || toolsets.contains(&s.toolset.as_str())
                || (toolsets.contains(&"default") && s.default)
                || tools.contains(&s.name.as_str())
        })
        .filter(|s| !exclude.contains(&s.name.as_str()))
        .filter(|s| !read_only || s.hints.read_only)
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn filters_publish_what_they_say() {
    type Env<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Env, Vec<&str>, Vec<String>)> = vec![
        (vec![], vec![], expected(&[], &[], &[], false)),
        (
            vec![("BITRIX24_READ_ONLY", "true")],
            vec![],
            expected(&[], &[], &[], true),
        ),
        (
            vec![("BITRIX24_TOOLSETS", "sites")],
            vec![],
            expected(&["sites"], &[], &[], false),
        ),
        (
            vec![("BITRIX24_TOOLSETS", "all")],
            vec![],
            expected(&["all"], &[], &[], false),
        ),
        (
            vec![("BITRIX24_TOOLSETS", "default,people")],
            vec![],
            expected(&["default", "people"], &[], &[], false),
        ),
        (
            vec![],
            vec!["--toolsets", "access,tasks"],
            expected(&["access", "tasks"], &[], &[], false),
        ),
        (
            vec![
                ("BITRIX24_TOOLSETS", "workgroups"),
                ("BITRIX24_TOOLS", "profile,batch"),
            ],
            vec![],
            expected(&["workgroups"], &["profile", "batch"], &[], false),
        ),
        (
            vec![
                ("BITRIX24_TOOLS", "profile,scope"),
                ("BITRIX24_EXCLUDE_TOOLS", "scope"),
            ],
            vec![],
            vec!["profile".to_owned()],
        ),
        // Named tools are a ceiling; the user may still ask for enable_toolset by name.
        (
            vec![],
            vec!["--tools", "landing_site_get_rights,scope"],
            expected(&[], &["landing_site_get_rights", "scope"], &[], false),
        ),
        (
            vec![("BITRIX24_DYNAMIC_TOOLSETS", "true")],
            vec!["--tools", "profile"],
            vec!["enable_toolset".to_owned(), "profile".to_owned()],
        ),
        (
            vec![
                ("BITRIX24_TOOLSETS", "sites"),
                ("BITRIX24_READ_ONLY", "true"),
            ],
            vec!["--tools", "landing_role_enable"],
            expected(&["sites"], &["landing_role_enable"], &[], true),
        ),
    ];
    for (env, args, expected) in cases {
        assert!(
            !expected.is_empty(),
            "{env:?} {args:?}: a case must publish something"
        );
        let mut published = names_with(&env, &args).await;
        published.sort();
        assert_eq!(published, expected, "{env:?} {args:?}");
    }
}

#[tokio::test]
async fn filtered_tools_are_not_callable() {
    let portal = TestPortal::always(ok(json!(true))).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_TOOLSETS", "tasks")
        .start()
        .await;
    let params = rmcp::model::CallToolRequestParams::new("profile").with_arguments(Map::new());
    let err = server
        .client
        .call_tool(params)
        .await
        .expect_err("filtered out");
    assert!(err.to_string().contains("not enabled"), "{err}");
    assert_eq!(portal.count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn unknown_filter_names_refuse_start_up() {
    let valid_toolsets = format!(
        "valid toolsets: {}, default, all",
        Catalog::embedded().unwrap().toolsets().join(", ")
    );
    for (key, value, expected) in [
        ("BITRIX24_TOOLSETS", "sites,site", valid_toolsets.as_str()),
        (
            "BITRIX24_TOOLS",
            "landing_site_getrights",
            "landing_site_get_rights",
        ),
        ("BITRIX24_EXCLUDE_TOOLS", "nope", "valid tools"),
    ] {
        let out = crate::util::command(
            &[
                (
                    "BITRIX24_WEBHOOK_URL",
                    "https://p.example.com/rest/1/abcdefgh1234/",
                ),
                (key, value),
            ],
            &[],
        )
        .output()
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{key}={value}: {stderr}");
    }
}

#[tokio::test]
async fn reference_resources_are_readable() {
    let portal = TestPortal::always(ok(Value::Null)).await;
    let server = Server::start(&portal.webhook_url()).await;
    let resources = server.client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "bitrix24://reference/scopes",
            "bitrix24://reference/access-codes",
            "bitrix24://reference/sonet-features",
            "bitrix24://reference/task-actions"
        ]
    );
    for (uri, needle) in [
        ("bitrix24://reference/scopes", "sonet_group"),
        ("bitrix24://reference/access-codes", "SG<id>_K"),
        ("bitrix24://reference/sonet-features", "create_tasks"),
        ("bitrix24://reference/task-actions", "CHANGE_DEADLINE"),
    ] {
        let read = server
            .client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
            .await
            .unwrap();
        let text = serde_json::to_string(&read).unwrap();
        assert!(text.contains(needle), "{uri}");
    }
    assert!(
        server
            .client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(
                "bitrix24://reference/nope"
            ))
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn membership_and_role_guards_refuse_and_write_nothing() {
    let portal = TestPortal::start(guarded(|r: &Received| match r.method.as_str() {
        "sonet_group.user.get" => {
            ok(json!([{"USER_ID": "1269", "ROLE": "A"}, {"USER_ID": "1270", "ROLE": "K"}]))
        }
        "documentgenerator.role.list" => ok(json!({"roles": [{"id": 3, "name": "Manager"}]})),
        // Only user 503 exists.
        "user.get" if r.body["FILTER"]["@ID"] == json!(["503"]) => ok(json!([{"ID": "503"}])),
        "user.get" => ok(json!([])),
        _ => ok(json!(true)),
    }))
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let cases = [
        (
            "sonet_group_user_delete",
            json!({"GROUP_ID": 69, "USER_ID": [1270, 1269]}),
            "1269 (the owner)",
        ),
        (
            "sonet_group_user_update",
            json!({"GROUP_ID": 69, "USER_ID": 1269, "ROLE": "K"}),
            "1269 (the owner)",
        ),
        (
            "sonet_group_setowner",
            json!({"GROUP_ID": 69, "USER_ID": 99}),
            "99 (not a member)",
        ),
        (
            "sonet_group_setowner",
            json!({"GROUP_ID": 69, "USER_ID": 1269}),
            "1269 (the owner)",
        ),
        (
            "sonet_group_user_add",
            json!({"GROUP_ID": 69, "USER_ID": [5, 1270]}),
            "1270 (a member)",
        ),
        (
            "documentgenerator_role_fillaccesses",
            json!({"accesses": [{"roleId": 99, "accessCode": "D2"}]}),
            "Unknown: 99",
        ),
        (
            "disk_folder_share_to_user",
            json!({"id": 8994, "userId": 547, "taskName": "disk_access_read"}),
            "User not found: 547",
        ),
    ];
    for (tool, args, needle) in cases {
        let result = server.call(tool, args).await;
        let text = text_of(&result);
        assert!(is_error(&result), "{tool}");
        assert!(
            text.contains(needle) && text.contains("nothing was"),
            "{tool}: {text}"
        );
    }
    let writes: Vec<_> = portal
        .received()
        .into_iter()
        .filter(|r| {
            ![
                "sonet_group.user.get",
                "documentgenerator.role.list",
                "access.name",
                "user.get",
            ]
            .contains(&r.method.as_str())
        })
        .collect();
    assert!(
        writes.is_empty(),
        "nothing was sent: {:?}",
        writes.iter().map(|r| &r.method).collect::<Vec<_>>()
    );
    server.stop().await;
}
