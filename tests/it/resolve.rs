//! `resolve_access_codes` against the sandbox portal: the people behind U, D, DR and SG codes,
//! in batched requests, and plain words for the codes REST cannot expand.

use std::sync::Mutex;

use bitrix24_permissions_mcp::testing::{Api, Catalog, SandboxPortal};
use serde_json::{Value, json};

use crate::{
    portal::{Received, Reply, TestPortal, v3_error},
    util::{Launch, Server, is_error, text_of},
};

fn ids(part: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = part["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn sandbox_resolves_u_d_dr_and_sg_codes_and_says_what_it_cannot() {
    let server = Launch::new("")
        .arg("--sandbox")
        .default_tools()
        .start()
        .await;
    let tools = server.client.list_all_tools().await.unwrap();
    let tool = tools
        .iter()
        .find(|t| t.name == "resolve_access_codes")
        .expect("published by default");
    let result = server
        .call(
            "resolve_access_codes",
            json!({"codes": ["U503", "D2", "DR1", "SG77_K", "SG77_E", "G1", "AU", "U999"]}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let out = result.structured_content.clone().unwrap();
    let schema = Value::Object(tool.output_schema.as_deref().unwrap().clone());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&out).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");

    let r = &out["result"];
    assert_eq!(ids(&r["U503"]), ["503"]);
    assert_eq!(r["U503"]["users"][0]["name"], "Oleg Petrov");
    assert_eq!(ids(&r["D2"]), ["503", "7"], "Marketing's members");
    assert_eq!(
        ids(&r["DR1"]),
        ["1", "3", "45", "503", "547", "7"],
        "the whole tree"
    );
    assert_eq!(ids(&r["SG77_K"]), ["503", "547", "7"], "every member");
    assert_eq!(ids(&r["SG77_E"]), ["503", "547"], "owner and moderator");
    for code in ["U503", "D2", "DR1", "SG77_K"] {
        assert_eq!(r[code]["complete"], true, "{code}: {}", r[code]);
    }
    for code in ["G1", "AU"] {
        assert_eq!(r[code]["complete"], false, "{code}");
        assert_eq!(r[code]["kind"], "names_only", "{code}");
        assert!(r[code]["note"].as_str().unwrap().contains("REST"), "{code}");
    }
    assert_eq!(r["U999"]["complete"], false);
    assert_eq!(r["U999"]["users"], json!([]));
    let head = r["D2"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "503")
        .unwrap();
    assert_eq!(
        head["role"], "MEMBER_HEAD",
        "roles from the company structure"
    );
    assert_eq!(
        out["requests"], 7,
        "departments through the company structure (the tree, then nodes 1, 2, 3 and 7), then two rounds of batched reads"
    );
    server.stop().await;
}

/// A portal without the company structure (here: the webhook lacks the humanresources scope)
/// still gets its D and DR codes expanded, the classic way.
#[tokio::test]
async fn without_the_company_structure_departments_expand_through_user_get() {
    let catalog = Catalog::embedded().unwrap();
    let sandbox = Mutex::new(SandboxPortal::new(&catalog));
    let portal = TestPortal::start(move |r: &Received| {
        if r.v3 {
            return v3_error(
                403,
                "INSUFFICIENTSCOPEEXCEPTION",
                "Insufficient access rights: required scope is missing",
            );
        }
        let (status, body) = sandbox
            .lock()
            .unwrap()
            .call_at(Api::Classic, &r.method, &r.body);
        Reply::Json(status, body)
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call("resolve_access_codes", json!({"codes": ["D2", "DR1"]}))
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let out = result.structured_content.clone().unwrap();
    let r = &out["result"];
    assert_eq!(ids(&r["D2"]), ["503", "7"]);
    assert_eq!(ids(&r["DR1"]), ["1", "3", "45", "503", "547", "7"]);
    assert_eq!(r["DR1"]["complete"], true);
    assert_eq!(
        portal.count_of("humanresources.node.list"),
        1,
        "one try, then the classic way"
    );
    assert_eq!(out["requests"], 3, "the failed try plus two batched rounds");
    server.stop().await;
}
