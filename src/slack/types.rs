//! Slack wire types of the Web API (slack-protocol.md §5): plain serde structs that do no I/O
//! and tolerate whatever Slack adds, omits or nulls out.
//!
//! Every struct defaults missing fields, and fields Slack is known to send as `null` read
//! `null` as the default, so a new or odd field never fails a whole response or event.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::ids::{BotId, ChannelId, TeamId, Ts, UserId};

/// Reads `null` as the type's default; Slack nulls fields it normally fills (`enterprise_id`,
/// `profile.fields`, `text` on some file shares).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `auth.test` for a bot token. `app_id` is not always present (the emulator and older
/// workspaces omit it); `bots.info` on `bot_id` supplies it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthTest {
    #[serde(deserialize_with = "null_default")]
    pub url: String,
    #[serde(deserialize_with = "null_default")]
    pub team: String,
    #[serde(deserialize_with = "null_default")]
    pub team_id: TeamId,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    #[serde(deserialize_with = "null_default")]
    pub user_id: UserId,
    pub bot_id: Option<BotId>,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    pub enterprise_id: Option<TeamId>,
    #[serde(deserialize_with = "null_default")]
    pub is_enterprise_install: bool,
}

/// `team.info`'s team.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Team {
    #[serde(deserialize_with = "null_default")]
    pub id: TeamId,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub domain: String,
    pub email_domain: Option<String>,
    pub url: Option<String>,
    pub enterprise_id: Option<TeamId>,
    pub icon: TeamIcon,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TeamIcon {
    pub image_34: Option<String>,
    pub image_44: Option<String>,
    pub image_68: Option<String>,
    pub image_88: Option<String>,
    pub image_102: Option<String>,
    pub image_132: Option<String>,
    pub image_230: Option<String>,
    pub image_original: Option<String>,
    /// True when the team never set an icon and Slack serves its generated default.
    #[serde(deserialize_with = "null_default")]
    pub image_default: bool,
}

impl TeamIcon {
    /// The largest icon offered.
    pub fn best(&self) -> Option<&str> {
        [
            &self.image_original,
            &self.image_230,
            &self.image_132,
            &self.image_102,
            &self.image_88,
            &self.image_68,
            &self.image_44,
            &self.image_34,
        ]
        .into_iter()
        .find_map(|s| s.as_deref().filter(|s| !s.is_empty()))
    }
}

/// The four conversation types of the Conversations API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A public channel.
    Channel,
    /// A private channel (a "group" in older APIs).
    Private,
    /// A direct message between two people (or a person and the bot).
    Im,
    /// A group DM.
    Mpim,
}

impl ConversationKind {
    pub const ALL: [ConversationKind; 4] = [
        ConversationKind::Channel,
        ConversationKind::Private,
        ConversationKind::Im,
        ConversationKind::Mpim,
    ];

    /// The `types=` token of conversations.list.
    pub fn list_type(self) -> &'static str {
        match self {
            ConversationKind::Channel => "public_channel",
            ConversationKind::Private => "private_channel",
            ConversationKind::Im => "im",
            ConversationKind::Mpim => "mpim",
        }
    }

    /// From `channel_type` of a message event (`channel`, `group`, `im`, `mpim`) or of a
    /// member event (`C`, `G`). `G` can also be a group DM; callers that care ask
    /// conversations.info.
    pub fn from_channel_type(s: &str) -> Option<ConversationKind> {
        Some(match s {
            "channel" | "C" => ConversationKind::Channel,
            "group" | "G" => ConversationKind::Private,
            "im" | "D" => ConversationKind::Im,
            "mpim" => ConversationKind::Mpim,
            _ => return None,
        })
    }
}

/// A topic or purpose.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Topic {
    #[serde(deserialize_with = "null_default")]
    pub value: String,
    #[serde(deserialize_with = "null_default")]
    pub creator: UserId,
    #[serde(deserialize_with = "null_default")]
    pub last_set: i64,
}

