//! Matrix → Slack. Events leave the transaction inbox through [`MatrixSide`], which only
//! routes: each event is stored in the queue of its portal room, or in the command queue (bot
//! invites, commands, anything in a room that is not a portal), and the transaction is done.
//! [`Outbound`] then handles each queue in order, portals concurrently (see
//! [`queue`](super::queue)).
//!
//! Posts are exactly-once: a send is recorded as pending before the Slack call and carries the
//! Matrix event id in Slack message metadata; when a previous attempt's outcome is unknown (a
//! timeout, a 5xx, a crash), the channel's latest messages are searched for that metadata
//! before posting again. Commands run at most once: a command is marked as started before it
//! runs, and one found started after a restart is reported instead of run again.

use std::sync::Arc;

use ruma::{
    EventId, RoomId, UserId,
    events::{
        AnyMessageLikeEvent, AnyStateEvent, AnyTimelineEvent, MessageLikeEvent, StateEvent,
        room::{
            member::MembershipState,
            message::{MessageType, Relation, RoomMessageEventContent},
            redaction::RoomRedactionEvent,
        },
    },
    serde::Raw,
};
mod changes;
pub mod media;
mod post;

use super::{
    BridgeError, Core, LoginRuntime, Result, commands,
    queue::{Handled, QueueHandler},
};
use crate::{
    BoxFuture,
    config::PermissionLevel,
    format::{self, MatrixContext, html},
    ids::TeamId,
    matrix::inbox::{MatrixEventSink, SinkError},
    store::{COMMAND_QUEUE, NewOutboxEvent, Portal, QueueTable, QueuedItem},
};

/// `event_type` of the Slack message metadata that names the Matrix event a post came from.
pub const META_EVENT_TYPE: &str = "slack_bridge_matrix_event";

/// The transaction inbox's view of the bridge: route and queue.
pub struct MatrixSide(pub Arc<Core>);

impl MatrixEventSink for MatrixSide {
    fn handle_event<'a>(
        &'a self,
        txn_id: &'a str,
        event: &'a Raw<AnyTimelineEvent>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let core = &self.0;
            let content = event
                .get_field::<serde_json::Value>("content")
                .ok()
                .flatten();
            if super::double_puppet::is_ours(&core.config, content.as_ref()) {
                // A Slack user's message the bridge sent as their own Matrix account.
                return Ok(());
            }
            let ev = match event.deserialize() {
                Ok(ev) => ev,
                Err(e) => {
                    return Err(SinkError::Permanent(format!(
                        "not a valid timeline event: {e}"
                    )));
                }
            };
            let queue = route(core, &ev)
                .await
                .map_err(|e| SinkError::Retry(e.to_string()))?;
            let Some(queue) = queue else {
                return Ok(());
            };
            let new = core
                .store
                .insert_outbox(&[NewOutboxEvent {
                    event_id: ev.event_id().as_str(),
                    queue: &queue,
                    room_id: ev.room_id().as_str(),
                    payload: event.json().get(),
                }])
                .await
                .map_err(|e| SinkError::Retry(e.to_string()))?;
            tracing::debug!(%txn_id, event_id = %ev.event_id(), %queue, new = new[0], "matrix event queued");
            core.outbox.wake(queue);
            Ok(())
        })
    }
}

/// The queue an event belongs in, or None when nothing will ever be done with it.
async fn route(core: &Core, ev: &AnyTimelineEvent) -> Result<Option<String>> {
    match ev {
        AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(m))) => {
            let to_bot = m.state_key.as_str() == core.namespace.bot()
                && m.content.membership == MembershipState::Invite;
            Ok(to_bot.then(|| COMMAND_QUEUE.to_owned()))
        }
        AnyTimelineEvent::State(_) => Ok(None),
        AnyTimelineEvent::MessageLike(m) => {
            if let AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(msg)) = m
                && is_prefixed(core, msg.content.body())
            {
                return Ok(Some(COMMAND_QUEUE.to_owned()));
            }
            let room = ev.room_id();
            if core.store.get_portal_by_room(room).await?.is_some() {
                return Ok(Some(room.to_string()));
            }
            // Management rooms (and rooms that may become one: the invite before this
            // message may still be waiting in the command queue).
            let is_message = matches!(m, AnyMessageLikeEvent::RoomMessage(_));
            Ok(is_message.then(|| COMMAND_QUEUE.to_owned()))
        }
    }
}

