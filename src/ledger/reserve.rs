//! Room kept on the ledger's disk for the outcome of a write already sent. A row is written
//! before its call goes out and completed after the portal answers; a disk that fills in
//! between would leave `unknown` for a write that applied. So a file of [`RESERVE_BYTES`]
//! (really allocated, not sparse) sits beside the ledger, and is deleted to make room when
//! completing a row finds the disk full; the next write's start makes it again if it can.
//!
//! Chosen over a fallback journal (a second file format to read back and merge) and over a
//! row saying "outcome recorded late" (which needs the outcome kept somewhere meanwhile, and
//! a process killed before then loses it): deleting a file needs no space at all.

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
};

use fs4::fs_std::FileExt;

use crate::private_files;

/// Measured on a full tmpfs (SQLite in WAL mode, this schema): completing one row took
/// 8 KiB, two WAL frames of 4,120 bytes (the row's page and the outcome index's page);
/// completing 20 rows in a row took 172 KiB. 256 KiB covers about 30 rows completing before
/// anyone frees space, and is nothing on a disk that is not already full.
pub const RESERVE_BYTES: u64 = 256 * 1024;

#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve of the ledger at `ledger`: `ledger.sqlite3-reserve` beside it.
    pub fn beside(ledger: &Path) -> Self {
        let mut path = ledger.as_os_str().to_owned();
        path.push("-reserve");
        Self { path: path.into() }
    }

    /// Makes the reserve when it is missing. Best effort: a disk too full for it refuses
    /// the next row's insert anyway, and one that cannot allocate is no worse than before.
    pub fn keep(&self) {
        if self.path.exists() {
            return;
        }
        let made = private_files::open(&self.path, OpenOptions::new().write(true))
            .and_then(|file| FileExt::allocate(&file, RESERVE_BYTES));
        if let Err(err) = made {
            let _ = std::fs::remove_file(&self.path);
            tracing::debug!(path = %self.path.display(), %err, "no reserve beside the ledger");
        }
    }

    /// Frees the reserve's room; false when there was none to free.
    pub fn release(&self) -> bool {
        std::fs::remove_file(&self.path).is_ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
