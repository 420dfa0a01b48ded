//! The two objects whose holders REST cannot read at all: a Drive folder (no method reads its
//! rights) and a document-generator role (its bindings to access codes can only be written).
//! What this server wrote is the only evidence; the role's own permissions are readable.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Ctx, Found, Query,
    facts::{Evidence, Grant, Known, ObjectFacts, Unknown},
    number,
};
use crate::pipeline::KnownSet;

const SHARE_TOOL: &str = "disk_folder_share_to_user";
const BINDINGS_TOOL: &str = "documentgenerator_role_fillaccesses";
/// `documentgenerator_role_fillaccesses` replaces the bindings of every role at once.
const BINDINGS: &str = "document generator role bindings";

/// The shares written to a folder through this server, newest per person: grants and evidence.
async fn shares(ctx: &Ctx<'_>, folder: &str) -> (Vec<Grant>, Vec<Evidence>) {
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut grants = Vec::new();
    let mut evidence = Vec::new();
    for row in ctx.history(SHARE_TOOL, folder).await {
        let args = &row["arguments"];
        let Some(user) = super::text_of(&args["userId"]) else {
            continue;
        };
        if row["outcome"] != "ok" || seen.insert(user.clone(), ()).is_some() {
            continue;
        }
        let level = args["taskName"].as_str().unwrap_or_default();
        grants.push(Grant {
            code: format!("U{user}"),
            rights: vec![level.trim_start_matches("disk_access_").to_owned()],
            on: None,
            from: Known::Ledger,
        });
        evidence.push(Evidence {
            tool: SHARE_TOOL.to_owned(),
            object: format!("folder {folder}"),
            at: row["at"].as_str().unwrap_or_default().to_owned(),
            set: json!({"userId": args["userId"], "taskName": level}),
        });
    }
    (grants, evidence)
}

pub async fn folder(ctx: &Ctx<'_>, q: &Query) -> Found {
    let mut found = Found::default();
    let mut codes = Vec::new();
    for id in &q.ids {
        let mut facts = ObjectFacts::new(id.clone(), format!("Drive folder {id}"));
        let (grants, evidence) = shares(ctx, id).await;
        codes.extend(grants.iter().map(|g| g.code.clone()));
        if !grants.is_empty() {
            facts.unknown.push(Unknown::new(
                "changes to the shares listed",
                "a later share may raise or lower a person's level (the docs do not say which), and shares changed in Drive since are not known",
            ));
        }
        facts.grants = grants;
        facts.evidence = evidence;
        found.objects.push(facts);
    }
    codes.sort_unstable();
    codes.dedup();
    let (_, resolved) = ctx.read_and_resolve(Vec::new(), &codes).await;
    found.resolved = resolved;
    found.unknown.push(Unknown::new(
        "everyone but the people listed",
        "REST has no method that reads a Drive folder's rights; only shares made through this server (disk_folder_share_to_user, in its ledger) are known",
    ));
    found
}

/// A document-generator permission level in words.
fn level_words(level: &str) -> Option<&'static str> {
    match level {
        "A" => Some("own items only"),
        "D" => Some("own and department colleagues' items"),
        "X" => Some("all items"),
        _ => None,
    }
}

/// The role's permissions, grouped by level: `(level in words, ["templates.modify", ...])`.
fn permissions(role: &Value) -> BTreeMap<&'static str, Vec<String>> {
    let mut by_level: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (entity, actions) in role["permissions"].as_object().into_iter().flatten() {
        for (action, level) in actions.as_object().into_iter().flatten() {
            if let Some(words) = level.as_str().and_then(level_words) {
                by_level
                    .entry(words)
                    .or_default()
                    .push(format!("{entity}.{action}"));
            }
        }
    }
    by_level
}

pub async fn docgen_role(ctx: &Ctx<'_>, q: &Query) -> Found {
    let known = ctx.last_set(BINDINGS_TOOL, BINDINGS, "").await;
    let bindings: Vec<(String, String)> = known
        .iter()
        .flat_map(|k| {
            k.arguments["accesses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| {
            Some((
                super::text_of(&a["roleId"])?,
                a["accessCode"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut codes: Vec<String> = bindings
        .iter()
        .filter(|(role, _)| q.ids.contains(role))
        .map(|(_, code)| code.clone())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let reads = q
        .ids
        .iter()
        .map(|id| ("documentgenerator.role.get", json!({"id": number(id)})))
        .collect();
    let (answers, resolved) = ctx.read_and_resolve(reads, &codes).await;
    let mut found = Found {
        resolved,
        ..Found::default()
    };
    for (id, answer) in q.ids.iter().zip(answers) {
        let facts = match answer {
            Ok(answer) => role_facts(id, &answer["role"], &bindings, known.as_ref()),
            Err(text) => {
                let mut facts =
                    ObjectFacts::new(id.clone(), format!("document-generator role {id}"));
                facts.error = Some(text);
                facts
            }
        };
        found.objects.push(facts);
    }
    if known.is_some() {
        found.unknown.push(Unknown::new(
            "changes to the bindings since they were written through this server",
            "documentgenerator.role.fillaccesses cannot be read back; bindings changed in the portal since are not known",
        ));
    }
    found
}

/// What one document-generator role grants, to the codes it was bound to through this server.
fn role_facts(
    id: &str,
    role: &Value,
    bindings: &[(String, String)],
    known: Option<&KnownSet>,
) -> ObjectFacts {
    let label = match role["name"].as_str() {
        Some(name) => format!("document-generator role {id} ({name})"),
        None => format!("document-generator role {id}"),
    };
    let mut facts = ObjectFacts::new(id.to_owned(), label);
    let by_level = permissions(role);
    for (_, code) in bindings.iter().filter(|(role, _)| role == id) {
        for (level, rights) in &by_level {
            facts.grants.push(Grant {
                code: code.clone(),
                rights: rights.clone(),
                on: Some((*level).to_owned()),
                from: Known::Ledger,
            });
        }
    }
    match known {
        Some(k) => facts.evidence.push(Evidence {
            tool: BINDINGS_TOOL.to_owned(),
            object: BINDINGS.to_owned(),
            at: k.at.clone(),
            set: k.arguments["accesses"].clone(),
        }),
        None => {
            let mut unknown = Unknown::new(
                "the role's holders",
                "the bindings of document-generator roles to access codes cannot be read back over REST, and none were written through this server",
            );
            unknown.rights = by_level.values().flatten().cloned().collect();
            facts.unknown.push(unknown);
        }
    }
    facts
}
