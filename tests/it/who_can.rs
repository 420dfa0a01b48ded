//! `who_can`: one answer per object kind against the sandbox (with and without sets written
//! through the server), its request counts on the large company, and its reading of the
//! docs' own answers (the fixtures in `tests/fixtures/docs/`).

use std::{collections::BTreeMap, path::PathBuf, sync::Mutex};

use bitrix24_permissions_mcp::testing::{
    Api, Catalog, SandboxPortal, SandboxSize, large_sandbox::ALL_HANDS, large_sandbox::FIRST_TASK,
};
use serde_json::{Value, json};

use crate::{
    portal::{Received, Reply, TestPortal, error, ok},
    util::{Launch, Server, is_error, text_of},
};

/// The answer's structured content, checked against the tool's published output schema.
async fn ask(server: &Server, args: Value) -> Value {
    let result = server.call("who_can", args.clone()).await;
    assert!(!is_error(&result), "{args}: {}", text_of(&result));
    let out = result.structured_content.clone().unwrap();
    let tools = server.client.list_all_tools().await.unwrap();
    let tool = tools.iter().find(|t| t.name == "who_can").unwrap();
    let schema = Value::Object(tool.output_schema.as_deref().unwrap().clone());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&out).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{args}: {problems:?}\n{out}");
    out
}

/// Each person's rights on the object: id → ["right via code from", ...], by ID as text.
fn people(object: &Value) -> BTreeMap<String, Vec<String>> {
    object["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let rights = p["rights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let code = r["code"].as_str().unwrap_or("-");
                    format!(
                        "{} {} {} {}",
                        r["right"].as_str().unwrap(),
                        r["via"].as_str().unwrap(),
                        code,
                        r["from"].as_str().unwrap()
                    )
                })
                .collect();
            (p["id"].as_str().unwrap().to_owned(), rights)
        })
        .collect()
}

fn unknown_whos(object: &Value) -> Vec<String> {
    object["unknown"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u["who"].as_str().unwrap().to_owned())
        .collect()
}

async fn sandbox() -> Server {
    Launch::new("")
        .arg("--sandbox")
        .arg("--confirm-writes")
        .arg("never")
        .start()
        .await
}

async fn write(server: &Server, tool: &str, args: Value) {
    let result = server.call(tool, args).await;
    assert!(!is_error(&result), "{tool}: {}", text_of(&result));
}

#[tokio::test]
async fn a_site_names_its_unknowns_then_uses_the_set_written_through_this_server() {
    let server = sandbox().await;
    let before = ask(
        &server,
        json!({"object": "site", "ids": [645], "action": "edit"}),
    )
    .await;
    let site = &before["objects"][0];
    assert_eq!(site["complete"], false);
    assert_eq!(
        people(site)["7"],
        ["edit portal_check - portal"],
        "only the webhook's own rights are readable"
    );
    assert_eq!(unknown_whos(site), ["the site's individual rights"]);
    assert_eq!(before["requests"], 1);

    write(
        &server,
        "landing_site_set_rights",
        json!({"id": 645, "rights": {"AU": ["read"], "SG77_K": ["edit"], "G1": ["read", "edit", "sett"], "U547": ["denied"]}}),
    )
    .await;
    let after = ask(
        &server,
        json!({"object": "site", "ids": [645], "action": "edit"}),
    )
    .await;
    let site = &after["objects"][0];
    let who = people(site);
    assert_eq!(
        who["503"],
        ["edit workgroup_role SG77_K ledger"],
        "a member of SG77"
    );
    assert!(who["7"].contains(&"edit portal_check - portal".to_owned()));
    assert!(!who.contains_key("547"), "denied overrides SG77_K: {who:?}");
    let whos = unknown_whos(site);
    assert!(whos.contains(&"G1 (Administrators)".to_owned()), "{whos:?}");
    assert!(
        !whos.iter().any(|w| w.starts_with("AU")),
        "AU grants only read: {whos:?}"
    );
    let evidence = &site["evidence"][0];
    assert_eq!(evidence["tool"], "landing_site_set_rights");
    assert!(evidence["at"].as_str().unwrap().starts_with("20"));
    // The codes' first round rode with the site's read: names and members, then the users.
    assert_eq!(after["requests"], 2);
    server.stop().await;
}

