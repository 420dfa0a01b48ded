//! The sandbox's workgroup reads: the acting user's groups, a group's members and roles, and
//! what a feature of a group lets a member do.

use serde_json::{Value, json};

use super::{Answer, Portal, err, int, ok};

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn workgroups(&self, method: &str, p: &Value) -> Option<Answer> {
        Some(match method {
            "sonet_group.user.groups" => self.sonet_group_user_groups(),
            "sonet_group.user.get" => self.sonet_group_user_get(p),
            "sonet_group.feature.access" => self.feature_access(p),
            _ => return None,
        })
    }

    fn sonet_group_user_groups(&self) -> Answer {
        ok(Value::Array(
                self.groups
                    .iter()
                    .filter_map(|(id, g)| {
                        let role = g.members.get(&self.me)?;
                        Some(json!({"GROUP_ID": id.to_string(), "GROUP_NAME": g.name, "ROLE": role.to_string(),
                                    "GROUP_IMAGE_ID": null, "GROUP_IMAGE": ""}))
                    })
                    .collect(),
            ))
    }

    fn sonet_group_user_get(&self, p: &Value) -> Answer {
        let Some(id) = int(&p["ID"]) else {
            return err(400, "", "Wrong socialnetwork group ID");
        };
        match self.groups.get(&id) {
            Some(g) if g.members.contains_key(&self.me) => ok(Value::Array(
                g.members
                    .iter()
                    .map(|(u, r)| json!({"USER_ID": u.to_string(), "ROLE": r.to_string()}))
                    .collect(),
            )),
            _ => err(400, "", "Socialnetwork group not found"),
        }
    }

    fn feature_access(&self, p: &Value) -> Answer {
        const FEATURES: &[(&str, &[&str])] = &[
            ("forum", &["full", "newtopic", "answer", "view"]),
            ("photo", &["write", "view"]),
            ("calendar", &["write", "view"]),
            (
                "tasks",
                &[
                    "view",
                    "view_all",
                    "sort",
                    "create_tasks",
                    "edit_tasks",
                    "delete_tasks",
                    "modify_folders",
                    "modify_common_views",
                ],
            ),
            ("files", &["view", "write_limited", "write"]),
            (
                "blog",
                &[
                    "view_post",
                    "premoderate_post",
                    "write_post",
                    "moderate_post",
                    "full_post",
                    "view_comment",
                    "premoderate_comment",
                    "write_comment",
                    "moderate_comment",
                    "full_comment",
                ],
            ),
            ("search", &["view"]),
            ("wiki", &["view", "write", "delete"]),
            ("group_lists", &["write", "view"]),
            ("chat", &[]),
        ];
        // Only GROUP_ID <= 0 is an error; a positive id of no group simply answers false.
        let Some(group_id) = int(&p["GROUP_ID"]).filter(|id| *id > 0) else {
            return err(400, "", "Wrong socialnetwork group ID");
        };
        let group = self.groups.get(&group_id);
        let feature = p["FEATURE"].as_str().unwrap_or_default();
        let Some((_, operations)) = FEATURES.iter().find(|(f, _)| *f == feature) else {
            return err(400, "", "Wrong feature");
        };
        let operation = p["OPERATION"].as_str().unwrap_or_default();
        if !operations.contains(&operation) {
            return err(400, "", "Wrong operation");
        }
        let Some(group) = group else {
            return ok(json!(false));
        };
        let allowed = match group.members.get(&self.me) {
            Some('A') => true,
            Some('E') => !operation.starts_with("full") && !operation.starts_with("delete"),
            Some(_) => {
                operation.starts_with("view")
                    || matches!(
                        operation,
                        "answer"
                            | "newtopic"
                            | "write_post"
                            | "write_comment"
                            | "create_tasks"
                            | "write_limited"
                    )
            }
            None => self.users[&self.me].admin,
        };
        ok(json!(allowed))
    }
}
