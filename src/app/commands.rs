//! The `tools`, `call` and `doctor` commands. Unlike `serve`, their stdout is for a person or
//! a script, so they write to it; each takes its writers so tests can read what they print.

use std::{collections::BTreeSet, io::Write, process::ExitCode};

use super::terminal;

use serde_json::{Map, Value};

use super::{
    config::{Config, PortalChoice},
    escape,
};
use crate::{
    bitrix::{limits::NoProgress, methods},
    mcp::tool_definition,
    mcp::{duplicate_message, first_duplicate, local_user},
    pipeline::{
        Answer, BoxFuture, FailureKind, HistoryQuery, Human, Outcome, Pipeline, Seal, ToolFailure,
    },
};

/// The person at the command line: asked at the terminal when there is one (a model running
/// the command has none), otherwise through the `approve` command.
struct CommandLine;

impl Human for CommandLine {
    fn asker(&self) -> String {
        format!("{} at the command line", local_user())
    }

    fn can_ask(&self) -> bool {
        terminal::present()
    }

    fn confirm<'a>(&'a self, question: &'a str, _seal: &'a Seal<'a>) -> BoxFuture<'a, Answer> {
        let by = format!("{} at this terminal", local_user());
        let question = question.to_owned();
        Box::pin(async move {
            let asked = tokio::task::spawn_blocking(move || terminal::ask_yes(&question)).await;
            match asked {
                Ok(Ok(true)) => Answer::Accepted { by, state: None },
                Ok(Ok(false)) => Answer::Declined { by },
                _ => Answer::Cancelled,
            }
        })
    }
}

/// Exit codes shared by the commands.
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

pub fn tools(d: &Pipeline, json: bool, out: &mut dyn Write) -> std::io::Result<ExitCode> {
    if json {
        let tools: Vec<_> = d
            .published()
            .map(|e| tool_definition(&e.spec, d.sandboxed()))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&tools)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<32} {:<48} {:<12} ACCESS", "TOOL", "TITLE", "SCOPE")?;
    let mut count = 0;
    for e in d.published() {
        let s = &e.spec;
        let access = if s.is_write() { "write" } else { "read" };
        writeln!(
            out,
            "{:<32} {:<48} {:<12} {access}",
            s.name, s.title, s.scope
        )?;
        count += 1;
    }
    writeln!(out, "\n{count} tools")?;
    Ok(ExitCode::SUCCESS)
}

/// A writer that drops control characters (all but newline and tab) on the way to a
/// person's terminal: portal text could otherwise carry escape sequences that rewrite the
/// screen or the window title.
pub struct Printable<W>(pub W);

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean: String = text
            .chars()
            .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
            .collect();
        self.0.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

pub async fn call(
    d: &Pipeline,
    tool: &str,
    arguments: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let (mut out, mut err) = (Printable(out), Printable(err));
    let (out, err): (&mut dyn Write, &mut dyn Write) = (&mut out, &mut err);
    if let Some(key) = arguments.and_then(first_duplicate) {
        writeln!(err, "{}", duplicate_message(&key))?;
        return Ok(ExitCode::from(USAGE));
    }
    let args: Map<String, Value> = match arguments.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(_)) => {
            writeln!(
                err,
                "the arguments must be a JSON object, e.g. '{{\"id\": 645}}'"
            )?;
            return Ok(ExitCode::from(USAGE));
        }
        Some(Err(e)) => {
            writeln!(
                err,
                "the arguments are not valid JSON ({e}); quote them for the shell, e.g. '{{\"id\": 645}}'"
            )?;
            return Ok(ExitCode::from(USAGE));
        }
    };
    let entry = match d.lookup_for_command_line(tool) {
        Ok(entry) => entry,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(ExitCode::from(USAGE));
        }
    };
    match d.call(entry, Some(args), &NoProgress, &CommandLine).await {
        Ok(value) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            writeln!(err, "{}", failure.text)?;
            Ok(ExitCode::from(FAILED))
        }
    }
}

