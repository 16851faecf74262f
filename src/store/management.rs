//! `management_rooms`: the DM between a Matrix user and the bridge bot where commands are read.

use super::{Result, Store, on_pool};

const FREE_ROOM: &str = "DELETE FROM management_rooms WHERE room_id = $1 AND mxid <> $2";
const UPSERT: &str = "INSERT INTO management_rooms (mxid, room_id) VALUES ($1, $2)
    ON CONFLICT (mxid) DO UPDATE SET room_id = excluded.room_id";
const BY_USER: &str = "SELECT room_id FROM management_rooms WHERE mxid = $1";
const BY_ROOM: &str = "SELECT mxid FROM management_rooms WHERE room_id = $1";

impl Store {
    /// Makes `room_id` the management room of `mxid`, taking it from whoever had it.
    pub async fn set_management_room(&self, mxid: &str, room_id: &str) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(FREE_ROOM).bind(room_id).bind(mxid).execute(&mut *tx).await?;
            sqlx::query(UPSERT).bind(mxid).bind(room_id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn management_room_of(&self, mxid: &str) -> Result<Option<String>> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar(BY_USER).bind(mxid).fetch_optional(pool).await?),
        )
    }

    pub async fn management_room_owner(&self, room_id: &str) -> Result<Option<String>> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar(BY_ROOM).bind(room_id).fetch_optional(pool).await?),
        )
    }
}