/// A conversation object of conversations.list / info / join, and the thinner channel object
/// of channel_created / channel_rename events.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Conversation {
    #[serde(deserialize_with = "null_default")]
    pub id: ChannelId,
    /// Empty for IMs.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub name_normalized: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub is_channel: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_group: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_im: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_mpim: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_private: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_archived: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_general: bool,
    /// Whether the bot is a member; absent on IMs, where the bot always is.
    pub is_member: Option<bool>,
    #[serde(deserialize_with = "null_default")]
    pub is_shared: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_ext_shared: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_org_shared: bool,
    /// The other person of an IM.
    pub user: Option<UserId>,
    pub is_user_deleted: Option<bool>,
    pub creator: Option<UserId>,
    #[serde(deserialize_with = "null_default")]
    pub created: i64,
    /// Milliseconds since the epoch.
    #[serde(deserialize_with = "null_default")]
    pub updated: i64,
    #[serde(deserialize_with = "null_default")]
    pub topic: Topic,
    #[serde(deserialize_with = "null_default")]
    pub purpose: Topic,
    #[serde(deserialize_with = "null_default")]
    pub previous_names: Vec<String>,
    pub num_members: Option<u64>,
    pub context_team_id: Option<TeamId>,
}

impl Conversation {
    /// The conversation type. IM and group-DM flags win over `is_private`, which Slack also
    /// sets on them.
    pub fn kind(&self) -> ConversationKind {
        if self.is_im || (self.id.starts_with('D') && self.user.is_some()) {
            ConversationKind::Im
        } else if self.is_mpim {
            ConversationKind::Mpim
        } else if self.is_private || self.is_group {
            ConversationKind::Private
        } else {
            ConversationKind::Channel
        }
    }

    /// Whether the bot is in the conversation (IMs omit the flag because it always is).
    pub fn bot_is_member(&self) -> bool {
        self.is_member
            .unwrap_or(self.kind() == ConversationKind::Im)
    }
}

/// A user object of users.info / users.list / user_change / team_join.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "null_default")]
    pub id: UserId,
    #[serde(deserialize_with = "null_default")]
    pub team_id: TeamId,
    /// The handle (`spengler`); legacy but still sent.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub real_name: String,
    #[serde(deserialize_with = "null_default")]
    pub deleted: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_bot: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_app_user: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_admin: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_restricted: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_ultra_restricted: bool,
    pub color: Option<String>,
    pub tz: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub profile: Profile,
    /// Seconds since the epoch of the last profile change.
    #[serde(deserialize_with = "null_default")]
    pub updated: i64,
}

