//! `custom_emoji`: a workspace's custom emoji (by the name Slack resolves it to) and the Matrix
//! media its image was uploaded as.

use super::{Result, Store, on_pool};
use crate::ids::TeamId;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CustomEmoji {
    pub team_id: TeamId,
    pub name: String,
    /// The image URL it was uploaded from: another URL means a new image.
    pub source: String,
    pub mxc: String,
}

const SELECT: &str = "SELECT team_id, name, source, mxc FROM custom_emoji";

impl Store {
    pub async fn get_custom_emoji(
        &self,
        team_id: &TeamId,
        name: &str,
    ) -> Result<Option<CustomEmoji>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND name = $2");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(name)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn get_custom_emoji_by_mxc(
        &self,
        team_id: &TeamId,
        mxc: &str,
    ) -> Result<Option<CustomEmoji>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND mxc = $2 ORDER BY name");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(mxc)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn upsert_custom_emoji(&self, e: &CustomEmoji) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO custom_emoji (team_id, name, source, mxc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (team_id, name) DO UPDATE SET source = excluded.source, mxc = excluded.mxc",
        )
        .bind(&e.team_id)
        .bind(&e.name)
        .bind(&e.source)
        .bind(&e.mxc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }
}
