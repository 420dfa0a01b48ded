//! The catalog against the official docs (issue 12): every wrapped method's docs page is kept as
//! a fixture under `tests/fixtures/docs/` (page path and docs commit inside), and its own
//! examples must pass our schemas and come back from the sandbox in the documented shape. The
//! second half holds one test per audit item, each failing on the catalog before the audit.

use std::{collections::BTreeMap, path::PathBuf};

use bitrix24_permissions_mcp::testing::{Catalog, CatalogEntry, SandboxPortal};
use serde_json::{Value, json};

use crate::{
    portal::{Received, TestPortal, error, guarded, ok},
    util::{Server, is_error, text_of},
};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs")
}

/// Every fixture, by method.
fn fixtures() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(fixtures_dir()).expect("tests/fixtures/docs exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let fixture: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let method = fixture["method"].as_str().unwrap().to_owned();
            assert_eq!(
                path.file_stem().unwrap().to_str(),
                Some(method.as_str()),
                "{} is named after its method",
                path.display()
            );
            out.insert(method, fixture);
        }
    }
    out
}

fn catalog() -> Catalog {
    Catalog::embedded().expect("the embedded catalog parses")
}

fn examples(fixture: &Value) -> &[Value] {
    fixture["examples"].as_array().map_or(&[], Vec::as_slice)
}

/// The example's answer as the tool would publish it: `result` only, normalised.
fn published_answer(entry: &CatalogEntry, response: &Value) -> Value {
    let mut result = response["result"].clone();
    entry.spec.normalize.apply(&mut result);
    json!({ "result": result })
}

#[test]
fn every_catalog_method_has_a_fixture_of_the_page_it_names() {
    let fixtures = fixtures();
    let catalog = catalog();
    // permission_history is answered from the ledger: no portal page documents it.
    let portal_methods = || catalog.entries().filter(|e| e.spec.is_portal_method());
    for e in portal_methods() {
        let s = &e.spec;
        let fixture = fixtures
            .get(&s.method)
            .unwrap_or_else(|| panic!("{}: no tests/fixtures/docs/{}.json", s.name, s.method));
        let (page, commit) = s.docs.split_once('@').unwrap();
        assert_eq!(fixture["page"], page, "{}: docs names another page", s.name);
        assert!(
            fixture["commit"].as_str().unwrap().starts_with(commit),
            "{}: docs names commit {commit}, the fixture {}",
            s.name,
            fixture["commit"]
        );
    }
    assert_eq!(
        fixtures.len(),
        portal_methods().count(),
        "a fixture for a method the catalog does not wrap"
    );
}

#[test]
fn every_documented_request_passes_the_input_schema_or_is_refused_on_record() {
    let catalog = catalog();
    for (method, fixture) in fixtures() {
        let entry = catalog.by_method(&method).unwrap();
        let mut checked = 0;
        for (i, example) in examples(&fixture).iter().enumerate() {
            let request = &example["request"];
            if request.is_null() {
                continue;
            }
            checked += 1;
            let problems = entry.check_arguments(request);
            match example["rejected_by_schema"].as_str() {
                None => assert!(
                    problems.is_empty(),
                    "{method} example {i}: the documented request {request} is refused: {problems:?}"
                ),
                Some(why) => assert!(
                    !problems.is_empty(),
                    "{method} example {i}: recorded as refused ({why}) but it passes"
                ),
            }
        }
        assert!(checked > 0, "{method}: no documented request was checked");
    }
}

#[test]
fn every_documented_answer_fits_the_output_schema() {
    let catalog = catalog();
    for (method, fixture) in fixtures() {
        let entry = catalog.by_method(&method).unwrap();
        let mut checked = 0;
        for (i, example) in examples(&fixture).iter().enumerate() {
            // The tool never sends a refused request, so its answer cannot reach the model.
            if example["response"].is_null() || example.get("rejected_by_schema").is_some() {
                continue;
            }
            checked += 1;
            let answer = published_answer(entry, &example["response"]);
            let fits = entry.check_answer(&answer);
            match example["not_our_output"].as_str() {
                None => assert!(
                    fits.is_ok(),
                    "{method} example {i}: {answer} does not fit: {fits:?}"
                ),
                Some(why) => assert!(
                    fits.is_err(),
                    "{method} example {i}: recorded as not ours ({why}) but it fits"
                ),
            }
        }
        assert!(checked > 0, "{method}: no documented answer was checked");
    }
}