/// Checks the configuration and the portal. Exit 0 when everything the published tools need
/// is there, 1 when something is wrong.
pub async fn doctor(
    config: &Config,
    d: &Pipeline,
    out: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let mut out = Printable(out);
    let out: &mut dyn Write = &mut out;
    let mut found = Findings::default();
    writeln!(out, "Configuration")?;
    portal_choice(config, out, &mut found)?;
    request_limits(config, out, &mut found)?;
    writeln!(out, "  tools          {} published", d.published().count())?;
    let confirm = format!("{:?}", config.confirm_writes).to_lowercase();
    writeln!(out, "  confirm writes {confirm} (BITRIX24_CONFIRM_WRITES)")?;
    ledger_state(config, out, &mut found)?;
    found.notes.extend(super::exposure::warnings(config));
    writeln!(out, "\nPortal")?;
    if profile(d, out, &mut found).await? {
        scopes(d, out, &mut found).await?;
    }
    found.verdict(out)
}

/// What `doctor` found on its way: a problem fails the check, a note only warns.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    /// The warnings, then the problems, which decide the exit code.
    fn verdict(&self, out: &mut dyn Write) -> std::io::Result<ExitCode> {
        if !self.notes.is_empty() {
            writeln!(out, "\nWarnings")?;
            for n in &self.notes {
                writeln!(out, "  - {n}")?;
            }
        }
        if self.problems.is_empty() {
            writeln!(out, "\nEverything needed is in place.")?;
            Ok(ExitCode::SUCCESS)
        } else {
            writeln!(out, "\nProblems")?;
            for p in &self.problems {
                writeln!(out, "  - {p}")?;
            }
            Ok(ExitCode::from(FAILED))
        }
    }
}

