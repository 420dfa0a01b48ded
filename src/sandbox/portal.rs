//! The sandbox's Bitrix24: a small company with users, workgroups, sites and tasks, answering
//! every catalog method the way the documentation says a real portal does, quirks included.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use serde_json::{Map, Value, json};

use crate::{bitrix::Api, catalog::Catalog};

mod directory;
pub(crate) mod large;
mod membership;
mod structure;

pub use large::Size;

/// The user the sandbox webhook acts as.
pub const ME: u64 = 7;

/// Who can sign in to the sandbox through its OAuth stand-in: an administrator, the webhook's
/// user and a colleague with fewer rights, so the same question gets different answers.
pub const PEOPLE: [u64; 3] = [1, ME, 503];

/// Offered on the sign-in page too, but the sandbox's application is not open to her.
pub const SHUT_OUT: u64 = 547;

const SITE_OPS: [&str; 6] = ["denied", "read", "edit", "sett", "public", "delete"];
const TASK_ACTIONS: [&str; 25] = [
    "ACCEPT",
    "DECLINE",
    "COMPLETE",
    "APPROVE",
    "DISAPPROVE",
    "START",
    "PAUSE",
    "DELEGATE",
    "REMOVE",
    "EDIT",
    "DEFER",
    "RENEW",
    "CREATE",
    "CHANGE_DEADLINE",
    "CHECKLIST_ADD_ITEMS",
    "ADD_FAVORITE",
    "DELETE_FAVORITE",
    "RATE",
    "TAKE",
    "EDIT.ORIGINATOR",
    "ELAPSEDTIME.ADD",
    // The new spellings come back next to the old ones (tasks-task-get-access.md).
    "EDIT.PLAN",
    "CHECKLIST.ADD",
    "FAVORITE.ADD",
    "FAVORITE.DELETE",
];

/// The landing `scope` values; without one, a method sees only sites and stores.
const LANDING_SCOPES: [&str; 3] = ["GROUP", "KNOWLEDGE", "MAINPAGE"];

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

/// The landing `scope` a call names, if it is one the portal knows.
fn landing_scope(p: &Value) -> Option<&str> {
    p["scope"].as_str().filter(|s| LANDING_SCOPES.contains(s))
}

/// A map keyed by site id the way PHP's `json_encode` sends it: keys exactly 0..n-1 make a
/// JSON list (a role with only the default answers `[["read"]]`), an empty map `[]`.
fn php_map(map: &BTreeMap<String, Vec<String>>) -> Value {
    let positional = map.keys().enumerate().all(|(i, k)| *k == i.to_string());
    if positional {
        Value::Array(map.values().map(|ops| json!(ops)).collect())
    } else {
        json!(map)
    }
}

