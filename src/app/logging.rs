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

use crate::bitrix::Secrets;

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
        Some(path) => Sink::File(Arc::new(Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| io::Error::other(format!("--log-file {}: {e}", path.display())))?,
        ))),
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