#[tokio::test]
async fn sites_roles_workgroups_and_calendars() {
    let server = sandbox().await;
    let role = ask(&server, json!({"object": "sites_role", "ids": [2]})).await;
    let object = &role["objects"][0];
    assert_eq!(object["label"], "Sites role 2 (Content editors)");
    assert!(object["people"].as_array().unwrap().is_empty());
    assert_eq!(
        unknown_whos(object),
        [
            "the holders of role 2 (Content editors)",
            "the holders of role 2 (Content editors)"
        ]
    );
    let whos = unknown_whos(&role);
    assert!(
        whos.contains(&"every holder".to_owned()),
        "extended model: {whos:?}"
    );
    write(
        &server,
        "landing_role_set_access_codes",
        json!({"id": 2, "codes": ["DR2"]}),
    )
    .await;
    let role = ask(
        &server,
        json!({"object": "sites_role", "ids": [2], "action": "edit"}),
    )
    .await;
    let object = &role["objects"][0];
    let who = people(object);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["503", "7"]);
    assert_eq!(who["503"], ["edit department_tree DR2 ledger"]);
    assert_eq!(
        object["people"][1]["rights"][0]["on"],
        "every site without its own line (the role's default), through role 2 (Content editors)"
    );

    let group = ask(&server, json!({"object": "workgroup", "ids": [77]})).await;
    let object = &group["objects"][0];
    assert_eq!(object["label"], "workgroup 77 (Website relaunch)");
    assert_eq!(object["complete"], true);
    let who = people(object);
    assert_eq!(who["7"], ["member workgroup_role SG77_K portal"]);
    assert_eq!(
        who["503"],
        [
            "owner workgroup_role SG77_A portal",
            "moderator workgroup_role SG77_E portal",
            "member workgroup_role SG77_K portal"
        ]
    );
    let feature = ask(
        &server,
        json!({"object": "workgroup", "ids": [77], "action": "tasks.create_tasks"}),
    )
    .await;
    let object = &feature["objects"][0];
    assert_eq!(
        people(object)["7"],
        ["tasks.create_tasks portal_check - portal"]
    );
    assert_eq!(
        unknown_whos(object),
        ["every member but the webhook's user"]
    );

    let calendar = ask(
        &server,
        json!({"object": "calendar", "calendar_type": "group", "owner_id": 77}),
    )
    .await;
    let object = &calendar["objects"][0];
    assert_eq!(object["label"], "calendar 190 (Website relaunch)");
    let who = people(object);
    assert!(who["503"].contains(&"level 19 workgroup_role SG77_A portal".to_owned()));
    assert!(who["547"].contains(&"level 15 workgroup_role SG77_K portal".to_owned()));
    assert!(who["7"].contains(&"view_full portal_check - portal".to_owned()));
    assert_eq!(unknown_whos(object), ["G2 (All visitors)"]);
    server.stop().await;
}

#[tokio::test]
async fn tasks_folders_and_document_generator_roles() {
    let server = sandbox().await;
    let tasks = ask(
        &server,
        json!({"object": "task", "ids": [8017, 8020], "users": [7, 503, 547], "action": "EDIT"}),
    )
    .await;
    let (seen, hidden) = (&tasks["objects"][0], &tasks["objects"][1]);
    let who = people(seen);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["7"], "the creator edits");
    assert_eq!(seen["people"][0]["name"], "Ann Lee");
    assert_eq!(unknown_whos(hidden), ["everyone"]);
    assert_eq!(unknown_whos(&tasks), ["everyone not in users"]);
    assert_eq!(tasks["requests"], 1, "two tasks and the names: one request");

    let folder = ask(&server, json!({"object": "drive_folder", "ids": [8994]})).await;
    assert!(
        folder["objects"][0]["people"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(folder["requests"], 0, "REST cannot read a folder's rights");
    write(
        &server,
        "disk_folder_share_to_user",
        json!({"id": 8994, "userId": 503, "taskName": "disk_access_edit"}),
    )
    .await;
    let folder = ask(&server, json!({"object": "drive_folder", "ids": [8994]})).await;
    let object = &folder["objects"][0];
    assert_eq!(people(object)["503"], ["edit direct U503 ledger"]);
    assert_eq!(object["evidence"][0]["tool"], "disk_folder_share_to_user");

    let role = ask(&server, json!({"object": "docgen_role", "ids": [9]})).await;
    let object = &role["objects"][0];
    assert_eq!(
        object["label"],
        "document-generator role 9 (Template Editors)"
    );
    assert_eq!(unknown_whos(object), ["the role's holders"]);
    write(
        &server,
        "documentgenerator_role_fillaccesses",
        json!({"accesses": [{"roleId": 9, "accessCode": "SG77_E"}]}),
    )
    .await;
    let role = ask(
        &server,
        json!({"object": "docgen_role", "ids": [9], "action": "templates.modify"}),
    )
    .await;
    let object = &role["objects"][0];
    let who = people(object);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["503", "547"]);
    assert_eq!(object["people"][0]["rights"][0]["on"], "own items only");
    server.stop().await;
}

/// A portal in front of the large company, recording what it is sent.
async fn large_portal() -> TestPortal {
    let catalog = Catalog::embedded().unwrap();
    let company = Mutex::new(SandboxPortal::of_size(&catalog, SandboxSize::Large));
    TestPortal::start(move |r: &Received| {
        let api = if r.v3 { Api::V3 } else { Api::Classic };
        let (status, body) = company.lock().unwrap().call_at(api, &r.method, &r.body);
        Reply::Json(status, body)
    })
    .await
}

