//! Workgroups and projects: the members and their roles are readable, so the answer is whole
//! as far as the webhook's user may see. What each role may do inside a feature is the
//! group's own setting, which REST cannot read: an action is checked for the webhook's user
//! only.

use serde_json::{Value, json};

use super::{
    Ctx, Found, Query,
    facts::{Known, ObjectFacts, Right, Unknown, Via},
    number,
};

/// The rights a role gives: an owner is a moderator and a member too, as SG<id>_E and
/// SG<id>_K include the owner.
fn roles_of(role: &str) -> &'static [(&'static str, &'static str)] {
    match role {
        "A" => &[("owner", "A"), ("moderator", "E"), ("member", "K")],
        "E" => &[("moderator", "E"), ("member", "K")],
        _ => &[("member", "K")],
    }
}

pub async fn workgroup(ctx: &Ctx<'_>, q: &Query) -> Found {
    let codes: Vec<String> = q.ids.iter().map(|id| format!("SG{id}_K")).collect();
    // "tasks.edit_tasks": a feature's operation, checked for the webhook's user.
    let feature = q
        .action
        .as_deref()
        .and_then(|a| a.split_once('.'))
        .map(|(f, o)| (f.to_owned(), o.to_owned()));
    let reads = match &feature {
        Some((f, o)) => q
            .ids
            .iter()
            .map(|id| {
                let args = json!({"GROUP_ID": number(id), "FEATURE": f, "OPERATION": o});
                ("sonet_group.feature.access", args)
            })
            .collect(),
        None => Vec::new(),
    };
    let (answers, resolved) = ctx.read_and_resolve(reads, &codes).await;
    let mut found = Found::default();
    for (i, id) in q.ids.iter().enumerate() {
        let code = format!("SG{id}_K");
        let part = &resolved[&code];
        let name = part["name"]
            .as_str()
            .map(|n| n.trim_end_matches(": all members").to_owned());
        let label = match &name {
            Some(name) => format!("workgroup {id} ({name})"),
            None => format!("workgroup {id}"),
        };
        let mut facts = ObjectFacts::new(id.clone(), label);
        facts.whole = part["complete"] == true;
        members(&mut facts, id, part, name.as_deref());
        if let (Some(action), Some(answer)) = (&q.action, answers.get(i)) {
            match answer {
                Ok(Value::Bool(true)) => facts.held.push((
                    ctx.me.clone(),
                    Right::checked(action, "sonet_group.feature.access, for the webhook's user"),
                )),
                Ok(_) => {}
                Err(text) => facts.error = Some(text.clone()),
            }
            let mut unknown = Unknown::new(
                "every member but the webhook's user",
                "which roles may do this is the group's own feature setting, which REST cannot read; sonet_group.feature.access answers for the webhook's user only",
            );
            unknown.rights = vec![action.clone()];
            facts.unknown.push(unknown);
        }
        found.objects.push(facts);
    }
    found.resolved = resolved;
    found
}

/// Each member's rights from their role, or why the members are not known.
fn members(facts: &mut ObjectFacts, id: &str, part: &Value, name: Option<&str>) {
    let users = part["users"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if part["complete"] != true && users.is_empty() {
        let why = part["note"]
            .as_str()
            .unwrap_or("the group's members could not be read");
        facts.error = Some(why.to_owned());
        return;
    }
    for user in users {
        let Some(uid) = user["id"].as_str() else {
            continue;
        };
        if let Some(n) = user["name"].as_str() {
            facts.names.insert(uid.to_owned(), n.to_owned());
        }
        for (right, suffix) in roles_of(user["role"].as_str().unwrap_or("K")) {
            let code = format!("SG{id}_{suffix}");
            facts.held.push((
                uid.to_owned(),
                Right {
                    right: (*right).to_owned(),
                    on: None,
                    via: Via::WorkgroupRole,
                    code: Some(code),
                    code_name: None,
                    detail: name.map(|n| format!("{right} of {n}")),
                    from: Known::Portal,
                },
            ));
        }
    }
}
