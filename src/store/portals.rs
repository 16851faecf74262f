//! `portals`: a Slack conversation (channel, private channel, DM, group DM) and its Matrix room.

use ruma::{OwnedRoomId, RoomId};

use super::{Result, Store, StoreError, matrix_id, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId, UserId};

const INSERT: &str =
    "INSERT INTO portals (team_id, channel_id, kind, room_id, name, topic, dm_user_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (team_id, channel_id) DO NOTHING";
const SELECT: &str =
    "SELECT team_id, channel_id, kind, room_id, name, topic, dm_user_id FROM portals";
const SET_ROOM: &str = "UPDATE portals SET room_id = $3 WHERE team_id = $1 AND channel_id = $2";
const SET_META: &str =
    "UPDATE portals SET name = $3, topic = $4 WHERE team_id = $1 AND channel_id = $2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalKind {
    Channel,
    Private,
    Im,
    Mpim,
}

impl PortalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Private => "private",
            Self::Im => "im",
            Self::Mpim => "mpim",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "channel" => Self::Channel,
            "private" => Self::Private,
            "im" => Self::Im,
            "mpim" => Self::Mpim,
            other => return Err(StoreError::Corrupt(format!("portal kind `{other}`"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub team_id: TeamId,
    pub channel_id: ChannelId,
    pub kind: PortalKind,
    pub room_id: Option<OwnedRoomId>,
    pub name: String,
    pub topic: String,
    pub dm_user_id: Option<UserId>,
}

type PortalRow = (
    TeamId,
    ChannelId,
    String,
    Option<String>,
    String,
    String,
    Option<UserId>,
);

fn from_row(r: PortalRow) -> Result<Portal> {
    Ok(Portal {
        team_id: r.0,
        channel_id: r.1,
        kind: PortalKind::parse(&r.2)?,
        room_id: r.3.map(|r| matrix_id("portals.room_id", r)).transpose()?,
        name: r.4,
        topic: r.5,
        dm_user_id: r.6,
    })
}

impl Store {
    /// Inserts a portal unless one exists for the conversation; returns whether it was new.
    pub async fn insert_portal(&self, p: &Portal) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(INSERT)
            .bind(&p.team_id)
            .bind(&p.channel_id)
            .bind(p.kind.as_str())
            .bind(p.room_id.as_ref().map(|r| r.as_str()))
            .bind(&p.name)
            .bind(&p.topic)
            .bind(&p.dm_user_id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    pub async fn get_portal(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
    ) -> Result<Option<Portal>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND channel_id = $2");
        let row: Option<PortalRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .fetch_optional(pool)
            .await?);
        row.map(from_row).transpose()
    }

    pub async fn get_portal_by_room(&self, room_id: &RoomId) -> Result<Option<Portal>> {
        let sql = format!("{SELECT} WHERE room_id = $1");
        let row: Option<PortalRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(room_id.as_str())
            .fetch_optional(pool)
            .await?);
        row.map(from_row).transpose()
    }

    pub async fn list_portals(&self, team_id: &TeamId) -> Result<Vec<Portal>> {
        let sql = format!("{SELECT} WHERE team_id = $1 ORDER BY channel_id");
        let rows: Vec<PortalRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(from_row).collect()
    }

    pub async fn set_portal_room(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        room_id: &RoomId,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_ROOM)
            .bind(team_id)
            .bind(channel_id)
            .bind(room_id.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn set_portal_meta(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        name: &str,
        topic: &str,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_META)
            .bind(team_id)
            .bind(channel_id)
            .bind(name)
            .bind(topic)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Portals with a room whose Slack members are not all in it yet.
    pub async fn portals_pending_members(&self, team_id: &TeamId) -> Result<Vec<Portal>> {
        let sql = format!(
            "{SELECT} WHERE team_id = $1 AND room_id IS NOT NULL AND members_synced = 0 AND state <> 'deleted' ORDER BY created_at"
        );
        let rows: Vec<PortalRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(from_row).collect()
    }

    pub async fn set_members_synced(&self, team_id: &TeamId, channel_id: &ChannelId) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE portals SET members_synced = 1 WHERE team_id = $1 AND channel_id = $2",
        )
        .bind(team_id)
        .bind(channel_id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// `active`, `archived` or `deleted`; None without a portal.
    pub async fn portal_state(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
    ) -> Result<Option<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT state FROM portals WHERE team_id = $1 AND channel_id = $2",
        )
        .bind(team_id)
        .bind(channel_id)
        .fetch_optional(pool)
        .await?))
    }

    /// Sets the state; returns whether it changed.
    pub async fn set_portal_state(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        state: &str,
    ) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE portals SET state = $3 WHERE team_id = $1 AND channel_id = $2 AND state <> $3",
        )
        .bind(team_id)
        .bind(channel_id)
        .bind(state)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }
}
