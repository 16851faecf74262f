//! `ghosts`: a Slack user or bot, its Matrix ghost and the profile last pushed to Matrix.

use ruma::{OwnedUserId, UserId};

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{SenderId, TeamId};

const UPSERT: &str = "INSERT INTO ghosts
    (team_id, user_id, mxid, display_name, avatar_source, avatar_mxc, is_bot, registered, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (team_id, user_id) DO UPDATE SET display_name = excluded.display_name,
        avatar_source = excluded.avatar_source, avatar_mxc = excluded.avatar_mxc,
        is_bot = excluded.is_bot, registered = excluded.registered, updated_at = excluded.updated_at";
const SELECT: &str = "SELECT team_id, user_id, mxid, display_name, avatar_source, avatar_mxc, is_bot, registered FROM ghosts";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ghost {
    pub team_id: TeamId,
    pub user_id: SenderId,
    /// Frozen once stored: changing the template later must not orphan existing ghosts.
    #[sqlx(try_from = "String")]
    pub mxid: OwnedUserId,
    pub display_name: String,
    /// What the avatar was made from (Slack's image URL), to re-upload only on change.
    pub avatar_source: String,
    pub avatar_mxc: String,
    pub is_bot: i64,
    pub registered: i64,
}

impl Store {
    pub async fn upsert_ghost(&self, g: &Ghost) -> Result<()> {
        on_pool!(self, pool => sqlx::query(UPSERT)
            .bind(&g.team_id)
            .bind(&g.user_id)
            .bind(g.mxid.as_str())
            .bind(&g.display_name)
            .bind(&g.avatar_source)
            .bind(&g.avatar_mxc)
            .bind(g.is_bot)
            .bind(g.registered)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn get_ghost(&self, team_id: &TeamId, user_id: &SenderId) -> Result<Option<Ghost>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND user_id = $2");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn get_ghost_by_mxid(&self, mxid: &UserId) -> Result<Option<Ghost>> {
        let sql = format!("{SELECT} WHERE mxid = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(mxid.as_str())
            .fetch_optional(pool)
            .await?))
    }
}
