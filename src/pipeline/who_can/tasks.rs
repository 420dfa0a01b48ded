//! Tasks: the portal evaluates a task's rights for the people it is asked about, and for no
//! one else, so the answer is about those people. One command per task; the tasks are read
//! 50 to a request and each request's answers are reduced before the next is sent, so
//! thousands of tasks never sit in memory as full action lists.

use serde_json::{Value, json};

use super::{
    Ctx, Found, Query,
    facts::{ObjectFacts, Right, Unknown},
    number,
    resolve::Read,
};
use crate::pipeline::failure::{FailureKind, ToolFailure};

/// Bitrix24 runs at most this many commands in one batch request.
const PER_REQUEST: usize = 50;
/// Without an action each check answers twenty-odd actions per person: beyond this many
/// task × person checks the answer is too big to be useful, so an action is asked for.
const MAX_CHECKS_WITHOUT_ACTION: usize = 2_500;
const CHECKED_BY: &str = "tasks.task.getaccess: the portal's own check; it does not say which rule (creator, responsible, participant, department head, administrator) allows it";

pub async fn task(ctx: &Ctx<'_>, q: &Query) -> Result<Found, ToolFailure> {
    let users: Vec<String> = if q.users.is_empty() {
        vec![ctx.me.clone()]
    } else {
        q.users.clone()
    };
    if q.action.is_none() && q.ids.len() * users.len() > MAX_CHECKS_WITHOUT_ACTION {
        return Err(ToolFailure::new(
            FailureKind::InvalidArguments,
            format!(
                "{} tasks × {} people without an action would list every allowed action of each: nothing was sent. What to do: pass action (e.g. EDIT, APPROVE), or ask about at most {MAX_CHECKS_WITHOUT_ACTION} task × person checks per call.",
                q.ids.len(),
                users.len()
            ),
        ));
    }
    let numbers: Vec<Value> = users.iter().map(|u| number(u)).collect();
    let codes: Vec<String> = users.iter().map(|u| format!("U{u}")).collect();
    let names_read = ("access.name", json!({ "ACCESS": codes }));
    let mut found = Found::default();
    let mut names: Option<Read<Value>> = None;
    let chunks: Vec<&[String]> = q.ids.chunks(PER_REQUEST).collect();
    for (k, chunk) in chunks.iter().enumerate() {
        let mut reads: Vec<(&str, Value)> = chunk
            .iter()
            .map(|id| {
                let args = json!({"taskId": number(id), "users": numbers});
                ("tasks.task.getaccess", args)
            })
            .collect();
        // The people's names ride in the last request when it has room.
        let with_names = k + 1 == chunks.len() && reads.len() < PER_REQUEST;
        if with_names {
            reads.push(names_read.clone());
        }
        let mut answers = ctx.read(reads).await;
        if with_names {
            names = answers.pop();
        }
        for (id, answer) in chunk.iter().zip(answers) {
            found
                .objects
                .push(task_facts(id, answer, q.action.as_deref()));
        }
    }
    if names.is_none() {
        names = ctx.read(vec![names_read]).await.pop();
    }
    if let Some(Ok(names)) = names {
        for facts in &mut found.objects {
            for (uid, _) in &facts.held {
                if let Some(name) = names[format!("U{uid}")]["name"].as_str() {
                    facts.names.insert(uid.clone(), name.to_owned());
                }
            }
        }
    }
    found.unknown.push(Unknown::new(
        "everyone not in users",
        "tasks.task.getaccess answers only for the people it is asked about, and REST has no list of who may see a task; pass users (50 per call) to check more people",
    ));
    Ok(found)
}

fn task_facts(id: &str, answer: Read<Value>, action: Option<&str>) -> ObjectFacts {
    let mut facts = ObjectFacts::new(id, format!("task {id}"));
    let answer = match answer {
        Ok(answer) => answer,
        Err(text) => {
            facts.error = Some(text);
            return facts;
        }
    };
    match answer["allowedActions"].as_object() {
        Some(by_user) if !by_user.is_empty() => {
            for (user, actions) in by_user {
                for (name, allowed) in actions.as_object().into_iter().flatten() {
                    if *allowed == true && action.is_none_or(|a| a.eq_ignore_ascii_case(name)) {
                        facts
                            .held
                            .push((user.clone(), Right::checked(name, CHECKED_BY)));
                    }
                }
            }
        }
        _ => facts.unknown.push(Unknown::new(
            "everyone",
            "the webhook's user cannot see this task (or it does not exist), so tasks.task.getaccess answers nothing for it",
        )),
    }
    facts
}
