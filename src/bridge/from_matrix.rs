//! Matrix → Slack: events from the transaction inbox. Bot invites and commands go to
//! [`commands`](super::commands); messages in portal rooms are checked against the
//! permissions, converted to mrkdwn and posted through the relay (the bot, with the sender's
//! name). Each send is recorded as pending first, so a redelivered transaction does not post
//! twice; a refusal from Slack becomes a notice in the room naming the reason.

use std::sync::Arc;

use ruma::{
    RoomId, UserId,
    events::{AnyTimelineEvent, room::message::RoomMessageEventContent},
    serde::Raw,
};
use serde_json::Value;

use super::{BridgeError, Core, Result, commands};
use crate::{
    config::PermissionLevel,
    format::{self, MatrixContext},
    matrix::inbox::{BoxFuture, MatrixEventSink, SinkError},
    slack::web::PostMessage,
    store::{MessageRow, Outgoing, Portal},
};

/// The bridge layer as the transaction inbox sees it.
pub struct MatrixSide(pub Arc<Core>);

impl MatrixEventSink for MatrixSide {
    fn handle_event<'a>(
        &'a self,
        txn_id: &'a str,
        event: &'a Raw<AnyTimelineEvent>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let v: Value = match event.deserialize_as_unchecked() {
                Ok(v) => v,
                Err(e) => return Err(SinkError::Permanent(format!("event is not JSON: {e}"))),
            };
            handle(&self.0, &v).await.map_err(|e| {
                if e.is_retryable() {
                    SinkError::Retry(e.to_string())
                } else {
                    tracing::warn!(%txn_id, event_id = ?v.get("event_id"), error = %e, "matrix event not bridged");
                    SinkError::Permanent(e.to_string())
                }
            })
        })
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

async fn handle(core: &Arc<Core>, v: &Value) -> Result<()> {
    let kind = str_at(v, "type");
    let room = str_at(v, "room_id");
    let sender = str_at(v, "sender");
    let content = v.get("content").cloned().unwrap_or(Value::Null);
    match kind {
        "m.room.member" => {
            if str_at(v, "state_key") == core.namespace.bot()
                && content.get("membership").and_then(Value::as_str) == Some("invite")
            {
                let is_direct = content
                    .get("is_direct")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                commands::on_bot_invite(core, room, sender, is_direct).await?;
            }
            Ok(())
        }
        "m.room.message" => {
            if content
                .get("m.relates_to")
                .and_then(|r| r.get("rel_type"))
                .and_then(Value::as_str)
                == Some("m.replace")
            {
                // Edits come with the next fidelity work.
                return Ok(());
            }
            let body = content
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let event_id = str_at(v, "event_id");
            let is_management =
                core.store.management_room_owner(room).await?.as_deref() == Some(sender);
            let prefix = core.config.bridge.command_prefix.as_str();
            if is_management {
                let text = body.strip_prefix(prefix).unwrap_or(body).trim();
                return commands::run(core, room, sender, event_id, text).await;
            }
            if let Some(rest) = body.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with(' '))
            {
                return commands::run(core, room, sender, event_id, rest.trim()).await;
            }
            let Some(portal) = core.store.get_portal_by_room(room).await? else {
                return Ok(());
            };
            to_slack(core, &portal, sender, event_id, &content).await
        }
        _ => Ok(()),
    }
}

/// Sends a notice as the bot; failures are logged, not raised (the notice is a courtesy).
pub async fn notice(core: &Core, room: &str, txn_id: &str, text: &str) {
    let Ok(room_id) = RoomId::parse(room) else {
        return;
    };
    let content = RoomMessageEventContent::notice_plain(text);
    if let Err(e) = core
        .matrix
        .send_message(None, &room_id, txn_id, &content, None)
        .await
    {
        tracing::warn!(%room, error = %e, "cannot send a notice");
    }
}

