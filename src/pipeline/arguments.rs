//! Argument problems, phrased for the model: each names the argument and says what to do.

use super::failure::{FailureKind, ToolFailure};
use crate::{bitrix::Secrets, catalog::ArgumentProblem};

/// Longest argument-problem message passed on; a huge bad value must not flood the context.
const MAX_PROBLEM_CHARS: usize = 300;

pub fn describe_problems(tool: &str, problems: &[ArgumentProblem]) -> ToolFailure {
    let mut text = format!("Invalid arguments for {tool}; nothing was sent to Bitrix24.");
    for p in problems {
        let place = if p.path.is_empty() {
            "arguments".to_owned()
        } else {
            format!("argument `{}`", p.path.trim_start_matches('/'))
        };
        // Masked before the cut, so a cut cannot leave most of a secret standing.
        let full = Secrets::global().redact(&p.message);
        let mut message: String = full.chars().take(MAX_PROBLEM_CHARS).collect();
        if message.len() < full.len() {
            message.push('…');
        }
        text.push_str(&format!("\n- {place}: {message}"));
    }
    text.push_str(
        "\nWhat to do: fix these arguments as the tool's input schema says, then call again.",
    );
    ToolFailure::new(
        FailureKind::InvalidArguments,
        Secrets::global().redact(&text).into_owned(),
    )
}
