//! The Slack inbox as the Socket Mode manager sees it: envelopes stored durably (deduplicated
//! on `event_id`) before they are acked, and the queue of each new one woken.

use std::sync::Arc;

use super::queue::QueueWaker;
use crate::{
    BoxFuture,
    ids::{ChannelId, TeamId},
    slack::{frames::Envelope, socket::EnvelopeStore},
    store::{NewSlackEvent, Store, slack_queue},
};

/// The production store: the Slack inbox table, deduplicated on `event_id`.
pub struct InboxStore {
    pub store: Store,
    /// The login the socket belongs to; its events are handled with that login (on
    /// Enterprise Grid the payload's team can be another workspace of the org).
    pub team_id: TeamId,
    /// Told which queues got new events.
    pub waker: Arc<QueueWaker>,
    /// `bridge.backfill.catchup_max`: after a gap, each portal catches up on at most this
    /// many messages (0: no catch-up).
    pub catchup_max: u32,
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
            let payloads: Vec<String> = envelopes
                .iter()
                .map(|e| stored_payload(&e.payload))
                .collect();
            let channels: Vec<Option<ChannelId>> =
                envelopes.iter().map(Envelope::channel_id).collect();
            let rows: Vec<NewSlackEvent<'_>> = keys
                .iter()
                .zip(&payloads)
                .zip(&channels)
                .map(|((key, payload), channel)| NewSlackEvent {
                    event_id: key,
                    team_id: &self.team_id,
                    channel_id: channel.as_ref(),
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
                    .wake(slack_queue(&self.team_id, channel.as_ref()));
            }
            Ok(new)
        })
    }

    fn connected_after_gap(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match super::history::catch_up_all(
                &self.store,
                &self.waker,
                &self.team_id,
                self.catchup_max,
            )
            .await
            {
                Ok(n) => {
                    tracing::info!(team = %self.team_id, portals = n, "connected to Slack: catching up on what it sent while the bridge was away")
                }
                Err(e) => {
                    tracing::error!(team = %self.team_id, error = %e, "cannot queue the catch-up after connecting to Slack")
                }
            }
        })
    }
}

/// The payload as stored: without Slack's legacy verification `token` (a secret of the app
/// the bridge never needs; Socket Mode is authenticated by its connection).
fn stored_payload(payload: &serde_json::Value) -> String {
    struct WithoutToken<'a>(&'a serde_json::Map<String, serde_json::Value>);
    impl serde::Serialize for WithoutToken<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().filter(|(k, _)| k.as_str() != "token"))
        }
    }
    match payload.as_object() {
        Some(map) => serde_json::to_string(&WithoutToken(map)).unwrap_or_default(),
        None => payload.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::stored_payload;

    #[test]
    fn the_verification_token_is_not_stored() {
        let payload = serde_json::json!({"token": "verification-secret", "team_id": "T1",
            "event": {"type": "message", "text": "a \"token\" in text stays", "token": "nested stays"}});
        let stored = stored_payload(&payload);
        assert!(!stored.contains("verification-secret"), "{stored}");
        let back: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(back["team_id"], "T1");
        assert_eq!(back["event"], payload["event"]);
        assert_eq!(stored_payload(&serde_json::json!([1])), "[1]");
    }
}
