//! A person's yes before every write. The model cannot give it, and a prompt injection cannot
//! either: the question goes to the person through the client (an in-band form, when the
//! client holds a channel only that person answers) or outside the model's channel entirely
//! (an approval page, or the `approve` command in a terminal). Either way the yes is bound to
//! the exact change it was given for, is good once, and expires.

use std::{future::Future, pin::Pin, str::FromStr, time::Duration};

use super::{
    approval::{
        self, Approval, ApprovalState, ApprovalStore, ChangeId, LIFETIME, Opened, ServerKey,
        StateProblem, StoreError,
    },
    failure::{FailureKind, ToolFailure},
};

/// When writes are confirmed with the user (`BITRIX24_CONFIRM_WRITES` / `--confirm-writes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfirmWrites {
    /// Ask in the client when it can ask its person; otherwise ask outside the model's channel
    /// (the approval page or a terminal). No write goes out without a yes.
    #[default]
    Auto,
    /// Always ask outside the model's channel: answers given in the client do not count.
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

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the person said in the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `state`: the sealed state the answer came back with, on the 2026-07-28 lifecycle.
    Accepted {
        by: String,
        state: Option<Opened>,
    },
    Declined {
        by: String,
    },
    Cancelled,
    /// The question goes out with the answer to this request; the client asks and retries.
    Pending,
}

/// What became of a link the client was asked to open for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAnswer {
    /// The person opened it (or consented to); the decision is made on the page.
    Opened,
    /// The request goes out with the answer to this call; the client retries.
    Pending,
    /// The person would not open it.
    Refused,
    /// The client could not be asked.
    Unavailable,
}

/// How a round's state is made and opened: sealed for this change only.
pub struct Seal<'a> {
    key: &'a ServerKey,
    change: &'a ChangeId,
    expires: u64,
}

impl<'a> Seal<'a> {
    pub fn new(key: &'a ServerKey, change: &'a ChangeId, expires: u64) -> Self {
        Self {
            key,
            change,
            expires,
        }
    }

    /// A fresh state for a question about to be asked.
    pub fn issue(&self) -> String {
        approval::seal(
            self.key,
            self.change,
            &approval::random_token(16),
            self.expires,
        )
    }

    /// Opens the state a retry came back with.
    pub fn open(&self, state: &str) -> Result<Opened, StateProblem> {
        approval::open(self.key, self.change, state, approval::now())
    }
}

/// The person a front end can reach, passed along with each call like progress is.
pub trait Human: Send + Sync {
    /// Who asked for the call, in words for the question and the ledger.
    fn asker(&self) -> String;
    /// Whether an answer given in this client is the person's own: a form the client shows
    /// its person, on a channel only that client holds.
    fn can_ask(&self) -> bool;
    /// Asks the question in the client.
    fn confirm<'a>(&'a self, question: &'a str, seal: &'a Seal<'a>) -> BoxFuture<'a, Answer>;
    /// Whether the client can open a link for its person (URL-mode elicitation).
    fn can_open_links(&self) -> bool {
        false
    }
    fn open_link<'a>(&'a self, _url: &'a str, _message: &'a str) -> BoxFuture<'a, LinkAnswer> {
        Box::pin(std::future::ready(LinkAnswer::Unavailable))
    }
}

/// Where an out-of-band approval is given: the approval page's address for one approval.
pub trait ApprovalDesk: Send + Sync {
    fn link(&self, id: &str) -> Result<String, String>;
}

/// How a write was approved, as hooks and the ledger record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Yes, in the client.
    Accepted {
        by: String,
    },
    /// Yes, on the approval page or in a terminal.
    Approved {
        by: String,
    },
    Declined {
        by: String,
    },
    Cancelled,
    /// Nobody answered within the bound.
    Unanswered,
    /// Not asked: `BITRIX24_CONFIRM_WRITES=never`.
    Off,
}