/// The text after the command prefix, when `body` starts with it.
fn prefixed<'a>(core: &Core, body: &'a str) -> Option<&'a str> {
    let rest = body.strip_prefix(core.config.bridge.command_prefix.as_str())?;
    (rest.is_empty() || rest.starts_with(' ')).then(|| rest.trim())
}

fn is_prefixed(core: &Core, body: &str) -> bool {
    prefixed(core, body).is_some()
}

/// The outbound queues' handler.
pub struct Outbound(pub Arc<Core>);

impl QueueHandler for Outbound {
    fn table(&self) -> QueueTable {
        QueueTable::Outbox
    }

    fn handle<'a>(&'a self, item: &'a QueuedItem) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            let ev = match serde_json::from_str::<Raw<AnyTimelineEvent>>(&item.payload)
                .map_err(|e| e.to_string())
                .and_then(|raw| raw.deserialize().map_err(|e| e.to_string()))
            {
                Ok(ev) => ev,
                Err(e) => return Handled::Refused(format!("stored event cannot be read: {e}")),
            };
            if item.queue == COMMAND_QUEUE {
                handle_command(&self.0, item, &ev).await
            } else {
                handle_portal(&self.0, &ev).await.into()
            }
        })
    }

    fn give_up<'a>(&'a self, item: &'a QueuedItem, reason: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let core = &self.0;
            if item.queue == COMMAND_QUEUE {
                return;
            }
            // The outbox is keyed by the event and its room, stored as they came in.
            let (Ok(event_id), Ok(room)) =
                (EventId::parse(&item.event_id), RoomId::parse(&item.scope))
            else {
                return;
            };
            if let Err(e) = core.store.fail_outgoing(&event_id, reason).await {
                tracing::error!(error = %e, "cannot record a failed send");
            }
            // A reaction is recorded before Slack is asked: one that never got there is not.
            if let Err(e) = core.store.delete_reaction(&event_id).await {
                tracing::error!(error = %e, "cannot forget a reaction that was not sent");
            }
            let what = serde_json::from_str::<Raw<AnyTimelineEvent>>(&item.payload)
                .ok()
                .and_then(|raw| raw.deserialize().ok())
                .and_then(|ev| match ev {
                    AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
                        MessageLikeEvent::Original(m),
                    )) => Some(snippet(m.content.body())),
                    _ => None,
                })
                .map_or_else(
                    || "Your message".to_owned(),
                    |s| format!("Your message “{s}”"),
                );
            notice(
                core,
                &room,
                &format!("notice-{event_id}"),
                &format!("{what} was not sent to Slack: {reason}"),
            )
            .await;
            core.metrics.given_up(QueueTable::Outbox);
        })
    }
}

/// The start of a message, for notices about it.
fn snippet(body: &str) -> String {
    const MAX: usize = 80;
    let line = body.lines().next().unwrap_or_default();
    if line.chars().count() > MAX || body.lines().nth(1).is_some() {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Bot invites and commands. A command is marked as started before it runs: one found started
/// (the bridge died while running it) is reported, never run again.
async fn handle_command(core: &Arc<Core>, item: &QueuedItem, ev: &AnyTimelineEvent) -> Handled {
    let room = ev.room_id();
    let sender = ev.sender();
    let result = match ev {
        AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(m))) => {
            let is_direct = m.content.is_direct.unwrap_or(false);
            commands::on_bot_invite(core, room, sender, is_direct).await
        }
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
            MessageLikeEvent::Original(msg),
        )) => {
            let body = msg.content.body();
            let is_management = match core.store.management_room_owner(room).await {
                Ok(owner) => owner.as_deref() == Some(sender),
                Err(e) => return Err::<(), BridgeError>(e.into()).into(),
            };
            let text = match (is_management, prefixed(core, body)) {
                (true, rest) => rest.unwrap_or(body).trim(),
                (false, Some(rest)) => rest,
                (false, None) => return Handled::Done,
            };
            let event_id = ev.event_id();
            if item.state == "running" {
                let name = text.split_whitespace().next().unwrap_or("help");
                tracing::warn!(%event_id, command = name, "a command was interrupted by a restart; not running it again");
                if name.eq_ignore_ascii_case("login") {
                    commands::redact_tokens(core, room, event_id).await;
                }
                notice(
                    core,
                    room,
                    &format!("reply-{event_id}"),
                    &format!("The bridge stopped while it ran your command `{name}`, so it may not have finished. It was not run again: check with `ping` or `list`, and send it again if needed."),
                )
                .await;
                return Handled::Done;
            }
            if let Err(e) = core.store.queue_running(QueueTable::Outbox, item.id).await {
                return Err::<(), BridgeError>(e.into()).into();
            }
            match commands::run(core, room, sender, event_id, text).await {
                Ok(()) => Ok(()),
                // Started once: never retried.
                Err(e) => return Handled::Refused(e.to_string()),
            }
        }
        _ => Ok(()),
    };
    result.into()
}

