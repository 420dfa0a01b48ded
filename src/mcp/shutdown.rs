//! SIGTERM and SIGINT: the first asks every transport to stop taking requests and finish the
//! calls under way; a second one ends the process at once.

use std::sync::Arc;

use tokio::sync::watch;

/// Exit status after a second signal: the shell's convention for "killed by SIGINT".
pub const FORCED_EXIT: i32 = 130;

/// A handle on the shutdown request; clones share it.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT (Ctrl-C on Windows) from now on.
    pub fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let Ok(mut signals) = Signals::new() else {
                tracing::warn!("cannot listen for signals; they will end the process at once");
                return;
            };
            let mut asked = false;
            loop {
                signals.next().await;
                if asked {
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(FORCED_EXIT);
                }
                asked = true;
                tracing::info!(
                    "signal received: finishing the calls under way (send it again to exit now)"
                );
                let _ = tx.send(true);
            }
        });
        Self { rx }
    }

    /// Resolves once shutdown was asked for; pends forever if it never is.
    pub async fn requested(&mut self) {
        if self.rx.wait_for(|asked| *asked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Registered once, so a second signal arriving at any moment is seen.
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Counts the tool calls under way, so a shutdown can wait for them to finish.
#[derive(Clone, Debug)]
pub struct InFlight {
    count: Arc<watch::Sender<usize>>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            count: Arc::new(watch::channel(0).0),
        }
    }
}

/// Held for the length of one call.
pub struct Busy(Arc<watch::Sender<usize>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl InFlight {
    pub fn enter(&self) -> Busy {
        self.count.send_modify(|n| *n += 1);
        Busy(self.count.clone())
    }

    /// Resolves when no call is under way, or after `deadline`, whichever comes first.
    pub async fn settled(&self, deadline: std::time::Duration) {
        let mut rx = self.count.subscribe();
        let _ = tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0)).await;
    }
}
