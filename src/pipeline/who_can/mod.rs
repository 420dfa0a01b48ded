//! `who_can`: who holds which rights on objects of one kind, each right with its source. Each
//! kind reads its objects in batched rounds (N objects, ⌈N/50⌉ requests), with the access
//! codes already known (from the ledger) resolved in the same round; codes the reads reveal
//! are resolved after. Where REST cannot read the whole picture the answer says who is
//! unknown and why, and gives the ledger's last written set as evidence.

mod calendar;
mod drive;
mod facts;
mod groups;
mod sites;
mod tasks;

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use serde_json::{Map, Value, json};

use super::{
    Outcome, Pipeline,
    arguments::{describe_problems, settle_integers},
    failure::{FailureKind, ToolFailure},
    hook::{HistoryQuery, KnownSet, ObjectRef},
    resolve::{self, Options, Read},
};
use crate::{bitrix::limits::Progress, catalog::Entry};

use self::facts::{ObjectFacts, Unknown};

/// The kinds of object a question can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Site,
    SitesRole,
    Workgroup,
    Task,
    Calendar,
    DriveFolder,
    DocgenRole,
}

impl ObjectKind {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "site" => Self::Site,
            "sites_role" => Self::SitesRole,
            "workgroup" => Self::Workgroup,
            "task" => Self::Task,
            "calendar" => Self::Calendar,
            "drive_folder" => Self::DriveFolder,
            "docgen_role" => Self::DocgenRole,
            _ => return None,
        })
    }
}

/// A question, as the tool's arguments put it.
#[derive(Debug, Clone)]
pub struct Query {
    pub kind: ObjectKind,
    pub kind_name: String,
    pub ids: Vec<String>,
    pub action: Option<String>,
    pub users: Vec<String>,
    pub scope: Option<String>,
    pub calendar_type: Option<String>,
    pub owner_id: Option<String>,
}

/// A number or a string of digits, as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Query {
    /// Reads the arguments, already checked against the tool's input schema.
    pub fn from_args(args: &Value) -> Option<Self> {
        let list = |key: &str| -> Vec<String> {
            args[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(text_of)
                .collect()
        };
        let kind_name = args["object"].as_str()?.to_owned();
        Some(Self {
            kind: ObjectKind::parse(&kind_name)?,
            kind_name,
            ids: list("ids"),
            action: args["action"].as_str().map(str::to_owned),
            users: list("users"),
            scope: args["scope"].as_str().map(str::to_owned),
            calendar_type: args["calendar_type"].as_str().map(str::to_owned),
            owner_id: text_of(&args["owner_id"]),
        })
    }
}

/// An ID the schema holds to digits, as the number a read takes.
fn number(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// What one call needs throughout: the pipeline, its deadline and progress, who the webhook
/// acts as, and the count of requests sent.
pub struct Ctx<'a> {
    p: &'a Pipeline,
    deadline: Instant,
    progress: &'a dyn Progress,
    /// The webhook's user's ID.
    me: String,
    requests: AtomicU64,
}

/// What the kinds found, before the people are put together.
#[derive(Default)]
pub struct Found {
    pub objects: Vec<ObjectFacts>,
    /// Codes resolved so far, as `resolve_access_codes` answers each.
    pub resolved: Map<String, Value>,
    /// What is unknown for every object alike.
    pub unknown: Vec<Unknown>,
}

impl<'a> Ctx<'a> {
    fn new(p: &'a Pipeline, deadline: Instant, progress: &'a dyn Progress) -> Self {
        Self {
            p,
            deadline,
            progress,
            me: p.identity().user_id,
            requests: AtomicU64::new(0),
        }
    }

