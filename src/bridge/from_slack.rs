//! Slack → Matrix: each stored Slack event belongs to the queue of its portal, so one
//! channel's events are handled in order while channels proceed in parallel (see
//! [`queue`](super::queue)). An event that fails for a retryable reason is retried in place
//! with backoff, holding back only its own portal (without a deadline while the homeserver is
//! unreachable: nothing is lost by waiting); every Matrix send uses a txn id derived from the
//! Slack message, so a retry after a lost response never duplicates.

use std::sync::Arc;

mod changes;
mod reactions;

use super::{
    BridgeError, Core, LoginRuntime, Result, double_puppet, files, ghost, history, portal,
    queue::{Handled, QueueHandler},
};
use crate::{
    BoxFuture,
    format::{self, SlackContext},
    ids::{self, ChannelId, SenderId, TeamId, Ts},
    slack::{
        events::{EventCallback, MessageEvent, MessageSubtype, SlackEvent},
        types::Message,
    },
    store::{MessageRow, QueueTable, QueuedItem},
};
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt,
    UserId,
    events::{
        Mentions,
        relation::{Reply, Thread},
        room::message::{
            EmoteMessageEventContent, MessageType, Relation, RoomMessageEventContent,
            TextMessageEventContent,
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
            given_up_notice(&self.0, item, reason).await;
        })
    }
}

/// Tells the portal's room which Slack message (or file) was given up on, and why.
async fn given_up_notice(core: &Core, item: &QueuedItem, reason: &str) {
    let Ok(callback) = serde_json::from_str::<EventCallback>(&item.payload) else {
        return;
    };
    let SlackEvent::Message(m) = &callback.event else {
        return;
    };
    let Ok(Some(portal)) = core
        .store
        .get_portal(&TeamId::from(&item.scope), &m.channel)
        .await
    else {
        return;
    };
    let Some(room) = portal.room_id else { return };
    let files: Vec<&str> = m.message.files.iter().map(|f| f.display_name()).collect();
    let what = if files.is_empty() {
        format!("A Slack message (ts {})", m.message.ts)
    } else {
        format!(
            "A Slack message (ts {}) with {}",
            m.message.ts,
            files.join(", ")
        )
    };
    super::from_matrix::notice(
        core,
        &room,
        &format!("giveup-{}", item.event_id),
        &format!("{what} could not be bridged: {reason}"),
    )
    .await;
}

async fn handle_entry(core: &Arc<Core>, entry: &QueuedItem) -> Result<()> {
    let rt = core.running_login(&TeamId::from(&entry.scope))?;
    if entry.event_id.starts_with(history::TASK_PREFIX) {
        let task: history::Task = serde_json::from_str(&entry.payload)
            .map_err(|e| BridgeError::Other(format!("stored history task: {e}")))?;
        return history::run_task(core, &rt, &task).await;
    }
    // A portal whose initial backfill is pending gets it before this event.
    if let Some((_, channel)) = entry.queue.split_once(':')
        && channel != "-"
    {
        history::before_live(core, &rt, &ChannelId::from(channel)).await?;
    }
    let callback: EventCallback = serde_json::from_str(&entry.payload).map_err(|e| {
        BridgeError::Other(format!("stored slack event is not an event_callback: {e}"))
    })?;
    handle_event(core, &rt, callback.event).await
}

