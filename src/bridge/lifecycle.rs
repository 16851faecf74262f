//! A channel's life on Slack, in its room: archived (a notice, and the room read-only for
//! everyone but the bot until it is unarchived) and deleted (a notice, the room read-only for
//! good, and the portal marked gone so nothing is sent to it again).

use std::sync::Arc;

use ruma::{
    RoomId,
    api::client::state::{get_state_event_for_key, send_state_event},
    events::{AnyStateEventContent, StateEventType},
    serde::Raw,
};
use serde_json::Value;

use super::{BridgeError, Core, LoginRuntime, Result, from_matrix::notice};

/// The power level needed to post in a read-only portal: the bot's.
const READ_ONLY_LEVEL: i64 = 100;

/// `event_ts` names the Slack event, so a retry sends the same notice once.
pub async fn archived(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &str,
    archived: bool,
    event_ts: &str,
) -> Result<()> {
    let state = if archived { "archived" } else { "active" };
    let txn = format!("slack-{state}-{}-{channel}-{event_ts}", rt.team_id());
    change(core, rt, channel, state, |core, room| async move {
        let text = if archived {
            "This channel was archived on Slack: it is read-only until it is unarchived."
        } else {
            "This channel was unarchived on Slack: messages are bridged again."
        };
        set_read_only(core, &room, archived).await?;
        notice(core, room.as_str(), &txn, text).await;
        Ok(())
    })
    .await
}

pub async fn deleted(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &str,
    event_ts: &str,
) -> Result<()> {
    let txn = format!("slack-deleted-{}-{channel}-{event_ts}", rt.team_id());
    change(core, rt, channel, "deleted", |core, room| async move {
        set_read_only(core, &room, true).await?;
        notice(
            core,
            room.as_str(),
            &txn,
            "This channel was deleted on Slack: nothing more is bridged here.",
        )
        .await;
        Ok(())
    })
    .await
}

/// Applies `then` once per state change: a redelivered event finds the state set already.
/// The state is stored last, so a failure part-way is tried again.
async fn change<'a, F, Fut>(
    core: &'a Arc<Core>,
    rt: &LoginRuntime,
    channel: &str,
    state: &str,
    then: F,
) -> Result<()>
where
    F: FnOnce(&'a Core, ruma::OwnedRoomId) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let Some(portal) = core.store.get_portal(rt.team_id(), channel).await? else {
        return Ok(());
    };
    let Some(room) = portal.room_id.as_deref() else {
        return Ok(());
    };
    let current = core.store.portal_state(rt.team_id(), channel).await?;
    if current.as_deref() == Some(state) || current.as_deref() == Some("deleted") {
        return Ok(());
    }
    let room =
        RoomId::parse(room).map_err(|e| BridgeError::Other(format!("stored room id: {e}")))?;
    then(core, room).await?;
    core.store
        .set_portal_state(rt.team_id(), channel, state)
        .await?;
    tracing::info!(team = %rt.team_id(), %channel, %state, "portal state changed");
    Ok(())
}

/// Raises (or restores) the level needed to send messages, so only the bot can post.
async fn set_read_only(core: &Core, room: &RoomId, read_only: bool) -> Result<()> {
    let get = get_state_event_for_key::v3::Request::new(
        room.to_owned(),
        StateEventType::RoomPowerLevels,
        String::new(),
    );
    let current = core.matrix.send(get, None).await?;
    let mut levels: Value = serde_json::from_str(current.event_or_content.get())
        .map_err(|e| BridgeError::Other(format!("power levels: {e}")))?;
    let want = if read_only { READ_ONLY_LEVEL } else { 0 };
    if levels["events_default"].as_i64().unwrap_or(0) == want {
        return Ok(());
    }
    levels["events_default"] = Value::from(want);
    let body: Raw<AnyStateEventContent> = Raw::new(&levels)
        .map_err(|e| BridgeError::Other(format!("power levels: {e}")))?
        .cast_unchecked();
    let put = send_state_event::v3::Request::new_raw(
        room.to_owned(),
        StateEventType::RoomPowerLevels,
        String::new(),
        body,
    );
    core.matrix.send(put, None).await?;
    Ok(())
}
