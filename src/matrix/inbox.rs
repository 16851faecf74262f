//! Processing of stored homeserver transactions: oldest first, each event handed to the bridge
//! layer once, our own namespace's events dropped (no echo loops), failures retried with
//! backoff without skipping ahead, so order is kept.

use std::{sync::Arc, time::Duration};

use ruma::{events::AnyTimelineEvent, serde::Raw};
use tokio::sync::Notify;

use super::{Namespace, txn::Transaction};
use crate::store::Store;

pub use crate::BoxFuture;

/// Why the bridge layer could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (Slack or the homeserver unreachable, rate limited).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed; logged and skipped.
    #[error("{0}")]
    Permanent(String),
}

/// The bridge layer's entry point for Matrix events.
pub trait MatrixEventSink: Send + Sync + 'static {
    fn handle_event<'a>(
        &'a self,
        txn_id: &'a str,
        event: &'a Raw<AnyTimelineEvent>,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    fn handle_ephemeral<'a>(
        &'a self,
        _event: &'a super::txn::EphemeralEvent,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

pub struct InboxProcessor {
    pub store: Store,
    pub sink: Arc<dyn MatrixEventSink>,
    pub namespace: Namespace,
    pub notify: Arc<Notify>,
}

const BACKOFF: crate::retry::Backoff =
    crate::retry::Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

/// Which events (by position) of one transaction are done.
#[derive(Default)]
struct Handled {
    txn_id: String,
    done: std::collections::BTreeSet<usize>,
}

impl Handled {
    fn switch_to(&mut self, txn_id: &str) {
        if self.txn_id != txn_id {
            self.txn_id = txn_id.to_owned();
            self.done.clear();
        }
    }

    fn clear(&mut self) {
        self.done.clear();
    }

    fn contains(&self, index: usize) -> bool {
        self.done.contains(&index)
    }

    fn insert(&mut self, index: usize) {
        self.done.insert(index);
    }
}

impl InboxProcessor {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut delays = BACKOFF.delays();
        // Events of the transaction being retried that were already handled: a retry
        // continues after them instead of running them (a command, a send) again.
        let mut handled = Handled::default();
        loop {
            if stop.is_cancelled() {
                return;
            }
            let batch = match self.store.pending_hs_txns(0, 20).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the transaction inbox");
                    let wait = BACKOFF.wait(delays.next(), None);
                    if !crate::supervisor::sleep_or_cancel(&stop, wait).await {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                // Notify keeps one permit, so a transaction stored between the query and
                // this wait is not missed.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            for entry in batch {
                handled.switch_to(&entry.txn_id);
                match self.process(&entry.txn_id, &entry.body, &mut handled).await {
                    Ok(()) => {
                        delays = BACKOFF.delays();
                        handled.clear();
                        if let Err(e) = self.store.mark_hs_done(entry.id).await {
                            tracing::error!(txn_id = %entry.txn_id, error = %e, "cannot mark a transaction done");
                        }
                    }
                    Err(reason) => {
                        let wait = BACKOFF.wait(delays.next(), None);
                        tracing::warn!(
                            txn_id = %entry.txn_id,
                            attempts = entry.attempts + 1,
                            retry_in_ms = wait.as_millis() as u64,
                            error = %reason,
                            "transaction processing failed, will retry"
                        );
                        let _ = self.store.note_hs_attempt(entry.id, &reason).await;
                        if !crate::supervisor::sleep_or_cancel(&stop, wait).await {
                            return;
                        }
                        // Start again from the oldest pending one to keep the order.
                        break;
                    }
                }
            }
        }
    }

    #[tracing::instrument(name = "transaction", skip_all, fields(txn_id = %txn_id))]
    async fn process(&self, txn_id: &str, body: &str, handled: &mut Handled) -> Result<(), String> {
        let txn = match Transaction::parse(body.as_bytes()) {
            Ok(t) => t,
            Err(e) => {
                // Validated before storing, so only a corrupted row lands here.
                tracing::error!(%txn_id, error = %e, "stored transaction cannot be parsed, skipping it");
                return Ok(());
            }
        };
        for (index, event) in txn.events.iter().enumerate() {
            let sender = event.get_field::<String>("sender").ok().flatten();
            if sender.as_deref().is_some_and(|s| self.namespace.is_ours(s))
                || handled.contains(index)
            {
                continue;
            }
            match self.sink.handle_event(txn_id, event).await {
                Ok(()) => handled.insert(index),
                Err(SinkError::Permanent(reason)) => {
                    handled.insert(index);
                    tracing::warn!(
                        %txn_id,
                        event_id = ?event.get_field::<String>("event_id").ok().flatten(),
                        %reason,
                        "event not bridged"
                    );
                }
                Err(SinkError::Retry(reason)) => return Err(reason),
            }
        }
        for event in txn.ephemeral() {
            if let Err(e) = self.sink.handle_ephemeral(event).await {
                tracing::debug!(%txn_id, error = %e, "ephemeral event not bridged");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the event ids it sees; asks for a retry the first time it sees `$b`.
    #[derive(Default)]
    struct FlakySink {
        seen: Mutex<Vec<String>>,
    }

    impl MatrixEventSink for FlakySink {
        fn handle_event<'a>(
            &'a self,
            _txn_id: &'a str,
            event: &'a Raw<AnyTimelineEvent>,
        ) -> BoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async move {
                let id = event.get_field::<String>("event_id").unwrap().unwrap();
                let mut seen = self.seen.lock().unwrap();
                let first_b = id == "$b" && !seen.contains(&id);
                seen.push(id);
                if first_b {
                    Err(SinkError::Retry("slack is down".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test]
    async fn a_retried_transaction_continues_after_its_handled_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/i.db", dir.path().display()), 2)
            .await
            .unwrap();
        let ev = |id: &str| {
            format!(
                r#"{{"type":"m.room.message","event_id":"{id}","room_id":"!r","sender":"@u:x","origin_server_ts":1,"content":{{"msgtype":"m.text","body":"{id}"}}}}"#
            )
        };
        // The bot's and a ghost's own events are the bridge's: never handed on (no echo).
        let own = |id: &str, sender: &str| {
            ev(id).replace(r#""sender":"@u:x""#, &format!(r#""sender":"{sender}""#))
        };
        let body = format!(
            r#"{{"events":[{},{},{},{},{}]}}"#,
            ev("$a"),
            own("$bot", "@slackbot:x"),
            ev("$b"),
            own("$ghost", "@slack_t1-u1:x"),
            ev("$c")
        );
        store.insert_hs_txn("1", &body).await.unwrap();
        let sink = Arc::new(FlakySink::default());
        let text = "homeserver: {domain: x}\nappservice: {as_token: a, hs_token: b}\n";
        let config = crate::config::Config::from_yaml(
            text,
            std::path::Path::new("c.yaml"),
            crate::config::Mode::Run,
            &|_| None,
        )
        .unwrap();
        let processor = InboxProcessor {
            store: store.clone(),
            sink: sink.clone(),
            namespace: Namespace::from_config(&config),
            notify: Arc::new(Notify::new()),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(processor.run(stop.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !store.pending_hs_txns(0, 10).await.unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the transaction was never done"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(*sink.seen.lock().unwrap(), ["$a", "$b", "$b", "$c"]);
    }
}
