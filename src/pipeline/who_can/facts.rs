//! What is known about one object before the people are put together: the access list (as
//! read, or as last written through this server), rights the portal evaluated for one person,
//! what is unknown and why, and the ledger's evidence. `assemble` turns it, with the codes
//! resolved, into the object's answer: people → rights, each with its source.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// How a person holds the code that grants a right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// U<id> (or IU<id>): the person themself.
    Direct,
    /// D<id>: a member of the department.
    Department,
    /// DR<id>: a member of the department or one below it.
    DepartmentTree,
    /// SG<id>_A/_E/_K: a role in the workgroup.
    WorkgroupRole,
    /// G<id>: a user group.
    UserGroup,
    /// AU: every authorized user.
    AllAuthorized,
    /// UA or `*`: everyone.
    Everyone,
    /// CR: the object's author.
    Author,
    /// The portal evaluated the right for this person and did not say which code grants it.
    PortalCheck,
}

impl Via {
    pub fn of_code(code: &str) -> Self {
        let numbered = |prefix: &str| {
            code.strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        };
        if code.starts_with("SG") {
            Self::WorkgroupRole
        } else if numbered("DR") {
            Self::DepartmentTree
        } else if numbered("D") {
            Self::Department
        } else if numbered("U") || numbered("IU") {
            Self::Direct
        } else if numbered("G") {
            Self::UserGroup
        } else {
            match code {
                "AU" => Self::AllAuthorized,
                "CR" => Self::Author,
                _ => Self::Everyone,
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Department => "department",
            Self::DepartmentTree => "department_tree",
            Self::WorkgroupRole => "workgroup_role",
            Self::UserGroup => "user_group",
            Self::AllAuthorized => "all_authorized",
            Self::Everyone => "everyone",
            Self::Author => "author",
            Self::PortalCheck => "portal_check",
        }
    }
}

/// Where a right is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Read from the portal in this call.
    Portal,
    /// The last set written through this server, from its ledger.
    Ledger,
}

impl Known {
    fn as_str(self) -> &'static str {
        match self {
            Self::Portal => "portal",
            Self::Ledger => "ledger",
        }
    }
}

/// One right one person holds, and its source.
#[derive(Debug, Clone)]
pub struct Right {
    pub right: String,
    /// Where it applies, when not on the whole object ("site 645", "all items").
    pub on: Option<String>,
    pub via: Via,
    pub code: Option<String>,
    pub code_name: Option<String>,
    pub detail: Option<String>,
    pub from: Known,
}

impl Right {
    /// A right the portal evaluated for one person, through `method`.
    pub fn checked(right: &str, detail: &str) -> Self {
        Self {
            right: right.to_owned(),
            on: None,
            via: Via::PortalCheck,
            code: None,
            code_name: None,
            detail: Some(detail.to_owned()),
            from: Known::Portal,
        }
    }

    fn to_json(&self) -> Value {
        let mut v =
            json!({"right": self.right, "via": self.via.as_str(), "from": self.from.as_str()});
        for (key, field) in [
            ("on", &self.on),
            ("code", &self.code),
            ("code_name", &self.code_name),
            ("detail", &self.detail),
        ] {
            if let Some(text) = field {
                v[key] = json!(text);
            }
        }
        v
    }
}

/// An access code's rights on the object: a line of its access list.
#[derive(Debug, Clone)]
pub struct Grant {
    pub code: String,
    pub rights: Vec<String>,
    pub on: Option<String>,
    pub from: Known,
}

/// Someone whose rights are not known, and why.
#[derive(Debug, Clone)]
pub struct Unknown {
    pub who: String,
    pub why: String,
    pub code: Option<String>,
    pub rights: Vec<String>,
}

impl Unknown {
    pub fn new(who: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            who: who.into(),
            why: why.into(),
            code: None,
            rights: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"who": self.who, "why": self.why});
        if let Some(code) = &self.code {
            v["code"] = json!(code);
        }
        if !self.rights.is_empty() {
            v["rights"] = json!(self.rights);
        }
        v
    }

    /// Whether this matters to a question about `action` alone.
    fn concerns(&self, action: Option<&str>) -> bool {
        match action {
            Some(action) if !self.rights.is_empty() => {
                self.rights.iter().any(|r| r.eq_ignore_ascii_case(action))
            }
            _ => true,
        }
    }
}

/// A set written through this server, as the ledger keeps it.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub tool: String,
    pub object: String,
    pub at: String,
    pub set: Value,
}

/// Everything known about one object before its codes are resolved.
#[derive(Debug, Default)]
pub struct ObjectFacts {
    pub id: String,
    pub label: String,
    pub grants: Vec<Grant>,
    /// Rights known person by person (a portal check, a workgroup role).
    pub held: Vec<(String, Right)>,
    /// People's names learned from the object's own reads.
    pub names: BTreeMap<String, String>,
    pub unknown: Vec<Unknown>,
    pub evidence: Vec<Evidence>,
    /// The grants and held rights are the object's whole access list, once resolved.
    pub whole: bool,
    /// A `denied` right overrides the person's other rights from the same source (Sites).
    pub denied_wins: bool,
    pub error: Option<String>,
}

