//! Reference pages published as MCP resources, for clients that read them: the facts a model
//! needs to call the tools right, kept out of every tool description's 2 KB.

use rmcp::model::{Resource, ResourceContents};

struct Page {
    uri: &'static str,
    name: &'static str,
    title: &'static str,
    description: &'static str,
    text: &'static str,
}

const PAGES: &[Page] = &[
    Page {
        uri: "bitrix24://reference/scopes",
        name: "scopes",
        title: "Bitrix24 REST scopes",
        description: "Which webhook scope each tool needs, and every scope a portal may offer.",
        text: include_str!("reference/scopes.md"),
    },
    Page {
        uri: "bitrix24://reference/access-codes",
        name: "access-codes",
        title: "Bitrix24 access codes",
        description: "U<id>, G<id>, D<id>, DR<id>, SG<id>_K, AU and the other access code formats.",
        text: include_str!("reference/access-codes.md"),
    },
    Page {
        uri: "bitrix24://reference/sonet-features",
        name: "sonet-features",
        title: "Workgroup features and operations",
        description: "FEATURE and OPERATION values for sonet_group_feature_access.",
        text: include_str!("reference/sonet-features.md"),
    },
    Page {
        uri: "bitrix24://reference/task-actions",
        name: "task-actions",
        title: "Task action keys",
        description: "The action keys tasks_task_get_access answers, and what each allows.",
        text: include_str!("reference/task-actions.md"),
    },
];

pub fn list() -> Vec<Resource> {
    PAGES
        .iter()
        .map(|p| {
            Resource::new(p.uri, p.name)
                .with_title(p.title)
                .with_description(p.description)
                .with_mime_type("text/markdown")
                .with_size(p.text.len() as u64)
        })
        .collect()
}

pub fn uris() -> Vec<&'static str> {
    PAGES.iter().map(|p| p.uri).collect()
}

pub fn read(uri: &str) -> Option<ResourceContents> {
    PAGES
        .iter()
        .find(|p| p.uri == uri)
        .map(|p| ResourceContents::TextResourceContents {
            uri: p.uri.to_owned(),
            mime_type: Some("text/markdown".to_owned()),
            text: p.text.to_owned(),
            meta: None,
        })
}
