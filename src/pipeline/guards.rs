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
    bitrix::{
        Api,
        limits::Progress,
        methods::{access_name, group_members, user_get},
    },
    catalog::{Preflight, ToolSpec, UnnamedCode},
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
    let guard = Guard {
        p,
        spec,
        args,
        deadline,
        progress,
    };
    for check in &spec.preflight {
        match check {
            Preflight::RefuseIf {
                method,
                equals,
                message,
            } => guard.refuse_if(method, equals, message).await?,
            Preflight::KnownAccessCodes {
                codes_at,
                unnamed,
                item_key,
            } => {
                let codes = Preflight::values_in(codes_at, item_key.as_deref(), args);
                let asked = guard
                    .known_access_codes(&codes, unnamed, also_name, &mut facts)
                    .await?;
                if asked {
                    also_name = &[];
                }
            }
            Preflight::GroupRoles {
                group_at,
                users_at,
                refuse_roles,
                require_roles,
                message,
            } => {
                let roles = Roles {
                    refuse: refuse_roles,
                    require: require_roles,
                    message,
                };
                guard
                    .group_roles(group_at, users_at, &roles, &mut facts)
                    .await?
            }
            Preflight::UsersExist { users_at, message } => {
                guard.users_exist(users_at, message).await?
            }
            Preflight::KnownIds {
                method,
                list_at,
                values_at,
                item_key,
                message,
            } => {
                guard
                    .known_ids(method, list_at, values_at, item_key, message)
                    .await?
            }
        }
    }
    Ok(facts)
}

/// One write's guards: what each of them reads with.
struct Guard<'a> {
    p: &'a Pipeline,
    spec: &'a ToolSpec,
    args: &'a Value,
    deadline: Instant,
    progress: &'a dyn Progress,
}

/// What a `GroupRoles` guard refuses, and what it says.
struct Roles<'a> {
    refuse: &'a [String],
    require: &'a [String],
    message: &'a str,
}

impl Guard<'_> {
    async fn read(&self, method: &str, params: Value) -> Result<Value, ToolFailure> {
        read(
            self.p,
            method,
            params,
            self.spec,
            self.deadline,
            self.progress,
        )
        .await
    }

    /// Refuses the write when a read answers `equals`.
    async fn refuse_if(
        &self,
        method: &str,
        equals: &Value,
        message: &str,
    ) -> Result<(), ToolFailure> {
        let answer = self.read(method, json!({})).await?;
        if answer == *equals {
            tracing::info!(tool = %self.spec.name, %method, "preflight refused the write");
            return Err(ToolFailure::new(FailureKind::Refused, message.to_owned()));
        }
        Ok(())
    }

    /// Refuses codes `access.name` does not know. Answers whether `also_name` was asked along
    /// (it rides on the first read only).
    async fn known_access_codes(
        &self,
        codes: &[String],
        unnamed: &[UnnamedCode],
        also_name: &[String],
        facts: &mut Facts,
    ) -> Result<bool, ToolFailure> {
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
        let mut to_ask: Vec<&str> = asked.iter().filter_map(|(_, a)| a.as_deref()).collect();
        if to_ask.is_empty() {
            return Ok(false);
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
        to_ask.sort_unstable();
        to_ask.dedup();
        let known = self
            .read(access_name::METHOD, access_name::request(&to_ask))
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
            tracing::info!(tool = %self.spec.name, unknown = unknown.len(), "unknown access codes");
            return Err(self.unknown_codes(&unknown, unnamed));
        }
        if let Value::Object(known) = known {
            facts.names.extend(known);
        }
        Ok(true)
    }

    fn unknown_codes(&self, unknown: &[String], unnamed: &[UnnamedCode]) -> ToolFailure {
        let also: Vec<String> = unnamed
            .iter()
            .map(|rule| format!("{} = {}", rule.code.replace("{id}", "<id>"), rule.means))
            .collect();
        let also = if also.is_empty() {
            String::new()
        } else {
            format!(
                " Accepted although access_name cannot name them: {}.",
                also.join("; ")
            )
        };
        ToolFailure::new(
            FailureKind::Refused,
            format!(
                "The portal does not know these access codes: {}. Nothing was written: {} would save them \
                 without an error and they would grant nothing.{also} What to do: correct them (resolve_access_codes says who \
                 codes stand for, sonet_group_user_groups lists workgroups, profile shows your own user id) and call again.",
                unknown.join(", "),
                self.spec.method
            ),
        )
    }

    /// Refuses users whose role in the workgroup the write may not touch (or lacks).
    async fn group_roles(
        &self,
        group_at: &str,
        users_at: &str,
        roles: &Roles<'_>,
        facts: &mut Facts,
    ) -> Result<(), ToolFailure> {
        let group = Preflight::values_in(group_at, None, self.args);
        let users = Preflight::values_in(users_at, None, self.args);
        let Some(group) = group.first() else {
            return Ok(());
        };
        let answer = self
            .read(group_members::METHOD, group_members::request(group))
            .await?;
        let members = group_members::members(&answer);
        let role_of = |user: &str| {
            members
                .iter()
                .find(|(id, _)| id == user)
                .map(|(_, role)| role.clone())
        };
        let offending: Vec<String> = users
            .iter()
            .filter_map(|u| {
                let role = role_of(u);
                let refused = role.as_ref().is_some_and(|r| roles.refuse.contains(r));
                let lacking = !roles.require.is_empty()
                    && !role.as_ref().is_some_and(|r| roles.require.contains(r));
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
            tracing::info!(tool = %self.spec.name, users = offending.len(), "group roles refused the write");
            return Err(ToolFailure::new(
                FailureKind::Refused,
                format!("{} Users: {}.", roles.message, offending.join(", ")),
            ));
        }
        Ok(())
    }

    /// Refuses users `user.get` does not list.
    async fn users_exist(&self, users_at: &str, message: &str) -> Result<(), ToolFailure> {
        let wanted = Preflight::values_in(users_at, None, self.args);
        if wanted.is_empty() {
            return Ok(());
        }
        let answer = self
            .read(user_get::METHOD, user_get::by_ids(&wanted))
            .await?;
        let listed: Vec<String> = user_get::users(&answer).into_iter().map(|u| u.id).collect();
        let unknown = missing(&wanted, &listed);
        if !unknown.is_empty() {
            tracing::info!(tool = %self.spec.name, unknown = unknown.len(), "unknown users");
            return Err(ToolFailure::new(
                FailureKind::Refused,
                format!("User not found: {}. {message}", unknown.join(", ")),
            ));
        }
        Ok(())
    }

    /// Refuses ids that a read of `method` does not list.
    async fn known_ids(
        &self,
        method: &str,
        list_at: &str,
        values_at: &str,
        item_key: &str,
        message: &str,
    ) -> Result<(), ToolFailure> {
        let wanted = Preflight::values_in(values_at, Some(item_key), self.args);
        if wanted.is_empty() {
            return Ok(());
        }
        let answer = self.read(method, json!({})).await?;
        let unknown = missing(&wanted, &Preflight::values_in(list_at, Some("id"), &answer));
        if !unknown.is_empty() {
            return Err(ToolFailure::new(
                FailureKind::Refused,
                format!("{message} Unknown: {}.", unknown.join(", ")),
            ));
        }
        Ok(())
    }
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
