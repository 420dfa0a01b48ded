//! The person behind the MCP client, asked through elicitation: a request to the client on the
//! session lifecycles, or an input-required answer on the 2026-07-28 lifecycle, where the
//! server may not send requests and the client asks and retries instead.

use std::{
    future::Future,
    hash::{Hash, Hasher},
    pin::Pin,
};

use rmcp::{
    Peer, RoleServer,
    model::{
        ClientCapabilities, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
        ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
    },
};

use crate::pipeline::{Answer, Human};

/// The key of the confirmation among a round's input requests.
const CONFIRM_KEY: &str = "confirm_write";

pub const NO_CAPABILITY: &str =
    "this client did not declare the MCP elicitation capability, so the server cannot ask the user";

/// Whether the client said it can show a form.
pub fn can_elicit_form(capabilities: Option<&ClientCapabilities>) -> bool {
    capabilities
        .and_then(|c| c.elicitation.as_ref())
        // A bare `elicitation: {}` predates the modes and means forms.
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
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

/// Only an accepted form with `apply` on is a yes.
fn answer_of(result: &ElicitResult) -> Answer {
    match result.action {
        ElicitationAction::Accept
            if result
                .content
                .as_ref()
                .is_some_and(|c| c["apply"] == serde_json::Value::Bool(true)) =>
        {
            Answer::Accepted
        }
        ElicitationAction::Accept | ElicitationAction::Decline => Answer::Declined,
        _ => Answer::Cancelled,
    }
}

/// Asks over the session with an `elicitation/create` request.
pub struct PeerHuman(pub Peer<RoleServer>);

impl Human for PeerHuman {
    fn confirm<'a>(
        &'a self,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
        Box::pin(async move {
            match self.0.create_elicitation(form(message)).await {
                Ok(result) => answer_of(&result),
                Err(err) => {
                    // No answer is no consent.
                    tracing::warn!(%err, "the confirmation could not be asked");
                    Answer::Cancelled
                }
            }
        })
    }
}

/// Asks through input-required rounds: the first call answers with the question; the retry
/// carries the person's answer and the fingerprint of the message it answered.
pub struct Rounds {
    responses: Option<InputResponses>,
    state: Option<String>,
    asked: std::sync::Mutex<Option<String>>,
}

impl Rounds {
    pub fn new(responses: Option<InputResponses>, state: Option<String>) -> Self {
        Self {
            responses,
            state,
            asked: std::sync::Mutex::default(),
        }
    }

    /// The question to send back, if the pipeline asked one this round.
    pub fn question(&self) -> Option<InputRequiredResult> {
        let message = self.asked.lock().ok()?.take()?;
        let requests = [(
            CONFIRM_KEY.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(form(&message))),
        )]
        .into_iter()
        .collect();
        Some(InputRequiredResult::new(
            Some(requests),
            Some(fingerprint(&message)),
        ))
    }
}

/// Binds an answer to the message it answered, so a retry with other arguments is asked anew.
fn fingerprint(message: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut h);
    format!("confirm-{:016x}", h.finish())
}

impl Human for Rounds {
    fn confirm<'a>(
        &'a self,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
        let answered = self
            .responses
            .as_ref()
            .and_then(|r| r.get(CONFIRM_KEY))
            .filter(|_| self.state.as_deref() == Some(fingerprint(message).as_str()))
            .map(|v| {
                serde_json::from_value::<ElicitResult>(v.clone())
                    .map_or(Answer::Cancelled, |r| answer_of(&r))
            });
        let answer = answered.unwrap_or_else(|| {
            if let Ok(mut asked) = self.asked.lock() {
                *asked = Some(message.to_owned());
            }
            Answer::Pending
        });
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_round_asks_then_takes_the_answer_for_the_same_message() {
        let first = Rounds::new(None, None);
        assert_eq!(first.confirm("apply?").await, Answer::Pending);
        let question = first.question().unwrap();
        let wire = serde_json::to_value(&question).unwrap();
        assert_eq!(
            wire["inputRequests"][CONFIRM_KEY]["method"],
            "elicitation/create"
        );
        assert_eq!(
            wire["inputRequests"][CONFIRM_KEY]["params"]["message"],
            "apply?"
        );
        let state = question.request_state.unwrap();
        let accept = |apply: bool| {
            [(
                CONFIRM_KEY.to_owned(),
                json!({"action": "accept", "content": {"apply": apply}}),
            )]
            .into_iter()
            .collect::<InputResponses>()
        };
        let yes = Rounds::new(Some(accept(true)), Some(state.clone()));
        assert_eq!(yes.confirm("apply?").await, Answer::Accepted);
        let no = Rounds::new(Some(accept(false)), Some(state.clone()));
        assert_eq!(no.confirm("apply?").await, Answer::Declined);
        // An answer to another message is not an answer to this one.
        let other = Rounds::new(Some(accept(true)), Some(state));
        assert_eq!(other.confirm("something else?").await, Answer::Pending);
    }
}
