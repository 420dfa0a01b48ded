//! As whom a call runs. A team server runs each tool call inside [`as_person`], and every
//! request the call sends (guard reads, the write, batches, retries) goes out with that
//! person's credentials; a call outside any person's scope uses the configured ones.
//!
//! A task-local rather than a parameter because a call crosses the guards, the resolver,
//! batch and who-can before it reaches the client, and none of them may pick credentials:
//! the one scope set at the edge is the only place a call's identity comes from.

use std::{future::Future, sync::Arc};

use super::Credentials;

tokio::task_local! {
    static ACTING: Arc<dyn Credentials>;
}

/// Runs `call` as the person `credentials` belong to.
pub async fn as_person<F: Future>(credentials: Arc<dyn Credentials>, call: F) -> F::Output {
    ACTING.scope(credentials, call).await
}

/// The credentials of the person the current call runs as, if it runs as one.
pub fn current() -> Option<Arc<dyn Credentials>> {
    ACTING.try_with(Arc::clone).ok()
}
