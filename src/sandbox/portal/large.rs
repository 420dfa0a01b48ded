//! The large invented company, on demand (`--sandbox-size large`): the small company plus
//! enough people, departments, workgroups, sites and tasks to see what a question costs on a
//! real portal's scale. Generated from a fixed seed, so every run and every test sees the
//! same company.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use super::{Department, Group, ME, Portal, Site, Task, User, rights};
use crate::catalog::Catalog;

/// How big the sandbox company is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Size {
    /// Six people, four departments: the company the docs' examples name.
    #[default]
    Small,
    /// 10,000 people, 1,000 departments, 300 sites, 5,000 tasks.
    Large,
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Self::Small),
            "large" => Ok(Self::Large),
            other => Err(format!("{other:?}: the sandbox comes in small or large")),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Small => "small",
            Self::Large => "large",
        })
    }
}

pub const USERS: u64 = 10_000;
pub const DEPARTMENTS: u64 = 1_000;
pub const SITES: u64 = 300;
pub const TASKS: u64 = 5_000;
/// Generated workgroups; the first, "All hands", has a thousand members.
const GROUPS: u64 = 200;
pub const ALL_HANDS: u64 = 1000;
const ALL_HANDS_MEMBERS: u64 = 1000;
/// Generated tasks start here, above the small company's 8017 and 8020.
pub const FIRST_TASK: u64 = 10_001;

const FIRST_NAMES: &[&str] = &[
    "Anna", "Boris", "Clara", "Dmitri", "Elena", "Felix", "Galina", "Hugo", "Irina", "Jonas",
    "Katya", "Leon", "Mila", "Nikolai", "Olga", "Pavel", "Rosa", "Stepan", "Tanya", "Viktor",
];
const LAST_NAMES: &[&str] = &[
    "Abramova",
    "Bauer",
    "Costa",
    "Dubois",
    "Egorov",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ivanov",
    "Jensen",
    "Kovacs",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Orlov",
    "Petrenko",
    "Quinn",
    "Rossi",
    "Sokolova",
    "Tanaka",
];
const AREAS: &[&str] = &[
    "Sales",
    "Support",
    "Finance",
    "Legal",
    "Logistics",
    "Marketing",
    "Research",
    "Quality",
    "Training",
    "Procurement",
];

/// splitmix64: a few lines, and the same numbers on every platform and crate version.
struct Seq(u64);

