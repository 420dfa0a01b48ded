//! Sites and Stores. In the extended model REST reads only the webhook user's own rights on a
//! site; the site's whole set can be known only as it was last written through this server.
//! In the role model each role's site rights are readable, but not who holds the role.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Ctx, Found, Query,
    facts::{Evidence, Grant, Known, ObjectFacts, Right, Unknown},
    name_in, number,
    resolve::Read,
};
use crate::pipeline::KnownSet;

const SITE_OPS: [&str; 6] = ["denied", "read", "edit", "sett", "public", "delete"];
const SET_TOOL: &str = "landing_site_set_rights";
const HOLDERS_TOOL: &str = "landing_role_set_access_codes";
const OWN_RIGHTS: &str = "landing.site.getRights: the webhook user's own effective rights; REST does not say which code grants them";

/// A landing read's parameters, with the kind of site when one was asked.
fn with_scope(q: &Query, mut args: Value) -> Value {
    if let Some(scope) = &q.scope {
        args["scope"] = json!(scope);
    }
    args
}

/// A set as the portal saves it: unknown operations dropped, `denied` alone when given,
/// `read` added when absent.
fn cleaned(ops: &Value) -> Vec<String> {
    let given: Vec<&str> = ops
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|op| SITE_OPS.contains(op))
        .collect();
    if given.contains(&"denied") {
        return vec!["denied".to_owned()];
    }
    let mut kept: Vec<String> = SITE_OPS
        .iter()
        .filter(|op| **op == "read" || given.contains(op))
        .map(|op| (*op).to_owned())
        .collect();
    kept.dedup();
    kept
}

/// The ledger's last set for a site: its grants and the evidence they rest on.
async fn site_evidence(
    ctx: &Ctx<'_>,
    id: &str,
    on: Option<&str>,
) -> Option<(Vec<Grant>, Evidence)> {
    let known = ctx.last_set(SET_TOOL, "site", id).await?;
    let set = known.arguments["rights"].as_object()?;
    let grants: Vec<Grant> = set
        .iter()
        .map(|(code, ops)| Grant {
            code: code.clone(),
            rights: cleaned(ops),
            on: on.map(str::to_owned),
            from: Known::Ledger,
        })
        .collect();
    let evidence = Evidence {
        tool: SET_TOOL.to_owned(),
        object: format!("site {id}"),
        at: known.at,
        set: json!(set),
    };
    Some((grants, evidence))
}

fn everyone_else(q: &Query) -> Unknown {
    let what = if q.kind == super::ObjectKind::Site {
        "REST has no method that returns a site's rights: landing.site.getRights answers only for the webhook's user"
    } else {
        "landing.role.setAccessCodes cannot be read back: REST has no method that says who holds a role"
    };
    Unknown::new("everyone but what is listed", what)
}

pub async fn site(ctx: &Ctx<'_>, q: &Query) -> Found {
    let mut reads = vec![
        ("landing.role.isEnabled", json!({})),
        ("landing.role.getList", with_scope(q, json!({}))),
        ctx.my_name_read(),
    ];
    reads.extend(q.ids.iter().map(|id| {
        (
            "landing.site.getRights",
            with_scope(q, json!({"id": number(id)})),
        )
    }));
    let default = site_evidence(ctx, "0", Some("the default set (site 0)")).await;
    let mut known: BTreeMap<&str, (Vec<Grant>, Evidence)> = BTreeMap::new();
    for id in &q.ids {
        if let Some(evidence) = site_evidence(ctx, id, None).await {
            known.insert(id.as_str(), evidence);
        }
    }
    let mut codes: Vec<String> = known
        .values()
        .chain(default.iter())
        .flat_map(|(grants, _)| grants.iter().map(|g| g.code.clone()))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let (answers, resolved) = ctx.read_and_resolve(reads, &codes).await;
    let my_name = name_in(answers.get(2), &format!("U{}", ctx.me));
    let mut found = Found {
        resolved,
        unknown: vec![everyone_else(q)],
        ..Found::default()
    };
    if answers[0] == Ok(json!(true)) {
        let roles = role_list(&answers[1]);
        found.objects = role_model_sites(ctx, q, &answers[3..], &roles, my_name).await;
        return found;
    }
    for (id, own) in q.ids.iter().zip(&answers[3..]) {
        let mut facts = ObjectFacts::new(id.clone(), format!("site {id}"));
        facts.denied_wins = true;
        own_rights(ctx, &mut facts, own, my_name.as_ref());
        match known.remove(id.as_str()) {
            Some((grants, evidence)) => {
                facts.unknown.push(Unknown::new(
                    "changes since the last set written through this server",
                    format!(
                        "the rights marked from ledger are the set written at {}; changes made in the portal or by other apps since are not known",
                        evidence.at
                    ),
                ));
                facts.grants = grants;
                facts.evidence.push(evidence);
            }
            None => facts.unknown.push(Unknown::new(
                "the site's individual rights",
                if ctx.ledger_kept() {
                    "no set was written to this site through this server (its ledger), and REST cannot read it"
                } else {
                    "the ledger is off (BITRIX24_LEDGER=off), so no set written through this server is known, and REST cannot read it"
                },
            )),
        }
        if let Some((grants, evidence)) = &default {
            facts.grants.extend(grants.iter().cloned());
            facts.evidence.push(evidence.clone());
        }
        found.objects.push(facts);
    }
    found
}

