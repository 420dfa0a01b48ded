//! The `report` command: `who_can`'s answer as an access matrix a person reads, people ×
//! objects, each cell naming the rights and where each comes from. Markdown (default), CSV
//! or a self-contained HTML page. Every string the portal supplied is escaped for the format
//! it lands in.

mod csv;
mod html;
mod markdown;

use std::{io::Write, path::PathBuf, process::ExitCode};

use serde_json::{Value, json};

use super::commands::{FAILED, Printable, USAGE};
use crate::{bitrix::limits::Progress, pipeline::Pipeline};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[value(alias = "md")]
    Markdown,
    Csv,
    Html,
}

/// `report`'s arguments: `who_can`'s, as flags.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReportArgs {
    /// The kind of object: site, sites_role, workgroup, task, calendar, drive_folder, docgen_role.
    pub object: String,
    /// The objects' IDs; a range like 10001-10200 stands for every ID in it. Optional for
    /// calendar (then every section of the owner).
    pub ids: Vec<String>,
    /// Only this right: edit (site), EDIT (task), templates.modify (document generator), ...
    #[arg(long)]
    pub action: Option<String>,
    /// task: the people to check (comma-separated user IDs, up to 50).
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<u64>,
    /// site and sites_role: GROUP, KNOWLEDGE or MAINPAGE.
    #[arg(long)]
    pub scope: Option<String>,
    /// calendar: user, group, company_calendar, location or a custom type.
    #[arg(long)]
    pub calendar_type: Option<String>,
    /// calendar: the owner's ID (user or workgroup).
    #[arg(long)]
    pub owner_id: Option<u64>,
    /// markdown (default), csv, or html (one self-contained page).
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Most IDs one report asks about: `who_can` takes 5,000.
const MAX_IDS: u64 = 5_000;

/// "645", "10001-10200" → the IDs, or why the text is not IDs.
fn expand(ids: &[String]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for item in ids.iter().flat_map(|i| i.split(',')).map(str::trim) {
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{item:?} is not an ID or a range of IDs like 10001-10200"))
        };
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if to < from || to - from >= MAX_IDS {
                    return Err(format!(
                        "{item}: a range runs upwards and holds at most {MAX_IDS} IDs"
                    ));
                }
                out.extend((from..=to).map(|id| json!(id)));
            }
            None if item.is_empty() => {}
            None => out.push(json!(number(item)?)),
        }
    }
    Ok(out)
}

impl ReportArgs {
    /// `who_can`'s arguments.
    fn arguments(&self) -> Result<Value, String> {
        let mut args = json!({"object": self.object});
        let ids = expand(&self.ids)?;
        if !ids.is_empty() {
            args["ids"] = json!(ids);
        }
        if !self.users.is_empty() {
            args["users"] = json!(self.users);
        }
        for (key, value) in [
            ("action", &self.action),
            ("scope", &self.scope),
            ("calendar_type", &self.calendar_type),
        ] {
            if let Some(value) = value {
                args[key] = json!(value);
            }
        }
        if let Some(owner) = self.owner_id {
            args["owner_id"] = json!(owner);
        }
        Ok(args)
    }
}

/// Tells a person on stderr what the portal's rate limit makes the report wait for.
struct Waits;

impl Progress for Waits {
    fn waiting(&self, message: String) {
        eprintln!("bitrix24-permissions-mcp: {message}");
    }
}

