//! The ledger under stress: a file another process holds, a disk that fills, files only
//! their user can read, and a read-only server without a usable ledger.

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::{
    portal::{Received, TestPortal, guarded, ok},
    util::{Launch, Server, is_error, ledger_path, text_of},
};

const WRITE: &str = "landing.site.setRights";

/// Polls `done` until it holds, for at most `limit`; says what was awaited when it does not.
async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A portal that saves every write and answers a read of site rights.
async fn saving_portal() -> TestPortal {
    TestPortal::start(guarded(|r: &Received| match r.method.as_str() {
        "landing.site.getRights" => ok(json!(["read"])),
        _ => ok(json!(true)),
    }))
    .await
}

fn write_args(id: u32) -> Value {
    json!({"id": id, "rights": {"AU": ["read"]}})
}

fn call_params(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().cloned().unwrap())
}

#[tokio::test]
async fn a_ledger_held_by_another_process_delays_only_the_write_that_needs_it() {
    let portal = saving_portal().await;
    let ledger = ledger_path();
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_LEDGER", ledger.to_str().unwrap())
        .start()
        .await;
    // A first write makes the file (in WAL mode, as the server keeps it).
    let first = server.call("landing_site_set_rights", write_args(1)).await;
    assert!(!is_error(&first), "{}", text_of(&first));

    // Another process takes the file's write lock and keeps it.
    let holder = rusqlite::Connection::open(&ledger).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let peer = server.client.peer().clone();
    let write = tokio::spawn(async move {
        peer.call_tool(call_params("landing_site_set_rights", write_args(2)))
            .await
            .unwrap()
    });
    // The write log's line comes just before the ledger's insert, in the same step.
    let sent = |log: &str| log.matches("sending a write").count();
    wait_until(
        "the second write to reach the ledger",
        Duration::from_secs(10),
        || sent(&server.stderr_so_far()) == 2,
    )
    .await;

    // Meanwhile a read and the history answer, and the write still waits for the ledger.
    let read = server
        .call("landing_site_get_rights", json!({"id": 1}))
        .await;
    assert!(!is_error(&read), "{}", text_of(&read));
    let history = server.call("permission_history", json!({})).await;
    assert!(!is_error(&history), "{}", text_of(&history));
    let rows = history.structured_content.unwrap()["changes"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert!(
        !write.is_finished(),
        "the write went on while the file was locked"
    );
    assert_eq!(portal.count_of(WRITE), 1, "nothing goes out unrecorded");

    // Once the other process lets go, the write is recorded, sent and answered.
    holder.execute_batch("ROLLBACK").unwrap();
    let written = write.await.unwrap();
    assert!(!is_error(&written), "{}", text_of(&written));
    assert_eq!(portal.count_of(WRITE), 2);
    let history = server.call("permission_history", json!({})).await;
    let rows = history.structured_content.unwrap()["changes"].clone();
    assert_eq!(rows[0]["outcome"], "ok", "{rows}");
    assert_eq!(rows[0]["object"], "site 2", "{rows}");
    drop(holder);
    let _ = Server::stop(server).await;
}
