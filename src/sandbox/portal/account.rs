//! The sandbox's account reads: the webhook's scopes, which methods exist, what access codes
//! are called and which the acting user holds, and who that user is.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Answer, Portal, ok};

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn account(&self, method: &str, p: &Value) -> Option<Answer> {
        Some(match method {
            "scope" => self.scope(p),
            "method.get" => self.method_get(p),
            "access.name" => self.access_name(p),
            "user.access" => self.user_access(p),
            "user.admin" => self.user_admin(),
            "profile" => self.profile(),
            _ => return None,
        })
    }

    fn scope(&self, p: &Value) -> Answer {
        if p["full"].as_bool() == Some(true) || p["full"] == 1 {
            ok(json!([
                "calendar",
                "crm",
                "department",
                "disk",
                "humanresources",
                "im",
                "landing",
                "lists",
                "main",
                "sonet_group",
                "task",
                "user"
            ]))
        } else {
            ok(json!(self.scopes))
        }
    }

    fn method_get(&self, p: &Value) -> Answer {
        let name = p["name"].as_str().unwrap_or_default();
        // Classic names are matched in lowercase only; the mixed-case ones exactly.
        let known = self.methods.contains_key(name);
        let available = known && self.scope_of(name).is_none_or(|s| self.scopes.contains(&s));
        ok(json!({"isExisting": known, "isAvailable": available}))
    }

    fn access_name(&self, p: &Value) -> Answer {
        let codes: Vec<&str> = p["ACCESS"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if codes.is_empty() {
            return ok(json!(false));
        }
        let found: Map<String, Value> = codes
            .iter()
            .filter_map(|c| Some(((*c).to_owned(), self.name_of_code(c)?)))
            .collect();
        ok(if found.is_empty() {
            json!([])
        } else {
            Value::Object(found)
        })
    }

    fn user_access(&self, p: &Value) -> Answer {
        let held = self.codes_of(self.me);
        let me_admin = self.users[&self.me].admin;
        let any = p["ACCESS"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|c| held.contains(c));
        ok(json!(me_admin || any))
    }

    fn user_admin(&self) -> Answer {
        ok(json!(self.users[&self.me].admin))
    }

    fn profile(&self) -> Answer {
        let me = &self.users[&self.me];
        ok(
            json!({"ID": self.me.to_string(), "ADMIN": me.admin, "NAME": me.name, "LAST_NAME": me.last_name,
                          "PERSONAL_GENDER": "", "TIME_ZONE": "Europe/Berlin"}),
        )
    }

    /// The access codes a user holds.
    pub(super) fn codes_of(&self, user: u64) -> BTreeSet<String> {
        let mut codes = BTreeSet::from([format!("U{user}"), "AU".into(), "UA".into(), "G2".into()]);
        if let Some(u) = self.users.get(&user) {
            codes.insert(format!("D{}", u.department));
            codes.insert(format!("DR{}", u.department));
            codes.insert("DR1".into());
            if u.admin {
                codes.insert("G1".into());
            }
        }
        for (id, g) in &self.groups {
            if let Some(role) = g.members.get(&user) {
                codes.insert(format!("SG{id}"));
                codes.insert(format!("SG{id}_K"));
                if matches!(role, 'A' | 'E') {
                    codes.insert(format!("SG{id}_E"));
                }
                if *role == 'A' {
                    codes.insert(format!("SG{id}_A"));
                }
            }
        }
        codes
    }

    fn name_of_code(&self, code: &str) -> Option<Value> {
        let about = |name: String, provider: &str, id: &str| {
            Some(json!({"name": name, "provider": provider, "provider_id": id}))
        };
        let number = |prefix: &str| {
            code.strip_prefix(prefix)
                .and_then(|n| n.parse::<u64>().ok())
        };
        match code {
            "AU" => return about("All authorized users".into(), "", "other"),
            "G2" => return about("All visitors".into(), "", "other"),
            "CR" => return about("Author".into(), "", "other"),
            "G1" => return about("Administrators".into(), "User groups", "group"),
            _ => {}
        }
        if let Some((group, suffix)) = code.strip_prefix("SG").map(|rest| {
            let (id, suffix) = rest.split_once('_').unwrap_or((rest, ""));
            (id.parse::<u64>().ok(), suffix)
        }) {
            let g = self.groups.get(&group?)?;
            // Like the socialnetwork provider: only SG<id>_A/_E/_K have names.
            let who = match suffix {
                "A" => ": owner",
                "E" => ": moderators",
                "K" => ": all members",
                _ => return None,
            };
            return about(format!("{}{who}", g.name), "Workgroups", "socnetgroup");
        }
        if let Some(d) = number("DR") {
            return about(
                format!("{} (with sub-departments)", self.departments.get(&d)?.name),
                "Departments",
                "intranet",
            );
        }
        if let Some(d) = number("D") {
            return about(
                self.departments.get(&d)?.name.to_string(),
                "Departments",
                "intranet",
            );
        }
        if let Some(u) = number("IU").or_else(|| number("U")) {
            let user = self.users.get(&u)?;
            return about(format!("{} {}", user.name, user.last_name), "Users", "user");
        }
        None
    }
}
