//! `management_rooms`: the DM between a Matrix user and the bridge bot where commands are read.

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::{Result, Store, matrix_id, on_pool};

const FREE_ROOM: &str = "DELETE FROM management_rooms WHERE room_id = $1 AND mxid <> $2";
const UPSERT: &str = "INSERT INTO management_rooms (mxid, room_id) VALUES ($1, $2)
    ON CONFLICT (mxid) DO UPDATE SET room_id = excluded.room_id";
const BY_USER: &str = "SELECT room_id FROM management_rooms WHERE mxid = $1";
const BY_ROOM: &str = "SELECT mxid FROM management_rooms WHERE room_id = $1";

impl Store {
    /// Makes `room_id` the management room of `mxid`, taking it from whoever had it.
    pub async fn set_management_room(&self, mxid: &UserId, room_id: &RoomId) -> Result<()> {
        let (mxid, room_id) = (mxid.as_str(), room_id.as_str());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(FREE_ROOM).bind(room_id).bind(mxid).execute(&mut *tx).await?;
            sqlx::query(UPSERT).bind(mxid).bind(room_id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn management_room_of(&self, mxid: &UserId) -> Result<Option<OwnedRoomId>> {
        let room: Option<String> = on_pool!(self, pool => sqlx::query_scalar(BY_USER)
            .bind(mxid.as_str())
            .fetch_optional(pool)
            .await?);
        room.map(|r| matrix_id("management_rooms.room_id", r))
            .transpose()
    }

    pub async fn management_room_owner(&self, room_id: &RoomId) -> Result<Option<OwnedUserId>> {
        let owner: Option<String> = on_pool!(self, pool => sqlx::query_scalar(BY_ROOM)
            .bind(room_id.as_str())
            .fetch_optional(pool)
            .await?);
        owner
            .map(|m| matrix_id("management_rooms.mxid", m))
            .transpose()
    }
}
