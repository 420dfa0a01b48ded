//! The small company the sandbox is: its people, workgroups, sites, tasks and landing roles,
//! and the scopes its webhook was granted. The departments are `directory`'s; the large
//! company is generated (`large`).

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use super::{Group, ME, Role, Site, Task, User, rights};

fn user(name: &'static str, last_name: &'static str, admin: bool, department: u64) -> User {
    User {
        name: Cow::Borrowed(name),
        last_name: Cow::Borrowed(last_name),
        admin,
        department,
    }
}

fn group(name: &'static str, members: &[(u64, char)]) -> Group {
    Group {
        name: Cow::Borrowed(name),
        members: members.iter().copied().collect(),
    }
}

pub(super) fn users() -> BTreeMap<u64, User> {
    BTreeMap::from([
        (1, user("Maria", "Ivanova", true, 1)),
        (ME, user("Ann", "Lee", false, 2)),
        (503, user("Oleg", "Petrov", false, 2)),
        (547, user("Sara", "Kim", false, 3)),
        // The people, departments and groups the docs' own examples name.
        (3, user("Ivan", "Smirnov", false, 7)),
        (45, user("Lena", "Novak", false, 7)),
    ])
}

pub(super) fn groups() -> BTreeMap<u64, Group> {
    BTreeMap::from([
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
    ])
}

pub(super) fn sites() -> BTreeMap<u64, Site> {
    BTreeMap::from([
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
    ])
}

/// The rights every site has besides its own (site 0 in landing.site.setRights).
pub(super) fn default_site_rights() -> BTreeMap<String, Vec<String>> {
    rights(&[("G1", &["read", "edit", "sett", "public", "delete"])])
}

pub(super) fn tasks() -> BTreeMap<u64, Task> {
    BTreeMap::from([
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
    ])
}

pub(super) fn roles() -> BTreeMap<u64, Role> {
    BTreeMap::from([
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
    ])
}

/// The scopes the sandbox's webhook has.
pub(super) fn scopes() -> Vec<&'static str> {
    vec![
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
    ]
}
