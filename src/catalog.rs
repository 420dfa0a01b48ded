//! The tool catalog: one TOML file per Bitrix24 REST method under `tools/`, embedded at
//! build time. Everything the server publishes about a tool comes from here.

mod checker;
#[cfg(test)]
mod cross_check;
#[cfg(test)]
mod file;
mod spec;

use std::sync::{Arc, OnceLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

#[cfg(test)]
pub(crate) use self::checker::Checker;
#[cfg(not(test))]
use self::checker::Checker;
use self::checker::{Failure, Violation};
pub use self::checker::{Node as SchemaNode, Schema, child as pointer_child};
pub use self::spec::*;

/// Every file of `tools/`, read and checked by the build script (build.rs), sorted by tool
/// name: a small index read at start, and the entries' JSON, each read when its tool is first
/// listed or called.
static INDEX: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog-index.json"));
static ENTRIES: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog-entries.json"));

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("tools/{file}: {problem}")]
    Invalid { file: String, problem: String },
    #[error("the catalog built into this binary does not read back: {0}")]
    Digest(#[from] serde_json::Error),
    #[error("the catalog built into this binary has no entry where its index puts {0}")]
    Index(String),
}

impl ErrorAdvice {
    pub fn matches(&self, code: &str, description: &str) -> bool {
        let code_ok = self
            .code
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case(code));
        let text_ok = self.description_contains.as_deref().is_none_or(|needle| {
            description
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase())
        });
        code_ok && text_ok
    }
}

impl Normalize {
    pub fn apply(&self, result: &mut Value) {
        fn at<'v>(result: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
            if pointer.is_empty() {
                Some(result)
            } else {
                result.pointer_mut(pointer)
            }
        }
        for pointer in &self.empty_array_to_object {
            if let Some(v) = at(result, pointer)
                && v.as_array().is_some_and(Vec::is_empty)
            {
                *v = Value::Object(Default::default());
            }
        }
        for pointer in &self.list_to_object {
            if let Some(v) = at(result, pointer)
                && let Value::Array(items) = v
            {
                let keyed = std::mem::take(items)
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (i.to_string(), item))
                    .collect();
                *v = Value::Object(keyed);
            }
        }
    }
}

impl UnnamedCode {
    /// The number `{id}` stands for in `code`, `Some(None)` for a code without `{id}`, or
    /// `None` when `code` is not this one.
    fn id_in<'c>(&self, code: &'c str) -> Option<Option<&'c str>> {
        match self.code.split_once("{id}") {
            None => (self.code == code).then_some(None),
            Some((before, after)) => {
                let id = code.strip_prefix(before)?.strip_suffix(after)?;
                let number = !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !id.starts_with('0');
                number.then_some(Some(id))
            }
        }
    }

    /// How the guard checks `code`: `None` when this rule is not about it, `Some(None)` when
    /// it is accepted without asking, `Some(Some(asked))` when `asked` stands in for it.
    pub fn check(&self, code: &str) -> Option<Option<String>> {
        let id = self.id_in(code)?;
        Some(
            self.check_as
                .as_ref()
                .map(|template| template.replace("{id}", id.unwrap_or_default())),
        )
    }
}

impl Preflight {
    /// The access codes a `KnownAccessCodes` check is about, in the order given.
    pub fn codes_in(codes_at: &str, args: &Value) -> Vec<String> {
        Self::values_in(codes_at, None, args)
    }

