//! Task ownership: every long-running task of the bridge (socket managers, queue workers, inbox
//! readers, the HTTP listener) is spawned through one [`Supervisor`], so shutdown can stop them
//! all, give in-flight work a bounded grace period, and return with nothing left running.
//!
//! Two tokens make the two phases: `stop` asks tasks to finish what they are doing and return
//! (they check it between units of work and while waiting); `kill`, fired only when the grace
//! period runs out, drops whatever is still running at its next await point.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

#[derive(Clone, Default)]
pub struct Supervisor {
    stop: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when the bridge is stopping: finish the current unit of work, then return.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Spawns `fut` as an owned task: shutdown waits for it and, past the grace period,
    /// drops it.
    pub fn spawn<F>(&self, name: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // The task logs inside the span it was spawned from (a login's, a test's).
        self.spawn_in(&tracing::Span::current(), name, fut);
    }

    /// [`Self::spawn`] with its span under `parent` instead of the current one: for work
    /// that outlives what started it (a login's socket, started by a command).
    pub fn spawn_in<F>(&self, parent: &tracing::Span, name: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let kill = self.kill.clone();
        let span = tracing::info_span!(parent: parent, "task", task = name);
        self.tracker.spawn(
            async move {
                tokio::select! {
                    biased;
                    _ = kill.cancelled() => {
                        tracing::warn!(task = name, "task stopped before it finished");
                    }
                    _ = fut => {}
                }
            }
            .instrument(span),
        );
    }

    /// How many owned tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Stops every task: asks them to finish, waits up to `grace`, then drops the rest and
    /// waits for that too. Returns whether every task finished on its own.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        tracing::warn!(
            still_running = self.tracker.len(),
            grace_ms = grace.as_millis() as u64,
            "tasks did not finish within the shutdown grace period; stopping them"
        );
        self.kill.cancel();
        self.tracker.wait().await;
        false
    }
}

/// Sleeps for `d` unless `token` is cancelled first; true when the whole sleep happened.
pub async fn sleep_or_cancel(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_work_then_drops_what_hangs() {
        let sup = Supervisor::new();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let token = sup.stop_token().clone();
        sup.spawn("polite", async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        sup.spawn("stuck", std::future::pending());
        assert_eq!(sup.running(), 2);
        assert!(!sup.shutdown(Duration::from_secs(10)).await);
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(sup.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_is_clean_when_tasks_listen() {
        let sup = Supervisor::new();
        let token = sup.stop_token().clone();
        sup.spawn("polite", async move { token.cancelled().await });
        assert!(sup.shutdown(Duration::from_secs(10)).await);
        assert_eq!(sup.running(), 0);
    }
}
