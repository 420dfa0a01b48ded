//! A write on its way to the person who approves it: what the guards learned, the last set
//! written to the same object, the names of every code and user in the arguments (one
//! `access.name` read, the one the guards use), and the question put together from them.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{
    Pipeline,
    approval::ChangeId,
    change::{Change, object_of},
    guards::{self, Facts},
    hook::{Known, ObjectRef},
    question::{Parties, Question},
    shown::shown,
};
use crate::{
    bitrix::{Identity, limits::Progress},
    catalog::{Names, ToolSpec},
};

/// `access.name` takes this many codes at a time.
const NAMES_PER_READ: usize = 100;

/// A write with its question, ready to be asked about and sent.
pub struct Prepared<'a> {
    pub change: Change<'a>,
    pub question: String,
    pub id: ChangeId,
    pub object: Option<ObjectRef>,
    pub runs_as: String,
}

/// A write before its guards run: the last set written to the same object, and the codes the
/// question will name, so the guards' one `access.name` read can name them too.
pub struct Plan<'a> {
    change: Change<'a>,
    pub also_name: Vec<String>,
}

/// Looks up what the ledger knows of the object and lists the codes the question needs.
pub async fn plan<'a>(p: &Pipeline, spec: &'a ToolSpec, args: &'a Value) -> Plan<'a> {
    let identity = p.identity();
    let object = object_of(spec, args);
    let known = match (&object, &p.journal) {
        (Some(object), Some(journal)) => journal.known(&spec.name, object).await,
        _ => Known::default(),
    };
    let change = Change {
        spec,
        arguments: args,
        known: known.ok,
        unsure: known.unsure,
        object,
        names: Map::new(),
    };
    let also_name = codes_to_name(&change, &identity);
    Plan { change, also_name }
}

/// Puts the question together from the plan and what the guards learned. A failed guard has
/// already stopped the write; a failed naming read here only costs names.
pub async fn prepare<'a>(
    p: &Pipeline,
    plan: Plan<'a>,
    facts: Facts,
    asked_by: &str,
    deadline: Instant,
    progress: &dyn Progress,
) -> Prepared<'a> {
    let identity = p.identity();
    let mut change = plan.change;
    change.names = facts.names;
    let mut wanted = codes_to_name(&change, &identity);
    wanted.retain(|code| !facts.asked.contains(code));
    change
        .names
        .extend(name(p, change.spec, wanted, deadline, progress).await);
    let runs_as = runs_as(&change.names, &identity);
    let roles = role_lines(&change.names, &facts.roles);
    let question = Question {
        change: &change,
        facts: &roles,
    }
    .render(&Parties {
        portal: &identity.host,
        asked_by,
        runs_as: runs_as.clone(),
    });
    Prepared {
        id: ChangeId::of(&identity, &change.spec.name, change.arguments),
        object: change.object.clone(),
        change,
        question,
        runs_as,
    }
}

/// Every code the question shows and no guard has named yet: the values of named fields, the
/// codes the last known set held, and the user the call runs as.
fn codes_to_name(change: &Change<'_>, identity: &Identity) -> Vec<String> {
    let mut codes = vec![format!("U{}", identity.user_id)];
    if let Some(question) = &change.spec.question {
        for (key, field) in &question.fields {
            let (Some(kind), Some(value)) = (field.names, change.arguments.get(key)) else {
                continue;
            };
            collect(value, kind, field.item_key.as_deref(), &mut codes);
        }
    }
    codes.extend(change.unnamed_old_codes());
    codes.sort();
    codes.dedup();
    codes.retain(|c| !change.names.contains_key(c));
    codes
}

fn collect(value: &Value, kind: Names, item_key: Option<&str>, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(kind.code_for(s)),
        Value::Number(n) => out.push(kind.code_for(&n.to_string())),
        Value::Array(items) => {
            for item in items {
                match (item, item_key) {
                    (Value::Object(map), Some(key)) => {
                        if let Some(v) = map.get(key) {
                            collect(v, kind, None, out);
                        }
                    }
                    _ => collect(item, kind, item_key, out),
                }
            }
        }
        // A map's keys are what it names (access code → operations).
        Value::Object(map) if item_key.is_none() => {
            out.extend(map.keys().map(|k| kind.code_for(k)));
        }
        _ => {}
    }
}

/// Asks `access.name` for the codes; what it cannot say is left unnamed.
async fn name(
    p: &Pipeline,
    spec: &ToolSpec,
    codes: Vec<String>,
    deadline: Instant,
    progress: &dyn Progress,
) -> Map<String, Value> {
    let mut names = Map::new();
    for chunk in codes.chunks(NAMES_PER_READ) {
        let asked = json!({ "ACCESS": chunk });
        match guards::read(p, "access.name", asked, spec, deadline, progress).await {
            Ok(Value::Object(found)) => names.extend(found),
            Ok(_) => {}
            Err(failure) => {
                tracing::info!(tool = %spec.name, kind = failure.kind.as_str(), "codes not named");
            }
        }
    }
    names
}

/// The user calls run as, named.
fn runs_as(names: &Map<String, Value>, identity: &Identity) -> String {
    let code = format!("U{}", identity.user_id);
    match names.get(&code).and_then(super::shown::name_in) {
        Some(name) => format!("user {} \"{}\"", identity.user_id, shown(name)),
        None => format!("user {}", identity.user_id),
    }
}

/// What the portal said of each person's place in the workgroup, as the guard read it.
fn role_lines(
    names: &Map<String, Value>,
    roles: &[(String, String, Option<String>)],
) -> Vec<String> {
    roles
        .iter()
        .map(|(group, user, role)| {
            let who = match names
                .get(&format!("U{user}"))
                .and_then(super::shown::name_in)
            {
                Some(name) => format!("{} \"{}\"", shown(user), shown(name)),
                None => shown(user),
            };
            let place = match role.as_deref() {
                Some("A") => "the owner (SG{g}_A, _E and _K)",
                Some("E") => "a moderator (SG{g}_E and SG{g}_K)",
                Some("K") => "a member (SG{g}_K)",
                Some(_) => "in the group with another role",
                None => "not a member",
            }
            .replace("{g}", &shown(group));
            format!("{who} is {place} of workgroup {}.", shown(group))
        })
        .collect()
}