/// A sandbox nobody asked for means the webhook is missing, the first thing a person fixes.
fn portal_choice(
    config: &Config,
    out: &mut dyn Write,
    found: &mut Findings,
) -> std::io::Result<()> {
    match &config.portal {
        PortalChoice::Webhook(w) => writeln!(out, "  webhook        {w}")?,
        PortalChoice::Team => writeln!(out, "  portal         each person signs in (team server)")?,
        PortalChoice::Sandbox { asked: true, .. } => {
            writeln!(out, "  portal         built-in sandbox (--sandbox)")?
        }
        PortalChoice::Sandbox { asked: false, .. } => {
            writeln!(
                out,
                "  portal         built-in sandbox: no webhook configured"
            )?;
            found.problems.push(
                "No webhook is configured, so the server runs on invented sandbox data. Set BITRIX24_WEBHOOK_URL \
                 to https://<portal>/rest/<user_id>/<secret>/ (Developer resources → Other → Inbound webhook)."
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// The timeout and the rate limit, held against what Bitrix24's cloud plans allow.
fn request_limits(
    config: &Config,
    out: &mut dyn Write,
    found: &mut Findings,
) -> std::io::Result<()> {
    let secs = config.timeout.as_secs();
    writeln!(out, "  timeout        {secs} s per request")?;
    if secs > 60 {
        found.notes.push(format!(
            "BITRIX24_TIMEOUT_SECS is {secs}: Bitrix24 cloud stops a request at 60 s, so waiting longer only delays the error."
        ));
    } else if secs < 5 {
        found.notes.push(format!("BITRIX24_TIMEOUT_SECS is {secs}: slow portals answer in several seconds; 10–30 is safer."));
    }
    let rate = config.rate_limit;
    writeln!(out, "  rate limit     {rate} (requests per second / burst)")?;
    if rate.per_second > 5.0 || rate.burst > 250 {
        found.notes.push(format!(
            "BITRIX24_RATE_LIMIT {rate} is above Bitrix24's largest plan (Enterprise: 5/250); expect QUERY_LIMIT_EXCEEDED and slowdowns."
        ));
    } else if rate.per_second > 2.0 || rate.burst > 50 {
        found.notes.push(format!(
            "BITRIX24_RATE_LIMIT {rate} fits only the Enterprise plan; most plans allow 2/50."
        ));
    }
    Ok(())
}

/// A missing ledger only warns: the server runs, but what a change removes goes unsaid.
fn ledger_state(config: &Config, out: &mut dyn Write, found: &mut Findings) -> std::io::Result<()> {
    match &config.ledger {
        Some(path) => writeln!(out, "  ledger         {}", path.display())?,
        None if config.ledger_problem.is_some() => {
            writeln!(out, "  ledger         unavailable")?;
            found.notes.extend(config.ledger_problem.clone());
        }
        None => {
            writeln!(out, "  ledger         off")?;
            found.notes.push(
                "BITRIX24_LEDGER is off: writes are not recorded, and confirmations cannot say what a change removes."
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// Who the portal says the server acts as; `false` when the portal was not reached, since
/// then its scopes cannot be asked either.
async fn profile(d: &Pipeline, out: &mut dyn Write, found: &mut Findings) -> std::io::Result<bool> {
    match ask(d, "profile").await? {
        Ok(v) => {
            let me = methods::profile::of(&v["result"]);
            let admin = if me.admin { "yes" } else { "no" };
            writeln!(
                out,
                "  acts as        {} (user {}), administrator: {admin}",
                me.name, me.id
            )?;
            Ok(true)
        }
        Err(failure) => {
            let (state, problem) = not_reached(&failure);
            writeln!(out, "  {state}")?;
            found.problems.push(problem);
            Ok(false)
        }
    }
}

/// The webhook's scopes, and each published tool against them.
async fn scopes(d: &Pipeline, out: &mut dyn Write, found: &mut Findings) -> std::io::Result<()> {
    let have = match ask(d, "scope").await? {
        Ok(v) => methods::scope::granted(&v["result"]),
        Err(failure) => {
            found.problems.push(format!(
                "The webhook's scopes could not be read. {}",
                failure.text
            ));
            return Ok(());
        }
    };
    writeln!(
        out,
        "  scopes         {}",
        have.iter().cloned().collect::<Vec<_>>().join(", ")
    )?;
    writeln!(out, "\nTools")?;
    let mut missing: BTreeSet<&str> = BTreeSet::new();
    for e in d.published() {
        let scope = e.spec.scope.as_str();
        let usable = scope == "basic" || have.contains(scope);
        if !usable {
            missing.insert(scope);
        }
        let state = if usable {
            "ok".to_owned()
        } else {
            format!("needs scope {scope}")
        };
        writeln!(out, "  {:<32} {state}", e.spec.name)?;
    }
    // One problem per scope, however many tools need it: it is one tick on the webhook.
    for scope in missing {
        found.problems.push(format!(
            "The webhook lacks the `{scope}` scope: edit the inbound webhook on the portal, tick `{scope}`, and save."
        ));
    }
    Ok(())
}

/// Why the portal gave no profile, told apart by the failure's kind and code: a portal that
/// could not be reached needs network or address fixes, one that answered and refused needs a
/// new webhook or rights, and a missing scope needs one tick on the webhook.
fn not_reached(failure: &ToolFailure) -> (String, String) {
    let code = failure.code.as_deref().unwrap_or_default();
    match failure.kind {
        FailureKind::Transport | FailureKind::OutcomeUnknown => (
            "unreachable (network, proxy or TLS)".to_owned(),
            format!(
                "The portal could not be reached, so it never saw the webhook. {}",
                failure.text
            ),
        ),
        FailureKind::Portal if code.eq_ignore_ascii_case("insufficient_scope") => (
            "reached, but a scope is missing".to_owned(),
            format!(
                "The portal answered, but the webhook lacks a scope. {}",
                failure.text
            ),
        ),
        FailureKind::Portal => (
            format!("reached, and it rejected the webhook ({code})"),
            format!(
                "The portal answered and rejected the webhook. {}",
                failure.text
            ),
        ),
        _ => (
            "not checked".to_owned(),
            format!("The portal could not be asked. {}", failure.text),
        ),
    }
}

/// Calls a tool that takes no arguments, through the same pipeline as MCP.
async fn ask(d: &Pipeline, tool: &str) -> std::io::Result<Outcome> {
    let entry = d
        .lookup_for_diagnostics(tool)
        .ok_or_else(|| std::io::Error::other(format!("{tool} is not a reading tool")))?;
    Ok(d.call(entry, None, &NoProgress, &CommandLine).await)
}

/// Prints the ledger: a table for a person, or one JSON object per line for a script.
pub async fn history(
    d: &Pipeline,
    query: &HistoryQuery,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let Some(changes) = read_ledger(d, query, err).await? else {
        return Ok(ExitCode::from(FAILED));
    };
    if json {
        for change in &changes {
            writeln!(out, "{}", escape::json_line(change))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<25} {:<9} {:<30} {:<10} CONFIRMATION",
        "AT (UTC)", "OUTCOME", "TOOL", "OBJECT"
    )?;
    // A list from one portal need not repeat its name on every change.
    let portals: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| c["portal"].as_str())
        .collect();
    for c in &changes {
        print_change(c, portals.len() != 1, out)?;
    }
    writeln!(
        out,
        "\n{} change(s). The ledger knows only changes made through this server; changes made in the portal or by other apps are not in it.",
        changes.len()
    )?;
    if query.every_portal {
        writeln!(out, "Every portal in the ledger is listed.")?;
    } else if let Some(others) = elsewhere(d, query).await {
        writeln!(out, "{others}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The matching changes, or `None` once `err` has said why there are none to show: an
/// unreadable ledger must not look like an empty one.
async fn read_ledger(
    d: &Pipeline,
    query: &HistoryQuery,
    err: &mut dyn Write,
) -> std::io::Result<Option<Vec<Value>>> {
    match d.history(query).await {
        None => {
            writeln!(
                err,
                "the ledger is off (BITRIX24_LEDGER=off): no changes are recorded"
            )?;
            Ok(None)
        }
        Some(Err(problem)) => {
            writeln!(err, "the ledger could not be read: {problem}")?;
            Ok(None)
        }
        Some(Ok(changes)) => Ok(Some(changes)),
    }
}

/// One change of the table: its row, then the request sent, then who took part in it.
fn print_change(c: &Value, name_portal: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let outcome = match (c["outcome"].as_str(), &c["error_code"]) {
        (Some("error"), Value::String(code)) => format!("error {}", escape::for_terminal(code)),
        (other, _) => escape::for_terminal(other.unwrap_or("-")).into_owned(),
    };
    writeln!(
        out,
        "{:<25} {:<9} {:<30} {:<10} {}",
        cell(&c["at"]),
        outcome,
        cell(&c["tool"]),
        cell(&c["object"]),
        cell(&c["confirmation"])
    )?;
    let portal = if name_portal {
        format!(" on {}", cell(&c["portal"]))
    } else {
        String::new()
    };
    writeln!(
        out,
        "    {} {}{portal}",
        cell(&c["method"]),
        cell(&c["arguments"])
    )?;
    let parties = [
        ("asked by", &c["asked_by"]),
        ("approved by", &c["approved_by"]),
        ("ran as", &c["runs_as"]),
    ];
    let parties: Vec<String> = parties
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
        .map(|(label, v)| format!("{label} {}", cell(v)))
        .collect();
    if !parties.is_empty() {
        writeln!(out, "    {}", parties.join("; "))?;
    }
    Ok(())
}

/// A ledger field as the terminal may show it: portal text is escaped, and an empty field
/// is a `-` so the columns stay readable.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => escape::for_terminal(s).into_owned(),
        Value::Null => "-".to_owned(),
        other => escape::for_terminal(&other.to_string()).into_owned(),
    }
}

/// How many matching changes the ledger holds for other portals, in a sentence that says how
/// to see them; `None` when it holds none.
async fn elsewhere(d: &Pipeline, query: &HistoryQuery) -> Option<String> {
    let here = d.identity().host;
    let every = HistoryQuery {
        every_portal: true,
        limit: usize::MAX,
        ..query.clone()
    };
    let rows = d.history(&every).await?.ok()?;
    let mut portals = BTreeSet::new();
    let count = rows
        .iter()
        .filter_map(|row| row["portal"].as_str())
        .filter(|portal| *portal != here)
        .inspect(|portal| {
            portals.insert(portal.to_owned());
        })
        .count();
    (count > 0).then(|| {
        format!(
            "{count} more change(s) on {} other portal(s) ({}): add --all-portals to list them.",
            portals.len(),
            portals.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}
