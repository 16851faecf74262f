//! Slack → Matrix: each stored Slack event belongs to the queue of its portal, so one
//! channel's events are handled in order while channels proceed in parallel (see
//! [`queue`](super::queue)). An event that fails for a retryable reason is retried in place
//! with backoff, holding back only its own portal (without a deadline while the homeserver is
//! unreachable: nothing is lost by waiting); every Matrix send uses a txn id derived from the
//! Slack message, so a retry after a lost response never duplicates.

use std::sync::Arc;

use super::{
    BridgeError, Core, LoginRuntime, Result, ghost, portal,
    queue::{Handled, QueueHandler},
};
use crate::{
    BoxFuture,
    format::{self, SlackContext},
    ids,
    slack::{
        events::{EventCallback, MessageEvent, MessageSubtype, SlackEvent},
        types::Message,
    },
    store::{MessageRow, QueueTable, QueuedItem},
};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedUserId, RoomId, UInt, UserId,
    events::{
        Mentions,
        room::message::{
            EmoteMessageEventContent, MessageType, RoomMessageEventContent, TextMessageEventContent,
        },
    },
};

/// The Slack → Matrix queues' handler.
pub struct Inbound(pub Arc<Core>);

impl QueueHandler for Inbound {
    fn table(&self) -> QueueTable {
        QueueTable::SlackInbox
    }

    fn handle<'a>(&'a self, item: &'a QueuedItem) -> BoxFuture<'a, Handled> {
        Box::pin(async move { handle_entry(&self.0, item).await.into() })
    }

    fn give_up<'a>(&'a self, item: &'a QueuedItem, reason: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::error!(event_id = %item.event_id, queue = %item.queue, %reason, "slack event not bridged");
            self.0.metrics.given_up(QueueTable::SlackInbox);
        })
    }
}

async fn handle_entry(core: &Arc<Core>, entry: &QueuedItem) -> Result<()> {
    let rt = core.running_login(&entry.scope).await?;
    let callback: EventCallback = serde_json::from_str(&entry.payload).map_err(|e| {
        BridgeError::Other(format!("stored slack event is not an event_callback: {e}"))
    })?;
    handle_event(core, &rt, callback.event).await
}

async fn handle_event(core: &Arc<Core>, rt: &Arc<LoginRuntime>, event: SlackEvent) -> Result<()> {
    let l = &rt.login;
    let ours = event.is_from_bot(&l.bot_id, &l.app_id, &l.bot_user_id);
    match event {
        SlackEvent::MemberJoinedChannel(m) if m.user == rt.login.bot_user_id => {
            portal::ensure_portal(core, rt, &m.channel).await?;
            Ok(())
        }
        SlackEvent::ChannelRename(c) | SlackEvent::GroupRename(c) => {
            portal::update_meta(core, rt, &c.channel.id, Some(c.channel.name.clone()), None).await
        }
        SlackEvent::UserChange(u) => ghost::update_from_user(core, rt, &u.user).await,
        SlackEvent::TokensRevoked(_) | SlackEvent::AppUninstalled => {
            super::login::mark_invalid(
                core,
                rt.team_id(),
                "Slack revoked the app's tokens (tokens_revoked / app_uninstalled)",
            )
            .await;
            Ok(())
        }
        // The echo of our own post.
        SlackEvent::Message(_) if ours => Ok(()),
        SlackEvent::Message(m) => handle_message(core, rt, m).await,
        _ => Ok(()),
    }
}

