//! Portals: one Matrix room per Slack conversation, all inside one space per workspace. Rooms
//! are created once (serialised per portal, mapping stored right after creation), named and
//! topic'd from Slack, and kept in step with renames and topic changes.

use std::{sync::Arc, time::Duration};

use ruma::{
    OwnedRoomId, OwnedUserId, RoomId,
    api::client::room::{Visibility, create_room},
    events::{
        EmptyStateKey,
        room::{name::RoomNameEventContent, topic::RoomTopicEventContent},
        space::child::SpaceChildEventContent,
    },
    room::RoomType,
    serde::Raw,
};

use super::{BridgeError, Core, LoginRuntime, Result, ghost};
use crate::{
    ids::{ChannelId, TeamId},
    slack::types::{Conversation, ConversationKind},
    store::{Portal, PortalKind},
};

fn kind_of(c: &Conversation) -> PortalKind {
    match c.kind() {
        ConversationKind::Channel => PortalKind::Channel,
        ConversationKind::Private => PortalKind::Private,
        ConversationKind::Im => PortalKind::Im,
        ConversationKind::Mpim => PortalKind::Mpim,
    }
}

/// The room name of a conversation: `#general` for public channels, the plain name for
/// private ones, the member names for a group DM; DMs are named after the other user later.
fn room_name(c: &Conversation) -> String {
    match c.kind() {
        ConversationKind::Channel => format!("#{}", c.name),
        ConversationKind::Private => c.name.clone(),
        ConversationKind::Mpim => {
            // mpdm-alice--bob--carol-1 → alice, bob, carol
            let inner = c.name.trim_start_matches("mpdm-");
            let inner = inner.rsplit_once('-').map(|(a, _)| a).unwrap_or(inner);
            inner.split("--").collect::<Vec<_>>().join(", ")
        }
        ConversationKind::Im => String::new(),
    }
}

/// Who is invited to every portal of a login.
fn invitees(core: &Core, rt: &LoginRuntime) -> Vec<OwnedUserId> {
    std::iter::once(rt.login.owner_mxid.as_str())
        .chain(core.config.bridge.invite.iter().map(String::as_str))
        .filter_map(|u| ruma::UserId::parse(u).ok())
        .collect()
}