pub async fn run(
    pipeline: &Pipeline,
    args: &ReportArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let mut err = Printable(err);
    let arguments = match args.arguments() {
        Ok(arguments) => arguments,
        Err(problem) => {
            writeln!(err, "{problem}")?;
            return Ok(ExitCode::from(USAGE));
        }
    };
    let answer = match pipeline.who_can_report(arguments, &Waits).await {
        Ok(answer) => answer,
        Err(failure) => {
            writeln!(err, "{}", failure.text)?;
            return Ok(ExitCode::from(FAILED));
        }
    };
    let sandbox = pipeline.sandboxed().then_some(crate::sandbox::NOTICE);
    let matrix = Matrix::from_answer(&answer, sandbox, now_utc());
    let text = match args.format {
        Format::Markdown => markdown::render(&matrix),
        Format::Csv => csv::render(&matrix),
        Format::Html => html::render(&matrix),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)?,
        None => Printable(out).write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The time now, UTC, to the second: `2026-11-23T12:11:39Z`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// A Unix time as an ISO 8601 date and time (the civil-from-days algorithm).
fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let day_secs = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60
    )
}

/// One right in a cell, with its source in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub right: String,
    /// The access code, or `checked` where the portal evaluated the right itself.
    pub code: String,
    pub source: String,
    /// Known from the ledger's last written set, not read now.
    pub ledger: bool,
}

/// One object: a column of the matrix, with what is not known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub label: String,
    pub complete: bool,
    pub error: Option<String>,
    pub unknown: Vec<(String, String)>,
    pub evidence: Vec<String>,
}

/// One person: a row, a cell per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub name: Option<String>,
    pub cells: Vec<Vec<Cell>>,
}

impl Row {
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.id),
            None => format!("user {}", self.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub title: String,
    pub summary: String,
    pub sandbox: Option<&'static str>,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// What is unknown for every object.
    pub unknown: Vec<(String, String)>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn unknowns(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let mut who = text(&u["who"]);
            if let Some(rights) = u["rights"].as_array().filter(|r| !r.is_empty()) {
                let rights: Vec<String> = rights.iter().map(text).collect();
                who = format!("{who} [{}]", rights.join(", "));
            }
            (who, text(&u["why"]))
        })
        .collect()
}

/// A right's source in words: the code, how it is held, where it applies, where it is known from.
fn source_of(r: &Value) -> String {
    let how = match r["via"].as_str().unwrap_or_default() {
        "direct" => "the person's own code",
        "department" => "as a member of the department",
        "department_tree" => "as a member of the department or one below it",
        "workgroup_role" => "through a workgroup role",
        "user_group" => "through a user group",
        "all_authorized" => "as an authorized user",
        "everyone" => "as anyone",
        "author" => "as the author",
        _ => "the portal's own check, which names no code",
    };
    let mut parts = Vec::new();
    match (r["code"].as_str(), r["code_name"].as_str()) {
        (Some(code), Some(name)) => parts.push(format!("{code} ({name}), {how}")),
        (Some(code), None) => parts.push(format!("{code}, {how}")),
        _ => parts.push(how.to_owned()),
    }
    for key in ["detail", "on"] {
        if let Some(more) = r[key].as_str() {
            parts.push(if key == "on" {
                format!("on {more}")
            } else {
                more.to_owned()
            });
        }
    }
    parts.push(if r["from"] == "ledger" {
        "from the last set written through this server (ledger)".to_owned()
    } else {
        "read from the portal now".to_owned()
    });
    parts.join("; ")
}