impl ObjectFacts {
    pub fn new(id: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            label: label.into(),
            ..Self::default()
        }
    }

    /// The codes whose holders must be resolved.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.grants.iter().map(|g| g.code.as_str())
    }
}

/// One person's rights on the object, gathered from every source.
#[derive(Default)]
struct Holder {
    name: Option<String>,
    rights: Vec<Right>,
}

/// What a resolved code's holder adds to a right's source: the department that makes them a
/// member, or their role in the workgroup.
fn detail_of(user: &Value, via: Via) -> Option<String> {
    match via {
        Via::Department | Via::DepartmentTree => user["department"]
            .as_str()
            .map(|d| format!("member of department {d}")),
        Via::WorkgroupRole => user["role"].as_str().map(|r| {
            let role = match r {
                "A" => "owner",
                "E" => "moderator",
                "K" => "member",
                other => other,
            };
            format!("{role} of the workgroup")
        }),
        _ => None,
    }
}

/// The object's answer as it is put together, grant by grant.
struct Assembly<'a> {
    resolved: &'a Map<String, Value>,
    action: Option<&'a str>,
    people: BTreeMap<String, Holder>,
    unknown: Vec<Unknown>,
    complete: bool,
    grants: Vec<Value>,
}

impl Assembly<'_> {
    /// Gives the grant's rights to every holder its code was resolved to, and says who it
    /// could not list.
    fn add(&mut self, g: &Grant) {
        let part = self.resolved.get(&g.code);
        let name = part.and_then(|p| p["name"].as_str()).map(str::to_owned);
        let who = match &name {
            Some(name) => format!("{} ({name})", g.code),
            None => g.code.clone(),
        };
        let holders = match part {
            Some(part) if part["kind"] != "names_only" => {
                self.give(g, part, name.as_deref());
                if part["complete"] == true {
                    "listed"
                } else {
                    let why = part["note"]
                        .as_str()
                        .unwrap_or("the list of its holders may be cut short or could not be read");
                    self.not_listed(format!("more holders of {who}"), why, g);
                    "partly_listed"
                }
            }
            _ => {
                let why = part
                    .and_then(|p| p["note"].as_str())
                    .unwrap_or("REST cannot list who holds this code");
                self.not_listed(who, why, g);
                "unlisted"
            }
        };
        if self
            .action
            .is_none_or(|a| g.rights.iter().any(|r| r.eq_ignore_ascii_case(a)))
        {
            let mut line = json!({"code": g.code, "rights": g.rights, "from": g.from.as_str(), "holders": holders});
            if let Some(name) = &name {
                line["name"] = json!(name);
            }
            if let Some(on) = &g.on {
                line["on"] = json!(on);
            }
            self.grants.push(line);
        }
    }

    fn give(&mut self, g: &Grant, part: &Value, name: Option<&str>) {
        let via = Via::of_code(&g.code);
        for user in part["users"].as_array().into_iter().flatten() {
            let Some(id) = user["id"].as_str() else {
                continue;
            };
            let holder = self.people.entry(id.to_owned()).or_default();
            if let Some(n) = user["name"].as_str().filter(|n| !n.is_empty()) {
                holder.name = Some(n.to_owned());
            }
            for right in &g.rights {
                holder.rights.push(Right {
                    right: right.clone(),
                    on: g.on.clone(),
                    via,
                    code: Some(g.code.clone()),
                    code_name: name.map(str::to_owned),
                    detail: detail_of(user, via),
                    from: g.from,
                });
            }
        }
    }

    fn not_listed(&mut self, who: String, why: &str, g: &Grant) {
        self.unknown.push(Unknown {
            who,
            why: why.to_owned(),
            code: Some(g.code.clone()),
            rights: g.rights.clone(),
        });
        self.complete = false;
    }

    /// The people with their rights, in ID order, kept to the action.
    fn people(&mut self, facts_names: &BTreeMap<String, String>, denied_wins: bool) -> Vec<Value> {
        let action = self.action;
        let mut people: Vec<(String, Holder)> = std::mem::take(&mut self.people)
            .into_iter()
            .filter_map(|(id, mut holder)| {
                if holder.name.is_none() {
                    holder.name = facts_names.get(&id).cloned();
                }
                if denied_wins {
                    deny_overrides(&mut holder.rights);
                }
                if let Some(action) = action {
                    holder
                        .rights
                        .retain(|r| r.right.eq_ignore_ascii_case(action));
                }
                (!holder.rights.is_empty()).then_some((id, holder))
            })
            .collect();
        people.sort_by_key(|(id, _)| (id.len(), id.clone()));
        people
            .into_iter()
            .map(|(id, h)| {
                let rights: Vec<Value> = h.rights.iter().map(Right::to_json).collect();
                let mut person = json!({"id": id, "rights": rights});
                if let Some(name) = h.name {
                    person["name"] = json!(name);
                }
                person
            })
            .collect()
    }
}

