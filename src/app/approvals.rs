//! `approve` and `decline`: a person decides on a change waiting for approval, from a terminal,
//! outside the model's channel. Approving reads the answer from the keyboard, so a model that
//! runs the command (it has no terminal) cannot approve with it; declining needs no keyboard,
//! since it can only keep a write from going out.

use std::{io::Write, process::ExitCode};

use super::{
    commands::{FAILED, Printable, USAGE},
    terminal,
};
use crate::{
    mcp::local_user,
    pipeline::{Approval, ApprovalState, Decided, Pipeline, approval::now},
};

/// Lists the changes waiting on `portal` (every portal when `None`).
pub async fn list(
    d: &Pipeline,
    portal: Option<&str>,
    out: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let mut out = Printable(out);
    let waiting = match d.approvals().pending(portal).await {
        Ok(waiting) => waiting,
        Err(err) => {
            writeln!(out, "The approvals could not be read: {err}")?;
            return Ok(ExitCode::from(FAILED));
        }
    };
    if waiting.is_empty() {
        writeln!(out, "No change is waiting for approval.")?;
        return Ok(ExitCode::SUCCESS);
    }
    for a in &waiting {
        let minutes = a.expires_at.saturating_sub(now()).div_ceil(60);
        writeln!(
            out,
            "{}  {}  asked by {}  (expires in {minutes} min)",
            a.id, a.tool, a.asked_by
        )?;
    }
    writeln!(
        out,
        "\n{} change(s) waiting. Run `bitrix24-permissions-mcp approve <id>` to read one and decide.",
        waiting.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Shows the change and asks at the terminal.
pub async fn approve(d: &Pipeline, id: &str, out: &mut dyn Write) -> std::io::Result<ExitCode> {
    let mut out = Printable(out);
    let Some(found) = open(d, id, &mut out).await? else {
        return Ok(ExitCode::from(FAILED));
    };
    if !terminal::present() {
        writeln!(
            out,
            "approve reads your answer at a terminal, and there is none here (a program, or an \
             assistant, is running this command). Run it yourself in a terminal, or open the \
             approval link the assistant gave you."
        )?;
        return Ok(ExitCode::from(USAGE));
    }
    let question = found.question.clone();
    let yes = tokio::task::spawn_blocking(move || terminal::ask_yes(&question))
        .await
        .map_err(std::io::Error::other)??;
    if !yes {
        writeln!(
            out,
            "Not approved; the change still waits (decline it with `decline {id}`)."
        )?;
        return Ok(ExitCode::from(FAILED));
    }
    let by = format!("{} at a terminal", local_user());
    decided(d, id, true, &by, &mut out).await
}

pub async fn decline(d: &Pipeline, id: &str, out: &mut dyn Write) -> std::io::Result<ExitCode> {
    let mut out = Printable(out);
    if open(d, id, &mut out).await?.is_none() {
        return Ok(ExitCode::from(FAILED));
    }
    let by = format!("{} at a terminal", local_user());
    decided(d, id, false, &by, &mut out).await
}

/// The approval, if it can still be decided; otherwise says why not.
async fn open(d: &Pipeline, id: &str, out: &mut dyn Write) -> std::io::Result<Option<Approval>> {
    match d.approvals().find(id).await {
        Ok(Some(found)) if found.state == ApprovalState::Pending && !found.expired(now()) => {
            Ok(Some(found))
        }
        Ok(Some(found)) => {
            let why = crate::pipeline::approval::too_late(&found, now());
            writeln!(out, "This change cannot be decided: {why}.")?;
            Ok(None)
        }
        Ok(None) => {
            writeln!(
                out,
                "No change waits under {id} in this ledger. Run `approve` alone to list those waiting \
                 (with the same BITRIX24_LEDGER as the server)."
            )?;
            Ok(None)
        }
        Err(err) => {
            writeln!(out, "The approvals could not be read: {err}")?;
            Ok(None)
        }
    }
}

async fn decided(
    d: &Pipeline,
    id: &str,
    approve: bool,
    by: &str,
    out: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    match d.approvals().decide(id, approve, by).await {
        Ok(Decided::Done(ApprovalState::Approved)) => {
            writeln!(
                out,
                "Approved. Tell your assistant: it sends the change, once, when it calls again with \
                 the same arguments (within the next minutes)."
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Decided::Done(_)) => {
            writeln!(out, "Declined. Nothing was sent, and nothing will be.")?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Decided::TooLate(why)) => {
            writeln!(out, "Nothing changed: {why}.")?;
            Ok(ExitCode::from(FAILED))
        }
        Ok(Decided::NotFound) => {
            writeln!(out, "No change waits under {id}.")?;
            Ok(ExitCode::from(FAILED))
        }
        Err(err) => {
            writeln!(out, "The approvals could not be recorded: {err}")?;
            Ok(ExitCode::from(FAILED))
        }
    }
}