/// Handles one Slack event, live or from history.
pub(super) async fn handle_event(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    event: SlackEvent,
) -> Result<()> {
    let l = &rt.login;
    let ours = event.is_from_bot(&l.bot_id, &l.app_id, &l.bot_user_id)
        || posted_from_matrix(&event, &l.bot_user_id);
    match event {
        SlackEvent::MemberJoinedChannel(m) if m.user == rt.login.bot_user_id => {
            portal::ensure_portal(core, rt, &m.channel).await?;
            Ok(())
        }
        SlackEvent::MemberJoinedChannel(m) => {
            super::members::joined(core, rt, &m.channel, &m.user).await
        }
        SlackEvent::MemberLeftChannel(m) if m.user != rt.login.bot_user_id => {
            super::members::left(core, rt, &m.channel, &m.user).await
        }
        SlackEvent::ChannelRename(c) | SlackEvent::GroupRename(c) => {
            portal::update_meta(core, rt, &c.channel.id, Some(c.channel.name.clone()), None).await
        }
        SlackEvent::ChannelArchive(c) => {
            let ts = c.event_ts.as_deref().unwrap_or_default();
            super::lifecycle::archived(core, rt, &c.channel, true, ts).await
        }
        SlackEvent::ChannelUnarchive(c) => {
            let ts = c.event_ts.as_deref().unwrap_or_default();
            super::lifecycle::archived(core, rt, &c.channel, false, ts).await
        }
        SlackEvent::ChannelDeleted(c) => {
            let ts = c.event_ts.as_deref().unwrap_or_default();
            super::lifecycle::deleted(core, rt, &c.channel, ts).await
        }
        SlackEvent::UserChange(u) => ghost::update_from_user(core, rt, &u.user).await,
        // Linked users' tokens (`oauth`) end their links; the bot's end the login.
        SlackEvent::TokensRevoked(t) if t.tokens.bot.is_empty() => {
            super::user_login::revoked(core, rt.team_id(), &t.tokens.oauth).await
        }
        SlackEvent::TokensRevoked(_) | SlackEvent::AppUninstalled => {
            super::login::mark_invalid(
                core,
                rt.team_id(),
                "Slack revoked the app's tokens (tokens_revoked / app_uninstalled)",
            )
            .await;
            Ok(())
        }
        // The echo of our own share of a Matrix file: its ts maps to the Matrix event.
        SlackEvent::Message(m) if ours && !m.message.files.is_empty() => {
            super::from_matrix::media::on_echo(core, rt.team_id(), &m.channel, &m.message).await
        }
        // The echo of our own post, edit or reaction.
        SlackEvent::Message(_) | SlackEvent::ReactionAdded(_) | SlackEvent::ReactionRemoved(_)
            if ours =>
        {
            Ok(())
        }
        SlackEvent::ReactionAdded(r) => reactions::on_added(core, rt, &r).await,
        SlackEvent::ReactionRemoved(r) => reactions::on_removed(core, rt, &r).await,
        SlackEvent::Message(m) => handle_message(core, rt, m).await,
        SlackEvent::Other(v) if v["type"] == "file_deleted" => match v["file_id"].as_str() {
            Some(file) => changes::on_file_deleted(core, rt, file).await,
            None => Ok(()),
        },
        SlackEvent::PinAdded(p) => super::lifecycle::pin(core, rt, &p, true).await,
        SlackEvent::PinRemoved(p) => super::lifecycle::pin(core, rt, &p, false).await,
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
        MessageSubtype::Changed {
            message,
            previous_message,
        } => {
            return changes::on_changed(core, rt, &m.channel, message, previous_message.as_deref())
                .await;
        }
        MessageSubtype::Deleted { deleted_ts, .. } => {
            return changes::on_deleted(core, rt, &m.channel, deleted_ts).await;
        }
        _ => {}
    }
    let huddle = matches!(&m.subtype, MessageSubtype::Other(s) if s == "huddle_thread");
    if !m.is_new_message() && !huddle {
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
    if super::from_matrix::media::is_echo(core, rt.team_id(), &m.channel, msg).await? {
        // A Matrix file shared with a linked user's account: theirs on Slack, ours to map.
        return super::from_matrix::media::on_echo(core, rt.team_id(), &m.channel, msg).await;
    }
    let sender = sender_of(msg)?;
    // First: creating the portal runs its backfill, which may bridge this very message.
    let target = Target::of(core, rt, &m.channel, &sender).await?;
    let done: Vec<i64> = core
        .store
        .get_message(rt.team_id(), &m.channel, &msg.ts)
        .await?
        .iter()
        .map(|r| r.part)
        .collect();
    let is_me = m.subtype == MessageSubtype::MeMessage;
    let content = if huddle {
        // A huddle is live audio on Slack only: say so, from whoever started it.
        RoomMessageEventContent::notice_plain("started a huddle on Slack (join it there)")
    } else {
        message_content(core, rt, msg, is_me).await
    };
    // The text, then one event per file; a message of files only has no text part. A
    // thread reply's parts join its root's thread; a broadcast reply's text is also, as a
    // reply to the root, in the main timeline. A reply whose root was never bridged (older
    // than the portal) arrives as plain messages.
    let has_text = msg.files.is_empty() || !content.msgtype.body().trim().is_empty();
    let thread = thread_of(core, rt, &m.channel, msg).await?;
    let in_thread = |mut c: RoomMessageEventContent| {
        if let Some((root, latest)) = &thread {
            c.relates_to = Some(Relation::Thread(Thread::plain(
                root.clone(),
                latest.clone(),
            )));
        }
        c
    };
    let mut parts: Vec<(u32, Part)> = Vec::new();
    if has_text {
        parts.push((0, Part::Text(Box::new(in_thread(content.clone())))));
        if let Some((root, _)) = &thread
            && m.subtype == MessageSubtype::ThreadBroadcast
        {
            let mut in_main = content;
            in_main.relates_to = Some(Relation::Reply(Reply::with_event_id(root.clone())));
            parts.push((1, Part::Text(Box::new(in_main))));
        }
    }
    for (i, file) in msg.files.iter().enumerate() {
        parts.push((files::FILE_PART + i as u32, Part::File(file)));
    }
    let ts = matrix_ts(&msg.ts);
    for (part, body) in parts {
        if done.contains(&i64::from(part)) {
            // Already bridged (a redelivery that got past the inbox, a replay, a retry).
            continue;
        }
        let (content, file_id) = match body {
            Part::Text(c) => (*c, None),
            Part::File(f) => (
                in_thread(files::to_matrix(core, rt, f, target.uploader(core)).await?),
                Some(f.id.clone()),
            ),
        };
        let txn = ids::message_txn_id(rt.team_id(), &m.channel, &msg.ts, part);
        let event_id = target.send(core, &txn, &content, ts).await?;
        core.store
            .insert_message(&MessageRow {
                team_id: rt.team_id().to_owned(),
                channel_id: m.channel.clone(),
                ts: msg.ts.clone(),
                part: i64::from(part),
                event_id: event_id.clone(),
                room_id: target.room.clone(),
                thread_ts: msg.thread_ts.clone(),
                sender: sender.to_string(),
                file_id,
                edit_ts: None,
                deleted: 0,
            })
            .await?;
        tracing::debug!(team = %rt.team_id(), channel = %m.channel, ts = %msg.ts, part, event_id = %event_id, "slack message bridged");
    }
    Ok(())
}

/// A message this bridge posted as a linked user: Slack shows it as theirs, but its metadata
/// names the Matrix event it came from and the bridge's bot.
fn posted_from_matrix(event: &SlackEvent, bot_user_id: &crate::ids::UserId) -> bool {
    let SlackEvent::Message(m) = event else {
        return false;
    };
    // Not its edits: the metadata stays on the message when they edit it on Slack, and
    // the echoes of edits from Matrix are known otherwise (`Core::expect_edit`).
    let message = &m.message;
    m.is_new_message()
        && message.metadata_event_type() == Some(super::from_matrix::META_EVENT_TYPE)
        && message.metadata_field("bridge") == Some(bot_user_id.as_str())
}

/// Applies the edit a history message shows, unless it was bridged already.
pub(super) async fn apply_edit(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    message: &Message,
) -> Result<()> {
    changes::on_changed(core, rt, channel, message, None).await
}

/// One Matrix event of a Slack message.
enum Part<'a> {
    Text(Box<RoomMessageEventContent>),
    File(&'a crate::slack::types::File),
}

/// Who wrote a message: its user, or the bot that posted it.
fn sender_of(msg: &Message) -> Result<SenderId> {
    msg.user
        .clone()
        .map(SenderId::from)
        .or_else(|| msg.bot_id.clone().map(SenderId::from))
        .ok_or_else(|| BridgeError::Other("message without a sender".into()))
}

/// Who a Slack user's messages come from in a portal room, joined, ready to send: their
/// ghost, or their own Matrix account when they linked it and double puppeting is set up.
pub(super) struct Target {
    pub room: OwnedRoomId,
    pub sender: OwnedUserId,
    /// The double puppet's client; None: the ghost, through the bridge's own.
    puppet: Option<Arc<crate::matrix::client::MatrixClient>>,
}

impl Target {
    /// The portal of `channel` (created when missing) and the sender of `slack_user` in it.
    pub async fn of(
        core: &Arc<Core>,
        rt: &Arc<LoginRuntime>,
        channel: &ChannelId,
        slack_user: &SenderId,
    ) -> Result<Target> {
        let portal = portal::ensure_portal(core, rt, channel).await?;
        // A portal created just now gets its history before this message.
        Box::pin(history::before_live(core, rt, channel)).await?;
        let room = portal
            .room_id
            .clone()
            .ok_or_else(|| BridgeError::Other("portal without a room".into()))?;
        Self::in_room(core, rt, &room, slack_user).await
    }

    pub async fn in_room(
        core: &Arc<Core>,
        rt: &Arc<LoginRuntime>,
        room: &RoomId,
        slack_user: &SenderId,
    ) -> Result<Target> {
        match Self::puppet(core, rt, room, slack_user).await? {
            Some(t) => Ok(t),
            None => Self::ghost(core, rt, room, slack_user).await,
        }
    }

    /// The sender of a change to `event` (an edit, a reaction's removal): whoever sent it,
    /// the ghost or the double puppet; None when it is neither now (the user linked or
    /// unlinked since, or it came from Matrix).
    pub async fn as_sender_of(
        core: &Arc<Core>,
        rt: &Arc<LoginRuntime>,
        room: &RoomId,
        slack_user: &SenderId,
        event: &EventId,
    ) -> Result<Option<Target>> {
        let sent_by = core.matrix.event_sender(room, event).await?;
        let ghost = core.ghost_mxid(rt.team_id(), slack_user)?;
        if sent_by.as_ref() == Some(&ghost) {
            return Self::ghost(core, rt, room, slack_user).await.map(Some);
        }
        Ok(Self::puppet(core, rt, room, slack_user)
            .await?
            .filter(|t| Some(&t.sender) == sent_by.as_ref()))
    }

    /// The user's double puppet, joined; None without one (or when it cannot join).
    async fn puppet(
        core: &Arc<Core>,
        rt: &Arc<LoginRuntime>,
        room: &RoomId,
        slack_user: &SenderId,
    ) -> Result<Option<Target>> {
        let Some(user) = slack_user.user() else {
            return Ok(None);
        };
        let Some(p) = double_puppet::of(core, rt.team_id(), &user).await? else {
            return Ok(None);
        };
        match double_puppet::ensure_joined(core, room, &p).await {
            Ok(()) => Ok(Some(Target {
                room: room.to_owned(),
                sender: p.mxid,
                puppet: Some(p.client),
            })),
            // Refused (banned, a secret that does not work) or their homeserver is away:
            // the ghost sends rather than the conversation waiting.
            Err(e) => {
                tracing::warn!(%room, user = %p.mxid, error = %e, "double puppet cannot join the portal; sending as the ghost");
                Ok(None)
            }
        }
    }

    async fn ghost(
        core: &Arc<Core>,
        rt: &Arc<LoginRuntime>,
        room: &RoomId,
        slack_user: &SenderId,
    ) -> Result<Target> {
        let ghost = ghost::ensure_ghost(core, rt, slack_user).await?;
        ghost::ensure_joined(core, room, &ghost).await?;
        Ok(Target {
            room: room.to_owned(),
            sender: ghost,
            puppet: None,
        })
    }

    /// Whether the user's own Matrix account sends.
    pub fn is_puppet(&self) -> bool {
        self.puppet.is_some()
    }

    /// The user media is uploaded as: the ghost, or the bot for a double puppet.
    pub fn uploader<'a>(&'a self, core: &'a Core) -> &'a UserId {
        if self.is_puppet() {
            core.matrix.bot()
        } else {
            &self.sender
        }
    }

    fn client<'a>(&'a self, core: &'a Core) -> &'a crate::matrix::client::MatrixClient {
        self.puppet.as_deref().unwrap_or(&core.matrix)
    }

    /// Sends `content`; a sender no longer in the room (kicked, or left) joins again and
    /// sends once more. The txn id makes a retry after a lost response a no-op.
    pub async fn send<C: ruma::events::MessageLikeEventContent>(
        &self,
        core: &Core,
        txn: &str,
        content: &C,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<OwnedEventId> {
        let started = std::time::Instant::now();
        let event_type = content.event_type().to_string();
        let json = serde_json::to_value(content).map_err(|e| BridgeError::Other(e.to_string()))?;
        let json = self.marked(core, json);
        let send = || {
            self.client(core)
                .send_raw(Some(&self.sender), &self.room, txn, &event_type, &json, ts)
        };
        let sent = match send().await {
            Ok(id) => id,
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                self.rejoin(core).await?;
                send().await?
            }
            Err(e) => return Err(e.into()),
        };
        core.metrics.matrix_send(started.elapsed());
        Ok(sent)
    }

    /// Sends a reaction; None when the sender already reacted with that key.
    pub async fn react(
        &self,
        core: &Core,
        txn: &str,
        content: &serde_json::Value,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<Option<OwnedEventId>> {
        let content = self.marked(core, content.clone());
        let react = || {
            self.client(core)
                .send_reaction(Some(&self.sender), &self.room, txn, &content, ts)
        };
        match react().await {
            Ok(id) => Ok(id),
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                self.rejoin(core).await?;
                Ok(react().await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Redacts an event the sender sent; one already gone is fine.
    pub async fn redact(&self, core: &Core, event: &EventId, txn: &str) -> Result<()> {
        match self
            .client(core)
            .redact(Some(&self.sender), &self.room, event, txn, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A double puppet's content carries the bridge's mark, so its echo is dropped.
    fn marked(&self, core: &Core, content: serde_json::Value) -> serde_json::Value {
        if self.is_puppet() {
            double_puppet::mark(&core.config, content)
        } else {
            content
        }
    }

    pub async fn rejoin(&self, core: &Core) -> Result<()> {
        core.forget_joined(&self.room, &self.sender);
        match &self.puppet {
            Some(client) => {
                let p = double_puppet::Puppet {
                    mxid: self.sender.clone(),
                    client: client.clone(),
                };
                double_puppet::ensure_joined(core, &self.room, &p).await
            }
            None => ghost::ensure_joined(core, &self.room, &self.sender).await,
        }
    }
}

/// A Slack ts as the `ts` of a Matrix event (the appservice timestamp massaging).
pub(super) fn matrix_ts(ts: &Ts) -> Option<MilliSecondsSinceUnixEpoch> {
    ts.millis()
        .and_then(UInt::new)
        .map(MilliSecondsSinceUnixEpoch)
}

/// The Matrix rendering of a message's text: formatted, with pills and `m.mentions`.
pub(super) async fn message_content(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    msg: &Message,
    is_me: bool,
) -> RoomMessageEventContent {
    let ctx = mention_context(core, rt, msg).await;
    let converted = format::slack_message_to_matrix(
        &msg.text,
        msg.blocks.as_ref(),
        msg.attachments.as_ref(),
        &ctx,
    );
    let mut mentions = Mentions::new();
    mentions.user_ids = converted
        .mentioned_users
        .iter()
        .filter_map(|u| UserId::parse(u).ok())
        .collect::<std::collections::BTreeSet<OwnedUserId>>();
    mentions.room = converted.mentions_room;
    let body = converted.body;
    let msgtype = match (is_me, converted.formatted_body) {
        (true, Some(html)) => MessageType::Emote(EmoteMessageEventContent::html(body, html)),
        (true, None) => MessageType::Emote(EmoteMessageEventContent::plain(body)),
        (false, Some(html)) => MessageType::Text(TextMessageEventContent::html(body, html)),
        (false, None) => MessageType::Text(TextMessageEventContent::plain(body)),
    };
    RoomMessageEventContent::new(msgtype).add_mentions(mentions)
}

/// For a thread reply whose root was bridged: the root's event and the thread's newest event
/// (the reply fallback for clients without threads).
async fn thread_of(
    core: &Core,
    rt: &LoginRuntime,
    channel: &ChannelId,
    msg: &Message,
) -> Result<Option<(OwnedEventId, OwnedEventId)>> {
    let Some(root_ts) = msg.thread_ts.as_ref().filter(|_| msg.is_thread_reply()) else {
        return Ok(None);
    };
    let root = core
        .store
        .get_message(rt.team_id(), channel, root_ts)
        .await?;
    let Some(root) = root.first() else {
        tracing::debug!(%channel, ts = %msg.ts, thread_ts = %root_ts, "thread root was never bridged; sending the reply as a plain message");
        return Ok(None);
    };
    let latest = core
        .store
        .latest_in_thread(rt.team_id(), channel, root_ts)
        .await?
        .map_or_else(|| root.event_id.clone(), |r| r.event_id);
    Ok(Some((root.event_id.clone(), latest)))
}

/// Resolves the users and channels a message mentions, for pills.
async fn mention_context(core: &Arc<Core>, rt: &Arc<LoginRuntime>, m: &Message) -> SlackContext {
    let (users, channels) =
        format::referenced_ids_with(&m.text, m.blocks.as_ref(), m.attachments.as_ref());
    let mut ctx = SlackContext::default();
    for user in users {
        // The ghost carries the name Slack shows (and is the pill, unless the user linked
        // their Matrix account: then that person is).
        let ghost = match ghost::ensure_ghost(core, rt, &SenderId::from(&user)).await {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(%user, error = %e, "cannot resolve a mentioned user");
                continue;
            }
        };
        let name = core
            .store
            .get_ghost_by_mxid(&ghost)
            .await
            .ok()
            .flatten()
            .map(|g| g.display_name)
            .unwrap_or_else(|| user.clone());
        let person = core
            .store
            .user_login_by_slack(rt.team_id(), &crate::ids::UserId::from(user.as_str()))
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(%user, error = %e, "cannot look up a mentioned user's link");
                None
            })
            .map(|l| l.mxid);
        let mxid = person.unwrap_or(ghost);
        ctx.users.insert(
            user,
            format::Mention {
                mxid: mxid.to_string(),
                name,
            },
        );
    }
    let groups = format::referenced_usergroups(&m.text, m.blocks.as_ref(), m.attachments.as_ref());
    if !groups.is_empty() {
        for g in rt.usergroups().await {
            if groups.contains(&g.id) {
                let members = g
                    .users
                    .iter()
                    .filter_map(|u| core.ghost_mxid(rt.team_id(), &SenderId::from(u)).ok())
                    .map(|m| m.to_string())
                    .collect();
                ctx.usergroups.insert(
                    g.id.clone(),
                    format::GroupRef {
                        handle: g.handle.clone(),
                        members,
                    },
                );
            }
        }
    }
    for (channel, ts) in
        format::referenced_permalinks(&m.text, m.blocks.as_ref(), m.attachments.as_ref())
    {
        if let Ok(rows) = core
            .store
            .get_message(rt.team_id(), &ChannelId::from(&channel), &Ts::from(&ts))
            .await
            && let Some(row) = rows.first()
        {
            let link = format!(
                "https://matrix.to/#/{}/{}?via={}",
                row.room_id, row.event_id, core.config.homeserver.domain
            );
            ctx.messages.insert((channel, ts), link);
        }
    }
    for name in format::referenced_custom_emoji(m.blocks.as_ref()) {
        match super::custom_emoji::resolve(core, rt, &name).await {
            Ok(super::custom_emoji::Resolved::Image { mxc, .. }) => {
                ctx.emoji.insert(name, mxc);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(emoji = %name, error = %e, "cannot resolve a custom emoji"),
        }
    }
    for channel in channels {
        if let Ok(Some(p)) = core
            .store
            .get_portal(rt.team_id(), &ChannelId::from(&channel))
            .await
        {
            ctx.channels.insert(
                channel,
                format::ChannelRef {
                    room_id: p.room_id.map(|r| r.to_string()),
                    name: p.name.trim_start_matches('#').to_owned(),
                },
            );
        }
    }
    ctx
}
