//! Which tools this server publishes: toolsets, include and exclude lists, and read-only mode,
//! resolved once at start-up. Read-only beats everything; exclude beats include.

use std::collections::BTreeSet;

use crate::catalog::Catalog;

/// The filters as configured, before they are checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub toolsets: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub exclude_tools: Vec<String>,
    pub read_only: bool,
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
    read_only: bool,
}

impl Selection {
    pub fn resolve(catalog: &Catalog, filters: &Filters) -> Result<Self, SelectionError> {
        let names: Vec<&str> = catalog.entries().map(|e| e.spec.name.as_str()).collect();
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
            if !toolsets.contains(&set.as_str()) {
                return Err(SelectionError::UnknownToolset {
                    name: set.clone(),
                    valid: toolsets.join(", "),
                });
            }
        }
        for tool in filters.tools.iter().flatten() {
            check_tool(tool, "BITRIX24_TOOLS / --tools")?;
        }
        for tool in &filters.exclude_tools {
            check_tool(tool, "BITRIX24_EXCLUDE_TOOLS / --exclude-tools")?;
        }

        let mut enabled: BTreeSet<String> = match (&filters.toolsets, &filters.tools) {
            // Neither given: everything.
            (None, None) => names.iter().map(|n| (*n).to_owned()).collect(),
            (sets, tools) => {
                let from_sets = catalog
                    .entries()
                    .filter(|e| sets.iter().flatten().any(|s| *s == e.spec.toolset))
                    .map(|e| e.spec.name.clone());
                from_sets.chain(tools.iter().flatten().cloned()).collect()
            }
        };
        for tool in &filters.exclude_tools {
            enabled.remove(tool);
        }
        if filters.read_only {
            enabled.retain(|name| catalog.get(name).is_some_and(|e| !e.spec.is_write()));
        }
        Ok(Self {
            enabled,
            read_only: filters.read_only,
        })
    }

    pub fn allows(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// Why a catalog tool is not enabled; `None` when it is.
    pub fn hidden(&self, catalog: &Catalog, name: &str) -> Option<Hidden> {
        if self.allows(name) {
            return None;
        }
        let is_write = catalog.get(name).is_some_and(|e| e.spec.is_write());
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
        let all = names(&c, Filters::default());
        assert_eq!(all.len(), c.entries().count());

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
            err.contains("\"site\"") && err.contains("sites, tasks"),
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
