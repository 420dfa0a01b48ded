//! What one catalog file says, as plain data. The build script reads `tools/*.toml` into these
//! types (so a bad file fails the build) and writes them into the binary as a digest; the
//! server reads the digest back. One definition serves both, so a new catalog field is added
//! here once and travels through the digest by itself.

use std::{fmt, sync::OnceLock};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::bitrix::Api;

/// A catalog entry as the binary holds it: JSON text borrowed from the digest, parsed the
/// first time it is read, so a start parses only the few tools a session publishes or calls.
/// An entry read from a catalog file (the tests) is parsed already.
pub struct Lazy<T> {
    text: Option<&'static str>,
    value: OnceLock<T>,
}

impl<T> Lazy<T> {
    pub fn new(value: T) -> Self {
        Self {
            text: None,
            value: OnceLock::from(value),
        }
    }

    /// Whether the text has been parsed yet.
    #[cfg(test)]
    pub fn is_read(&self) -> bool {
        self.value.get().is_some()
    }

    /// JSON text compiled into the binary, borrowed rather than copied.
    pub fn from_static(text: &'static str) -> Self {
        Self {
            text: Some(text),
            value: OnceLock::new(),
        }
    }
}

impl<T: DeserializeOwned> std::ops::Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value.get_or_init(|| {
            let text = self.text.unwrap_or("null");
            // The build script wrote this text from a value of this very type.
            serde_json::from_str(text).expect("the catalog digest reads back")
        })
    }
}

impl<T: DeserializeOwned + fmt::Debug> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// The four annotation hints, always all set: the spec's defaults (destructive, open-world
/// writes) would make every read look dangerous to the clients that gate on them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

/// Advice attached to a portal error that this method is known to answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorAdvice {
    /// Matches the portal's error code exactly (case-insensitive).
    #[serde(default)]
    pub code: Option<String>,
    /// Matches when the portal's description contains this text (case-insensitive).
    #[serde(default)]
    pub description_contains: Option<String>,
    pub advice: String,
}

/// Documented quirks of a method's answer, repaired before the model sees it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// JSON pointers (into `result`) where the portal answers `[]` for an empty map.
    #[serde(default)]
    pub empty_array_to_object: Vec<String>,
    /// JSON pointers (into `result`) of maps keyed by integers: PHP's `json_encode` sends a
    /// map whose keys are exactly 0..n-1 as a list, so `[a, b]` becomes `{"0": a, "1": b}`.
    #[serde(default)]
    pub list_to_object: Vec<String>,
}

/// How a tool is carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One REST call with the arguments as parameters.
    #[default]
    Rest,
    /// Many read-only tool calls sent as Bitrix24 `batch` requests.
    Batch,
    /// Answered from this server's own record of the changes it sent; nothing reaches the portal.
    History,
    /// Publishes a toolset in the running MCP session; nothing is sent to the portal.
    EnableToolset,
    /// Answers who access codes stand for from batched reads of catalog methods.
    ResolveAccessCodes,
    /// Answers who holds which rights on objects, with each right's source, from batched
    /// reads, resolved access codes and the ledger.
    WhoCan,
}

/// What a write changes, so that the confirmation, the dry run and the ledger can name the
/// object and compare the new set with the last one written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSpec {
    /// The kind of object, in words: "site", "role", "portal".
    pub object: String,
    /// JSON pointer to the object's id in the arguments; none for a portal-wide write.
    #[serde(default)]
    pub id_at: Option<String>,
    /// JSON pointer to the set the write replaces.
    pub set_at: String,
    /// What the set's keys or items are when they are not access codes, e.g. "site".
    #[serde(default)]
    pub items: Option<String>,
    /// Whether the write replaces the whole set (site rights) or only changes what it names
    /// (adding a member): only a replacing write makes everything unlisted lose its rights.
    #[serde(default = "replaces_by_default")]
    pub replaces: bool,
}

fn replaces_by_default() -> bool {
    true
}

/// How a write is put to the person who approves it: a label for every argument sent, how
/// values are named, and what the change does, in the catalog's words.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSpec {
    /// One entry per input property the write sends (every one but `dry_run`).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, FieldSpec>,
    /// Sentences saying what the change does. `{FIELD}` stands for the field's value as shown
    /// (named where it can be), `{FIELD.id}` for its plain value.
    #[serde(default)]
    pub effects: Vec<String>,
}

/// One argument in the question.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub label: String,
    /// What the value (its items, or its keys for a map) is, so it can be named.
    #[serde(default)]
    pub names: Option<Names>,
    /// For objects inside a list: the key whose value `names` applies to.
    #[serde(default)]
    pub item_key: Option<String>,
    /// Words for coded values: `E = "moderator"`.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

/// Kinds of values the question names through `access.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Names {
    /// User ids: named as `U<id>`.
    User,
    /// Workgroup ids: named as their members' code `SG<id>_K`.
    Workgroup,
    /// Access codes, named as they are.
    AccessCode,
}

impl Names {
    /// The access code `access.name` is asked for this value.
    pub fn code_for(self, value: &str) -> String {
        match self {
            Self::User => format!("U{value}"),
            Self::Workgroup => format!("SG{value}_K"),
            Self::AccessCode => value.to_owned(),
        }
    }
}