#[tokio::test]
async fn on_the_large_company_n_objects_cost_their_batches() {
    let portal = large_portal().await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_RATE_LIMIT", "1000/1000")
        .env("BITRIX24_MAX_RESULT_BYTES", "10000000")
        .start()
        .await;
    let ids: Vec<u64> = (FIRST_TASK..FIRST_TASK + 120).collect();
    let users: Vec<u64> = (1..=50).collect();
    let tasks = ask(
        &server,
        json!({"object": "task", "ids": ids, "users": users, "action": "EDIT"}),
    )
    .await;
    assert_eq!(tasks["requests"], 3, "120 checks and the names: ⌈121/50⌉");
    assert_eq!(portal.count_of("batch"), 3);
    let objects = tasks["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 120);
    assert!(
        objects
            .iter()
            .all(|t| people(t).contains_key("1") || t["unknown"].is_array()),
        "the administrator edits every task the webhook's user can see"
    );

    let group = ask(&server, json!({"object": "workgroup", "ids": [ALL_HANDS]})).await;
    let object = &group["objects"][0];
    assert_eq!(object["people"].as_array().unwrap().len(), 1003);
    assert_eq!(object["complete"], true);
    assert_eq!(
        group["requests"], 2,
        "the members, then their names (21 reads in one batch)"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_an_action_many_task_checks_are_refused_before_anything_is_sent() {
    let portal = large_portal().await;
    let server = Server::start(&portal.webhook_url()).await;
    let ids: Vec<u64> = (FIRST_TASK..FIRST_TASK + 100).collect();
    let users: Vec<u64> = (1..=50).collect();
    let result = server
        .call(
            "who_can",
            json!({"object": "task", "ids": ids, "users": users}),
        )
        .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("pass action"),
        "{}",
        text_of(&result)
    );
    assert_eq!(portal.count(), 0);
    server.stop().await;
}

// ---- The docs' own answers, as the fixtures keep them.

fn fixture_answer(method: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(format!("{method}.json"));
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    fixture["examples"]
        .as_array()?
        .iter()
        .find_map(|e| e["response"].get("result").cloned())
}

/// Answers every method with its docs page's first example, `batch` command by command.
fn documented(r: &Received) -> Reply {
    if r.method != "batch" {
        return fixture_answer(&r.method).map_or_else(
            || error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
            ok,
        );
    }
    let mut results = serde_json::Map::new();
    for (key, command) in r.body["cmd"].as_object().unwrap() {
        let method = command.as_str().unwrap().split('?').next().unwrap();
        results.insert(key.clone(), fixture_answer(method).unwrap_or(Value::Null));
    }
    ok(
        json!({"result": results, "result_error": [], "result_total": [], "result_next": [], "result_time": []}),
    )
}

#[tokio::test]
async fn every_kind_reads_the_documented_answers() {
    let portal = TestPortal::start(documented).await;
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_RATE_LIMIT", "1000/1000")
        .start()
        .await;
    // landing.role.isEnabled's page answers true: the role model. The role's documented
    // rights ({"0": ["read", "edit"], "5": ["read"]}) apply to site 645 through the default.
    let site = ask(&server, json!({"object": "site", "ids": [645]})).await;
    let object = &site["objects"][0];
    assert_eq!(
        people(object)["7"],
        [
            "read portal_check - portal",
            "edit portal_check - portal",
            "sett portal_check - portal"
        ]
    );
    let whos = unknown_whos(object);
    assert!(
        whos.iter().all(|w| w.starts_with("the holders of role")),
        "{whos:?}"
    );
    let calendar = ask(
        &server,
        json!({"object": "calendar", "calendar_type": "user", "owner_id": 1}),
    )
    .await;
    let object = &calendar["objects"][0];
    let grants: Vec<(&str, &str)> = object["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["code"].as_str().unwrap(),
                g["rights"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        [
            ("D114", "level 17"),
            ("G2", "level 13"),
            ("U1", "level 19"),
            ("U2", "level 15")
        ]
    );
    let tasks = ask(
        &server,
        json!({"object": "task", "ids": [8017], "users": [503, 547], "action": "EDIT"}),
    )
    .await;
    assert!(people(&tasks["objects"][0]).contains_key("503"));
    let group = ask(&server, json!({"object": "workgroup", "ids": [69]})).await;
    let who = people(&group["objects"][0]);
    assert_eq!(who.keys().collect::<Vec<_>>(), ["1269", "1271", "779"]);
    let role = ask(&server, json!({"object": "docgen_role", "ids": [9]})).await;
    assert_eq!(
        role["objects"][0]["unknown"][0]["rights"],
        json!(["documents.modify", "documents.view", "templates.modify"])
    );
    for kind in ["sites_role", "drive_folder"] {
        ask(&server, json!({"object": kind, "ids": [2]})).await;
    }
    server.stop().await;
}
