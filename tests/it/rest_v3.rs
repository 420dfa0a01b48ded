//! REST 3.0 end to end: the catalog's v3 tools reach the portal on `/rest/api/...` with a JSON
//! body, their error objects come back as advice, the secret shows nowhere, and a v3 write
//! carries one `Idempotency-Key` on every attempt of a call.

use std::{sync::Arc, time::Duration};

use bitrix24_permissions_mcp::testing::{
    Api, Catalog, Gateway, NoProgress, PortalClient, RateLimiter, WebhookUrl,
};
use serde_json::{Value, json};

use crate::{
    portal::{Received, Reply, SECRET, TestPortal, USER_ID, error, ok, v3_error},
    util::{Server, is_error, text_of},
};

/// Every v3 tool with its example call and answer, from the catalog.
fn v3_examples() -> Vec<(String, String, Value, Value)> {
    Catalog::embedded()
        .unwrap()
        .entries()
        .filter(|e| e.spec.api == Api::V3)
        .filter_map(|e| {
            let example = e.spec.example.as_ref()?;
            Some((
                e.spec.name.clone(),
                e.spec.method.clone(),
                example.arguments.clone(),
                example.answer.clone(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn v3_tools_reach_the_api_path_with_a_json_body_and_no_secret_shows() {
    let examples = v3_examples();
    assert!(examples.len() >= 3, "the catalog's v3 tools: {examples:?}");
    let answers = examples.clone();
    let portal = TestPortal::start(move |r: &Received| {
        let answer = answers
            .iter()
            .find(|(_, method, _, _)| *method == r.method)
            .map_or(Value::Null, |(_, _, _, answer)| answer.clone());
        ok(answer)
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let mut shown = String::new();
    for (tool, method, args, answer) in &examples {
        let result = server.call(tool, args.clone()).await;
        assert!(!is_error(&result), "{tool}: {}", text_of(&result));
        assert_eq!(
            result.structured_content,
            Some(json!({ "result": answer })),
            "{tool}"
        );
        shown.push_str(&text_of(&result));
        let sent = portal.received();
        let request = sent.iter().rfind(|r| r.method == *method).unwrap();
        assert_eq!(
            request.path,
            format!("/rest/api/{USER_ID}/{SECRET}/{method}"),
            "{tool}: the REST 3.0 path, without .json"
        );
        assert_eq!(&request.body, args, "{tool}: forwarded verbatim as JSON");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("idempotency-key"),
            None,
            "{tool}: a read carries no idempotency key"
        );
    }
    let log = server.stop().await;
    assert!(!shown.contains(SECRET) && !log.contains(SECRET), "{log}");
}

#[tokio::test]
async fn v3_errors_become_advice_and_classic_paths_know_no_v3_method() {
    let portal = TestPortal::start(|r: &Received| match r.body["id"].as_u64() {
        Some(99) => v3_error(
            400,
            "ENTITYNOTFOUNDEXCEPTION",
            "Record with ID = `99` not found",
        ),
        Some(5) => ok(json!({"item": {"id": 5}})),
        _ => Reply::Json(
            400,
            json!({"error": {
                "code": "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION",
                "message": "Error validating request object",
                "validation": [{"field": "id", "message": "Required field `id` is not specified"}],
            }}),
        ),
    })
    .await;
    let server = Server::start(&portal.webhook_url()).await;
    let missing = server
        .call("humanresources_node_get", json!({"id": 99}))
        .await;
    assert!(is_error(&missing));
    let text = text_of(&missing);
    assert!(
        text.contains("BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION")
            && text.contains("Record with ID = `99` not found")
            && text.contains("What to do:")
            && text.contains("humanresources_node_list"),
        "{text}"
    );
    let invalid = server
        .call("humanresources_node_get", json!({"id": 1}))
        .await;
    let text = text_of(&invalid);
    assert!(
        text.contains("(id: Required field `id` is not specified)") && text.contains("What to do:"),
        "{text}"
    );
    server.stop().await;

    // The same method on the classic path is unknown to the portal.
    let (status, body) =
        bitrix24_permissions_mcp::testing::SandboxPortal::new(&Catalog::embedded().unwrap())
            .call_at(Api::Classic, "humanresources.node.get", &json!({"id": 2}));
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("ERROR_METHOD_NOT_FOUND"))
    );
}

#[tokio::test]
async fn classic_batch_refuses_v3_tools_and_sends_nothing_for_them() {
    let portal = TestPortal::always(ok(json!({"result": {}}))).await;
    let server = Server::start(&portal.webhook_url()).await;
    let result = server
        .call(
            "batch",
            json!({"items": [{"tool": "main_eventlog_list", "arguments": {}}]}),
        )
        .await;
    let text = text_of(&result);
    assert!(
        text.contains("REST 3.0") && text.contains("call main_eventlog_list on its own"),
        "{text}"
    );
    assert_eq!(portal.count_of("main.eventlog.list"), 0);
    server.stop().await;
}

/// There are no v3 writes in the catalog yet, so the gateway is driven directly, with a
/// method the portal would take on the REST 3.0 path.
#[tokio::test]
async fn a_v3_write_sends_one_idempotency_key_on_every_attempt_and_reads_none() {
    // A portal that throttles every first request of a key and answers the second.
    let seen = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeSet::<String>::new(),
    ));
    let keys = seen.clone();
    let portal = TestPortal::start(move |r: &Received| {
        let key = r.header("idempotency-key").unwrap_or("").to_owned();
        if !key.is_empty() && keys.lock().unwrap().insert(key) {
            error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        } else {
            ok(json!({"result": true}))
        }
    })
    .await;
    let webhook = WebhookUrl::parse(&portal.webhook_url()).unwrap();
    let client = PortalClient::new(Arc::new(webhook), Duration::from_secs(5));
    let limiter = Arc::new(RateLimiter::new("50/50".parse().unwrap()));
    let gateway = Gateway::new(client, limiter, Duration::from_secs(5));
    let params = json!({"id": 51, "fields": {"title": "x"}});
    for _ in 0..2 {
        let answer = gateway
            .call(
                "tasks.task.update",
                Api::V3,
                &params,
                true,
                gateway.deadline(),
                &NoProgress,
            )
            .await
            .unwrap();
        assert_eq!(answer.result, json!({"result": true}));
    }
    gateway
        .call(
            "tasks.task.get",
            Api::V3,
            &json!({"id": 51}),
            false,
            gateway.deadline(),
            &NoProgress,
        )
        .await
        .unwrap();
    let sent = portal.received();
    let key_of = |r: &Received| r.header("idempotency-key").map(str::to_owned);
    let writes: Vec<_> = sent
        .iter()
        .filter(|r| r.method == "tasks.task.update")
        .collect();
    assert_eq!(
        writes.len(),
        4,
        "two calls, each throttled once and retried"
    );
    assert!(
        writes
            .iter()
            .all(|r| r.v3 && r.path.ends_with("/tasks.task.update"))
    );
    assert_eq!(
        key_of(writes[0]),
        key_of(writes[1]),
        "a retry reuses its call's key"
    );
    assert_eq!(key_of(writes[2]), key_of(writes[3]));
    assert_ne!(
        key_of(writes[0]),
        key_of(writes[2]),
        "each call has its own key"
    );
    assert!(key_of(writes[0]).is_some());
    let read = sent.iter().find(|r| r.method == "tasks.task.get").unwrap();
    assert_eq!(key_of(read), None, "a read carries no key");
}