/// A check made before a write, so that the portal never silently accepts a call that
/// changes nothing. Declared in the catalog, carried out by one mechanism in the dispatcher.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preflight {
    /// Calls `method` (no parameters) and refuses when its result equals `equals`.
    RefuseIf {
        method: String,
        equals: Value,
        message: String,
    },
    /// Asks `access.name` about the access codes found at `codes_at` (a JSON pointer into
    /// the arguments: the keys of an object or the items of an array) and refuses when the
    /// portal does not know some of them.
    KnownAccessCodes {
        codes_at: String,
        /// Documented codes that `access.name` cannot name, and how each is checked instead.
        #[serde(default)]
        unnamed: Vec<UnnamedCode>,
        /// When the codes sit in objects (`[{"accessCode": "D2"}]`): the key that holds each.
        #[serde(default)]
        item_key: Option<String>,
    },
    /// Reads the members of the workgroup whose ID is at `group_at` (`sonet_group.user.get`)
    /// and checks the users at `users_at` (one ID or a list): refused when one holds a role in
    /// `refuse_roles`, or holds none in `require_roles` (non-members hold none).
    GroupRoles {
        group_at: String,
        users_at: String,
        #[serde(default)]
        refuse_roles: Vec<String>,
        #[serde(default)]
        require_roles: Vec<String>,
        message: String,
    },
    /// Calls `method` (no parameters) and refuses when a value at `values_at` (the items'
    /// `item_key`) is not among the `id`s of the items listed at `list_at` in its answer.
    KnownIds {
        method: String,
        list_at: String,
        values_at: String,
        item_key: String,
        message: String,
    },
    /// Looks the users at `users_at` (one ID or a list) up with `user.get` and refuses when
    /// one is not found: a method that takes a user ID without checking it is the case.
    UsersExist { users_at: String, message: String },
}

/// An access code the method documents but `access.name` has no provider for: the guard must
/// not refuse it for being nameless, yet must not wave through a code that means nothing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnnamedCode {
    /// The code; `{id}` stands for a positive number (`SG{id}` matches `SG12`).
    pub code: String,
    /// What the code means for this method, said in the refusal text.
    pub means: String,
    /// The nameable code to ask `access.name` instead (`SG{id}_K`); without it the code is
    /// accepted as it is.
    #[serde(default)]
    pub check_as: Option<String>,
}

/// One catalog file, as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub method: String,
    pub name: String,
    #[serde(default)]
    pub kind: Kind,
    pub title: String,
    pub scope: String,
    /// The group `--toolsets` selects this tool by.
    pub toolset: String,
    /// The official docs page this entry was last checked against, as
    /// `<path in bitrix24/b24restdocs>@<commit>`, so the next reader can check it again. Empty
    /// for a tool this server answers itself.
    #[serde(default)]
    pub docs: String,
    /// `api = "v3"` for a REST 3.0 method; classic REST when left out.
    #[serde(default)]
    pub api: Api,
    /// Published when no `--toolsets`/`--tools` is given: the common questions, kept within
    /// the context budget every session pays for.
    #[serde(default)]
    pub default: bool,
    pub description: String,
    pub hints: Hints,
    pub input_schema: Value,
    pub output_schema: Value,
    #[serde(default)]
    pub normalize: Normalize,
    #[serde(default)]
    pub errors: Vec<ErrorAdvice>,
    /// How to ask for less when an answer is over the size limit.
    #[serde(default)]
    pub narrow: Option<String>,
    /// One line of the server instructions, sent only while this tool is published; it may
    /// name no other tool, since that one may be filtered out.
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default)]
    pub preflight: Vec<Preflight>,
    #[serde(default)]
    pub change: Option<ChangeSpec>,
    /// How a write is put to the person who approves it; every write has one.
    #[serde(default)]
    pub question: Option<QuestionSpec>,
    /// One valid call and a portal answer of the documented shape. The tests forward it to a
    /// test portal, so a new tool is covered by adding its file alone.
    #[serde(default)]
    pub example: Option<Example>,
    /// For a write: the read tool that shows whether it took effect, named to the model when
    /// the write's answer is lost. Left out when REST cannot read the change back.
    #[serde(default)]
    pub check_with: Option<String>,
}

/// What choosing and finding tools needs of each one (the toolset filters, lookup by name or
/// method, the instructions' list of names), so a start reads this much of every entry and
/// the rest only of the tools it publishes. The build script takes it from the entry itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Summary {
    pub name: String,
    pub method: String,
    pub toolset: String,
    pub default: bool,
    pub kind: Kind,
    pub read_only: bool,
}

impl Summary {
    pub fn of(spec: &ToolSpec) -> Self {
        Self {
            name: spec.name.clone(),
            method: spec.method.clone(),
            toolset: spec.toolset.clone(),
            default: spec.default,
            kind: spec.kind,
            read_only: spec.hints.read_only,
        }
    }

    pub fn is_write(&self) -> bool {
        !self.read_only
    }
}

/// One line of the digest's index: the summary, and where the entry's JSON sits in the
/// digest's text of entries.
#[derive(Debug, Deserialize, Serialize)]
pub struct Indexed {
    #[serde(flatten)]
    pub summary: Summary,
    pub at: (usize, usize),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub arguments: Value,
    /// The portal's `result`, before normalisation; left out for `null`, which TOML cannot
    /// write.
    #[serde(default)]
    pub answer: Value,
}