/// The object's answer: people → rights with their sources, the access list, what is unknown
/// and the evidence, kept to `action` when one is asked.
pub fn assemble(facts: ObjectFacts, resolved: &Map<String, Value>, action: Option<&str>) -> Value {
    let mut assembly = Assembly {
        resolved,
        action,
        people: BTreeMap::new(),
        unknown: facts.unknown,
        complete: facts.whole && facts.error.is_none(),
        grants: Vec::new(),
    };
    for g in &facts.grants {
        assembly.add(g);
    }
    for (id, right) in facts.held {
        assembly.people.entry(id).or_default().rights.push(right);
    }
    let people = assembly.people(&facts.names, facts.denied_wins);
    let mut unknown = assembly.unknown;
    unknown.retain(|u| u.concerns(action));
    let complete = assembly.complete && unknown.is_empty();
    let mut answer =
        json!({"id": facts.id, "label": facts.label, "complete": complete, "people": people});
    if !assembly.grants.is_empty() {
        answer["grants"] = json!(assembly.grants);
    }
    if !unknown.is_empty() {
        answer["unknown"] = unknown.iter().map(Unknown::to_json).collect();
    }
    if !facts.evidence.is_empty() {
        answer["evidence"] = facts
            .evidence
            .iter()
            .map(|e| json!({"tool": e.tool, "object": e.object, "at": e.at, "set": e.set}))
            .collect();
    }
    if let Some(error) = facts.error {
        answer["error"] = json!(error);
    }
    answer
}

/// Sites: `denied` overrides everything else a person holds from the same source.
fn deny_overrides(rights: &mut Vec<Right>) {
    for from in [Known::Portal, Known::Ledger] {
        let denied = rights
            .iter()
            .any(|r| r.from == from && r.right == "denied" && r.via != Via::PortalCheck);
        if denied {
            rights.retain(|r| r.from != from || r.right == "denied" || r.via == Via::PortalCheck);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_how_they_are_held() {
        for (code, via) in [
            ("U7", Via::Direct),
            ("IU7", Via::Direct),
            ("D2", Via::Department),
            ("DR1", Via::DepartmentTree),
            ("SG12_K", Via::WorkgroupRole),
            ("G1", Via::UserGroup),
            ("AU", Via::AllAuthorized),
            ("UA", Via::Everyone),
            ("CR", Via::Author),
        ] {
            assert_eq!(Via::of_code(code), via, "{code}");
        }
    }

    fn grant(code: &str, rights: &[&str], from: Known) -> Grant {
        Grant {
            code: code.into(),
            rights: rights.iter().map(|r| (*r).to_owned()).collect(),
            on: None,
            from,
        }
    }

    #[test]
    fn people_come_from_resolved_codes_and_unlisted_codes_are_named() {
        let mut facts = ObjectFacts::new("645", "site 645");
        facts.whole = true;
        facts.denied_wins = true;
        facts.grants = vec![
            grant("SG12_K", &["read", "edit"], Known::Ledger),
            grant("G1", &["read", "edit", "sett"], Known::Ledger),
            grant("U547", &["denied"], Known::Ledger),
            grant("D3", &["read", "edit"], Known::Ledger),
        ];
        facts
            .held
            .push(("7".into(), Right::checked("edit", "landing.site.getRights")));
        let resolved = json!({
            "SG12_K": {"kind": "group_members", "complete": true, "name": "Board: all members",
                       "users": [{"id": "1", "name": "Maria Ivanova", "role": "A"}]},
            "G1": {"kind": "names_only", "complete": false, "name": "Administrators",
                   "note": "a user group; REST cannot list a user group's members"},
            "U547": {"kind": "user", "complete": true, "users": [{"id": "547", "name": "Sara Kim"}]},
            "D3": {"kind": "department", "complete": true, "users": [{"id": "547", "name": "Sara Kim", "department": "3"}]},
        });
        let answer = assemble(facts, resolved.as_object().unwrap(), Some("edit"));
        assert_eq!(answer["complete"], false, "G1 is not listed");
        let people = answer["people"].as_array().unwrap();
        let ids: Vec<&str> = people.iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1", "7"], "547 is denied; only edit is kept");
        assert_eq!(
            people[0]["rights"][0],
            json!({"right": "edit", "via": "workgroup_role", "from": "ledger", "code": "SG12_K",
                   "code_name": "Board: all members", "detail": "owner of the workgroup"})
        );
        assert_eq!(people[1]["rights"][0]["via"], "portal_check");
        let unknown = answer["unknown"].as_array().unwrap();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0]["who"], "G1 (Administrators)");
        let holders: Vec<&str> = answer["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["holders"].as_str().unwrap())
            .collect();
        assert_eq!(
            holders,
            ["listed", "unlisted", "listed"],
            "U547 holds no edit"
        );
    }
}
