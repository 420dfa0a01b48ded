//! The sandbox's Bitrix24: a small company with users, workgroups, sites and tasks, answering
//! every catalog method the way the documentation says a real portal does, quirks included.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use serde_json::{Map, Value, json};

use crate::{bitrix::Api, catalog::Catalog};

mod account;
mod directory;
mod fixture;
mod landing;
pub(crate) mod large;
mod membership;
mod structure;
mod tasks;
mod workgroups;

pub use large::Size;

/// The user the sandbox webhook acts as.
pub const ME: u64 = 7;

/// Who can sign in to the sandbox through its OAuth stand-in: an administrator, the webhook's
/// user and a colleague with fewer rights, so the same question gets different answers.
pub const PEOPLE: [u64; 3] = [1, ME, 503];

/// Offered on the sign-in page too, but the sandbox's application is not open to her.
pub const SHUT_OUT: u64 = 547;

/// Methods registered in mixed case: the portal matches their names exactly.
const MIXED_CASE_METHODS: [(&str, &str); 2] = [
    ("tasks.flow.Flow.get", "task"),
    ("imbot.v2.Chat.get", "imbot"),
];

/// The answer to one call: HTTP status and JSON body (envelope included).
pub type Answer = (u16, Value);

/// A name: written into the small company, generated for the large one.
type Text = Cow<'static, str>;

struct User {
    name: Text,
    last_name: Text,
    admin: bool,
    department: u64,
}

struct Group {
    name: Text,
    /// user → role (A owner, E moderator, K member)
    members: BTreeMap<u64, char>,
}

struct Department {
    name: Text,
    parent: Option<u64>,
    head: u64,
}

struct Site {
    /// The landing scope the site belongs to (a knowledge base: KNOWLEDGE); None for sites
    /// and stores.
    scope: Option<&'static str>,
    in_trash: bool,
    rights: BTreeMap<String, Vec<String>>,
}

struct Task {
    creator: u64,
    responsible: u64,
    /// Only these users (and administrators) can see the task.
    visible_to: BTreeSet<u64>,
}

struct Role {
    scope: Option<&'static str>,
    title: &'static str,
    xml_id: &'static str,
    rights: BTreeMap<String, Vec<String>>,
    codes: Vec<String>,
    additional: Vec<String>,
}

pub struct Portal {
    users: BTreeMap<u64, User>,
    departments: BTreeMap<u64, Department>,
    groups: BTreeMap<u64, Group>,
    sites: BTreeMap<u64, Site>,
    default_site_rights: BTreeMap<String, Vec<String>>,
    tasks: BTreeMap<u64, Task>,
    roles: BTreeMap<u64, Role>,
    role_model: bool,
    scopes: Vec<&'static str>,
    /// The REST methods this portal has (the catalog's), lowercased, with the scope each needs.
    methods: BTreeMap<String, String>,
    /// The catalog's example answers, lowercased by method: what a method not modelled here answers.
    examples: BTreeMap<String, Value>,
    /// The methods served only on the REST 3.0 path (`api = "v3"` in the catalog), lowercased.
    v3_methods: BTreeSet<String>,
    /// The user the call being answered acts as: the webhook's, or a signed-in person's.
    me: u64,
}

/// An integer parameter, given as a number (JSON) or a string (a batch command's query).
fn int(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn ok(result: Value) -> Answer {
    (200, json!({ "result": result }))
}

fn err(status: u16, code: &str, description: &str) -> Answer {
    (
        status,
        json!({ "error": code, "error_description": description }),
    )
}

fn rights(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(code, ops)| {
            (
                (*code).to_owned(),
                ops.iter().map(|o| (*o).to_owned()).collect(),
            )
        })
        .collect()
}

impl Portal {
    /// The sandbox company, with the catalog's methods and their scopes.
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            users: fixture::users(),
            departments: directory::departments(),
            groups: fixture::groups(),
            sites: fixture::sites(),
            default_site_rights: fixture::default_site_rights(),
            tasks: fixture::tasks(),
            roles: fixture::roles(),
            role_model: false,
            me: ME,
            scopes: fixture::scopes(),
            methods: catalog
                .entries()
                .filter(|e| e.spec.is_portal_method())
                .map(|e| (e.spec.method.to_ascii_lowercase(), e.spec.scope.clone()))
                .chain(
                    MIXED_CASE_METHODS
                        .iter()
                        .map(|(m, s)| ((*m).to_owned(), (*s).to_owned())),
                )
                .collect(),
            examples: catalog
                .entries()
                .filter_map(|e| {
                    let example = e.spec.example.as_ref()?;
                    Some((e.spec.method.to_ascii_lowercase(), example.answer.clone()))
                })
                .collect(),
            v3_methods: catalog
                .entries()
                .filter(|e| e.spec.api == Api::V3)
                .map(|e| e.spec.method.to_ascii_lowercase())
                .collect(),
        }
    }
}

