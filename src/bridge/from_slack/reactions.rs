//! Slack → Matrix reactions: `reaction_added` becomes an `m.annotation` from the reacting
//! user's ghost, keyed by the Unicode emoji (skin tones included); `reaction_removed` redacts
//! exactly that user's annotation.

use std::sync::Arc;

use serde_json::json;

use super::{Target, matrix_ts};
use crate::{
    bridge::{
        Core, LoginRuntime, Result,
        custom_emoji::{self, Resolved},
    },
    format::emoji,
    ids::{ChannelId, Ts},
    slack::events::ReactionEvent,
    store::ReactionRow,
};

/// The message a reaction is on, when it is a bridged message.
async fn target_message(
    core: &Core,
    rt: &LoginRuntime,
    r: &ReactionEvent,
) -> Result<Option<(ChannelId, Ts, crate::store::MessageRow)>> {
    let (Some(channel), Some(ts)) = (r.item.channel.as_ref(), r.item.ts.as_ref()) else {
        // Reactions on files and file comments have no message to land on.
        return Ok(None);
    };
    let rows = core.store.get_message(rt.team_id(), channel, ts).await?;
    let Some(first) = rows.into_iter().find(|m| !m.is_deleted()) else {
        tracing::debug!(%channel, %ts, reaction = %r.reaction, "reaction on a message the bridge never bridged; ignored");
        return Ok(None);
    };
    Ok(Some((channel.clone(), ts.clone(), first)))
}

/// The annotation key of a standard Slack reaction name (its emoji), or `:name:` for the
/// rest; custom emoji get their `mxc://` in [`on_added`].
fn reaction_key(name: &str) -> String {
    emoji::shortcode_to_unicode(name).map_or_else(|| format!(":{name}:"), str::to_owned)
}

/// A Matrix user's reaction that was made on Slack as the reacting account.
async fn made_as(
    core: &Core,
    team: &crate::ids::TeamId,
    channel: &ChannelId,
    ts: &Ts,
    r: &ReactionEvent,
) -> Result<Option<ReactionRow>> {
    let same = core
        .store
        .reactions_with(team, channel, ts, &r.reaction)
        .await?;
    Ok(same
        .into_iter()
        .find(|s| s.made_as.as_ref() == Some(&r.user)))
}

pub(super) async fn on_added(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    r: &ReactionEvent,
) -> Result<()> {
    let Some((channel, ts, message)) = target_message(core, rt, r).await? else {
        return Ok(());
    };
    let team = rt.team_id();
    // The echo of a reaction a Matrix user made as their linked account.
    if made_as(core, team, &channel, &ts, r).await?.is_some() {
        return Ok(());
    }
    let had = core
        .store
        .reactions_of(team, &channel, &ts, &r.user)
        .await?;
    // Bridged already (a redelivery): checked before resolving, which may call Slack.
    if had.iter().any(|h| h.emoji == r.reaction) {
        return Ok(());
    }
    let (key, shortcode) = match custom_emoji::resolve(core, rt, &r.reaction).await? {
        Resolved::Unicode(u) => (u.to_owned(), None),
        Resolved::Image { name, mxc } => (mxc, Some(format!(":{name}:"))),
        Resolved::Unknown => (reaction_key(&r.reaction), None),
    };
    // The same emoji under another name (`+1` and `thumbsup`): not every homeserver refuses
    // a second annotation with one key.
    if had.iter().any(|h| reaction_key(&h.emoji) == key) {
        return Ok(());
    }
    let target = Target::in_room(core, rt, &message.room_id, &r.user.clone().into()).await?;
    let event = &message.event_id;
    let mut content = json!({
        "m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key},
    });
    if let Some(code) = shortcode {
        // Clients show the image for an mxc key, and this name as its text.
        content["com.beeper.reaction.shortcode"] = json!(code);
    }
    let txn = format!(
        "slack-react-{team}-{channel}-{ts}-{}-{}",
        r.user, r.reaction
    );
    let sent = target
        .react(core, &txn, &content, matrix_ts(&r.event_ts))
        .await?;
    // None: the ghost already has this key (`+1` and `thumbsup` are one emoji).
    if let Some(event_id) = sent {
        core.store
            .insert_reaction(&ReactionRow {
                team_id: team.clone(),
                channel_id: channel.clone(),
                msg_ts: ts.clone(),
                user_id: r.user.to_string(),
                emoji: r.reaction.clone(),
                event_id: event_id.clone(),
                room_id: message.room_id.clone(),
                made_as: None,
            })
            .await?;
        tracing::debug!(%channel, %ts, reaction = %r.reaction, %event_id, "slack reaction bridged");
    }
    Ok(())
}

pub(super) async fn on_removed(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    r: &ReactionEvent,
) -> Result<()> {
    let (Some(channel), Some(ts)) = (r.item.channel.as_ref(), r.item.ts.as_ref()) else {
        return Ok(());
    };
    let Some(row) = core
        .store
        .get_reaction(rt.team_id(), channel, ts, &r.user, &r.reaction)
        .await?
    else {
        // One a Matrix user made as this Slack account, removed on Slack: its annotation goes
        // (the bot redacts it; the account's owner is not ours to act as).
        if let Some(mine) = made_as(core, rt.team_id(), channel, ts, r).await? {
            core.store.delete_reaction(&mine.event_id).await?;
            let txn = format!("slack-unreact-{}", mine.event_id);
            if let Err(e) = redact_as_bot(core, &mine, &txn).await {
                core.store.insert_reaction(&mine).await?;
                return Err(e);
            }
            return Ok(());
        }
        tracing::debug!(%channel, %ts, reaction = %r.reaction, "removal of a reaction the bridge never bridged; ignored");
        return Ok(());
    };
    let event = &row.event_id;
    let txn = format!("slack-unreact-{}", row.event_id);
    // Gone first: the redaction's echo (from a double puppet) then finds nothing to remove
    // on Slack. Back when the redaction fails, for the retry.
    core.store.delete_reaction(event).await?;
    let sender = r.user.clone().into();
    let redacted = match Target::as_sender_of(core, rt, &row.room_id, &sender, event).await {
        Ok(Some(target)) => target.redact(core, event, &txn).await,
        // Its sender is not ours to act as now: the bot (room admin) redacts.
        Ok(None) => redact_as_bot(core, &row, &txn).await,
        Err(e) => Err(e),
    };
    if let Err(e) = redacted {
        core.store.insert_reaction(&row).await?;
        return Err(e);
    }
    Ok(())
}

/// Redacts a reaction's annotation as the bot; one already gone is fine.
async fn redact_as_bot(core: &Core, row: &ReactionRow, txn: &str) -> Result<()> {
    match core
        .matrix
        .redact(None, &row.room_id, &row.event_id, txn, None)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
