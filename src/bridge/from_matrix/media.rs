//! Matrix → Slack files: an `m.image`, `m.file`, `m.video`, `m.audio` or `m.sticker` is
//! downloaded from the homeserver (authenticated media, as the appservice) and streamed into
//! Slack's external upload (`files.getUploadURLExternal` → the bytes →
//! `files.completeUploadExternal` with the channel, the thread and the caption as
//! `initial_comment`), never held whole in memory.
//!
//! Exactly once: the Slack file id is recorded before the bytes are sent. When an earlier
//! attempt's outcome is unknown, `files.info` on that id tells whether it was completed (then
//! nothing is uploaded again); an upload that was never completed is abandoned and started
//! afresh. The share's ts arrives with its Socket Mode echo ([`on_echo`]), which maps the
//! Slack message to the Matrix event for later deletes.

use std::sync::Arc;

use ruma::{
    EventId, OwnedMxcUri, RoomId, UserId,
    events::{
        room::{MediaSource, message::MessageType},
        sticker::{StickerEventContent, StickerMediaSource},
    },
};

use super::{LoginRuntime, Portal, notice};
use crate::{
    bridge::{BridgeError, Core, Result, user_login},
    ids::{ChannelId, TeamId, Ts},
    slack::{
        requests::FileUpload,
        types::Message,
        web::{SlackClient, SlackError},
    },
    store::{MessageRow, Outgoing},
};

/// Slack's largest file.
const SLACK_MAX_FILE: u64 = 1024 * 1024 * 1024;

/// A Matrix file on its way to Slack.
pub(super) struct Media {
    pub mxc: OwnedMxcUri,
    /// The file name Slack shows.
    pub name: String,
    /// The size the event claims: a file Slack would refuse is not even downloaded.
    pub size: Option<u64>,
    /// The caption (a body that differs from the file name), in mrkdwn.
    pub caption: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn to_slack(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    portal: &Portal,
    room: &RoomId,
    sender: &UserId,
    display_name: &str,
    event_id: &EventId,
    media: Media,
    thread_ts: Option<&Ts>,
) -> Result<()> {
    let notice_txn = format!("notice-{event_id}");
    tracing::debug!(%event_id, name = %media.name, mxc = %media.mxc, "matrix file to slack");
    match core
        .store
        .begin_outgoing(event_id, room, &portal.team_id, &portal.channel_id)
        .await?
    {
        Outgoing::Sent(_) | Outgoing::Failed => return Ok(()),
        Outgoing::New => {}
        Outgoing::Pending => {
            if let Some(file) = core.store.outgoing_file(event_id).await? {
                // Asked as the bot (a linked user's token may lack files:read): a file that
                // was shared here, by whichever account, is one it can see.
                match rt.slack.files_info(&file).await {
                    Ok(_) => {
                        tracing::info!(%event_id, %file, "the earlier upload was completed; not uploading again");
                        return core
                            .store
                            .mark_outgoing_uploaded(event_id)
                            .await
                            .map_err(Into::into);
                    }
                    Err(e) if e.is_retryable() => return Err(e.into()),
                    // Never completed: abandoned; a fresh upload follows.
                    Err(e) => {
                        tracing::info!(%event_id, %file, error = %e, "the earlier upload was not completed; uploading again")
                    }
                }
            }
        }
    }
    let fail = async |reason: String| -> Result<()> {
        tracing::warn!(%event_id, file = %media.name, %reason, "a matrix file was not sent to slack");
        core.store.fail_outgoing(event_id, &reason).await?;
        notice(
            core,
            room,
            &notice_txn,
            &format!("Your file {} was not sent to Slack: {reason}", media.name),
        )
        .await;
        Ok(())
    };
    if media.size.is_some_and(|s| s > SLACK_MAX_FILE) {
        return fail(format!(
            "it is larger than Slack accepts (at most {SLACK_MAX_FILE} bytes)"
        ))
        .await;
    }
    let up = Upload {
        core,
        portal,
        event_id,
        sender,
        media: &media,
        thread_ts,
    };
    // As the sender's linked account (the file is theirs on Slack, with the caption alone);
    // else, or where their account may not share, by the bot with their name.
    if let Some(own) = user_login::client_of(core, &rt.slack, &portal.team_id, sender).await? {
        match up.run(&own, media.caption.clone()).await? {
            Ok(()) => return Ok(()),
            Err(Refusal::Slack(e)) if e.is_auth_dead() => {
                user_login::token_refused(core, &portal.team_id, sender, &e.to_string()).await;
            }
            Err(Refusal::Slack(e))
                if e.code()
                    .is_some_and(|c| user_login::RELAY_INSTEAD.contains(&c)) =>
            {
                tracing::debug!(%event_id, error = %e, "the linked Slack account cannot share here; relaying the file");
            }
            Err(refusal) => return fail(refusal.to_string()).await,
        }
    }
    let comment = relay_comment(display_name, media.caption.as_deref());
    match up.run(&rt.slack, Some(comment)).await? {
        Ok(()) => Ok(()),
        Err(refusal) => fail(refusal.to_string()).await,
    }
}

/// Why a file was not shared: Slack's answer, or the file itself.
enum Refusal {
    Slack(SlackError),
    File(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Slack(e) => e.fmt(f),
            Refusal::File(reason) => f.write_str(reason),
        }
    }
}

