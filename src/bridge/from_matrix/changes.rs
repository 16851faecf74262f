//! Matrix → Slack changes to bridged messages: an edit (`m.replace`) of a message posted from
//! Matrix becomes `chat.update`, its redaction `chat.delete`; an `m.reaction` becomes
//! `reactions.add` by the bot (one Slack reaction per emoji, whoever reacted on Matrix) and
//! its redaction `reactions.remove` once no Matrix user keeps that emoji. Each is safe to
//! repeat: a retry after a lost answer finds the change already made (`already_reacted`,
//! `message_not_found`, `no_reaction` are success).

use std::sync::Arc;

use ruma::{
    EventId, RoomId, UserId,
    events::{
        OriginalMessageLikeEvent,
        reaction::ReactionEventContent,
        room::{
            message::{RoomMessageEventContent, RoomMessageEventContentWithoutRelation},
            redaction::OriginalRoomRedactionEvent,
        },
    },
};

use super::{gate, notice, slack_text};
use crate::{
    bridge::{Core, LoginRuntime, Result, custom_emoji, user_login},
    format::emoji,
    slack::web::{SlackError, UpdateMessage},
    store::{Portal, ReactionRow},
};

/// A Slack error that means the change is already there.
fn already_done(e: &SlackError, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

/// The outcome of a Slack call for a change: done, retried later, or refused with a notice
/// to the room.
async fn settle(
    core: &Core,
    room: &RoomId,
    event_id: &EventId,
    what: &str,
    result: std::result::Result<(), SlackError>,
    done_codes: &[&str],
) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if already_done(&e, done_codes) => Ok(()),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            notice(
                core,
                room,
                &format!("notice-{event_id}"),
                &format!("Your {what} was not sent to Slack: {e}"),
            )
            .await;
            Ok(())
        }
    }
}

pub(super) async fn edit(
    core: &Arc<Core>,
    portal: &Portal,
    msg: &OriginalMessageLikeEvent<RoomMessageEventContent>,
    target: &EventId,
    new_content: &RoomMessageEventContentWithoutRelation,
) -> Result<()> {
    let Some(row) = core.store.get_message_by_event(target).await? else {
        tracing::debug!(%target, "edit of an event the bridge never bridged; ignored");
        return Ok(());
    };
    if !is_own(core, portal, &row, &msg.sender).await? || row.is_deleted() {
        // Only the author edits a message (Slack users' messages are theirs to edit).
        tracing::debug!(%target, sender = %msg.sender, "edit of a message that is not the sender's own, or deleted; ignored");
        return Ok(());
    }
    let room = &msg.room_id;
    let event_id = &msg.event_id;
    let Some(rt) = gate(core, portal, room, &msg.sender, event_id, "edit").await? else {
        return Ok(());
    };
    // A file's edit changes its caption: the comment of its share.
    let text = match super::media::of_msgtype(&new_content.msgtype) {
        Some(file) => {
            let (name, _) = super::post::sender_profile(core, &msg.room_id, &msg.sender).await;
            super::media::relay_comment(&name, file.caption.as_deref())
        }
        None => match slack_text(core, &portal.team_id, &new_content.msgtype, false).await {
            Some(text) => text,
            None => {
                tracing::debug!(%target, "edit to a msgtype that is not text; ignored");
                return Ok(());
            }
        },
    };
    let update = UpdateMessage {
        channel: portal.channel_id.clone(),
        ts: row.ts.clone(),
        text,
        blocks: None,
    };
    let update = &update;
    let result = user_login::as_author(core, &rt.slack, &portal.team_id, &msg.sender, |c| {
        if c.is_user() {
            // Slack's message_changed for it then is known as the echo.
            core.expect_edit(&portal.team_id, &update.channel, &update.ts, &update.text);
        }
        async move { c.chat_update(update).await.map(drop) }
    })
    .await?;
    settle(core, room, event_id, "edit", result, &[]).await
}

