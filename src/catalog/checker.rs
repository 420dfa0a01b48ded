//! Checks values against the catalog's own JSON schemas (draft 2020-12), for exactly the
//! keywords the catalog uses, and is the one compiled model of those schemas that the answer
//! floor, the settling of integer arguments and the words of an argument problem walk. Any
//! keyword outside the subset is refused when the schema is compiled (the build script compiles
//! every catalog schema), so a schema can never mean more than this checker enforces.
//!
//! Why not jsonschema, measured (December 2026, this repository's 44 tools: each example's
//! arguments against its input schema and `{"result": answer}` against its output schema, 77
//! valid pairs, release profile, best of 5 × 20 000 calls; first use in a fresh process, median
//! of 21):
//! - per call, mean: this checker 205–220 ns; jsonschema 0.61.2 `validator_for` 80 ns;
//!   jsonschema 0.60.2 with `macros` (validators generated at build time) 35 ns. The slowest
//!   here are arguments with a `pattern` (`method_get`, `user_get`: 1.1–1.6 µs, the plain NFA
//!   chosen below; 0.08–0.12 µs generated). All of it is far below one portal round trip.
//! - first use (compile and check one tool's arguments): this checker 15–50 µs to compile,
//!   30–50 µs in all without a `pattern` and 130–270 µs when one has to be built; jsonschema
//!   0.61.2 1.5–2.0 ms (it checks the schema against the draft's meta-schema first); generated
//!   validators have nothing to build: 0.6 µs without a pattern, 120–410 µs with one (their
//!   regex is built at first use too).
//! - `macros` is not to be had for the jsonschema in the tree: 0.61.2's feature needs
//!   jsonschema-macros 0.61.2, which crates.io does not have (0.60.2 is the newest). With it,
//!   the build script would write each schema to a file and a validator type per schema (88),
//!   and this checker would stay all the same: it is the build-time lint (unknown keywords,
//!   patterns that differ between ECMA-262 and Rust), it says which subschema failed for the
//!   problem's words, and it is the model the other walkers read.
//!
//! So the checker is kept for being one file that does all four jobs, not for speed: the
//! generated validators are faster by a fraction of a microsecond a call. jsonschema stays a
//! dev-dependency that cross-checks this checker (`cross_check.rs`).
//!
//! Shared with the build script through `#[path]`: it uses nothing of the crate.

use std::{cmp::Ordering, collections::HashSet, fmt, sync::OnceLock};

use regex_automata::meta::{Config, Regex};
use serde_json::{Map, Number, Value};

/// A compiled schema.
#[derive(Debug)]
pub struct Checker {
    root: Node,
}

/// A schema keyword this checker cannot enforce, or a keyword whose value is not what the
/// draft allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// JSON pointer of the offending keyword in the schema.
    pub at: String,
    pub problem: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.at.is_empty() { "/" } else { &self.at };
        write!(f, "schema at {at}: {}", self.problem)
    }
}

impl std::error::Error for CompileError {}

/// One way a value does not fit the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation<'v> {
    /// JSON pointer of the failing value (for a missing or unexpected property: of the object
    /// holding it).
    pub instance_path: String,
    /// JSON pointer of the subschema whose keyword failed, so the caller can say what the
    /// value must be in the schema's own terms.
    pub schema_at: String,
    /// The failing keyword, for tests and logs; never meant for the model.
    pub keyword: &'static str,
    pub failure: Failure,
    pub instance: &'v Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A `required` property is absent.
    Missing(String),
    /// A property that `additionalProperties: false` does not allow.
    Unexpected(String),
    /// An object key that its `propertyNames` schema refuses.
    BadKey(String),
    /// The value itself does not fit the subschema at `schema_at`.
    Value,
}

/// Keywords that only annotate: no effect on whether a value fits.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "examples",
    "default",
    "$comment",
    "format",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// A compiled schema: the one model of the catalog's schemas. The checker walks it, and so do
/// the answer floor, the integer settling of arguments and the words of an argument problem,
/// through the read-only accessors below.
#[derive(Debug)]
pub enum Node {
    True,
    /// The `false` schema, with its location.
    False(String),
    Schema(Box<Schema>),
}

#[derive(Debug, Default)]
pub struct Schema {
    at: String,
    types: Option<u8>,
    /// The `type` names as written, in order; a string `type` gives one.
    type_names: Vec<&'static str>,
    /// Whether `type` was written as one name rather than an array.
    single_type: bool,
    description: Option<String>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    additional: Option<Node>,
    property_names: Option<Node>,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    any_of: Vec<Node>,
    all_of: Vec<Node>,
    not: Option<Node>,
    condition: Option<Node>,
    then: Option<Node>,
    otherwise: Option<Node>,
    allowed: Option<Vec<Value>>,
    constant: Option<Value>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    pattern: Option<Pattern>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    prefix_items: Vec<Node>,
    items: Option<Node>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    unique_items: bool,
}

const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const OBJECT: u8 = 4;
const ARRAY: u8 = 8;
const NUMBER: u8 = 16;
const STRING: u8 = 32;
const INTEGER: u8 = 64;

const TYPE_NAMES: [(&str, u8); 7] = [
    ("null", NULL),
    ("boolean", BOOLEAN),
    ("object", OBJECT),
    ("array", ARRAY),
    ("number", NUMBER),
    ("string", STRING),
    ("integer", INTEGER),
];

fn type_bit(name: &str) -> Option<(&'static str, u8)> {
    TYPE_NAMES.into_iter().find(|(n, _)| *n == name)
}