    /// The values at `at` in the arguments: an object's keys, an array's strings or numbers,
    /// or with `item_key` each array item's value under that key; one value stands alone.
    pub fn values_in(at: &str, item_key: Option<&str>, args: &Value) -> Vec<String> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match (args.pointer(at), item_key) {
            (Some(Value::Object(map)), None) => map.keys().cloned().collect(),
            (Some(Value::Array(items)), None) => items.iter().filter_map(text).collect(),
            (Some(Value::Array(items)), Some(key)) => {
                items.iter().filter_map(|i| text(&i[key])).collect()
            }
            (Some(v), None) => text(v).into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

impl ToolSpec {
    pub fn is_write(&self) -> bool {
        !self.hints.read_only
    }

    /// Whether the tool's method is a portal's REST method (not answered by this server).
    pub fn is_portal_method(&self) -> bool {
        matches!(self.kind, Kind::Rest | Kind::Batch)
    }

    /// Whether the keys or items of the replaced set are access codes the portal can name.
    pub fn set_holds_access_codes(&self) -> bool {
        self.change.as_ref().is_some_and(|c| {
            self.preflight.iter().any(
                |p| matches!(p, Preflight::KnownAccessCodes { codes_at, .. } if *codes_at == c.set_at),
            )
        })
    }

    /// The MCP definition published in `tools/list`.
    pub fn to_tool(&self) -> Tool {
        let annotations = ToolAnnotations::new()
            .read_only(self.hints.read_only)
            .destructive(self.hints.destructive)
            .idempotent(self.hints.idempotent)
            .open_world(self.hints.open_world);
        Tool::new(
            self.name.clone(),
            self.description.clone(),
            Arc::new(as_object(&self.input_schema)),
        )
        .with_title(self.title.clone())
        .with_annotations(annotations)
        .with_raw_output_schema(Arc::new(as_object(&self.output_schema)))
    }
}

fn as_object(v: &Value) -> JsonObject {
    v.as_object().cloned().unwrap_or_default()
}

/// A catalog entry with its schema checkers, compiled on first use (microseconds) so that
/// start-up does not even parse the schemas of tools a session never calls.
#[derive(Debug)]
pub struct Entry {
    /// Read at start for every tool: enough to choose and find it.
    pub summary: Summary,
    /// Read the first time anything else about the tool is needed.
    pub spec: Lazy<ToolSpec>,
    input_checker: OnceLock<Checker>,
    output_checker: OnceLock<Checker>,
}

/// Why an answer does not fit the tool's published output schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerProblem {
    /// JSON pointer into the answer (`/result/...`).
    pub path: String,
    pub message: String,
}

/// One argument problem, phrased for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentProblem {
    /// JSON pointer of the offending argument ("" for the arguments object itself).
    pub path: String,
    pub message: String,
}

impl Entry {
    #[cfg(test)]
    fn new(spec: ToolSpec) -> Self {
        Self::with(Summary::of(&spec), Lazy::new(spec))
    }

    fn with(summary: Summary, spec: Lazy<ToolSpec>) -> Self {
        Self {
            summary,
            spec,
            input_checker: OnceLock::new(),
            output_checker: OnceLock::new(),
        }
    }

    fn input_checker(&self) -> &Checker {
        self.input_checker.get_or_init(|| {
            // The build script compiles every catalog schema, so this cannot fail at run time.
            Checker::compile(&self.spec.input_schema)
                .expect("catalog input schemas are checked when the binary is built")
        })
    }

    fn output_checker(&self) -> &Checker {
        self.output_checker.get_or_init(|| {
            Checker::compile(&self.spec.output_schema)
                .expect("catalog output schemas are checked when the binary is built")
        })
    }

    /// The compiled input schema, for the walkers that read it.
    pub fn input_model(&self) -> &SchemaNode {
        self.input_checker().root()
    }

    /// The compiled output schema's `result`, for the walkers that read it.
    pub fn result_model(&self) -> Option<&SchemaNode> {
        self.output_checker().root().schema()?.property("result")
    }

    /// Reads the whole entry and compiles its checkers now, so that listing or calling the
    /// tool later finds them done.
    pub fn prepare(&self) {
        self.input_checker();
        self.output_checker();
    }

    /// Checks a (normalised) answer against the output schema published in `tools/list`, so
    /// that a client which validates `structuredContent` never receives one it must reject.
    pub fn check_answer(&self, answer: &Value) -> Result<(), AnswerProblem> {
        match self.output_checker().first_violation(answer) {
            None => Ok(()),
            Some(v) => {
                let (path, message) = describe(&v, self.output_checker(), Role::Answer);
                Err(AnswerProblem { path, message })
            }
        }
    }

    /// Checks arguments against the very schema published in `tools/list`.
    pub fn check_arguments(&self, args: &Value) -> Vec<ArgumentProblem> {
        let mut problems: Vec<ArgumentProblem> = self
            .input_checker()
            .violations(args)
            .iter()
            .map(|v| {
                let (path, message) = describe(v, self.input_checker(), Role::Arguments);
                ArgumentProblem { path, message }
            })
            .collect();
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        problems.dedup();
        problems
    }
}