impl Portal {
    /// A person's full name, as sign-in shows it.
    pub fn name_of(&self, user: u64) -> Option<String> {
        self.users
            .get(&user)
            .map(|u| format!("{} {}", u.name, u.last_name))
    }

    /// Whether a person is a portal administrator.
    pub fn is_admin(&self, user: u64) -> bool {
        self.users.get(&user).is_some_and(|u| u.admin)
    }

    /// Answers one call on the path of `api`: `/rest/...` for classic REST, `/rest/api/...`
    /// for REST 3.0. A method that exists only in REST 3.0 is unknown on the classic path, and
    /// a classic method on the REST 3.0 path, as the REST 3.0 overview says.
    pub fn call_at(&mut self, api: Api, method: &str, p: &Value) -> Answer {
        self.call_as(ME, api, method, p)
    }

    /// Answers one call made with `user`'s rights (a signed-in person's token).
    pub fn call_as(&mut self, user: u64, api: Api, method: &str, p: &Value) -> Answer {
        self.me = user;
        let lower = method.to_ascii_lowercase();
        match (api, self.v3_methods.contains(&lower)) {
            (Api::Classic, false) => self.call(method, p),
            (Api::V3, true) => {
                if let Some(scope) = self.methods.get(&lower)
                    && !self.scopes.contains(&scope.as_str())
                {
                    return structure::v3_err(
                        403,
                        "INSUFFICIENTSCOPEEXCEPTION",
                        "Insufficient access rights: required scope is missing",
                    );
                }
                self.structure(&lower, p)
                    .unwrap_or_else(|| err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"))
            }
            _ => err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
        }
    }

    /// The scope a method needs, when it needs one beyond `basic`.
    fn scope_of(&self, method: &str) -> Option<&str> {
        self.methods
            .get(method)
            .map(String::as_str)
            .filter(|s| *s != "basic")
    }

    /// Answers one classic REST call. `method` is case-insensitive, as on a real portal.
    pub fn call(&mut self, method: &str, p: &Value) -> Answer {
        let method = method.to_ascii_lowercase();
        if self.v3_methods.contains(&method) {
            return err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
        }
        if let Some(scope) = self.scope_of(&method)
            && !self.scopes.contains(&scope)
        {
            return err(
                403,
                "insufficient_scope",
                "The request requires higher privileges than provided by the webhook token",
            );
        }
        if method == "batch" {
            return self.batch(p);
        }
        let answer = self.account(&method, p);
        let answer = answer.or_else(|| self.landing(&method, p));
        let answer = answer.or_else(|| self.workgroups(&method, p));
        let answer = answer.or_else(|| self.tasks(&method, p));
        let answer = answer.or_else(|| self.directory(&method, p));
        let answer = answer.or_else(|| self.membership(&method, p));
        // A catalog method this company does not model answers its catalog example, so a
        // new tool works in the sandbox from its catalog file alone.
        answer.unwrap_or_else(|| match self.examples.get(&method) {
            Some(answer) => ok(answer.clone()),
            None => err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
        })
    }

    /// `batch`: each command is `method?query`, answered into `result` / `result_error`.
    fn batch(&mut self, p: &Value) -> Answer {
        let Some(cmd) = p["cmd"].as_object() else {
            return err(400, "INVALID_ARG_VALUE", "cmd must be an object");
        };
        if cmd.len() > 50 {
            return err(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            );
        }
        let mut results = Map::new();
        let mut errors = Map::new();
        for (key, command) in cmd {
            let command = command.as_str().unwrap_or_default();
            let (method, query) = command.split_once('?').unwrap_or((command, ""));
            let params = php_params(query);
            let (status, body) = if method.eq_ignore_ascii_case("batch") {
                err(
                    405,
                    "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "Method is not allowed for batch usage",
                )
            } else {
                self.call(method, &params)
            };
            match (status, body) {
                (200, mut body) => {
                    results.insert(key.clone(), body["result"].take());
                }
                (_, body) => {
                    errors.insert(key.clone(), body);
                }
            }
        }
        let map_or_list = |m: Map<String, Value>| {
            if m.is_empty() {
                json!([])
            } else {
                Value::Object(m)
            }
        };
        ok(
            json!({"result": map_or_list(results), "result_error": map_or_list(errors),
                  "result_total": [], "result_next": [], "result_time": []}),
        )
    }
}

/// Reads a PHP-style query string (`users[0]=503&rights[AU][0]=read`) back into JSON, the
/// way the portal's PHP does. Numbers stay strings, as they do in PHP.
fn php_params(query: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let mut path: Vec<String> = Vec::new();
        let (head, rest) = key
            .split_once('[')
            .map_or((key.as_ref(), ""), |(h, r)| (h, r));
        path.push(head.to_owned());
        for part in rest.split('[').filter(|s| !s.is_empty()) {
            path.push(part.trim_end_matches(']').to_owned());
        }
        let mut node = &mut root;
        for (i, segment) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let is_index = path
                .get(i + 1)
                .is_some_and(|next| next.parse::<usize>().is_ok());
            if !node.is_object() && !node.is_array() {
                *node = Value::Object(Map::new());
            }
            let slot = match node {
                Value::Array(items) => {
                    let idx: usize = segment.parse().unwrap_or(items.len());
                    while items.len() <= idx {
                        items.push(Value::Null);
                    }
                    &mut items[idx]
                }
                Value::Object(map) => map.entry(segment.clone()).or_insert(Value::Null),
                _ => unreachable!(),
            };
            if last {
                *slot = Value::String(value.to_string());
            } else if slot.is_null() {
                *slot = if is_index {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                };
            }
            node = slot;
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Default for Portal {
        fn default() -> Self {
            Portal::new(Catalog::shared())
        }
    }

    #[test]
    fn answers_every_catalog_method() {
        let mut p = Portal::default();
        for e in Catalog::shared()
            .entries()
            .filter(|e| e.spec.is_portal_method())
        {
            let (_, body) = p.call_at(e.spec.api, &e.spec.method, &json!({}));
            assert_ne!(
                body["error"], "ERROR_METHOD_NOT_FOUND",
                "the sandbox has no answer for {}",
                e.spec.method
            );
        }
    }

    #[test]
    fn rest_v3_methods_answer_on_their_path_only() {
        let mut p = Portal::default();
        let (status, body) = p.call("humanresources.node.list", &json!({"type": "DEPARTMENT"}));
        assert_eq!(
            (status, &body["error"]),
            (404, &json!("ERROR_METHOD_NOT_FOUND"))
        );
        let (status, _) = p.call_at(Api::V3, "user.get", &json!({}));
        assert_eq!(status, 404, "a classic method is not on the REST 3.0 path");

        let (status, body) = p.call_at(
            Api::V3,
            "humanresources.node.list",
            &json!({"type": "DEPARTMENT", "select": ["id", "accessCode"], "pagination": {"page": 1, "limit": 2}}),
        );
        assert_eq!(status, 200);
        assert_eq!(
            body["result"],
            json!({"items": [{"id": 1, "accessCode": "DR1"}, {"id": 2, "accessCode": "DR2"}]})
        );
        assert!(body.get("total").is_none() && body.get("next").is_none());

        let (_, body) = p.call_at(
            Api::V3,
            "humanresources.node.get",
            &json!({"id": 2, "select": ["members"]}),
        );
        let members: Vec<(u64, &str)> = body["result"]["item"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["userId"].as_u64().unwrap(), m["role"].as_str().unwrap()))
            .collect();
        assert_eq!(members, [(ME, "MEMBER_EMPLOYEE"), (503, "MEMBER_HEAD")]);

        for (method, params, status, code) in [
            (
                "humanresources.node.get",
                json!({}),
                400,
                "VALIDATION_REQUESTVALIDATIONEXCEPTION",
            ),
            (
                "humanresources.node.get",
                json!({"id": "2"}),
                400,
                "VALIDATION_REQUESTVALIDATIONEXCEPTION",
            ),
            (
                "humanresources.node.get",
                json!({"id": 99}),
                400,
                "ENTITYNOTFOUNDEXCEPTION",
            ),
            (
                "humanresources.node.get",
                json!({"id": 2, "select": ["xyz"]}),
                400,
                "UNKNOWNDTOPROPERTYEXCEPTION",
            ),
            (
                "humanresources.node.list",
                json!({}),
                400,
                "VALIDATION_REQUESTVALIDATIONEXCEPTION",
            ),
            (
                "humanresources.node.list",
                json!({"type": "DEPARTMENT", "pagination": {"limit": 0}}),
                400,
                "INVALIDPAGINATIONEXCEPTION",
            ),
            (
                "main.eventlog.list",
                json!({"filter": [["nope", 1]]}),
                400,
                "UNKNOWNDTOPROPERTYEXCEPTION",
            ),
            (
                "main.eventlog.list",
                json!({"filter": [["userId", "like", 1]]}),
                400,
                "UNKNOWNFILTEROPERATOREXCEPTION",
            ),
        ] {
            let (got, body) = p.call_at(Api::V3, method, &params);
            assert_eq!(got, status, "{method} {params}");
            assert_eq!(
                body["error"]["code"],
                json!(format!("BITRIX_REST_V3_EXCEPTION_{code}")),
                "{method} {params}: {body}"
            );
            assert!(body["error"]["message"].is_string());
        }

        let (_, body) = p.call_at(
            Api::V3,
            "main.eventlog.list",
            &json!({"filter": [["userId", 7]], "order": {"id": "DESC"}, "select": ["id"]}),
        );
        assert_eq!(
            body["result"],
            json!({"items": [{"id": 1002}, {"id": 998}]})
        );
    }

