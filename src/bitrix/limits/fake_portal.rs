//! A portal in the test's own process, behind the same seam as the real client: it answers
//! from a script, after a delay on tokio's clock, and counts what it was sent and what was
//! abandoned. With the clock paused, a test of pacing, retries or cancellation runs in
//! microseconds however long the waits it checks.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::bitrix::{
    Answer, Api, IdempotencyKey, Portal, PortalClient, PortalError, Success, TransportKind,
    WebhookUrl,
};

/// One scripted answer: what comes back, and after how long.
#[derive(Clone)]
pub struct Reply {
    pub after: Duration,
    pub answer: Result<Success, PortalError>,
}

pub fn ok(result: Value) -> Reply {
    Reply {
        after: Duration::ZERO,
        answer: Ok(success(result)),
    }
}

pub fn success(result: Value) -> Success {
    Success {
        result,
        total: None,
        next: None,
        operating: None,
        operating_reset_at: None,
        finished_at: None,
    }
}

pub fn refused(status: u16, code: &str) -> Reply {
    Reply {
        after: Duration::ZERO,
        answer: Err(PortalError::Api {
            status,
            code: code.to_owned(),
            description: String::new(),
        }),
    }
}

pub fn lost() -> Reply {
    Reply {
        after: Duration::ZERO,
        answer: Err(PortalError::Transport {
            kind: TransportKind::Broken,
            detail: "connection reset".into(),
        }),
    }
}

pub fn throttled() -> Reply {
    refused(503, "QUERY_LIMIT_EXCEEDED")
}

impl Reply {
    pub fn after(mut self, delay: Duration) -> Self {
        self.after = delay;
        self
    }
}

type Script = dyn Fn(usize, &str) -> Reply + Send + Sync;

pub struct FakePortal {
    script: Box<Script>,
    sent: Mutex<Vec<(String, Value)>>,
    abandoned: AtomicUsize,
}

impl std::fmt::Debug for FakePortal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakePortal")
    }
}

impl FakePortal {
    /// Answers the `n`th request (from 0) for `method` by `script(n, method)`.
    pub fn new(script: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            sent: Mutex::default(),
            abandoned: AtomicUsize::new(0),
        })
    }

    pub fn always(reply: Reply) -> Arc<Self> {
        Self::new(move |_, _| reply.clone())
    }

    /// `first` for the first `n` requests, then `then`.
    pub fn first(n: usize, first: Reply, then: Reply) -> Arc<Self> {
        Self::new(move |i, _| if i < n { first.clone() } else { then.clone() })
    }

    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    pub fn count_of(&self, method: &str) -> usize {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    /// Requests whose caller stopped waiting before the answer.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }
}

/// Counts the request as abandoned unless it was answered.
struct Pending<'a>(&'a AtomicUsize, bool);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Portal for FakePortal {
    fn send<'a>(
        &'a self,
        method: &'a str,
        _api: Api,
        params: &'a Value,
        _key: Option<&'a IdempotencyKey>,
    ) -> Answer<'a> {
        let reply = {
            let mut sent = self.sent.lock().unwrap();
            sent.push((method.to_owned(), params.clone()));
            (self.script)(sent.len() - 1, method)
        };
        Box::pin(async move {
            let mut pending = Pending(&self.abandoned, false);
            tokio::time::sleep(reply.after).await;
            pending.1 = true;
            reply.answer
        })
    }
}

/// A client that is never called: the gateway reports its credentials and secrets.
pub fn unused_client() -> Arc<PortalClient> {
    let url = WebhookUrl::parse("http://127.0.0.1:9/rest/7/abcdefgh12345678/").unwrap();
    Arc::new(PortalClient::new(Arc::new(url), Duration::from_secs(5)))
}

pub fn read_args() -> Value {
    json!({"id": 645})
}
