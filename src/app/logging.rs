//! Logs go to stderr (stdout is the protocol) or to a file, through a writer that masks every
//! secret the process holds in every line, whatever a dependency chose to log. It reads the
//! shared registry at each write, so a secret registered later is masked too.

use std::{
    fs::File,
    io::{self, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

use crate::{bitrix::Secrets, private_files};

#[derive(Clone)]
enum Sink {
    Stderr,
    File(Arc<Mutex<File>>),
}

#[derive(Clone)]
struct RedactingWriter {
    secrets: &'static Secrets,
    sink: Sink,
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = self.secrets.redact(&text);
        match &self.sink {
            Sink::Stderr => io::stderr().write_all(clean.as_bytes())?,
            Sink::File(file) => file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(clean.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.sink {
            Sink::Stderr => io::stderr().flush(),
            Sink::File(file) => file.lock().unwrap_or_else(|e| e.into_inner()).flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for RedactingWriter {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global subscriber. The filter is `level` when given, else `RUST_LOG`, else
/// `default`; rmcp's own chatter stays at `warn` unless asked for.
pub fn init(level: Option<&str>, default: &str, file: Option<&Path>) -> io::Result<()> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)
            .map_err(|e| io::Error::other(format!("--log-level {level:?}: {e}")))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let sink = match file {
        Some(path) => {
            Sink::File(Arc::new(Mutex::new(open_log(path).map_err(|e| {
                io::Error::other(format!("--log-file {}: {e}", path.display()))
            })?)))
        }
        None => Sink::Stderr,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingWriter {
            secrets: Secrets::global(),
            sink,
        })
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}

/// Opens the log file for appending, readable by its owner only (logs name the portal and
/// the calls made), and refuses a terminal or the protocol's own stdout.
fn open_log(path: &Path) -> io::Result<File> {
    let file = private_files::open(path, File::options().append(true))?;
    if std::io::IsTerminal::is_terminal(&file) {
        return Err(io::Error::other(
            "is a terminal; name a file, or leave --log-file out to log to stderr",
        ));
    }
    if is_stdout(&file) {
        return Err(io::Error::other(
            "is this process's stdout, which carries only the MCP protocol; name another file",
        ));
    }
    Ok(file)
}

/// Whether `file` is the very file stdout writes to (`/dev/stdout`, `/proc/self/fd/1`, or
/// the file stdout was redirected to). `/dev/null` carries nothing, so sharing it is fine.
#[cfg(unix)]
fn is_stdout(file: &File) -> bool {
    use std::os::{fd::AsFd, unix::fs::MetadataExt};
    let Ok(stdout) = io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    let (Ok(out), Ok(log)) = (File::from(stdout).metadata(), file.metadata()) else {
        return false;
    };
    let null = std::fs::metadata("/dev/null").ok();
    let same =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    same(&out, &log) && !null.is_some_and(|n| same(&n, &log))
}

#[cfg(not(unix))]
fn is_stdout(_file: &File) -> bool {
    false
}
