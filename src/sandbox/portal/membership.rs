//! The sandbox's writes of the wider permission surface: workgroup membership and ownership,
//! document generator roles and Drive shares, with the refusals a portal gives a user who is
//! neither an administrator nor the group's owner.

use serde_json::{Value, json};

use super::{Answer, Portal, err, int, ok};

/// One ID or a list of them, as the sonet_group.user.* methods take USER_ID.
fn ids(v: &Value) -> Vec<u64> {
    match v {
        Value::Array(items) => items.iter().filter_map(int).collect(),
        one => int(one).into_iter().collect(),
    }
}

/// The sandbox's webhook user administers the social network module.
const SONET_ADMIN: bool = true;

/// The Drive folders the sandbox has.
const FOLDERS: &[u64] = &[8994];

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn membership(&mut self, method: &str, p: &Value) -> Option<Answer> {
        let admin = self.users[&self.me].admin;
        Some(match method {
            // The sandbox's webhook user administers the social network module (its own
            // flag, not the portal's), so membership changes go through as documented.
            "sonet_group.user.add" | "sonet_group.user.update" | "sonet_group.user.delete" => {
                self.admin_membership(method, p)
            }
            "sonet_group.user.invite" => {
                let Some(group) = int(&p["GROUP_ID"]).and_then(|id| self.groups.get(&id)) else {
                    return Some(err(400, "", "Socialnetwork group not found"));
                };
                // Only the owner and moderators may invite in the sandbox's groups.
                if !matches!(group.members.get(&self.me), Some('A' | 'E')) {
                    return Some(ok(json!([])));
                }
                let invited: Vec<String> = ids(&p["USER_ID"])
                    .into_iter()
                    .filter(|u| self.users.contains_key(u) && !group.members.contains_key(u))
                    .map(|u| u.to_string())
                    .collect();
                ok(json!(invited))
            }
            "sonet_group.setowner" => {
                let (Some(id), Some(user)) = (int(&p["GROUP_ID"]), int(&p["USER_ID"])) else {
                    return Some(err(400, "", "Wrong group or user ID"));
                };
                let Some(group) = self.groups.get_mut(&id) else {
                    return Some(err(400, "", "Socialnetwork group not found"));
                };
                if group.members.get(&self.me) != Some(&'A') && !admin && !SONET_ADMIN {
                    return Some(err(400, "", "User has no permissions to set owner"));
                }
                for role in group.members.values_mut() {
                    if *role == 'A' {
                        *role = 'E';
                    }
                }
                group.members.insert(user, 'A');
                ok(json!(true))
            }
            // The sandbox's webhook user holds the document generator's settings right.
            "documentgenerator.role.update" => ok(json!({"role": {"id": int(&p["id"]),
                "permissions": p["fields"]["permissions"].clone()}})),
            // Documented: null, whatever the roles and codes were.
            "documentgenerator.role.fillaccesses" => ok(Value::Null),
            "disk.folder.sharetouser" => match int(&p["id"]) {
                Some(id) if FOLDERS.contains(&id) => ok(json!(true)),
                Some(id) => err(
                    400,
                    "ERROR_NOT_FOUND",
                    &format!("Could not find entity with id `{id}`"),
                ),
                None => err(400, "ERROR_ARGUMENT", "Required parameter id is missing"),
            },
            _ => return None,
        })
    }

    /// add/update/delete as an administrator calls them: the owner is always left alone.
    fn admin_membership(&mut self, method: &str, p: &Value) -> Answer {
        let Some(group) = int(&p["GROUP_ID"]).and_then(|id| self.groups.get_mut(&id)) else {
            return err(400, "", "Socialnetwork group not found");
        };
        let users = ids(&p["USER_ID"]);
        if users.is_empty() {
            return err(400, "", "Wrong user IDs");
        }
        let mut changed = Vec::new();
        for u in users {
            match (method, group.members.get(&u).copied()) {
                (_, Some('A')) => {}
                ("sonet_group.user.add", None) => {
                    group.members.insert(u, 'K');
                    changed.push(u.to_string());
                }
                ("sonet_group.user.update", Some(_)) => {
                    let Some(role @ ('E' | 'K')) =
                        p["ROLE"].as_str().and_then(|r| r.chars().next())
                    else {
                        return err(400, "", "Incorrect role code");
                    };
                    group.members.insert(u, role);
                    changed.push(u.to_string());
                }
                ("sonet_group.user.delete", Some(_)) => {
                    group.members.remove(&u);
                    changed.push(u.to_string());
                }
                _ => {}
            }
        }
        ok(json!(changed))
    }
}