/// Appends one reference token to a JSON pointer, escaped as RFC 6901 says: the one pointer
/// form of schema locations, instance paths and argument problems alike.
pub fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// `at` with one more reference token.
pub fn child(at: &str, token: &str) -> String {
    let mut out = at.to_owned();
    push_token(&mut out, token);
    out
}

impl Checker {
    /// Compiles `schema`, leaving each pattern's regular expression for its first use.
    pub fn compile(schema: &Value) -> Result<Self, CompileError> {
        Ok(Self {
            root: compile(schema, String::new())?,
        })
    }

    /// Compiles `schema` with every pattern, so that a pattern which cannot compile is an
    /// error now rather than a panic at the first string it meets.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn compile_now(schema: &Value) -> Result<Self, CompileError> {
        let checker = Self::compile(schema)?;
        checker.root.build_patterns()?;
        Ok(checker)
    }

    /// Every violation.
    pub fn violations<'v>(&self, value: &'v Value) -> Vec<Violation<'v>> {
        let mut sink = Sink {
            found: Some(Vec::new()),
        };
        self.root.check(value, &Path::Root, &mut sink);
        sink.found.unwrap_or_default()
    }

    /// One violation, if there is any: a value that fits is walked only until it is known to
    /// fit, and only one that does not is walked again to say where.
    pub fn first_violation<'v>(&self, value: &'v Value) -> Option<Violation<'v>> {
        if self.is_valid(value) {
            return None;
        }
        self.violations(value).into_iter().next()
    }

    pub fn is_valid(&self, value: &Value) -> bool {
        self.root.fits(value)
    }

    /// The compiled schema, for the walkers that read it rather than check against it.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The subschema at `at` (a violation's `schema_at`).
    pub fn subschema(&self, at: &str) -> Option<&Node> {
        self.root.find(at)
    }
}

/// Read-only views of the compiled model. A keyword the schema leaves out reads as absent.
impl Node {
    /// The keywords of a schema object; `None` for `true` and `false`.
    pub fn schema(&self) -> Option<&Schema> {
        match self {
            Node::Schema(s) => Some(s),
            Node::True | Node::False(_) => None,
        }
    }

    fn children(&self) -> impl Iterator<Item = &Node> {
        let s = self.schema();
        let props = s
            .into_iter()
            .flat_map(|s| s.properties.iter().map(|(_, n)| n));
        props.chain(s.into_iter().flat_map(|s| {
            s.additional
                .iter()
                .chain(&s.property_names)
                .chain(&s.any_of)
                .chain(&s.all_of)
                .chain(&s.not)
                .chain(&s.condition)
                .chain(&s.then)
                .chain(&s.otherwise)
                .chain(&s.prefix_items)
                .chain(&s.items)
        }))
    }

    fn find(&self, at: &str) -> Option<&Node> {
        let here = match self {
            Node::True => None,
            Node::False(here) => Some(here),
            Node::Schema(s) => Some(&s.at),
        };
        if here.is_some_and(|h| h == at) {
            return Some(self);
        }
        self.children().find_map(|n| n.find(at))
    }
}

impl Schema {
    /// The `type` names as written, in order.
    pub fn type_names(&self) -> &[&'static str] {
        &self.type_names
    }

    /// The `type`, when it was written as one name.
    pub fn single_type(&self) -> Option<&'static str> {
        self.type_names
            .first()
            .copied()
            .filter(|_| self.single_type)
    }

    /// Whether every number this schema's `type` admits is an integer.
    pub fn wants_integer(&self) -> bool {
        self.types
            .is_some_and(|mask| mask & INTEGER != 0 && mask & NUMBER == 0)
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn property(&self, name: &str) -> Option<&Node> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    }

    pub fn has_properties(&self) -> bool {
        !self.properties.is_empty()
    }

    pub fn required(&self) -> &[String] {
        &self.required
    }

    pub fn additional(&self) -> Option<&Node> {
        self.additional.as_ref()
    }

    pub fn any_of(&self) -> &[Node] {
        &self.any_of
    }

    pub fn all_of(&self) -> &[Node] {
        &self.all_of
    }

    pub fn allowed(&self) -> Option<&[Value]> {
        self.allowed.as_deref()
    }

    pub fn constant(&self) -> Option<&Value> {
        self.constant.as_ref()
    }

    pub fn minimum(&self) -> Option<f64> {
        self.minimum.as_ref().and_then(Number::as_f64)
    }

    pub fn maximum(&self) -> Option<f64> {
        self.maximum.as_ref().and_then(Number::as_f64)
    }

    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_ref().map(|p| p.text.as_str())
    }

    pub fn length_bounds(&self) -> (Option<usize>, Option<usize>) {
        (self.min_length, self.max_length)
    }

    pub fn item_bounds(&self) -> (Option<usize>, Option<usize>) {
        (self.min_items, self.max_items)
    }

    pub fn items(&self) -> Option<&Node> {
        self.items.as_ref()
    }

    pub fn unique_items(&self) -> bool {
        self.unique_items
    }
}

