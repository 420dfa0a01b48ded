//! Files and folders only their user can read: the ledger, the rate-limit state, the log, key
//! files. Created 0600 (files) and 0700 (folders) whatever the umask: a umask of 022 would
//! leave them readable by every user of the machine, one of 000 writable too. What already
//! exists is left as it is (its owner may share it on purpose); `doctor` says when others can
//! read it.

use std::{
    fs::{File, OpenOptions},
    io,
    path::Path,
};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// A created file's mode.
pub const FILE_MODE: u32 = 0o600;
/// A created folder's mode.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and each missing folder above it, each 0700; folders that exist are not
/// touched (a parent such as `/tmp` must keep its mode).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    match builder.create(dir) {
        // The umask can only take bits away; set the mode so it is exactly this.
        Ok(()) => restrict(dir, DIR_MODE),
        // Another process made it meanwhile: it made it private too, or it is theirs to mind.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` with `access` (read, write, append: not `create`), creating it 0600 when it
/// is missing, and its folder 0700.
pub fn open(path: &Path, access: &OpenOptions) -> io::Result<File> {
    match create_new(path, access) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => access.open(path),
        other => other,
    }
}

/// Creates `path` 0600 (its folder 0700) and opens it with `access`; fails with
/// `AlreadyExists` when it is there, so that of two processes making one key, one wins.
pub fn create_new(path: &Path, access: &OpenOptions) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let mut new = access.clone();
    new.create_new(true);
    #[cfg(unix)]
    new.mode(FILE_MODE);
    let file = new.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// The secret key kept at `path`: read when it is there, else `bytes` fresh random bytes from
/// the system's CSPRNG written to a new 0600 file (of two processes making it at once, the
/// second reads the first's). A file of another length is refused, not replaced.
pub fn key_file(path: &Path, bytes: usize) -> io::Result<Vec<u8>> {
    use io::Write;
    use ring::rand::{SecureRandom, SystemRandom};
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut fresh = vec![0u8; bytes];
            SystemRandom::new()
                .fill(&mut fresh)
                .map_err(|_| io::Error::other("the system's random source failed"))?;
            match create_new(path, OpenOptions::new().write(true)) {
                Ok(mut file) => {
                    file.write_all(&fresh)?;
                    file.sync_all()?;
                    fresh
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::read(path)?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if raw.len() != bytes {
        return Err(io::Error::other(format!(
            "{} holds {} bytes, not a {bytes}-byte key; delete it to make a new one",
            path.display(),
            raw.len()
        )));
    }
    Ok(raw)
}

/// Makes sure `path` exists as a file, created 0600 when missing, without opening it for
/// anything else: for a file another library opens (SQLite keeps a new file's mode, and gives
/// its `-wal` and `-shm` files the same).
pub fn ensure_file(path: &Path) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    // Creating takes write access; what exists is not opened at all.
    open(path, OpenOptions::new().write(true)).map(drop)
}

/// The permission bits of an existing file or folder that let users other than its owner in
/// (group or others), or `None` when there are none.
pub fn exposed(path: &Path) -> io::Result<Option<u32>> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        let open_bits = meta.permissions().mode() & 0o077;
        Ok((open_bits != 0).then_some(meta.permissions().mode() & 0o777))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn creates_private_folders_and_files_and_leaves_existing_ones_alone() {
        let root = std::env::temp_dir().join(format!(
            "b24-private-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = root.join("a/b/state.json");
        open(&file, OpenOptions::new().read(true).write(true)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&root), 0o755, "an existing folder keeps its mode");
        assert_eq!(exposed(&root).unwrap(), Some(0o755));
        assert_eq!(exposed(&file).unwrap(), None);
        // An existing file is opened as it is.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_file(&file).unwrap();
        assert_eq!(mode(&file), 0o644);
        std::fs::remove_dir_all(root).unwrap();
    }
}
