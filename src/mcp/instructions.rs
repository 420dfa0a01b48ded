//! The server instructions, built from the tools this configuration publishes: a model told
//! to call a tool that a filter removed would only collect "unknown tool" errors.

use crate::catalog::ToolSpec;

/// Put first in the instructions when calls go to the sandbox.
const SANDBOX: &str = "SANDBOX MODE: this server answers from a built-in sandbox portal with invented data, not the user's Bitrix24; say so when you report results.";

const LEAD_WRITES: &str = "Reads and changes access permissions on one Bitrix24 portal through its inbound webhook; every call acts with the rights of the webhook's user, not the person chatting.";
const LEAD_READS: &str = "Reads access permissions on one Bitrix24 portal through its inbound webhook; it cannot change anything. Every call acts with the rights of the webhook's user, not the person chatting.";
const LEAD_READS_FOR_NOW: &str = "Reads access permissions on one Bitrix24 portal through its inbound webhook; every call acts with the rights of the webhook's user, not the person chatting.";

/// How writes work, said only when a write tool is published.
const HOW_WRITES_WORK: &str = "change the live portal. The user sees each change field by field and approves it before it is sent; a decline means stop. dry_run: true shows what a write would change, writing nothing. Every write is recorded in the ledger.";

/// Up to this many write tools are named; more are described by their annotation.
const NAMED_WRITES: usize = 4;

/// Said when no write is published yet, but the session may publish some.
const WRITES_LATER: &str = "Tools that change permissions are not published yet: enable their toolset first (sites, workgroups, drive, documents). Each such change is approved by the user before it is sent.";

/// Always true, whatever is published.
const CLOSING: [&str; 2] = [
    "A tool error says what happened and what to do; follow it rather than retrying unchanged.",
    "IDs of groups, sites, tasks, roles and users come from the user or the portal; do not guess them.",
];

/// What the instructions are built from.
pub struct Published<'a> {
    /// The tools published at the start of a session.
    pub tools: Vec<&'a ToolSpec>,
    /// Whether the session may publish write tools later (enable_toolset is published and
    /// the server is not read-only).
    pub writes_later: bool,
    pub sandbox: bool,
}

/// Sent on both lifecycles (`initialize` and `server/discover`); key sentence first. The lines
/// come from the published tools' own `instruction` hints, reads before writes, so nothing
/// here names a tool by hand.
pub fn build(published: &Published<'_>) -> String {
    let tools = &published.tools;
    let writes: Vec<&str> = tools
        .iter()
        .filter(|s| s.is_write())
        .map(|s| s.name.as_str())
        .collect();
    let mut lines: Vec<String> = Vec::new();
    if published.sandbox {
        lines.push(SANDBOX.to_owned());
    }
    let lead = match (writes.is_empty(), published.writes_later) {
        (false, _) => LEAD_WRITES,
        (true, true) => LEAD_READS_FOR_NOW,
        (true, false) => LEAD_READS,
    };
    lines.push(lead.to_owned());
    let hinted = |write: bool| {
        tools
            .iter()
            .filter(move |s| s.is_write() == write)
            .filter_map(|s| s.instruction.as_deref())
    };
    lines.extend(hinted(false).map(|hint| format!("- {hint}")));
    if !writes.is_empty() {
        let which = if writes.len() <= NAMED_WRITES {
            writes.join(", ")
        } else {
            "every tool not marked read-only".to_owned()
        };
        lines.push(format!("- Writes ({which}) {HOW_WRITES_WORK}"));
    } else if published.writes_later {
        lines.push(format!("- {WRITES_LATER}"));
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
        let text = build(&Published {
            tools: all,
            writes_later: false,
            sandbox: true,
        });
        assert!(text.len() < 2048, "{} bytes:\n{text}", text.len());
        assert!(text.starts_with("SANDBOX MODE"));
        for name in ["profile", "scope", "batch", "landing_site_set_rights"] {
            assert!(names_tool(&text, name), "{name} missing:\n{text}");
        }
    }

    #[test]
    fn read_only_gives_no_advice_about_writing() {
        let reads = specs(|s| !s.is_write());
        let text = build(&Published {
            tools: reads.clone(),
            writes_later: false,
            sandbox: false,
        });
        names_only(&text, &reads);
        assert!(text.contains("cannot change anything"), "{text}");
        for word in ["REPLACE", "Writes", "write", "approve", "dry_run"] {
            assert!(!text.contains(word), "{word}:\n{text}");
        }
    }

    #[test]
    fn writes_published_say_how_writes_work() {
        let some = specs(|s| s.default);
        assert!(some.iter().any(|s| s.is_write()), "the default set writes");
        let text = build(&Published {
            tools: some.clone(),
            writes_later: true,
            sandbox: false,
        });
        names_only(&text, &some);
        assert!(!text.contains("cannot change anything"), "{text}");
        for words in ["approves it", "dry_run", "ledger"] {
            assert!(text.contains(words), "{words}:\n{text}");
        }
    }

    #[test]
    fn writes_that_may_come_later_are_not_denied() {
        let reads = specs(|s| !s.is_write() && s.toolset == "access");
        let text = build(&Published {
            tools: reads,
            writes_later: true,
            sandbox: false,
        });
        assert!(!text.contains("cannot change anything"), "{text}");
        assert!(text.contains("not published yet"), "{text}");
    }

    #[test]
    fn one_toolset_names_only_its_tools() {
        let tasks = specs(|s| s.toolset == "tasks");
        let text = build(&Published {
            tools: tasks.clone(),
            writes_later: false,
            sandbox: false,
        });
        names_only(&text, &tasks);
        assert!(
            !text.contains("batch") && !text.contains("profile"),
            "{text}"
        );
    }
}