async fn to_slack(
    core: &Arc<Core>,
    portal: &Portal,
    sender: &str,
    event_id: &str,
    content: &Value,
) -> Result<()> {
    let msgtype = str_at(content, "msgtype");
    if !matches!(msgtype, "m.text" | "m.notice" | "m.emote") {
        return Ok(());
    }
    let room = portal.room_id.as_deref().unwrap_or_default();
    let notice_txn = format!("notice-{event_id}");
    let level = core.config.bridge.permission_of(sender);
    if level.is_none() {
        notice(
            core,
            room,
            &notice_txn,
            &format!("{sender}: your message was not sent to Slack: you are not allowed to use this bridge (bridge.permissions)."),
        )
        .await;
        return Ok(());
    }
    let Some(rt) = core.login(&portal.team_id) else {
        // A login that is starting (bridge restart) gets the message once it runs.
        if let Some(l) = core.store.get_login(&portal.team_id).await?
            && l.state == crate::store::LoginState::Ok
        {
            return Err(BridgeError::NotReady(format!(
                "slack login for team {} is starting",
                portal.team_id
            )));
        }
        notice(
            core,
            room,
            &notice_txn,
            "Your message was not sent to Slack: the Slack login of this workspace is not connected. Its owner can check it with `ping` in the bridge bot's DM.",
        )
        .await;
        return Ok(());
    };
    // Without the relay only the login's owner (or an admin) may post through its bot.
    if !core.config.bridge.relay.enabled
        && sender != rt.login.owner_mxid
        && level != Some(PermissionLevel::Admin)
    {
        notice(
            core,
            room,
            &notice_txn,
            &format!("{sender}: your message was not sent to Slack: the relay is off (bridge.relay.enabled) and you do not own this workspace's Slack login."),
        )
        .await;
        return Ok(());
    }
    match core
        .store
        .begin_outgoing(event_id, room, &portal.team_id, &portal.channel_id)
        .await?
    {
        Outgoing::Sent(_) | Outgoing::Failed => return Ok(()),
        Outgoing::New | Outgoing::Pending => {}
    }
    let room_id = RoomId::parse(room).map_err(|e| BridgeError::Other(format!("room id: {e}")))?;
    let (display_name, avatar) = match UserId::parse(sender) {
        Ok(user) => {
            let (name, avatar) = core
                .matrix
                .member_profile(&room_id, &user)
                .await
                .unwrap_or_default();
            (name.unwrap_or_else(|| user.localpart().to_owned()), avatar)
        }
        Err(_) => (sender.to_owned(), None),
    };
    let icon_url =
        avatar.and_then(|mxc| public_media_url(&core.config.bridge.relay.public_media_url, &mxc));
    let body = str_at(content, "body");
    let html = content
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| *f == "org.matrix.custom.html")
        .and_then(|_| content.get("formatted_body").and_then(Value::as_str));
    let ctx = matrix_context(core, &portal.team_id, html).await;
    let mut text = format::matrix_to_slack(body, html, &ctx);
    if msgtype == "m.emote" {
        text = format!("_{text}_");
    }
    let post = PostMessage {
        channel: portal.channel_id.clone(),
        text,
        username: Some(display_name),
        icon_url,
        ..PostMessage::default()
    };
    match rt.slack.chat_post_message(&post).await {
        Ok(posted) => {
            core.store.finish_outgoing(event_id, &posted.ts).await?;
            core.store
                .insert_message(&MessageRow {
                    team_id: portal.team_id.clone(),
                    channel_id: portal.channel_id.clone(),
                    ts: posted.ts.clone(),
                    part: 0,
                    event_id: event_id.to_owned(),
                    room_id: room.to_owned(),
                    thread_ts: None,
                    sender: sender.to_owned(),
                })
                .await?;
            tracing::debug!(%event_id, channel = %portal.channel_id, ts = %posted.ts, "matrix message bridged");
            Ok(())
        }
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            core.store.fail_outgoing(event_id, &e.to_string()).await?;
            notice(
                core,
                room,
                &notice_txn,
                &format!("Your message was not sent to Slack: {e}"),
            )
            .await;
            Ok(())
        }
    }
}

/// Where Slack can fetch an avatar: `mxc://server/id` under the operator's public media URL.
/// None without one: current homeservers serve media only to authenticated clients.
fn public_media_url(base: &str, mxc: &str) -> Option<String> {
    let rest = mxc.strip_prefix("mxc://")?;
    let (server, id) = rest.split_once('/')?;
    if base.is_empty() || server.is_empty() || id.is_empty() || id.contains('/') {
        return None;
    }
    Some(format!("{}/{server}/{id}", base.trim_end_matches('/')))
}

/// Maps the ghosts and portal rooms linked in `html` to their Slack IDs, for mentions.
async fn matrix_context(core: &Core, team_id: &str, html: Option<&str>) -> MatrixContext {
    let mut ctx = MatrixContext::default();
    let Some(html) = html else { return ctx };
    for id in format::html::link_targets(html) {
        if id.starts_with('@') {
            if let Ok(Some(g)) = core.store.get_ghost_by_mxid(&id).await
                && g.team_id == team_id
            {
                ctx.users.insert(id, g.user_id);
            }
        } else if id.starts_with('!')
            && let Ok(Some(p)) = core.store.get_portal_by_room(&id).await
            && p.team_id == team_id
        {
            ctx.rooms.insert(id, p.channel_id);
        }
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::public_media_url;

    #[test]
    fn avatars_are_public_only_when_the_operator_says_where() {
        assert_eq!(public_media_url("", "mxc://example.org/abc"), None);
        assert_eq!(
            public_media_url(
                "https://matrix.example.org/_matrix/media/v3/download/",
                "mxc://example.org/abc"
            ),
            Some("https://matrix.example.org/_matrix/media/v3/download/example.org/abc".into())
        );
        assert_eq!(
            public_media_url("https://m.example.org/media", "https://not-mxc"),
            None
        );
        assert_eq!(
            public_media_url("https://m.example.org/media", "mxc://example.org/a/b"),
            None
        );
    }
}