/// Whether `sender` wrote the bridged message: from Matrix, or in Slack with the account
/// they linked (it reached Matrix from them as their double puppet).
async fn is_own(
    core: &Core,
    portal: &Portal,
    row: &crate::store::MessageRow,
    sender: &UserId,
) -> Result<bool> {
    if row.sender == sender.as_str() {
        return Ok(true);
    }
    match row.slack_sender().and_then(|s| s.user()) {
        Some(user) => user_login::is_linked(core, &portal.team_id, sender, &user).await,
        None => Ok(false),
    }
}

pub(super) async fn redact(
    core: &Arc<Core>,
    portal: &Portal,
    r: &OriginalRoomRedactionEvent,
) -> Result<()> {
    let Some(target) = r.redacts.as_ref().or(r.content.redacts.as_ref()) else {
        return Ok(());
    };
    let room = &r.room_id;
    let event_id = &r.event_id;
    if let Some(row) = core.store.get_message_by_event(target).await? {
        if !row.sender.starts_with('@') && !is_own(core, portal, &row, &r.sender).await? {
            // The bot cannot delete what a Slack user wrote; only their linked account can.
            tracing::debug!(%target, "redaction of a Slack user's message; not deleted on slack");
            return Ok(());
        }
        let Some(rt) = gate(core, portal, room, &r.sender, event_id, "deletion").await? else {
            return Ok(());
        };
        // Marked first: the Socket Mode echo of the delete then redacts nothing.
        core.store
            .mark_message_deleted(&row.team_id, &row.channel_id, &row.ts)
            .await?;
        // As the message's author (a moderator's redaction too): only their account may
        // delete what it posted.
        let author = ruma::UserId::parse(&row.sender).unwrap_or_else(|_| r.sender.clone());
        let row = &row;
        let result =
            user_login::as_author(core, &rt.slack, &portal.team_id, &author, |c| async move {
                c.chat_delete(&row.channel_id, &row.ts).await
            })
            .await?;
        return settle(
            core,
            room,
            event_id,
            "deletion",
            result,
            &["message_not_found"],
        )
        .await;
    }
    if let Some(reaction) = core.store.get_reaction_by_event(target).await? {
        if !reaction.user_id.starts_with('@') {
            // A Slack user's reaction: theirs to remove, when they linked the redacting
            // Matrix account (it came from there as their double puppet).
            let user = crate::ids::UserId::from(reaction.user_id.as_str());
            if user_login::is_linked(core, &portal.team_id, &r.sender, &user).await? {
                return unreact_own(core, portal, room, event_id, &reaction, &r.sender).await;
            }
            tracing::debug!(%target, "redaction of a Slack user's reaction; not removed on slack");
            return Ok(());
        }
        let Some(rt) = gate(core, portal, room, &r.sender, event_id, "reaction removal").await?
        else {
            return Ok(());
        };
        unreact(core, &rt, room, event_id, &reaction, &r.sender).await?;
    }
    Ok(())
}

