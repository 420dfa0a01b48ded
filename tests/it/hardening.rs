//! The attacks from the hardening review, each kept as a case: the secret at every cut,
//! bad messages on stdin, hostile configuration, and the HTTP transport under load.

use std::time::Duration;

use crate::{
    portal::{Reply, SECRET, TestPortal, error},
    util::command,
};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(30), command(env, args).output())
        .await
        .expect("the command finished")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Any 6 consecutive characters of the secret, in any letter case.
fn part_of_secret(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    (0..=SECRET.len() - 6)
        .map(|i| &SECRET[i..i + 6])
        .find(|w| lower.contains(&w.to_ascii_lowercase()))
}

fn assert_hidden(what: &str, text: &str) {
    if let Some(piece) = part_of_secret(text) {
        panic!("{what}: `{piece}` of the secret shows in:\n{text}");
    }
}

/// `call` and `doctor` against a portal that always answers `reply`; every output checked.
async fn assert_never_shown(reply: Reply, env: &[(&str, &str)]) {
    let portal = TestPortal::always(reply).await;
    let url = portal.webhook_url();
    let mut env = env.to_vec();
    env.push(("BITRIX24_WEBHOOK_URL", &url));
    let call = run(&env, &["call", "landing_site_get_rights", r#"{"id": 1}"#]).await;
    assert_eq!(call.code, Some(1), "{}", call.stderr);
    assert_hidden("call stdout", &call.stdout);
    assert_hidden("call stderr", &call.stderr);
    let doctor = run(&env, &["doctor"]).await;
    assert_hidden("doctor stdout", &doctor.stdout);
    assert_hidden("doctor stderr", &doctor.stderr);
}

fn html(status: u16, page: String) -> Reply {
    Reply::Raw {
        status,
        content_type: "text/html",
        body: page.into_bytes(),
    }
}

#[tokio::test]
async fn a_secret_straddling_the_excerpt_cut_is_masked_whole() {
    // The excerpt is cut at 200 characters; put the secret across that cut at every offset.
    for before in (200 - SECRET.len())..=200 {
        let pad = "x".repeat(before - "http://upstream/".len());
        let quoted = format!("http://upstream/{pad}{SECRET}/rest");
        assert_never_shown(
            html(
                502,
                format!("<!DOCTYPE html><html><title>{quoted}</title></html>"),
            ),
            &[],
        )
        .await;
        assert_never_shown(
            Reply::Raw {
                status: 502,
                content_type: "text/plain",
                body: quoted.into_bytes(),
            },
            &[],
        )
        .await;
    }
}

#[tokio::test]
async fn escaped_and_recased_echoes_are_masked() {
    let escaped: String = SECRET.bytes().map(|b| format!("\\u{b:04x}")).collect();
    let percent: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
    let mixed: String = SECRET
        .bytes()
        .enumerate()
        .map(|(i, b)| match i % 3 {
            0 => format!("\\u{b:04X}"),
            1 => format!("%{b:02x}"),
            _ => char::from(b.to_ascii_uppercase()).to_string(),
        })
        .collect();
    for spelling in [&escaped, &percent, &mixed] {
        // Inside a malformed body, quoted as it stands.
        assert_never_shown(
            Reply::Raw {
                status: 500,
                content_type: "application/json",
                body: format!(r#"{{"error":"x","error_description":"{spelling}"#).into_bytes(),
            },
            &[],
        )
        .await;
    }
    assert_never_shown(
        error(401, "NO_AUTH_FOUND", &SECRET.to_ascii_uppercase()),
        &[],
    )
    .await;
    assert_never_shown(error(401, "NO_AUTH_FOUND", &percent), &[]).await;
}

#[tokio::test]
async fn error_texts_obey_the_result_size_limit() {
    let huge = "y".repeat(7_000_000);
    let portal = TestPortal::always(error(400, "ERROR_CORE", &huge)).await;
    let url = portal.webhook_url();
    let r = run(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_MAX_RESULT_BYTES", "1000"),
            // Only the error text on stderr, no log lines.
            ("BITRIX24_LOG_LEVEL", "off"),
        ],
        &["call", "landing_site_get_rights", r#"{"id": 1}"#],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.len() <= 1_001, "{} bytes", r.stderr.len());
    assert!(r.stderr.contains("error text cut"), "{}", r.stderr);
}