    #[test]
    fn set_rights_follows_the_documented_rules() {
        let mut p = Portal::default();
        let (_, a) = p.call(
            "landing.site.setRights",
            &json!({"id": 645, "rights": {"U7": ["edit"], "U503": ["denied", "edit"]}}),
        );
        assert_eq!(a["result"], true);
        assert_eq!(
            p.sites[&645].rights["U7"],
            ["read", "edit"],
            "read is added"
        );
        assert_eq!(p.sites[&645].rights["U503"], ["denied"], "denied overrides");
        assert!(
            !p.sites[&645].rights.contains_key("AU"),
            "everything else is replaced"
        );
        let (_, trash) = p.call("landing.site.setRights", &json!({"id": 650, "rights": {}}));
        assert_eq!(trash["result"], false);
        // Under the role model: true, and nothing changes.
        p.call("landing.role.enable", &json!({"mode": 1}));
        p.call("landing.site.setRights", &json!({"id": 645, "rights": {}}));
        assert!(p.sites[&645].rights.contains_key("U7"));
    }

    #[test]
    fn get_rights_and_quirks() {
        let mut p = Portal::default();
        assert_eq!(
            p.call("landing.site.getRights", &json!({"id": 645})).1["result"],
            json!(["read", "edit", "sett", "public"])
        );
        assert_eq!(
            p.call("landing.site.getRights", &json!({"id": 9999})).1["result"],
            json!([])
        );
        assert_eq!(
            p.call("tasks.task.getaccess", &json!({"taskId": 8020})).1["result"],
            json!({"allowedActions": []})
        );
        // A missing task is no error; "wrong task id" (code 0) is about the taskId's type.
        assert_eq!(
            p.call("tasks.task.getaccess", &json!({"taskId": 1})).1["result"],
            json!({"allowedActions": []})
        );
        let (status, e) = p.call("tasks.task.getaccess", &json!({"taskId": "abc"}));
        assert_eq!(
            (status, e["error"].as_str(), e["error_description"].as_str()),
            (400, Some("0"), Some("wrong task id"))
        );
        let (_, unknown) = p.call(
            "tasks.task.getaccess",
            &json!({"taskId": 8017, "users": [99999]}),
        );
        assert!(
            unknown["result"]["allowedActions"]["99999"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == false)
        );
        assert_eq!(
            p.call("access.name", &json!({"ACCESS": ["XX9"]})).1["result"],
            json!([])
        );
        assert_eq!(
            p.call(
                "sonet_group.feature.access",
                &json!({"GROUP_ID": 77, "FEATURE": "chat", "OPERATION": "view"})
            )
            .1["error_description"],
            "Wrong operation"
        );
    }

