//! The guards a write runs before it is sent, as its catalog entry declares them. Any refusal,
//! or any failure to check, means nothing is written.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{
    Pipeline,
    explain::failure,
    failure::{FailureKind, ToolFailure},
};
use crate::{
    bitrix::{Api, limits::Progress},
    catalog::{Preflight, ToolSpec},
};

/// What the guards learned on their way, for the question: what `access.name` said about the
/// codes they checked, and the workgroup roles they read.
#[derive(Debug, Default)]
pub struct Facts {
    pub names: Map<String, Value>,
    /// Every code the guards' reads covered, named or not: asking again would learn nothing.
    pub asked: std::collections::BTreeSet<String>,
    /// (workgroup, user, role A/E/K, or none for a non-member)
    pub roles: Vec<(String, String, Option<String>)>,
}

/// Runs the guards; on success answers what they learned, so the question can use it without
/// asking again. `also_name` rides along on the first `access.name` read: codes the question
/// will name, which are not checked.
pub async fn run(
    p: &Pipeline,
    spec: &ToolSpec,
    args: &Value,
    mut also_name: &[String],
    deadline: Instant,
    progress: &dyn Progress,
) -> Result<Facts, ToolFailure> {
    let mut facts = Facts::default();
    for check in &spec.preflight {
        match check {
            Preflight::RefuseIf {
                method,
                equals,
                message,
            } => {
                let answer = read(p, method, json!({}), spec, deadline, progress).await?;
                if answer == *equals {
                    tracing::info!(tool = %spec.name, %method, "preflight refused the write");
                    return Err(ToolFailure::new(FailureKind::Refused, message.clone()));
                }
            }
            Preflight::KnownAccessCodes {
                codes_at,
                unnamed,
                item_key,
            } => {
                let codes = Preflight::values_in(codes_at, item_key.as_deref(), args);
                // Each code with the code access.name is asked instead; None: accepted as
                // documented although no provider names it.
                let asked: Vec<(&str, Option<String>)> = codes
                    .iter()
                    .map(|code| {
                        let stand_in = unnamed
                            .iter()
                            .find_map(|rule| rule.check(code))
                            .unwrap_or_else(|| Some(code.clone()));
                        (code.as_str(), stand_in)
                    })
                    .collect();
                let mut to_ask: Vec<&str> =
                    asked.iter().filter_map(|(_, a)| a.as_deref()).collect();
                if to_ask.is_empty() {
                    continue;
                }
                // A documented code no provider names (UA, a bare SG<id>) is not asked for a name.
                to_ask.extend(
                    also_name
                        .iter()
                        .filter(|code| unnamed.iter().all(|rule| rule.check(code).is_none()))
                        .map(String::as_str),
                );
                facts.asked.extend(codes.iter().cloned());
                facts.asked.extend(also_name.iter().cloned());
                also_name = &[];
                to_ask.sort_unstable();
                to_ask.dedup();
                let known = read(
                    p,
                    "access.name",
                    json!({ "ACCESS": to_ask }),
                    spec,
                    deadline,
                    progress,
                )
                .await?;
                let unknown: Vec<String> = asked
                    .iter()
                    .filter_map(|(code, stand_in)| {
                        let stand_in = stand_in.as_deref()?;
                        if known.get(stand_in).is_some() {
                            None
                        } else if stand_in == *code {
                            Some((*code).to_owned())
                        } else {
                            Some(format!("{code} (checked as {stand_in})"))
                        }
                    })
                    .collect();
                if !unknown.is_empty() {
                    tracing::info!(tool = %spec.name, unknown = unknown.len(), "unknown access codes");
                    let also: Vec<String> = unnamed
                        .iter()
                        .map(|rule| {
                            format!("{} = {}", rule.code.replace("{id}", "<id>"), rule.means)
                        })
                        .collect();
                    let also = if also.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " Accepted although access_name cannot name them: {}.",
                            also.join("; ")
                        )
                    };
                    return Err(ToolFailure::new(
                        FailureKind::Refused,
                        format!(
                            "The portal does not know these access codes: {}. Nothing was written: {} would save them \
                             without an error and they would grant nothing.{also} What to do: correct them (resolve_access_codes says who \
                             codes stand for, sonet_group_user_groups lists workgroups, profile shows your own user id) and call again.",
                            unknown.join(", "),
                            spec.method
                        ),
                    ));
                }
                if let Value::Object(known) = known {
                    facts.names.extend(known);
                }
            }
            Preflight::GroupRoles {
                group_at,
                users_at,
                refuse_roles,
                require_roles,
                message,
            } => {
                let group = Preflight::values_in(group_at, None, args);
                let users = Preflight::values_in(users_at, None, args);
                let Some(group) = group.first() else { continue };
                let members = read(
                    p,
                    "sonet_group.user.get",
                    json!({ "ID": group }),
                    spec,
                    deadline,
                    progress,
                )
                .await?;
                let role_of = |user: &str| {
                    members.as_array().into_iter().flatten().find_map(|m| {
                        let id = match &m["USER_ID"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (id == user).then(|| m["ROLE"].as_str().unwrap_or_default().to_owned())
                    })
                };
                let offending: Vec<String> = users
                    .iter()
                    .filter_map(|u| {
                        let role = role_of(u);
                        let refused = role.as_ref().is_some_and(|r| refuse_roles.contains(r));
                        let lacking = !require_roles.is_empty()
                            && !role.as_ref().is_some_and(|r| require_roles.contains(r));
                        (refused || lacking).then(|| match role.as_deref() {
                            Some("A") => format!("{u} (the owner)"),
                            Some("E") => format!("{u} (a moderator)"),
                            Some("K") => format!("{u} (a member)"),
                            Some(other) => format!("{u} (role {other})"),
                            None => format!("{u} (not a member)"),
                        })
                    })
                    .collect();
                facts
                    .roles
                    .extend(users.iter().map(|u| (group.clone(), u.clone(), role_of(u))));
                if !offending.is_empty() {
                    tracing::info!(tool = %spec.name, users = offending.len(), "group roles refused the write");
                    return Err(ToolFailure::new(
                        FailureKind::Refused,
                        format!("{message} Users: {}.", offending.join(", ")),
                    ));
                }
            }
            Preflight::UsersExist { users_at, message } => {
                let wanted = Preflight::values_in(users_at, None, args);
                if wanted.is_empty() {
                    continue;
                }
                let answer = read(
                    p,
                    "user.get",
                    json!({ "FILTER": { "@ID": wanted } }),
                    spec,
                    deadline,
                    progress,
                )
                .await?;
                let unknown = missing(&wanted, &Preflight::values_in("", Some("ID"), &answer));
                if !unknown.is_empty() {
                    tracing::info!(tool = %spec.name, unknown = unknown.len(), "unknown users");
                    return Err(ToolFailure::new(
                        FailureKind::Refused,
                        format!("User not found: {}. {message}", unknown.join(", ")),
                    ));
                }
            }
            Preflight::KnownIds {
                method,
                list_at,
                values_at,
                item_key,
                message,
            } => {
                let wanted = Preflight::values_in(values_at, Some(item_key), args);
                if wanted.is_empty() {
                    continue;
                }
                let answer = read(p, method, json!({}), spec, deadline, progress).await?;
                let unknown = missing(&wanted, &Preflight::values_in(list_at, Some("id"), &answer));
                if !unknown.is_empty() {
                    return Err(ToolFailure::new(
                        FailureKind::Refused,
                        format!("{message} Unknown: {}.", unknown.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(facts)
}

/// The wanted values a portal's answer did not list, in the order they were asked for.
fn missing<'a>(wanted: &'a [String], listed: &[String]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| !listed.contains(w))
        .map(String::as_str)
        .collect()
}

/// A read made on behalf of a write's guard, repaired like the read tool's own answer.
pub(super) async fn read(
    p: &Pipeline,
    method: &str,
    params: Value,
    for_write: &ToolSpec,
    deadline: Instant,
    progress: &dyn Progress,
) -> Result<Value, ToolFailure> {
    let reader = p.catalog.by_method(method).map(|e| &*e.spec);
    match p
        .gateway
        .call(
            method,
            reader.map_or(Api::Classic, |r| r.api),
            &params,
            false,
            deadline,
            progress,
        )
        .await
    {
        Ok(success) => {
            let mut result = success.result;
            if let Some(reader) = reader {
                reader.normalize.apply(&mut result);
            }
            Ok(result)
        }
        Err(err) => {
            let failed = failure(&err, reader.unwrap_or(for_write));
            Err(ToolFailure {
                // The guard's read failed, so the write was certainly not sent.
                kind: if failed.kind == FailureKind::OutcomeUnknown {
                    FailureKind::Transport
                } else {
                    failed.kind
                },
                text: format!(
                    "Nothing was written: the check made before this write ({method}) failed. {}",
                    failed.text
                ),
                ..failed
            })
        }
    }
}