fn compile(schema: &Value, at: String) -> Result<Node, CompileError> {
    let map = match schema {
        Value::Bool(true) => return Ok(Node::True),
        Value::Bool(false) => return Ok(Node::False(at)),
        Value::Object(map) => map,
        _ => {
            return Err(CompileError {
                at,
                problem: "a schema must be an object or a boolean".to_owned(),
            });
        }
    };
    let mut s = Schema::default();
    for (key, value) in map {
        let k = Keyword {
            key,
            value,
            here: child(&at, key),
        };
        let known = s.applicator(&k)?
            || s.object_keyword(&k)?
            || s.array_keyword(&k)?
            || s.value_keyword(&k)?
            || ANNOTATIONS.contains(&key.as_str());
        if !known {
            return Err(CompileError {
                at: k.here,
                problem: format!(
                    "the keyword `{key}` is not supported by the catalog's schema checker \
                     (src/catalog/checker.rs); use the keywords it knows or teach it this one"
                ),
            });
        }
    }
    s.at = at;
    Ok(Node::Schema(Box::new(s)))
}

/// One keyword of a schema being compiled, with what reading its value needs.
struct Keyword<'a> {
    key: &'a str,
    value: &'a Value,
    here: String,
}

impl Keyword<'_> {
    fn wrong(&self, what: &str) -> CompileError {
        CompileError {
            at: self.here.clone(),
            problem: format!("`{}` must be {what}", self.key),
        }
    }

    fn count(&self) -> Result<usize, CompileError> {
        self.value
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| self.wrong("a non-negative integer"))
    }

    fn schema(&self) -> Result<Node, CompileError> {
        compile(self.value, self.here.clone())
    }

    fn list(&self) -> Result<Vec<Node>, CompileError> {
        let items = self
            .value
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| self.wrong("a non-empty array of schemas"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| compile(item, child(&self.here, &i.to_string())))
            .collect()
    }
}

