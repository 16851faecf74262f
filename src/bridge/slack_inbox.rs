//! The Slack inbox as the Socket Mode manager sees it: envelopes stored durably (deduplicated
//! on `event_id`) before they are acked, and the queue of each new one woken.

use std::sync::Arc;

use super::queue::QueueWaker;
use crate::{
    BoxFuture,
    slack::{frames::Envelope, socket::EnvelopeStore},
    store::{NewSlackEvent, Store, slack_queue},
};

/// The production store: the Slack inbox table, deduplicated on `event_id`.
pub struct InboxStore {
    pub store: Store,
    /// The login the socket belongs to; its events are handled with that login (on
    /// Enterprise Grid the payload's team can be another workspace of the org).
    pub team_id: String,
    /// Told which queues got new events.
    pub waker: Arc<QueueWaker>,
}

impl EnvelopeStore for InboxStore {
    fn store<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let new = self.store_batch(std::slice::from_ref(envelope)).await?;
            Ok(new[0])
        })
    }

    fn store_batch<'a>(
        &'a self,
        envelopes: &'a [Envelope],
    ) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        Box::pin(async move {
            let keys: Vec<String> = envelopes.iter().map(Envelope::dedupe_key).collect();
            let payloads: Vec<String> = envelopes.iter().map(|e| e.payload.to_string()).collect();
            let channels: Vec<Option<String>> =
                envelopes.iter().map(Envelope::channel_id).collect();
            let rows: Vec<NewSlackEvent<'_>> = keys
                .iter()
                .zip(&payloads)
                .zip(&channels)
                .map(|((key, payload), channel)| NewSlackEvent {
                    event_id: key,
                    team_id: &self.team_id,
                    channel_id: channel.as_deref(),
                    payload,
                })
                .collect();
            let new = self
                .store
                .insert_slack_events(&rows)
                .await
                .map_err(|e| e.to_string())?;
            for (channel, _) in channels.iter().zip(&new).filter(|(_, new)| **new) {
                self.waker
                    .wake(slack_queue(&self.team_id, channel.as_deref()));
            }
            Ok(new)
        })
    }
}
