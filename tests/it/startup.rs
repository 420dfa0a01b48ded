//! The server refuses to start on a bad configuration, says why, and never shows the secret.

use std::time::Duration;

use crate::util::command;

const SECRET: &str = "zz9plural9z9alpha";

async fn refused(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = tokio::time::timeout(Duration::from_secs(10), command(env, args).output())
        .await
        .expect("refusal must be immediate")
        .unwrap();
    assert!(!out.status.success(), "{env:?} {args:?}: started");
    assert!(
        out.stdout.is_empty(),
        "stdout must stay clean: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains(SECRET), "secret in: {stderr}");
    stderr
}

#[tokio::test]
async fn bad_webhook_urls_are_refused() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("http://portal.example.com/rest/1/{SECRET}/"),
            "https",
        ),
        (format!("http://10.0.0.5/rest/1/{SECRET}/"), "https"),
        (
            format!("https://portal.example.com/rest/{SECRET}/"),
            "path must be",
        ),
        (
            format!("https://portal.example.com/rest/1/{SECRET}/profile.json"),
            "method name",
        ),
        (format!("https://portal.example.com/{SECRET}"), "path"),
        (
            format!("ftp://portal.example.com/rest/1/{SECRET}/"),
            "https",
        ),
        (format!("portal.example.com/rest/1/{SECRET}/"), "not a URL"),
    ];
    for (url, expected) in cases {
        let stderr = refused(&[("BITRIX24_WEBHOOK_URL", &url)], &[]).await;
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(stderr.contains("BITRIX24_WEBHOOK_URL"), "{stderr}");
    }
}

#[tokio::test]
async fn doubled_or_unreadable_webhook_is_refused() {
    let url = format!("https://p.example.com/rest/1/{SECRET}/");
    let stderr = refused(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_WEBHOOK_URL_FILE", "/nonexistent"),
        ],
        &[],
    )
    .await;
    assert!(stderr.contains("only one"), "{stderr}");
    let stderr = refused(
        &[("BITRIX24_WEBHOOK_URL_FILE", "/nonexistent/webhook")],
        &[],
    )
    .await;
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[tokio::test]
async fn webhook_file_is_read() {
    let path = crate::util::stderr_path().with_extension("url");
    std::fs::write(
        &path,
        format!("http://portal.example.com/rest/1/{SECRET}/\n"),
    )
    .unwrap();
    // Read and validated: the http scheme is what gets refused, proving the file was used.
    let stderr = refused(
        &[("BITRIX24_WEBHOOK_URL_FILE", path.to_str().unwrap())],
        &[],
    )
    .await;
    assert!(stderr.contains("https"), "{stderr}");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn bad_flag_values_are_refused() {
    let url = format!("https://p.example.com/rest/1/{SECRET}/");
    let stderr = refused(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_TIMEOUT_SECS", "0"),
        ],
        &[],
    )
    .await;
    assert!(stderr.contains("timeout"), "{stderr}");
}
