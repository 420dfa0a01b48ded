//! docs/configuration.md, written from the clap definitions themselves, so the page cannot
//! drift from what the program accepts (a test keeps the file in step).

use clap::{Arg, Command, CommandFactory};

use super::config::{Cli, SECRET_VARIABLES};

/// The whole page.
pub fn configuration_markdown() -> String {
    let cli = Cli::command();
    let mut out = String::from(
        "# Configuration\n\n\
         Generated from the program's own option definitions (`UPDATE_README=1 cargo test readme` \
         rewrites it). Environment first: every option but the secrets is also a flag, and a \
         flag may follow the subcommand. A bad value stops the program at start with the reason \
         on stderr and exit code 2.\n\n\
         ## Secrets (environment only)\n\n\
         | environment | meaning |\n|---|---|\n",
    );
    for (name, meaning) in SECRET_VARIABLES {
        out.push_str(&format!("| `{name}` | {meaning} |\n"));
    }
    out.push_str("\n## Options\n\n| environment | flag | default | meaning |\n|---|---|---|---|\n");
    for arg in cli.get_arguments().filter(|a| a.get_long().is_some()) {
        if matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        out.push_str(&option_row(arg));
    }
    out.push_str("\n## Commands\n\n");
    for command in cli.get_subcommands() {
        out.push_str(&command_section(command));
    }
    out
}

fn option_row(arg: &Arg) -> String {
    let env = arg
        .get_env()
        .map_or("—".to_owned(), |e| format!("`{}`", e.to_string_lossy()));
    let long = arg.get_long().unwrap_or_default();
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.as_str().replace('|', "\\|"));
    let flag = match (value, arg.get_num_args()) {
        (None, _) => format!("`--{long}`"),
        // A switch that also takes a value: `--read-only` alone means true.
        (Some(value), Some(n)) if n.min_values() == 0 => format!("`--{long}[={value}]`"),
        (Some(value), _) => format!("`--{long} {value}`"),
    };
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let default = if defaults.is_empty() {
        "—".to_owned()
    } else {
        format!("`{}`", defaults.join(","))
    };
    format!(
        "| {env} | {flag} | {default} | {} |\n",
        one_line(&help_of(arg))
    )
}

fn command_section(command: &Command) -> String {
    let mut out = format!(
        "### `{}`\n\n{}\n",
        command.get_name(),
        command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let args: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_id() != "help")
        .collect();
    if !args.is_empty() {
        out.push('\n');
        for arg in args {
            let name = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("<{}>", arg.get_id().as_str().to_uppercase()),
            };
            out.push_str(&format!("- `{name}`: {}\n", one_line(&help_of(arg))));
        }
    }
    out.push('\n');
    out
}

fn help_of(arg: &Arg) -> String {
    arg.get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Table cells hold one line, and a `|` would end the cell.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
