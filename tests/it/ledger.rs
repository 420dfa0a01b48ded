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

/// A file's or folder's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn state_files_are_private_whatever_the_umask() {
    for umask in ["000", "022"] {
        let portal = saving_portal().await;
        let root =
            std::env::temp_dir().join(format!("b24-mcp-it-modes-{}-{umask}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).unwrap();
        let (state, limits) = (root.join("state/deep"), root.join("limits"));
        let ledger = state.join("ledger.sqlite3");
        let log = root.join("server.log");
        let limiter = format!("file:{}", limits.display());
        let server = Launch::new(&portal.webhook_url())
            .umask(umask)
            .env("BITRIX24_LEDGER", ledger.to_str().unwrap())
            .env("BITRIX24_LIMITER_URL", &limiter)
            .arg("--log-file")
            .arg(log.to_str().unwrap())
            .start()
            .await;
        let written = server.call("landing_site_set_rights", write_args(1)).await;
        assert!(!is_error(&written), "{}", text_of(&written));
        // Measured while the server runs, so the ledger's -wal and -shm files exist.
        let bucket = std::fs::read_dir(&limits)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".json"))
            .expect("a bucket file");
        let wal = state.join("ledger.sqlite3-wal");
        let shm = state.join("ledger.sqlite3-shm");
        let mut modes = Vec::new();
        for (path, want) in [
            (root.join("state"), 0o700),
            (state.clone(), 0o700),
            (ledger.clone(), 0o600),
            (wal, 0o600),
            (shm, 0o600),
            (limits.clone(), 0o700),
            (bucket, 0o600),
            (log.clone(), 0o600),
        ] {
            let found = mode(&path);
            modes.push(format!(
                "{} {found:o}",
                path.strip_prefix(&root).unwrap().display()
            ));
            assert_eq!(
                found,
                want,
                "umask {umask}: {} is {found:o}",
                path.display()
            );
        }
        eprintln!("umask {umask}: {}", modes.join(", "));
        server.stop().await;
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[tokio::test]
async fn doctor_warns_about_state_files_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("b24-mcp-it-exposed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("limits")).unwrap();
    // An empty file is an empty SQLite database; made 0644 as an older version left it.
    let ledger = root.join("ledger.sqlite3");
    std::fs::write(&ledger, b"").unwrap();
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o644)).unwrap();
    let limits = root.join("limits");
    std::fs::set_permissions(&limits, std::fs::Permissions::from_mode(0o777)).unwrap();
    let limiter = format!("file:{}", limits.display());
    let out = crate::util::run(
        &[
            ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
            ("BITRIX24_LIMITER_URL", &limiter),
        ],
        &["--sandbox", "doctor"],
    )
    .await;
    let warned = |path: &std::path::Path, private: &str| {
        out.stdout
            .contains(&format!("Run: chmod {private} {}", path.display()))
    };
    assert!(warned(&ledger, "600"), "{}", out.stdout);
    assert!(out.stdout.contains("mode 644"), "{}", out.stdout);
    assert!(warned(&limits, "700"), "{}", out.stdout);
    // What exists is reported, not changed behind its owner's back.
    assert_eq!(mode(&ledger), 0o644);
    std::fs::remove_dir_all(&root).unwrap();
}