impl Confirmation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Approved { .. } => "approved",
            Self::Declined { .. } => "declined",
            Self::Cancelled => "cancelled",
            Self::Unanswered => "not answered in time",
            Self::Off => "not asked (confirmation off)",
        }
    }

    /// Who said yes (or no).
    pub fn by(&self) -> Option<&str> {
        match self {
            Self::Accepted { by } | Self::Approved { by } | Self::Declined { by } => Some(by),
            _ => None,
        }
    }

    pub fn refused(&self) -> bool {
        matches!(
            self,
            Self::Declined { .. } | Self::Cancelled | Self::Unanswered
        )
    }

    /// The tool error for a write the person did not let through.
    pub fn refusal(&self, timeout: Duration) -> ToolFailure {
        let text = match self {
            Self::Unanswered => format!(
                "Nobody answered the confirmation within {} s, so nothing was written. What to do: \
                 tell the user the change is waiting for their answer, and call again when they are ready.",
                timeout.as_secs()
            ),
            _ => DECLINED.to_owned(),
        };
        ToolFailure::new(FailureKind::Declined, text)
    }
}

pub const DECLINED: &str = "Declined by the user; nothing was written. What to do: do not retry unchanged; ask the user what they want instead.";

/// Everything a write's question needs from the server.
pub struct Gate<'a> {
    pub mode: ConfirmWrites,
    pub store: &'a dyn ApprovalStore,
    pub key: &'a ServerKey,
    pub desk: Option<&'a dyn ApprovalDesk>,
    /// How long a person has to answer in the client.
    pub timeout: Duration,
}

/// The change a person is asked about.
pub struct Asked<'a> {
    pub change: &'a ChangeId,
    pub portal: &'a str,
    /// The portal user the change runs as.
    pub user: &'a str,
    pub tool: &'a str,
    pub title: &'a str,
    pub question: &'a str,
}

fn unavailable(err: StoreError) -> ToolFailure {
    ToolFailure::new(
        FailureKind::Refused,
        format!(
            "Nothing was written: the approvals could not be read or recorded ({err}). What to do: \
             ask the person who runs this server to check the ledger file (BITRIX24_LEDGER), then call again."
        ),
    )
}

/// Asks as the setting and the front end allow, and says how the write was approved. An
/// error means the write must not go on: a question still open, or a broken answer.
pub async fn obtain(
    gate: &Gate<'_>,
    human: &dyn Human,
    asked: &Asked<'_>,
) -> Result<Confirmation, ToolFailure> {
    if gate.mode == ConfirmWrites::Never {
        return Ok(Confirmation::Off);
    }
    // The model calls again after the person decided on the page or in a terminal.
    if let Some(approved) = gate
        .store
        .take_approved(asked.change)
        .await
        .map_err(unavailable)?
    {
        return Ok(Confirmation::Approved {
            by: approved.decided_by.unwrap_or_default(),
        });
    }
    if let Some(declined) = gate
        .store
        .take_declined(asked.change)
        .await
        .map_err(unavailable)?
    {
        return Ok(Confirmation::Declined {
            by: declined.decided_by.unwrap_or_default(),
        });
    }
    if gate.mode == ConfirmWrites::Auto && human.can_ask() {
        in_band(gate, human, asked).await
    } else {
        out_of_band(gate, human, asked).await
    }
}

async fn in_band(
    gate: &Gate<'_>,
    human: &dyn Human,
    asked: &Asked<'_>,
) -> Result<Confirmation, ToolFailure> {
    let seal = Seal::new(gate.key, asked.change, approval::now() + LIFETIME.as_secs());
    let answer = tokio::time::timeout(gate.timeout, human.confirm(asked.question, &seal)).await;
    Ok(match answer {
        Err(_) => Confirmation::Unanswered,
        Ok(Answer::Accepted { by, state }) => {
            if let Some(state) = state {
                let first = gate
                    .store
                    .spend(&state.nonce, state.expires)
                    .await
                    .map_err(unavailable)?;
                if !first {
                    tracing::warn!(
                        tool = asked.tool,
                        "a confirmation answer came back a second time"
                    );
                    return Err(ToolFailure::new(
                        FailureKind::Refused,
                        "Nothing was written: this answer to the confirmation was used before, and each \
                         answer allows one write only. What to do: call again; the user will be asked anew.",
                    ));
                }
            }
            Confirmation::Accepted { by }
        }
        Ok(Answer::Declined { by }) => Confirmation::Declined { by },
        Ok(Answer::Cancelled) => Confirmation::Cancelled,
        Ok(Answer::Pending) => {
            return Err(ToolFailure::new(
                FailureKind::AwaitingUser,
                "Waiting for the user's confirmation; nothing was written.",
            ));
        }
    })
}

