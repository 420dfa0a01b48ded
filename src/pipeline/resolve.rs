//! `resolve_access_codes`: who an access code stands for. Each code is parsed once, the reads
//! it needs are collected, and they go out as Bitrix24 `batch` requests in two rounds (the
//! department tree and group memberships first, then the users they name), through the same
//! batch sender and limiter as the `batch` tool.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use serde_json::{Map, Value, json};

use super::{Outcome, Pipeline, batch};
use crate::{bitrix::limits::Progress, catalog::Entry};

/// A read's answer, or the failure text the model will see.
pub type Read<T> = Result<T, String>;

/// user.get answers at most this many users a page.
const PAGE: usize = 50;

/// The company structure (REST 3.0) cannot go into a classic batch: each node is one request.
/// Beyond this many departments the batched user.get read is cheaper.
const MAX_NODE_READS: usize = 10;
/// humanresources.node.list's largest page, and how many pages of the tree are read at most.
const NODE_PAGE: usize = 200;
const MAX_NODE_PAGES: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Code {
    /// U<id>; `with_heads` for IU<id>, which also covers the user's supervisors.
    User {
        id: String,
        with_heads: bool,
    },
    Department {
        id: String,
        tree: bool,
    },
    /// SG<id>_<role>: A owner, E owner and moderators, K every member.
    Group {
        id: String,
        role: char,
    },
    /// REST lists nobody for these; `why` says what they mean.
    NamesOnly {
        why: &'static str,
    },
}

fn parse(code: &str) -> Code {
    let digits = |rest: &str| {
        (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then(|| rest.to_owned())
    };
    if let Some(rest) = code.strip_prefix("SG") {
        let (id, role) = rest.split_once('_').unwrap_or((rest, "K"));
        if let (Some(id), Some(role @ ('A' | 'E' | 'K'))) = (digits(id), role.chars().next()) {
            return Code::Group { id, role };
        }
    }
    if let Some(id) = code.strip_prefix("IU").and_then(digits) {
        return Code::User {
            id,
            with_heads: true,
        };
    }
    if let Some(id) = code.strip_prefix('U').and_then(digits) {
        return Code::User {
            id,
            with_heads: false,
        };
    }
    if let Some(id) = code.strip_prefix("DR").and_then(digits) {
        return Code::Department { id, tree: true };
    }
    if let Some(id) = code.strip_prefix('D').and_then(digits) {
        return Code::Department { id, tree: false };
    }
    Code::NamesOnly {
        why: match code {
            "AU" => {
                "every authorized user of the portal; REST has no list of them (user_get lists the users you may see)"
            }
            "UA" => "all users; REST has no list of them",
            "CR" => "the author of each object: who that is depends on the object",
            c if c.starts_with('G') => {
                "a user group (G1 administrators, G2 everyone); REST cannot list a user group's members"
            }
            _ => "not a code this tool can expand",
        },
    }
}

/// A user as user.get answers them: id, display name, departments.
fn user_of(v: &Value) -> (String, String, Vec<String>) {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let name = format!("{} {}", text(&v["NAME"]), text(&v["LAST_NAME"]))
        .trim()
        .to_owned();
    let departments = match &v["UF_DEPARTMENT"] {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    };
    (text(&v["ID"]), name, departments)
}

/// The reads of one round, answered item by item: `Ok(result)` or `Err(the failure text)`.
struct Round<'p> {
    pipeline: &'p Pipeline,
    items: Vec<(&'p Entry, Value)>,
}

impl<'p> Round<'p> {
    fn new(pipeline: &'p Pipeline) -> Self {
        Self {
            pipeline,
            items: Vec::new(),
        }
    }

    /// Queues a read of `method` and says where its answer will be.
    fn add(&mut self, method: &str, args: Value) -> usize {
        let entry = self
            .pipeline
            .catalog
            .by_method(method)
            .expect("resolve_access_codes reads catalog methods only");
        self.push(entry.as_ref(), args)
    }

    fn push(&mut self, entry: &'p Entry, args: Value) -> usize {
        self.items.push((entry, args));
        self.items.len() - 1
    }

    async fn send(self, deadline: Instant, progress: &dyn Progress) -> (Vec<Read<Value>>, u64) {
        if self.items.is_empty() {
            return (Vec::new(), 0);
        }
        let batch_spec = &self
            .pipeline
            .catalog
            .by_method("batch")
            .expect("the batch tool is in the catalog")
            .spec;
        let checked = self.items.into_iter().map(Ok).collect();
        let answer = batch::run(
            &self.pipeline.gateway,
            batch_spec,
            checked,
            &[],
            deadline,
            progress,
        )
        .await;
        let requests = answer["requests"].as_u64().unwrap_or_default();
        let items = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                if item["ok"] == true {
                    Ok(item["result"].clone())
                } else {
                    Err(item["error"].as_str().unwrap_or_default().to_owned())
                }
            })
            .collect();
        (items, requests)
    }
}