#[test]
fn every_documented_error_has_advice_or_cannot_happen() {
    let catalog = catalog();
    for (method, fixture) in fixtures() {
        let entry = catalog.by_method(&method).unwrap();
        for error in fixture["errors"].as_array().into_iter().flatten() {
            if error.get("prevented_by_schema").is_some() || error.get("not_ours").is_some() {
                continue;
            }
            let code = error["code"].as_str().unwrap();
            let text = error
                .get("error_description")
                .or(error.get("description"))
                .and_then(Value::as_str)
                .unwrap();
            assert!(
                entry.spec.errors.iter().any(|e| e.matches(code, text)),
                "{method}: no advice for the documented error {code:?} {text:?}"
            );
        }
    }
}

/// The JSON type of a value, for comparing shapes rather than data.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn the_sandbox_answers_the_documented_calls_in_the_documented_shape() {
    let catalog = catalog();
    for (method, fixture) in fixtures() {
        let entry = catalog.by_method(&method).unwrap();
        let mut checked = 0;
        for (i, example) in examples(&fixture).iter().enumerate() {
            let request = &example["request"];
            if request.is_null() {
                continue;
            }
            if example.get("not_our_output").is_some() {
                // A REST form the tool wraps (batch): the sandbox must still answer it with
                // the documented envelope, since the tool reads exactly that.
                checked += 1;
                let (status, body) =
                    SandboxPortal::new(&catalog).call_at(entry.spec.api, &method, request);
                let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
                assert_eq!(status, 200, "{method} example {i}: {body}");
                if let Some(documented) = example["response"].get("result") {
                    assert_eq!(
                        keys(&body["result"]),
                        keys(documented),
                        "{method} example {i}: {body}"
                    );
                }
                continue;
            }
            if example.get("rejected_by_schema").is_some() {
                continue;
            }
            checked += 1;
            // A fresh company per call: a documented write must not change the next read.
            let mut portal = SandboxPortal::new(&catalog);
            let (status, body) = portal.call_at(entry.spec.api, &method, request);
            assert_eq!(status, 200, "{method} example {i}: {body}");
            let answer = published_answer(entry, &body);
            assert!(
                entry.check_answer(&answer).is_ok(),
                "{method} example {i}: the sandbox's {answer} does not fit the output schema"
            );
            if let Some(documented) = example["response"].get("result") {
                let documented = published_answer(entry, &json!({ "result": documented }));
                assert_eq!(
                    kind(&answer["result"]),
                    kind(&documented["result"]),
                    "{method} example {i}: the sandbox answers {answer}, the docs {documented}"
                );
            }
        }
        assert!(
            checked > 0,
            "{method}: no documented call reached the sandbox"
        );
    }
}

// ---- The audit's twelve items, plus the answer check, each with a test that fails on the
// ---- catalog before the audit.

fn accepts(tool: &str, args: Value) -> bool {
    catalog()
        .get(tool)
        .unwrap()
        .check_arguments(&args)
        .is_empty()
}

fn description(tool: &str) -> String {
    catalog().get(tool).unwrap().spec.description.clone()
}

/// The description and every reference page it sends the model to: detail moved out of a
/// description into a resource is still said to the model.
fn described(tool: &str) -> String {
    let mut text = description(tool);
    let pages: Vec<String> = text
        .split("bitrix24://reference/")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect();
    for page in pages {
        let path = format!("{}/src/mcp/reference/{page}.md", env!("CARGO_MANIFEST_DIR"));
        text.push('\n');
        text.push_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path}")));
    }
    text
}

