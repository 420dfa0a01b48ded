//! The portal methods the server calls for itself (the write guards, `resolve_access_codes`,
//! the batch sender and `doctor`): what each is asked and how its answer reads, in one place.
//! The tools the model calls are described by the catalog instead; these are the server's own
//! reads, whose shapes its code depends on.

use serde_json::{Map, Value, json};

/// A JSON scalar as the text the portal means by it: ids arrive as `"7"` or `7`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `access.name`: the names of access codes.
pub mod access_name {
    use super::*;

    pub const METHOD: &str = "access.name";

    pub fn request<S: AsRef<str>>(codes: &[S]) -> Value {
        let codes: Vec<&str> = codes.iter().map(AsRef::as_ref).collect();
        json!({ "ACCESS": codes })
    }

    /// The code's name, when the portal knows one.
    pub fn name_of<'a>(answer: &'a Map<String, Value>, code: &str) -> Option<&'a str> {
        answer.get(code).and_then(|n| n["name"].as_str())
    }
}

/// `user.get`: users by id or by department.
pub mod user_get {
    use super::*;

    pub const METHOD: &str = "user.get";

    /// Users whose id is one of `ids` (at most a page of them answer).
    pub fn by_ids(ids: &[String]) -> Value {
        json!({ "FILTER": { "@ID": ids } })
    }

    /// Active users of any of `departments`.
    pub fn in_departments(departments: &[String]) -> Value {
        json!({ "FILTER": { "UF_DEPARTMENT": departments, "ACTIVE": "Y" } })
    }

    /// A user as user.get answers them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct User {
        pub id: String,
        /// First and last name, trimmed.
        pub name: String,
        pub departments: Vec<String>,
    }

    impl User {
        pub fn of(v: &Value) -> Self {
            let text = |v: &Value| match v {
                Value::Null => String::new(),
                other => text(other),
            };
            let name = format!("{} {}", text(&v["NAME"]), text(&v["LAST_NAME"]))
                .trim()
                .to_owned();
            let departments = match &v["UF_DEPARTMENT"] {
                Value::Array(items) => items.iter().map(text).collect(),
                Value::Null => Vec::new(),
                other => vec![text(other)],
            };
            Self {
                id: text(&v["ID"]),
                name,
                departments,
            }
        }
    }

    /// Every user of an answer.
    pub fn users(answer: &Value) -> Vec<User> {
        answer
            .as_array()
            .into_iter()
            .flatten()
            .map(User::of)
            .collect()
    }
}

/// `sonet_group.user.get`: a workgroup's members and their roles.
pub mod group_members {
    use super::*;

    pub const METHOD: &str = "sonet_group.user.get";

    pub fn request(group: &str) -> Value {
        json!({ "ID": group })
    }

    /// (user id, role: A owner, E moderator, K member) of each member.
    pub fn members(answer: &Value) -> Vec<(String, String)> {
        answer
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| (text(&m["USER_ID"]), text(&m["ROLE"])))
            .collect()
    }
}

/// `department.get`: the department tree, a page of it.
pub mod departments {
    use super::*;

    pub const METHOD: &str = "department.get";

    pub fn request() -> Value {
        json!({})
    }

    /// (department, its parent) of each department listed.
    pub fn parents(answer: &Value) -> Vec<(String, Option<String>)> {
        let id = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        answer
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| (id(&d["ID"]).unwrap_or_default(), id(&d["PARENT"])))
            .collect()
    }
}

/// `humanresources.node.list` and `humanresources.node.get` (REST 3.0): the company
/// structure's departments and their members with roles.
pub mod structure {
    use super::*;

    pub const LIST: &str = "humanresources.node.list";
    pub const GET: &str = "humanresources.node.get";

    pub fn list_page(page: u64, limit: usize) -> Value {
        json!({"type": "DEPARTMENT", "select": ["id", "parentId"],
               "pagination": {"page": page, "limit": limit}})
    }

