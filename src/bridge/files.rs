//! Files, Slack → Matrix: each file of a message becomes a Matrix event of its own
//! (`m.image`, `m.video`, `m.audio` or `m.file` by mimetype) with its `info` and a thumbnail,
//! the bytes streamed from Slack's download straight into the homeserver's upload, never held
//! whole in memory. A file that cannot be carried (external, deleted, too large for the
//! homeserver, unreadable without `files:read`) becomes a notice that names it and says why.
//! Errors returned are the ones worth retrying (an outage on either side); the message's
//! queue retries them.

use std::{sync::Arc, time::Duration};

use ruma::{
    OwnedMxcUri, UInt, UserId,
    events::room::{
        MediaSource, ThumbnailInfo,
        message::{
            AudioInfo, AudioMessageEventContent, FileInfo, FileMessageEventContent, MessageType,
            RoomMessageEventContent, VideoInfo, VideoMessageEventContent,
        },
    },
};

use super::{Core, LoginRuntime, Result};
use crate::slack::types::File;

/// The message part of a message's first file; file `i` is part `FILE_PART + i`. Parts below
/// are the text (0) and its broadcast copy (1).
pub const FILE_PART: u32 = 16;

/// The homeserver's limit when it names none.
const DEFAULT_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

/// The Matrix content for one Slack file, uploaded as `ghost`.
pub(super) async fn to_matrix(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    file: &File,
    ghost: &UserId,
) -> Result<RoomMessageEventContent> {
    let file = match complete(rt, file).await? {
        Ok(f) => f,
        Err(notice) => return Ok(notice),
    };
    let name = file.display_name().to_owned();
    match file.mode.as_deref() {
        Some("tombstone") => return Ok(notice(format!("{name}: the file was deleted on Slack"))),
        Some("hidden_by_limit") => {
            return Ok(notice(format!(
                "{name}: Slack hides this file (the workspace's plan limits its history)"
            )));
        }
        _ => {}
    }
    if file.is_external || file.mode.as_deref() == Some("external") {
        let url = file
            .external_url
            .as_deref()
            .or(file.permalink.as_deref())
            .or(file.url_private.as_deref())
            .unwrap_or_default();
        return Ok(link_line(&name, url, "shared from outside Slack"));
    }
    let Some(url) = file.download_url() else {
        return Ok(notice(format!(
            "{name}: Slack gave no way to download this file"
        )));
    };
    let limit = core
        .matrix
        .upload_limit_cached()
        .await
        .unwrap_or(DEFAULT_UPLOAD_LIMIT);
    if file.size > limit {
        let link = file.permalink.as_deref().unwrap_or(url);
        return Ok(link_line(
            &name,
            link,
            &format!(
                "{} is larger than the homeserver accepts ({}); open it on Slack",
                human_size(file.size),
                human_size(limit)
            ),
        ));
    }
    let mimetype = mimetype_of(&file);
    let mxc = match transfer(core, rt, url, &mimetype, &name, file.size, ghost).await {
        Ok(mxc) => mxc,
        Err(e) if !e.is_retryable() => {
            tracing::warn!(file = %file.id, error = %e, "a slack file could not be bridged");
            return Ok(notice(format!(
                "{name}: the file could not be bridged: {e}"
            )));
        }
        Err(e) => return Err(e),
    };
    let thumbnail = thumbnail(core, rt, &file, ghost).await;
    let size = UInt::new(file.size).filter(|_| file.size > 0);
    let px = |v: Option<u32>| v.map(UInt::from);
    let duration = file.duration_ms.map(Duration::from_millis);
    let msgtype = match mimetype.split('/').next().unwrap_or_default() {
        "image" => {
            let mut info = ruma::events::room::ImageInfo::new();
            info.mimetype = Some(mimetype.clone());
            info.size = size;
            info.width = px(file.original_w);
            info.height = px(file.original_h);
            if let Some((source, t)) = thumbnail {
                info.thumbnail_source = Some(source);
                info.thumbnail_info = Some(Box::new(t));
            }
            let mut c =
                ruma::events::room::message::ImageMessageEventContent::plain(name.clone(), mxc)
                    .info(Box::new(info));
            c.filename = Some(file.name.clone()).filter(|n| !n.is_empty());
            MessageType::Image(c)
        }
        "video" => {
            let mut info = VideoInfo::new();
            info.mimetype = Some(mimetype.clone());
            info.size = size;
            info.duration = duration;
            info.width = px(file.original_w.or(file.thumb_video_w));
            info.height = px(file.original_h.or(file.thumb_video_h));
            if let Some((source, t)) = thumbnail {
                info.thumbnail_source = Some(source);
                info.thumbnail_info = Some(Box::new(t));
            }
            let mut c = VideoMessageEventContent::plain(name.clone(), mxc).info(Box::new(info));
            c.filename = Some(file.name.clone()).filter(|n| !n.is_empty());
            MessageType::Video(c)
        }
        "audio" => {
            let mut info = AudioInfo::new();
            info.mimetype = Some(mimetype.clone());
            info.size = size;
            info.duration = duration;
            let mut c = AudioMessageEventContent::plain(name.clone(), mxc).info(Box::new(info));
            c.filename = Some(file.name.clone()).filter(|n| !n.is_empty());
            MessageType::Audio(c)
        }
        _ => {
            let mut info = FileInfo::new();
            info.mimetype = Some(mimetype.clone());
            info.size = size;
            let mut c = FileMessageEventContent::plain(name.clone(), mxc).info(Box::new(info));
            c.filename = Some(file.name.clone()).filter(|n| !n.is_empty());
            MessageType::File(c)
        }
    };
    Ok(RoomMessageEventContent::new(msgtype))
}

