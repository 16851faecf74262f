//! Members: every Slack member of a bridged conversation has a ghost in its room. A new
//! portal (and, once, every portal from before this existed) is filled in the background by
//! one task per login, a portal at a time, with Slack's paginated member list; progress is
//! stored, so a restart resumes. Afterwards `member_joined_channel` / `member_left_channel`
//! keep the room in step.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ruma::OwnedRoomId;
use tokio_util::sync::CancellationToken;

use super::{Core, LoginRuntime, Result, ghost};
use crate::{
    ids::{self, ChannelId, SenderId},
    retry::Backoff,
    slack::types::User,
    store::Portal,
    supervisor::sleep_or_cancel,
};

/// With more members than this lacking a ghost, one users.list replaces a users.info each.
const LIST_USERS_ABOVE: usize = 20;

/// Fills the rooms of this login's portals with their members until `stop`; woken by
/// `wake` when a portal is created.
pub async fn run(
    core: Arc<Core>,
    rt: Arc<LoginRuntime>,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let policy = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    let mut delays = policy.delays();
    loop {
        let failed = match sync_pending(&core, &rt, &stop).await {
            Ok(()) => {
                delays = policy.delays();
                None
            }
            Err(e) => Some(e),
        };
        if stop.is_cancelled() {
            return;
        }
        match failed {
            Some(e) => {
                let wait = policy.wait(delays.next(), e.retry_after());
                tracing::warn!(team = %rt.team_id(), error = %e, retry_in_s = wait.as_secs_f32(), "member sync failed; trying again");
                if !sleep_or_cancel(&stop, wait).await {
                    return;
                }
            }
            None => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = wake.notified() => {}
                }
            }
        }
    }
}

async fn sync_pending(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    stop: &CancellationToken,
) -> Result<()> {
    // New portals may appear while syncing: loop until none is left.
    loop {
        let pending = core.store.portals_pending_members(rt.team_id()).await?;
        if pending.is_empty() {
            return Ok(());
        }
        for portal in pending {
            if stop.is_cancelled() {
                return Ok(());
            }
            match sync_portal(core, rt, &portal, stop).await {
                Ok(()) => {}
                // An outage or a rate limit: everything waits and tries again.
                Err(e) if e.is_retryable() => return Err(e),
                // A refusal for this portal (the bot left the channel, a member Slack will
                // not describe): given up, so it does not hold back the other portals.
                Err(e) => {
                    tracing::warn!(team = %rt.team_id(), channel = %portal.channel_id, error = %e, "cannot sync the members of a portal; giving up on it");
                    core.store
                        .set_members_synced(rt.team_id(), &portal.channel_id)
                        .await?;
                }
            }
        }
    }
}

async fn sync_portal(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    portal: &Portal,
    stop: &CancellationToken,
) -> Result<()> {
    let Some(room) = portal.room_id.as_deref() else {
        return Ok(());
    };
    // Joins and leaves that arrive while this runs are newer than the list: they win.
    let listed_at = std::time::Instant::now();
    let members: Vec<SenderId> = rt
        .slack
        .conversations_members_all(&portal.channel_id)
        .await?
        .into_iter()
        .filter(|m| *m != rt.login.bot_user_id)
        .map(SenderId::from)
        .collect();
    let mut missing = 0;
    for m in &members {
        let ghost = core.store.get_ghost(rt.team_id(), m).await?;
        if ghost.is_none_or(|g| g.registered != 1) {
            missing += 1;
        }
    }
    let known: HashMap<SenderId, User> = if missing > LIST_USERS_ABOVE {
        rt.slack
            .users_list_all()
            .await?
            .into_iter()
            .map(|u| (u.id.clone().into(), u))
            .collect()
    } else {
        HashMap::new()
    };
    tracing::info!(team = %rt.team_id(), channel = %portal.channel_id, members = members.len(), new_ghosts = missing, "syncing portal members");
    for m in &members {
        if stop.is_cancelled() {
            return Ok(());
        }
        let mxid = match known.get(m) {
            Some(u) => ghost::ensure_ghost_of(core, rt, u).await?,
            None => ghost::ensure_ghost(core, rt, m).await?,
        };
        let _guard = core.lock(membership_key(room, &mxid)).await;
        if core.membership_moved_since(room, &mxid, listed_at) {
            continue;
        }
        ghost::ensure_joined(core, room, &mxid).await?;
    }
    core.store
        .set_members_synced(rt.team_id(), &portal.channel_id)
        .await?;
    tracing::info!(team = %rt.team_id(), channel = %portal.channel_id, members = members.len(), "portal members synced");
    Ok(())
}

/// Held while a ghost's membership of a room changes: a member sync and live events take
/// turns, and whichever comes last is what the room shows.
fn membership_key(room: &ruma::RoomId, ghost: &ruma::UserId) -> String {
    format!("membership:{room}:{ghost}")
}

/// `member_joined_channel` of someone other than the bot: their ghost joins the room.
pub async fn joined(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &ChannelId,
    user: &ids::UserId,
) -> Result<()> {
    let Some(room) = portal_room(core, rt, channel).await? else {
        return Ok(());
    };
    let mxid = ghost::ensure_ghost(core, rt, &user.clone().into()).await?;
    let _guard = core.lock(membership_key(&room, &mxid)).await;
    core.note_membership_move(&room, &mxid);
    ghost::ensure_joined(core, &room, &mxid).await
}

/// `member_left_channel`: their ghost leaves the room.
pub async fn left(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel: &ChannelId,
    user: &ids::UserId,
) -> Result<()> {
    let Some(room) = portal_room(core, rt, channel).await? else {
        return Ok(());
    };
    let Some(g) = core
        .store
        .get_ghost(rt.team_id(), &user.clone().into())
        .await?
    else {
        return Ok(());
    };
    let _guard = core.lock(membership_key(&room, &g.mxid)).await;
    core.note_membership_move(&room, &g.mxid);
    match core.matrix.leave(Some(&g.mxid), &room).await {
        Ok(()) => {}
        // Not in the room (never joined, or left already).
        Err(e) if matches!(e.errcode(), Some("M_FORBIDDEN" | "M_NOT_FOUND")) => {}
        Err(e) => return Err(e.into()),
    }
    core.forget_joined(&room, &g.mxid);
    Ok(())
}

async fn portal_room(
    core: &Core,
    rt: &LoginRuntime,
    channel: &ChannelId,
) -> Result<Option<OwnedRoomId>> {
    Ok(core
        .store
        .get_portal(rt.team_id(), channel)
        .await?
        .and_then(|p| p.room_id))
}