fn advice_for(tool: &str, code: &str, text: &str) -> String {
    catalog()
        .get(tool)
        .unwrap()
        .spec
        .errors
        .iter()
        .find(|e| e.matches(code, text))
        .map(|e| e.advice.clone())
        .unwrap_or_else(|| panic!("{tool}: no advice for {code} / {text}"))
}

/// Item 1: a role holding only the default answers a JSON list, which the model gets as the
/// object it means; the docs' object and the old `[]` still work.
#[tokio::test]
async fn item_1_role_rights_as_a_list_become_an_object() {
    let portal = TestPortal::start(|r: &Received| match r.body["id"].as_i64() {
        Some(3) => ok(json!([["read", "edit"]])),
        Some(2) => ok(json!({"0": ["read", "edit"], "5": ["read"]})),
        _ => ok(json!([])),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    for (id, expected) in [
        (3, json!({"0": ["read", "edit"]})),
        (2, json!({"0": ["read", "edit"], "5": ["read"]})),
        (9, json!({})),
    ] {
        let result = server
            .call("landing_role_get_rights", json!({ "id": id }))
            .await;
        assert!(!is_error(&result), "{id}: {}", text_of(&result));
        assert_eq!(
            result.structured_content,
            Some(json!({ "result": expected }))
        );
    }
    server.stop().await;
}

/// Item 2: `scope` reaches knowledge bases, group sites and the main page, and the
/// descriptions say what an empty answer may mean.
#[test]
fn item_2_landing_tools_take_scope() {
    for (tool, args) in [
        (
            "landing_site_get_rights",
            json!({"id": 700, "scope": "KNOWLEDGE"}),
        ),
        (
            "landing_site_set_rights",
            json!({"id": 700, "scope": "GROUP", "rights": {"AU": ["read"]}}),
        ),
        (
            "landing_role_enable",
            json!({"mode": 1, "scope": "MAINPAGE"}),
        ),
    ] {
        assert!(accepts(tool, args.clone()), "{tool}: {args}");
        assert!(
            !accepts(
                tool,
                json!({"id": 1, "mode": 1, "rights": {}, "scope": "PAGE"})
            ),
            "{tool}: only the documented scopes"
        );
    }
    assert!(description("landing_site_get_rights").contains("without scope"));
    assert!(description("landing_site_set_rights").contains("without scope"));
}

/// Item 3: documented codes `access.name` cannot name pass the guard (UA as it is, a bare
/// SG<id> through SG<id>_K), IU<id> passes the schema, and unknown codes are still refused.
#[tokio::test]
async fn item_3_documented_codes_pass_the_guard_and_unknown_ones_do_not() {
    // Names every code but UA and bare SG<id>, except workgroup 404, which does not exist.
    let portal = TestPortal::start(guarded(|_| ok(json!(true)))).await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"UA": ["read"], "SG77": ["read"], "IU3": ["edit"]}}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(portal.count_of("landing.site.setRights"), 1);
    let asked = portal
        .received()
        .into_iter()
        .find(|r| r.method == "access.name")
        .unwrap();
    assert_eq!(
        asked.body["ACCESS"],
        json!(["IU3", "SG77_K", "U7"]),
        "UA is not asked; the user the call runs as is named in the same read"
    );
    let codes = server
        .call(
            "landing_role_set_access_codes",
            json!({"id": 11, "codes": ["UA", "SG3", "IU45"]}),
        )
        .await;
    assert!(!is_error(&codes), "{}", text_of(&codes));
    server.stop().await;

    // A portal that knows no workgroup: a bare SG<id> is refused through its stand-in.
    let portal = TestPortal::start(|r: &Received| match r.method.as_str() {
        "landing.role.isEnabled" => ok(json!(false)),
        "access.name" => ok(json!({"U3": {"name": "Ivan", "provider": "", "provider_id": "user"}})),
        _ => ok(json!(true)),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let refused = server
        .call(
            "landing_site_set_rights",
            json!({"id": 645, "rights": {"UA": ["read"], "SG404": ["read"], "U3": ["read"]}}),
        )
        .await;
    let text = text_of(&refused);
    assert!(is_error(&refused));
    assert!(text.contains("SG404 (checked as SG404_K)"), "{text}");
    assert!(!text.contains("UA,") && !text.contains("U3,"), "{text}");
    assert!(text.contains("UA = all users including guests"), "{text}");
    assert_eq!(portal.count_of("landing.site.setRights"), 0);
    server.stop().await;
}

/// Item 4: the extras' codes follow scope.
#[test]
fn item_4_additional_follows_scope() {
    let set = |extra: Value| json!({"id": 13, "rights": {"0": ["read"]}, "additional": extra});
    let with = |scope: &str, extra: Value| {
        let mut args = set(extra);
        args["scope"] = json!(scope);
        args
    };
    assert!(accepts(
        "landing_role_set_rights",
        set(json!(["menu24", "create"]))
    ));
    assert!(!accepts(
        "landing_role_set_rights",
        set(json!(["knowledge_create"]))
    ));
    assert!(accepts(
        "landing_role_set_rights",
        with("KNOWLEDGE", json!(["knowledge_create", "knowledge_menu24"]))
    ));
    assert!(!accepts(
        "landing_role_set_rights",
        with("KNOWLEDGE", json!(["create"]))
    ));
    assert!(!accepts(
        "landing_role_set_rights",
        with("KNOWLEDGE", json!(["group_create"]))
    ));
    assert!(accepts(
        "landing_role_set_rights",
        with("GROUP", json!(["group_menu24"]))
    ));
    assert!(accepts(
        "landing_role_set_rights",
        with("MAINPAGE", json!(["vibe_create"]))
    ));
    assert!(!accepts(
        "landing_role_set_rights",
        with("MAINPAGE", json!(["menu24"]))
    ));
}

/// Items 5 and 6: `false` may mean "no such group", and features are checked portal-wide.
#[test]
fn items_5_6_feature_access_says_what_false_and_wrong_feature_mean() {
    let d = described("sonet_group_feature_access");
    assert!(
        d.contains("false can also mean that no group has this GROUP_ID"),
        "{d}"
    );
    assert!(
        d.contains("not the group's") && d.contains("socialnetwork_api_workgroup_get"),
        "{d}"
    );
    let advice = advice_for(
        "sonet_group_feature_access",
        "",
        "Wrong socialnetwork group ID",
    );
    assert!(advice.contains("answers false"), "{advice}");
    let advice = advice_for("sonet_group_feature_access", "", "Wrong feature");
    assert!(advice.contains("portal-wide"), "{advice}");
}

/// Item 7: what UA means is said per module wherever the code can be used or named.
#[test]
fn item_7_ua_is_explained_per_module() {
    for tool in [
        "landing_site_set_rights",
        "landing_role_set_access_codes",
        "access_name",
    ] {
        let d = described(tool);
        assert!(d.contains("log.blogpost.add"), "{tool}: {d}");
    }
}

/// Item 8: ROLE_SCOPE_MISMATCH also means "no such role", on all three role methods.
#[test]
fn item_8_role_scope_mismatch_means_missing_role_too() {
    for tool in [
        "landing_role_get_rights",
        "landing_role_set_rights",
        "landing_role_set_access_codes",
    ] {
        let advice = advice_for(tool, "ROLE_SCOPE_MISMATCH", "");
        assert!(advice.contains("No role with this id"), "{tool}: {advice}");
        let d = description(tool);
        assert!(d.contains("ROLE_SCOPE_MISMATCH"), "{tool}: {d}");
        assert!(
            !d.contains("even for a role that does not exist"),
            "{tool}: {d}"
        );
    }
}

/// Item 9: the new action keys are named, and "wrong task id" is about the id's type.
#[test]
fn item_9_task_access_keys_and_wrong_task_id() {
    let d = described("tasks_task_get_access");
    for key in [
        "EDIT.PLAN",
        "CHECKLIST.ADD",
        "FAVORITE.ADD",
        "FAVORITE.DELETE",
    ] {
        assert!(d.contains(key), "{key}");
    }
    let advice = advice_for("tasks_task_get_access", "0", "wrong task id");
    assert!(advice.contains("wrong type"), "{advice}");
}

/// Item 10: the switch covers knowledge bases, group sites and the main page.
#[test]
fn item_10_role_enable_switches_every_section() {
    let d = description("landing_role_enable");
    assert!(
        d.contains("knowledge bases, group sites and the main page"),
        "{d}"
    );
    assert!(accepts(
        "landing_role_enable",
        json!({"mode": 0, "scope": "KNOWLEDGE"})
    ));
}

/// Item 11: user.admin no longer promises that administrators pass every check.
#[test]
fn item_11_user_admin_is_about_application_settings() {
    let d = description("user_admin");
    assert!(!d.contains("pass every access check"), "{d}");
    assert!(d.contains("manage application settings"), "{d}");
    assert!(!description("user_access").contains("Always true for a portal administrator"));
}

/// Item 12: mixed-case method names can be checked.
#[test]
fn item_12_method_get_takes_mixed_case_names() {
    for name in ["tasks.flow.Flow.get", "imbot.v2.Chat.get", "user.get"] {
        assert!(accepts("method_get", json!({ "name": name })), "{name}");
    }
    assert!(!accepts("method_get", json!({"name": "user get"})));
}

/// A successful answer outside the published output schema becomes an error that quotes it,
/// with the same check for a batch item; a fitting answer passes unchanged.
#[tokio::test]
async fn answers_outside_the_output_schema_are_errors_that_quote_them() {
    let portal = TestPortal::start(|r: &Received| match r.method.as_str() {
        "landing.site.getRights" => ok(json!({"unexpected": "shape"})),
        "batch" => ok(json!({
            "result": {"i0": {"unexpected": "shape"}, "i1": true},
            "result_error": [], "result_total": [], "result_next": [], "result_time": []
        })),
        "user.admin" => ok(json!(true)),
        _ => error(400, "ERROR_CORE", "unexpected call"),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call("landing_site_get_rights", json!({"id": 645}))
        .await;
    let text = text_of(&result);
    assert!(is_error(&result), "{text}");
    assert!(text.contains(r#"{"unexpected":"shape"}"#), "{text}");
    assert!(text.contains("What to do"), "{text}");
    let fine = server.call("user_admin", json!({})).await;
    assert_eq!(fine.structured_content, Some(json!({"result": true})));
    let batch = server
        .call(
            "batch",
            json!({"items": [
                {"tool": "landing_site_get_rights", "arguments": {"id": 645}},
                {"tool": "user_admin"}
            ]}),
        )
        .await;
    let items = &batch.structured_content.unwrap()["items"];
    assert_eq!(items[0]["ok"], false, "{items}");
    assert!(
        items[0]["error"].as_str().unwrap().contains("unexpected"),
        "{items}"
    );
    assert_eq!(items[1]["ok"], true, "{items}");
    let log = server.stop().await;
    assert!(
        log.contains("answer does not fit the output schema"),
        "{log}"
    );
}

/// The sandbox notice is added after the check, so sandbox answers still pass it.
#[tokio::test]
async fn sandbox_answers_pass_the_check_with_their_notice() {
    let server = crate::util::Launch {
        env: vec![],
        args: vec!["--sandbox"],
        lifecycle: rmcp::service::ClientLifecycleMode::Initialize,
        answer: None,
        default_tools: false,
        umask: None,
    }
    .start()
    .await;
    let result = server
        .call("landing_role_get_rights", json!({"id": 3}))
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let structured = result.structured_content.unwrap();
    assert!(structured["result"]["0"].is_array(), "{structured}");
    assert!(structured["sandbox"].is_string());
    server.stop().await;
}