async fn out_of_band(
    gate: &Gate<'_>,
    human: &dyn Human,
    asked: &Asked<'_>,
) -> Result<Confirmation, ToolFailure> {
    let wanted = Approval::new(
        asked.change.clone(),
        (asked.portal, asked.user),
        asked.tool,
        asked.question,
        &human.asker(),
    );
    let approval = gate.store.request(wanted).await.map_err(unavailable)?;
    let link = match gate.desk.map(|desk| desk.link(&approval.id)) {
        Some(Ok(link)) => Some(link),
        Some(Err(why)) => {
            tracing::warn!(%why, "the approval page is not available");
            None
        }
        None => None,
    };
    if let Some(url) = &link
        && human.can_open_links()
    {
        let message = format!(
            "Open this page to read the complete change and approve or decline it: {}",
            asked.title
        );
        match human.open_link(url, &message).await {
            LinkAnswer::Opened => return decision(gate, &approval, asked).await,
            LinkAnswer::Pending => {
                return Err(ToolFailure::new(
                    FailureKind::AwaitingUser,
                    "Waiting for the user's approval; nothing was written.",
                ));
            }
            LinkAnswer::Refused => {
                let _ = gate
                    .store
                    .decide(&approval.id, false, "the person, in the client")
                    .await;
                let _ = gate.store.take_declined(asked.change).await;
                return Ok(Confirmation::Declined {
                    by: "the person, in the client".to_owned(),
                });
            }
            LinkAnswer::Unavailable => {}
        }
    }
    Err(awaiting(&approval, link.as_deref()))
}