/// The webhook user's own rights on the site, as the portal evaluated them.
fn own_rights(ctx: &Ctx<'_>, facts: &mut ObjectFacts, own: &Read<Value>, name: Option<&String>) {
    match own {
        Ok(Value::Array(ops)) if !ops.is_empty() => {
            for op in ops.iter().filter_map(Value::as_str) {
                facts
                    .held
                    .push((ctx.me.clone(), Right::checked(op, OWN_RIGHTS)));
            }
            if let Some(name) = name {
                facts.names.insert(ctx.me.clone(), name.clone());
            }
        }
        Ok(_) => facts.unknown.push(Unknown::new(
            "the webhook's user",
            "landing.site.getRights answered no rights: the site does not exist, is in the trash, the webhook's user cannot see it, or it is a knowledge base, group site or main page asked without scope",
        )),
        Err(text) => facts.error = Some(text.clone()),
    }
}

/// landing.role.getList's answer: (ID, TITLE) of each role.
fn role_list(answer: &Read<Value>) -> Vec<(String, String)> {
    let Ok(Value::Array(roles)) = answer else {
        return Vec::new();
    };
    roles
        .iter()
        .filter_map(|r| {
            let id = super::text_of(&r["ID"])?;
            let title = r["TITLE"].as_str().unwrap_or_default().to_owned();
            Some((id, title))
        })
        .collect()
}

/// A role's rights by site key ("0" is the default for every other site), as
/// landing.role.getRights answers in either of its shapes.
fn role_rights(answer: &Read<Value>) -> Result<Vec<(String, Vec<String>)>, String> {
    match answer {
        Ok(Value::Object(map)) => Ok(map
            .iter()
            .map(|(site, ops)| (site.clone(), cleaned(ops)))
            .collect()),
        Ok(Value::Array(list)) => Ok(list
            .iter()
            .enumerate()
            .map(|(i, ops)| (i.to_string(), cleaned(ops)))
            .collect()),
        Ok(_) => Ok(Vec::new()),
        Err(text) => Err(text.clone()),
    }
}

fn site_label(key: &str) -> String {
    if key == "0" {
        "every site without its own line (the role's default)".to_owned()
    } else {
        format!("site {key}")
    }
}

/// Who holds a role, as last written through this server: grants of `ops` (on `on`) to each
/// code, the evidence, or what is unknown.
fn holders(
    known: Option<&KnownSet>,
    role: &str,
    title: &str,
    ops: &[String],
    on: &str,
    facts: &mut ObjectFacts,
) {
    let about = format!("role {role} ({title})");
    let Some(known) = known else {
        let mut unknown = Unknown::new(
            format!("the holders of {about}"),
            "landing.role.setAccessCodes cannot be read back, and no list was written through this server",
        );
        unknown.rights = ops.to_vec();
        facts.unknown.push(unknown);
        return;
    };
    for code in known.arguments["codes"].as_array().into_iter().flatten() {
        if let Some(code) = code.as_str() {
            facts.grants.push(Grant {
                code: code.to_owned(),
                rights: ops.to_vec(),
                on: Some(format!("{on}, through {about}")),
                from: Known::Ledger,
            });
        }
    }
    if !facts
        .evidence
        .iter()
        .any(|e| e.object == format!("role {role}"))
    {
        facts.evidence.push(Evidence {
            tool: HOLDERS_TOOL.to_owned(),
            object: format!("role {role}"),
            at: known.at.clone(),
            set: known.arguments["codes"].clone(),
        });
    }
}