/// Each reads the keywords of one kind into the schema: `Ok(false)` for a keyword not of its
/// kind.
impl Schema {
    fn applicator(&mut self, k: &Keyword<'_>) -> Result<bool, CompileError> {
        match k.key {
            "anyOf" => self.any_of = k.list()?,
            "allOf" => self.all_of = k.list()?,
            "not" => self.not = Some(k.schema()?),
            "if" => self.condition = Some(k.schema()?),
            "then" => self.then = Some(k.schema()?),
            "else" => self.otherwise = Some(k.schema()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn object_keyword(&mut self, k: &Keyword<'_>) -> Result<bool, CompileError> {
        match k.key {
            "properties" => {
                let props = k
                    .value
                    .as_object()
                    .ok_or_else(|| k.wrong("an object of schemas"))?;
                for (name, sub) in props {
                    self.properties
                        .push((name.clone(), compile(sub, child(&k.here, name))?));
                }
            }
            "required" => {
                let names = k
                    .value
                    .as_array()
                    .ok_or_else(|| k.wrong("an array of names"))?;
                for name in names {
                    let name = name.as_str().ok_or_else(|| k.wrong("an array of names"))?;
                    self.required.push(name.to_owned());
                }
            }
            "additionalProperties" => self.additional = Some(k.schema()?),
            "propertyNames" => self.property_names = Some(k.schema()?),
            "minProperties" => self.min_properties = Some(k.count()?),
            "maxProperties" => self.max_properties = Some(k.count()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn array_keyword(&mut self, k: &Keyword<'_>) -> Result<bool, CompileError> {
        match k.key {
            "minItems" => self.min_items = Some(k.count()?),
            "maxItems" => self.max_items = Some(k.count()?),
            "uniqueItems" => {
                self.unique_items = k.value.as_bool().ok_or_else(|| k.wrong("true or false"))?
            }
            "items" => {
                if k.value.is_array() {
                    // Draft 2019's tuple form; 2020-12 spells it `prefixItems`.
                    return Err(k.wrong("one schema (for a tuple, use `prefixItems`)"));
                }
                self.items = Some(k.schema()?);
            }
            "prefixItems" => self.prefix_items = k.list()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn value_keyword(&mut self, k: &Keyword<'_>) -> Result<bool, CompileError> {
        match k.key {
            "type" => self.read_type(k)?,
            "enum" => {
                let values = k
                    .value
                    .as_array()
                    .ok_or_else(|| k.wrong("an array of values"))?;
                self.allowed = Some(values.clone());
            }
            "const" => self.constant = Some(k.value.clone()),
            "minimum" | "maximum" => {
                let Value::Number(n) = k.value else {
                    return Err(k.wrong("a number"));
                };
                if k.key == "minimum" {
                    self.minimum = Some(n.clone());
                } else {
                    self.maximum = Some(n.clone());
                }
            }
            "pattern" => self.read_pattern(k)?,
            "minLength" => self.min_length = Some(k.count()?),
            "maxLength" => self.max_length = Some(k.count()?),
            "description" => self.description = k.value.as_str().map(str::to_owned),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn read_type(&mut self, k: &Keyword<'_>) -> Result<(), CompileError> {
        let names: Vec<&Value> = match k.value {
            Value::Array(names) if !names.is_empty() => names.iter().collect(),
            Value::String(_) => vec![k.value],
            _ => return Err(k.wrong("a type name or an array of them")),
        };
        let mut mask = 0;
        for name in names {
            let (name, bit) = name
                .as_str()
                .and_then(type_bit)
                .ok_or_else(|| k.wrong("a type name or an array of them"))?;
            mask |= bit;
            self.type_names.push(name);
        }
        self.types = Some(mask);
        self.single_type = k.value.is_string();
        Ok(())
    }

    fn read_pattern(&mut self, k: &Keyword<'_>) -> Result<(), CompileError> {
        let text = k
            .value
            .as_str()
            .ok_or_else(|| k.wrong("a regular expression"))?;
        portable(text).map_err(|problem| CompileError {
            at: k.here.clone(),
            problem: format!("pattern {text:?}: {problem}"),
        })?;
        self.pattern = Some(Pattern {
            text: text.to_owned(),
            at: k.here.clone(),
            regex: OnceLock::new(),
        });
        Ok(())
    }
}

/// A `pattern`, compiled when a string first meets it: compiling is most of the cost of a
/// schema (tens of microseconds each), and most calls meet none or one of a tool's patterns.
#[derive(Debug)]
struct Pattern {
    text: String,
    at: String,
    regex: OnceLock<Regex>,
}

impl Pattern {
    fn build(&self) -> Result<Regex, CompileError> {
        // The catalog's strings are short: the plain NFA simulation matches them in about a
        // microsecond (method_get's 22-character name: 1.3 µs; the default engines 52 ns), and
        // the faster engines would cost more to build than a session's few calls save.
        let config = Config::new()
            .dfa(false)
            .hybrid(false)
            .onepass(false)
            .backtrack(false);
        Regex::builder()
            .configure(config)
            .build(&self.text)
            .map_err(|e| CompileError {
                at: self.at.clone(),
                problem: format!("pattern {:?} does not compile: {e}", self.text),
            })
    }

    fn regex(&self) -> &Regex {
        self.regex.get_or_init(|| {
            // `Checker::compile_now` builds every pattern at build time and in the tests.
            self.build()
                .expect("catalog patterns are compiled when the binary is built")
        })
    }
}

/// Refuses the regular-expression syntax whose meaning differs between ECMA-262 (what a
/// client validating the published schema uses) and the `regex` crate, so that a pattern
/// accepts the same strings on both sides: only ASCII literals, escaped punctuation, positive
/// classes of literals and ranges, groups, alternation, quantifiers and `^`/`$` anchors.
fn portable(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut previous = None;
    while let Some(c) = chars.next() {
        if !c.is_ascii() {
            return Err(format!(
                "write {c:?} as an ASCII escape-free class or leave it out; non-ASCII text matches differently (UTF-16 units in ECMA-262)"
            ));
        }
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => {}
                Some(e) => {
                    return Err(format!(
                        "`\\{e}` means different things in ECMA-262 and Rust; write a class such as [0-9]"
                    ));
                }
                None => return Err("ends with a lone backslash".to_owned()),
            },
            '[' if in_class => {
                return Err("`[` inside a class: escape it (Rust reads a nested class)".to_owned());
            }
            '[' => {
                in_class = true;
                if chars.peek() == Some(&'^') {
                    return Err("a negated class `[^` also matches half of a character outside the BMP in ECMA-262".to_owned());
                }
            }
            ']' if in_class => in_class = false,
            '&' | '-' | '~' if in_class && previous == Some(c) => {
                return Err(format!(
                    "`{c}{c}` inside a class is a set operation in Rust only"
                ));
            }
            '.' if !in_class => {
                return Err(
                    "`.` excludes different line ends in ECMA-262 and Rust; write a class"
                        .to_owned(),
                );
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                chars.next();
                if chars.next() != Some(':') {
                    return Err("only plain `(...)` and `(?:...)` groups are portable".to_owned());
                }
            }
            _ => {}
        }
        previous = Some(c);
    }
    Ok(())
}

/// The instance path being checked, built only when a violation is reported.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, key) => {
                let mut out = parent.render();
                push_token(&mut out, key);
                out
            }
            Path::Index(parent, i) => format!("{}/{i}", parent.render()),
        }
    }
}

/// Where violations go: collected, or (`found: None`) only whether there is one, which lets a
/// check stop at the first.
struct Sink<'v> {
    found: Option<Vec<Violation<'v>>>,
}

impl<'v> Sink<'v> {
    /// Records a violation; `false` when the check can stop here.
    fn report(
        &mut self,
        schema_at: &str,
        keyword: &'static str,
        at: &Path<'_>,
        instance: &'v Value,
        failure: Failure,
    ) -> bool {
        match &mut self.found {
            Some(found) => {
                found.push(Violation {
                    instance_path: at.render(),
                    schema_at: schema_at.to_owned(),
                    keyword,
                    failure,
                    instance,
                });
                true
            }
            None => false,
        }
    }

    fn collecting(&self) -> bool {
        self.found.is_some()
    }
}

impl Node {
    fn build_patterns(&self) -> Result<(), CompileError> {
        let Node::Schema(s) = self else {
            return Ok(());
        };
        if let Some(pattern) = &s.pattern {
            let regex = pattern.build()?;
            let _ = pattern.regex.set(regex);
        }
        for node in self.children() {
            node.build_patterns()?;
        }
        Ok(())
    }

    fn fits(&self, value: &Value) -> bool {
        self.check(value, &Path::Root, &mut Sink { found: None })
    }

    fn check<'v>(&self, value: &'v Value, at: &Path<'_>, sink: &mut Sink<'v>) -> bool {
        match self {
            Node::True => true,
            Node::False(here) => {
                sink.report(here, "false", at, value, Failure::Value);
                false
            }
            Node::Schema(s) => s.check(value, at, sink),
        }
    }
}

/// Records a failure of `$keyword` into `$ok`; stops the part (answering `false`) when the
/// sink wants only the first.
macro_rules! fail {
    ($self:ident, $ok:ident, $sink:ident, $at:ident, $keyword:expr, $instance:expr, $failure:expr) => {{
        *$ok = false;
        if !$sink.report(&$self.at, $keyword, $at, $instance, $failure) {
            return false;
        }
    }};
}

/// Records a subschema's failure into `$ok`; stops the part when the sink wants only the first.
macro_rules! sub {
    ($ok:ident, $sink:ident, $result:expr) => {{
        if !$result {
            *$ok = false;
            if !$sink.collecting() {
                return false;
            }
        }
    }};
}

/// The check, one part per kind of keyword. Each part records into `ok` whether the value
/// fits and answers whether the check goes on (`false`: stop at the first violation).
impl Schema {
    fn check<'v>(&self, value: &'v Value, at: &Path<'_>, sink: &mut Sink<'v>) -> bool {
        let mut ok = true;
        let ok_ = &mut ok;
        let goes_on = self.check_value(value, at, sink, ok_)
            && match value {
                Value::Number(n) => self.check_number(n, value, at, sink, ok_),
                Value::String(text) => self.check_string(text, value, at, sink, ok_),
                Value::Array(items) => self.check_array(items, value, at, sink, ok_),
                Value::Object(map) => self.check_object(map, value, at, sink, ok_),
                _ => true,
            }
            && self.check_applicators(value, at, sink, ok_);
        goes_on && ok
    }

    fn check_value<'v>(
        &self,
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if let Some(mask) = self.types
            && !fits_type(mask, value)
        {
            fail!(self, ok, sink, at, "type", value, Failure::Value);
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| json_eq(a, value))
        {
            fail!(self, ok, sink, at, "enum", value, Failure::Value);
        }
        if let Some(constant) = &self.constant
            && !json_eq(constant, value)
        {
            fail!(self, ok, sink, at, "const", value, Failure::Value);
        }
        true
    }