/// What the checked value is, for the words of a problem.
#[derive(Clone, Copy)]
enum Role {
    Arguments,
    Answer,
}

/// Phrases one schema violation as (path, message) so that it names the argument or field,
/// even for the keywords whose instance path is the object holding it (a missing or unknown
/// property), and says what the value must be in the schema's own terms rather than the
/// checker's keywords.
fn describe(v: &Violation<'_>, checker: &Checker, role: Role) -> (String, String) {
    let join = |name: &str| pointer_child(&v.instance_path, name);
    match (&v.failure, role) {
        (Failure::Missing(property), _) => (join(property), "is required but missing".to_owned()),
        (Failure::Unexpected(name), Role::Arguments) => (
            join(name),
            "is not an argument of this tool (names are case-sensitive)".to_owned(),
        ),
        (Failure::Unexpected(name), Role::Answer) => {
            (join(name), "is not a field the tool publishes".to_owned())
        }
        (Failure::BadKey(name), _) => (join(name), "is not an accepted key here".to_owned()),
        (Failure::Value, _) => {
            let expected = checker
                .subschema(&v.schema_at)
                .map_or_else(|| "as the schema says".to_owned(), expectation);
            (
                v.instance_path.clone(),
                format!("must be {expected}; got {}", excerpt(v.instance)),
            )
        }
    }
}

/// What a value must be to fit `schema`, in words: "an integer ≥ 0 or a string of digits".
fn expectation(node: &SchemaNode) -> String {
    let Some(schema) = node.schema() else {
        return "as the input schema says".to_owned();
    };
    if !schema.any_of().is_empty() {
        let words: Vec<String> = schema.any_of().iter().map(expectation).collect();
        return words.join(" or ");
    }
    if let Some(values) = schema.allowed() {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", shown.join(", "));
    }
    if let Some(value) = schema.constant() {
        return format!("exactly {value}");
    }
    let bounds = |(low, high): (Option<f64>, Option<f64>)| match (low, high) {
        (Some(a), Some(b)) => format!(" from {a} to {b}"),
        (Some(a), None) => format!(" ≥ {a}"),
        (None, Some(b)) => format!(" ≤ {b}"),
        (None, None) => String::new(),
    };
    let counts = |(low, high): (Option<usize>, Option<usize>)| {
        bounds((low.map(|n| n as f64), high.map(|n| n as f64)))
    };
    match schema.single_type() {
        Some("integer") => format!("an integer{}", bounds((schema.minimum(), schema.maximum()))),
        Some("number") => format!("a number{}", bounds((schema.minimum(), schema.maximum()))),
        Some("boolean") => "true or false".to_owned(),
        Some("null") => "null".to_owned(),
        Some("string") => {
            let mut text = match schema.pattern() {
                Some("^[0-9]+$" | "^\\d+$") => "a string of digits".to_owned(),
                Some(pattern) => format!("a string matching {pattern}"),
                None => "a string".to_owned(),
            };
            let length = counts(schema.length_bounds());
            if !length.is_empty() {
                text.push_str(&format!(" of length{length}"));
            }
            text
        }
        Some("array") => {
            let mut text = "an array".to_owned();
            let count = counts(schema.item_bounds());
            if !count.is_empty() {
                text.push_str(&format!(" of{count} items"));
            }
            if let Some(items) = schema.items() {
                text.push_str(&format!(", each {}", expectation(items)));
            }
            if schema.unique_items() {
                text.push_str(", without repeats");
            }
            text
        }
        Some("object") => "an object".to_owned(),
        _ => schema
            .description()
            .map_or_else(|| "as the input schema says".to_owned(), str::to_owned),
    }
}

/// A short rendering of the value that failed, so a huge one cannot flood the answer.
fn excerpt(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// Whether `text` mentions the tool `name` as a word of its own (not inside a longer name).
#[cfg(test)]
pub(crate) fn names_tool(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word == name)
}

