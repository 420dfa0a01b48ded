//! Signing in on the portal: the address a person is sent to, and the callback that trades
//! the portal's code (it lives 30 s) for the person's tokens, names them, and gives the
//! browser a session and, when asked, a personal token for static-header clients.

use std::{sync::Arc, time::Instant};

use serde_json::json;

use super::{
    BROWSER_LIFE, PENDING_LIFE, PERSONAL_LIFE, Person, Team,
    authorization::{ClientRequest, IssuedCode},
};
use crate::{
    bitrix::{Api, acting, limits::NoProgress, oauth::OAuthError},
    ledger::TokenKind,
    pipeline::approval::random_token,
};

/// What a sign-in was started for.
#[derive(Debug, Clone)]
pub enum Pending {
    /// A person in a browser: a personal token, or back to `next` (an approval page).
    Browser { next: Option<String> },
    /// An MCP client's authorization request, consented to on this server.
    Client(ClientRequest),
}

/// Where a finished sign-in goes.
pub enum SignedIn {
    /// Show the person their new personal token.
    Personal {
        person: Person,
        cookie: String,
        token: String,
    },
    /// Back to a page of this server.
    Next { cookie: String, next: String },
    /// Back to the MCP client with a code.
    Client { cookie: String, redirect: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(
        "this sign-in link was already used or is over 10 minutes old. What to do: start again from the sign-in page."
    )]
    UnknownState,
    #[error("the portal did not send a code ({0}). What to do: start again from the sign-in page.")]
    NoCode(String),
    #[error(
        "this Bitrix24 application is open only to some people, and you are not one of them. What to do: ask a portal administrator to add you in the application's settings (who may use it), then sign in again."
    )]
    UserAccess,
    #[error(
        "Bitrix24 sign-in failed: {0}. What to do: sign in again; if it keeps failing, tell whoever runs this server."
    )]
    OAuth(OAuthError),
    #[error("your sign-in could not be recorded: {0}. What to do: tell whoever runs this server.")]
    Store(String),
}

impl Team {
    /// The portal's authorize address for a new sign-in.
    pub fn start_sign_in(&self, pending: Pending) -> String {
        let state = random_token(16);
        let mut open = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, (_, at)| at.elapsed() < PENDING_LIFE);
        open.insert(state.clone(), (pending, Instant::now()));
        self.app.authorize_url(&state, &self.url("oauth/callback"))
    }

    /// The portal's callback: `code`, `state`, `member_id`, `domain`, `server_domain`.
    pub async fn finish_sign_in(
        &self,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<SignedIn, SignInError> {
        let state = query.get("state").map(String::as_str).unwrap_or_default();
        let pending = {
            let mut open = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            open.remove(state)
                .filter(|(_, at)| at.elapsed() < PENDING_LIFE)
                .map(|(p, _)| p)
        };
        let pending = pending.ok_or(SignInError::UnknownState)?;
        let Some(code) = query.get("code") else {
            let why = query
                .get("error")
                .cloned()
                .unwrap_or_else(|| "no code".into());
            return Err(SignInError::NoCode(plain(&why)));
        };
        let grant = self.app.exchange(code).await.map_err(|e| {
            if e.is_user_access_error() {
                SignInError::UserAccess
            } else {
                SignInError::OAuth(e)
            }
        })?;
        let (member_id, user_id) = (grant.member_id.clone(), grant.user_id);
        let credentials = self.remember(grant).await.map_err(SignInError::Store)?;
        let name = self.name_of(credentials.clone(), user_id).await;
        self.ledger
            .rename_person(&member_id, user_id, &name)
            .await
            .map_err(|e| SignInError::Store(e.to_string()))?;
        tracing::info!(user = user_id, "signed in");
        let person = Person {
            member_id: member_id.clone(),
            user_id,
            name,
            credentials,
        };
        self.keep_live(person.clone());
        let cookie = self
            .issue(
                TokenKind::Browser,
                "",
                (&member_id, user_id),
                None,
                BROWSER_LIFE,
            )
            .await
            .map_err(SignInError::Store)?;
        self.land(pending, person, cookie).await
    }

    /// The sign-in's last step, once the person is known and their browser has a session:
    /// what it was started for decides where it lands.
    async fn land(
        &self,
        pending: Pending,
        person: Person,
        cookie: String,
    ) -> Result<SignedIn, SignInError> {
        match pending {
            Pending::Browser { next: Some(next) } => Ok(SignedIn::Next { cookie, next }),
            Pending::Browser { next: None } => {
                let (member_id, user_id) = (person.member_id.as_str(), person.user_id);
                // One personal token per person: a new sign-in replaces the old one.
                self.ledger
                    .revoke_personal(member_id, user_id)
                    .await
                    .map_err(|e| SignInError::Store(e.to_string()))?;
                let token = self
                    .issue(
                        TokenKind::Personal,
                        "b24p_",
                        (member_id, user_id),
                        None,
                        PERSONAL_LIFE,
                    )
                    .await
                    .map_err(SignInError::Store)?;
                Ok(SignedIn::Personal {
                    person,
                    cookie,
                    token,
                })
            }
            Pending::Client(request) => {
                let redirect = self.grant_code(request, &person);
                Ok(SignedIn::Client { cookie, redirect })
            }
        }
    }

    /// The person's name as the portal gives it (through the limiter, as the person).
    async fn name_of(
        &self,
        credentials: Arc<crate::bitrix::oauth::PersonCredentials>,
        user_id: u64,
    ) -> String {
        let gateway = self.pipeline.gateway();
        let nothing = json!({});
        let call = gateway.call(
            "profile",
            Api::Classic,
            &nothing,
            false,
            gateway.deadline(),
            &NoProgress,
        );
        let answer = acting::as_person(credentials, call).await;
        let name = answer
            .ok()
            .map(|s| {
                let part = |k: &str| s.result[k].as_str().unwrap_or_default().trim().to_owned();
                format!("{} {}", part("NAME"), part("LAST_NAME"))
            })
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        name.unwrap_or_else(|| format!("user {user_id}"))
    }

    /// A one-time code for an MCP client, good for a minute, and the client's address with it.
    fn grant_code(&self, request: ClientRequest, person: &Person) -> String {
        let code = random_token(20);
        let mut redirect = request.redirect_uri.clone();
        {
            let mut pairs = redirect.query_pairs_mut();
            pairs.append_pair("code", &code);
            if let Some(state) = &request.state {
                pairs.append_pair("state", state);
            }
            pairs.append_pair("iss", self.base.as_str().trim_end_matches('/'));
        }
        let issued = IssuedCode {
            request,
            member_id: person.member_id.clone(),
            user_id: person.user_id,
            at: Instant::now(),
        };
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, c| c.at.elapsed() < super::authorization::CODE_LIFE);
        codes.insert(code, issued);
        redirect.into()
    }
}

/// A word from the query, safe to show: letters, digits and `_ .-`, at most 60 of them.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_ .-".contains(*c))
        .take(60)
        .collect()
}