    fn check_number<'v>(
        &self,
        n: &Number,
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if let Some(min) = &self.minimum
            && num_cmp(n, min) == Some(Ordering::Less)
        {
            fail!(self, ok, sink, at, "minimum", value, Failure::Value);
        }
        if let Some(max) = &self.maximum
            && num_cmp(n, max) == Some(Ordering::Greater)
        {
            fail!(self, ok, sink, at, "maximum", value, Failure::Value);
        }
        true
    }

    fn check_string<'v>(
        &self,
        text: &str,
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if self.min_length.is_some() || self.max_length.is_some() {
            // JSON Schema counts code points, not bytes or UTF-16 units.
            let length = text.chars().count();
            if self.min_length.is_some_and(|min| length < min) {
                fail!(self, ok, sink, at, "minLength", value, Failure::Value);
            }
            if self.max_length.is_some_and(|max| length > max) {
                fail!(self, ok, sink, at, "maxLength", value, Failure::Value);
            }
        }
        if let Some(pattern) = &self.pattern
            && !pattern.regex().is_match(text)
        {
            fail!(self, ok, sink, at, "pattern", value, Failure::Value);
        }
        true
    }

    fn check_array<'v>(
        &self,
        items: &'v [Value],
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if self.min_items.is_some_and(|min| items.len() < min) {
            fail!(self, ok, sink, at, "minItems", value, Failure::Value);
        }
        if self.max_items.is_some_and(|max| items.len() > max) {
            fail!(self, ok, sink, at, "maxItems", value, Failure::Value);
        }
        if self.unique_items && has_repeats(items) {
            fail!(self, ok, sink, at, "uniqueItems", value, Failure::Value);
        }
        for (i, item) in items.iter().enumerate() {
            let schema = match self.prefix_items.get(i) {
                Some(prefix) => prefix,
                None => match &self.items {
                    Some(items) => items,
                    None => break,
                },
            };
            sub!(ok, sink, schema.check(item, &Path::Index(at, i), sink));
        }
        true
    }

    fn check_object<'v>(
        &self,
        map: &'v Map<String, Value>,
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if self.min_properties.is_some_and(|min| map.len() < min) {
            fail!(self, ok, sink, at, "minProperties", value, Failure::Value);
        }
        if self.max_properties.is_some_and(|max| map.len() > max) {
            fail!(self, ok, sink, at, "maxProperties", value, Failure::Value);
        }
        for name in &self.required {
            if !map.contains_key(name) {
                let failure = Failure::Missing(name.clone());
                fail!(self, ok, sink, at, "required", value, failure);
            }
        }
        for (key, item) in map {
            let declared = self.properties.iter().find(|(name, _)| name == key);
            let path = Path::Key(at, key);
            match (declared, &self.additional) {
                (Some((_, schema)), _) => {
                    sub!(ok, sink, schema.check(item, &path, sink));
                }
                (None, Some(Node::False(_))) => {
                    let failure = Failure::Unexpected(key.clone());
                    fail!(self, ok, sink, at, "additionalProperties", value, failure);
                }
                (None, Some(schema)) => {
                    sub!(ok, sink, schema.check(item, &path, sink));
                }
                (None, None) => {}
            }
        }
        if let Some(names) = &self.property_names {
            for key in map.keys() {
                if !names.fits(&Value::String(key.clone())) {
                    let failure = Failure::BadKey(key.clone());
                    fail!(self, ok, sink, at, "propertyNames", value, failure);
                }
            }
        }
        true
    }

    fn check_applicators<'v>(
        &self,
        value: &'v Value,
        at: &Path<'_>,
        sink: &mut Sink<'v>,
        ok: &mut bool,
    ) -> bool {
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.fits(value)) {
            fail!(self, ok, sink, at, "anyOf", value, Failure::Value);
        }
        for schema in &self.all_of {
            sub!(ok, sink, schema.check(value, at, sink));
        }
        if let Some(not) = &self.not
            && not.fits(value)
        {
            fail!(self, ok, sink, at, "not", value, Failure::Value);
        }
        if let Some(condition) = &self.condition {
            let branch = if condition.fits(value) {
                &self.then
            } else {
                &self.otherwise
            };
            if let Some(branch) = branch {
                sub!(ok, sink, branch.check(value, at, sink));
            }
        }
        true
    }
}

