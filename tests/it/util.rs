//! Drives the built binary over stdio with rmcp's own client.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
};

use std::sync::{Arc, Mutex};

use rmcp::{
    ClientHandler, ErrorData, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, ClientConfig, ElicitRequestParams, ElicitResult,
        ElicitationAction, ElicitationCapability, FormElicitationCapability,
        ProgressNotificationParam, ProtocolVersion,
    },
    service::{
        ClientLifecycleMode, ClientServiceExt, NotificationContext, RequestContext, RunningService,
    },
    transport::TokioChildProcess,
};
use serde_json::Value;
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_bitrix24-permissions-mcp");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh path for a server's stderr, so a test can read every log line afterwards.
pub fn stderr_path() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("b24-mcp-it-{}-{n}.stderr", std::process::id()))
}

/// A fresh ledger file for one server, so no test ever writes the user's real state directory.
pub fn ledger_path() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "b24-mcp-it-{}-{n}.ledger.sqlite3",
        std::process::id()
    ))
}

/// The binary with a clean environment: nothing from the developer's shell leaks in, and its
/// ledger is a fresh temporary file unless `env` names one.
pub fn command(env: &[(&str, &str)], args: &[&str]) -> Command {
    prepared(Command::new(BIN), env, args)
}

/// [`command`], started by `sh` under this umask (`000`, `022`).
pub fn command_under_umask(umask: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BIN);
    prepared(cmd, env, args)
}

fn prepared(mut cmd: Command, env: &[(&str, &str)], args: &[&str]) -> Command {
    // Pacing state of its own unless a test shares one: test portals reuse loopback ports,
    // and a machine-wide state left by an earlier test on the same port would pace this one.
    cmd.env_clear()
        .env("RUST_LOG", "trace")
        .env("BITRIX24_LEDGER", ledger_path())
        .env("BITRIX24_LIMITER_URL", "memory")
        // Most tests are about forwarding, not asking; the confirmation tests ask for `auto`
        // or `always` themselves (a client that answers questions gets `auto` by default).
        .env("BITRIX24_CONFIRM_WRITES", "never")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// The test client: rmcp's default behaviour, plus a record of progress notifications; with
/// `answer` set it declares elicitation and gives that answer to every question.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<String>>>,
    pub answer: Option<(ElicitationAction, Option<Value>)>,
    /// The messages of the questions the server asked.
    pub asked: Arc<Mutex<Vec<String>>>,
    /// The form schemas of those questions.
    pub forms: Arc<Mutex<Vec<Value>>>,
    /// How many `notifications/tools/list_changed` arrived.
    pub list_changed: Arc<std::sync::atomic::AtomicUsize>,
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        if self.answer.is_some() {
            config.capabilities.elicitation =
                Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        }
        config
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = &request
        {
            self.asked.lock().unwrap().push(message.clone());
            self.forms
                .lock()
                .unwrap()
                .push(serde_json::to_value(requested_schema).unwrap());
        }
        let (action, content) = self
            .answer
            .clone()
            .unwrap_or((ElicitationAction::Decline, None));
        let mut result = ElicitResult::new(action);
        result.content = content;
        Ok(result)
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct Server {
    pub client: RunningService<RoleClient, Recorder>,
    pub recorder: Recorder,
    stderr: PathBuf,
}

/// A server to start. Unless the test names toolsets or tools itself, or asks for the default
/// set, it publishes the whole catalog, so tests can call any tool.
pub struct Launch<'a> {
    pub env: Vec<(&'a str, &'a str)>,
    pub args: Vec<&'a str>,
    pub lifecycle: ClientLifecycleMode,
    pub answer: Option<(ElicitationAction, Option<Value>)>,
    pub default_tools: bool,
    /// Started by `sh` under this umask.
    pub umask: Option<&'a str>,
}

impl<'a> Launch<'a> {
    pub fn new(webhook_url: &'a str) -> Self {
        Self {
            env: vec![("BITRIX24_WEBHOOK_URL", webhook_url)],
            args: vec![],
            lifecycle: ClientLifecycleMode::Initialize,
            answer: None,
            default_tools: false,
            umask: None,
        }
    }

    pub fn umask(mut self, umask: &'a str) -> Self {
        self.umask = Some(umask);
        self
    }

    /// A client that declares elicitation and answers every question so.
    pub fn answering(mut self, action: ElicitationAction, content: Option<Value>) -> Self {
        self.answer = Some((action, content));
        self
    }

