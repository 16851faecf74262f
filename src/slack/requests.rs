//! What the Web API client's methods take and give back beyond the wire types of
//! [`super::types`]: the parameters of the calls that have many (chat.postMessage,
//! conversations.history, uploads) and the answers that are more than one wire object (a page
//! with its cursor, auth.test with its scopes). Plain data, no I/O.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::types::{AuthTest, Message};
use crate::{
    config::Secret,
    ids::{ChannelId, TeamId, Ts, UserId},
};

/// auth.test plus the scopes granted to the bot token (from `x-oauth-scopes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authed {
    pub info: AuthTest,
    pub scopes: BTreeSet<String>,
}

impl Authed {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The scopes of `wanted` that were not granted.
    pub fn missing_scopes<'a>(&self, wanted: &[&'a str]) -> Vec<&'a str> {
        wanted
            .iter()
            .copied()
            .filter(|s| !self.scopes.contains(*s))
            .collect()
    }
}

/// oauth.v2.access for a user-scope install: the user who approved and their token.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthAccess {
    pub authed_user: AuthedUser,
    pub team: OAuthTeam,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthedUser {
    pub id: UserId,
    /// Comma-separated.
    #[serde(default)]
    pub scope: String,
    /// Absent when the app asked for no user scopes.
    pub access_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OAuthTeam {
    pub id: TeamId,
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next_cursor: Option<String>,
}

/// conversations.history parameters.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub channel: ChannelId,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Only messages after this ts (or at it, with `inclusive`).
    pub oldest: Option<Ts>,
    /// Only messages before this ts (or at it, with `inclusive`).
    pub latest: Option<Ts>,
    pub inclusive: bool,
    /// Return each message's `metadata` (Slack leaves it out otherwise).
    pub include_all_metadata: bool,
}

/// A conversations.history page, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub messages: Vec<Message>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// chat.postMessage parameters. `username`/`icon_*` need chat:write.customize.
#[derive(Debug, Clone, Default)]
pub struct PostMessage {
    pub channel: ChannelId,
    /// mrkdwn; also the notification fallback when `blocks` are given.
    pub text: String,
    pub blocks: Option<Value>,
    /// The thread root's ts (not a reply's).
    pub thread_ts: Option<Ts>,
    pub reply_broadcast: bool,
    pub username: Option<String>,
    pub icon_url: Option<String>,
    pub icon_emoji: Option<String>,
    pub unfurl_links: Option<bool>,
    pub unfurl_media: Option<bool>,
    pub metadata: Option<Value>,
}

impl PostMessage {
    pub fn new(channel: impl Into<ChannelId>, text: impl Into<String>) -> PostMessage {
        PostMessage {
            channel: channel.into(),
            text: text.into(),
            ..Default::default()
        }
    }
}

/// chat.update parameters.
#[derive(Debug, Clone, Default)]
pub struct UpdateMessage {
    pub channel: ChannelId,
    pub ts: Ts,
    pub text: String,
    pub blocks: Option<Value>,
}

/// The answer of chat.postMessage / chat.update.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Posted {
    pub channel: ChannelId,
    pub ts: Ts,
    pub message: Option<Message>,
}

/// files.getUploadURLExternal's answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UploadUrl {
    pub upload_url: String,
    pub file_id: String,
}

/// One entry of files.completeUploadExternal's `files`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileUpload {
    pub id: String,
    pub title: Option<String>,
}

/// Everything for a whole upload: the bytes and where to share them.
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    pub filename: String,
    pub title: Option<String>,
    pub bytes: Vec<u8>,
    /// Without a channel the file stays private to the bot.
    pub channel_id: Option<ChannelId>,
    pub thread_ts: Option<Ts>,
    pub initial_comment: Option<String>,
}