/// Sites under the role model: each role's rights on the site, held by the role's holders.
async fn role_model_sites(
    ctx: &Ctx<'_>,
    q: &Query,
    own: &[Read<Value>],
    roles: &[(String, String)],
    my_name: Option<String>,
) -> Vec<ObjectFacts> {
    let reads = roles
        .iter()
        .map(|(id, _)| {
            (
                "landing.role.getRights",
                with_scope(q, json!({"id": number(id)})),
            )
        })
        .collect();
    let rights = ctx.read(reads).await;
    let mut known = BTreeMap::new();
    for (role, _) in roles {
        known.insert(
            role.as_str(),
            ctx.last_set(HOLDERS_TOOL, "role", role).await,
        );
    }
    let mut objects = Vec::new();
    for (id, own) in q.ids.iter().zip(own) {
        let mut facts = ObjectFacts::new(id.clone(), format!("site {id}"));
        facts.denied_wins = true;
        own_rights(ctx, &mut facts, own, my_name.as_ref());
        for ((role, title), answer) in roles.iter().zip(&rights) {
            let Ok(by_site) = role_rights(answer) else {
                continue;
            };
            let line = by_site
                .iter()
                .find(|(site, _)| site == id)
                .or_else(|| by_site.iter().find(|(site, _)| site == "0"));
            if let Some((site, ops)) = line.filter(|(_, ops)| !ops.is_empty()) {
                let set = known.get(role.as_str()).and_then(Option::as_ref);
                holders(set, role, title, ops, &site_label(site), &mut facts);
            }
        }
        objects.push(facts);
    }
    objects
}

/// `sites_role`: each role's rights on every site, held by whoever holds the role.
pub async fn role(ctx: &Ctx<'_>, q: &Query) -> Found {
    let mut reads = vec![
        ("landing.role.isEnabled", json!({})),
        ("landing.role.getList", with_scope(q, json!({}))),
    ];
    reads.extend(q.ids.iter().map(|id| {
        (
            "landing.role.getRights",
            with_scope(q, json!({"id": number(id)})),
        )
    }));
    let mut known: BTreeMap<&str, Option<KnownSet>> = BTreeMap::new();
    for id in &q.ids {
        known.insert(id.as_str(), ctx.last_set(HOLDERS_TOOL, "role", id).await);
    }
    let mut codes: Vec<String> = known
        .values()
        .flatten()
        .flat_map(|k| {
            k.arguments["codes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let (answers, resolved) = ctx.read_and_resolve(reads, &codes).await;
    let mut found = Found {
        resolved,
        unknown: vec![everyone_else(q)],
        ..Found::default()
    };
    if answers[0] == Ok(json!(false)) {
        found.unknown.push(Unknown::new(
            "every holder",
            "Sites use the extended per-site model now (landing.role.isEnabled is false): a role's rights take effect only once the role model is switched on",
        ));
    }
    let titles: BTreeMap<String, String> = role_list(&answers[1]).into_iter().collect();
    for (id, answer) in q.ids.iter().zip(&answers[2..]) {
        let title = titles.get(id).cloned().unwrap_or_default();
        let label = if title.is_empty() {
            format!("Sites role {id}")
        } else {
            format!("Sites role {id} ({title})")
        };
        let mut facts = ObjectFacts::new(id.clone(), label);
        match role_rights(answer) {
            Ok(by_site) => {
                for (site, ops) in by_site.iter().filter(|(_, ops)| !ops.is_empty()) {
                    let set = known.get(id.as_str()).and_then(Option::as_ref);
                    holders(set, id, &title, ops, &site_label(site), &mut facts);
                }
            }
            Err(text) => facts.error = Some(text),
        }
        found.objects.push(facts);
    }
    found
}
