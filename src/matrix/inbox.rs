//! Processing of stored homeserver transactions: oldest first, each event handed to the bridge
//! layer once, our own namespace's events dropped (no echo loops), failures retried with
//! backoff without skipping ahead, so order is kept.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use ruma::{events::AnyTimelineEvent, serde::Raw};
use tokio::sync::Notify;

use super::{Namespace, txn::Transaction};
use crate::store::Store;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl InboxProcessor {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let batch = match self.store.pending_hs_txns(0, 20).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the transaction inbox");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if batch.is_empty() {
                // Notify keeps one permit, so a transaction stored between the query and
                // this wait is not missed.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.notify.notified()).await;
                continue;
            }
            for entry in batch {
                match self.process(&entry.txn_id, &entry.body).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(500);
                        if let Err(e) = self.store.mark_hs_done(entry.id).await {
                            tracing::error!(txn_id = %entry.txn_id, error = %e, "cannot mark a transaction done");
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(
                            txn_id = %entry.txn_id,
                            attempts = entry.attempts + 1,
                            retry_in_ms = backoff.as_millis() as u64,
                            error = %reason,
                            "transaction processing failed, will retry"
                        );
                        let _ = self.store.note_hs_attempt(entry.id, &reason).await;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        // Start again from the oldest pending one to keep the order.
                        break;
                    }
                }
            }
        }
    }

    async fn process(&self, txn_id: &str, body: &str) -> Result<(), String> {
        let txn = match Transaction::parse(body.as_bytes()) {
            Ok(t) => t,
            Err(e) => {
                // Validated before storing, so only a corrupted row lands here.
                tracing::error!(%txn_id, error = %e, "stored transaction cannot be parsed, skipping it");
                return Ok(());
            }
        };
        for event in &txn.events {
            let sender = event.get_field::<String>("sender").ok().flatten();
            if sender.as_deref().is_some_and(|s| self.namespace.is_ours(s)) {
                continue;
            }
            match self.sink.handle_event(txn_id, event).await {
                Ok(()) => {}
                Err(SinkError::Permanent(reason)) => {
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
