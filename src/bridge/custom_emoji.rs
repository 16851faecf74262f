//! A workspace's custom emoji in Matrix: the image (aliases followed) uploaded once and
//! remembered by name and by `mxc://`, so a Slack reaction with `:partyparrot:` becomes an
//! annotation Element shows as the image, and that annotation from Matrix becomes
//! `partyparrot` again.

use std::sync::Arc;

use super::{Core, LoginRuntime, Result};
use crate::{format::emoji, ids::TeamId, store::CustomEmoji};

/// How many `alias:` hops are followed before giving up (Slack allows one; be lenient).
const MAX_ALIASES: usize = 4;

/// What a Slack reaction name stands for.
pub enum Resolved {
    /// A standard emoji (directly, or a custom alias of one).
    Unicode(&'static str),
    /// A custom emoji uploaded to Matrix.
    Image { name: String, mxc: String },
    /// Unknown to the workspace, or its image could not be fetched.
    Unknown,
}

/// Resolves a reaction name: standard emoji first, then the workspace's custom emoji (one
/// `emoji.list` when the name is not known yet).
pub async fn resolve(core: &Arc<Core>, rt: &LoginRuntime, name: &str) -> Result<Resolved> {
    if let Some(u) = emoji::shortcode_to_unicode(name) {
        return Ok(Resolved::Unicode(u));
    }
    let team = rt.team_id();
    if let Some(known) = core.store.get_custom_emoji(team, name).await? {
        return Ok(Resolved::Image {
            name: known.name,
            mxc: known.mxc,
        });
    }
    let list = rt.slack.emoji_list().await?;
    let mut current = name.to_owned();
    let mut url = None;
    for _ in 0..=MAX_ALIASES {
        match list.get(&current).map(String::as_str) {
            Some(v) if v.starts_with("alias:") => {
                current = v.trim_start_matches("alias:").to_owned();
                if let Some(u) = emoji::shortcode_to_unicode(&current) {
                    return Ok(Resolved::Unicode(u));
                }
            }
            Some(v) => {
                url = Some(v.to_owned());
                break;
            }
            None => break,
        }
    }
    let Some(url) = url else {
        tracing::debug!(%team, %name, "not a custom emoji of the workspace");
        return Ok(Resolved::Unknown);
    };
    // The image under its own name: aliases share the upload.
    // Stored under its own name only, so its mxc maps back to one name; an alias is
    // resolved through emoji.list each time.
    if let Some(known) = core.store.get_custom_emoji(team, &current).await?
        && known.source == url
    {
        return Ok(Resolved::Image {
            name: current,
            mxc: known.mxc,
        });
    }
    let bytes = match rt.slack.download_file(&url).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%team, %name, error = %e, "cannot download a custom emoji");
            return Ok(Resolved::Unknown);
        }
    };
    let mxc = core
        .matrix
        .upload(None, bytes, super::ghost::image_mime(&url), Some(&current))
        .await?
        .to_string();
    remember(core, team, &current, &url, &mxc).await?;
    Ok(Resolved::Image { name: current, mxc })
}

async fn remember(core: &Core, team: &TeamId, name: &str, url: &str, mxc: &str) -> Result<()> {
    core.store
        .upsert_custom_emoji(&CustomEmoji {
            team_id: team.to_owned(),
            name: name.to_owned(),
            source: url.to_owned(),
            mxc: mxc.to_owned(),
        })
        .await?;
    Ok(())
}

/// The Slack name of a custom emoji's `mxc://`, when the bridge uploaded it.
pub async fn name_of(core: &Core, team: &TeamId, mxc: &str) -> Result<Option<String>> {
    Ok(core
        .store
        .get_custom_emoji_by_mxc(team, mxc)
        .await?
        .map(|e| e.name))
}
