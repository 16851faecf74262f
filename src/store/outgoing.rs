//! `outgoing`: Matrix events being sent to Slack, recorded as pending before the Slack call so
//! a redelivered transaction does not post twice.

use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId, Ts};

const BEGIN: &str = "INSERT INTO outgoing (event_id, room_id, team_id, channel_id, created_at)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING";
const STATE: &str = "SELECT state, slack_ts FROM outgoing WHERE event_id = $1";
const SENT: &str = "UPDATE outgoing SET state = 'sent', slack_ts = $2 WHERE event_id = $1";
const FAILED: &str = "UPDATE outgoing SET state = 'failed', error = $2 WHERE event_id = $1";
const FORGET: &str = "DELETE FROM outgoing WHERE event_id = $1 AND state = 'pending'";
const CREATED: &str = "SELECT created_at FROM outgoing WHERE event_id = $1";
const SET_FILE: &str = "UPDATE outgoing SET slack_file_id = $2, sender = $3 WHERE event_id = $1";
const FILE: &str = "SELECT slack_file_id FROM outgoing WHERE event_id = $1";
const UPLOADED: &str = "UPDATE outgoing SET state = 'sent' WHERE event_id = $1";
const BY_FILE: &str = "SELECT event_id, room_id, channel_id, sender, slack_ts FROM outgoing
    WHERE team_id = $1 AND slack_file_id = $2 AND sender IS NOT NULL";
const BY_TS: &str =
    "SELECT COUNT(*) FROM outgoing WHERE team_id = $1 AND channel_id = $2 AND slack_ts = $3";

/// Where a Matrix event stands on its way to Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// First time seen: go ahead and send.
    New,
    /// Seen before but not known to be sent (a crash or failure mid-way): send again.
    Pending,
    /// Already on Slack with this ts.
    Sent(Ts),
    /// Given up on before.
    Failed,
}

/// A Matrix file upload to Slack, found by its Slack file.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutgoingFile {
    #[sqlx(try_from = "String")]
    pub event_id: OwnedEventId,
    #[sqlx(try_from = "String")]
    pub room_id: OwnedRoomId,
    pub channel_id: ChannelId,
    /// Set with the upload's Slack file, which is when this row is looked for.
    #[sqlx(try_from = "String")]
    pub sender: OwnedUserId,
    /// Set once the share's echo told the message ts.
    pub slack_ts: Option<Ts>,
}

impl Store {
    /// Records `event_id` as about to be sent, reporting what happened to it before.
    pub async fn begin_outgoing(
        &self,
        event_id: &EventId,
        room_id: &RoomId,
        team_id: &TeamId,
        channel_id: &ChannelId,
    ) -> Result<Outgoing> {
        let inserted = on_pool!(self, pool => sqlx::query(BEGIN)
            .bind(event_id.as_str())
            .bind(room_id.as_str())
            .bind(team_id)
            .bind(channel_id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        if inserted > 0 {
            return Ok(Outgoing::New);
        }
        let row: Option<(String, Option<Ts>)> = on_pool!(self, pool => sqlx::query_as(STATE)
            .bind(event_id.as_str())
            .fetch_optional(pool)
            .await?);
        Ok(match row {
            // An upload is sent before its ts is known (Slack shares it a moment later).
            Some((state, ts)) if state == "sent" => Outgoing::Sent(ts.unwrap_or_default()),
            Some((state, _)) if state == "failed" => Outgoing::Failed,
            _ => Outgoing::Pending,
        })
    }

    pub async fn finish_outgoing(&self, event_id: &EventId, slack_ts: &Ts) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SENT).bind(event_id.as_str()).bind(slack_ts).execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn fail_outgoing(&self, event_id: &EventId, error: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query(FAILED).bind(event_id.as_str()).bind(error).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Forgets a pending send that is known not to have reached Slack (rate limited before
    /// the method ran), so the next attempt posts without looking for it first.
    pub async fn forget_outgoing(&self, event_id: &EventId) -> Result<()> {
        on_pool!(self, pool => sqlx::query(FORGET).bind(event_id.as_str()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// When the send of `event_id` was first recorded (ms).
    pub async fn outgoing_created_at(&self, event_id: &EventId) -> Result<Option<i64>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(CREATED)
            .bind(event_id.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// Records the Slack file an upload of `event_id` (by `sender`) is creating.
    pub async fn set_outgoing_file(
        &self,
        event_id: &EventId,
        file_id: &str,
        sender: &UserId,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_FILE).bind(event_id.as_str()).bind(file_id).bind(sender.as_str()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The Slack file an earlier attempt to upload `event_id` created, if it got that far.
    pub async fn outgoing_file(&self, event_id: &EventId) -> Result<Option<String>> {
        let v: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar(FILE)
            .bind(event_id.as_str())
            .fetch_optional(pool)
            .await?);
        Ok(v.flatten())
    }

    /// The upload of `event_id` is complete; its ts follows with the share's echo.
    pub async fn mark_outgoing_uploaded(&self, event_id: &EventId) -> Result<()> {
        on_pool!(self, pool => sqlx::query(UPLOADED).bind(event_id.as_str()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The upload that created Slack file `file_id`.
    pub async fn outgoing_by_file(
        &self,
        team_id: &TeamId,
        file_id: &str,
    ) -> Result<Option<OutgoingFile>> {
        Ok(on_pool!(self, pool => sqlx::query_as(BY_FILE)
            .bind(team_id)
            .bind(file_id)
            .fetch_optional(pool)
            .await?))
    }

    /// Whether a Slack message with this ts was posted by the bridge (its Socket Mode echo).
    pub async fn is_outgoing_ts(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        slack_ts: &Ts,
    ) -> Result<bool> {
        let n: i64 = on_pool!(self, pool => sqlx::query_scalar(BY_TS)
            .bind(team_id)
            .bind(channel_id)
            .bind(slack_ts)
            .fetch_one(pool)
            .await?);
        Ok(n > 0)
    }
}