/// Waits for the decision made on the page the client opened, within the bound.
async fn decision(
    gate: &Gate<'_>,
    approval: &Approval,
    asked: &Asked<'_>,
) -> Result<Confirmation, ToolFailure> {
    let waited = tokio::time::timeout(gate.timeout, async {
        loop {
            let state = gate
                .store
                .find(&approval.id)
                .await
                .map_err(unavailable)?
                .map(|a| a.state);
            if state != Some(ApprovalState::Pending) {
                return Ok::<_, ToolFailure>(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    if let Ok(problem @ Err(_)) = waited {
        problem?;
    }
    if let Some(approved) = gate
        .store
        .take_approved(asked.change)
        .await
        .map_err(unavailable)?
    {
        return Ok(Confirmation::Approved {
            by: approved.decided_by.unwrap_or_default(),
        });
    }
    if let Some(declined) = gate
        .store
        .take_declined(asked.change)
        .await
        .map_err(unavailable)?
    {
        return Ok(Confirmation::Declined {
            by: declined.decided_by.unwrap_or_default(),
        });
    }
    Ok(Confirmation::Unanswered)
}

/// The answer to a call whose change waits for a person outside the model's channel.
fn awaiting(approval: &Approval, link: Option<&str>) -> ToolFailure {
    let minutes = LIFETIME.as_secs() / 60;
    let command = format!("bitrix24-permissions-mcp approve {}", approval.id);
    let how = match link {
        Some(url) => format!(
            "Give the user this link, where they read the complete change and approve or decline it: \
             {url} (or they can run `{command}` in a terminal)."
        ),
        None => format!(
            "Ask the user to run `{command}` in a terminal, where they read the complete change and \
             approve or decline it."
        ),
    };
    ToolFailure::new(
        FailureKind::AwaitingApproval,
        format!(
            "This change needs the user's approval, and nothing has been sent. {how} It expires in \
             {minutes} minutes. What to do: once the user says they approved it, call this tool again \
             with exactly the same arguments; any other change needs an approval of its own."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bitrix::Identity, pipeline::approval::MemoryApprovals};
    use serde_json::json;

    /// A client that answers every question the same way, and opens no links.
    struct Says(Answer);
    impl Human for Says {
        fn asker(&self) -> String {
            "a test".to_owned()
        }
        fn can_ask(&self) -> bool {
            true
        }
        fn confirm<'a>(&'a self, _: &'a str, _: &'a Seal<'a>) -> BoxFuture<'a, Answer> {
            Box::pin(std::future::ready(self.0.clone()))
        }
    }

    struct Silent;
    impl Human for Silent {
        fn asker(&self) -> String {
            "a test".to_owned()
        }
        fn can_ask(&self) -> bool {
            true
        }
        fn confirm<'a>(&'a self, _: &'a str, _: &'a Seal<'a>) -> BoxFuture<'a, Answer> {
            Box::pin(std::future::pending())
        }
    }

    fn change() -> ChangeId {
        let who = Identity {
            host: "p".into(),
            user_id: "1".into(),
        };
        ChangeId::of(&who, "t", &json!({"id": 1}))
    }

    async fn ask(
        mode: ConfirmWrites,
        human: &dyn Human,
        store: &MemoryApprovals,
    ) -> Result<Confirmation, ToolFailure> {
        let key = ServerKey::ephemeral();
        let change = change();
        let gate = Gate {
            mode,
            store,
            key: &key,
            desk: None,
            timeout: Duration::from_secs(300),
        };
        let asked = Asked {
            change: &change,
            portal: "p",
            user: "1",
            tool: "t",
            title: "T",
            question: "q?",
        };
        obtain(&gate, human, &asked).await
    }

    #[tokio::test]
    async fn modes_and_answers() {
        let store = MemoryApprovals::default();
        let yes = Says(Answer::Accepted {
            by: "alice".into(),
            state: None,
        });
        assert_eq!(
            ask(ConfirmWrites::Never, &yes, &store).await.unwrap(),
            Confirmation::Off
        );
        assert_eq!(
            ask(ConfirmWrites::Auto, &yes, &store).await.unwrap(),
            Confirmation::Accepted { by: "alice".into() }
        );
        // Always: an answer in the client does not count; the person approves elsewhere.
        let waiting = ask(ConfirmWrites::Always, &yes, &store).await.unwrap_err();
        assert_eq!(waiting.kind, FailureKind::AwaitingApproval);
        assert!(
            waiting.text.contains("bitrix24-permissions-mcp approve"),
            "{}",
            waiting.text
        );
        let id = store.pending(None).await.unwrap()[0].id.clone();
        store.decide(&id, true, "bob at a terminal").await.unwrap();
        assert_eq!(
            ask(ConfirmWrites::Always, &yes, &store).await.unwrap(),
            Confirmation::Approved {
                by: "bob at a terminal".into()
            }
        );
        assert!(
            ask(ConfirmWrites::Always, &yes, &store).await.is_err(),
            "an approval allows one write"
        );
    }

    #[tokio::test]
    async fn a_spent_state_is_refused() {
        let store = MemoryApprovals::default();
        let state = Opened {
            nonce: "n".into(),
            expires: approval::now() + 60,
        };
        let yes = Says(Answer::Accepted {
            by: "alice".into(),
            state: Some(state),
        });
        assert!(ask(ConfirmWrites::Auto, &yes, &store).await.is_ok());
        let replay = ask(ConfirmWrites::Auto, &yes, &store).await.unwrap_err();
        assert!(replay.text.contains("used before"), "{}", replay.text);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_question_ends_and_writes_nothing() {
        let store = MemoryApprovals::default();
        assert_eq!(
            ask(ConfirmWrites::Auto, &Silent, &store).await.unwrap(),
            Confirmation::Unanswered
        );
    }
}
