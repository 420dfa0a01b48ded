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
    crate::util::wait_until(limit, what, || std::future::ready(done())).await;
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

/// Runs `args` under a tmpfs of 2 MiB mounted over `dir`, in a mount namespace of its own
/// (`unshare`), then copies the ledger's files out to `out`; None where namespaces are not
/// available.
fn on_a_small_disk(
    dir: &std::path::Path,
    out: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Option<std::process::Child> {
    const SCRIPT: &str = r#"mount -t tmpfs -o size=2m none "$1" || exit 97
dir=$1; out=$2; shift 2
"$@"; rc=$?
cp "$dir"/ledger.sqlite3* "$out"/
exit $rc"#;
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("NOTICE: no mount namespaces here (unshare -rm); the disk-full test is skipped");
        return None;
    }
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-rm", "/bin/sh", "-c", SCRIPT, "sh"])
        .arg(dir)
        .arg(out)
        .arg(crate::util::BIN)
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("BITRIX24_LIMITER_URL", "memory")
        .env("BITRIX24_CONFIRM_WRITES", "never")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Some(cmd.spawn().unwrap())
}

/// Writes zeros into `dir` until its file system is full.
fn fill(dir: &std::path::Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let block = [0u8; 4096];
    while filler
        .write_all(&block)
        .and_then(|()| filler.flush())
        .is_ok()
    {}
}