/// Events in a portal room.
async fn handle_portal(core: &Arc<Core>, ev: &AnyTimelineEvent) -> Result<()> {
    let Some(portal) = core.store.get_portal_by_room(ev.room_id()).await? else {
        return Ok(());
    };
    match ev {
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
            MessageLikeEvent::Original(msg),
        )) => {
            if let Some(Relation::Replacement(r)) = &msg.content.relates_to {
                return changes::edit(core, &portal, msg, &r.event_id, &r.new_content).await;
            }
            post::to_slack(
                core,
                &portal,
                &msg.room_id,
                &msg.sender,
                &msg.event_id,
                &msg.content,
            )
            .await
        }
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::Sticker(
            MessageLikeEvent::Original(s),
        )) => {
            let Some(media) = media::of_sticker(&s.content) else {
                tracing::debug!(event_id = %s.event_id, "encrypted sticker; not bridged");
                return Ok(());
            };
            let room = &s.room_id;
            let Some(rt) = gate(core, &portal, room, &s.sender, &s.event_id, "sticker").await?
            else {
                return Ok(());
            };
            let (display_name, _) = post::sender_profile(core, &s.room_id, &s.sender).await;
            media::to_slack(
                core,
                &rt,
                &portal,
                room,
                &s.sender,
                &display_name,
                &s.event_id,
                media,
                None,
            )
            .await
        }
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::Reaction(
            MessageLikeEvent::Original(r),
        )) => changes::react(core, &portal, r).await,
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomRedaction(
            RoomRedactionEvent::Original(r),
        )) => changes::redact(core, &portal, r).await,
        _ => {
            tracing::debug!(event_id = %ev.event_id(), kind = %ev.event_type(), "event type not bridged to slack");
            Ok(())
        }
    }
}

/// Sends a notice as the bot; failures are logged, not raised (the notice is a courtesy).
pub async fn notice(core: &Core, room: &RoomId, txn_id: &str, text: &str) {
    let room_id = room;
    let content = RoomMessageEventContent::notice_plain(text);
    if let Err(e) = core
        .matrix
        .send_message(None, room_id, txn_id, &content, None)
        .await
    {
        tracing::warn!(%room, error = %e, "cannot send a notice");
    }
}

/// Whether a msgtype is posted as text: all but media (their own path) and verification
/// requests (meant for Matrix clients).
fn is_text(msgtype: &MessageType) -> bool {
    !matches!(
        msgtype,
        MessageType::Image(_)
            | MessageType::File(_)
            | MessageType::Audio(_)
            | MessageType::Video(_)
            | MessageType::VerificationRequest(_)
    )
}

/// The mrkdwn of a text, notice or emote (None for other msgtypes): mentions of ghosts and
/// portal rooms become Slack mentions, an emote is italic, a reply loses its fallback.
async fn slack_text(
    core: &Core,
    team_id: &TeamId,
    msgtype: &MessageType,
    is_reply: bool,
) -> Option<String> {
    let (body, html, emote) = match msgtype {
        MessageType::Text(t) => (&t.body, t.formatted.as_ref(), false),
        MessageType::Notice(t) => (&t.body, t.formatted.as_ref(), false),
        MessageType::Emote(t) => (&t.body, t.formatted.as_ref(), true),
        // A location: its description and the geo: URI.
        MessageType::Location(l) => {
            let text = format!("📍 {} ({})", l.body, l.geo_uri);
            return Some(html::escape_slack(&text));
        }
        other if is_text(other) => {
            // Polls, server notices and other msgtypes: their plain body.
            return Some(html::escape_slack(other.body()));
        }
        _ => return None,
    };
    let html = html
        .filter(|f| f.format == ruma::events::room::message::MessageFormat::Html)
        .map(|f| f.body.as_str());
    let ctx = matrix_context(core, team_id, html).await;
    let body = if is_reply {
        strip_reply_fallback(body)
    } else {
        body
    };
    let text = format::matrix_to_slack(body, html, &ctx);
    Some(if emote { format!("_{text}_") } else { text })
}

