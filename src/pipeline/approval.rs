//! What makes a person's yes count for one change only.
//!
//! A change is named by a digest of the portal, the user calls run as, the tool and the
//! canonical arguments ([`ChangeId`]). An answer given in the MCP channel on the 2026-07-28
//! lifecycle comes back in the client's retry, so the question's state is sealed with an HMAC
//! under a server key ([`ServerKey`]) over that digest, a single-use nonce and an expiry: a
//! state issued for one change does not open for another, and a spent nonce is refused in any
//! process sharing the ledger. An approval given outside the model's channel (the approval page,
//! the `approve` command) is a row ([`Approval`]) the same digest finds again when the model
//! calls once more, and is used up by the write it allowed.

use std::{
    future::Future,
    path::Path,
    pin::Pin,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use ring::{
    digest::{SHA256, digest},
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use serde_json::{Value, json};

use crate::{bitrix::Identity, private_files};

/// How long a question or an approval link stays good.
pub const LIFETIME: Duration = Duration::from_secs(600);

/// Seconds since the epoch, the unit every stored time is kept in.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `n` random bytes as lowercase base32: tokens, nonces and approval ids, from the system's
/// CSPRNG, never a seeded generator.
pub fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut raw)
        .expect("the system's random source works");
    BASE32_NOPAD.encode(&raw).to_ascii_lowercase()
}

/// The key questions are sealed with. Kept in a 0600 file beside the ledger, so every process
/// sharing the ledger opens what another sealed; with no ledger, one process's own.
pub struct ServerKey(hmac::Key);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

const KEY_BYTES: usize = 32;

impl ServerKey {
    /// Reads the key at `path`, creating it (0600, its folder 0700) when it is missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        let raw = private_files::key_file(path, KEY_BYTES)?;
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &raw)))
    }

    /// A key of this process alone.
    pub fn ephemeral() -> Self {
        let mut raw = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut raw)
            .expect("the system's random source works");
        Self(hmac::Key::new(hmac::HMAC_SHA256, &raw))
    }

    fn sign(&self, text: &str) -> String {
        BASE64URL_NOPAD.encode(hmac::sign(&self.0, text.as_bytes()).as_ref())
    }

    fn verify(&self, text: &str, mac: &str) -> bool {
        BASE64URL_NOPAD
            .decode(mac.as_bytes())
            .is_ok_and(|mac| hmac::verify(&self.0, text.as_bytes(), &mac).is_ok())
    }

    /// A token bound to `purpose` (e.g. an approval page's form), which only this key makes.
    pub fn tag(&self, purpose: &str) -> String {
        self.sign(purpose)
    }

    pub fn checks(&self, purpose: &str, tag: &str) -> bool {
        self.verify(purpose, tag)
    }
}

/// One exact change: SHA-256 over the portal, the user it runs as, the tool and the arguments
/// in canonical JSON (keys sorted, numbers as the schema settled them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeId(String);

impl ChangeId {
    pub fn of(identity: &Identity, tool: &str, arguments: &Value) -> Self {
        // serde_json's maps are sorted, so this text is the same for the same change.
        let canonical = json!({
            "portal": identity.host,
            "user": identity.user_id,
            "tool": tool,
            "arguments": arguments,
        })
        .to_string();
        let sum = digest(&SHA256, canonical.as_bytes());
        Self(data_encoding::HEXLOWER.encode(sum.as_ref()))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a sealed state does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateProblem {
    #[error("it is not a state this server issued")]
    Malformed,
    #[error("it was issued for another change, or altered")]
    OtherChange,
    #[error("it expired")]
    Expired,
}

/// A question's state for a client's retry: `v1.<nonce>.<expiry>.<mac>`.
pub fn seal(key: &ServerKey, change: &ChangeId, nonce: &str, expires: u64) -> String {
    let body = format!("v1.{nonce}.{expires}");
    let mac = key.sign(&format!("{body}.{}", change.as_str()));
    format!("{body}.{mac}")
}

/// What an opened state holds: the nonce to spend, and until when it would have been good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub nonce: String,
    pub expires: u64,
}

/// Opens a state for this change at `now`.
pub fn open(
    key: &ServerKey,
    change: &ChangeId,
    state: &str,
    now: u64,
) -> Result<Opened, StateProblem> {
    let mut parts = state.split('.');
    let (Some("v1"), Some(nonce), Some(expires), Some(mac), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(StateProblem::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| StateProblem::Malformed)?;
    if !key.verify(&format!("v1.{nonce}.{expires}.{}", change.as_str()), mac) {
        return Err(StateProblem::OtherChange);
    }
    if expires <= now {
        return Err(StateProblem::Expired);
    }
    Ok(Opened {
        nonce: nonce.to_owned(),
        expires,
    })
}

/// Where an out-of-band approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Declined,
    /// Approved, and the write it allowed has gone out: never again.
    Used,
    /// Declined, and the call that asked has been told: the next call asks anew.
    Closed,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Used => "used",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "declined" => Self::Declined,
            "used" => Self::Used,
            "closed" => Self::Closed,
            _ => return None,
        })
    }
}