/// One upload of a Matrix file into a Slack conversation.
struct Upload<'a> {
    core: &'a Core,
    portal: &'a Portal,
    event_id: &'a EventId,
    sender: &'a UserId,
    media: &'a Media,
    thread_ts: Option<&'a Ts>,
}

impl Upload<'_> {
    /// Downloads the file from the homeserver and shares it with `slack`'s account, with
    /// `comment`. Err: what may pass (retried); Ok(Err): refused.
    async fn run(
        &self,
        slack: &SlackClient,
        comment: Option<String>,
    ) -> Result<std::result::Result<(), Refusal>> {
        let Upload {
            core,
            portal,
            event_id,
            sender,
            media,
            thread_ts,
        } = self;
        let too_large = |len: Option<u64>| {
            Ok(Err(Refusal::File(match len {
                Some(len) => format!(
                    "it is larger than Slack accepts ({len} bytes, at most {SLACK_MAX_FILE})"
                ),
                None => format!("it is larger than Slack accepts (at most {SLACK_MAX_FILE} bytes)"),
            })))
        };
        let download = match core.matrix.download_stream(&media.mxc).await {
            Ok(r) => r,
            Err(e) => {
                let e = BridgeError::from(e);
                if e.is_retryable() {
                    return Err(e);
                }
                return Ok(Err(Refusal::File(format!(
                    "the homeserver did not give the file: {e}"
                ))));
            }
        };
        // Slack wants the length first; a download without one goes through a temporary file.
        let (body, len) = match download.content_length() {
            Some(len) => (reqwest::Body::wrap_stream(download.bytes_stream()), len),
            None => match spool(download).await {
                Ok((file, len)) => (
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file)),
                    len,
                ),
                Err(Spool::TooLarge) => return too_large(None),
                Err(Spool::Failed(e)) => {
                    return Err(BridgeError::Other(format!(
                        "downloading the file from the homeserver: {e}"
                    )));
                }
            },
        };
        if len > SLACK_MAX_FILE {
            return too_large(Some(len));
        }
        let refused = |e: SlackError| -> Result<std::result::Result<(), Refusal>> {
            if e.is_retryable() {
                Err(e.into())
            } else {
                Ok(Err(Refusal::Slack(e)))
            }
        };
        let target = match slack.files_get_upload_url_external(&media.name, len).await {
            Ok(t) => t,
            Err(e) => return refused(e),
        };
        core.store
            .set_outgoing_file(event_id, &target.file_id, sender)
            .await?;
        if let Err(e) = slack
            .upload_stream_to_url(&target.upload_url, body, len)
            .await
        {
            return refused(e);
        }
        let done = slack
            .files_complete_upload_external(
                &[FileUpload {
                    id: target.file_id.clone(),
                    title: Some(media.name.clone()),
                }],
                Some(&portal.channel_id),
                *thread_ts,
                comment.as_deref(),
            )
            .await;
        match done {
            Ok(_) => {
                core.store.mark_outgoing_uploaded(event_id).await?;
                tracing::debug!(%event_id, file = %target.file_id, channel = %portal.channel_id, "matrix file uploaded to slack");
                Ok(Ok(()))
            }
            Err(e) => refused(e),
        }
    }
}

enum Spool {
    TooLarge,
    Failed(String),
}

/// Writes a download into an anonymous temporary file (gone with the process, whatever
/// happens), for its length; returns the file rewound.
async fn spool(download: reqwest::Response) -> std::result::Result<(tokio::fs::File, u64), Spool> {
    use futures_util::StreamExt;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let failed = |e: &dyn std::fmt::Display| Spool::Failed(e.to_string());
    let file = tempfile::tempfile().map_err(|e| failed(&e))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = download.bytes_stream();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| failed(&e))?;
        len += chunk.len() as u64;
        if len > SLACK_MAX_FILE {
            return Err(Spool::TooLarge);
        }
        file.write_all(&chunk).await.map_err(|e| failed(&e))?;
    }
    file.flush().await.map_err(|e| failed(&e))?;
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| failed(&e))?;
    Ok((file, len))
}