impl User {
    /// The name people see: display name, else real name, else the handle.
    pub fn display_name(&self) -> &str {
        [
            self.profile.display_name.as_str(),
            self.profile.real_name.as_str(),
            self.real_name.as_str(),
            self.name.as_str(),
        ]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .unwrap_or(self.id.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Profile {
    #[serde(deserialize_with = "null_default")]
    pub display_name: String,
    #[serde(deserialize_with = "null_default")]
    pub display_name_normalized: String,
    #[serde(deserialize_with = "null_default")]
    pub real_name: String,
    #[serde(deserialize_with = "null_default")]
    pub real_name_normalized: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    /// Needs users:read.email.
    pub email: Option<String>,
    pub status_text: Option<String>,
    pub status_emoji: Option<String>,
    /// Changes whenever the avatar changes; a cheap key for "avatar unchanged".
    pub avatar_hash: Option<String>,
    pub image_24: Option<String>,
    pub image_32: Option<String>,
    pub image_48: Option<String>,
    pub image_72: Option<String>,
    pub image_192: Option<String>,
    pub image_512: Option<String>,
    pub image_1024: Option<String>,
    pub image_original: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub is_custom_image: bool,
    /// Set on bot users.
    pub bot_id: Option<BotId>,
    pub api_app_id: Option<String>,
    pub team: Option<TeamId>,
}

impl Profile {
    /// The largest avatar offered.
    pub fn best_image(&self) -> Option<&str> {
        [
            &self.image_original,
            &self.image_1024,
            &self.image_512,
            &self.image_192,
            &self.image_72,
            &self.image_48,
            &self.image_32,
            &self.image_24,
        ]
        .into_iter()
        .find_map(|s| s.as_deref().filter(|s| !s.is_empty()))
    }
}

/// A bot of bots.info, or the `bot_profile` embedded in bot messages.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Bot {
    #[serde(deserialize_with = "null_default")]
    pub id: BotId,
    pub app_id: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub deleted: bool,
    /// The bot user; bots.info has it, `bot_profile` does not.
    pub user_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    #[serde(deserialize_with = "null_default")]
    pub updated: i64,
    #[serde(deserialize_with = "null_default")]
    pub icons: BotIcons,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BotIcons {
    pub image_36: Option<String>,
    pub image_48: Option<String>,
    pub image_72: Option<String>,
    pub image_original: Option<String>,
}

impl BotIcons {
    /// The largest icon offered.
    pub fn best(&self) -> Option<&str> {
        [
            &self.image_original,
            &self.image_72,
            &self.image_48,
            &self.image_36,
        ]
        .into_iter()
        .find_map(|s| s.as_deref().filter(|s| !s.is_empty()))
    }
}

/// `edited` on an edited message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Edited {
    #[serde(deserialize_with = "null_default")]
    pub user: UserId,
    #[serde(deserialize_with = "null_default")]
    pub ts: Ts,
}

/// One reaction summary on a message in history.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Reaction {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub users: Vec<UserId>,
    #[serde(deserialize_with = "null_default")]
    pub count: u64,
}

/// A message as history, replies, chat.postMessage and message events carry it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Message {
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    pub subtype: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub ts: Ts,
    pub user: Option<UserId>,
    pub bot_id: Option<BotId>,
    pub app_id: Option<String>,
    /// The display name override of a bot post (`username` on chat.postMessage).
    pub username: Option<String>,
    /// mrkdwn; the fallback rendering when `blocks` are present.
    #[serde(deserialize_with = "null_default")]
    pub text: String,
    /// Kept raw: the block formatter owns their structure.
    pub blocks: Option<Value>,
    pub attachments: Option<Value>,
    pub thread_ts: Option<Ts>,
    pub parent_user_id: Option<UserId>,
    pub reply_count: Option<u64>,
    pub latest_reply: Option<Ts>,
    #[serde(deserialize_with = "null_default")]
    pub files: Vec<File>,
    pub edited: Option<Edited>,
    pub client_msg_id: Option<String>,
    pub team: Option<TeamId>,
    pub bot_profile: Option<Bot>,
    pub icons: Option<Value>,
    #[serde(deserialize_with = "null_default")]
    pub reactions: Vec<Reaction>,
    /// The thread root carried by `thread_broadcast` messages.
    pub root: Option<Box<Message>>,
    #[serde(deserialize_with = "null_default")]
    pub hidden: bool,
    pub metadata: Option<Value>,
}

impl Message {
    /// A reply inside a thread (not the root, whose `thread_ts` equals its own `ts`).
    pub fn is_thread_reply(&self) -> bool {
        matches!(&self.thread_ts, Some(t) if *t != self.ts)
    }

    /// The thread this message starts or belongs to, if any.
    pub fn thread_root(&self) -> Option<&str> {
        self.thread_ts.as_deref()
    }

    /// The `event_type` of the message's metadata (what the posting app put there).
    pub fn metadata_event_type(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("event_type")?.as_str()
    }

    /// A string field of the metadata's `event_payload`.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata
            .as_ref()?
            .get("event_payload")?
            .get(key)?
            .as_str()
    }
}