impl Seq {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `1..=n`.
    fn upto(&mut self, n: u64) -> u64 {
        self.next() % n + 1
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

impl Portal {
    /// The sandbox company of `size`.
    pub fn of_size(catalog: &Catalog, size: Size) -> Self {
        let mut portal = Self::new(catalog);
        if size == Size::Large {
            let mut seq = Seq(0x05EE_DB24);
            portal.grow_departments(&mut seq);
            portal.grow_users(&mut seq);
            portal.grow_groups(&mut seq);
            portal.grow_sites(&mut seq);
            portal.grow_tasks(&mut seq);
        }
        portal
    }

    /// Up to [`DEPARTMENTS`], each under a department made before it, so the tree is whole.
    fn grow_departments(&mut self, seq: &mut Seq) {
        for id in 2..=DEPARTMENTS {
            if self.departments.contains_key(&id) {
                continue;
            }
            let name = match id {
                // Portal text is anyone's text: reports must show it, never run it.
                4 => "R&D <Labs>".to_owned(),
                _ => format!("{} {id}", seq.pick(AREAS)),
            };
            let parent = Some(seq.upto(id - 1)).filter(|p| self.departments.contains_key(p));
            let department = Department {
                name: Cow::Owned(name),
                parent: parent.or(Some(1)),
                head: 0,
            };
            self.departments.insert(id, department);
        }
    }

    /// Up to [`USERS`], spread over the departments; ten of them administrators. Each
    /// department's head is its first member (the small company keeps its own heads).
    fn grow_users(&mut self, seq: &mut Seq) {
        for id in 2..=USERS {
            if self.users.contains_key(&id) {
                continue;
            }
            let (name, last_name) = match id {
                13 => ("Chloé".to_owned(), "O'Hara & <Sons>".to_owned()),
                _ => (
                    seq.pick(FIRST_NAMES).to_owned(),
                    seq.pick(LAST_NAMES).to_owned(),
                ),
            };
            let user = User {
                name: Cow::Owned(name),
                last_name: Cow::Owned(last_name),
                admin: id % 1000 == 0,
                department: seq.upto(DEPARTMENTS),
            };
            self.users.insert(id, user);
        }
        for (uid, user) in &self.users {
            if let Some(dep) = self.departments.get_mut(&user.department)
                && dep.head == 0
            {
                dep.head = *uid;
            }
        }
    }

    /// "All hands" (a thousand members, the webhook's user among them) and smaller groups;
    /// the webhook's user belongs to every other one, so the rest cannot be read by it.
    fn grow_groups(&mut self, seq: &mut Seq) {
        let mut all_hands: BTreeMap<u64, char> =
            (1..=ALL_HANDS_MEMBERS).map(|u| (u * 10 - 3, 'K')).collect();
        all_hands.insert(1, 'A');
        all_hands.insert(ME, 'K');
        // The person whose name means something in HTML, Markdown and CSV, for the reports.
        all_hands.insert(13, 'K');
        all_hands.insert(503, 'E');
        let group = |name: String, members| Group {
            name: Cow::Owned(name),
            members,
        };
        self.groups
            .insert(ALL_HANDS, group("All hands".to_owned(), all_hands));
        for id in ALL_HANDS + 1..ALL_HANDS + GROUPS {
            let size = 5 + seq.upto(55);
            let mut members: BTreeMap<u64, char> = (0..size)
                .map(|i| (seq.upto(USERS), if i < 3 { 'E' } else { 'K' }))
                .collect();
            members.insert(seq.upto(USERS), 'A');
            if id % 2 == 0 {
                members.entry(ME).or_insert('K');
            }
            let name = format!("{} project {id}", seq.pick(AREAS));
            self.groups.insert(id, group(name, members));
        }
    }

    /// Sites 1 to 296 (with the small company's four, [`SITES`]), each with a set of rights
    /// made of every kind of access code.
    fn grow_sites(&mut self, seq: &mut Seq) {
        for id in 1..=SITES - 4 {
            let group = ALL_HANDS + seq.upto(GROUPS - 1);
            let department = seq.upto(DEPARTMENTS);
            let user = seq.upto(USERS);
            let set = [
                ("AU".to_owned(), vec!["read"]),
                (format!("SG{group}_K"), vec!["read", "edit"]),
                (format!("DR{department}"), vec!["read", "edit", "sett"]),
                (format!("U{user}"), vec!["read", "edit", "sett", "public"]),
            ];
            let mut granted: BTreeMap<String, Vec<String>> = set
                .into_iter()
                .take(1 + (seq.next() % 4) as usize)
                .map(|(code, ops)| (code, ops.into_iter().map(str::to_owned).collect()))
                .collect();
            if id % 3 == 0 {
                granted.extend(rights(&[("U7", &["read", "edit"])]));
            }
            let site = Site {
                scope: None,
                in_trash: false,
                rights: granted,
            };
            self.sites.insert(id, site);
        }
    }

    /// Tasks from [`FIRST_TASK`] on, up to [`TASKS`] in all. The webhook's user audits every
    /// one but each fiftieth, which it cannot see.
    fn grow_tasks(&mut self, seq: &mut Seq) {
        for id in FIRST_TASK..FIRST_TASK + TASKS - 2 {
            let creator = seq.upto(USERS);
            let responsible = seq.upto(USERS);
            let mut visible_to = BTreeSet::from([creator, responsible]);
            if id % 50 != 0 {
                visible_to.insert(ME);
            }
            let task = Task {
                creator,
                responsible,
                visible_to,
            };
            self.tasks.insert(id, task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_company_has_its_size_and_is_the_same_every_time() {
        let catalog = Catalog::shared();
        let a = Portal::of_size(catalog, Size::Large);
        assert_eq!(a.users.len() as u64, USERS);
        assert_eq!(a.departments.len() as u64, DEPARTMENTS);
        assert_eq!(a.sites.len() as u64, SITES);
        assert_eq!(a.tasks.len() as u64, TASKS);
        assert_eq!(
            a.groups[&ALL_HANDS].members.len() as u64,
            ALL_HANDS_MEMBERS + 3
        );
        assert!(
            a.departments
                .values()
                .all(|d| d.parent.is_none_or(|p| a.departments.contains_key(&p))),
            "every parent exists"
        );
        let b = Portal::of_size(catalog, Size::Large);
        let names = |p: &Portal| -> Vec<String> {
            p.users
                .values()
                .map(|u| format!("{} {}", u.name, u.last_name))
                .collect()
        };
        assert_eq!(names(&a), names(&b));
        assert_eq!(a.sites[&17].rights, b.sites[&17].rights);
        // The small company is inside, as it was.
        assert_eq!(a.users[&ME].name, "Ann");
        assert_eq!(
            a.sites[&645].rights,
            Portal::new(catalog).sites[&645].rights
        );
    }

    #[test]
    fn sizes_read_from_text() {
        assert_eq!("LARGE".parse::<Size>(), Ok(Size::Large));
        assert_eq!(" small ".parse::<Size>(), Ok(Size::Small));
        assert!("huge".parse::<Size>().is_err());
    }
}