/// Removes a Matrix user's Slack reaction: their own, made with their linked account, or
/// the bot's once no Matrix user without a link has that emoji on the message.
async fn unreact(
    core: &Core,
    rt: &LoginRuntime,
    room: &RoomId,
    event_id: &EventId,
    reaction: &ReactionRow,
    sender: &UserId,
) -> Result<()> {
    let (channel, ts, emoji) = (&reaction.channel_id, &reaction.msg_ts, &reaction.emoji);
    if let Some(own) = user_login::client_of(core, &rt.slack, &reaction.team_id, sender).await? {
        match own.reactions_remove(channel, ts, emoji).await {
            Ok(()) => {
                core.store.delete_reaction(&reaction.event_id).await?;
                return Ok(());
            }
            Err(e) if e.is_auth_dead() => {
                user_login::token_refused(core, &reaction.team_id, sender, &e.to_string()).await;
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            // Not theirs (made by the bot before they linked): the bot's is removed below.
            Err(e) => {
                tracing::debug!(%event_id, error = %e, "the linked account has no such reaction; removing the bot's")
            }
        }
    }
    let others = core
        .store
        .reactions_with(
            &reaction.team_id,
            &reaction.channel_id,
            &reaction.msg_ts,
            &reaction.emoji,
        )
        .await?;
    let mut still_wanted = false;
    for o in others.iter().filter(|o| o.event_id != reaction.event_id) {
        // Matrix users whose reaction is the bot's: those without a working link.
        if let Ok(user) = UserId::parse(&o.user_id)
            && user_login::client_of(core, &rt.slack, &o.team_id, &user)
                .await?
                .is_none()
        {
            still_wanted = true;
            break;
        }
    }
    if !still_wanted {
        let result = rt
            .slack
            .reactions_remove(&reaction.channel_id, &reaction.msg_ts, &reaction.emoji)
            .await;
        settle(
            core,
            room,
            event_id,
            "reaction removal",
            result,
            &["no_reaction", "message_not_found"],
        )
        .await?;
    }
    core.store.delete_reaction(&reaction.event_id).await?;
    Ok(())
}

/// Removes a linked user's own Slack reaction with their token, when a Matrix user redacts
/// its annotation.
async fn unreact_own(
    core: &Arc<Core>,
    portal: &Portal,
    room: &RoomId,
    event_id: &EventId,
    reaction: &ReactionRow,
    sender: &UserId,
) -> Result<()> {
    let Some(rt) = gate(core, portal, room, sender, event_id, "reaction removal").await? else {
        return Ok(());
    };
    let Some(own) = user_login::client_of(core, &rt.slack, &portal.team_id, sender).await? else {
        return Ok(());
    };
    // Gone first: Slack's reaction_removed echo then finds nothing to redact.
    core.store.delete_reaction(&reaction.event_id).await?;
    let result = own
        .reactions_remove(&reaction.channel_id, &reaction.msg_ts, &reaction.emoji)
        .await;
    if matches!(&result, Err(e) if e.is_retryable()) {
        core.store.insert_reaction(reaction).await?;
    }
    settle(
        core,
        room,
        event_id,
        "reaction removal",
        result,
        &["no_reaction", "message_not_found"],
    )
    .await
}

pub(super) async fn react(
    core: &Arc<Core>,
    portal: &Portal,
    r: &OriginalMessageLikeEvent<ReactionEventContent>,
) -> Result<()> {
    let target = &r.content.relates_to.event_id;
    let key = &r.content.relates_to.key;
    let Some(row) = core.store.get_message_by_event(target).await? else {
        tracing::debug!(%target, "reaction to an event the bridge never bridged; ignored");
        return Ok(());
    };
    if row.is_deleted() {
        return Ok(());
    }
    let room = &r.room_id;
    let event_id = &r.event_id;
    let Some(rt) = gate(core, portal, room, &r.sender, event_id, "reaction").await? else {
        return Ok(());
    };
    let custom = if key.starts_with("mxc://") {
        custom_emoji::name_of(core, &portal.team_id, key).await?
    } else {
        None
    };
    let Some(name) = custom
        .as_deref()
        .or_else(|| emoji::unicode_to_shortcode(key))
    else {
        notice(
            core,
            room,
            &format!("notice-{event_id}"),
            &format!("Your reaction {key} was not sent to Slack: Slack has no emoji for it."),
        )
        .await;
        return Ok(());
    };
    // Recorded first: the Socket Mode echo of a reaction made as the user is then known.
    let reaction = ReactionRow {
        team_id: row.team_id.clone(),
        channel_id: row.channel_id.clone(),
        msg_ts: row.ts.clone(),
        user_id: r.sender.to_string(),
        emoji: name.to_owned(),
        event_id: event_id.to_owned(),
        room_id: room.to_owned(),
    };
    core.store.insert_reaction(&reaction).await?;
    // As the sender's linked account, else one reaction of the bot for every Matrix user.
    let (channel, ts) = (&row.channel_id, &row.ts);
    let result = user_login::as_user(
        core,
        &rt.slack,
        &portal.team_id,
        &r.sender,
        user_login::RELAY_INSTEAD,
        |c, _| async move { c.reactions_add(channel, ts, name).await },
    )
    .await?;
    let refused =
        matches!(&result, Err(e) if !e.is_retryable() && !already_done(e, &["already_reacted"]));
    if refused {
        core.store.delete_reaction(event_id).await?;
    }
    settle(
        core,
        room,
        event_id,
        "reaction",
        result,
        &["already_reacted"],
    )
    .await?;
    if !refused {
        tracing::debug!(%target, %name, "matrix reaction bridged");
    }
    Ok(())
}