/// The departments each D/DR code covers: the code's own and, for DR, every one below it.
fn covered_by(id: &str, tree: bool, parents: &[(String, Option<String>)]) -> Vec<String> {
    let mut out = vec![id.to_owned()];
    if tree {
        let mut i = 0;
        while i < out.len() {
            let parent = out[i].clone();
            for (child, of) in parents {
                if of.as_deref() == Some(parent.as_str()) && !out.contains(child) {
                    out.push(child.clone());
                }
            }
            i += 1;
        }
    }
    out
}

/// One REST 3.0 read for the company structure, or `None` when it fails for any reason (no
/// such method on the portal, no `humanresources` scope, no right to view departments): the
/// caller then expands departments the classic way.
async fn structure_read(
    p: &Pipeline,
    method: &str,
    params: Value,
    deadline: Instant,
    progress: &dyn Progress,
) -> Option<Value> {
    let spec = &p.catalog.by_method(method)?.spec;
    match p
        .gateway
        .call(method, spec.api, &params, false, deadline, progress)
        .await
    {
        Ok(success) => Some(success.result),
        Err(err) => {
            tracing::info!(%method, error = %err, "company structure unavailable; using user.get");
            None
        }
    }
}

/// D and D​R codes expanded through the company structure (humanresources.node.list for the
/// tree, humanresources.node.get for each department's members with their roles), which is
/// what D codes are made of. `None` when the structure cannot be read or the departments are
/// too many; then nothing of this is used.
/// `requests` counts every request sent, answered or not.
async fn departments_via_structure(
    p: &Pipeline,
    codes: &[(String, Code)],
    requests: &mut u64,
    deadline: Instant,
    progress: &dyn Progress,
) -> Option<Map<String, Value>> {
    let departments: Vec<(&String, &String, bool)> = codes
        .iter()
        .filter_map(|(code, c)| match c {
            Code::Department { id, tree } => Some((code, id, *tree)),
            _ => None,
        })
        .collect();
    if departments.is_empty() {
        return None;
    }
    let mut parents: Vec<(String, Option<String>)> = Vec::new();
    if departments.iter().any(|(_, _, tree)| *tree) {
        for page in 1..=MAX_NODE_PAGES {
            let params = json!({"type": "DEPARTMENT", "select": ["id", "parentId"],
                                "pagination": {"page": page, "limit": NODE_PAGE}});
            *requests += 1;
            let answer =
                structure_read(p, "humanresources.node.list", params, deadline, progress).await?;
            let items = answer["items"].as_array()?;
            parents.extend(items.iter().map(|n| {
                let id = n["id"].as_u64().map(|i| i.to_string()).unwrap_or_default();
                (id, n["parentId"].as_u64().map(|i| i.to_string()))
            }));
            if items.len() < NODE_PAGE {
                break;
            }
            if page == MAX_NODE_PAGES {
                return None;
            }
        }
    }
    let covered: BTreeMap<&String, Vec<String>> = departments
        .iter()
        .map(|(code, id, tree)| (*code, covered_by(id, *tree, &parents)))
        .collect();
    let nodes: BTreeSet<&String> = covered.values().flatten().collect();
    if nodes.len() > MAX_NODE_READS {
        return None;
    }
    let mut members: BTreeMap<&String, Vec<Value>> = BTreeMap::new();
    for node in nodes {
        let id: u64 = node.parse().ok()?;
        let params = json!({"id": id, "select": ["id", "members"]});
        *requests += 1;
        let answer =
            structure_read(p, "humanresources.node.get", params, deadline, progress).await?;
        let people = answer["item"]["members"]
            .as_array()?
            .iter()
            .map(|m| {
                let mut user = json!({
                    "id": m["userId"].as_u64().map(|u| u.to_string()).unwrap_or_default(),
                    "department": node,
                });
                for (from, to) in [("name", "name"), ("role", "role")] {
                    if let Some(text) = m[from].as_str() {
                        user[to] = json!(text);
                    }
                }
                user
            })
            .collect();
        members.insert(node, people);
    }
    let parts = departments
        .iter()
        .map(|(code, _, tree)| {
            let ids = &covered[code];
            let users: Vec<Value> = ids
                .iter()
                .flat_map(|id| members.get(id).into_iter().flatten().cloned())
                .collect();
            let kind = if *tree {
                "department_tree"
            } else {
                "department"
            };
            let mut part = json!({"kind": kind, "complete": true, "users": users});
            if *tree {
                part["departments"] = json!(ids);
            }
            ((*code).clone(), part)
        })
        .collect();
    Some(parts)
}

