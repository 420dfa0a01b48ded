//! Asking the person at a terminal: the `call` command's question, and `approve`. A model
//! that runs these commands has no terminal, so it cannot answer here.

use std::io::{BufRead, IsTerminal, Write};

/// Whether a person is at this terminal: standard input and error both are one.
pub fn present() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Shows `question` on standard error and reads the answer; only `yes` is a yes.
pub fn ask_yes(question: &str) -> std::io::Result<bool> {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{question}\n")?;
    write!(
        err,
        "Type yes to apply this change, anything else to decline: "
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}