fn role_mismatch() -> Answer {
    err(
        400,
        "ROLE_SCOPE_MISMATCH",
        "The role does not exist or belongs to another section",
    )
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
        let user = |name, last_name, admin, department| User {
            name: Cow::Borrowed(name),
            last_name: Cow::Borrowed(last_name),
            admin,
            department,
        };
        let group = |name, members: &[(u64, char)]| Group {
            name: Cow::Borrowed(name),
            members: members.iter().copied().collect(),
        };
        Self {
            users: BTreeMap::from([
                (1, user("Maria", "Ivanova", true, 1)),
                (ME, user("Ann", "Lee", false, 2)),
                (503, user("Oleg", "Petrov", false, 2)),
                (547, user("Sara", "Kim", false, 3)),
                // The people, departments and groups the docs' own examples name.
                (3, user("Ivan", "Smirnov", false, 7)),
                (45, user("Lena", "Novak", false, 7)),
            ]),
            departments: directory::departments(),
            groups: BTreeMap::from([
                (
                    77,
                    group("Website relaunch", &[(ME, 'K'), (503, 'A'), (547, 'E')]),
                ),
                (79, group("Scrum project", &[(ME, 'A'), (503, 'K')])),
                (12, group("Board", &[(1, 'A')])),
                (3, group("Support desk", &[(45, 'A'), (3, 'K')])),
                (69, group("Partners", &[(3, 'A'), (ME, 'K')])),
                (
                    622,
                    group("Group for Demonstrating the Method", &[(1, 'A'), (ME, 'K')]),
                ),
            ]),
            sites: BTreeMap::from([
                (
                    645,
                    // The company site.
                    Site {
                        scope: None,
                        in_trash: false,
                        rights: rights(&[
                            ("AU", &["read"]),
                            ("U7", &["read", "edit", "sett", "public"]),
                        ]),
                    },
                ),
                (
                    646,
                    // The online store.
                    Site {
                        scope: None,
                        in_trash: false,
                        rights: rights(&[("SG77_K", &["read", "edit"]), ("U547", &["denied"])]),
                    },
                ),
                (
                    700,
                    // The company knowledge base: invisible without scope KNOWLEDGE.
                    Site {
                        scope: Some("KNOWLEDGE"),
                        in_trash: false,
                        rights: rights(&[("AU", &["read"]), ("U7", &["read", "edit"])]),
                    },
                ),
                (
                    650,
                    // An old promo site, in the trash.
                    Site {
                        scope: None,
                        in_trash: true,
                        rights: BTreeMap::new(),
                    },
                ),
            ]),
            default_site_rights: rights(&[("G1", &["read", "edit", "sett", "public", "delete"])]),
            tasks: BTreeMap::from([
                (
                    8017,
                    Task {
                        creator: ME,
                        responsible: 503,
                        visible_to: BTreeSet::from([ME, 503]),
                    },
                ),
                (
                    8020,
                    Task {
                        creator: 1,
                        responsible: 1,
                        visible_to: BTreeSet::from([1]),
                    },
                ),
            ]),
            roles: BTreeMap::from([
                (
                    2,
                    Role {
                        scope: None,
                        title: "Content editors",
                        xml_id: "",
                        rights: rights(&[("0", &["read", "edit"]), ("645", &["read"])]),
                        codes: vec!["DR2".into()],
                        additional: vec!["menu24".into()],
                    },
                ),
                (
                    3,
                    Role {
                        scope: None,
                        title: "Administrator",
                        xml_id: "ADMIN",
                        // Only the default: the portal answers it as a list.
                        rights: rights(&[("0", &["read", "edit", "sett", "public", "delete"])]),
                        codes: vec!["G1".into()],
                        additional: vec!["menu24".into(), "create".into()],
                    },
                ),
                (
                    5,
                    Role {
                        scope: None,
                        title: "Manager",
                        xml_id: "MANAGER",
                        rights: rights(&[("0", &["read"]), ("645", &["read", "edit"])]),
                        codes: vec!["D2".into()],
                        additional: vec![],
                    },
                ),
                (
                    11,
                    Role {
                        scope: None,
                        title: "Support",
                        xml_id: "",
                        rights: BTreeMap::new(),
                        codes: vec![],
                        additional: vec![],
                    },
                ),
                (
                    13,
                    Role {
                        scope: Some("KNOWLEDGE"),
                        title: "Knowledge base editors",
                        xml_id: "",
                        rights: rights(&[("0", &["read"]), ("700", &["read", "edit"])]),
                        codes: vec!["D2".into()],
                        additional: vec!["knowledge_menu24".into()],
                    },
                ),
            ]),
            role_model: false,
            me: ME,
            scopes: vec![
                "calendar",
                "department",
                "disk",
                "documentgenerator",
                "landing",
                "socialnetwork",
                "sonet_group",
                "humanresources",
                "main",
                "task",
                "user",
            ],
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
    /// The role a landing role call names, if it exists in the call's section.
    fn role(&self, p: &Value) -> Option<&Role> {
        int(&p["id"])
            .and_then(|id| self.roles.get(&id))
            .filter(|r| r.scope == landing_scope(p))
    }

    /// The access codes a user holds.
    fn codes_of(&self, user: u64) -> BTreeSet<String> {
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

    fn access_name(&self, code: &str) -> Option<Value> {
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

    /// The rights `user` holds on `site`, the way landing.site.getRights reports them.
    fn site_rights_for(&self, site: &Site, user: u64) -> Vec<String> {
        let held = self.codes_of(user);
        let mut ops = BTreeSet::new();
        for (code, granted) in site.rights.iter().chain(&self.default_site_rights) {
            if held.contains(code) {
                ops.extend(granted.iter().cloned());
            }
        }
        SITE_OPS
            .iter()
            .filter(|op| ops.contains(**op))
            .map(|op| (*op).to_owned())
            .collect()
    }

    /// Applies setRights' documented rules to one code's operations.
    fn clean_ops(ops: &Value) -> Vec<String> {
        let given: BTreeSet<&str> = ops
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|op| SITE_OPS.contains(op)) // unknown operations are dropped silently
            .collect();
        if given.contains("denied") {
            return vec!["denied".into()];
        }
        let mut kept: Vec<String> = SITE_OPS
            .iter()
            .filter(|op| given.contains(**op))
            .map(|op| (*op).to_owned())
            .collect();
        if !kept.iter().any(|op| op == "read") {
            kept.insert(0, "read".into());
        }
        kept
    }

    fn task_actions(&self, task: &Task, user: u64) -> Value {
        let known = self.users.contains_key(&user);
        let admin = self.users.get(&user).is_some_and(|u| u.admin);
        let creator = known && (task.creator == user || admin);
        let responsible = known && task.responsible == user;
        let sees = known && (task.visible_to.contains(&user) || admin);
        let actions: Map<String, Value> = TASK_ACTIONS
            .iter()
            .map(|action| {
                let allowed = match *action {
                    "ACCEPT" | "DECLINE" => false,
                    "EDIT" | "REMOVE" | "CHANGE_DEADLINE" | "DELEGATE" | "EDIT.ORIGINATOR"
                    | "APPROVE" | "DISAPPROVE" => creator,
                    "COMPLETE" | "START" | "PAUSE" | "DEFER" | "RENEW" | "TAKE" => {
                        creator || responsible
                    }
                    "CREATE" => known,
                    _ => sees,
                };
                ((*action).to_owned(), Value::Bool(allowed))
            })
            .collect();
        Value::Object(actions)
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

    /// Answers one classic REST call. `method` is case-insensitive, as on a real portal.
    pub fn call(&mut self, method: &str, p: &Value) -> Answer {
        let method = method.to_ascii_lowercase();
        if self.v3_methods.contains(&method) {
            return err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
        }
        let scope_of = |m: &str| -> Option<&str> {
            self.methods
                .get(m)
                .map(String::as_str)
                .filter(|s| *s != "basic")
        };
        if let Some(scope) = scope_of(&method)
            && !self.scopes.contains(&scope)
        {
            return err(
                403,
                "insufficient_scope",
                "The request requires higher privileges than provided by the webhook token",
            );
        }
        match method.as_str() {
            "scope" => {
                if p["full"].as_bool() == Some(true) || p["full"] == 1 {
                    ok(json!(["calendar", "crm", "department", "disk", "humanresources", "im", "landing", "lists", "main", "sonet_group", "task", "user"]))
                } else {
                    ok(json!(self.scopes))
                }
            }
            "method.get" => {
                let name = p["name"].as_str().unwrap_or_default();
                // Classic names are matched in lowercase only; the mixed-case ones exactly.
                let known = self.methods.contains_key(name);
                let available = known && scope_of(name).is_none_or(|s| self.scopes.contains(&s));
                ok(json!({"isExisting": known, "isAvailable": available}))
            }
            "access.name" => {
                let codes: Vec<&str> = p["ACCESS"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if codes.is_empty() {
                    return ok(json!(false));
                }
                let found: Map<String, Value> = codes
                    .iter()
                    .filter_map(|c| Some(((*c).to_owned(), self.access_name(c)?)))
                    .collect();
                ok(if found.is_empty() { json!([]) } else { Value::Object(found) })
            }
            "user.access" => {
                let held = self.codes_of(self.me);
                let me_admin = self.users[&self.me].admin;
                let any = p["ACCESS"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|c| held.contains(c));
                ok(json!(me_admin || any))
            }
            "user.admin" => ok(json!(self.users[&self.me].admin)),
            "profile" => {
                let me = &self.users[&self.me];
                ok(json!({"ID": self.me.to_string(), "ADMIN": me.admin, "NAME": me.name, "LAST_NAME": me.last_name,
                          "PERSONAL_GENDER": "", "TIME_ZONE": "Europe/Berlin"}))
            }
            "sonet_group.user.groups" => ok(Value::Array(
                self.groups
                    .iter()
                    .filter_map(|(id, g)| {
                        let role = g.members.get(&self.me)?;
                        Some(json!({"GROUP_ID": id.to_string(), "GROUP_NAME": g.name, "ROLE": role.to_string(),
                                    "GROUP_IMAGE_ID": null, "GROUP_IMAGE": ""}))
                    })
                    .collect(),
            )),
            "sonet_group.user.get" => {
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
            "sonet_group.feature.access" => self.feature_access(p),
            "landing.site.getrights" => {
                let Some(id) = int(&p["id"]) else {
                    return err(400, "MISSING_PARAMS", "Not enough call parameters, missing: id");
                };
                match self.sites.get(&id) {
                    Some(site) if !site.in_trash && site.scope == landing_scope(p) => {
                        ok(json!(self.site_rights_for(site, self.me)))
                    }
                    _ => ok(json!([])),
                }
            }
            "landing.site.setrights" => {
                let Some(id) = int(&p["id"]) else {
                    return err(400, "MISSING_PARAMS", "Not enough call parameters, missing: id");
                };
                let new: BTreeMap<String, Vec<String>> = p["rights"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, ops)| (code.clone(), Self::clean_ops(ops)))
                    .collect();
                if self.role_model {
                    // Documented: under the role model the portal answers true and applies nothing.
                    return ok(json!(true));
                }
                if id == 0 {
                    self.default_site_rights = new;
                    return ok(json!(true));
                }
                let scope = landing_scope(p);
                match self.sites.get_mut(&id) {
                    Some(site) if !site.in_trash && site.scope == scope => {
                        site.rights = new;
                        ok(json!(true))
                    }
                    _ => ok(json!(false)),
                }
            }
            "landing.role.isenabled" => ok(json!(self.role_model)),
            "landing.role.enable" => match int(&p["mode"]) {
                // With scope only a portal administrator may switch (landing-role-enable.md).
                Some(_) if landing_scope(p).is_some() && !self.users[&self.me].admin => err(
                    400,
                    "IS_NOT_ADMIN",
                    "To perform this action, you must be an administrator.",
                ),
                Some(mode) => {
                    self.role_model = mode == 1;
                    ok(json!(true))
                }
                None => err(400, "MISSING_PARAMS", "Not enough parameters for the call, missing: mode"),
            },
            "landing.role.getlist" => ok(Value::Array(
                self.roles
                    .iter()
                    .filter(|(_, r)| r.scope == landing_scope(p))
                    .map(|(id, r)| {
                        let xml_id = if r.xml_id.is_empty() { Value::Null } else { json!(r.xml_id) };
                        json!({"ID": id.to_string(), "TITLE": r.title, "XML_ID": xml_id})
                    })
                    .collect(),
            )),
            "landing.role.getrights" => match self.role(p) {
                Some(role) => ok(php_map(&role.rights)),
                None => role_mismatch(),
            },
            "landing.role.setrights" => {
                let Some(id) = int(&p["id"]) else {
                    return err(400, "MISSING_PARAMS", "Not enough parameters for the call, missing: id");
                };
                let Some(given) = p["rights"].as_object() else {
                    return err(400, "MISSING_PARAMS", "Not enough parameters for the call, missing: rights");
                };
                if self.role(p).is_none() {
                    return role_mismatch();
                }
                let kept: BTreeMap<String, Vec<String>> = given
                    .iter()
                    .filter(|(site, _)| *site == "0" || site.parse().is_ok_and(|s: u64| self.sites.contains_key(&s)))
                    .map(|(site, ops)| (site.clone(), Self::clean_ops(ops)))
                    .collect();
                // Extras of another section are not saved, without an error.
                let prefix = match landing_scope(p) {
                    Some("KNOWLEDGE") => "knowledge_",
                    Some("GROUP") => "group_",
                    Some("MAINPAGE") => "vibe_",
                    _ => "",
                };
                let additional: Option<Vec<String>> = p.get("additional").map(|a| {
                    a.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .filter(|code| {
                            code.strip_prefix(prefix)
                                .is_some_and(|rest| ["menu24", "create"].contains(&rest))
                        })
                        .map(str::to_owned)
                        .collect()
                });
                let role = self.roles.get_mut(&id).expect("checked above");
                role.rights = kept;
                if let Some(additional) = additional {
                    role.additional = additional;
                }
                ok(json!(true))
            }
            "landing.role.setaccesscodes" => {
                let Some(id) = int(&p["id"]) else {
                    return err(400, "MISSING_PARAMS", "Not enough call parameters, missing: id");
                };
                if !p["codes"].is_array() && !p["codes"].is_null() {
                    return err(400, "ERROR_ARGUMENT", "codes must be an array");
                }
                if self.role(p).is_none() {
                    return role_mismatch();
                }
                if let Some(role) = self.roles.get_mut(&id) {
                    role.codes = p["codes"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_owned)).collect();
                }
                ok(json!(true))
            }
            "tasks.task.getaccess" => {
                if p["taskId"].is_null() {
                    return err(400, "100", "CTaskItem All parameters in the constructor must have real class type");
                }
                // Code 0 is about the taskId's type; a task that is missing or hidden is no error.
                let Some(task_id) = int(&p["taskId"]) else {
                    return err(400, "0", "wrong task id");
                };
                let Some(task) = self.tasks.get(&task_id).filter(|t| t.visible_to.contains(&self.me) || self.users[&self.me].admin) else {
                    return ok(json!({"allowedActions": []}));
                };
                let users: Vec<u64> = match &p["users"] {
                    Value::Null => vec![self.me],
                    Value::Array(items) => items.iter().filter_map(int).collect(),
                    _ => return err(400, "100", "Invalid value {} to match with parameter {users}. Should be value of type array."),
                };
                let actions: Map<String, Value> =
                    users.iter().map(|u| (u.to_string(), self.task_actions(task, *u))).collect();
                ok(json!({"allowedActions": actions}))
            }
            "batch" => self.batch(p),
            // A catalog method this company does not model answers its catalog example, so a
            // new tool works in the sandbox from its catalog file alone.
            other => match self.directory(other, p).or_else(|| self.membership(other, p)) {
                Some(answer) => answer,
                None => match self.examples.get(other) {
                    Some(answer) => ok(answer.clone()),
                    None => err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
                },
            },
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