/// A file object (files.info, completeUploadExternal, `files` on file_share messages).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct File {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub title: String,
    #[serde(deserialize_with = "null_default")]
    pub mimetype: String,
    #[serde(deserialize_with = "null_default")]
    pub filetype: String,
    pub pretty_type: Option<String>,
    pub user: Option<UserId>,
    /// `hosted`, `snippet`, `external`, `tombstone` (deleted), …
    pub mode: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub size: u64,
    #[serde(deserialize_with = "null_default")]
    pub created: i64,
    /// Needs the bot token to download; see `SlackClient::download_file`.
    pub url_private: Option<String>,
    pub url_private_download: Option<String>,
    pub permalink: Option<String>,
    pub permalink_public: Option<String>,
    pub thumb_360: Option<String>,
    pub thumb_360_w: Option<u32>,
    pub thumb_360_h: Option<u32>,
    pub thumb_480: Option<String>,
    pub thumb_480_w: Option<u32>,
    pub thumb_480_h: Option<u32>,
    pub thumb_720: Option<String>,
    pub thumb_720_w: Option<u32>,
    pub thumb_720_h: Option<u32>,
    /// A still of a video (`image/jpeg`).
    pub thumb_video: Option<String>,
    pub thumb_video_w: Option<u32>,
    pub thumb_video_h: Option<u32>,
    pub original_w: Option<u32>,
    pub original_h: Option<u32>,
    /// Length of audio and video clips, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Where an external file (Google Drive, Dropbox, …) lives.
    pub external_url: Option<String>,
    pub alt_txt: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub is_external: bool,
    /// Set on files Slack only lists but will not serve (`file_access: check_file_info`).
    pub file_access: Option<String>,
}

impl File {
    /// The name to show: the title Slack shows, else the file name.
    pub fn display_name(&self) -> &str {
        [self.title.as_str(), self.name.as_str()]
            .into_iter()
            .find(|n| !n.trim().is_empty())
            .unwrap_or("file")
    }

    /// The largest thumbnail Slack offers (a video's still for videos), with its size.
    pub fn thumbnail(&self) -> Option<(&str, Option<u32>, Option<u32>)> {
        [
            (&self.thumb_video, self.thumb_video_w, self.thumb_video_h),
            (&self.thumb_720, self.thumb_720_w, self.thumb_720_h),
            (&self.thumb_480, self.thumb_480_w, self.thumb_480_h),
            (&self.thumb_360, self.thumb_360_w, self.thumb_360_h),
        ]
        .into_iter()
        .find_map(|(url, w, h)| Some((url.as_deref().filter(|u| !u.is_empty())?, w, h)))
    }

    /// The URL to fetch the bytes from: the download URL when offered, else the private one.
    pub fn download_url(&self) -> Option<&str> {
        self.url_private_download
            .as_deref()
            .or(self.url_private.as_deref())
            .filter(|u| !u.is_empty())
    }
}

/// `response_metadata` of paginated and warning-carrying responses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponseMetadata {
    pub next_cursor: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub warnings: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub messages: Vec<String>,
}

impl ResponseMetadata {
    /// The cursor of the next page; "An empty, null, or non-existent next_cursor … indicates
    /// no further results" (slack-protocol.md §5).
    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// A user group from usergroups.list (`users` only with `include_users`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Usergroup {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub handle: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub users: Vec<String>,
}

