//! The server instructions, built from the tools this configuration publishes: a model told
//! to call a tool that a filter removed would only collect "unknown tool" errors.

use crate::catalog::ToolSpec;

/// Put first in the instructions when calls go to the sandbox.
const SANDBOX: &str = "SANDBOX MODE: this server answers from a built-in sandbox portal with invented data, not the user's Bitrix24; say so when you report results.";

const LEAD_WRITES: &str = "Reads and changes access permissions on one Bitrix24 portal through its inbound webhook; every call acts with the rights of the webhook's user, not the person chatting.";
const LEAD_READS: &str = "Reads access permissions on one Bitrix24 portal through its inbound webhook; it cannot change anything. Every call acts with the rights of the webhook's user, not the person chatting.";

/// Always true, whatever is published.
const CLOSING: [&str; 2] = [
    "A tool error says what happened and what to do; follow it rather than retrying unchanged.",
    "IDs of groups, sites, tasks, roles and users come from the user or the portal; do not guess them.",
];

/// Sent on both lifecycles (`initialize` and `server/discover`); key sentence first. The lines
/// come from the published tools' own `instruction` hints, reads before writes, so nothing
/// here names a tool by hand.
pub fn build<'a>(published: impl IntoIterator<Item = &'a ToolSpec>, sandbox: bool) -> String {
    let published: Vec<&ToolSpec> = published.into_iter().collect();
    let writes: Vec<&str> = published
        .iter()
        .filter(|s| s.is_write())
        .map(|s| s.name.as_str())
        .collect();
    let mut lines: Vec<String> = Vec::new();
    if sandbox {
        lines.push(SANDBOX.to_owned());
    }
    lines.push(
        if writes.is_empty() {
            LEAD_READS
        } else {
            LEAD_WRITES
        }
        .to_owned(),
    );
    let hinted = |write: bool| {
        published
            .iter()
            .filter(move |s| s.is_write() == write)
            .filter_map(|s| s.instruction.as_deref())
    };
    lines.extend(hinted(false).map(|hint| format!("- {hint}")));
    if !writes.is_empty() {
        lines.push(format!(
            "- Writes ({}) change the live portal at once. The server asks the user to confirm each one; a decline means stop. dry_run: true shows what a write would send and change, writing nothing.",
            writes.join(", ")
        ));
    }
    lines.extend(hinted(true).map(|hint| format!("- {hint}")));
    lines.extend(CLOSING.iter().map(|line| format!("- {line}")));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, names_tool};

    fn specs(filter: impl Fn(&ToolSpec) -> bool) -> Vec<&'static ToolSpec> {
        Catalog::shared()
            .entries()
            .map(|e| &*e.spec)
            .filter(|s| filter(s))
            .collect()
    }

    /// Every catalog tool the text names is one of `published`.
    fn names_only(text: &str, published: &[&ToolSpec]) {
        for e in Catalog::shared().entries() {
            if names_tool(text, &e.spec.name) {
                assert!(
                    published.iter().any(|p| p.name == e.spec.name),
                    "names unpublished {}:\n{text}",
                    e.spec.name
                );
            }
        }
    }

    #[test]
    fn everything_published_fits_in_two_kilobytes() {
        let all = specs(|_| true);
        let text = build(all.iter().copied(), true);
        assert!(text.len() < 2048, "{} bytes:\n{text}", text.len());
        assert!(text.starts_with("SANDBOX MODE"));
        for name in ["profile", "scope", "batch", "landing_site_set_rights"] {
            assert!(names_tool(&text, name), "{name} missing:\n{text}");
        }
    }

    #[test]
    fn read_only_gives_no_advice_about_writing() {
        let reads = specs(|s| !s.is_write());
        let text = build(reads.iter().copied(), false);
        names_only(&text, &reads);
        assert!(text.contains("cannot change anything"), "{text}");
        for word in ["REPLACE", "Writes", "confirm"] {
            assert!(!text.contains(word), "{word}:\n{text}");
        }
    }

    #[test]
    fn one_toolset_names_only_its_tools() {
        let tasks = specs(|s| s.toolset == "tasks");
        let text = build(tasks.iter().copied(), false);
        names_only(&text, &tasks);
        assert!(
            !text.contains("batch") && !text.contains("profile"),
            "{text}"
        );
    }
}