impl Matrix {
    pub fn from_answer(answer: &Value, sandbox: Option<&'static str>, generated: String) -> Self {
        let objects = answer["objects"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut rows: std::collections::BTreeMap<String, Row> = Default::default();
        let mut columns = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            for person in object["people"].as_array().into_iter().flatten() {
                let id = text(&person["id"]);
                let row = rows.entry(id.clone()).or_insert_with(|| Row {
                    id,
                    name: None,
                    cells: vec![Vec::new(); objects.len()],
                });
                if let Some(name) = person["name"].as_str() {
                    row.name = Some(name.to_owned());
                }
                row.cells[i].extend(person["rights"].as_array().into_iter().flatten().map(|r| {
                    Cell {
                        right: text(&r["right"]),
                        code: r["code"].as_str().unwrap_or("checked").to_owned(),
                        source: source_of(r),
                        ledger: r["from"] == "ledger",
                    }
                }));
            }
            let evidence = object["evidence"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!(
                        "{} on {}, written at {}",
                        text(&e["tool"]),
                        text(&e["object"]),
                        text(&e["at"])
                    )
                })
                .collect();
            columns.push(Column {
                label: text(&object["label"]),
                complete: object["complete"] == true,
                error: object["error"].as_str().map(str::to_owned),
                unknown: unknowns(&object["unknown"]),
                evidence,
            });
        }
        let mut rows: Vec<Row> = rows.into_values().collect();
        rows.sort_by_key(|r| {
            (
                r.name.as_deref().map(str::to_lowercase),
                r.id.len(),
                r.id.clone(),
            )
        });
        let what = match answer["action"].as_str() {
            Some(action) => format!("Who can {action}"),
            None => "Who holds which rights".to_owned(),
        };
        let kind = text(&answer["object"]).replace('_', " ");
        Self {
            title: format!("{what}: {kind}"),
            summary: format!(
                "{} object(s), {} people, {} request(s) to the portal; generated {generated}.",
                columns.len(),
                rows.len(),
                answer["requests"]
            ),
            sandbox,
            columns,
            rows,
            unknown: unknowns(&answer["unknown"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ranges() {
        let ids =
            |items: &[&str]| expand(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            ids(&["645", "646,700"]),
            Ok(vec![json!(645), json!(646), json!(700)])
        );
        assert_eq!(ids(&["8-10"]).unwrap().len(), 3);
        assert!(ids(&["abc"]).is_err());
        assert!(ids(&["10-8"]).is_err());
        assert!(ids(&["1-6000"]).is_err());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_436_499), "2026-11-23T12:21:39Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    /// A small answer with every kind of source, and portal text that means something in
    /// every format.
    pub fn sample() -> Matrix {
        let answer = json!({
            "object": "site", "action": "edit", "requests": 2,
            "objects": [
                {"id": "645", "label": "site 645", "complete": false, "people": [
                    {"id": "13", "name": "Chloé O'Hara & <Sons>", "rights": [
                        {"right": "edit", "via": "department", "code": "D4", "code_name": "R&D <Labs>",
                         "detail": "member of department 4", "from": "ledger"}]},
                    {"id": "7", "name": "=HYPERLINK(\"x\")", "rights": [
                        {"right": "edit", "via": "portal_check", "from": "portal", "detail": "landing.site.getRights"}]}],
                 "unknown": [{"who": "G1 (Administrators)", "why": "REST cannot list a user group", "rights": ["edit"]}],
                 "evidence": [{"tool": "landing_site_set_rights", "object": "site 645", "at": "2026-11-23T12:11:39.232Z"}]},
                {"id": "646", "label": "site 646 | <b>shop</b>", "complete": true, "people": [
                    {"id": "7", "rights": [{"right": "edit", "via": "direct", "code": "U7", "from": "ledger"}]}]}
            ],
            "unknown": [{"who": "everyone else", "why": "no method lists a site's rights"}]
        });
        Matrix::from_answer(&answer, None, "2026-11-23T12:21:39Z".to_owned())
    }

    #[test]
    fn people_become_rows_and_objects_columns() {
        let m = sample();
        assert_eq!(m.title, "Who can edit: site");
        assert_eq!(m.columns.len(), 2);
        let labels: Vec<String> = m.rows.iter().map(Row::label).collect();
        assert_eq!(
            labels,
            ["=HYPERLINK(\"x\") (7)", "Chloé O'Hara & <Sons> (13)"]
        );
        assert!(m.rows[1].cells[1].is_empty());
        assert_eq!(m.rows[0].cells[1][0].code, "U7");
        assert_eq!(
            m.rows[1].cells[0][0].source,
            "D4 (R&D <Labs>), as a member of the department; member of department 4; from the last set written through this server (ledger)"
        );
        assert_eq!(m.columns[0].unknown[0].0, "G1 (Administrators) [edit]");
    }
}
