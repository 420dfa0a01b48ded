//! Asking the person before a destructive write: the model cannot approve its own writes,
//! and a prompt injection cannot either. The front end supplies the person (`Human`); this
//! module decides when to ask and what an answer means.

use std::{future::Future, pin::Pin, str::FromStr};

use super::failure::{FailureKind, ToolFailure};

/// When writes are confirmed with the user (`BITRIX24_CONFIRM_WRITES` / `--confirm-writes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfirmWrites {
    /// Ask when the client can; otherwise rely on the client's own approval of tools that
    /// are not read-only.
    #[default]
    Auto,
    /// Refuse writes when the client cannot ask.
    Always,
    /// Never ask.
    Never,
}

impl FromStr for ConfirmWrites {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!("{other:?} is not one of auto, always, never")),
        }
    }
}

/// What the person said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    Declined,
    Cancelled,
    /// The question goes out with the answer to this request; the client asks and retries.
    Pending,
}

/// The person a front end can reach, passed along with each call like progress is.
pub trait Human: Send + Sync {
    /// Whether this front end can ask anyone at all; when not, `why_not` says so in words.
    /// Most front ends can; the one that cannot says why.
    fn can_ask(&self) -> bool {
        true
    }
    fn why_not(&self) -> &'static str {
        ""
    }
    /// What is recorded when this front end could not ask.
    fn label(&self) -> &'static str {
        "not asked (client cannot ask)"
    }
    fn confirm<'a>(&'a self, message: &'a str)
    -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;
}

/// A front end with nobody to ask: the command line, or a client without elicitation.
pub struct Nobody {
    /// What the ledger records instead of an answer, e.g. "not asked (command line)".
    pub label: &'static str,
    /// Why nobody can be asked, in a sentence.
    pub why: &'static str,
}

impl Human for Nobody {
    fn can_ask(&self) -> bool {
        false
    }
    fn why_not(&self) -> &'static str {
        self.why
    }
    fn label(&self) -> &'static str {
        self.label
    }
    fn confirm<'a>(
        &'a self,
        _message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
        Box::pin(std::future::ready(Answer::Cancelled))
    }
}

/// How a write was approved, as hooks and the ledger record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Not a write, or not a destructive one.
    NotNeeded,
    Accepted,
    Declined,
    Cancelled,
    /// Not asked: `BITRIX24_CONFIRM_WRITES=never`.
    Off,
    /// Not asked: the front end cannot ask (the client's own tool approval applies); says
    /// which front end.
    CannotAsk(&'static str),
}

impl Confirmation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotNeeded => "not needed",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Off => "not asked (confirmation off)",
            Self::CannotAsk(label) => label,
        }
    }

    pub fn refused(self) -> bool {
        matches!(self, Self::Declined | Self::Cancelled)
    }
}

pub const DECLINED: &str = "Declined by the user; nothing was written. What to do: do not retry unchanged; ask the user what they want instead.";

/// Asks when the setting and the front end allow, and says how the write was approved; an
/// error means the write must not go on and is not a decline (nobody could be asked).
pub async fn ask(
    mode: ConfirmWrites,
    human: &dyn Human,
    message: &str,
) -> Result<Confirmation, ToolFailure> {
    if mode == ConfirmWrites::Never {
        return Ok(Confirmation::Off);
    }
    if !human.can_ask() {
        return match mode {
            ConfirmWrites::Always => Err(ToolFailure::new(
                FailureKind::Refused,
                format!(
                    "Nothing was written: this server confirms every write with the user \
                     (BITRIX24_CONFIRM_WRITES=always), and {}. What to do: use a client that supports \
                     MCP elicitation (Claude Code, Cursor, VS Code, Codex), or ask the person who runs \
                     this server to change the setting.",
                    human.why_not()
                ),
            )),
            _ => Ok(Confirmation::CannotAsk(human.label())),
        };
    }
    Ok(match human.confirm(message).await {
        Answer::Accepted => Confirmation::Accepted,
        Answer::Declined => Confirmation::Declined,
        Answer::Cancelled => Confirmation::Cancelled,
        Answer::Pending => {
            return Err(ToolFailure::new(
                FailureKind::AwaitingUser,
                "Waiting for the user's confirmation; nothing was written.",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Says(Answer);
    impl Human for Says {
        fn confirm<'a>(
            &'a self,
            _message: &'a str,
        ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
            Box::pin(std::future::ready(self.0))
        }
    }

    #[tokio::test]
    async fn modes() {
        let nobody = Nobody {
            label: "not asked (command line)",
            why: "the command line has nobody to ask",
        };
        assert_eq!(
            ask(ConfirmWrites::Auto, &nobody, "m")
                .await
                .unwrap()
                .as_str(),
            "not asked (command line)"
        );
        let refused = ask(ConfirmWrites::Always, &nobody, "m").await.unwrap_err();
        assert!(refused.text.contains("command line"), "{}", refused.text);
        assert_eq!(
            ask(ConfirmWrites::Never, &Says(Answer::Declined), "m")
                .await
                .unwrap(),
            Confirmation::Off
        );
        assert_eq!(
            ask(ConfirmWrites::Auto, &Says(Answer::Declined), "m")
                .await
                .unwrap(),
            Confirmation::Declined
        );
        assert_eq!(
            ask(ConfirmWrites::Always, &Says(Answer::Accepted), "m")
                .await
                .unwrap(),
            Confirmation::Accepted
        );
        assert_eq!("ALWAYS".parse(), Ok(ConfirmWrites::Always));
        assert!("sometimes".parse::<ConfirmWrites>().is_err());
    }
}