/// All catalog entries, sorted by tool name for a stable `tools/list`.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<Arc<Entry>>,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Result<Self, CatalogError> {
        let index: Vec<Indexed> = serde_json::from_str(INDEX)?;
        let entries = index
            .into_iter()
            .map(
                |Indexed {
                     summary,
                     at: (start, len),
                 }| {
                    let text = ENTRIES
                        .get(start..start + len)
                        .ok_or_else(|| CatalogError::Index(summary.name.clone()))?;
                    Ok(Arc::new(Entry::with(summary, Lazy::from_static(text))))
                },
            )
            .collect::<Result<_, CatalogError>>()?;
        Ok(Self { entries })
    }

    /// The embedded catalog, parsed once for all of a test run's unit tests.
    #[cfg(test)]
    pub(crate) fn shared() -> &'static Catalog {
        static SHARED: OnceLock<Catalog> = OnceLock::new();
        SHARED.get_or_init(|| Catalog::embedded().expect("the embedded catalog parses"))
    }

    /// A catalog read from files the way the build script reads `tools/`.
    #[cfg(test)]
    pub(crate) fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CatalogError> {
        let mut entries = Vec::new();
        for (name, text) in files {
            let spec = file::read(name, text).map_err(|problem| CatalogError::Invalid {
                file: name.to_owned(),
                problem,
            })?;
            entries.push(Arc::new(Entry::new(spec)));
        }
        entries.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(Self { entries })
    }

    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.entries.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Entry>> {
        self.entries.iter().find(|e| e.summary.name == name)
    }

    pub fn by_method(&self, method: &str) -> Option<&Arc<Entry>> {
        self.entries
            .iter()
            .find(|e| e.summary.method.eq_ignore_ascii_case(method))
    }

    /// The toolset names, sorted. `enable_toolset` belongs to none: it is published by its
    /// own switch.
    pub fn toolsets(&self) -> Vec<&str> {
        let mut sets: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| e.summary.kind != Kind::EnableToolset)
            .map(|e| e.summary.toolset.as_str())
            .collect();
        sets.sort_unstable();
        sets.dedup();
        sets
    }
}

/// Markdown table of the catalog for the README; a test keeps the README in step.
pub fn markdown_table(catalog: &Catalog) -> String {
    let mut out = String::from(
        "| tool | REST method | scope | toolset | writes | what it does |\n|---|---|---|---|---|---|\n",
    );
    for entry in catalog.entries() {
        let s = &entry.spec;
        let first_sentence = s
            .description
            .lines()
            .next()
            .unwrap_or_default()
            .replace('|', "\\|");
        let toolset = if s.default {
            format!("`{}` (default)", s.toolset)
        } else {
            format!("`{}`", s.toolset)
        };
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | {toolset} | {} | {} |\n",
            s.name,
            s.method,
            s.scope,
            match (s.is_write(), s.hints.destructive) {
                (true, true) => "**yes** (destructive)",
                (true, false) => "**yes**",
                _ => "no",
            },
            first_sentence
        ));
    }
    out
}

/// The tools published when nothing is named, one line each, for the README.
pub fn default_tools_list(catalog: &Catalog) -> String {
    catalog
        .entries()
        .filter(|e| e.spec.default)
        .map(|e| {
            let s = &e.spec;
            let writes = if s.is_write() { " (writes)" } else { "" };
            format!("- `{}`{writes}: {}\n", s.name, s.title)
        })
        .collect()
}

