//! Reads every catalog file from `tools/` and writes the catalog into the binary as a digest,
//! so a start does not parse TOML, a bad file fails the build naming the file, and a new tool
//! is added by adding a file, not by editing code.

use std::{env, fs, path::PathBuf, process::ExitCode};

// The catalog's own types, reader and schema checker, shared with the crate rather than copied.
#[path = "src/bitrix/api.rs"]
mod api;
#[path = "src/catalog/checker.rs"]
#[allow(dead_code)]
mod checker;
#[path = "src/catalog/file.rs"]
mod file;
#[path = "src/catalog/spec.rs"]
#[allow(dead_code)]
mod spec;

mod bitrix {
    pub use super::api::Api;
}

fn main() -> ExitCode {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("tools");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tools/ must exist")
        .map(|e| e.expect("readable tools/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut specs = Vec::with_capacity(files.len());
    let mut bad = false;
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        let text = fs::read_to_string(path).expect("readable catalog file");
        match file::read(&name, &text) {
            Ok(spec) => specs.push(spec),
            Err(problem) => {
                // `cargo::error` takes one line: TOML's quoted source lines (`3 | bogus = 1`)
                // give way to the position and the reason.
                let problem: Vec<&str> = problem
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        !l.is_empty()
                            && !l
                                .trim_start_matches(char::is_numeric)
                                .trim_start()
                                .starts_with('|')
                    })
                    .collect();
                println!("cargo::error=tools/{name}: {}", problem.join(": "));
                bad = true;
            }
        }
    }
    if bad {
        return ExitCode::FAILURE;
    }
    // Sorted by tool name, the order `tools/list` shows. The entries' JSON texts go one after
    // another into one file, read in place; the index says where each one is.
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut entries = String::new();
    let mut index = Vec::with_capacity(specs.len());
    for spec in &specs {
        let start = entries.len();
        entries.push_str(&serde_json::to_string(spec).expect("a catalog entry serialises"));
        index.push(spec::Indexed {
            summary: spec::Summary::of(spec),
            at: (start, entries.len() - start),
        });
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let index = serde_json::to_string(&index).expect("the catalog index serialises");
    fs::write(out.join("catalog-index.json"), index).expect("write catalog-index.json");
    fs::write(out.join("catalog-entries.json"), entries).expect("write catalog-entries.json");
    ExitCode::SUCCESS
}