    #[test]
    fn method_get_matches_lowercase_names_only() {
        let mut p = Portal::default();
        let get = |p: &mut Portal, name: &str| {
            p.call("method.get", &json!({"name": name})).1["result"].clone()
        };
        assert_eq!(
            get(&mut p, "landing.site.getrights"),
            json!({"isExisting": true, "isAvailable": true})
        );
        assert_eq!(
            get(&mut p, "landing.site.getRights"),
            json!({"isExisting": false, "isAvailable": false})
        );
        assert_eq!(
            get(&mut p, "crm.deal.list"),
            json!({"isExisting": false, "isAvailable": false})
        );
    }

    #[test]
    fn landing_follows_the_second_audit() {
        let mut p = Portal::default();
        // (1) A role holding only the default answers a list; others an object.
        assert_eq!(
            p.call("landing.role.getRights", &json!({"id": 3})).1["result"],
            json!([["read", "edit", "sett", "public", "delete"]])
        );
        assert_eq!(
            p.call("landing.role.getRights", &json!({"id": 2})).1["result"],
            json!({"0": ["read", "edit"], "645": ["read"]})
        );
        // (8) A role that does not exist, or of another section.
        for args in [
            json!({"id": 99}),
            json!({"id": 13}),
            json!({"id": 3, "scope": "KNOWLEDGE"}),
        ] {
            assert_eq!(
                p.call("landing.role.getRights", &args).1["error"],
                "ROLE_SCOPE_MISMATCH",
                "{args}"
            );
        }
        assert_eq!(
            p.call(
                "landing.role.setRights",
                &json!({"id": 99, "rights": {"0": ["read"]}})
            )
            .1["error"],
            "ROLE_SCOPE_MISMATCH"
        );
        assert_eq!(
            p.call(
                "landing.role.setAccessCodes",
                &json!({"id": 99, "codes": []})
            )
            .1["error"],
            "ROLE_SCOPE_MISMATCH"
        );
        // (2) A knowledge base is invisible without scope.
        assert_eq!(
            p.call("landing.site.getRights", &json!({"id": 700})).1["result"],
            json!([])
        );
        assert_eq!(
            p.call(
                "landing.site.getRights",
                &json!({"id": 700, "scope": "KNOWLEDGE"})
            )
            .1["result"],
            json!(["read", "edit"])
        );
        assert_eq!(
            p.call("landing.site.setRights", &json!({"id": 700, "rights": {}}))
                .1["result"],
            false
        );
        // (4) Extras of another section are dropped silently.
        p.call(
            "landing.role.setRights",
            &json!({"id": 13, "scope": "KNOWLEDGE", "rights": {"0": ["read"]}, "additional": ["knowledge_create", "create"]}),
        );
        assert_eq!(p.roles[&13].additional, ["knowledge_create"]);
        // (10) With scope only an administrator may switch the model.
        assert_eq!(
            p.call("landing.role.enable", &json!({"mode": 1, "scope": "GROUP"}))
                .1["error"],
            "IS_NOT_ADMIN"
        );
        // (3) access.name names neither UA nor a bare SG<id>.
        assert_eq!(
            p.call("access.name", &json!({"ACCESS": ["UA", "SG77", "SG77_K"]}))
                .1["result"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["SG77_K"]
        );
        // (5) A positive GROUP_ID of no group answers false.
        assert_eq!(
            p.call(
                "sonet_group.feature.access",
                &json!({"GROUP_ID": 999999, "FEATURE": "blog", "OPERATION": "write_post"})
            )
            .1["result"],
            false
        );
        // (12) Mixed-case names are matched exactly.
        assert_eq!(
            p.call("method.get", &json!({"name": "tasks.flow.Flow.get"}))
                .1["result"]["isExisting"],
            true
        );
    }

    #[test]
    fn batch_reads_php_queries() {
        assert_eq!(
            php_params("taskId=8017&users%5B0%5D=503&users%5B1%5D=7"),
            json!({"taskId": "8017", "users": ["503", "7"]})
        );
        assert_eq!(
            php_params("r%5BAU%5D%5B0%5D=read"),
            json!({"r": {"AU": ["read"]}})
        );
        let mut p = Portal::default();
        let (_, a) = p.call("batch", &json!({"halt": 0, "cmd": {"a": "tasks.task.getaccess?taskId=8017&users%5B0%5D=503", "b": "tasks.task.getaccess?taskId=x"}}));
        assert_eq!(
            a["result"]["result"]["a"]["allowedActions"]["503"]["COMPLETE"],
            true
        );
        assert_eq!(
            a["result"]["result_error"]["b"]["error_description"],
            "wrong task id"
        );
    }
}
