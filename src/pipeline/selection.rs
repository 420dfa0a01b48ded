//! Which tools this server publishes: toolsets, include and exclude lists, and read-only mode,
//! resolved once at start-up. Read-only beats everything; exclude beats include. Without any
//! toolset or tool named, the catalog's `default` tools are published: the context budget.

use std::collections::BTreeSet;

use crate::catalog::{Catalog, Kind};

/// `--toolsets` names that are not toolsets of the catalog.
const ALL: &str = "all";
const DEFAULT: &str = "default";

/// The filters as configured, before they are checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub toolsets: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub exclude_tools: Vec<String>,
    pub read_only: bool,
    /// Publish `enable_toolset`, so a session can widen its tools at run time.
    pub dynamic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown toolset {name:?} in BITRIX24_TOOLSETS / --toolsets; valid toolsets: {valid}")]
    UnknownToolset { name: String, valid: String },
    #[error("unknown tool {name:?} in {setting}; valid tools: {valid}")]
    UnknownTool {
        name: String,
        setting: &'static str,
        valid: String,
    },
}

/// Why a catalog tool is not callable here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    ReadOnly,
    Filtered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    enabled: BTreeSet<String>,
    excluded: BTreeSet<String>,
    read_only: bool,
    /// Neither toolsets nor tools were named: only the context budget chose the set.
    budget_only: bool,
}

impl Selection {
    pub fn resolve(catalog: &Catalog, filters: &Filters) -> Result<Self, SelectionError> {
        let names: Vec<&str> = catalog.entries().map(|e| e.summary.name.as_str()).collect();
        let valid_tools = names.join(", ");
        let check_tool = |name: &String, setting| {
            if names.contains(&name.as_str()) {
                Ok(())
            } else {
                Err(SelectionError::UnknownTool {
                    name: name.clone(),
                    setting,
                    valid: valid_tools.clone(),
                })
            }
        };
        let toolsets = catalog.toolsets();
        for set in filters.toolsets.iter().flatten() {
            if !toolsets.contains(&set.as_str()) && set != ALL && set != DEFAULT {
                return Err(SelectionError::UnknownToolset {
                    name: set.clone(),
                    valid: format!("{}, {DEFAULT}, {ALL}", toolsets.join(", ")),
                });
            }
        }
        for tool in filters.tools.iter().flatten() {
            check_tool(tool, "BITRIX24_TOOLS / --tools")?;
        }
        for tool in &filters.exclude_tools {
            check_tool(tool, "BITRIX24_EXCLUDE_TOOLS / --exclude-tools")?;
        }

        // Neither given: the catalog's default tools.
        let default_only = [DEFAULT.to_owned()];
        let sets: &[String] = match (&filters.toolsets, &filters.tools) {
            (None, None) => &default_only,
            (sets, _) => sets.as_deref().unwrap_or_default(),
        };
        let in_sets = |tool: &crate::catalog::Summary| {
            sets.iter()
                .any(|s| s == ALL || *s == tool.toolset || (s == DEFAULT && tool.default))
        };
        let mut enabled: BTreeSet<String> = catalog
            .entries()
            .filter(|e| e.summary.kind != Kind::EnableToolset && in_sets(&e.summary))
            .map(|e| e.summary.name.clone())
            .chain(filters.tools.iter().flatten().cloned())
            .collect();
        if filters.dynamic {
            enabled.extend(
                catalog
                    .entries()
                    .filter(|e| e.summary.kind == Kind::EnableToolset)
                    .map(|e| e.summary.name.clone()),
            );
        }
        let excluded: BTreeSet<String> = filters.exclude_tools.iter().cloned().collect();
        let mut selection = Self {
            enabled: BTreeSet::new(),
            excluded,
            read_only: filters.read_only,
            budget_only: filters.toolsets.is_none() && filters.tools.is_none(),
        };
        enabled.retain(|name| selection.may_enable(catalog, name));
        selection.enabled = enabled;
        Ok(selection)
    }

    /// Whether a tool may be published at all here, whichever toolset asks for it: exclusion
    /// and read-only mode hold for toolsets enabled at run time too.
    pub fn may_enable(&self, catalog: &Catalog, name: &str) -> bool {
        !self.excluded.contains(name)
            && catalog
                .get(name)
                .is_some_and(|e| !(self.read_only && e.summary.is_write()))
    }

    /// True when only the context budget chose the published set, so a caller with no
    /// context to save (the command line) may call any tool that could be enabled.
    pub fn budget_only(&self) -> bool {
        self.budget_only
    }

    pub fn allows(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// Why a catalog tool is not enabled; `None` when it is.
    pub fn hidden(&self, catalog: &Catalog, name: &str) -> Option<Hidden> {
        if self.allows(name) {
            return None;
        }
        let is_write = catalog.get(name).is_some_and(|e| e.summary.is_write());
        Some(if self.read_only && is_write {
            Hidden::ReadOnly
        } else {
            Hidden::Filtered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(catalog: &Catalog, filters: Filters) -> Vec<String> {
        let s = Selection::resolve(catalog, &filters).unwrap();
        catalog
            .entries()
            .filter(|e| s.allows(&e.spec.name))
            .map(|e| e.spec.name.clone())
            .collect()
    }

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn filters_combine() {
        let c = Catalog::embedded().unwrap();
        let all = names(
            &c,
            Filters {
                toolsets: list(&["all"]),
                dynamic: true,
                ..Default::default()
            },
        );
        assert_eq!(all.len(), c.entries().count());
        let default = names(&c, Filters::default());
        let flagged: Vec<String> = c
            .entries()
            .filter(|e| e.spec.default && e.spec.kind != Kind::EnableToolset)
            .map(|e| e.spec.name.clone())
            .collect();
        assert_eq!(default, flagged, "the catalog decides the default set");
        let dynamic = names(
            &c,
            Filters {
                dynamic: true,
                ..Default::default()
            },
        );
        assert!(dynamic.contains(&"enable_toolset".to_owned()));
        assert!(!default.contains(&"enable_toolset".to_owned()));

        let tasks = names(
            &c,
            Filters {
                toolsets: list(&["tasks"]),
                ..Default::default()
            },
        );
        assert_eq!(tasks, ["tasks_task_get_access"]);

        let plus_tool = names(
            &c,
            Filters {
                toolsets: list(&["tasks"]),
                tools: list(&["profile"]),
                ..Default::default()
            },
        );
        assert_eq!(plus_tool, ["profile", "tasks_task_get_access"]);

        // Exclude beats include.
        let excluded = names(
            &c,
            Filters {
                tools: list(&["profile", "scope"]),
                exclude_tools: vec!["scope".into()],
                ..Default::default()
            },
        );
        assert_eq!(excluded, ["profile"]);

        // Read-only beats everything, even a write named explicitly.
        let s = Selection::resolve(
            &c,
            &Filters {
                tools: list(&["landing_site_set_rights"]),
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!s.allows("landing_site_set_rights"));
        assert_eq!(
            s.hidden(&c, "landing_site_set_rights"),
            Some(Hidden::ReadOnly)
        );
        assert_eq!(s.hidden(&c, "profile"), Some(Hidden::Filtered));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let c = Catalog::embedded().unwrap();
        let err = Selection::resolve(
            &c,
            &Filters {
                toolsets: list(&["site"]),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"site\"") && err.contains("sites, tasks") && err.contains("all"),
            "{err}"
        );
        let err = Selection::resolve(
            &c,
            &Filters {
                exclude_tools: vec!["nope".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--exclude-tools") && err.contains("landing_site_get_rights"),
            "{err}"
        );
    }
}