pub async fn run(
    p: &Pipeline,
    args: &Value,
    deadline: Instant,
    progress: &dyn Progress,
) -> Outcome {
    let codes: Vec<String> = args["codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    let options = Options {
        structure: true,
        first_round: Vec::new(),
    };
    let resolved = resolve(p, &codes, options, deadline, progress).await;
    Ok(json!({ "result": resolved.codes, "requests": resolved.requests }))
}

/// How a caller inside the pipeline wants codes resolved.
pub struct Options<'p> {
    /// D and DR through the company structure first (one unbatched request per department,
    /// for the members' roles); without it they go straight to the batched classic reads.
    pub structure: bool,
    /// Reads of the caller's own that need nothing resolved first: they ride in the first
    /// batched round, so they cost no request of their own.
    pub first_round: Vec<(&'p Entry, Value)>,
}

/// The codes resolved (each as `resolve_access_codes` answers it), the answers to the
/// caller's own first-round reads in their order, and the requests sent.
pub struct Resolved {
    pub codes: Map<String, Value>,
    pub first_round: Vec<Read<Value>>,
    pub requests: u64,
}

/// Resolves `codes` in as few batched rounds as their reads allow.
pub async fn resolve(
    p: &Pipeline,
    codes: &[String],
    options: Options<'_>,
    deadline: Instant,
    progress: &dyn Progress,
) -> Resolved {
    let mut parsed: Vec<(String, Code)> = codes.iter().map(|c| (c.clone(), parse(c))).collect();

    // Departments first through the company structure, where the portal offers it; the
    // codes it answers leave the classic rounds below.
    let mut requests = 0;
    let from_structure = if options.structure {
        departments_via_structure(p, &parsed, &mut requests, deadline, progress)
            .await
            .unwrap_or_default()
    } else {
        Map::new()
    };
    parsed.retain(|(code, _)| !from_structure.contains_key(code));

    // Round 1: the caller's reads, names, the department tree, group members.
    let mut first = Round::new(p);
    let extra_at: Vec<usize> = options
        .first_round
        .into_iter()
        .map(|(entry, args)| first.push(entry, args))
        .collect();
    let names_at =
        (!codes.is_empty()).then(|| first.add("access.name", json!({ "ACCESS": codes })));
    let wants_tree = parsed
        .iter()
        .any(|(_, c)| matches!(c, Code::Department { tree: true, .. }));
    let tree_at = wants_tree.then(|| first.add("department.get", json!({})));
    let groups: BTreeSet<&str> = parsed
        .iter()
        .filter_map(|(_, c)| match c {
            Code::Group { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let group_at: BTreeMap<&str, usize> = groups
        .iter()
        .map(|id| (*id, first.add("sonet_group.user.get", json!({ "ID": id }))))
        .collect();
    let (answers, sent) = first.send(deadline, progress).await;
    requests += sent;
    let first_round = extra_at.iter().map(|at| answers[*at].clone()).collect();

    let names = names_at
        .and_then(|at| answers[at].clone().ok())
        .unwrap_or_default();
    let tree_list: Read<Vec<(String, Option<String>)>> = match tree_at {
        None => Ok(Vec::new()),
        Some(at) => answers[at].clone().map(|list| {
            list.as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let text = |v: &Value| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    };
                    (text(&d["ID"]).unwrap_or_default(), text(&d["PARENT"]))
                })
                .collect()
        }),
    };
    let tree_cut = tree_list.as_ref().is_ok_and(|t| t.len() >= PAGE);
    let members: BTreeMap<&str, Read<Vec<(String, String)>>> = group_at
        .iter()
        .map(|(id, at)| {
            let list = answers[*at].clone().map(|list| {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let field = |k: &str| match &m[k] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (field("USER_ID"), field("ROLE"))
                    })
                    .collect()
            });
            (*id, list)
        })
        .collect();

    // Which departments each D/DR code covers.
    let covered = |id: &str, with_tree: bool| -> Vec<String> {
        match &tree_list {
            Ok(tree) => covered_by(id, with_tree, tree),
            Err(_) => vec![id.to_owned()],
        }
    };

    // Round 2: the users behind U codes and group members, and the departments' members.
    let mut user_ids: BTreeSet<String> = BTreeSet::new();
    let mut departments: BTreeSet<String> = BTreeSet::new();
    for (_, code) in &parsed {
        match code {
            Code::User { id, .. } => {
                user_ids.insert(id.clone());
            }
            Code::Group { id, .. } => {
                if let Some(Ok(list)) = members.get(id.as_str()) {
                    user_ids.extend(list.iter().map(|(u, _)| u.clone()));
                }
            }
            Code::Department { id, tree } => departments.extend(covered(id, *tree)),
            Code::NamesOnly { .. } => {}
        }
    }
    let mut second = Round::new(p);
    let ids: Vec<String> = user_ids.iter().cloned().collect();
    let by_id_at: Vec<usize> = ids
        .chunks(PAGE)
        .map(|chunk| second.add("user.get", json!({ "FILTER": { "@ID": chunk } })))
        .collect();
    let dept_list: Vec<String> = departments.iter().cloned().collect();
    let dept_at = (!dept_list.is_empty()).then(|| {
        second.add(
            "user.get",
            json!({ "FILTER": { "UF_DEPARTMENT": dept_list, "ACTIVE": "Y" } }),
        )
    });
    let (answers, more) = second.send(deadline, progress).await;
    requests += more;

    let mut people: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut users_failed: Option<String> = None;
    for at in &by_id_at {
        match &answers[*at] {
            Ok(list) => {
                for u in list.as_array().into_iter().flatten() {
                    let (id, name, deps) = user_of(u);
                    people.insert(id, (name, deps));
                }
            }
            Err(text) => users_failed = Some(text.clone()),
        }
    }
    let dept_members: Read<Vec<(String, String, Vec<String>)>> = match dept_at {
        None => Ok(Vec::new()),
        Some(at) => answers[at]
            .clone()
            .map(|list| list.as_array().into_iter().flatten().map(user_of).collect()),
    };
    let dept_cut = dept_members.as_ref().is_ok_and(|m| m.len() >= PAGE);

    let person = |id: &str| -> Value {
        let mut v = json!({ "id": id });
        if let Some((name, _)) = people.get(id) {
            v["name"] = json!(name);
        }
        v
    };
    let mut result = Map::new();
    for (code, part) in from_structure {
        result.insert(code, part);
    }
    for (code, parsed_code) in &parsed {
        let part = match parsed_code {
            Code::User { id, with_heads } => {
                let found = people.contains_key(id);
                let users: Vec<Value> = if found { vec![person(id)] } else { Vec::new() };
                let mut part =
                    json!({"kind": "user", "complete": found && !with_heads, "users": users});
                if let Some(text) = &users_failed {
                    part["note"] = json!(format!("The user could not be read: {text}"));
                } else if !found {
                    part["note"] = json!(
                        "user_get does not list this user: no such user, or one the webhook's user may not see (or a bot, e-mail or extranet account)."
                    );
                } else if *with_heads {
                    part["note"] = json!(
                        "IU also covers the user's supervisors (heads of their departments), which are not listed here."
                    );
                }
                part
            }
            Code::Department { id, tree } => {
                let ids = covered(id, *tree);
                let kind = if *tree {
                    "department_tree"
                } else {
                    "department"
                };
                let failed = dept_members
                    .as_ref()
                    .err()
                    .or_else(|| tree_list.as_ref().err().filter(|_| *tree));
                let all = dept_members.as_ref().map_or(&[][..], Vec::as_slice);
                match failed {
                    Some(text) => json!({
                        "kind": kind, "complete": false, "users": [],
                        "note": format!("The department could not be read: {text}")
                    }),
                    None => {
                        let users: Vec<Value> = all
                            .iter()
                            .filter(|(_, _, deps)| deps.iter().any(|d| ids.contains(d)))
                            .map(|(uid, name, deps)| {
                                let dep = deps
                                    .iter()
                                    .find(|d| ids.contains(d))
                                    .cloned()
                                    .unwrap_or_default();
                                json!({"id": uid, "name": name, "department": dep})
                            })
                            .collect();
                        let cut = dept_cut || (*tree && tree_cut);
                        let mut part = json!({"kind": kind, "complete": !cut, "users": users});
                        if *tree {
                            part["departments"] = json!(ids);
                        }
                        if cut {
                            part["note"] = json!(
                                "More than 50 people or departments: only the first page was read. List the rest with user_get (FILTER UF_DEPARTMENT, start 50)."
                            );
                        }
                        part
                    }
                }
            }
            Code::Group { id, role } => match members.get(id.as_str()) {
                Some(Ok(list)) => {
                    let holds = |r: &str| match role {
                        'A' => r == "A",
                        'E' => r == "A" || r == "E",
                        _ => true,
                    };
                    let users: Vec<Value> = list
                        .iter()
                        .filter(|(_, r)| holds(r))
                        .map(|(u, r)| {
                            let mut v = person(u);
                            v["role"] = json!(r);
                            v
                        })
                        .collect();
                    json!({"kind": "group_members", "complete": true, "users": users})
                }
                Some(Err(text)) => json!({
                    "kind": "group_members", "complete": false, "users": [],
                    "note": format!("The group's members could not be read: {text}")
                }),
                None => json!({"kind": "group_members", "complete": false, "users": []}),
            },
            Code::NamesOnly { why } => {
                json!({"kind": "names_only", "complete": false, "note": why})
            }
        };
        result.insert(code.clone(), part);
    }
    for (code, part) in result.iter_mut() {
        if let Some(name) = names.get(code).and_then(|n| n["name"].as_str()) {
            part["name"] = json!(name);
        }
    }
    Resolved {
        codes: result,
        first_round,
        requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_by_prefix() {
        assert_eq!(
            parse("U7"),
            Code::User {
                id: "7".into(),
                with_heads: false
            }
        );
        assert_eq!(
            parse("DR1"),
            Code::Department {
                id: "1".into(),
                tree: true
            }
        );
        assert_eq!(
            parse("D12"),
            Code::Department {
                id: "12".into(),
                tree: false
            }
        );
        assert_eq!(
            parse("SG77_E"),
            Code::Group {
                id: "77".into(),
                role: 'E'
            }
        );
        assert_eq!(
            parse("SG77"),
            Code::Group {
                id: "77".into(),
                role: 'K'
            }
        );
        assert!(matches!(parse("G1"), Code::NamesOnly { .. }));
        assert!(matches!(parse("AU"), Code::NamesOnly { .. }));
    }
}
