//! Slack → Matrix changes to bridged messages: `message_changed` edits become `m.replace`
//! events from the same ghost, `message_deleted` (and a thread root's tombstone) redactions of
//! every Matrix event of the message. Anything else Slack reports as a change (an unfurl, a
//! thread's reply summary, pins and reactions) is not an edit.

use std::sync::Arc;

use ruma::events::room::message::ReplacementMetadata;

use super::{Target, matrix_ts, message_content, sender_of};
use crate::{
    bridge::{Core, LoginRuntime, Result, files},
    ids::{self, ChannelId, Ts},
    slack::types::Message,
    store::MessageRow,
};

pub(super) async fn on_changed(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    message: &Message,
    previous: Option<&Message>,
) -> Result<()> {
    // A thread root deleted while it has replies stays as a tombstone.
    if message.subtype.as_deref() == Some("tombstone") {
        return on_deleted(core, rt, channel, &message.ts).await;
    }
    let Some(edited) = message.edited.as_ref().filter(|e| !e.ts.is_empty()) else {
        tracing::debug!(%channel, ts = %message.ts, "message_changed without an edit (unfurl, thread summary, pin); nothing to bridge");
        return Ok(());
    };
    if previous
        .and_then(|p| p.edited.as_ref())
        .is_some_and(|p| p.ts == edited.ts)
    {
        tracing::debug!(%channel, ts = %message.ts, "message_changed without a new edit; nothing to bridge");
        return Ok(());
    }
    let rows = core
        .store
        .get_message(rt.team_id(), channel, &message.ts)
        .await?;
    let Some(first) = rows.first() else {
        tracing::debug!(%channel, ts = %message.ts, "edit of a message the bridge never bridged; ignored");
        return Ok(());
    };
    if first.is_deleted() {
        return Ok(());
    }
    if first
        .edit_ts
        .as_ref()
        .is_some_and(|t| t.key() >= edited.ts.key())
    {
        tracing::debug!(%channel, ts = %message.ts, edit = %edited.ts, "edit already bridged");
        return Ok(());
    }
    if core.is_expected_edit(rt.team_id(), channel, &message.ts, &message.text) {
        tracing::debug!(%channel, ts = %message.ts, "the echo of an edit from matrix");
        return core
            .store
            .set_message_edit_ts(rt.team_id(), channel, &message.ts, &edited.ts)
            .await
            .map_err(Into::into);
    }
    // An edit counts only from the original's sender: the ghost, or the double puppet (also
    // for a message from Matrix the Slack user posted as themselves; the bot's own edits are
    // echoes, dropped before).
    let sender = sender_of(message)?;
    let Some(target) =
        Target::as_sender_of(core, rt, &first.room_id, &sender, &first.event_id).await?
    else {
        tracing::debug!(%channel, ts = %message.ts, "slack edit of a message whose matrix sender this slack user cannot send as; not bridged");
        return Ok(());
    };
    let is_me = message.subtype.as_deref() == Some("me_message");
    let content = message_content(core, rt, message, is_me).await;
    let before = match previous {
        Some(p) => message_content(core, rt, p, is_me).await.mentions,
        None => None,
    };
    // Only the text parts: a caption edit leaves the files as they are.
    for row in rows.iter().filter(|r| r.part < i64::from(files::FILE_PART)) {
        let replaced = content.clone().make_replacement(ReplacementMetadata::new(
            row.event_id.clone(),
            before.clone(),
        ));
        let txn = format!("{}-edit-{}", txn_of(row), edited.ts);
        target
            .send(core, &txn, &replaced, matrix_ts(&edited.ts))
            .await?;
    }
    core.store
        .set_message_edit_ts(rt.team_id(), channel, &message.ts, &edited.ts)
        .await?;
    tracing::debug!(%channel, ts = %message.ts, edit = %edited.ts, "slack edit bridged");
    Ok(())
}

/// Redacts every Matrix event of a deleted Slack message, once: a message already deleted
/// (our own redaction's echo, a redelivery) changes nothing.
pub(super) async fn on_deleted(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    ts: &Ts,
) -> Result<()> {
    let rows = core.store.get_message(rt.team_id(), channel, ts).await?;
    if rows.is_empty() {
        tracing::debug!(%channel, %ts, "delete of a message the bridge never bridged; ignored");
    }
    for row in rows.iter().filter(|r| !r.is_deleted()) {
        redact(core, rt, row, "Deleted on Slack").await?;
    }
    core.store
        .mark_message_deleted(rt.team_id(), channel, ts)
        .await?;
    Ok(())
}

/// `file_deleted`: the file's events are redacted, wherever it was shared; the rest of their
/// messages stays. The same txn id makes a redelivery a no-op.
pub(super) async fn on_file_deleted(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    file_id: &str,
) -> Result<()> {
    let rows = core.store.get_file_parts(rt.team_id(), file_id).await?;
    if rows.is_empty() {
        tracing::debug!(file = %file_id, "delete of a file the bridge never bridged; ignored");
    }
    for row in rows.iter().filter(|r| !r.is_deleted()) {
        redact(core, rt, row, "File deleted on Slack").await?;
    }
    Ok(())
}

/// Redacts a bridged event as the ghost who sent it (the bot for posts from Matrix, which a
/// Slack admin deleted); the same txn id on a retry.
async fn redact(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    row: &MessageRow,
    reason: &str,
) -> Result<()> {
    let room = &row.room_id;
    let as_user = row
        .slack_sender()
        .and_then(|s| core.ghost_mxid(rt.team_id(), &s).ok());
    let txn = format!("{}-redact", txn_of(row));
    let event = &row.event_id;
    match core
        .matrix
        .redact(as_user.as_deref(), room, event, &txn, Some(reason))
        .await
    {
        Ok(_) => Ok(()),
        // The ghost left the room since: the bot (room admin) redacts instead.
        Err(e) if as_user.is_some() && e.errcode() == Some("M_FORBIDDEN") => {
            core.matrix
                .redact(None, room, event, &txn, Some(reason))
                .await?;
            Ok(())
        }
        Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn txn_of(row: &MessageRow) -> String {
    ids::message_txn_id(&row.team_id, &row.channel_id, &row.ts, row.part as u32)
}
