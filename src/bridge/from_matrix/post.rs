//! Posting a Matrix message to Slack: through the relay (the bot, under the sender's name
//! and avatar) into the portal's conversation or thread, recorded as pending before the call
//! and looked for on Slack (by its metadata) before a retry posts it again.

use std::sync::Arc;

use ruma::{
    EventId, OwnedRoomId, RoomId, UserId,
    events::room::message::{Relation, RoomMessageEventContent},
};
use serde_json::json;

use super::{META_EVENT_TYPE, gate, is_text, media, notice, slack_text};
use crate::{
    bridge::{Core, Result, user_login},
    config::PermissionLevel,
    ids::{ChannelId, Ts},
    slack::web::{HistoryQuery, PostMessage},
    store::{MessageRow, Outgoing, Portal},
};

/// How far back (before the first attempt) a post is looked for on Slack.
const RECONCILE_SLACK_SECS: i64 = 60;
/// Pages of history searched for an earlier post.
const RECONCILE_PAGES: usize = 5;

pub(super) async fn to_slack(
    core: &Arc<Core>,
    portal: &Portal,
    room_id: &OwnedRoomId,
    sender: &UserId,
    event_id: &EventId,
    content: &RoomMessageEventContent,
) -> Result<()> {
    let media = media::of_msgtype(&content.msgtype);
    if !is_text(&content.msgtype) && media.is_none() {
        return Ok(());
    }
    let room = room_id;
    let sender_str = sender.as_str();
    let notice_txn = format!("notice-{event_id}");
    let what = if media.is_some() { "file" } else { "message" };
    let Some(rt) = gate(core, portal, room, sender, event_id, what).await? else {
        return Ok(());
    };
    let thread_ts = thread_ts_of(core, content.relates_to.as_ref()).await?;
    if let Some(media) = media {
        let (display_name, _) = sender_profile(core, room_id, sender).await;
        return media::to_slack(
            core,
            &rt,
            portal,
            room,
            sender,
            &display_name,
            event_id,
            media,
            thread_ts.as_ref(),
        )
        .await;
    }
    match core
        .store
        .begin_outgoing(event_id, room, &portal.team_id, &portal.channel_id)
        .await?
    {
        Outgoing::Sent(_) | Outgoing::Failed => return Ok(()),
        Outgoing::New => {}
        Outgoing::Pending => {
            // An earlier attempt may have reached Slack: look before posting again.
            if let Some(ts) = find_post(core, &rt.slack, &portal.channel_id, event_id).await? {
                tracing::info!(%event_id, channel = %portal.channel_id, %ts, "found the earlier post on slack; not posting again");
                return record_post(
                    core,
                    portal,
                    room,
                    sender,
                    event_id,
                    &ts,
                    thread_ts.as_ref(),
                )
                .await;
            }
        }
    }
    let (display_name, avatar) = sender_profile(core, room_id, sender).await;
    let icon_url =
        avatar.and_then(|mxc| public_media_url(&core.config.bridge.relay.public_media_url, &mxc));
    let is_reply = matches!(content.relates_to, Some(Relation::Reply(_)));
    let mut text = slack_text(core, &portal.team_id, &content.msgtype, is_reply)
        .await
        .unwrap_or_default();
    if content.mentions.as_ref().is_some_and(|m| m.room) {
        let trusted = sender_str == rt.login.owner_mxid
            || core.config.bridge.permission_of(sender_str) == Some(PermissionLevel::Admin);
        if trusted || core.config.bridge.relay.allow_room_mentions {
            text = room_mention_to_slack(&text);
        }
    }
    // As the sender's own Slack account when they linked one; else through the relay, under
    // their name. Both carry the event in their metadata: that is how the echo is recognised.
    let own = PostMessage {
        channel: portal.channel_id.clone(),
        text,
        metadata: Some(json!({
            "event_type": META_EVENT_TYPE,
            "event_payload": {"event_id": event_id, "bridge": rt.login.bot_user_id},
        })),
        thread_ts: thread_ts.clone(),
        ..PostMessage::default()
    };
    let relay = PostMessage {
        username: Some(display_name),
        icon_url,
        ..own.clone()
    };
    let started = std::time::Instant::now();
    let result = user_login::as_user(
        core,
        &rt.slack,
        &portal.team_id,
        sender,
        user_login::RELAY_INSTEAD,
        |c, as_them| {
            let post = if as_them { &own } else { &relay };
            async move { c.chat_post_message(post).await }
        },
    )
    .await?;
    core.metrics.slack_send(started.elapsed());
    match result {
        Ok(posted) => {
            record_post(
                core,
                portal,
                room,
                sender,
                event_id,
                &posted.ts,
                thread_ts.as_ref(),
            )
            .await
        }
        Err(e) if e.is_retryable() => {
            if e.is_rate_limited() {
                // Slack's limiter answers before the method runs: nothing was posted.
                core.store.forget_outgoing(event_id).await?;
            }
            Err(e.into())
        }
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

/// The Slack thread a Matrix message goes to: the root of its `m.thread`, or the thread of
/// the message it replies to (that message's own ts when it is not in a thread yet).
async fn thread_ts_of<C>(core: &Core, relation: Option<&Relation<C>>) -> Result<Option<Ts>> {
    let target = match relation {
        Some(Relation::Thread(t)) => &t.event_id,
        Some(Relation::Reply(r)) => &r.in_reply_to.event_id,
        _ => return Ok(None),
    };
    let Some(row) = core.store.get_message_by_event(target).await? else {
        tracing::debug!(%target, "reply to an event the bridge never bridged; posting to the channel");
        return Ok(None);
    };
    Ok(Some(row.thread_ts.unwrap_or(row.ts)))
}

/// `@room` (an intentional room mention) as Slack's `@channel`; prepended when the text does
/// not spell it out.
fn room_mention_to_slack(text: &str) -> String {
    if text.contains("@room") {
        text.replace("@room", "<!channel>")
    } else {
        format!("<!channel> {text}")
    }
}

/// The sender's display name in the room (their localpart when unset) and avatar.
pub(super) async fn sender_profile(
    core: &Core,
    room_id: &RoomId,
    sender: &UserId,
) -> (String, Option<String>) {
    let (name, avatar) = core
        .matrix
        .member_profile(room_id, sender)
        .await
        .unwrap_or_default();
    (
        name.unwrap_or_else(|| sender.localpart().to_owned()),
        avatar,
    )
}

/// Records a post on Slack: the send is done, and the ts maps to the event.
async fn record_post(
    core: &Core,
    portal: &Portal,
    room: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    ts: &Ts,
    thread_ts: Option<&Ts>,
) -> Result<()> {
    core.store.finish_outgoing(event_id, ts).await?;
    core.store
        .insert_message(&MessageRow {
            team_id: portal.team_id.clone(),
            channel_id: portal.channel_id.clone(),
            ts: ts.clone(),
            part: 0,
            event_id: event_id.to_owned(),
            room_id: room.to_owned(),
            thread_ts: thread_ts.cloned(),
            sender: sender.to_string(),
            file_id: None,
            edit_ts: None,
            deleted: 0,
        })
        .await?;
    tracing::debug!(%event_id, channel = %portal.channel_id, %ts, "matrix message bridged");
    Ok(())
}

/// The ts of the post carrying `event_id` in its metadata, among the channel's messages since
/// shortly before the send was first tried.
async fn find_post(
    core: &Core,
    slack: &crate::slack::web::SlackClient,
    channel: &ChannelId,
    event_id: &EventId,
) -> Result<Option<Ts>> {
    let since_ms = core
        .store
        .outgoing_created_at(event_id)
        .await?
        .unwrap_or_default();
    let oldest = (since_ms / 1000 - RECONCILE_SLACK_SECS).max(0);
    let mut q = HistoryQuery {
        channel: channel.clone(),
        oldest: Some(format!("{oldest}.000000").into()),
        limit: Some(100),
        include_all_metadata: true,
        ..HistoryQuery::default()
    };
    for _ in 0..RECONCILE_PAGES {
        let page = slack.conversations_history(&q).await?;
        let found = page.messages.iter().find(|m| {
            m.metadata_event_type() == Some(META_EVENT_TYPE)
                && m.metadata_field("event_id") == Some(event_id.as_str())
        });
        if let Some(m) = found {
            return Ok(Some(m.ts.clone()));
        }
        match page.next_cursor {
            Some(c) if page.has_more && !c.is_empty() => q.cursor = Some(c),
            _ => break,
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::{public_media_url, room_mention_to_slack};

    #[test]
    fn room_mentions_become_channel_mentions() {
        assert_eq!(room_mention_to_slack("@room: lunch!"), "<!channel>: lunch!");
        assert_eq!(room_mention_to_slack("lunch!"), "<!channel> lunch!");
    }

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