/// A change waiting for, or given, a person's decision outside the model's channel.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Random, unguessable: the approval page's address holds it.
    pub id: String,
    pub change: ChangeId,
    pub portal: String,
    pub tool: String,
    /// The complete question, as the person reads it.
    pub question: String,
    pub asked_by: String,
    /// The portal user the change runs as: on a team server, only they may decide it.
    pub user_id: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub state: ApprovalState,
    pub decided_by: Option<String>,
}

impl Approval {
    pub fn new(
        change: ChangeId,
        at: (&str, &str),
        tool: &str,
        question: &str,
        asked_by: &str,
    ) -> Self {
        let (portal, user_id) = at;
        let created_at = now();
        Self {
            id: random_token(16),
            change,
            portal: portal.to_owned(),
            tool: tool.to_owned(),
            question: question.to_owned(),
            asked_by: asked_by.to_owned(),
            user_id: user_id.to_owned(),
            created_at,
            expires_at: created_at + LIFETIME.as_secs(),
            state: ApprovalState::Pending,
            decided_by: None,
        }
    }

    pub fn expired(&self, at: u64) -> bool {
        self.expires_at <= at
    }
}

/// What a decision came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    Done(ApprovalState),
    /// Someone decided it already, it was used, or it expired: nothing changed.
    TooLate(String),
    NotFound,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where approvals and spent nonces are kept: the ledger, or this process's memory when the
/// ledger is off.
pub trait ApprovalStore: Send + Sync {
    /// The pending, unexpired approval of this change asked by the same person, or a new one.
    fn request<'a>(&'a self, wanted: Approval) -> StoreFuture<'a, Approval>;
    fn find<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Approval>>;
    /// Approves or declines a pending, unexpired approval.
    fn decide<'a>(&'a self, id: &'a str, approve: bool, by: &'a str) -> StoreFuture<'a, Decided>;
    /// Uses up the approved, unexpired approval of this change, if there is one.
    fn take_approved<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>>;
    /// Reports a declined approval of this change once: it is closed by being reported, so
    /// the next call of the same change asks anew.
    fn take_declined<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>>;
    /// Records a nonce as spent; false when it was spent before.
    fn spend<'a>(&'a self, nonce: &'a str, expires: u64) -> StoreFuture<'a, bool>;
    /// Pending, unexpired approvals, on one portal or all.
    fn pending<'a>(&'a self, portal: Option<&'a str>) -> StoreFuture<'a, Vec<Approval>>;
}

/// The store of a server without a ledger: this process's memory.
#[derive(Default)]
pub struct MemoryApprovals {
    approvals: Mutex<Vec<Approval>>,
    spent: Mutex<std::collections::HashMap<String, u64>>,
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl MemoryApprovals {
    fn all(&self) -> std::sync::MutexGuard<'_, Vec<Approval>> {
        self.approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ApprovalStore for MemoryApprovals {
    fn request<'a>(&'a self, wanted: Approval) -> StoreFuture<'a, Approval> {
        let at = now();
        let mut all = self.all();
        all.retain(|a| !a.expired(at));
        if let Some(open) = all.iter().find(|a| {
            a.change == wanted.change
                && a.asked_by == wanted.asked_by
                && a.state == ApprovalState::Pending
        }) {
            return ready(open.clone());
        }
        all.push(wanted.clone());
        ready(wanted)
    }

    fn find<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Approval>> {
        ready(self.all().iter().find(|a| a.id == id).cloned())
    }

