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
use crate::{
    bitrix::{
        limits::Progress,
        methods::{
            access_name, departments, group_members, structure,
            user_get::{self, User},
        },
    },
    catalog::Entry,
};

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
            .by_method(crate::bitrix::methods::batch::METHOD)
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
    let parents = if departments.iter().any(|(_, _, tree)| *tree) {
        structure_tree(p, requests, deadline, progress).await?
    } else {
        Vec::new()
    };
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
        *requests += 1;
        let answer =
            structure_read(p, structure::GET, structure::node(id), deadline, progress).await?;
        members.insert(node, structure::members(&answer, node)?);
    }
    let parts = departments
        .iter()
        .map(|(code, _, tree)| {
            let ids = &covered[code];
            let users: Vec<Value> = ids
                .iter()
                .flat_map(|id| members.get(id).into_iter().flatten().cloned())
                .collect();
            let mut part =
                json!({"kind": department_kind(*tree), "complete": true, "users": users});
            if *tree {
                part["departments"] = json!(ids);
            }
            ((*code).clone(), part)
        })
        .collect();
    Some(parts)
}

/// The company structure's department tree as (department, parent), or `None` when it cannot
/// be read whole within [`MAX_NODE_PAGES`].
async fn structure_tree(
    p: &Pipeline,
    requests: &mut u64,
    deadline: Instant,
    progress: &dyn Progress,
) -> Option<Vec<(String, Option<String>)>> {
    let mut parents = Vec::new();
    for page in 1..=MAX_NODE_PAGES {
        *requests += 1;
        let params = structure::list_page(page, NODE_PAGE);
        let answer = structure_read(p, structure::LIST, params, deadline, progress).await?;
        let listed = structure::parents(&answer)?;
        let last = listed.len() < NODE_PAGE;
        parents.extend(listed);
        if last {
            break;
        }
        if page == MAX_NODE_PAGES {
            return None;
        }
    }
    Some(parents)
}

fn department_kind(tree: bool) -> &'static str {
    if tree {
        "department_tree"
    } else {
        "department"
    }
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

    let first = FirstRound::read(p, codes, &parsed, options.first_round, deadline, progress).await;
    requests += first.requests;
    let second = People::read(p, &parsed, &first, deadline, progress).await;
    requests += second.requests;

    let mut result = from_structure;
    for (code, parsed_code) in &parsed {
        let part = match parsed_code {
            Code::User { id, with_heads } => second.user_part(id, *with_heads),
            Code::Department { id, tree } => second.department_part(&first, id, *tree),
            Code::Group { id, role } => first.group_part(&second, id, *role),
            Code::NamesOnly { why } => {
                json!({"kind": "names_only", "complete": false, "note": why})
            }
        };
        result.insert(code.clone(), part);
    }
    for (code, part) in result.iter_mut() {
        if let Some(name) = access_name::name_of(&first.names, code) {
            part["name"] = json!(name);
        }
    }
    Resolved {
        codes: result,
        first_round: first.extra,
        requests,
    }
}

/// Round 1: the caller's reads, names, the department tree, group members.
struct FirstRound {
    /// The caller's own reads' answers, in their order.
    extra: Vec<Read<Value>>,
    names: Map<String, Value>,
    tree: Read<Vec<(String, Option<String>)>>,
    /// Whether the tree is only its first page.
    tree_cut: bool,
    /// Each workgroup's (member, role).
    members: BTreeMap<String, Read<Vec<(String, String)>>>,
    requests: u64,
}

