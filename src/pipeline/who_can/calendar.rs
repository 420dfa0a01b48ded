//! Calendars: `calendar.section.get` returns each section's whole access list (code → access
//! level), so everyone is known once the codes are resolved. The levels are the portal's own
//! numbered tasks, which REST cannot name; the webhook user's own permissions come by name.

use serde_json::{Value, json};

use super::{
    Ctx, Found, Query,
    facts::{Grant, Known, ObjectFacts, Right, Unknown},
    name_in, number,
};

const OWN: &str = "calendar.section.get PERM: the webhook user's own permissions on this calendar";

pub async fn calendar(ctx: &Ctx<'_>, q: &Query) -> Found {
    let kind = q.calendar_type.clone().unwrap_or_else(|| "user".to_owned());
    let owner = q.owner_id.clone().unwrap_or_else(|| ctx.me.clone());
    let reads = vec![
        (
            "calendar.section.get",
            json!({"type": kind, "ownerId": number(&owner)}),
        ),
        ctx.my_name_read(),
    ];
    let answers = ctx.read(reads).await;
    let my_name = name_in(answers.get(1), &format!("U{}", ctx.me));
    let mut found = Found::default();
    let sections = match &answers[0] {
        Ok(Value::Array(sections)) => sections.clone(),
        Ok(_) => Vec::new(),
        Err(text) => {
            let mut facts = ObjectFacts::new(owner.clone(), format!("{kind} calendars of {owner}"));
            facts.error = Some(text.clone());
            found.objects.push(facts);
            return found;
        }
    };
    let wanted = |id: &str| q.ids.is_empty() || q.ids.iter().any(|w| w == id);
    for section in &sections {
        let id = super::text_of(&section["ID"]).unwrap_or_default();
        if wanted(&id) {
            found
                .objects
                .push(section_facts(ctx, q, &id, section, my_name.as_ref()));
        }
    }
    for id in q.ids.iter().filter(|id| {
        !sections
            .iter()
            .any(|s| super::text_of(&s["ID"]).as_deref() == Some(id.as_str()))
    }) {
        let mut facts = ObjectFacts::new(id.clone(), format!("calendar {id}"));
        facts.error = Some(format!(
            "calendar.section.get lists no section {id} among the {kind} calendars of owner {owner} that the webhook's user may see. What to do: check calendar_type and owner_id."
        ));
        found.objects.push(facts);
    }
    found.unknown.push(Unknown::new(
        "what each access level allows",
        "calendar access levels are the portal's own numbered tasks (\"level 17\"); REST cannot name them, so a level can be compared only with a calendar whose levels are known",
    ));
    found
}

fn section_facts(
    ctx: &Ctx<'_>,
    q: &Query,
    id: &str,
    section: &Value,
    my_name: Option<&String>,
) -> ObjectFacts {
    let label = match section["NAME"].as_str() {
        Some(name) => format!("calendar {id} ({name})"),
        None => format!("calendar {id}"),
    };
    let mut facts = ObjectFacts::new(id, label);
    facts.whole = true;
    // An empty map may come as [] (a PHP map); either way it grants nothing.
    for (code, level) in section["ACCESS"].as_object().into_iter().flatten() {
        let level = super::text_of(level).unwrap_or_default();
        facts.grants.push(Grant {
            code: code.clone(),
            rights: vec![format!("level {level}")],
            on: None,
            from: Known::Portal,
        });
    }
    if let Some(action) = q.action.as_ref().filter(|_| !facts.grants.is_empty()) {
        facts.unknown.push(Unknown::new(
            "the holders of the calendar's access levels",
            format!("whether a level allows {action} cannot be read over REST: only the webhook user's own permissions come by name"),
        ));
    }
    for (perm, allowed) in section["PERM"].as_object().into_iter().flatten() {
        if *allowed == true {
            facts.held.push((ctx.me.clone(), Right::checked(perm, OWN)));
        }
    }
    if let Some(name) = my_name {
        facts.names.insert(ctx.me.clone(), name.clone());
    }
    facts
}
