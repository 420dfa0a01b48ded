//! The `tools`, `call` and `doctor` commands, help and version, log options, and the sandbox,
//! run as a newcomer would: the real binary, its exit codes and what it prints.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    portal::{SECRET, TestPortal, error, ok},
    util::{Launch, command, is_error, run, text_of},
};

#[tokio::test]
async fn readme_first_command_answers_from_the_sandbox() {
    let r = run(
        &[],
        &[
            "--sandbox",
            "call",
            "landing_site_get_rights",
            r#"{"id": 645}"#,
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let answer: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(answer["result"], json!(["read", "edit", "sett", "public"]));
    assert!(answer["sandbox"].as_str().unwrap().starts_with("SANDBOX"));
}

#[tokio::test]
async fn call_exit_codes() {
    let tool_error = run(
        &[],
        &[
            "--sandbox",
            "call",
            "sonet_group_user_get",
            r#"{"ID": 404}"#,
        ],
    )
    .await;
    assert_eq!(tool_error.code, Some(1));
    assert!(
        tool_error.stderr.contains("Socialnetwork group not found")
            && tool_error.stderr.contains("What to do"),
        "{}",
        tool_error.stderr
    );
    let bad_argument = run(
        &[],
        &[
            "--sandbox",
            "call",
            "tasks_task_get_access",
            r#"{"taskId": "x"}"#,
        ],
    )
    .await;
    assert_eq!(bad_argument.code, Some(1));
    assert!(bad_argument.stderr.contains("taskId"));
    let lines: Vec<&str> = bad_argument.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("Invalid arguments"))
        .unwrap();
    assert!(
        lines[at - 1].starts_with("SANDBOX"),
        "every answer says it is the sandbox"
    );
    for (args, needle) in [
        (
            vec!["--sandbox", "call", "tasks_task_get_access", "{taskId: 1}"],
            "not valid JSON",
        ),
        (
            vec!["--sandbox", "call", "tasks_task_get_access", "[1]"],
            "JSON object",
        ),
        (vec!["--sandbox", "call", "no_such_tool"], "unknown tool"),
        (
            vec![
                "--sandbox",
                "--read-only",
                "call",
                "landing_site_set_rights",
                r#"{"id": 1, "rights": {}}"#,
            ],
            "read-only",
        ),
        (
            vec!["--sandbox", "--toolsets", "tasks", "call", "profile"],
            "not enabled",
        ),
        (vec!["call"], "required"),
    ] {
        let r = run(&[], &args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[tokio::test]
async fn call_goes_through_the_real_pipeline_to_a_portal() {
    let portal = TestPortal::always(ok(json!({"allowedActions": {"503": {"EDIT": false}}}))).await;
    let url = portal.webhook_url();
    let r = run(
        &[("BITRIX24_WEBHOOK_URL", &url)],
        &[
            "call",
            "tasks_task_get_access",
            r#"{"taskId": 8017, "users": [503]}"#,
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let answer: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        answer,
        json!({"result": {"allowedActions": {"503": {"EDIT": false}}}}),
        "no sandbox notice on a real portal"
    );
    assert_eq!(portal.received().len(), 1);
    assert_eq!(
        portal.received()[0].body,
        json!({"taskId": 8017, "users": [503]})
    );
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
}

#[tokio::test]
async fn tools_lists_what_is_published() {
    let default = run(&[], &["--sandbox", "tools"]).await;
    assert_eq!(default.code, Some(0));
    assert!(default.stdout.starts_with("TOOL"));
    assert!(default.stdout.contains("enable_toolset"));
    for seed in [
        "sonet_group_feature_access",
        "landing_site_get_rights",
        "landing_site_set_rights",
        "tasks_task_get_access",
        "permission_history",
    ] {
        assert!(default.stdout.contains(seed), "{seed}: {}", default.stdout);
    }
    assert!(!default.stdout.contains("department_get"));
    let all = run(&[], &["--sandbox", "--toolsets", "all", "tools"]).await;
    assert!(all.stdout.contains("landing_site_set_rights") && all.stdout.contains("write"));
    // Everything but enable_toolset, which has nothing left to publish.
    let count = bitrix24_permissions_mcp::testing::Catalog::embedded()
        .unwrap()
        .entries()
        .count()
        - 1;
    assert!(
        all.stdout.contains(&format!("\n{count} tools")),
        "{}",
        all.stdout
    );
    let read_only = run(
        &[("BITRIX24_READ_ONLY", "true"), ("BITRIX24_TOOLSETS", "all")],
        &["tools"],
    )
    .await;
    assert!(!read_only.stdout.contains("landing_site_set_rights"));
    assert!(!read_only.stdout.contains(" write"));
    let json_out = run(&[], &["tools", "--json", "--toolsets", "tasks"]).await;
    let tools: Value = serde_json::from_str(&json_out.stdout).unwrap();
    let tools = tools.as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "tasks_task_get_access");
    assert!(tools[0]["inputSchema"]["properties"]["taskId"].is_object());
    assert_eq!(tools[0]["annotations"]["readOnlyHint"], true);
}

#[tokio::test]
async fn doctor_on_the_sandbox_and_without_a_webhook() {
    let r = run(&[], &["--sandbox", "doctor"]).await;
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(
        r.stdout.contains("acts as        Ann Lee (user 7)")
            && r.stdout.contains("Everything needed is in place"),
        "{}",
        r.stdout
    );
    let r = run(&[], &["doctor"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("No webhook is configured"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn doctor_names_the_missing_landing_scope() {
    let portal = TestPortal::start(|r: &crate::portal::Received| match r.method.as_str() {
        "profile" => {
            ok(json!({"ID": "12", "ADMIN": true, "NAME": "Maria", "LAST_NAME": "Ivanova"}))
        }
        "scope" => ok(json!(["sonet_group", "task", "user"])),
        _ => error(403, "insufficient_scope", ""),
    })
    .await;
    let url = portal.webhook_url();
    let r = run(
        &[
            ("BITRIX24_WEBHOOK_URL", &url),
            ("BITRIX24_RATE_LIMIT", "10/300"),
        ],
        &["doctor"],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("acts as        Maria Ivanova (user 12), administrator: yes"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("landing_site_get_rights          needs scope landing"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("tick `landing`"), "{}", r.stdout);
    assert!(!r.stdout.contains("tick `task`") && !r.stdout.contains("tick `sonet_group`"));
    assert!(
        r.stdout.contains("above Bitrix24's largest plan"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("/rest/7/***/") && !r.stdout.contains(SECRET));
}

#[tokio::test]
async fn doctor_tells_a_rejected_webhook_from_an_unreachable_portal() {
    let portal = TestPortal::always(error(401, "NO_AUTH_FOUND", "Wrong authorization data")).await;
    let url = portal.webhook_url();
    let r = run(&[("BITRIX24_WEBHOOK_URL", &url)], &["doctor"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("rejected the webhook (NO_AUTH_FOUND)")
            && r.stdout.contains("deleted or has expired")
            && !r.stdout.contains("unreachable")
            && !r.stdout.contains("could not be reached"),
        "{}",
        r.stdout
    );

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/rest/7/{SECRET}/");
    let r = run(&[("BITRIX24_WEBHOOK_URL", &url)], &["doctor"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("unreachable (network, proxy or TLS)") && !r.stdout.contains("rejected"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn plain_messages_for_bad_arguments_and_https_to_a_plain_port() {
    let r = run(
        &[],
        &[
            "--sandbox",
            "call",
            "landing_site_get_rights",
            r#"{"id": "abc"}"#,
        ],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .contains(r#"argument `id`: must be an integer ≥ 0 or a string of digits; got "abc""#)
            && !r.stderr.contains("anyOf"),
        "{}",
        r.stderr
    );

    // A plain-HTTP server answers the TLS greeting with an HTTP error, as web servers do.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = plain.local_addr().unwrap().port();
    let answering = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = plain.accept().await {
            let mut greeting = [0u8; 512];
            let _ = socket.read(&mut greeting).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let url = format!("https://127.0.0.1:{port}/rest/7/{SECRET}/");
    let r = run(
        &[("BITRIX24_WEBHOOK_URL", &url)],
        &["call", "landing_site_get_rights", r#"{"id": 1}"#],
    )
    .await;
    answering.abort();
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("answers plain HTTP"), "{}", r.stderr);
}

#[tokio::test]
async fn help_and_version() {
    let help = run(&[], &["--help"]).await;
    assert_eq!(help.code, Some(0));
    for needle in [
        "call landing_site_get_rights",
        "doctor",
        "tools --json",
        "claude mcp add",
        ".cursor/mcp.json",
        "[mcp_servers.bitrix24-permissions]",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle:?}");
    }
    let version = run(&[], &["--version"]).await;
    assert_eq!(
        version.stdout.trim(),
        format!("bitrix24-permissions-mcp {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `tools | head -1`: once the reader has gone, the commands stop quietly with success.
#[tokio::test]
async fn a_closed_stdout_ends_tools_and_call_quietly() {
    for args in [
        &["--sandbox", "tools"][..],
        &["--sandbox", "tools", "--json"][..],
        &[
            "--sandbox",
            "call",
            "landing_site_get_rights",
            r#"{"id": 645}"#,
        ][..],
    ] {
        // A pipe whose reading end is already closed: every write to it fails at once.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            command(&[], args)
                .env_remove("RUST_LOG")
                .stdout(std::process::Stdio::from(writer))
                .output(),
        )
        .await
        .expect("the command finished")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// Claude Code files every stderr line under errors: a healthy stdio server writes none.
#[tokio::test]
async fn stdio_serving_is_quiet_unless_asked() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    // As a client spawns it: no RUST_LOG, no log flags.
    let mut cmd = command(&[("BITRIX24_WEBHOOK_URL", &url)], &[]);
    cmd.env_remove("RUST_LOG");
    let stderr_file = crate::util::stderr_path();
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::from(
            std::fs::File::create(&stderr_file).unwrap(),
        ))
        .spawn()
        .unwrap();
    let client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    let params = rmcp::model::CallToolRequestParams::new("landing_site_get_rights")
        .with_arguments(json!({"id": 1}).as_object().unwrap().clone());
    assert!(!is_error(&client.call_tool(params).await.unwrap()));
    let _ = client.cancel().await;
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    std::fs::remove_file(&stderr_file).unwrap();
    assert!(stderr.is_empty(), "{stderr}");

    let server = Launch::new(&url).arg("--log-level=info").start().await;
    let stderr = server.stop().await;
    assert!(stderr.contains("serving MCP over stdio"), "{stderr}");
}

#[tokio::test]
async fn log_file_takes_the_logs_and_masks_the_secret() {
    let portal = TestPortal::always(ok(json!(["read"]))).await;
    let url = portal.webhook_url();
    let log = crate::util::stderr_path().with_extension("log");
    let log_arg = log.to_str().unwrap().to_owned();
    let server = Launch::new(&url)
        .arg("--log-file")
        .arg(&log_arg)
        .arg("--log-level=debug")
        .start()
        .await;
    assert!(!is_error(
        &server
            .call("landing_site_get_rights", json!({"id": 1}))
            .await
    ));
    let stderr = server.stop().await;
    let logged = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(
        logged.contains("forwarding") && logged.contains("/rest/7/***/"),
        "{logged}"
    );
    assert!(!logged.contains(SECRET));
    assert!(stderr.is_empty(), "logs went to stderr too: {stderr}");
}

#[tokio::test]
async fn without_a_webhook_the_server_serves_the_sandbox_and_says_so() {
    let server = Launch {
        env: vec![],
        args: vec![],
        lifecycle: rmcp::service::ClientLifecycleMode::Initialize,
        answer: None,
        default_tools: false,
        umask: None,
    }
    .start()
    .await;
    let info = server.client.peer_info().unwrap();
    assert!(
        info.instructions
            .as_deref()
            .unwrap()
            .starts_with("SANDBOX MODE")
    );
    let tools = server.client.list_all_tools().await.unwrap();
    // Replace semantics, visible through the real pipeline: the write, then the read.
    let before = server
        .call("landing_site_get_rights", json!({"id": 646}))
        .await;
    assert_eq!(
        before.structured_content.as_ref().unwrap()["result"],
        json!(["read", "edit"]),
        "member of SG77"
    );
    let set = server
        .call(
            "landing_site_set_rights",
            json!({"id": 646, "rights": {"U7": ["sett"], "AU": ["denied"]}}),
        )
        .await;
    assert!(!is_error(&set), "{}", text_of(&set));
    let after = server
        .call("landing_site_get_rights", json!({"id": 646}))
        .await;
    let structured = after.structured_content.clone().unwrap();
    assert_eq!(
        structured["result"],
        json!(["denied", "read", "sett"]),
        "denied comes with the granting codes"
    );
    assert!(
        structured["sandbox"]
            .as_str()
            .unwrap()
            .starts_with("SANDBOX")
    );
    let schema = Value::Object(
        tools
            .iter()
            .find(|t| t.name == "landing_site_get_rights")
            .unwrap()
            .output_schema
            .as_deref()
            .unwrap()
            .clone(),
    );
    assert!(
        jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&structured)
    );
    // Errors say it too.
    let failed = server
        .call("sonet_group_user_get", json!({"ID": 404}))
        .await;
    assert!(text_of(&failed).starts_with("SANDBOX"));
    // Under the role model the guard refuses, as on a real portal.
    assert!(!is_error(
        &server.call("landing_role_enable", json!({"mode": 1})).await
    ));
    let refused = server
        .call("landing_site_set_rights", json!({"id": 645, "rights": {}}))
        .await;
    assert!(is_error(&refused) && text_of(&refused).contains("role model"));
    server.stop().await;
}

#[tokio::test]
async fn sandbox_writes_show_in_history_across_runs_and_portals() {
    let ledger = crate::util::ledger_path();
    let ledger = ledger.to_str().unwrap();
    let env = [
        ("BITRIX24_LEDGER", ledger),
        ("BITRIX24_CONFIRM_WRITES", "never"),
    ];
    let write = r#"{"id": 645, "rights": {"AU": ["read"]}}"#;
    for _ in 0..2 {
        let r = run(
            &env,
            &["--sandbox", "call", "landing_site_set_rights", write],
        )
        .await;
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    // Two runs, two ports, one portal.
    let sandbox = run(&env, &["--sandbox", "history", "--json"]).await;
    let rows: Vec<Value> = sandbox
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{}", sandbox.stdout);
    assert!(rows.iter().all(|r| r["portal"] == "sandbox"), "{rows:?}");
    // No webhook configured: every portal in the file.
    let unconfigured = run(&[("BITRIX24_LEDGER", ledger)], &["history"]).await;
    assert_eq!(unconfigured.code, Some(0), "{}", unconfigured.stderr);
    assert!(
        unconfigured.stdout.contains("2 change(s)")
            && unconfigured
                .stdout
                .contains("Every portal in the ledger is listed"),
        "{}",
        unconfigured.stdout
    );
    // Another portal configured: its own rows, and a word about the others.
    let portal = TestPortal::always(ok(json!(true))).await;
    let url = portal.webhook_url();
    let elsewhere = run(
        &[("BITRIX24_LEDGER", ledger), ("BITRIX24_WEBHOOK_URL", &url)],
        &["history"],
    )
    .await;
    assert!(
        elsewhere.stdout.contains("0 change(s)")
            && elsewhere
                .stdout
                .contains("2 more change(s) on 1 other portal(s) (sandbox): add --all-portals"),
        "{}",
        elsewhere.stdout
    );
    assert!(
        portal.received().is_empty(),
        "history reads only the ledger"
    );
}

#[tokio::test]
async fn an_empty_or_wrong_webhook_file_stops_the_server_naming_the_file() {
    let dir = std::env::temp_dir();
    for (n, content) in ["", "   \n", "https://portal.example.com/"]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("b24-it-webhook-{}-{n}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        let file = path.to_str().unwrap();
        let r = run(&[("BITRIX24_WEBHOOK_URL_FILE", file)], &["tools"]).await;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r.code, Some(2), "{content:?}: {}", r.stdout);
        assert!(r.stderr.contains(file), "{content:?}: {}", r.stderr);
        assert!(
            !r.stdout.contains("TOOL"),
            "never the sandbox: {}",
            r.stdout
        );
    }
}

#[tokio::test]
async fn read_only_publishes_the_history_and_the_reading_seeds() {
    let r = run(&[("BITRIX24_READ_ONLY", "true")], &["--sandbox", "tools"]).await;
    for tool in [
        "permission_history",
        "sonet_group_feature_access",
        "landing_site_get_rights",
        "tasks_task_get_access",
    ] {
        assert!(r.stdout.contains(tool), "{tool}: {}", r.stdout);
    }
    assert!(
        !r.stdout.contains("landing_site_set_rights"),
        "{}",
        r.stdout
    );
}