    pub fn env(mut self, key: &'a str, value: &'a str) -> Self {
        self.env.push((key, value));
        self
    }

    pub fn arg(mut self, arg: &'a str) -> Self {
        self.args.push(arg);
        self
    }

    /// Publish what a user gets with no tool settings: the catalog's default set.
    pub fn default_tools(mut self) -> Self {
        self.default_tools = true;
        self
    }

    pub fn discover(mut self) -> Self {
        self.lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        self
    }

    pub async fn start(mut self) -> Server {
        let chosen = self
            .env
            .iter()
            .any(|(k, _)| *k == "BITRIX24_TOOLSETS" || *k == "BITRIX24_TOOLS")
            || self
                .args
                .iter()
                .any(|a| *a == "--toolsets" || *a == "--tools");
        if !chosen && !self.default_tools {
            self.env.push(("BITRIX24_TOOLSETS", "all"));
        }
        let confirm_named = self
            .env
            .iter()
            .any(|(k, _)| *k == "BITRIX24_CONFIRM_WRITES")
            || self.args.iter().any(|a| a.starts_with("--confirm-writes"));
        if self.answer.is_some() && !confirm_named {
            self.env.push(("BITRIX24_CONFIRM_WRITES", "auto"));
        }
        let stderr = stderr_path();
        let file = std::fs::File::create(&stderr).unwrap();
        let cmd = match self.umask {
            Some(umask) => command_under_umask(umask, &self.env, &self.args),
            None => command(&self.env, &self.args),
        };
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn the server binary");
        let recorder = Recorder {
            answer: self.answer,
            ..Recorder::default()
        };
        let client = match self.lifecycle {
            ClientLifecycleMode::Initialize => recorder.clone().serve(transport).await,
            other => {
                recorder
                    .clone()
                    .serve_with_lifecycle(transport, other)
                    .await
            }
        }
        .expect("MCP handshake with the server");
        Server {
            client,
            recorder,
            stderr,
        }
    }
}

impl Server {
    pub async fn start(webhook_url: &str) -> Self {
        Launch::new(webhook_url).start().await
    }

    pub async fn call(&self, name: &str, args: Value) -> CallToolResult {
        let params = CallToolRequestParams::new(name.to_owned())
            .with_arguments(args.as_object().cloned().expect("arguments are an object"));
        self.client
            .call_tool(params)
            .await
            .unwrap_or_else(|e| panic!("tools/call {name} failed at the protocol level: {e}"))
    }

    /// What the server has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops the server and returns everything it wrote to stderr.
    pub async fn stop(self) -> String {
        let _ = self.client.cancel().await;
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let _ = std::fs::remove_file(&self.stderr);
        text
    }
}

/// All text blocks of a result, joined.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// What a command printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary once with these variables and arguments, to the end.
pub async fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        command(env, args).output(),
    )
    .await
    .expect("the command finished")
    .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `serve --http` on a free loopback port, with the shared test token unless `env` names
/// another; the child and its URL.
pub async fn http_server(env: &[(&str, &str)], extra: &[&str]) -> (tokio::process::Child, String) {
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "BITRIX24_HTTP_TOKEN") {
        env.push((
            "BITRIX24_HTTP_TOKEN",
            bitrix24_permissions_mcp::testing::HTTP_TOKEN,
        ));
    }
    http_server_as_is(&env, extra).await
}

/// `serve --http` on a free loopback port, with exactly `env`.
pub async fn http_server_as_is(
    env: &[(&str, &str)],
    extra: &[&str],
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut args = vec!["serve", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = command(env, &args).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.split("serving MCP at ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the server ended before listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// Polls `condition` every 20 ms until it holds; fails the test, naming `what`, once `bound`
/// has passed. Every poll loop in these tests goes through here (or [`wait_for`]), so none
/// can hang.
pub async fn wait_until<F, Fut>(bound: std::time::Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(bound, what, || {
        let check = condition();
        async move { check.await.then_some(()) }
    })
    .await;
}

/// [`wait_until`] for a value: polls `probe` until it gives one.
pub async fn wait_for<T, F, Fut>(bound: std::time::Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {bound:?} for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The JSON-RPC answer inside a JSON body or a server-sent event's data line.
pub fn jsonrpc_answer(body: &str) -> serde_json::Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body))
        .find_map(|d| {
            serde_json::from_str::<serde_json::Value>(d.trim())
                .ok()
                .filter(|v| v.get("id").is_some())
        })
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {body:?}"))
}