    fn entry(&self, method: &str) -> &'a Entry {
        self.p
            .catalog
            .by_method(method)
            .expect("who_can reads catalog methods only")
    }

    /// One batched round of `reads`, with the first round of resolving `codes` riding along;
    /// then the codes' second round, if they need one.
    async fn read_and_resolve(
        &self,
        reads: Vec<(&str, Value)>,
        codes: &[String],
    ) -> (Vec<Read<Value>>, Map<String, Value>) {
        let first_round = reads
            .into_iter()
            .map(|(method, args)| (self.entry(method), args))
            .collect();
        let options = Options {
            structure: false,
            first_round,
        };
        let resolved = resolve::resolve(self.p, codes, options, self.deadline, self.progress).await;
        self.requests
            .fetch_add(resolved.requests, Ordering::Relaxed);
        (resolved.first_round, resolved.codes)
    }

    async fn read(&self, reads: Vec<(&str, Value)>) -> Vec<Read<Value>> {
        self.read_and_resolve(reads, &[]).await.0
    }

    /// The last set written to an object through this server, when a ledger is kept.
    async fn last_set(&self, tool: &str, kind: &str, id: &str) -> Option<KnownSet> {
        let object = ObjectRef {
            kind: kind.to_owned(),
            id: id.to_owned(),
        };
        self.p.journal.as_ref()?.known(tool, &object).await.ok
    }

    /// The ledger's rows for one tool and object, newest first; none without a ledger.
    async fn history(&self, tool: &str, id: &str) -> Vec<Value> {
        let query = HistoryQuery {
            id: Some(id.to_owned()),
            tool: Some(tool.to_owned()),
            since: None,
            limit: 1000,
            every_portal: false,
        };
        let Some(journal) = &self.p.journal else {
            return Vec::new();
        };
        journal.history(&query).await.unwrap_or_else(|problem| {
            tracing::warn!(%problem, "the ledger could not be read");
            Vec::new()
        })
    }

    fn ledger_kept(&self) -> bool {
        self.p.journal.is_some()
    }

    /// Reads `access.name` for the webhook's user, so a right it holds comes with its name.
    fn my_name_read(&self) -> (&'static str, Value) {
        ("access.name", json!({"ACCESS": [format!("U{}", self.me)]}))
    }
}

/// The name `access.name` gave a code, from a read's answer.
fn name_in(answer: Option<&Read<Value>>, code: &str) -> Option<String> {
    answer?.as_ref().ok()?[code]["name"]
        .as_str()
        .map(str::to_owned)
}

pub async fn run(
    p: &Pipeline,
    args: &Value,
    deadline: Instant,
    progress: &dyn Progress,
) -> Outcome {
    let Some(query) = Query::from_args(args) else {
        return Err(ToolFailure::new(
            FailureKind::InvalidArguments,
            "who_can needs `object`: site, sites_role, workgroup, task, calendar, drive_folder or docgen_role.",
        ));
    };
    answer(p, &query, deadline, progress).await
}

/// The whole answer to one question.
pub async fn answer(
    p: &Pipeline,
    q: &Query,
    deadline: Instant,
    progress: &dyn Progress,
) -> Outcome {
    let ctx = Ctx::new(p, deadline, progress);
    let mut found = match q.kind {
        ObjectKind::Site => sites::site(&ctx, q).await,
        ObjectKind::SitesRole => sites::role(&ctx, q).await,
        ObjectKind::Workgroup => groups::workgroup(&ctx, q).await,
        ObjectKind::Task => tasks::task(&ctx, q).await?,
        ObjectKind::Calendar => calendar::calendar(&ctx, q).await,
        ObjectKind::DriveFolder => drive::folder(&ctx, q).await,
        ObjectKind::DocgenRole => drive::docgen_role(&ctx, q).await,
    };
    let missing: BTreeSet<String> = found
        .objects
        .iter()
        .flat_map(ObjectFacts::codes)
        .filter(|code| !found.resolved.contains_key(*code))
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        let missing: Vec<String> = missing.into_iter().collect();
        let (_, more) = ctx.read_and_resolve(Vec::new(), &missing).await;
        found.resolved.extend(more);
    }
    let action = q.action.as_deref();
    let objects: Vec<Value> = std::mem::take(&mut found.objects)
        .into_iter()
        .map(|f| facts::assemble(f, &found.resolved, action))
        .collect();
    let mut out = json!({"object": q.kind_name, "objects": objects, "requests": ctx.requests.load(Ordering::Relaxed)});
    if let Some(action) = action {
        out["action"] = json!(action);
    }
    if !found.unknown.is_empty() {
        out["unknown"] = found.unknown.iter().map(Unknown::to_json).collect();
    }
    Ok(out)
}

impl Pipeline {
    /// `who_can` for a person's report: the same checks and answer as the tool, without the
    /// size limit meant for a model's context (a report goes to a file).
    pub async fn who_can_report(&self, args: Value, progress: &dyn Progress) -> Outcome {
        let entry = self
            .lookup_for_command_line("who_can")
            .map_err(|e| ToolFailure::new(FailureKind::Refused, e.to_string()))?;
        let mut args = args;
        let mut problems = settle_integers(entry.input_model(), &mut args);
        if problems.is_empty() {
            problems = entry.check_arguments(&args);
        }
        if !problems.is_empty() {
            return Err(describe_problems("who_can", &problems));
        }
        let outcome = run(self, &args, self.gateway.deadline(), progress).await;
        let secrets = self.gateway.portal().secrets();
        outcome.map_err(|f| f.map_text(|text| secrets.redact(&text).into_owned()))
    }
}