    fn decide<'a>(&'a self, id: &'a str, approve: bool, by: &'a str) -> StoreFuture<'a, Decided> {
        let at = now();
        let mut all = self.all();
        let Some(found) = all.iter_mut().find(|a| a.id == id) else {
            return ready(Decided::NotFound);
        };
        if found.state != ApprovalState::Pending || found.expired(at) {
            return ready(Decided::TooLate(too_late(found, at)));
        }
        found.state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Declined
        };
        found.decided_by = Some(by.to_owned());
        ready(Decided::Done(found.state))
    }

    fn take_approved<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>> {
        let at = now();
        let mut all = self.all();
        let found = all
            .iter_mut()
            .find(|a| a.change == *change && a.state == ApprovalState::Approved && !a.expired(at));
        ready(found.map(|a| {
            a.state = ApprovalState::Used;
            a.clone()
        }))
    }

    fn take_declined<'a>(&'a self, change: &'a ChangeId) -> StoreFuture<'a, Option<Approval>> {
        let mut all = self.all();
        let found = all
            .iter_mut()
            .find(|a| a.change == *change && a.state == ApprovalState::Declined);
        ready(found.map(|a| {
            let reported = a.clone();
            a.state = ApprovalState::Closed;
            reported
        }))
    }

    fn spend<'a>(&'a self, nonce: &'a str, expires: u64) -> StoreFuture<'a, bool> {
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = now();
        spent.retain(|_, until| *until > at);
        ready(spent.insert(nonce.to_owned(), expires).is_none())
    }

    fn pending<'a>(&'a self, portal: Option<&'a str>) -> StoreFuture<'a, Vec<Approval>> {
        let at = now();
        ready(
            self.all()
                .iter()
                .filter(|a| a.state == ApprovalState::Pending && !a.expired(at))
                .filter(|a| portal.is_none_or(|p| a.portal == p))
                .cloned()
                .collect(),
        )
    }
}

/// Why a decision came too late, in words.
pub fn too_late(approval: &Approval, at: u64) -> String {
    match approval.state {
        ApprovalState::Pending if approval.expired(at) => {
            "it expired; nothing was written. Ask the assistant to make the change again".to_owned()
        }
        ApprovalState::Used => "it was approved and the change has been sent".to_owned(),
        state => format!(
            "it was {} already{}",
            state.as_str(),
            approval
                .decided_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            host: "example.bitrix24.com".into(),
            user_id: "1".into(),
        }
    }

    #[test]
    fn a_state_opens_only_for_its_own_change_and_time() {
        let key = ServerKey::ephemeral();
        let role_k = ChangeId::of(
            &identity(),
            "sonet_group_user_update",
            &json!({"GROUP_ID": 77, "USER_ID": 503, "ROLE": "K"}),
        );
        let role_e = ChangeId::of(
            &identity(),
            "sonet_group_user_update",
            &json!({"GROUP_ID": 77, "USER_ID": 503, "ROLE": "E"}),
        );
        let state = seal(&key, &role_k, "n1", 1_000);
        assert_eq!(
            open(&key, &role_k, &state, 999).map(|o| o.nonce),
            Ok("n1".to_owned())
        );
        assert_eq!(
            open(&key, &role_e, &state, 999),
            Err(StateProblem::OtherChange)
        );
        assert_eq!(
            open(&key, &role_k, &state, 1_000),
            Err(StateProblem::Expired)
        );
        let forged = state.replace(".1000.", ".9999.");
        assert_eq!(
            open(&key, &role_k, &forged, 999),
            Err(StateProblem::OtherChange)
        );
        let other_key = ServerKey::ephemeral();
        assert_eq!(
            open(&other_key, &role_k, &state, 999),
            Err(StateProblem::OtherChange)
        );
        assert_eq!(
            open(&key, &role_k, "confirm-0123", 999),
            Err(StateProblem::Malformed)
        );
    }

    #[test]
    fn the_same_change_is_the_same_id_whatever_the_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"id": 645, "rights": {"U1": ["read"], "AU": ["read"]}}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"rights": {"AU": ["read"], "U1": ["read"]}, "id": 645}"#)
                .unwrap();
        assert_eq!(
            ChangeId::of(&identity(), "t", &a),
            ChangeId::of(&identity(), "t", &b)
        );
    }

    #[tokio::test]
    async fn an_approval_is_decided_once_and_used_once() {
        let store = MemoryApprovals::default();
        let change = ChangeId::of(&identity(), "t", &json!({"id": 1}));
        let asked = store
            .request(Approval::new(
                change.clone(),
                ("p", "1"),
                "t",
                "q?",
                "alice",
            ))
            .await
            .unwrap();
        let again = store
            .request(Approval::new(
                change.clone(),
                ("p", "1"),
                "t",
                "q?",
                "alice",
            ))
            .await
            .unwrap();
        assert_eq!(
            asked.id, again.id,
            "one open question per change and person"
        );
        assert!(store.take_approved(&change).await.unwrap().is_none());
        assert_eq!(
            store.decide(&asked.id, true, "alice").await.unwrap(),
            Decided::Done(ApprovalState::Approved)
        );
        assert!(matches!(
            store.decide(&asked.id, false, "mallory").await.unwrap(),
            Decided::TooLate(_)
        ));
        assert!(store.take_approved(&change).await.unwrap().is_some());
        assert!(
            store.take_approved(&change).await.unwrap().is_none(),
            "used up"
        );
        assert!(store.spend("n", now() + 60).await.unwrap());
        assert!(!store.spend("n", now() + 60).await.unwrap());
    }
}