/// emoji.list: name → image URL or `alias:<name>`.
pub type EmojiMap = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn auth_test_real_log() {
        let a: AuthTest = serde_json::from_value(json!({
            "ok": true, "url": "https://example.slack.com/", "team": "Acme Corp",
            "user": "file_writer_bot", "team_id": "T1234567890", "user_id": "U02PY3HA48G",
            "bot_id": "B02P8CPE143", "is_enterprise_install": false, "enterprise_id": null
        }))
        .unwrap();
        assert_eq!(a.user_id, "U02PY3HA48G");
        assert_eq!(a.bot_id.as_deref(), Some("B02P8CPE143"));
        assert_eq!(a.app_id, None);
        assert_eq!(a.enterprise_id, None);
    }

    #[test]
    fn conversation_kinds() {
        let list: Vec<Conversation> = serde_json::from_value(json!([
            {"id":"C012AB3CD","name":"general","is_channel":true,"is_group":false,"is_im":false,
             "is_mpim":false,"is_private":false,"created":1449252889,"creator":"U012A3CDE",
             "is_archived":false,"is_general":true,"unlinked":0,"name_normalized":"general",
             "pending_shared":[],"is_member":true,"updated":1678229664302_i64,
             "topic":{"value":"Company-wide announcements","creator":"","last_set":0},
             "purpose":{"value":"This channel is for team-wide communication","creator":"","last_set":0},
             "previous_names":[],"num_members":4},
            {"id":"C0PRIV","name":"secret","is_channel":false,"is_group":true,"is_private":true},
            {"id":"D0IM","is_im":true,"user":"U1","created":1,"is_user_deleted":false,"priority":0},
            {"id":"C0MPIM","name":"mpdm-a--b-1","is_mpim":true,"is_private":true,"is_group":false},
            {"id":"C0NULL","name":null,"topic":null,"purpose":null}
        ]))
        .unwrap();
        let kinds: Vec<_> = list.iter().map(Conversation::kind).collect();
        assert_eq!(
            kinds,
            [
                ConversationKind::Channel,
                ConversationKind::Private,
                ConversationKind::Im,
                ConversationKind::Mpim,
                ConversationKind::Channel
            ]
        );
        assert_eq!(list[0].topic.value, "Company-wide announcements");
        assert_eq!(list[0].num_members, Some(4));
        assert!(list[2].bot_is_member());
        assert_eq!(list[2].user.as_deref(), Some("U1"));
        assert_eq!(
            ConversationKind::from_channel_type("G"),
            Some(ConversationKind::Private)
        );
    }

    #[test]
    fn user_docs_example() {
        let u: User = serde_json::from_value(json!({
            "id":"W012A3CDE","team_id":"T012AB3C4","name":"spengler","deleted":false,
            "color":"9f69e7","real_name":"Egon Spengler","tz":"America/Los_Angeles",
            "tz_offset":-25200,
            "profile":{"avatar_hash":"ge3b51ca72de","status_text":"Print is dead",
              "real_name":"Egon Spengler","display_name":"spengler","fields":null,
              "email":"spengler@ghostbusters.example.com","image_72":"https://a/72",
              "image_192":"https://a/192","image_512":"https://a/512","team":"T012AB3C4"},
            "is_admin":true,"is_bot":false,"updated":1502138686,"has_2fa":false
        }))
        .unwrap();
        assert_eq!(u.display_name(), "spengler");
        assert_eq!(u.profile.best_image(), Some("https://a/512"));
        assert_eq!(u.updated, 1502138686);

        let nameless = User {
            id: "U1".into(),
            name: "h".into(),
            ..Default::default()
        };
        assert_eq!(nameless.display_name(), "h");
    }

    #[test]
    fn message_with_files_and_thread() {
        let m: Message = serde_json::from_value(json!({
            "type":"message","subtype":"file_share","text":"We got one!","user":"U061F7AUR",
            "files":[{"id":"F0RDC39U1","name":"ghostrap.png","title":"ghostrap.png",
              "mimetype":"image/png","filetype":"png","size":196920,"mode":"hosted",
              "url_private":"https://files.slack.com/files-pri/T-F/ghostrap.png",
              "url_private_download":"https://files.slack.com/files-pri/T-F/download/ghostrap.png",
              "original_w":512,"original_h":512}],
            "ts":"1529342088.000086","thread_ts":"1529342000.000001",
            "edited":{"user":"U061F7AUR","ts":"1529342099.000000"}
        }))
        .unwrap();
        assert!(m.is_thread_reply());
        assert_eq!(m.files[0].size, 196920);
        assert_eq!(
            m.files[0].download_url(),
            Some("https://files.slack.com/files-pri/T-F/download/ghostrap.png")
        );
        assert_eq!(m.edited.unwrap().user, "U061F7AUR");
    }

    #[test]
    fn cursor_empty_is_none() {
        let m: ResponseMetadata = serde_json::from_value(json!({"next_cursor": ""})).unwrap();
        assert_eq!(m.next_cursor(), None);
        let m: ResponseMetadata = serde_json::from_value(json!({"next_cursor": null})).unwrap();
        assert_eq!(m.next_cursor(), None);
        let m: ResponseMetadata =
            serde_json::from_value(json!({"next_cursor": "dGVhbTpDMDYxRkE1UEI="})).unwrap();
        assert_eq!(m.next_cursor(), Some("dGVhbTpDMDYxRkE1UEI="));
    }
}
