//! The sandbox's people, workgroups and the portal-wide reads of the wider permission
//! surface: who holds an access code (users, departments, groups), calendar ACLs, document
//! generator roles, Drive access levels and the plan.

use std::{borrow::Cow, collections::BTreeMap};

use serde_json::{Map, Value, json};

use super::{Answer, Department, ME, Portal, err, int, ok};

/// Department, name, parent, head. The tree: 1 Company ⊃ 2 Marketing, 3 Sales, 7 Support.
const TREE: &[(u64, &str, Option<u64>, u64)] = &[
    (1, "Company", None, 1),
    (2, "Marketing", Some(1), 503),
    (3, "Sales", Some(1), 547),
    (7, "Support", Some(1), 45),
];

/// The small company's departments.
pub(super) fn departments() -> BTreeMap<u64, Department> {
    TREE.iter()
        .map(|(id, name, parent, head)| {
            let department = Department {
                name: Cow::Borrowed(name),
                parent: *parent,
                head: *head,
            };
            (*id, department)
        })
        .collect()
}

/// The document generator's roles: id, name, code, permissions (settings, templates,
/// documents modify, documents view).
const DOCGEN_ROLES: &[(u64, &str, &str, [&str; 4])] = &[
    (1, "Administrator", "ADMIN", ["X", "X", "X", "X"]),
    (3, "Manager", "MANAGER", ["", "D", "X", "X"]),
    (
        9,
        "Template Editors",
        "DOCGEN_TEMPLATE_EDITORS",
        ["", "A", "X", "X"],
    ),
];

/// Lists answer this many items a page, as Bitrix24's classic lists do.
const PAGE: usize = 50;

/// A page of `items` from `start`, with the classic `total` and `next`.
fn page(items: Vec<Value>, p: &Value) -> Answer {
    let start = int(&p["start"]).map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX));
    let total = items.len();
    let shown: Vec<Value> = items.into_iter().skip(start).take(PAGE).collect();
    let mut body = json!({"result": shown, "total": total});
    if start + PAGE < total {
        body["next"] = json!(start + PAGE);
    }
    (200, body)
}

/// A parameter the docs spell in either case (`filter` and `FILTER`).
fn either<'a>(p: &'a Value, name: &str) -> &'a Value {
    match &p[name.to_ascii_uppercase()] {
        Value::Null => &p[name.to_ascii_lowercase()],
        v => v,
    }
}

/// Whether `actual` passes a filter condition `key: want` with Bitrix24's key prefixes
/// (`@` in list, `%` substring, `!` not); other prefixes compare as equality.
fn passes(key: &str, want: &Value, actual: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let matches_one = |w: &Value| match actual {
        Value::Array(items) => items.iter().any(|a| text(a) == text(w)),
        // Yes/no fields take true, "Y" and, through batch, "1".
        Value::Bool(b) => ["true", "y", "1"].contains(&text(w).to_lowercase().as_str()) == *b,
        a => text(a).eq_ignore_ascii_case(&text(w)),
    };
    if key.starts_with('@') {
        want.as_array().is_some_and(|ws| ws.iter().any(matches_one))
    } else if key.starts_with('%') {
        text(actual)
            .to_lowercase()
            .contains(&text(want).to_lowercase())
    } else if key.starts_with('!') {
        !matches_one(want)
    } else if let Value::Array(ws) = want {
        ws.iter().any(matches_one)
    } else {
        matches_one(want)
    }
}