async fn handle_message(core: &Arc<Core>, rt: &Arc<LoginRuntime>, m: MessageEvent) -> Result<()> {
    match &m.subtype {
        MessageSubtype::ChannelTopic { topic } => {
            return portal::update_meta(core, rt, &m.channel, None, Some(topic.clone())).await;
        }
        MessageSubtype::ChannelName { name, .. } => {
            return portal::update_meta(core, rt, &m.channel, Some(name.clone()), None).await;
        }
        _ => {}
    }
    if !m.is_new_message() {
        // Edits, deletes and the rest arrive with the next fidelity work.
        return Ok(());
    }
    let msg = &m.message;
    if core
        .store
        .is_outgoing_ts(rt.team_id(), &m.channel, &msg.ts)
        .await?
    {
        return Ok(());
    }
    if !core
        .store
        .get_message(rt.team_id(), &m.channel, &msg.ts)
        .await?
        .is_empty()
    {
        // Already bridged (a redelivery that got past the inbox, or a replay).
        return Ok(());
    }
    let sender = msg
        .user
        .clone()
        .or_else(|| msg.bot_id.clone())
        .ok_or_else(|| BridgeError::Other("message without a sender".into()))?;
    let portal = portal::ensure_portal(core, rt, &m.channel).await?;
    let room = portal
        .room_id
        .clone()
        .ok_or_else(|| BridgeError::Other("portal without a room".into()))?;
    let ghost = ghost::ensure_ghost(core, rt, &sender).await?;
    ghost::ensure_joined(core, &room, &ghost).await?;

    let ctx = mention_context(core, rt, msg).await;
    let converted = format::slack_to_matrix(&msg.text, msg.blocks.as_ref(), &ctx);
    let mut mentions = Mentions::new();
    mentions.user_ids = converted
        .mentioned_users
        .iter()
        .filter_map(|u| UserId::parse(u).ok())
        .collect::<std::collections::BTreeSet<OwnedUserId>>();
    mentions.room = converted.mentions_room;
    let msgtype = match (&m.subtype, converted.formatted_body.clone()) {
        (MessageSubtype::MeMessage, Some(html)) => {
            MessageType::Emote(EmoteMessageEventContent::html(converted.body.clone(), html))
        }
        (MessageSubtype::MeMessage, None) => {
            MessageType::Emote(EmoteMessageEventContent::plain(converted.body.clone()))
        }
        (_, Some(html)) => {
            MessageType::Text(TextMessageEventContent::html(converted.body.clone(), html))
        }
        (_, None) => MessageType::Text(TextMessageEventContent::plain(converted.body.clone())),
    };
    let content = RoomMessageEventContent::new(msgtype).add_mentions(mentions);
    let room_id = RoomId::parse(&room).map_err(|e| BridgeError::Other(format!("room id: {e}")))?;
    let ghost_id =
        UserId::parse(&ghost).map_err(|e| BridgeError::Other(format!("ghost id: {e}")))?;
    let ts = ids::ts_to_millis(&msg.ts)
        .and_then(UInt::new)
        .map(MilliSecondsSinceUnixEpoch);
    let txn = ids::message_txn_id(rt.team_id(), &m.channel, &msg.ts, 0);
    let started = std::time::Instant::now();
    let event_id = match core
        .matrix
        .send_message(Some(&ghost_id), &room_id, &txn, &content, ts)
        .await
    {
        Ok(id) => id,
        // The ghost is no longer in the room (kicked): join again and send once more.
        Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
            core.forget_joined(&room, &ghost);
            ghost::ensure_joined(core, &room, &ghost).await?;
            core.matrix
                .send_message(Some(&ghost_id), &room_id, &txn, &content, ts)
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    core.metrics.matrix_send(started.elapsed());
    core.store
        .insert_message(&MessageRow {
            team_id: rt.team_id().to_owned(),
            channel_id: m.channel.clone(),
            ts: msg.ts.clone(),
            part: 0,
            event_id: event_id.to_string(),
            room_id: room,
            thread_ts: msg.thread_ts.clone(),
            sender,
        })
        .await?;
    tracing::debug!(team = %rt.team_id(), channel = %m.channel, ts = %msg.ts, event_id = %event_id, "slack message bridged");
    Ok(())
}

/// Resolves the users and channels a message mentions, for pills.
async fn mention_context(core: &Arc<Core>, rt: &Arc<LoginRuntime>, m: &Message) -> SlackContext {
    let (users, channels) = format::referenced_ids(&m.text, m.blocks.as_ref());
    let mut ctx = SlackContext::default();
    for user in users {
        match ghost::ensure_ghost(core, rt, &user).await {
            Ok(mxid) => {
                let name = core
                    .store
                    .get_ghost_by_mxid(&mxid)
                    .await
                    .ok()
                    .flatten()
                    .map(|g| g.display_name)
                    .unwrap_or_else(|| user.clone());
                ctx.users.insert(user, format::Mention { mxid, name });
            }
            Err(e) => tracing::debug!(%user, error = %e, "cannot resolve a mentioned user"),
        }
    }
    for channel in channels {
        if let Ok(Some(p)) = core.store.get_portal(rt.team_id(), &channel).await {
            ctx.channels.insert(
                channel,
                format::ChannelRef {
                    room_id: p.room_id,
                    name: p.name.trim_start_matches('#').to_owned(),
                },
            );
        }
    }
    ctx
}
