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

/// Slack's answers to a reaction's removal that mean it is gone already.
const UNREACT_DONE: &[&str] = &["no_reaction", "message_not_found"];

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
        // Whose reaction it is on Slack: a Matrix user's own (made as their linked
        // account), the bot's for Matrix users without one, or a Slack user's, which only
        // they may remove (from the Matrix account they linked, as their double puppet).
        let own = match UserId::parse(&reaction.user_id) {
            Ok(mxid) => reaction.made_as.is_some().then_some(mxid),
            Err(_) => {
                let user = crate::ids::UserId::from(reaction.user_id.as_str());
                if !user_login::is_linked(core, &portal.team_id, &r.sender, &user).await? {
                    tracing::debug!(%target, "redaction of a Slack user's reaction; not removed on slack");
                    return Ok(());
                }
                Some(r.sender.clone())
            }
        };
        let Some(rt) = gate(core, portal, room, &r.sender, event_id, "reaction removal").await?
        else {
            return Ok(());
        };
        return match own {
            Some(mxid) => unreact_as(core, &rt, room, event_id, &reaction, &mxid).await,
            None => unreact(core, &rt, room, event_id, &reaction).await,
        };
    }
    Ok(())
}

/// Removes the bot's Slack reaction once no other Matrix user it stands for has that emoji
/// on the message.
async fn unreact(
    core: &Core,
    rt: &LoginRuntime,
    room: &RoomId,
    event_id: &EventId,
    reaction: &ReactionRow,
) -> Result<()> {
    let others = core
        .store
        .reactions_with(
            &reaction.team_id,
            &reaction.channel_id,
            &reaction.msg_ts,
            &reaction.emoji,
        )
        .await?;
    let still_wanted = others.iter().any(|o| {
        o.user_id.starts_with('@') && o.made_as.is_none() && o.event_id != reaction.event_id
    });
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
            UNREACT_DONE,
        )
        .await?;
    }
    core.store.delete_reaction(&reaction.event_id).await?;
    Ok(())
}

/// Removes a reaction made on Slack as `mxid`'s linked account, with their token. Gone from
/// the store first, so Slack's `reaction_removed` echo finds nothing to redact; back when the
/// call may be retried.
async fn unreact_as(
    core: &Core,
    rt: &LoginRuntime,
    room: &RoomId,
    event_id: &EventId,
    reaction: &ReactionRow,
    mxid: &UserId,
) -> Result<()> {
    core.store.delete_reaction(&reaction.event_id).await?;
    let team = &reaction.team_id;
    let Some(own) = user_login::client_of(core, &rt.slack, team, mxid).await? else {
        tracing::debug!(%event_id, %mxid, "the linked Slack account is gone; its reaction stays on slack");
        return Ok(());
    };
    let result = own
        .reactions_remove(&reaction.channel_id, &reaction.msg_ts, &reaction.emoji)
        .await;
    match &result {
        Err(e) if e.is_retryable() => {
            core.store.insert_reaction(reaction).await?;
        }
        Err(e) if e.is_auth_dead() => {
            user_login::token_refused(core, team, mxid, &e.to_string()).await;
        }
        _ => {}
    }
    settle(
        core,
        room,
        event_id,
        "reaction removal",
        result,
        UNREACT_DONE,
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
    // Recorded first, as made by their linked account when they have one: the Socket Mode
    // echo of a reaction made as them is then known.
    let linked = user_login::linked_account(core, &portal.team_id, &r.sender).await?;
    let reaction = ReactionRow {
        team_id: row.team_id.clone(),
        channel_id: row.channel_id.clone(),
        msg_ts: row.ts.clone(),
        user_id: r.sender.to_string(),
        emoji: name.to_owned(),
        event_id: event_id.to_owned(),
        room_id: room.to_owned(),
        made_as: linked.clone(),
    };
    core.store.insert_reaction(&reaction).await?;
    // As the sender's linked account, else one reaction of the bot for every Matrix user.
    let (channel, ts) = (&row.channel_id, &row.ts);
    let as_them = std::sync::atomic::AtomicBool::new(false);
    let result = user_login::as_user(
        core,
        &rt.slack,
        &portal.team_id,
        &r.sender,
        user_login::RELAY_INSTEAD,
        |c, them| {
            as_them.store(them, std::sync::atomic::Ordering::Relaxed);
            async move { c.reactions_add(channel, ts, name).await }
        },
    )
    .await?;
    if linked.is_some() && !as_them.load(std::sync::atomic::Ordering::Relaxed) {
        // Their account could not: the bot's reaction stands for them.
        core.store.set_reaction_made_as(event_id, None).await?;
    }
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