/// Creates every portal of the login's conversations the bot is a member of.
pub async fn sync_all(core: &Arc<Core>, rt: &Arc<LoginRuntime>) -> Result<()> {
    let convs = rt
        .slack
        .conversations_list_all(&ConversationKind::ALL)
        .await?;
    let convs: Vec<Conversation> = convs
        .into_iter()
        .filter(|c| !c.is_archived && (c.kind() == ConversationKind::Im || c.bot_is_member()))
        .collect();
    let total = convs.len();
    ensure_space(core, rt).await?;
    tracing::info!(team = %rt.team_id(), total, "syncing portals");
    let mut failed = Vec::new();
    for (i, c) in convs.iter().enumerate() {
        if let Err(e) = ensure_portal_from(core, rt, c).await {
            tracing::warn!(team = %rt.team_id(), channel = %c.id, error = %e, "cannot create a portal; will try again");
            failed.push(c.id.clone());
        }
        if (i + 1) % 10 == 0 || i + 1 == total {
            tracing::info!(team = %rt.team_id(), "portals: {}/{}", i + 1, total);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(BridgeError::Other(format!(
            "{} of {total} portal(s) could not be created: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

/// [`sync_all`] until it succeeds: a homeserver or Slack that fails at start-up (down, rate
/// limited) delays the portals, it does not leave them missing until the next restart.
/// Returns when the sync is done or `stop` fires.
pub async fn sync_until_done(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    stop: &tokio_util::sync::CancellationToken,
) {
    let policy = crate::retry::Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut delays = policy.delays();
    loop {
        let e = match sync_all(core, rt).await {
            Ok(()) => return,
            Err(e) => e,
        };
        let wait = policy.wait(delays.next(), e.retry_after());
        tracing::error!(team = %rt.team_id(), error = %e, retry_in_s = wait.as_secs_f32(), "portal sync failed; trying again");
        if !crate::supervisor::sleep_or_cancel(stop, wait).await {
            return;
        }
    }
}

/// The workspace's space, created on first use.
pub async fn ensure_space(core: &Core, rt: &LoginRuntime) -> Result<OwnedRoomId> {
    let _guard = core.lock(format!("space:{}", rt.team_id())).await;
    if let Some(login) = core.store.get_login(rt.team_id()).await?
        && let Some(space) = login.space_room_id
    {
        return Ok(space);
    }
    let mut req = create_room::v3::Request::new();
    req.name = Some(rt.login.team_name.clone());
    req.topic = Some(format!("Slack workspace {}", rt.login.team_name));
    req.invite = invitees(core, rt);
    req.visibility = Visibility::Private;
    req.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    let mut creation = create_room::v3::CreationContent::new();
    creation.room_type = Some(RoomType::Space);
    req.creation_content =
        Some(Raw::new(&creation).map_err(|e| BridgeError::Other(e.to_string()))?);
    let space = create_once(core, req, rt.team_id(), None).await?;
    core.store.set_login_space(rt.team_id(), &space).await?;
    tracing::info!(team = %rt.team_id(), space = %space, "created the workspace space");
    set_space_avatar(core, rt, &space).await;
    Ok(space)
}

/// The workspace's icon as the space's avatar; a failure is logged (it is decoration).
async fn set_space_avatar(core: &Core, rt: &LoginRuntime, space: &RoomId) {
    let result = async {
        let team = rt.slack.team_info().await?;
        let Some(url) = team.icon.best() else {
            return Ok(());
        };
        let bytes = rt.slack.download_file(url).await?;
        let mxc = core
            .matrix
            .upload(None, bytes, ghost::image_mime(url), Some("workspace-icon"))
            .await?;
        let mut avatar = ruma::events::room::avatar::RoomAvatarEventContent::new();
        avatar.url = Some(mxc);
        core.matrix
            .send_state(None, space, &EmptyStateKey, &avatar)
            .await?;
        Ok::<_, BridgeError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(team = %rt.team_id(), error = %e, "cannot set the workspace icon as the space's avatar");
    }
}

/// The portal of a conversation, creating its room when there is none yet.
pub async fn ensure_portal(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel_id: &ChannelId,
) -> Result<Portal> {
    if let Some(p) = core.store.get_portal(rt.team_id(), channel_id).await?
        && p.room_id.is_some()
    {
        return Ok(p);
    }
    let conv = rt.slack.conversations_info(channel_id).await?;
    ensure_portal_from(core, rt, &conv).await
}

#[tracing::instrument(name = "portal", skip_all, fields(team = %rt.team_id(), channel = %c.id))]
pub async fn ensure_portal_from(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    c: &Conversation,
) -> Result<Portal> {
    let _guard = core.lock(format!("portal:{}:{}", rt.team_id(), c.id)).await;
    if let Some(p) = core.store.get_portal(rt.team_id(), &c.id).await?
        && p.room_id.is_some()
    {
        return Ok(p);
    }
    let kind = kind_of(c);
    let topic = c.topic.value.clone();
    let mut name = room_name(c);
    let mut invite = invitees(core, rt);
    let mut dm_ghost = None;
    if kind == PortalKind::Im
        && let Some(other) = &c.user
    {
        let mxid = ghost::ensure_ghost(core, rt, &other.clone().into()).await?;
        if let Some(g) = core.store.get_ghost_by_mxid(&mxid).await? {
            name = g.display_name;
        }
        invite.push(mxid.clone());
        dm_ghost = Some(mxid);
    }
    let mut req = create_room::v3::Request::new();
    req.name = (!name.is_empty()).then_some(name.clone());
    req.topic = (!topic.is_empty()).then_some(topic.clone());
    req.invite = invite;
    req.is_direct = kind == PortalKind::Im;
    req.visibility = Visibility::Private;
    req.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    let room = create_once(core, req, rt.team_id(), Some(&c.id)).await?;
    let portal = Portal {
        team_id: rt.team_id().to_owned(),
        channel_id: c.id.clone(),
        kind,
        room_id: Some(room.clone()),
        name: name.clone(),
        topic,
        dm_user_id: c.user.clone(),
    };
    super::history::on_portal_created(core, rt.team_id(), &c.id).await?;
    if !core.store.insert_portal(&portal).await? {
        core.store
            .set_portal_room(rt.team_id(), &c.id, &room)
            .await?;
        core.store
            .set_portal_meta(rt.team_id(), &c.id, &portal.name, &portal.topic)
            .await?;
    }
    if let Some(ghost) = dm_ghost {
        core.matrix.join(Some(&ghost), &room).await?;
        core.mark_joined(&room, &ghost);
    }
    let space = ensure_space(core, rt).await?;
    let via = ruma::ServerName::parse(&core.config.homeserver.domain)
        .map_err(|e| BridgeError::Other(format!("server name: {e}")))?;
    let child = SpaceChildEventContent::new(vec![via]);
    if let Err(e) = core.matrix.send_state(None, &space, &*room, &child).await {
        tracing::warn!(room = %room, error = %e, "cannot add the portal to the workspace space");
    }
    tracing::info!(team = %rt.team_id(), channel = %c.id, room = %room, name = %name, "portal created");
    // Runs in the portal's queue (at once, when a live event created the portal).
    super::history::queue_backfill(core, rt.team_id(), &c.id).await?;
    rt.members_wake.notify_one();
    Ok(portal)
}

/// Creates a room under its deterministic alias, or finds the room an earlier attempt made
/// (a crash, or a timed-out createRoom that went through, between creating and storing it).
async fn create_once(
    core: &Core,
    mut req: create_room::v3::Request,
    team_id: &TeamId,
    channel_id: Option<&ChannelId>,
) -> Result<OwnedRoomId> {
    let localpart = crate::ids::room_alias_localpart(
        &core.config.appservice.username_template,
        team_id,
        channel_id,
    );
    let alias = ruma::RoomAliasId::parse(format!("#{localpart}:{}", core.config.homeserver.domain))
        .map_err(|e| BridgeError::Other(format!("room alias: {e}")))?;
    // No look-up first: a missing alias in our namespace makes the homeserver ask the bridge
    // itself, a round trip that can stall; an existing one fails the creation instead.
    req.room_alias_name = Some(localpart);
    match core.matrix.create_room(None, req.clone()).await {
        Ok(room) => Ok(room),
        // Created before (a crash or a lost response of our own, a concurrent attempt).
        Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => {
            let room = core
                .matrix
                .resolve_alias(&alias)
                .await?
                .ok_or_else(|| BridgeError::Matrix(e))?;
            tracing::info!(%alias, %room, "found the room an earlier attempt created");
            Ok(room)
        }
        // A registration from before room aliases were claimed: the homeserver refuses the
        // alias. Create without it (a crash mid-way may then leave a second room).
        Err(e) if matches!(e.errcode(), Some("M_EXCLUSIVE" | "M_FORBIDDEN")) => {
            tracing::warn!(%alias, error = %e, "cannot give the room its alias; regenerate the registration (slack-bridge -g) and restart the homeserver so the bridge owns its alias namespace");
            req.room_alias_name = None;
            Ok(core.matrix.create_room(None, req).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A channel was renamed or its topic changed on Slack.
pub async fn update_meta(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    channel_id: &ChannelId,
    name: Option<String>,
    topic: Option<String>,
) -> Result<()> {
    let Some(portal) = core.store.get_portal(rt.team_id(), channel_id).await? else {
        return Ok(());
    };
    let Some(room) = portal.room_id.clone() else {
        return Ok(());
    };
    let new_name = name.map(|n| match portal.kind {
        PortalKind::Channel if !n.starts_with('#') => format!("#{n}"),
        _ => n,
    });
    if let Some(n) = &new_name
        && *n != portal.name
    {
        core.matrix
            .send_state(
                None,
                &room,
                &EmptyStateKey,
                &RoomNameEventContent::new(n.clone()),
            )
            .await?;
    }
    if let Some(t) = &topic
        && *t != portal.topic
    {
        core.matrix
            .send_state(
                None,
                &room,
                &EmptyStateKey,
                &RoomTopicEventContent::new(t.clone()),
            )
            .await?;
    }
    core.store
        .set_portal_meta(
            rt.team_id(),
            channel_id,
            new_name.as_deref().unwrap_or(&portal.name),
            topic.as_deref().unwrap_or(&portal.topic),
        )
        .await?;
    Ok(())
}
