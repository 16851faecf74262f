//! `messages`: a Slack message (team, channel, ts, part) and the Matrix event it became.

use super::{Result, Store, now_ms, on_pool};

const INSERT: &str = "INSERT INTO messages (team_id, channel_id, ts, part, event_id, room_id, thread_ts, sender, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
const SELECT: &str =
    "SELECT team_id, channel_id, ts, part, event_id, room_id, thread_ts, sender FROM messages";
const DELETE: &str = "DELETE FROM messages WHERE team_id = $1 AND channel_id = $2 AND ts = $3";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub team_id: String,
    pub channel_id: String,
    pub ts: String,
    pub part: i64,
    pub event_id: String,
    pub room_id: String,
    pub thread_ts: Option<String>,
    pub sender: String,
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
            .bind(&m.event_id)
            .bind(&m.room_id)
            .bind(&m.thread_ts)
            .bind(&m.sender)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// All parts of a Slack message, in part order.
    pub async fn get_message(
        &self,
        team_id: &str,
        channel_id: &str,
        ts: &str,
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

    pub async fn get_message_by_event(&self, event_id: &str) -> Result<Option<MessageRow>> {
        let sql = format!("{SELECT} WHERE event_id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(event_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn delete_message(&self, team_id: &str, channel_id: &str, ts: &str) -> Result<u64> {
        Ok(on_pool!(self, pool => sqlx::query(DELETE)
            .bind(team_id)
            .bind(channel_id)
            .bind(ts)
            .execute(pool)
            .await?
            .rows_affected()))
    }
}
