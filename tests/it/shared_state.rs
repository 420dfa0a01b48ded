//! Shared rate-limit state that cannot be right: times an hour ahead of or behind this
//! machine's clock, and a value far larger than any state. Each is started afresh, with a
//! warning that names the file or key, and no call waits for it.

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::{
    limits::RedisServer,
    portal::{TestPortal, ok},
    util::{Run, run},
};

const HOUR: f64 = 3600.0;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every time in a stored state moved by `secs`.
fn shifted(state: &str, secs: f64) -> String {
    let mut state: Value = serde_json::from_str(state).unwrap();
    let round = state["round"].clone();
    for field in ["tat", "admitted_at", "full_at"] {
        if let Some(t) = state[field].as_f64() {
            state[field] = json!(t + secs);
        }
    }
    if let Some(t) = round["changed_at"].as_f64() {
        state["round"]["changed_at"] = json!(t + secs);
    }
    state.to_string()
}

/// How far past now the latest time in a stored state lies (negative when behind).
fn ahead(state: &str) -> f64 {
    let state: Value = serde_json::from_str(state).unwrap();
    let times = [
        &state["tat"],
        &state["admitted_at"],
        &state["full_at"],
        &state["round"]["changed_at"],
    ];
    times
        .iter()
        .filter_map(|t| t.as_f64())
        .fold(f64::MIN, f64::max)
        - unix_now()
}

/// One read through a server pacing with `store`; it must go through at once.
async fn read_once(portal: &TestPortal, store: &str) -> Run {
    let url = portal.webhook_url();
    let out = run(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_LIMITER_URL", store),
        ],
        &["call", "landing_site_get_rights", r#"{"id": 1}"#],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out
}

fn bucket_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".json"))
        .expect("a state file")
}

const WARNING: &str = "further ahead of this process's clock";

#[tokio::test]
async fn a_state_file_an_hour_off_is_started_afresh() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let dir = std::env::temp_dir().join(format!("b24-skewed-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = format!("file:{}", dir.display());
    read_once(&portal, &store).await;
    let file = bucket_file(&dir);
    for shift in [HOUR, -HOUR] {
        let state = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, shifted(&state, shift)).unwrap();
        let out = read_once(&portal, &store).await;
        // Ahead is impossible and said so; behind is merely old, as after a quiet hour.
        let warned = out.stderr.lines().find(|l| l.contains(WARNING));
        assert_eq!(warned.is_some(), shift > 0.0, "{}", out.stderr);
        if let Some(line) = warned {
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains(&file.display().to_string()), "{line}");
        }
        let state = std::fs::read_to_string(&file).unwrap();
        assert!(ahead(&state).abs() < HOUR / 2.0, "{state}");
    }
    assert_eq!(portal.count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_redis_state_an_hour_off_or_far_too_large_is_started_afresh() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    read_once(&portal, &redis.url).await;
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:bucket:*")
        .query(&mut conn)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    let get = |conn: &mut redis::Connection| -> String {
        redis::cmd("GET").arg(key).query(conn).unwrap()
    };
    for shift in [HOUR, -HOUR] {
        let state = shifted(&get(&mut conn), shift);
        let () = redis::cmd("SET")
            .arg(key)
            .arg(state)
            .query(&mut conn)
            .unwrap();
        let out = read_once(&portal, &redis.url).await;
        let warned = out.stderr.lines().find(|l| l.contains(WARNING));
        assert_eq!(warned.is_some(), shift > 0.0, "{}", out.stderr);
        if let Some(line) = warned {
            assert!(line.contains(key.as_str()), "{line}");
        }
        let state = get(&mut conn);
        assert!(ahead(&state).abs() < HOUR / 2.0, "{state}");
    }

    // 64 MiB under the key: only its length is read, and it is replaced by a state.
    let huge = vec![b'x'; 64 << 20];
    let () = redis::cmd("SET")
        .arg(key)
        .arg(huge)
        .query(&mut conn)
        .unwrap();
    let out = read_once(&portal, &redis.url).await;
    let warned = out
        .stderr
        .lines()
        .find(|l| l.contains("67108864 bytes"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(warned.contains(key.as_str()), "{warned}");
    let size: u64 = redis::cmd("STRLEN").arg(key).query(&mut conn).unwrap();
    assert!(size < 4096, "{size} bytes");
    assert_eq!(portal.count(), 4);
}

/// Reads one command (a RESP array of bulk strings) from the server.
fn read_command(reader: &mut impl std::io::BufRead) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let count: usize = line.trim_start_matches('*').trim().parse().unwrap();
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let len: usize = line.trim_start_matches('$').trim().parse().unwrap();
        let mut bulk = vec![0; len + 2];
        reader.read_exact(&mut bulk).unwrap();
    }
}

/// Something at the Redis URL that answers the state's read with 64 MiB: the server stops
/// reading at its bound (a few KiB, not the reply's length in memory), says why, and sends
/// nothing to the portal.
#[tokio::test]
async fn a_redis_reply_over_the_bound_is_refused_unread() {
    use std::io::Write;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(socket.try_clone().unwrap());
        let mut socket = socket;
        read_command(&mut reader);
        socket.write_all(b"+PONG\r\n").unwrap();
        read_command(&mut reader);
        let size = 64usize << 20;
        socket.write_all(format!("${size}\r\n").as_bytes()).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        // The server hangs up part of the way through.
        let sent = (0..64).take_while(|_| socket.write_all(&chunk).is_ok());
        sent.count()
    });
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    let store = format!("redis://127.0.0.1:{port}/0");
    let out = run(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_LIMITER_URL", &store),
        ],
        &["call", "landing_site_get_rights", r#"{"id": 1}"#],
    )
    .await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("a reply longer than 65536 bytes"),
        "{}",
        out.stderr
    );
    let sent_mib = peer.join().unwrap();
    assert!(sent_mib < 64, "the whole reply was read");
    assert_eq!(portal.count(), 0);
}