/// Whether `sender` may act on Slack through this portal, and the login that will; None
/// after telling them in the room why not (`what` names what was not sent).
async fn gate(
    core: &Arc<Core>,
    portal: &Portal,
    room: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    what: &str,
) -> Result<Option<Arc<LoginRuntime>>> {
    let sender_str = sender.as_str();
    let notice_txn = format!("notice-{event_id}");
    if core
        .store
        .portal_state(&portal.team_id, &portal.channel_id)
        .await?
        .as_deref()
        == Some("deleted")
    {
        notice(
            core,
            room,
            &notice_txn,
            &format!("Your {what} was not sent to Slack: the channel was deleted on Slack."),
        )
        .await;
        return Ok(None);
    }
    let level = core.config.bridge.permission_of(sender_str);
    if level.is_none() {
        notice(
            core,
            room,
            &notice_txn,
            &format!("{sender}: your {what} was not sent to Slack: you are not allowed to use this bridge (bridge.permissions)."),
        )
        .await;
        return Ok(None);
    }
    let rt = match core.running_login(&portal.team_id) {
        Ok(rt) => rt,
        Err(BridgeError::NoLogin(_)) => {
            notice(
                core,
                room,
                &notice_txn,
                &format!("Your {what} was not sent to Slack: the Slack login of this workspace is not connected. Its owner can check it with `ping` in the bridge bot's DM."),
            )
            .await;
            return Ok(None);
        }
        // A login that is starting (bridge restart) gets the event once it runs.
        Err(e) => return Err(e),
    };
    // Without the relay only the login's owner (or an admin) may act through its bot.
    if !core.config.bridge.relay.enabled
        && sender_str != rt.login.owner_mxid
        && level != Some(PermissionLevel::Admin)
    {
        notice(
            core,
            room,
            &notice_txn,
            &format!("{sender}: your {what} was not sent to Slack: the relay is off (bridge.relay.enabled) and you do not own this workspace's Slack login."),
        )
        .await;
        return Ok(None);
    }
    Ok(Some(rt))
}

/// A rich reply's plain body without the quoted fallback (`> <@a:x> original` lines and
/// the blank line after them) that older clients put before the answer.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while let Some(line_end) = rest.find('\n') {
        if !rest.starts_with('>') {
            break;
        }
        rest = &rest[line_end + 1..];
    }
    if rest.starts_with('>') {
        return body;
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// Maps the ghosts and portal rooms linked in `html` to their Slack IDs, for mentions.
async fn matrix_context(core: &Core, team_id: &TeamId, html: Option<&str>) -> MatrixContext {
    let mut ctx = MatrixContext::default();
    let Some(html) = html else { return ctx };
    let mut domain: Option<Option<String>> = None;
    for id in format::html::link_targets(html) {
        if let Some((_, event)) = id.split_once('/') {
            // A link to a message: the permalink of its Slack message, when bridged.
            let Ok(event_id) = EventId::parse(event) else {
                continue;
            };
            let Ok(Some(row)) = core.store.get_message_by_event(&event_id).await else {
                continue;
            };
            if row.team_id != team_id {
                continue;
            }
            if domain.is_none() {
                domain = Some(match core.running_login(team_id) {
                    Ok(rt) => rt.slack.team_info().await.ok().map(|t| t.domain),
                    Err(_) => None,
                });
            }
            if let Some(Some(d)) = &domain {
                let link =
                    format::slack_permalink_of(d, &row.channel_id, &row.ts, row.thread_ts.as_ref());
                ctx.events.insert(event.to_owned(), link);
            }
            continue;
        }
        if let Ok(user) = UserId::parse(&id) {
            if let Ok(Some(g)) = core.store.get_ghost_by_mxid(&user).await
                && g.team_id == team_id
            {
                ctx.users.insert(id, g.user_id.into_string());
            } else if let Ok(Some(l)) = core.store.get_user_login(&user, team_id).await {
                // A Matrix user who linked their Slack account: a mention of that account.
                ctx.users.insert(id, l.slack_user_id.into_string());
            }
        } else if let Ok(room) = RoomId::parse(&id)
            && let Ok(Some(p)) = core.store.get_portal_by_room(&room).await
            && p.team_id == team_id
        {
            ctx.rooms.insert(id, p.channel_id.into_string());
        }
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::strip_reply_fallback;

    #[test]
    fn reply_fallbacks_are_stripped() {
        assert_eq!(
            strip_reply_fallback("> <@a:x> original\n> second line\n\nmy answer"),
            "my answer"
        );
        assert_eq!(strip_reply_fallback("no fallback"), "no fallback");
        assert_eq!(
            strip_reply_fallback("> only a quote"),
            "> only a quote",
            "a quote with nothing after it is the message"
        );
    }
}
