//! Nothing a portal or a client sends can make the server panic or hang.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{
    portal::{Reply, TestPortal},
    util::{Launch, command, text_of},
};

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn arbitrary_portal_bodies_always_yield_a_tool_result() {
    let mut rng = Lcg(0x5eed);
    let mut bodies: Vec<Vec<u8>> = (0..40).map(|_| rng.bytes(300)).collect();
    bodies.extend(
        [
            "",
            "{",
            "[]",
            "null",
            "{\"result\":",
            "{\"error\":null}",
            "{\"error\":{\"x\":1}}",
            "\u{0}\u{1}",
            "{\"result\":1e999}",
            "<html>",
            "{\"result\":\"\\ud800\"}",
        ]
        .map(|s| s.as_bytes().to_vec()),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let queue = std::sync::Mutex::new(bodies.clone());
    let portal = TestPortal::start(move |_| {
        let _ = tx.send(());
        let body = queue.lock().unwrap().pop().unwrap_or_default();
        let status = [200, 400, 500, 503][body.len() % 4];
        Reply::Raw {
            status,
            content_type: "application/json",
            body,
        }
    })
    .await;
    let url = portal.webhook_url();
    // Never retried here, so each call consumes exactly one body.
    let server = Launch::new(&url)
        .env("BITRIX24_RATE_LIMIT", "1000/100")
        .start()
        .await;
    for _ in 0..bodies.len() {
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            server.call(
                "sonet_group_feature_access",
                json!({"GROUP_ID": 1, "FEATURE": "tasks", "OPERATION": "view"}),
            ),
        )
        .await
        .expect("the server hung on a portal answer");
        assert!(!text_of(&result).is_empty());
    }
    // Every body was served: each call reached the portal, none was answered from elsewhere.
    let mut served = 0;
    while rx.try_recv().is_ok() {
        served += 1;
    }
    assert!(
        served >= bodies.len(),
        "{served} requests for {} calls",
        bodies.len()
    );
    let stderr = server.stop().await;
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn garbage_on_stdin_does_not_stop_the_server() {
    let portal = TestPortal::always(crate::portal::ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    let mut child = command(&[("BITRIX24_WEBHOOK_URL", &url)], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut rng = Lcg(42);
    let mut lines: Vec<Vec<u8>> = (0..50)
        .map(|_| rng.bytes(200).into_iter().filter(|b| *b != b'\n').collect())
        .collect();
    for fixed in [
        "",
        "{}",
        "[]",
        "null",
        "{\"jsonrpc\":\"2.0\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}",
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":1,\"message\":\"x\"}}",
        "{\"jsonrpc\":\"1.0\",\"id\":2,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"initialize\"}",
        "\u{feff}{",
        "{\"a\":",
        "]]]]",
    ] {
        lines.push(fixed.as_bytes().to_vec());
    }
    lines.push(vec![b'x'; 1 << 20]);
    for line in &lines {
        stdin.write_all(line).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
    }
    let initialize = json!({"jsonrpc": "2.0", "id": "after-garbage", "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    stdin
        .write_all(format!("{initialize}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();

    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            let value: Value = serde_json::from_str(&line).expect("stdout carries only JSON-RPC");
            if value["id"] == "after-garbage" {
                return value;
            }
        }
        panic!("stdout closed before the initialize answer");
    })
    .await
    .expect("no answer after the garbage");
    assert_eq!(
        answer["result"]["serverInfo"]["name"],
        "bitrix24-permissions-mcp"
    );
    drop(stdin);
    let _ = child.kill().await;
}