#[tokio::test]
async fn a_disk_that_fills_while_the_portal_answers_still_records_ok() {
    let root = std::env::temp_dir().join(format!("b24-mcp-it-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dir, out) = (root.join("disk"), root.join("out"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // The server's pid, to reach its mount namespace through /proc.
    let pid = std::sync::Arc::new(std::sync::OnceLock::<u32>::new());
    let (seen, disk) = (pid.clone(), dir.clone());
    let portal = TestPortal::start(guarded(move |r: &Received| {
        if r.method == WRITE {
            // The disk fills between the row's insert and the answer.
            let pid = seen.get().expect("the server's pid");
            fill(
                &std::path::Path::new(&format!("/proc/{pid}/root"))
                    .join(disk.strip_prefix("/").unwrap()),
            );
        }
        ok(json!(true))
    }))
    .await;
    let url = portal.webhook_url();
    let ledger = dir.join("ledger.sqlite3");
    let Some(child) = on_a_small_disk(
        &dir,
        &out,
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
        ],
        &[
            "call",
            "landing_site_set_rights",
            &write_args(645).to_string(),
        ],
    ) else {
        return;
    };
    pid.set(child.id()).unwrap();
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    assert_eq!(portal.count_of(WRITE), 1);
    assert!(stderr.contains("its reserve was freed"), "{stderr}");
    let copy = rusqlite::Connection::open(out.join("ledger.sqlite3")).unwrap();
    let outcome: String = copy
        .query_row("SELECT outcome FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(outcome, "ok", "{stderr}");
    drop(copy);
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_says_the_earlier_attempt_may_have_applied() {
    use rmcp::model::ElicitationAction;
    // The first write reaches the portal and its answer is lost; later ones are answered.
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = writes.clone();
    let portal = TestPortal::start(guarded(move |r: &Received| {
        if r.method == WRITE && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return crate::portal::Reply::Reset;
        }
        ok(json!(true))
    }))
    .await;
    let server = Launch::new(&portal.webhook_url())
        .answering(ElicitationAction::Accept, Some(json!({"apply": true})))
        .start()
        .await;
    let lost = server
        .call("landing_site_set_rights", write_args(645))
        .await;
    assert!(is_error(&lost), "{}", text_of(&lost));
    let rows = server.call("permission_history", json!({})).await;
    assert_eq!(
        rows.structured_content.unwrap()["changes"][0]["outcome"],
        "unknown"
    );

    let mut dry = write_args(645);
    dry["dry_run"] = json!(true);
    let dry = server.call("landing_site_set_rights", dry).await;
    let earlier = &dry.structured_content.unwrap()["dry_run"]["earlier_attempt_may_have_applied"];
    assert_eq!(earlier["arguments"], write_args(645), "{earlier}");
    assert!(
        earlier["note"]
            .as_str()
            .unwrap()
            .contains("may have been applied"),
        "{earlier}"
    );

    let retry = server
        .call("landing_site_set_rights", write_args(645))
        .await;
    assert!(!is_error(&retry), "{}", text_of(&retry));
    let asked = server.recorder.asked.lock().unwrap().clone();
    let question = asked.last().unwrap();
    assert!(question.contains("may have been applied"), "{question}");
    assert!(!question.contains("No earlier change"), "{question}");
    assert_eq!(portal.count_of(WRITE), 2);
    server.stop().await;
}

#[tokio::test]
async fn history_shows_control_c1_and_bidi_characters_as_codes() {
    let portal = saving_portal().await;
    let url = portal.webhook_url();
    let ledger = ledger_path();
    let env = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_LEDGER", ledger.to_str().unwrap()),
    ];
    let args = write_args(645).to_string();
    let made = crate::util::run(&env, &["call", "landing_site_set_rights", &args]).await;
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    // What a hostile model or portal could have put in a row: an escape sequence, a C1
    // control sequence introducer, a right-to-left override and an isolate.
    let hostile = "U1\u{1b}]0;owned\u{7}\u{9b}2J\u{202e}txt.exe\u{2066}";
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    conn.execute(
        "UPDATE changes SET arguments = ?1, error_code = ?2, object_id = ?2",
        rusqlite::params![
            json!({"id": 645, "rights": {hostile: ["read"]}}).to_string(),
            hostile
        ],
    )
    .unwrap();
    drop(conn);
    let raw = |text: &str| {
        text.chars().find(|c| {
            c.is_control() && *c != '\n'
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
    };
    let table = crate::util::run(&env, &["history"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert_eq!(raw(&table.stdout), None, "{:?}", table.stdout);
    for code in ["\\u{001B}", "\\u{009B}", "\\u{202E}", "\\u{2066}"] {
        assert!(table.stdout.contains(code), "{code} in {}", table.stdout);
    }
    let lines = crate::util::run(&env, &["history", "--json"]).await;
    assert_eq!(lines.code, Some(0), "{}", lines.stderr);
    assert_eq!(raw(&lines.stdout), None, "{:?}", lines.stdout);
    let row: Value = serde_json::from_str(lines.stdout.trim()).unwrap();
    assert_eq!(row["arguments"]["rights"][hostile], json!(["read"]));
    assert_eq!(row["object"], format!("site {hostile}"));
}

#[tokio::test]
async fn a_read_only_server_starts_without_a_usable_ledger_and_says_history_is_unavailable() {
    let portal = saving_portal().await;
    // A ledger path under a plain file: its folder can never be made.
    let plain = ledger_path();
    std::fs::write(&plain, b"not a folder").unwrap();
    let unusable = plain.join("ledger.sqlite3");
    let server = Launch::new(&portal.webhook_url())
        .env("BITRIX24_LEDGER", unusable.to_str().unwrap())
        .arg("--read-only")
        .start()
        .await;
    let read = server
        .call("landing_site_get_rights", json!({"id": 1}))
        .await;
    assert!(!is_error(&read), "{}", text_of(&read));
    let history = server.call("permission_history", json!({})).await;
    assert!(is_error(&history), "{}", text_of(&history));
    let text = text_of(&history);
    assert!(text.contains("unavailable"), "{text}");
    assert!(text.contains(&unusable.display().to_string()), "{text}");
    let log = server.stop().await;
    assert!(log.contains("serving without the ledger"), "{log}");

    // The command says so too, and a server that may write still refuses to start.
    let url = portal.webhook_url();
    let env = [
        ("BITRIX24_WEBHOOK_URL", url.as_str()),
        ("BITRIX24_LEDGER", unusable.to_str().unwrap()),
    ];
    let history = crate::util::run(&env, &["--read-only", "history"]).await;
    assert_eq!(history.code, Some(1), "{}", history.stderr);
    assert!(history.stderr.contains("unavailable"), "{}", history.stderr);
    let writable = crate::util::run(&env, &["history"]).await;
    assert_eq!(writable.code, Some(2), "{}", writable.stderr);
    std::fs::remove_file(&plain).unwrap();
}