fn fits_type(mask: u8, value: &Value) -> bool {
    let bit = match value {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Object(_) => OBJECT,
        Value::Array(_) => ARRAY,
        Value::String(_) => STRING,
        Value::Number(n) => {
            // Every integer is a number; a number with a zero fraction (1.0) is an integer.
            return mask & NUMBER != 0 || (mask & INTEGER != 0 && is_integer(n));
        }
    };
    mask & bit != 0
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// A number as JSON Schema compares it: by value, whatever its notation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Numeric {
    Whole(i128),
    Real(f64),
}

fn numeric(n: &Number) -> Numeric {
    if let Some(i) = n.as_i64() {
        return Numeric::Whole(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Numeric::Whole(i128::from(u));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Within ±2^100 an integral double converts to i128 exactly.
    if f.fract() == 0.0 && f.abs() < 1.0e30 {
        Numeric::Whole(f as i128)
    } else {
        Numeric::Real(f)
    }
}

fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (numeric(a), numeric(b)) {
        (Numeric::Whole(x), Numeric::Whole(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality as JSON Schema defines it: numbers by value (1 equals 1.0), objects
/// whatever the order of their keys.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, v)| y.get(key).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn has_repeats(items: &[Value]) -> bool {
    // Pairwise for the short arrays arguments are; a long answer would make that quadratic.
    const PAIRWISE_UP_TO: usize = 32;
    if items.len() <= PAIRWISE_UP_TO {
        return items
            .iter()
            .enumerate()
            .any(|(i, a)| items[i + 1..].iter().any(|b| json_eq(a, b)));
    }
    let mut seen = HashSet::with_capacity(items.len());
    items.iter().any(|item| {
        let mut key = String::new();
        canonical(item, &mut key);
        !seen.insert(key)
    })
}

/// A text that two values share exactly when `json_eq` holds between them.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Number(n) => match numeric(n) {
            Numeric::Whole(i) => out.push_str(&i.to_string()),
            Numeric::Real(f) => out.push_str(&format!("{f:e}")),
        },
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn checker(schema: Value) -> Checker {
        Checker::compile_now(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"))
    }

    /// (instance path, schema location, keyword) of each violation.
    fn found(schema: Value, value: Value) -> Vec<(String, String, &'static str)> {
        checker(schema)
            .violations(&value)
            .into_iter()
            .map(|v| (v.instance_path, v.schema_at, v.keyword))
            .collect()
    }

    fn fits(schema: Value, value: Value) -> bool {
        let c = checker(schema);
        let valid = c.is_valid(&value);
        assert_eq!(valid, c.violations(&value).is_empty(), "{value}");
        valid
    }

    #[test]
    fn integer_accepts_a_zero_fraction_only() {
        let s = json!({"type": "integer"});
        assert!(fits(s.clone(), json!(1)));
        assert!(fits(s.clone(), json!(1.0)));
        assert!(fits(s.clone(), json!(-3)));
        assert!(fits(s.clone(), json!(u64::MAX)));
        assert!(!fits(s.clone(), json!(1.5)));
        assert!(!fits(s.clone(), json!("1")));
        assert!(fits(json!({"type": "number"}), json!(1)));
        assert!(fits(json!({"type": ["string", "integer"]}), json!(2.0)));
        assert!(!fits(json!({"type": ["string", "null"]}), json!(2)));
        assert!(fits(json!({"type": "null"}), Value::Null));
        assert!(!fits(json!({"type": "boolean"}), json!(0)));
    }

    #[test]
    fn enum_and_const_use_json_equality() {
        let s = json!({"enum": [1, "a", {"x": 1, "y": [2]}]});
        assert!(fits(s.clone(), json!(1.0)));
        assert!(fits(s.clone(), json!({"y": [2.0], "x": 1})));
        assert!(!fits(s.clone(), json!({"y": [2], "x": 1, "z": null})));
        assert!(!fits(s.clone(), json!("A")));
        assert!(!fits(s.clone(), json!(true)));
        assert!(fits(json!({"const": 0}), json!(0.0)));
        assert!(!fits(json!({"const": 0}), json!(false)));
        assert!(!fits(json!({"const": [1, 2]}), json!([2, 1])));
        assert!(fits(json!({"const": null}), Value::Null));
    }

    #[test]
    fn bounds_compare_numbers_by_value() {
        let s = json!({"minimum": 0, "maximum": 2.5});
        assert!(fits(s.clone(), json!(0)));
        assert!(fits(s.clone(), json!(-0.0)));
        assert!(fits(s.clone(), json!(2.5)));
        assert!(!fits(s.clone(), json!(-1)));
        assert!(!fits(s.clone(), json!(2.6)));
        assert!(!fits(s.clone(), json!(u64::MAX)));
        assert!(fits(s, json!("not a number")));
        let big = json!({"maximum": i64::MAX});
        assert!(fits(big.clone(), json!(i64::MAX)));
        assert!(!fits(big, json!(i64::MAX as u64 + 1)));
    }

    #[test]
    fn lengths_count_code_points() {
        let s = json!({"minLength": 2, "maxLength": 3});
        assert!(fits(s.clone(), json!("ab")));
        assert!(fits(s.clone(), json!("ёжи")), "three two-byte letters");
        assert!(fits(s.clone(), json!("😀😀😀")), "three astral characters");
        assert!(!fits(s.clone(), json!("😀😀😀😀")));
        assert!(!fits(s.clone(), json!("é")));
        assert!(fits(s, json!(12345)), "lengths are about strings only");
    }

    #[test]
    fn patterns_search_anywhere_unless_anchored() {
        assert!(fits(json!({"pattern": "^group_"}), json!("group_1")));
        assert!(!fits(json!({"pattern": "^group_"}), json!("my_group_1")));
        assert!(fits(json!({"pattern": "[0-9]"}), json!("abc7def")));
        let digits = json!({"pattern": "^[0-9]+$"});
        assert!(fits(digits.clone(), json!("0123")));
        assert!(
            !fits(digits.clone(), json!("12\n")),
            "`$` is the end of the text"
        );
        assert!(
            !fits(digits.clone(), json!("١٢")),
            "Arabic-Indic digits are no [0-9]"
        );
        assert!(!fits(digits.clone(), json!("")));
        assert!(fits(digits, json!(12)), "patterns are about strings only");
    }

    #[test]
    fn patterns_that_differ_from_ecma_262_are_refused() {
        for bad in [
            "^\\d+$", "\\w", "a\\b", "\\s", "^.+$", "[^a]", "(?i)a", "(?=a)", "(?<n>a)", "[a[b]]",
            "[a&&b]", "[a--b]", "ё", "\\u0041", "\\1", "x\\",
        ] {
            let err = Checker::compile(&json!({"pattern": bad})).unwrap_err();
            assert_eq!(err.at, "/pattern", "{bad}");
            assert!(err.problem.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        for good in [
            "^(U|IU)[0-9]{1,10}$|^SG[0-9]{1,10}(_[AEK])?$",
            "^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$",
            "^(!><|><|!=|\\?|=|%)?[A-Z]$",
            "^(?:a|b)$",
            "^([A-Z]|\\*|UF_\\*)$",
            "[a-z-]",
        ] {
            Checker::compile_now(&json!({"pattern": good}))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        // Compiling a regular expression waits for its first string, except at build time.
        let broken = json!({"properties": {"p": {"pattern": "a{2,1}"}}});
        assert!(Checker::compile(&broken).is_ok());
        let err = Checker::compile_now(&broken).unwrap_err();
        assert_eq!(err.at, "/properties/p/pattern");
        assert!(err.problem.contains("does not compile"), "{err}");
    }

    #[test]
    fn objects_report_the_missing_and_the_unexpected() {
        let s = json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}, "a/b": {"type": "string"}},
            "required": ["id", "name"],
            "additionalProperties": false
        });
        assert!(!fits(s.clone(), json!({"id": 1})), "name is missing");
        let v = checker(s.clone());
        let value = json!({"ID": 1, "a/b": 3});
        let mut failures: Vec<Failure> = v
            .violations(&value)
            .into_iter()
            .map(|v| v.failure)
            .collect();
        failures.sort_by_key(|f| format!("{f:?}"));
        assert_eq!(
            failures,
            [
                Failure::Missing("id".into()),
                Failure::Missing("name".into()),
                Failure::Unexpected("ID".into()),
                Failure::Value,
            ]
        );
        // `name` is required yet undeclared: present, it is unexpected.
        assert_eq!(
            found(s, json!({"id": "x", "name": 1, "a/b": 2})),
            [
                ("/a~1b".to_owned(), "/properties/a~1b".to_owned(), "type"),
                ("/id".to_owned(), "/properties/id".to_owned(), "type"),
                ("".to_owned(), "".to_owned(), "additionalProperties"),
            ]
        );
    }

    #[test]
    fn additional_properties_schema_applies_to_undeclared_keys_only() {
        let s = json!({
            "properties": {"n": {"type": "integer"}},
            "additionalProperties": {"type": "array", "items": {"enum": ["read", "edit"]}}
        });
        assert!(fits(s.clone(), json!({"n": 1, "AU": ["read"]})));
        assert_eq!(
            found(s, json!({"n": 1, "AU": ["reed"]})),
            [(
                "/AU/0".to_owned(),
                "/additionalProperties/items".to_owned(),
                "enum"
            )]
        );
    }

    #[test]
    fn property_counts_and_names() {
        let s = json!({"minProperties": 1, "maxProperties": 2, "propertyNames": {"pattern": "^[A-Z]+$"}});
        assert!(fits(s.clone(), json!({"AU": 1})));
        assert!(!fits(s.clone(), json!({})));
        assert!(!fits(s.clone(), json!({"A": 1, "B": 2, "C": 3})));
        let v = checker(s);
        let value = json!({"AU": 1, "x1": 2});
        let found = v.violations(&value);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].failure, Failure::BadKey("x1".into()));
        assert_eq!(found[0].instance_path, "");
    }

    #[test]
    fn arrays_count_repeat_and_check_items() {
        let s = json!({"minItems": 1, "maxItems": 3, "uniqueItems": true, "items": {"type": "integer"}});
        assert!(fits(s.clone(), json!([1, 2, 3])));
        assert!(!fits(s.clone(), json!([])));
        assert!(!fits(s.clone(), json!([1, 2, 3, 4])));
        assert!(
            !fits(s.clone(), json!([1, 1.0])),
            "1 and 1.0 are the same value"
        );
        assert_eq!(
            found(s, json!([1, "x"])),
            [("/1".to_owned(), "/items".to_owned(), "type")]
        );
        let objects = json!({"uniqueItems": true});
        assert!(!fits(
            objects.clone(),
            json!([{"a": 1, "b": 2}, {"b": 2, "a": 1}])
        ));
        assert!(fits(
            objects.clone(),
            json!([{"a": 1}, {"a": "1"}, [1], "1", 1, true, null])
        ));
        // Past the pairwise length the repeats are found by canonical text.
        let mut long: Vec<Value> = (0..100).map(|i| json!({"n": i, "s": [i, "x"]})).collect();
        assert!(fits(objects.clone(), Value::Array(long.clone())));
        long.push(json!({"s": [7.0, "x"], "n": 7}));
        assert!(!fits(objects.clone(), Value::Array(long.clone())));
        long.pop();
        long.push(json!(0.5));
        long.push(json!(1.5));
        assert!(fits(objects.clone(), Value::Array(long.clone())));
        long.push(json!(0.5));
        assert!(!fits(objects, Value::Array(long)));
    }

    #[test]
    fn prefix_items_come_before_items() {
        let s = json!({"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": {"type": "boolean"}});
        assert!(fits(s.clone(), json!(["a"])));
        assert!(fits(s.clone(), json!(["a", 1, true, false])));
        assert_eq!(
            found(s.clone(), json!([1, 1, 1])),
            [
                ("/0".to_owned(), "/prefixItems/0".to_owned(), "type"),
                ("/2".to_owned(), "/items".to_owned(), "type"),
            ]
        );
        assert!(fits(
            json!({"prefixItems": [{"type": "string"}]}),
            json!(["a", 1, null])
        ));
        let err = Checker::compile(&json!({"items": [{"type": "string"}]})).unwrap_err();
        assert!(err.problem.contains("prefixItems"), "{err}");
    }

    #[test]
    fn combinators() {
        let any = json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]});
        assert!(fits(any.clone(), json!(5)));
        assert!(fits(any.clone(), json!("5")));
        assert_eq!(
            found(any, json!(-1)),
            [("".to_owned(), "".to_owned(), "anyOf")]
        );
        let all = json!({"allOf": [{"minimum": 1}, {"maximum": 3}]});
        assert!(fits(all.clone(), json!(2)));
        assert_eq!(
            found(all, json!(4)),
            [("".to_owned(), "/allOf/1".to_owned(), "maximum")]
        );
        let not = json!({"not": {"const": "UA"}});
        assert!(fits(not.clone(), json!("AU")));
        assert!(!fits(not, json!("UA")));
        let branch = json!({
            "if": {"properties": {"kind": {"const": "user"}}},
            "then": {"required": ["user_id"]},
            "else": {"required": ["group_id"]}
        });
        assert!(fits(branch.clone(), json!({"kind": "user", "user_id": 1})));
        assert!(fits(
            branch.clone(),
            json!({"kind": "group", "group_id": 1})
        ));
        assert!(!fits(
            branch.clone(),
            json!({"kind": "user", "group_id": 1})
        ));
        let v = checker(branch);
        let value = json!({"kind": "group"});
        let found = v.violations(&value);
        assert_eq!(found[0].schema_at, "/else");
        assert_eq!(found[0].failure, Failure::Missing("group_id".into()));
        assert!(
            fits(json!({"then": {"type": "string"}}), json!(1)),
            "then without if"
        );
    }

    #[test]
    fn boolean_schemas() {
        assert!(fits(json!(true), json!({"anything": 1})));
        assert_eq!(
            found(json!({"properties": {"gone": false}}), json!({"gone": 1})),
            [("/gone".to_owned(), "/properties/gone".to_owned(), "false")]
        );
        assert!(fits(json!({"properties": {"gone": false}}), json!({})));
    }

    #[test]
    fn annotations_are_ignored_and_other_keywords_refused() {
        let annotated = json!({
            "type": "string", "description": "d", "title": "t", "examples": ["x"], "default": "x",
            "$comment": "c", "format": "date-time", "deprecated": true, "readOnly": true,
            "writeOnly": false
        });
        assert!(fits(annotated, json!("not a date")));
        for keyword in [
            "$ref",
            "oneOf",
            "patternProperties",
            "exclusiveMinimum",
            "multipleOf",
            "contains",
            "$schema",
            "nullable",
        ] {
            let schema = json!({"properties": {"x": {"type": "string", keyword: 1}}});
            let err = Checker::compile(&schema).unwrap_err();
            assert_eq!(err.at, format!("/properties/x/{keyword}"));
            assert!(err.problem.contains(&format!("`{keyword}`")), "{err}");
            assert!(err.to_string().contains(keyword), "{err}");
        }
        for (schema, at) in [
            (json!({"type": "text"}), "/type"),
            (json!({"minLength": -1}), "/minLength"),
            (json!({"anyOf": []}), "/anyOf"),
            (json!({"required": [1]}), "/required"),
            (json!({"items": 3}), "/items"),
        ] {
            assert_eq!(Checker::compile(&schema).unwrap_err().at, at, "{schema}");
        }
    }
}
