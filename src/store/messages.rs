//! `messages`: a Slack message (team, channel, ts, part) and the Matrix event it became.

use ruma::{EventId, OwnedEventId, OwnedRoomId};

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, SenderId, TeamId, Ts};

const INSERT: &str = "INSERT INTO messages (team_id, channel_id, ts, part, event_id, room_id, thread_ts, sender, file_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";
const SELECT: &str = "SELECT team_id, channel_id, ts, part, event_id, room_id, thread_ts, sender, file_id, edit_ts, deleted FROM messages";
const DELETE: &str = "DELETE FROM messages WHERE team_id = $1 AND channel_id = $2 AND ts = $3";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub team_id: TeamId,
    pub channel_id: ChannelId,
    pub ts: Ts,
    pub part: i64,
    #[sqlx(try_from = "String")]
    pub event_id: OwnedEventId,
    #[sqlx(try_from = "String")]
    pub room_id: OwnedRoomId,
    pub thread_ts: Option<Ts>,
    /// The Slack user (or bot) who wrote it, or the Matrix user for posts from Matrix.
    pub sender: String,
    /// The Slack file this part carries, for a file part.
    pub file_id: Option<String>,
    /// The newest Slack edit bridged (`edited.ts`); not written by [`Store::insert_message`].
    pub edit_ts: Option<Ts>,
    /// 1 once deleted on either side; not written by [`Store::insert_message`].
    pub deleted: i64,
}

impl MessageRow {
    pub fn is_deleted(&self) -> bool {
        self.deleted != 0
    }

    /// The Slack author, for a message written in Slack (not posted from Matrix).
    pub fn slack_sender(&self) -> Option<SenderId> {
        (!self.sender.starts_with('@')).then(|| SenderId::from(&self.sender))
    }
}

impl Store {
    /// Records a bridged message part; a second insert of the same part or event is a no-op
    /// and returns false.
    pub async fn insert_message(&self, m: &MessageRow) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(INSERT)
            .bind(&m.team_id)
            .bind(&m.channel_id)
            .bind(&m.ts)
            .bind(m.part)
            .bind(m.event_id.as_str())
            .bind(m.room_id.as_str())
            .bind(&m.thread_ts)
            .bind(&m.sender)
            .bind(&m.file_id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// All parts of a Slack message, in part order.
    pub async fn get_message(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        ts: &Ts,
    ) -> Result<Vec<MessageRow>> {
        let sql =
            format!("{SELECT} WHERE team_id = $1 AND channel_id = $2 AND ts = $3 ORDER BY part");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .bind(ts)
            .fetch_all(pool)
            .await?))
    }

    /// The parts that carry a Slack file (one per portal it was shared to).
    pub async fn get_file_parts(&self, team_id: &TeamId, file_id: &str) -> Result<Vec<MessageRow>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND file_id = $2");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(file_id)
            .fetch_all(pool)
            .await?))
    }

    pub async fn get_message_by_event(&self, event_id: &EventId) -> Result<Option<MessageRow>> {
        let sql = format!("{SELECT} WHERE event_id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(event_id.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// The newest part-0 row of a thread (a reply, or the root itself), for the reply fallback
    /// of the next reply.
    pub async fn latest_in_thread(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        thread_ts: &Ts,
    ) -> Result<Option<MessageRow>> {
        let sql = format!(
            "{SELECT} WHERE team_id = $1 AND channel_id = $2 AND (thread_ts = $3 OR ts = $3) AND part = 0 AND deleted = 0"
        );
        let rows: Vec<MessageRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .bind(thread_ts)
            .fetch_all(pool)
            .await?);
        // ts strings sort as numbers only at equal length: compare them as Slack timestamps.
        Ok(rows.into_iter().max_by_key(|r| r.ts.key()))
    }

    /// Records that the Slack edit `edit_ts` of a message reached Matrix.
    pub async fn set_message_edit_ts(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        ts: &Ts,
        edit_ts: &Ts,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE messages SET edit_ts = $4 WHERE team_id = $1 AND channel_id = $2 AND ts = $3",
        )
        .bind(team_id)
        .bind(channel_id)
        .bind(ts)
        .bind(edit_ts)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Marks every part of a message deleted; returns how many parts were not already.
    pub async fn mark_message_deleted(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        ts: &Ts,
    ) -> Result<u64> {
        Ok(on_pool!(self, pool => sqlx::query(
            "UPDATE messages SET deleted = 1 WHERE team_id = $1 AND channel_id = $2 AND ts = $3 AND deleted = 0",
        )
        .bind(team_id)
        .bind(channel_id)
        .bind(ts)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    pub async fn delete_message(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        ts: &Ts,
    ) -> Result<u64> {
        Ok(on_pool!(self, pool => sqlx::query(DELETE)
            .bind(team_id)
            .bind(channel_id)
            .bind(ts)
            .execute(pool)
            .await?
            .rows_affected()))
    }
}