impl FirstRound {
    async fn read(
        p: &Pipeline,
        codes: &[String],
        parsed: &[(String, Code)],
        extra: Vec<(&Entry, Value)>,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Self {
        let mut first = Round::new(p);
        let extra_at: Vec<usize> = extra
            .into_iter()
            .map(|(entry, args)| first.push(entry, args))
            .collect();
        let names_at = (!codes.is_empty())
            .then(|| first.add(access_name::METHOD, access_name::request(codes)));
        let wants_tree = parsed
            .iter()
            .any(|(_, c)| matches!(c, Code::Department { tree: true, .. }));
        let tree_at = wants_tree.then(|| first.add(departments::METHOD, departments::request()));
        let groups: BTreeSet<&str> = parsed
            .iter()
            .filter_map(|(_, c)| match c {
                Code::Group { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let group_at: BTreeMap<&str, usize> = groups
            .iter()
            .map(|id| {
                (
                    *id,
                    first.add(group_members::METHOD, group_members::request(id)),
                )
            })
            .collect();
        let (answers, requests) = first.send(deadline, progress).await;
        let tree = match tree_at {
            None => Ok(Vec::new()),
            Some(at) => answers[at]
                .as_ref()
                .map(departments::parents)
                .map_err(Clone::clone),
        };
        let members = group_at
            .iter()
            .map(|(id, at)| {
                let list = answers[*at].as_ref().map(group_members::members);
                ((*id).to_owned(), list.map_err(Clone::clone))
            })
            .collect();
        Self {
            extra: extra_at.iter().map(|at| answers[*at].clone()).collect(),
            names: names_at
                .and_then(|at| answers[at].clone().ok())
                .and_then(|v| match v {
                    Value::Object(map) => Some(map),
                    _ => None,
                })
                .unwrap_or_default(),
            tree_cut: tree.as_ref().is_ok_and(|t| t.len() >= PAGE),
            tree,
            members,
            requests,
        }
    }

    /// The departments a D/DR code covers.
    fn covered(&self, id: &str, with_tree: bool) -> Vec<String> {
        match &self.tree {
            Ok(tree) => covered_by(id, with_tree, tree),
            Err(_) => vec![id.to_owned()],
        }
    }

    fn group_part(&self, people: &People, id: &str, role: char) -> Value {
        match self.members.get(id) {
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
                        let mut v = people.person(u);
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
        }
    }
}

/// Round 2: the users behind U codes and group members, and the departments' members.
struct People {
    /// id → (name, departments) of every user read by id.
    by_id: BTreeMap<String, (String, Vec<String>)>,
    by_id_failed: Option<String>,
    in_departments: Read<Vec<User>>,
    /// Whether the departments' members are only their first page.
    departments_cut: bool,
    requests: u64,
}

impl People {
    async fn read(
        p: &Pipeline,
        parsed: &[(String, Code)],
        first: &FirstRound,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> Self {
        let mut user_ids: BTreeSet<String> = BTreeSet::new();
        let mut departments: BTreeSet<String> = BTreeSet::new();
        for (_, code) in parsed {
            match code {
                Code::User { id, .. } => {
                    user_ids.insert(id.clone());
                }
                Code::Group { id, .. } => {
                    if let Some(Ok(list)) = first.members.get(id.as_str()) {
                        user_ids.extend(list.iter().map(|(u, _)| u.clone()));
                    }
                }
                Code::Department { id, tree } => departments.extend(first.covered(id, *tree)),
                Code::NamesOnly { .. } => {}
            }
        }
        let mut second = Round::new(p);
        let ids: Vec<String> = user_ids.into_iter().collect();
        let by_id_at: Vec<usize> = ids
            .chunks(PAGE)
            .map(|chunk| second.add(user_get::METHOD, user_get::by_ids(chunk)))
            .collect();
        let dept_list: Vec<String> = departments.into_iter().collect();
        let dept_at = (!dept_list.is_empty())
            .then(|| second.add(user_get::METHOD, user_get::in_departments(&dept_list)));
        let (answers, requests) = second.send(deadline, progress).await;

        let mut by_id = BTreeMap::new();
        let mut by_id_failed = None;
        for at in &by_id_at {
            match &answers[*at] {
                Ok(list) => by_id.extend(
                    user_get::users(list)
                        .into_iter()
                        .map(|u| (u.id, (u.name, u.departments))),
                ),
                Err(text) => by_id_failed = Some(text.clone()),
            }
        }
        let in_departments = match dept_at {
            None => Ok(Vec::new()),
            Some(at) => answers[at]
                .as_ref()
                .map(user_get::users)
                .map_err(Clone::clone),
        };
        Self {
            departments_cut: in_departments.as_ref().is_ok_and(|m| m.len() >= PAGE),
            by_id,
            by_id_failed,
            in_departments,
            requests,
        }
    }

    fn person(&self, id: &str) -> Value {
        let mut v = json!({ "id": id });
        if let Some((name, _)) = self.by_id.get(id) {
            v["name"] = json!(name);
        }
        v
    }

    fn user_part(&self, id: &str, with_heads: bool) -> Value {
        let found = self.by_id.contains_key(id);
        let users: Vec<Value> = if found {
            vec![self.person(id)]
        } else {
            Vec::new()
        };
        let mut part = json!({"kind": "user", "complete": found && !with_heads, "users": users});
        if let Some(text) = &self.by_id_failed {
            part["note"] = json!(format!("The user could not be read: {text}"));
        } else if !found {
            part["note"] = json!(
                "user_get does not list this user: no such user, or one the webhook's user may not see (or a bot, e-mail or extranet account)."
            );
        } else if with_heads {
            part["note"] = json!(
                "IU also covers the user's supervisors (heads of their departments), which are not listed here."
            );
        }
        part
    }

    fn department_part(&self, first: &FirstRound, id: &str, tree: bool) -> Value {
        let ids = first.covered(id, tree);
        let kind = department_kind(tree);
        let failed = self
            .in_departments
            .as_ref()
            .err()
            .or_else(|| first.tree.as_ref().err().filter(|_| tree));
        if let Some(text) = failed {
            return json!({
                "kind": kind, "complete": false, "users": [],
                "note": format!("The department could not be read: {text}")
            });
        }
        let all = self.in_departments.as_ref().map_or(&[][..], Vec::as_slice);
        let users: Vec<Value> = all
            .iter()
            .filter_map(|u| {
                let dep = u.departments.iter().find(|d| ids.contains(d))?;
                Some(json!({"id": u.id, "name": u.name, "department": dep}))
            })
            .collect();
        let cut = self.departments_cut || (tree && first.tree_cut);
        let mut part = json!({"kind": kind, "complete": !cut, "users": users});
        if tree {
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