    /// (department, its parent) of a page; `None` when the answer has no list.
    pub fn parents(answer: &Value) -> Option<Vec<(String, Option<String>)>> {
        let items = answer["items"].as_array()?;
        Some(
            items
                .iter()
                .map(|n| {
                    let id = n["id"].as_u64().map(|i| i.to_string()).unwrap_or_default();
                    (id, n["parentId"].as_u64().map(|i| i.to_string()))
                })
                .collect(),
        )
    }

    pub fn node(id: u64) -> Value {
        json!({"id": id, "select": ["id", "members"]})
    }

    /// The members of department `node` as `resolve_access_codes` lists them (id, department,
    /// and name and role when given); `None` when the answer has no member list.
    pub fn members(answer: &Value, node: &str) -> Option<Vec<Value>> {
        let people = answer["item"]["members"].as_array()?;
        Some(
            people
                .iter()
                .map(|m| {
                    let mut user = json!({
                        "id": m["userId"].as_u64().map(|u| u.to_string()).unwrap_or_default(),
                        "department": node,
                    });
                    for key in ["name", "role"] {
                        if let Some(text) = m[key].as_str() {
                            user[key] = json!(text);
                        }
                    }
                    user
                })
                .collect(),
        )
    }
}

/// `batch`: up to fifty classic calls in one request.
pub mod batch {
    use super::*;

    pub const METHOD: &str = "batch";

    /// Runs every command, whatever fails (`halt: 0`); `cmd` maps each key to
    /// `method?query`.
    pub fn request(cmd: Map<String, Value>) -> Value {
        json!({"halt": 0, "cmd": cmd})
    }

    /// A batch's answers by key.
    pub type ByKey<'a> = Option<&'a Map<String, Value>>;

    /// The answers by key, and the errors by key.
    pub fn answers(result: &Value) -> (ByKey<'_>, ByKey<'_>) {
        let by_key = |field: &str| result.get(field).and_then(Value::as_object);
        (by_key("result"), by_key("result_error"))
    }
}

/// `profile`'s answer: the user the server acts as (`doctor` asks the tool of that name).
pub mod profile {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Profile {
        pub id: String,
        /// First and last name, trimmed.
        pub name: String,
        pub admin: bool,
    }

    pub fn of(result: &Value) -> Profile {
        let name = format!(
            "{} {}",
            result["NAME"].as_str().unwrap_or(""),
            result["LAST_NAME"].as_str().unwrap_or("")
        );
        Profile {
            id: text(&result["ID"]),
            name: name.trim().to_owned(),
            admin: result["ADMIN"] == true,
        }
    }
}

/// `scope`'s answer: the scopes the credentials were granted (`doctor` asks the tool of that
/// name).
pub mod scope {
    use std::collections::BTreeSet;

    use super::*;

    pub fn granted(result: &Value) -> BTreeSet<String> {
        result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_ids_written_either_way() {
        let user = user_get::User::of(
            &json!({"ID": 7, "NAME": "Ann", "LAST_NAME": null, "UF_DEPARTMENT": [1, "2"]}),
        );
        assert_eq!(user.id, "7");
        assert_eq!(user.name, "Ann");
        assert_eq!(user.departments, ["1", "2"]);
        let members = group_members::members(&json!([{"USER_ID": "3", "ROLE": "E"}]));
        assert_eq!(members, [("3".to_owned(), "E".to_owned())]);
        let tree = departments::parents(&json!([{"ID": "1"}, {"ID": 2, "PARENT": "1"}]));
        assert_eq!(tree[1], ("2".to_owned(), Some("1".to_owned())));
        let me = profile::of(&json!({"ID": "1", "NAME": "Ann", "LAST_NAME": "", "ADMIN": true}));
        assert_eq!(
            (me.id.as_str(), me.name.as_str(), me.admin),
            ("1", "Ann", true)
        );
    }
}