/// The comment that goes with a relayed file: who sent it, and the caption.
pub(super) fn relay_comment(display_name: &str, caption: Option<&str>) -> String {
    match caption {
        Some(c) if !c.trim().is_empty() => format!("*{display_name}*: {c}"),
        _ => format!("*{display_name}* sent a file"),
    }
}

/// The Socket Mode echo of a share the bridge made: the Slack message of each uploaded file
/// is recorded for its Matrix event, so a Matrix redaction deletes it on Slack.
pub async fn on_echo(
    core: &Core,
    team_id: &TeamId,
    channel: &ChannelId,
    msg: &Message,
) -> Result<()> {
    for file in &msg.files {
        let Some(up) = core.store.outgoing_by_file(team_id, &file.id).await? else {
            continue;
        };
        if up.slack_ts.is_some() || up.channel_id != channel {
            continue;
        }
        core.store.finish_outgoing(&up.event_id, &msg.ts).await?;
        core.store
            .insert_message(&MessageRow {
                team_id: team_id.to_owned(),
                channel_id: channel.to_owned(),
                ts: msg.ts.clone(),
                part: 0,
                event_id: up.event_id.clone(),
                room_id: up.room_id.clone(),
                thread_ts: msg.thread_ts.clone(),
                sender: up.sender.to_string(),
                file_id: Some(file.id.clone()),
                edit_ts: None,
                deleted: 0,
            })
            .await?;
        tracing::debug!(event_id = %up.event_id, ts = %msg.ts, file = %file.id, "slack share of a matrix file recorded");
    }
    Ok(())
}

/// Whether a Slack message is the share of Matrix files by a linked user's account: every
/// file in it is one the bridge uploaded (recorded before its bytes were sent) as that
/// user, into this conversation, and not yet seen shared. (A later share of the same file
/// elsewhere, or by someone else, is a Slack message like any other.)
pub async fn is_echo(
    core: &Core,
    team_id: &TeamId,
    channel: &ChannelId,
    msg: &Message,
) -> Result<bool> {
    let Some(poster) = msg.user.as_ref() else {
        return Ok(false);
    };
    if msg.files.is_empty() {
        return Ok(false);
    }
    for file in &msg.files {
        let Some(up) = core.store.outgoing_by_file(team_id, &file.id).await? else {
            return Ok(false);
        };
        let by_them = user_login::linked_account(core, team_id, &up.sender)
            .await?
            .as_ref()
            == Some(poster);
        if up.slack_ts.is_some() || up.channel_id != *channel || !by_them {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The file of a media msgtype (not encrypted ones: the bridge is in no encrypted room).
pub(super) fn of_msgtype(msgtype: &MessageType) -> Option<Media> {
    let (body, filename, source, size) = match msgtype {
        MessageType::Image(c) => (
            &c.body,
            &c.filename,
            &c.source,
            c.info.as_ref().and_then(|i| i.size),
        ),
        MessageType::File(c) => (
            &c.body,
            &c.filename,
            &c.source,
            c.info.as_ref().and_then(|i| i.size),
        ),
        MessageType::Audio(c) => (
            &c.body,
            &c.filename,
            &c.source,
            c.info.as_ref().and_then(|i| i.size),
        ),
        MessageType::Video(c) => (
            &c.body,
            &c.filename,
            &c.source,
            c.info.as_ref().and_then(|i| i.size),
        ),
        _ => return None,
    };
    let MediaSource::Plain(mxc) = source else {
        return None;
    };
    let name = filename
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| body.clone());
    let caption = filename
        .as_ref()
        .filter(|f| *f != body && !body.is_empty())
        .map(|_| body.clone());
    Some(Media {
        mxc: mxc.clone(),
        name,
        size: size.map(u64::from),
        caption,
    })
}

/// A sticker, sent as an image named after its description.
pub(super) fn of_sticker(s: &StickerEventContent) -> Option<Media> {
    let StickerMediaSource::Plain(mxc) = &s.source else {
        return None;
    };
    let ext = match s.info.mimetype.as_deref() {
        Some("image/gif") => "gif",
        Some("image/webp") => "webp",
        Some("image/jpeg") => "jpg",
        _ => "png",
    };
    let stem = if s.body.trim().is_empty() {
        "sticker"
    } else {
        s.body.trim()
    };
    Some(Media {
        mxc: mxc.clone(),
        name: format!("{stem}.{ext}"),
        size: s.info.size.map(u64::from),
        caption: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_files_name_their_sender() {
        assert_eq!(relay_comment("Ann", Some("look")), "*Ann*: look");
        assert_eq!(relay_comment("Ann", None), "*Ann* sent a file");
        assert_eq!(relay_comment("Ann", Some("  ")), "*Ann* sent a file");
    }
}
