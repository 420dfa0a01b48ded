//! The person behind the MCP client, asked through elicitation: a request to the client on the
//! session lifecycles, or an input-required answer on the 2026-07-28 lifecycle, where the
//! server may not send requests and the client asks and retries instead. A round's answer
//! comes back with the state it was asked with, sealed for that one change.

use std::{future::Future, pin::Pin, sync::Mutex};

use rmcp::{
    Peer, RoleServer,
    model::{
        ClientCapabilities, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
        ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
    },
};

use crate::pipeline::{Answer, Human, LinkAnswer, Seal};

/// The key of the confirmation among a round's input requests.
const CONFIRM_KEY: &str = "confirm_write";
/// The key of the approval link among a round's input requests.
const LINK_KEY: &str = "approve_write";

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a client said it can show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abilities {
    pub form: bool,
    pub url: bool,
}

impl Abilities {
    pub fn of(capabilities: Option<&ClientCapabilities>) -> Self {
        let Some(e) = capabilities.and_then(|c| c.elicitation.as_ref()) else {
            return Self::default();
        };
        Self {
            // A bare `elicitation: {}` predates the modes and means forms.
            form: e.form.is_some() || e.url.is_none(),
            url: e.url.is_some(),
        }
    }
}

/// The confirmation form: one boolean, off unless the person turns it on.
fn form(message: &str) -> ElicitRequestParams {
    let schema = ElicitationSchema::builder()
        .required_bool_with("apply", |b| {
            b.title("Apply this change")
                .description(
                    "Turn on and accept to write it to the portal; decline to write nothing.",
                )
                .with_default(false)
        })
        .build_unchecked();
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema: schema,
    }
}

fn link(url: &str, message: &str) -> ElicitRequestParams {
    ElicitRequestParams::UrlElicitationParams {
        meta: None,
        message: message.to_owned(),
        url: url.to_owned(),
        elicitation_id: crate::pipeline::approval::random_token(10),
    }
}

/// Only an accepted form with `apply` on is a yes.
fn answer_of(
    result: &ElicitResult,
    by: &str,
    state: Option<crate::pipeline::approval::Opened>,
) -> Answer {
    match result.action {
        ElicitationAction::Accept
            if result
                .content
                .as_ref()
                .is_some_and(|c| c["apply"] == serde_json::Value::Bool(true)) =>
        {
            Answer::Accepted {
                by: by.to_owned(),
                state,
            }
        }
        ElicitationAction::Accept | ElicitationAction::Decline => {
            Answer::Declined { by: by.to_owned() }
        }
        _ => Answer::Cancelled,
    }
}

fn link_answer_of(result: &ElicitResult) -> LinkAnswer {
    match result.action {
        ElicitationAction::Accept => LinkAnswer::Opened,
        _ => LinkAnswer::Refused,
    }
}

/// Who answers in the client, for the ledger.
fn answerer(asker: &str) -> String {
    format!("{asker}, in the client")
}

/// Asks over the session with `elicitation/create` requests.
pub struct SessionHuman {
    pub peer: Peer<RoleServer>,
    pub asker: String,
    pub abilities: Abilities,
    /// Whether an answer in this client is the person's own (stdio: the client is theirs).
    pub trusted: bool,
}

impl Human for SessionHuman {
    fn asker(&self) -> String {
        self.asker.clone()
    }

    fn can_ask(&self) -> bool {
        self.trusted && self.abilities.form
    }

    fn confirm<'a>(&'a self, question: &'a str, _seal: &'a Seal<'a>) -> Boxed<'a, Answer> {
        Box::pin(async move {
            match self.peer.create_elicitation(form(question)).await {
                Ok(result) => answer_of(&result, &answerer(&self.asker), None),
                Err(err) => {
                    // No answer is no consent.
                    tracing::warn!(%err, "the confirmation could not be asked");
                    Answer::Cancelled
                }
            }
        })
    }

    fn can_open_links(&self) -> bool {
        self.abilities.url
    }

    fn open_link<'a>(&'a self, url: &'a str, message: &'a str) -> Boxed<'a, LinkAnswer> {
        Box::pin(async move {
            match self.peer.create_elicitation(link(url, message)).await {
                Ok(result) => link_answer_of(&result),
                Err(err) => {
                    tracing::warn!(%err, "the approval link could not be sent to the client");
                    LinkAnswer::Unavailable
                }
            }
        })
    }
}

/// The question this round asked, to go out as an input-required answer.
enum Round {
    Form { message: String, state: String },
    Link { url: String, message: String },
}

/// Asks through input-required rounds: the first call answers with the question; the retry
/// carries the person's answer and the sealed state of the question it answered.
pub struct Rounds {
    pub asker: String,
    pub abilities: Abilities,
    pub trusted: bool,
    responses: Option<InputResponses>,
    state: Option<String>,
    asked: Mutex<Option<Round>>,
}

impl Rounds {
    pub fn new(
        asker: String,
        abilities: Abilities,
        trusted: bool,
        responses: Option<InputResponses>,
        state: Option<String>,
    ) -> Self {
        Self {
            asker,
            abilities,
            trusted,
            responses,
            state,
            asked: Mutex::default(),
        }
    }

    fn response(&self, key: &str) -> Option<ElicitResult> {
        let value = self.responses.as_ref()?.get(key)?;
        Some(
            serde_json::from_value::<ElicitResult>(value.clone())
                .unwrap_or_else(|_| ElicitResult::new(ElicitationAction::Cancel)),
        )
    }

    fn remember(&self, round: Round) {
        if let Ok(mut asked) = self.asked.lock() {
            *asked = Some(round);
        }
    }

    /// The question to send back, if the pipeline asked one this round.
    pub fn question(&self) -> Option<InputRequiredResult> {
        let (key, params, state) = match self.asked.lock().ok()?.take()? {
            Round::Form { message, state } => (CONFIRM_KEY, form(&message), Some(state)),
            Round::Link { url, message } => (LINK_KEY, link(&url, &message), None),
        };
        let requests = [(
            key.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        )]
        .into_iter()
        .collect();
        Some(InputRequiredResult::new(Some(requests), state))
    }
}

impl Human for Rounds {
    fn asker(&self) -> String {
        self.asker.clone()
    }

    fn can_ask(&self) -> bool {
        self.trusted && self.abilities.form
    }

    fn confirm<'a>(&'a self, question: &'a str, seal: &'a Seal<'a>) -> Boxed<'a, Answer> {
        let opened = self.state.as_deref().map(|state| seal.open(state));
        let answer = match (self.response(CONFIRM_KEY), opened) {
            (Some(result), Some(Ok(opened))) => {
                answer_of(&result, &answerer(&self.asker), Some(opened))
            }
            (answered, opened) => {
                if let (Some(_), Some(Err(problem))) = (answered, opened) {
                    // An answer to another change, a forged or an old one: ask anew.
                    tracing::warn!(%problem, "a confirmation answer did not fit this change");
                }
                self.remember(Round::Form {
                    message: question.to_owned(),
                    state: seal.issue(),
                });
                Answer::Pending
            }
        };
        Box::pin(std::future::ready(answer))
    }

    fn can_open_links(&self) -> bool {
        self.abilities.url
    }

    fn open_link<'a>(&'a self, url: &'a str, message: &'a str) -> Boxed<'a, LinkAnswer> {
        let answer = match self.response(LINK_KEY) {
            Some(result) => link_answer_of(&result),
            None => {
                self.remember(Round::Link {
                    url: url.to_owned(),
                    message: message.to_owned(),
                });
                LinkAnswer::Pending
            }
        };
        Box::pin(std::future::ready(answer))
    }
}
