//! A channel's life on Slack, in its room: archived (a notice, and the room read-only for
//! everyone but the bot until it is unarchived), deleted (a notice, the room read-only for
//! good, and the portal marked gone so nothing is sent to it again), and its pinned messages
//! (`m.room.pinned_events`).

use std::sync::Arc;

use ruma::{
    Int, RoomId,
    events::room::{
        pinned_events::RoomPinnedEventsEventContent, power_levels::RoomPowerLevelsEventContent,
    },
};

use super::{BridgeError, Core, LoginRuntime, Result, from_matrix::notice};
use crate::{ids::ChannelId, slack::events::PinEvent};

/// The power level needed to post in a read-only portal: the bot's.
const READ_ONLY_LEVEL: i32 = 100;

/// `event_ts` names the Slack event, so a retry sends the same notice once.
pub async fn archived(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &ChannelId,
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
        notice(core, &room, &txn, text).await;
        Ok(())
    })
    .await
}

pub async fn deleted(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &ChannelId,
    event_ts: &str,
) -> Result<()> {
    let txn = format!("slack-deleted-{}-{channel}-{event_ts}", rt.team_id());
    change(core, rt, channel, "deleted", |core, room| async move {
        set_read_only(core, &room, true).await?;
        notice(
            core,
            &room,
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
    channel: &ChannelId,
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
    let Some(room) = portal.room_id else {
        return Ok(());
    };
    let current = core.store.portal_state(rt.team_id(), channel).await?;
    if current.as_deref() == Some(state) || current.as_deref() == Some("deleted") {
        return Ok(());
    }
    then(core, room).await?;
    core.store
        .set_portal_state(rt.team_id(), channel, state)
        .await?;
    tracing::info!(team = %rt.team_id(), %channel, %state, "portal state changed");
    Ok(())
}

/// `pin_added` / `pin_removed`: the message's event joins or leaves the room's pinned events
/// (once: pinning a pinned message changes nothing). Messages the bridge never saw are
/// ignored.
pub async fn pin(core: &Core, rt: &LoginRuntime, event: &PinEvent, added: bool) -> Result<()> {
    let (Some(channel), Some(ts)) = (event.channel(), event.message_ts()) else {
        // A pinned file: nothing to point at yet.
        return Ok(());
    };
    let rows = core.store.get_message(rt.team_id(), channel, ts).await?;
    let Some(row) = rows.iter().find(|r| !r.is_deleted()) else {
        tracing::debug!(%channel, %ts, "pin of a message the bridge never bridged; ignored");
        return Ok(());
    };
    let (room, event_id) = (row.room_id.clone(), row.event_id.clone());
    let mut pinned = core
        .matrix
        .state::<RoomPinnedEventsEventContent>(&room, "")
        .await?
        .map(|c| c.pinned)
        .unwrap_or_default();
    let has = pinned.contains(&event_id);
    if has == added {
        return Ok(());
    }
    if added {
        pinned.push(event_id);
    } else {
        pinned.retain(|e| *e != event_id);
    }
    core.matrix
        .put_state(&room, "", &RoomPinnedEventsEventContent::new(pinned))
        .await?;
    Ok(())
}

/// Raises (or restores) the level needed to send messages, so only the bot can post.
async fn set_read_only(core: &Core, room: &RoomId, read_only: bool) -> Result<()> {
    let mut levels = core
        .matrix
        .state::<RoomPowerLevelsEventContent>(room, "")
        .await?
        .ok_or_else(|| BridgeError::Other(format!("{room} has no power levels")))?;
    let want = Int::from(if read_only { READ_ONLY_LEVEL } else { 0 });
    if levels.events_default == want {
        return Ok(());
    }
    levels.events_default = want;
    core.matrix.put_state(room, "", &levels).await?;
    Ok(())
}
