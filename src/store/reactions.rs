//! `reactions`: a Slack reaction (message, user, emoji) and its Matrix annotation event.

use ruma::{EventId, OwnedEventId, OwnedRoomId};

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId, Ts, UserId};

const INSERT: &str = "INSERT INTO reactions (team_id, channel_id, msg_ts, user_id, emoji, event_id, room_id, made_as, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
const SELECT: &str =
    "SELECT team_id, channel_id, msg_ts, user_id, emoji, event_id, room_id, made_as FROM reactions";
const DELETE: &str = "DELETE FROM reactions WHERE event_id = $1";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReactionRow {
    pub team_id: TeamId,
    pub channel_id: ChannelId,
    pub msg_ts: Ts,
    /// The Slack user who reacted, or the Matrix user for reactions from Matrix.
    pub user_id: String,
    pub emoji: String,
    #[sqlx(try_from = "String")]
    pub event_id: OwnedEventId,
    #[sqlx(try_from = "String")]
    pub room_id: OwnedRoomId,
    /// For a reaction from Matrix: the linked Slack account it was made as; None when it is
    /// the bot's (one for every Matrix user without a link).
    pub made_as: Option<UserId>,
}

impl Store {
    pub async fn insert_reaction(&self, r: &ReactionRow) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(INSERT)
            .bind(&r.team_id)
            .bind(&r.channel_id)
            .bind(&r.msg_ts)
            .bind(&r.user_id)
            .bind(&r.emoji)
            .bind(r.event_id.as_str())
            .bind(r.room_id.as_str())
            .bind(&r.made_as)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    pub async fn get_reaction(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        msg_ts: &Ts,
        user_id: &str,
        emoji: &str,
    ) -> Result<Option<ReactionRow>> {
        let sql = format!(
            "{SELECT} WHERE team_id = $1 AND channel_id = $2 AND msg_ts = $3 AND user_id = $4 AND emoji = $5"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .bind(msg_ts)
            .bind(user_id)
            .bind(emoji)
            .fetch_optional(pool)
            .await?))
    }

    /// Every reaction one user has on a message.
    pub async fn reactions_of(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        msg_ts: &Ts,
        user_id: &str,
    ) -> Result<Vec<ReactionRow>> {
        let sql = format!(
            "{SELECT} WHERE team_id = $1 AND channel_id = $2 AND msg_ts = $3 AND user_id = $4 ORDER BY created_at"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .bind(msg_ts)
            .bind(user_id)
            .fetch_all(pool)
            .await?))
    }

    pub async fn get_reaction_by_event(&self, event_id: &EventId) -> Result<Option<ReactionRow>> {
        let sql = format!("{SELECT} WHERE event_id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(event_id.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// Everyone's reactions with one emoji on a message.
    pub async fn reactions_with(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        msg_ts: &Ts,
        emoji: &str,
    ) -> Result<Vec<ReactionRow>> {
        let sql = format!(
            "{SELECT} WHERE team_id = $1 AND channel_id = $2 AND msg_ts = $3 AND emoji = $4 ORDER BY created_at"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .bind(msg_ts)
            .bind(emoji)
            .fetch_all(pool)
            .await?))
    }

    /// Records who a Matrix user's reaction was made as on Slack, once the call said.
    pub async fn set_reaction_made_as(
        &self,
        event_id: &EventId,
        made_as: Option<&UserId>,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE reactions SET made_as = $1 WHERE event_id = $2")
            .bind(made_as)
            .bind(event_id.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn delete_reaction(&self, event_id: &EventId) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(DELETE).bind(event_id.as_str()).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }
}