/// Which webhook scope each tool needs, as a Markdown table for the README and the scopes
/// reference page; a test keeps both in step.
pub fn scope_table(catalog: &Catalog) -> String {
    let mut by_scope: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for entry in catalog.entries() {
        by_scope
            .entry(entry.spec.scope.as_str())
            .or_default()
            .push(entry.spec.name.as_str());
    }
    let mut out = String::from("| scope | tools |\n|---|---|\n");
    for (scope, tools) in by_scope {
        let shown = if scope == "basic" {
            "`basic` (always there)".to_owned()
        } else {
            format!("`{scope}`")
        };
        let tools: Vec<String> = tools.iter().map(|t| format!("`{t}`")).collect();
        out.push_str(&format!("| {shown} | {} |\n", tools.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tool name a REST method gets: dots become `_`, camelCase becomes snake_case.
    fn tool_name_for(method: &str) -> String {
        let mut out = String::with_capacity(method.len() + 4);
        let mut prev_lower = false;
        for ch in method.chars() {
            if ch == '.' {
                out.push('_');
                prev_lower = false;
            } else if ch.is_ascii_uppercase() {
                if prev_lower {
                    out.push('_');
                }
                out.push(ch.to_ascii_lowercase());
                prev_lower = false;
            } else {
                out.push(ch);
                prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
            }
        }
        out
    }

    #[test]
    fn naming_rule() {
        assert_eq!(
            tool_name_for("landing.site.getRights"),
            "landing_site_get_rights"
        );
        assert_eq!(
            tool_name_for("sonet_group.feature.access"),
            "sonet_group_feature_access"
        );
        assert_eq!(
            tool_name_for("tasks.task.getaccess"),
            "tasks_task_getaccess"
        );
        assert_eq!(
            tool_name_for("landing.role.isEnabled"),
            "landing_role_is_enabled"
        );
    }

    #[test]
    fn a_start_reads_only_the_index_and_each_index_line_matches_its_entry() {
        let catalog = Catalog::embedded().unwrap();
        let selection = crate::pipeline::Selection::resolve(&catalog, &Default::default()).unwrap();
        let published: Vec<&str> = catalog
            .entries()
            .map(|e| e.summary.name.as_str())
            .filter(|name| selection.allows(name))
            .collect();
        assert!(!published.is_empty());
        assert!(catalog.get("landing_site_set_rights").is_some());
        assert!(catalog.by_method("LANDING.SITE.GETRIGHTS").is_some());
        assert_eq!(catalog.toolsets().len(), Catalog::shared().toolsets().len());
        assert!(
            catalog.entries().all(|e| !e.spec.is_read()),
            "choosing and finding tools read whole entries"
        );
        for e in catalog.entries() {
            assert_eq!(e.summary, Summary::of(&e.spec), "{}", e.summary.name);
        }
    }

    #[test]
    fn embedded_catalog_is_consistent() {
        let catalog = Catalog::shared();
        assert!(catalog.entries().count() >= 4);
        for e in catalog.entries() {
            let s = &e.spec;
            // The issue names tasks.task.getaccess's tool with an explicit word break.
            if s.method != "tasks.task.getaccess" {
                assert_eq!(s.name, tool_name_for(&s.method), "{}", s.method);
            }
            // The reference validator checks each schema against the draft's meta-schema; the
            // checker the server uses must accept every one of them.
            jsonschema::validator_for(&s.input_schema)
                .unwrap_or_else(|err| panic!("{}: input schema: {err}", s.name));
            jsonschema::validator_for(&s.output_schema)
                .unwrap_or_else(|err| panic!("{}: output schema: {err}", s.name));
            Checker::compile_now(&s.input_schema)
                .unwrap_or_else(|err| panic!("{}: input schema: {err}", s.name));
            Checker::compile_now(&s.output_schema)
                .unwrap_or_else(|err| panic!("{}: output schema: {err}", s.name));
            assert!(!s.scope.is_empty());
            if let Some(line) = &s.instruction {
                for other in catalog.entries().filter(|o| o.spec.name != s.name) {
                    assert!(
                        !names_tool(line, &other.spec.name),
                        "{}: instruction names {}, which may not be published",
                        s.name,
                        other.spec.name
                    );
                }
            }
            if s.is_portal_method() {
                let (page, commit) = s
                    .docs
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{}: docs must be <page>@<commit>", s.name));
                assert!(
                    page.ends_with(".md")
                        && commit.len() >= 7
                        && commit.chars().all(|c| c.is_ascii_hexdigit()),
                    "{}: docs = {:?} is not <page.md>@<commit>",
                    s.name,
                    s.docs
                );
            } else {
                assert!(
                    s.docs.is_empty(),
                    "{}: docs for a tool no portal answers",
                    s.name
                );
            }
            assert!(
                !s.toolset.is_empty()
                    && s.toolset
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}: toolset {:?}",
                s.name,
                s.toolset
            );
            match (&s.example, s.kind) {
                (Some(example), _) => {
                    assert!(
                        e.check_arguments(&example.arguments).is_empty(),
                        "{}: the example's arguments do not fit the input schema",
                        s.name
                    );
                    let mut answer = example.answer.clone();
                    s.normalize.apply(&mut answer);
                    let structured = json!({ "result": answer });
                    assert!(
                        e.check_answer(&structured).is_ok(),
                        "{}: the example's answer does not fit the output schema",
                        s.name
                    );
                }
                (None, Kind::Rest) => panic!("{}: a REST tool needs an [example]", s.name),
                (
                    None,
                    Kind::Batch
                    | Kind::History
                    | Kind::EnableToolset
                    | Kind::ResolveAccessCodes
                    | Kind::WhoCan,
                ) => {}
            }
            // Every write can be dry-run, confirmed and recorded.
            if s.is_write() {
                let change = s
                    .change
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: no [change]", s.name));
                assert!(
                    s.input_schema["properties"]["dry_run"].is_object(),
                    "{}",
                    s.name
                );
                for pointer in change.id_at.iter().chain([&change.set_at]) {
                    let property = pointer.trim_start_matches('/');
                    assert!(
                        s.input_schema["properties"].get(property).is_some(),
                        "{}: {pointer}",
                        s.name
                    );
                }
            }
            if let Some(reader) = &s.check_with {
                assert!(s.is_write(), "{}: only writes name a check", s.name);
                let target = catalog
                    .get(reader)
                    .unwrap_or_else(|| panic!("{}: check_with names unknown {reader}", s.name));
                assert!(
                    target.spec.hints.read_only,
                    "{}: check_with {reader} writes",
                    s.name
                );
            }
            // A guard is only as good as what it calls: it must exist and be a read.
            for p in &s.preflight {
                let (method, pointer) = match p {
                    Preflight::RefuseIf { method, .. } => (method.as_str(), None),
                    Preflight::KnownAccessCodes {
                        codes_at, unnamed, ..
                    } => {
                        for rule in unnamed {
                            assert!(
                                rule.check_as.as_ref().is_none_or(|t| {
                                    t.contains("{id}") == rule.code.contains("{id}")
                                }),
                                "{}: unnamed {} maps {{id}} it does not have",
                                s.name,
                                rule.code
                            );
                            assert!(
                                !rule.means.is_empty(),
                                "{}: say what {} means",
                                s.name,
                                rule.code
                            );
                        }
                        ("access.name", Some(codes_at))
                    }
                    Preflight::GroupRoles {
                        group_at, users_at, ..
                    } => {
                        for at in [group_at, users_at] {
                            assert!(
                                s.input_schema["properties"]
                                    .get(at.trim_start_matches('/'))
                                    .is_some(),
                                "{}: preflight reads {at}, which is not an argument",
                                s.name
                            );
                        }
                        ("sonet_group.user.get", None)
                    }
                    Preflight::KnownIds {
                        method, values_at, ..
                    } => (method.as_str(), Some(values_at)),
                    Preflight::UsersExist { users_at, .. } => ("user.get", Some(users_at)),
                };
                let target = catalog
                    .by_method(method)
                    .unwrap_or_else(|| panic!("{}: preflight calls unknown {method}", s.name));
                assert!(
                    target.spec.hints.read_only,
                    "{}: preflight {method} writes",
                    s.name
                );
                assert!(s.is_write(), "{}: only writes need preflights", s.name);
                if let Some(pointer) = pointer {
                    let property = pointer.trim_start_matches('/');
                    assert!(
                        s.input_schema["properties"].get(property).is_some(),
                        "{}: preflight reads {pointer}, which is not an argument",
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn enable_toolset_offers_every_toolset() {
        let catalog = Catalog::shared();
        let tool = catalog
            .get("enable_toolset")
            .expect("enable_toolset is in the catalog");
        let offered: Vec<&str> = tool.spec.input_schema["properties"]["toolset"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| *s != "all")
            .collect();
        assert_eq!(offered, catalog.toolsets());
    }

    #[test]
    fn codes_are_found_in_objects_and_arrays() {
        let args = json!({"rights": {"AU": ["read"], "U3": ["edit"]}, "codes": ["SG1_K", "U2"]});
        let mut from_object = Preflight::codes_in("/rights", &args);
        from_object.sort();
        assert_eq!(from_object, ["AU", "U3"]);
        assert_eq!(Preflight::codes_in("/codes", &args), ["SG1_K", "U2"]);
        assert!(Preflight::codes_in("/missing", &args).is_empty());
    }

    #[test]
    fn unnamed_codes_match_their_pattern_only() {
        let bare = UnnamedCode {
            code: "SG{id}".into(),
            means: "workgroup".into(),
            check_as: Some("SG{id}_K".into()),
        };
        assert_eq!(bare.check("SG12"), Some(Some("SG12_K".into())));
        for other in ["SG12_K", "SG", "SGx", "SG012", "USG12"] {
            assert_eq!(bare.check(other), None, "{other}");
        }
        let everyone = UnnamedCode {
            code: "UA".into(),
            means: "everyone".into(),
            check_as: None,
        };
        assert_eq!(everyone.check("UA"), Some(None));
        assert_eq!(everyone.check("UAX"), None);
    }

    #[test]
    fn rejects_misnamed_file() {
        let text = include_str!("../tools/access.name.toml");
        assert!(Catalog::from_files([("access.name.toml", text)]).is_ok());
        let err = Catalog::from_files([("wrong.toml", text)]).unwrap_err();
        assert!(err.to_string().contains("must be named"), "{err}");
    }

    #[test]
    fn rejects_a_schema_keyword_the_checker_cannot_enforce() {
        let text = include_str!("../tools/access.name.toml");
        let extended = text.replacen("[input_schema]\n", "[input_schema]\nminContains = 1\n", 1);
        assert_ne!(
            extended, text,
            "access.name.toml has an [input_schema] table"
        );
        let err = Catalog::from_files([("access.name.toml", extended.as_str())]).unwrap_err();
        let err = err.to_string();
        assert!(
            err.starts_with("tools/access.name.toml: input_schema: schema at /minContains:")
                && err.contains("`minContains` is not supported"),
            "{err}"
        );
    }

    #[test]
    fn normalizes_a_list_keyed_by_position() {
        let n = Normalize {
            list_to_object: vec![String::new()],
            ..Normalize::default()
        };
        let mut list = json!([["read", "edit"]]);
        n.apply(&mut list);
        assert_eq!(list, json!({"0": ["read", "edit"]}));
        let mut empty = json!([]);
        n.apply(&mut empty);
        assert_eq!(empty, json!({}));
        let mut kept = json!({"0": ["read"], "5": ["edit"]});
        n.apply(&mut kept);
        assert_eq!(kept, json!({"0": ["read"], "5": ["edit"]}));
    }

    #[test]
    fn normalizes_empty_array() {
        let n = Normalize {
            empty_array_to_object: vec!["/allowedActions".into()],
            ..Normalize::default()
        };
        let mut v = json!({"allowedActions": []});
        n.apply(&mut v);
        assert_eq!(v, json!({"allowedActions": {}}));
        let mut kept = json!({"allowedActions": {"1": {"EDIT": true}}});
        n.apply(&mut kept);
        assert_eq!(kept, json!({"allowedActions": {"1": {"EDIT": true}}}));
    }

    #[test]
    fn argument_problems_name_the_argument() {
        let catalog = Catalog::shared();
        let e = catalog.get("landing_site_set_rights").unwrap();
        let problems = e.check_arguments(&json!({"id": 5, "rights": {"XX1": ["read"]}}));
        assert!(
            problems.iter().any(|p| p.path.contains("rights")),
            "{problems:?}"
        );
        let problems = e.check_arguments(&json!({"id": 5, "rights": {"AU": ["reed"]}}));
        assert_eq!(problems[0].path, "/rights/AU/0", "{problems:?}");
        assert!(
            problems[0].message.starts_with("must be one of"),
            "{problems:?}"
        );
        let problems = e.check_arguments(&json!({"id": "abc", "rights": {}}));
        assert_eq!(
            problems,
            [ArgumentProblem {
                path: "/id".to_owned(),
                message: r#"must be an integer ≥ 0 or a string of digits; got "abc""#.to_owned()
            }]
        );
        assert!(
            e.check_arguments(&json!({"id": 5, "rights": {"AU": ["read"], "SG3_K": ["edit"]}}))
                .is_empty()
        );
    }
}