fn field_of(key: &str) -> &str {
    key.trim_start_matches(['@', '%', '!', '=', '<', '>'])
}

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn directory(&mut self, method: &str, p: &Value) -> Option<Answer> {
        Some(match method {
            "user.get" => self.user_get(p),
            "department.get" => self.department_get(p),
            "sonet_group.get" => self.sonet_group_get(p),
            "socialnetwork.api.workgroup.get" => self.workgroup_get(p),
            "calendar.section.get" => calendar_section_get(p),
            "app.info" => ok(json!({"SCOPE": self.scopes, "LICENSE": "en_ent250"})),
            "feature.get" => match p["CODE"].as_str().unwrap_or_default() {
                "" => err(400, "CODE_EMPTY", "CODE can't be empty"),
                "rest_offline_extended" => ok(json!({"value": "Y"})),
                _ => ok(json!({"value": "N"})),
            },
            // The sandbox's webhook user holds the document generator's settings right.
            "documentgenerator.role.list" => {
                let roles: Vec<Value> = DOCGEN_ROLES
                    .iter()
                    .map(|(id, name, code, _)| json!({"id": id, "name": name, "code": code}))
                    .collect();
                (
                    200,
                    json!({"result": {"roles": roles}, "total": roles.len()}),
                )
            }
            "documentgenerator.role.get" => {
                match DOCGEN_ROLES.iter().find(|r| Some(r.0) == int(&p["id"])) {
                    Some((id, name, code, [settings, templates, modify, view])) => ok(
                        json!({"role": {"id": id, "name": name, "code": code, "permissions": {
                            "settings": {"modify": settings}, "templates": {"modify": templates},
                            "documents": {"modify": modify, "view": view}}}}),
                    ),
                    None => err(400, "100", "Could not construct parameter {role}"),
                }
            }
            "disk.rights.gettasks" => ok(json!([
                {"ID": "71", "NAME": "disk_access_read", "TITLE": "Reading"},
                {"ID": "73", "NAME": "disk_access_add", "TITLE": "Adding"},
                {"ID": "75", "NAME": "disk_access_edit", "TITLE": "Editing"},
                {"ID": "79", "NAME": "disk_access_full", "TITLE": "Full Access"},
            ])),
            _ => return None,
        })
    }

    fn user_json(&self, id: u64) -> Value {
        let u = &self.users[&id];
        json!({"ID": id.to_string(), "ACTIVE": true, "NAME": u.name, "LAST_NAME": u.last_name,
               "UF_DEPARTMENT": [u.department], "USER_TYPE": "employee", "WORK_POSITION": ""})
    }

    fn user_get(&self, p: &Value) -> Answer {
        // The docs show the filter both as FILTER and, in the legacy form, at the top level.
        let filter: Map<String, Value> = match either(p, "filter") {
            Value::Object(map) => map.clone(),
            _ => p
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| {
                    ![
                        "SORT",
                        "ORDER",
                        "START",
                        "SELECT",
                        "ADMIN_MODE",
                        "IMAGE_RESIZE",
                    ]
                    .contains(&k.to_ascii_uppercase().as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        // Looked up by ID, the large company's ten thousand people are not all written out.
        let by_id: Option<Vec<u64>> = ["@ID", "ID"].iter().find_map(|k| match filter.get(*k)? {
            Value::Array(ids) => Some(ids.iter().filter_map(int).collect()),
            one => int(one).map(|id| vec![id]),
        });
        let mut ids: Vec<u64> = match by_id {
            Some(ids) => ids
                .into_iter()
                .filter(|id| self.users.contains_key(id))
                .collect(),
            None => self.users.keys().copied().collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        let users: Vec<Value> = ids
            .into_iter()
            .map(|id| self.user_json(id))
            .filter(|u| {
                filter
                    .iter()
                    .all(|(k, want)| passes(k, want, &u[field_of(k)]))
            })
            .collect();
        page(users, p)
    }

    fn department_get(&self, p: &Value) -> Answer {
        let departments: Vec<Value> = self
            .departments
            .iter()
            .map(|(id, dep)| {
                let mut d = json!({"ID": id.to_string(), "NAME": dep.name, "SORT": 500,
                                   "UF_HEAD": dep.head.to_string()});
                if let Some(parent) = dep.parent {
                    d["PARENT"] = json!(parent.to_string());
                }
                d
            })
            .filter(|d| {
                ["ID", "NAME", "PARENT", "UF_HEAD"]
                    .iter()
                    .all(|k| match either(p, k) {
                        Value::Null => true,
                        want => passes(k, want, &d[*k]),
                    })
            })
            .collect();
        page(departments, p)
    }

    /// The groups the webhook's user sees: its own, or every one for an administrator asking
    /// with IS_ADMIN.
    fn visible_groups(&self, as_admin: bool) -> impl Iterator<Item = (&u64, &super::Group)> {
        let admin = as_admin && self.users[&self.me].admin;
        self.groups
            .iter()
            .filter(move |(_, g)| admin || g.members.contains_key(&self.me))
    }

    fn owner_of(g: &super::Group) -> u64 {
        g.members
            .iter()
            .find(|(_, r)| **r == 'A')
            .map_or(0, |(u, _)| *u)
    }

    fn sonet_group_get(&self, p: &Value) -> Answer {
        let as_admin = either(p, "is_admin").as_str() == Some("Y");
        let filter = either(p, "filter").as_object().cloned().unwrap_or_default();
        let mut groups: Vec<Value> = self
            .visible_groups(as_admin)
            .map(|(id, g)| {
                json!({"ID": id.to_string(), "SITE_ID": "s1", "NAME": g.name, "ACTIVE": "Y",
                       "VISIBLE": "Y", "OPENED": "N", "CLOSED": "N",
                       "OWNER_ID": Self::owner_of(g).to_string(),
                       "NUMBER_OF_MEMBERS": g.members.len().to_string(), "PROJECT": "Y",
                       "IS_EXTRANET": "N"})
            })
            .filter(|g| {
                filter
                    .iter()
                    .all(|(k, want)| passes(k, want, &g[field_of(k)]))
            })
            .collect();
        // Documented default order: ID descending.
        groups.reverse();
        page(groups, p)
    }

    fn workgroup_get(&self, p: &Value) -> Answer {
        let Some(id) = int(&p["params"]["groupId"]) else {
            return err(
                400,
                "SONET_CONTROLLER_WORKGROUP_EMPTY",
                "Workgroup ID is empty.",
            );
        };
        let Some(g) = self
            .groups
            .get(&id)
            .filter(|g| g.members.contains_key(&self.me) || self.users[&self.me].admin)
        else {
            return err(
                400,
                "SONET_CONTROLLER_WORKGROUP_NOT_FOUND",
                "Workgroup not found.",
            );
        };
        let with = |roles: &[char]| -> Vec<u64> {
            g.members
                .iter()
                .filter(|(_, r)| roles.contains(r))
                .map(|(u, _)| *u)
                .collect()
        };
        let moderators = with(&['E']);
        let mut answer = json!({
            "ID": id, "NAME": g.name, "ACTIVE": "Y", "OPENED": "N", "CLOSED": "N", "VISIBLE": "Y",
            "OWNER_ID": Self::owner_of(g), "TYPE": "project", "PROJECT": "Y",
            "NUMBER_OF_MEMBERS": g.members.len(), "NUMBER_OF_MODERATORS": moderators.len(),
            "MEMBERS": with(&['A', 'E', 'K']), "MODERATOR_MEMBERS": moderators,
            "ORDINARY_MEMBERS": with(&['K']), "INVITED_MEMBERS": [], "DEPARTMENTS": [],
        });
        let select: Vec<&str> = p["params"]["select"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if select.contains(&"FEATURES") {
            answer["FEATURES"] = json!([
                {"featureName": "tasks", "name": "Tasks", "customName": "", "id": "12", "active": true},
                {"featureName": "files", "name": "Drive", "customName": "", "id": "13", "active": false},
            ]);
        }
        if select.contains(&"USER_DATA") {
            let role = g.members.get(&self.me).map(char::to_string);
            answer["USER_DATA"] =
                json!({"ROLE": role, "INITIATED_BY_TYPE": "G", "IS_SUBSCRIBED": false});
        }
        ok(answer)
    }
}

fn calendar_section_get(p: &Value) -> Answer {
    let missing = |name: &str| {
        err(
            400,
            "",
            &format!(
                "The required parameter \"{name}\" for the method \"calendar.section.get\" is not set"
            ),
        )
    };
    let Some(kind) = p["type"].as_str() else {
        return missing("type");
    };
    let owner = int(&p["ownerId"]);
    if kind != "user" && kind != "company_calendar" && owner.is_none() {
        return missing("ownerId");
    }
    let perm = json!({"view_time": true, "view_title": true, "view_full": true, "add": true,
                      "edit": true, "edit_section": false, "access": false});
    let section = |id: u64, name: &str, owner: u64, creator: u64, access: Value| {
        json!({"ID": id.to_string(), "NAME": name, "CAL_TYPE": kind, "OWNER_ID": owner.to_string(),
               "CREATED_BY": creator.to_string(), "EXPORT": {"ALLOW": true},
               "EXTERNAL_TYPE": "local", "ACCESS": access, "IS_COLLAB": false, "PERM": perm})
    };
    ok(match (kind, owner.unwrap_or(ME)) {
        ("group", 77) => json!([section(
            190,
            "Website relaunch",
            77,
            503,
            json!({"SG77_A": 19, "SG77_K": 15, "G2": 13})
        )]),
        ("group", 79) => json!([section(
            191,
            "Scrum project",
            79,
            ME,
            json!({"SG79_A": 19, "SG79_K": 17})
        )]),
        ("user", ME) => json!([section(192, "Ann Lee", ME, ME, json!({"U7": 19, "D2": 13}))]),
        ("company_calendar", _) => json!([section(
            193,
            "Company events",
            0,
            1,
            json!({"G2": 13, "DR1": 15, "G1": 19})
        )]),
        _ => json!([]),
    })
}
