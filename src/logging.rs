//! Logs go to stderr (stdout is the protocol), through a writer that masks the webhook
//! secret in every line, whatever a dependency chose to log.

use std::io::{self, Write};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

use crate::webhook::Redactor;

#[derive(Clone)]
pub struct RedactingStderr {
    redactor: Redactor,
}

pub struct LineWriter {
    redactor: Redactor,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(self.redactor.redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            redactor: self.redactor.clone(),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters, default `info` (rmcp's own chatter at `warn`).
pub fn init(redactor: Redactor) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr { redactor })
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