/// The whole file object: files Slack only lists (`file_access: check_file_info`, Slack
/// Connect) or sends as a bare id are fetched through `files.info`. `Err(notice)` when Slack
/// no longer has it.
async fn complete(
    rt: &LoginRuntime,
    file: &File,
) -> Result<std::result::Result<File, RoomMessageEventContent>> {
    let bare = file.mode.is_none() && file.url_private.is_none() && file.name.is_empty();
    if file.file_access.as_deref() != Some("check_file_info") && !bare {
        return Ok(Ok(file.clone()));
    }
    match rt.slack.files_info(&file.id).await {
        Ok(f) => Ok(Ok(f)),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            let name = file.display_name();
            let name = if name == "file" {
                file.id.as_str()
            } else {
                name
            };
            Ok(Err(notice(format!(
                "{name}: Slack did not give the file to the bridge: {e}"
            ))))
        }
    }
}

/// Streams a Slack download into a homeserver upload.
async fn transfer(
    core: &Core,
    rt: &LoginRuntime,
    url: &str,
    mimetype: &str,
    name: &str,
    size: u64,
    ghost: &UserId,
) -> Result<OwnedMxcUri> {
    let resp = rt.slack.download_response(url, Some(mimetype)).await?;
    let len = resp.content_length().unwrap_or(size);
    let body = reqwest::Body::wrap_stream(resp.bytes_stream());
    Ok(core
        .matrix
        .upload_stream(Some(ghost), body, len, mimetype, Some(name))
        .await?)
}

/// The thumbnail Slack made, uploaded; none when there is none or it fails (the file itself
/// still arrives).
async fn thumbnail(
    core: &Core,
    rt: &LoginRuntime,
    file: &File,
    ghost: &UserId,
) -> Option<(MediaSource, ThumbnailInfo)> {
    let (url, w, h) = file.thumbnail()?;
    let bytes = match rt.slack.download_file(url).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(file = %file.id, error = %e, "no thumbnail");
            return None;
        }
    };
    let mimetype = super::ghost::image_mime(url).to_owned();
    let len = bytes.len() as u64;
    let mxc = match core
        .matrix
        .upload(Some(ghost), bytes, &mimetype, None)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(file = %file.id, error = %e, "thumbnail upload failed");
            return None;
        }
    };
    let mut info = ThumbnailInfo::new();
    info.mimetype = Some(mimetype);
    info.size = UInt::new(len);
    info.width = w.map(UInt::from);
    info.height = h.map(UInt::from);
    Some((MediaSource::Plain(mxc), info))
}

/// The mimetype to upload under: Slack's, else one guessed from the name.
fn mimetype_of(file: &File) -> String {
    if !file.mimetype.is_empty() {
        return file.mimetype.clone();
    }
    let ext = file
        .name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "m4a" => "audio/mp4",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        _ => "application/octet-stream",
    }
    .to_owned()
}

fn notice(text: String) -> RoomMessageEventContent {
    RoomMessageEventContent::notice_plain(text)
}

/// A notice linking to where the file is: `name` (linked), then why it is not here.
fn link_line(name: &str, url: &str, why: &str) -> RoomMessageEventContent {
    if url.is_empty() {
        return notice(format!("{name}: {why}"));
    }
    let esc = |s: &str| crate::format::escape_html(s);
    RoomMessageEventContent::notice_html(
        format!("{name} ({url}): {why}"),
        format!("<a href=\"{}\">{}</a>: {}", esc(url), esc(name), esc(why)),
    )
}

/// "1.5 MB"-style sizes for notices.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(human_size(200 * 1024 * 1024), "209.7 MB");
    }

    #[test]
    fn the_mimetype_comes_from_slack_else_from_the_name() {
        let f = |name: &str, mime: &str| File {
            name: name.into(),
            mimetype: mime.into(),
            ..File::default()
        };
        assert_eq!(mimetype_of(&f("a.bin", "image/png")), "image/png");
        assert_eq!(mimetype_of(&f("clip.MP4", "")), "video/mp4");
        assert_eq!(mimetype_of(&f("x", "")), "application/octet-stream");
    }
}
