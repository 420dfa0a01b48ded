//! `doctor`'s check of the files this server keeps: the ledger and the rate-limit state are
//! created for their user only, but a file made by an older version, or by hand, may be open
//! to every user of the machine.

use std::path::{Path, PathBuf};

use super::config::{Config, LimiterStore};
use crate::{bitrix::limits, private_files};

/// One warning per state file or folder that users other than its owner may read or change.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut paths: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(ledger) = &config.ledger {
        if let Some(dir) = ledger.parent().filter(|d| !d.as_os_str().is_empty()) {
            paths.push((dir.to_owned(), "the ledger's folder"));
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = ledger.clone().into_os_string();
            file.push(suffix);
            paths.push((file.into(), "the ledger, every change with its arguments"));
        }
    }
    let limiter_dir = match &config.limiter {
        LimiterStore::Machine => limits::default_dir(),
        LimiterStore::Dir(dir) => Some(dir.clone()),
        LimiterStore::Memory | LimiterStore::Redis(_) => None,
    };
    if let Some(dir) = limiter_dir {
        paths.push((dir.clone(), "the rate-limit state's folder"));
        paths.extend(bucket_files(&dir).map(|f| (f, "a portal's shared rate-limit state")));
    }
    paths
        .iter()
        .filter_map(|(path, what)| warning(path, what))
        .collect()
}

fn bucket_files(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bucket-") && n.ends_with(".json"))
        })
}

fn warning(path: &Path, what: &str) -> Option<String> {
    let mode = private_files::exposed(path).ok()??;
    let (private, kind) = if path.is_dir() {
        (private_files::DIR_MODE, "folder")
    } else {
        (private_files::FILE_MODE, "file")
    };
    Some(format!(
        "{} ({what}) is a {kind} other users of this machine may read or change (mode {mode:o}); \
         this server creates it {private:o}. Run: chmod {private:o} {}",
        path.display(),
        path.display()
    ))
}
