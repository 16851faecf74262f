//! Events API payloads (slack-protocol.md §2): the outer `event_callback` wrapper and the inner
//! event as a tolerant enum. No I/O.
//!
//! Parsing never fails on content: an unknown event type, and a known type whose fields do not
//! fit, both become [`SlackEvent::Other`] with the raw JSON, so one odd event can never block
//! a Socket Mode envelope from being stored and acknowledged.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::types::{Conversation, Message, User, null_default};
use crate::ids::{BotId, ChannelId, TeamId, Ts, UserId};

/// The `payload` of an `events_api` envelope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventCallback {
    /// `event_callback`; `app_rate_limited` is the other value Slack sends here.
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    /// The legacy verification token; meaningless over Socket Mode.
    #[serde(deserialize_with = "null_default")]
    pub token: String,
    #[serde(deserialize_with = "null_default")]
    pub team_id: TeamId,
    pub context_team_id: Option<TeamId>,
    pub context_enterprise_id: Option<TeamId>,
    pub enterprise_id: Option<TeamId>,
    #[serde(deserialize_with = "null_default")]
    pub api_app_id: String,
    pub event: SlackEvent,
    /// Globally unique; the deduplication key for redeliveries.
    #[serde(deserialize_with = "null_default")]
    pub event_id: String,
    /// Seconds since the epoch.
    #[serde(deserialize_with = "null_default")]
    pub event_time: i64,
    #[serde(deserialize_with = "null_default")]
    pub authorizations: Vec<Authorization>,
    #[serde(deserialize_with = "null_default")]
    pub is_ext_shared_channel: bool,
    /// Opaque; do not parse.
    pub event_context: Option<String>,
}

/// Who the event was delivered for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Authorization {
    pub enterprise_id: Option<TeamId>,
    pub team_id: Option<TeamId>,
    #[serde(deserialize_with = "null_default")]
    pub user_id: UserId,
    #[serde(deserialize_with = "null_default")]
    pub is_bot: bool,
    #[serde(deserialize_with = "null_default")]
    pub is_enterprise_install: bool,
}

/// An inner event. Variants hold only what the bridge uses; anything else is [`Self::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum SlackEvent {
    /// Every `message` event, whatever its subtype.
    Message(MessageEvent),
    ReactionAdded(ReactionEvent),
    ReactionRemoved(ReactionEvent),
    MemberJoinedChannel(MemberEvent),
    MemberLeftChannel(MemberEvent),
    ChannelCreated(ChannelEvent),
    ChannelRename(ChannelEvent),
    GroupRename(ChannelEvent),
    ChannelDeleted(ChannelIdEvent),
    ChannelArchive(ChannelIdEvent),
    ChannelUnarchive(ChannelIdEvent),
    PinAdded(PinEvent),
    PinRemoved(PinEvent),
    UserChange(UserEvent),
    TeamJoin(UserEvent),
    EmojiChanged(EmojiChangedEvent),
    FileShared(FileSharedEvent),
    TokensRevoked(TokensRevokedEvent),
    AppUninstalled,
    /// An event type this crate does not model, or one whose shape did not fit.
    Other(Value),
}

impl Default for SlackEvent {
    fn default() -> Self {
        SlackEvent::Other(Value::Null)
    }
}

impl<'de> Deserialize<'de> for SlackEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SlackEvent::from_value(Value::deserialize(d)?))
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

impl SlackEvent {
    /// Classifies a raw inner event; never fails.
    pub fn from_value(v: Value) -> SlackEvent {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let parsed = match ty {
            "message" => MessageEvent::from_value(&v).map(SlackEvent::Message),
            "reaction_added" => typed(&v).map(SlackEvent::ReactionAdded),
            "reaction_removed" => typed(&v).map(SlackEvent::ReactionRemoved),
            "member_joined_channel" => typed(&v).map(SlackEvent::MemberJoinedChannel),
            "member_left_channel" => typed(&v).map(SlackEvent::MemberLeftChannel),
            "channel_created" => typed(&v).map(SlackEvent::ChannelCreated),
            "channel_rename" => typed(&v).map(SlackEvent::ChannelRename),
            "group_rename" => typed(&v).map(SlackEvent::GroupRename),
            "channel_deleted" | "group_deleted" => typed(&v).map(SlackEvent::ChannelDeleted),
            // Private channels archive as `group_*`, with the same fields.
            "channel_archive" | "group_archive" => typed(&v).map(SlackEvent::ChannelArchive),
            "channel_unarchive" | "group_unarchive" => typed(&v).map(SlackEvent::ChannelUnarchive),
            "user_change" => typed(&v).map(SlackEvent::UserChange),
            "team_join" => typed(&v).map(SlackEvent::TeamJoin),
            "emoji_changed" => typed(&v).map(SlackEvent::EmojiChanged),
            "file_shared" => typed(&v).map(SlackEvent::FileShared),
            "tokens_revoked" => typed(&v).map(SlackEvent::TokensRevoked),
            "pin_added" => typed(&v).map(SlackEvent::PinAdded),
            "pin_removed" => typed(&v).map(SlackEvent::PinRemoved),
            "app_uninstalled" => Some(SlackEvent::AppUninstalled),
            _ => None,
        };
        parsed.unwrap_or(SlackEvent::Other(v))
    }

    /// The event's `type` (`other` when an unknown event has none).
    pub fn event_type(&self) -> &str {
        match self {
            SlackEvent::Message(_) => "message",
            SlackEvent::ReactionAdded(_) => "reaction_added",
            SlackEvent::ReactionRemoved(_) => "reaction_removed",
            SlackEvent::MemberJoinedChannel(_) => "member_joined_channel",
            SlackEvent::MemberLeftChannel(_) => "member_left_channel",
            SlackEvent::ChannelCreated(_) => "channel_created",
            SlackEvent::ChannelRename(_) => "channel_rename",
            SlackEvent::GroupRename(_) => "group_rename",
            SlackEvent::ChannelDeleted(_) => "channel_deleted",
            SlackEvent::ChannelArchive(_) => "channel_archive",
            SlackEvent::ChannelUnarchive(_) => "channel_unarchive",
            SlackEvent::UserChange(_) => "user_change",
            SlackEvent::TeamJoin(_) => "team_join",
            SlackEvent::EmojiChanged(_) => "emoji_changed",
            SlackEvent::FileShared(_) => "file_shared",
            SlackEvent::TokensRevoked(_) => "tokens_revoked",
            SlackEvent::AppUninstalled => "app_uninstalled",
            SlackEvent::PinAdded(_) => "pin_added",
            SlackEvent::PinRemoved(_) => "pin_removed",
            SlackEvent::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("other"),
        }
    }

    /// The conversation the event belongs to, the key for per-portal ordering. `None` for
    /// workspace-wide events (user_change, emoji_changed, tokens_revoked…) and for reactions
    /// on files.
    pub fn channel(&self) -> Option<&str> {
        let id = match self {
            SlackEvent::Message(m) => Some(m.channel.as_str()),
            SlackEvent::ReactionAdded(r) | SlackEvent::ReactionRemoved(r) => {
                r.item.channel.as_deref()
            }
            SlackEvent::MemberJoinedChannel(m) | SlackEvent::MemberLeftChannel(m) => {
                Some(m.channel.as_str())
            }
            SlackEvent::ChannelCreated(c)
            | SlackEvent::ChannelRename(c)
            | SlackEvent::GroupRename(c) => Some(c.channel.id.as_str()),
            SlackEvent::ChannelDeleted(c)
            | SlackEvent::ChannelArchive(c)
            | SlackEvent::ChannelUnarchive(c) => Some(c.channel.as_str()),
            SlackEvent::FileShared(f) => f.channel_id.as_deref(),
            SlackEvent::UserChange(_)
            | SlackEvent::TeamJoin(_)
            | SlackEvent::EmojiChanged(_)
            | SlackEvent::TokensRevoked(_)
            | SlackEvent::AppUninstalled => None,
            SlackEvent::PinAdded(p) | SlackEvent::PinRemoved(p) => p.channel().map(|c| c.as_str()),
            // Unknown events usually name their conversation in one of these places.
            SlackEvent::Other(v) => v
                .get("channel")
                .and_then(|c| c.as_str().or_else(|| c.get("id").and_then(Value::as_str)))
                .or_else(|| v.get("channel_id").and_then(Value::as_str))
                .or_else(|| v.pointer("/item/channel").and_then(Value::as_str)),
        };
        id.filter(|s| !s.is_empty())
    }

    /// Whether our own app caused the event, so it must not be bridged back (an echo).
    /// `bot_id` and `app_id` come from auth.test / bots.info, `bot_user_id` is auth.test's
    /// `user_id`; empty values never match.
    ///
    /// A `message_deleted` is never counted as ours: Slack does not say who deleted, and an
    /// admin deleting a bridged message must still reach Matrix (re-redacting is harmless).
    pub fn is_from_bot(&self, bot_id: &BotId, app_id: &str, bot_user_id: &UserId) -> bool {
        let is = |ours: &str, theirs: Option<&str>| !ours.is_empty() && theirs == Some(ours);
        match self {
            SlackEvent::Message(m) => match &m.subtype {
                MessageSubtype::Deleted { .. } => false,
                MessageSubtype::Changed { message, .. } => {
                    message_is_ours(message, bot_id, app_id, bot_user_id)
                }
                _ => message_is_ours(&m.message, bot_id, app_id, bot_user_id),
            },
            SlackEvent::ReactionAdded(r) | SlackEvent::ReactionRemoved(r) => {
                is(bot_user_id, Some(&r.user))
            }
            SlackEvent::MemberJoinedChannel(m) | SlackEvent::MemberLeftChannel(m) => {
                is(bot_user_id, Some(&m.user))
            }
            SlackEvent::ChannelArchive(c) | SlackEvent::ChannelUnarchive(c) => {
                is(bot_user_id, c.user.as_deref())
            }
            SlackEvent::ChannelCreated(c) => is(bot_user_id, c.channel.creator.as_deref()),
            SlackEvent::FileShared(f) => is(bot_user_id, f.user_id.as_deref()),
            _ => false,
        }
    }
}

fn message_is_ours(m: &Message, bot_id: &BotId, app_id: &str, bot_user_id: &UserId) -> bool {
    let is = |ours: &str, theirs: Option<&str>| !ours.is_empty() && theirs == Some(ours);
    is(bot_id, m.bot_id.as_deref())
        || is(app_id, m.app_id.as_deref())
        || is(bot_user_id, m.user.as_deref())
        || m.bot_profile
            .as_ref()
            .is_some_and(|p| is(bot_id, Some(&p.id)) || is(app_id, p.app_id.as_deref()))
}

/// A `message` event. `message` is the top-level message (for a new message, the message
/// itself); subtype-specific data sits in `subtype`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageEvent {
    pub channel: ChannelId,
    /// `channel`, `group`, `im`, `mpim` or `app_home`.
    pub channel_type: Option<String>,
    pub event_ts: Ts,
    pub subtype: MessageSubtype,
    pub message: Message,
}

/// Subtypes of `message`, with the fields each adds.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MessageSubtype {
    /// No subtype: a person's message, a thread reply, or a post by a bot token (Slack omits
    /// `bot_message` for those; look at `bot_id`).
    #[default]
    Normal,
    BotMessage,
    MeMessage,
    FileShare,
    ThreadBroadcast,
    /// An edit, an unfurl, or a thread-parent summary update; compare `text`/`blocks` with
    /// `previous_message` before treating it as an edit.
    Changed {
        message: Box<Message>,
        previous_message: Option<Box<Message>>,
    },
    Deleted {
        deleted_ts: Ts,
        previous_message: Option<Box<Message>>,
    },
    ChannelTopic {
        topic: String,
    },
    ChannelPurpose {
        purpose: String,
    },
    ChannelName {
        old_name: String,
        name: String,
    },
    ChannelJoin {
        inviter: Option<UserId>,
    },
    ChannelLeave,
    /// Any other subtype (`pinned_item`, `huddle_thread`, `channel_archive`, …), by name.
    Other(String),
}

/// Fields of subtypes that sit next to the message fields at the top level.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageExtras {
    #[serde(deserialize_with = "null_default")]
    channel: ChannelId,
    channel_type: Option<String>,
    #[serde(deserialize_with = "null_default")]
    event_ts: Ts,
    message: Option<Box<Message>>,
    previous_message: Option<Box<Message>>,
    deleted_ts: Option<Ts>,
    topic: Option<String>,
    purpose: Option<String>,
    old_name: Option<String>,
    name: Option<String>,
    inviter: Option<UserId>,
}

impl MessageEvent {
    /// Parses a `message` event; `None` only when its known fields have impossible types.
    pub fn from_value(v: &Value) -> Option<MessageEvent> {
        let extras: MessageExtras = typed(v)?;
        let message: Message = typed(v)?;
        let posting = posting_subtype(message.subtype.as_deref());
        let subtype = match message.subtype.as_deref() {
            _ if posting.is_some() => posting?,
            Some("message_changed") => MessageSubtype::Changed {
                // Without the new message there is nothing to apply.
                message: extras.message?,
                previous_message: extras.previous_message,
            },
            Some("message_deleted") => MessageSubtype::Deleted {
                deleted_ts: extras
                    .deleted_ts
                    .or_else(|| extras.previous_message.as_ref().map(|m| m.ts.clone()))?,
                previous_message: extras.previous_message,
            },
            Some("channel_topic") | Some("group_topic") => MessageSubtype::ChannelTopic {
                topic: extras.topic.unwrap_or_default(),
            },
            Some("channel_purpose") | Some("group_purpose") => MessageSubtype::ChannelPurpose {
                purpose: extras.purpose.unwrap_or_default(),
            },
            Some("channel_name") | Some("group_name") => MessageSubtype::ChannelName {
                old_name: extras.old_name.unwrap_or_default(),
                name: extras.name.unwrap_or_default(),
            },
            Some("channel_join") | Some("group_join") => MessageSubtype::ChannelJoin {
                inviter: extras.inviter,
            },
            Some("channel_leave") | Some("group_leave") => MessageSubtype::ChannelLeave,
            Some(other) => MessageSubtype::Other(other.to_string()),
            None => MessageSubtype::Normal,
        };
        Some(MessageEvent {
            channel: extras.channel,
            channel_type: extras.channel_type,
            event_ts: extras.event_ts,
            subtype,
            message,
        })
    }

    /// A message from conversations.history or conversations.replies as the event that
    /// posted it. History holds posted messages only; a subtype that announces something
    /// (a join, a topic change) keeps its name as [`MessageSubtype::Other`].
    pub fn from_history(channel: &ChannelId, message: Message) -> MessageEvent {
        let subtype = posting_subtype(message.subtype.as_deref())
            .unwrap_or_else(|| MessageSubtype::Other(message.subtype.clone().unwrap_or_default()));
        MessageEvent {
            channel: channel.clone(),
            channel_type: None,
            event_ts: message.ts.clone(),
            subtype,
            message,
        }
    }

    /// Whether this event posts a new message (as opposed to editing, deleting or announcing
    /// a channel change).
    pub fn is_new_message(&self) -> bool {
        matches!(
            self.subtype,
            MessageSubtype::Normal
                | MessageSubtype::BotMessage
                | MessageSubtype::MeMessage
                | MessageSubtype::FileShare
                | MessageSubtype::ThreadBroadcast
        )
    }
}

/// The subtypes that post a message (the ones [`MessageEvent::is_new_message`] accepts).
fn posting_subtype(subtype: Option<&str>) -> Option<MessageSubtype> {
    Some(match subtype {
        None | Some("") => MessageSubtype::Normal,
        Some("bot_message") => MessageSubtype::BotMessage,
        Some("me_message") => MessageSubtype::MeMessage,
        Some("file_share") => MessageSubtype::FileShare,
        Some("thread_broadcast") => MessageSubtype::ThreadBroadcast,
        Some(_) => return None,
    })
}

/// `reaction_added` / `reaction_removed`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReactionEvent {
    #[serde(deserialize_with = "null_default")]
    pub user: UserId,
    /// Without colons; skin tones as `thumbsup::skin-tone-2`.
    #[serde(deserialize_with = "null_default")]
    pub reaction: String,
    #[serde(deserialize_with = "null_default")]
    pub item: ReactionItem,
    /// Absent for messages not authored by a user (webhooks).
    pub item_user: Option<UserId>,
    #[serde(deserialize_with = "null_default")]
    pub event_ts: Ts,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReactionItem {
    /// `message`, `file` or `file_comment`.
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    pub channel: Option<ChannelId>,
    pub ts: Option<Ts>,
    pub file: Option<String>,
    pub file_comment: Option<String>,
}

/// `member_joined_channel` / `member_left_channel`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MemberEvent {
    #[serde(deserialize_with = "null_default")]
    pub user: UserId,
    #[serde(deserialize_with = "null_default")]
    pub channel: ChannelId,
    /// A single letter here: `C` public, `G` private.
    #[serde(deserialize_with = "null_default")]
    pub channel_type: String,
    pub team: Option<TeamId>,
    /// Absent on self-joins.
    pub inviter: Option<UserId>,
    pub enterprise: Option<TeamId>,
    pub event_ts: Option<Ts>,
}

/// `channel_created`, `channel_rename`, `group_rename`: a (thin) channel object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelEvent {
    #[serde(deserialize_with = "null_default")]
    pub channel: Conversation,
    pub event_ts: Option<Ts>,
}

/// `channel_deleted`, `channel_archive`, `channel_unarchive`: a channel ID.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelIdEvent {
    #[serde(deserialize_with = "null_default")]
    pub channel: ChannelId,
    pub user: Option<UserId>,
    pub event_ts: Option<Ts>,
}

/// `pin_added` / `pin_removed`: who pinned what where.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PinEvent {
    pub user: Option<UserId>,
    pub channel_id: Option<ChannelId>,
    #[serde(deserialize_with = "null_default")]
    pub item: PinItem,
    pub event_ts: Option<Ts>,
}

impl PinEvent {
    /// The conversation, from the event or its item.
    pub fn channel(&self) -> Option<&ChannelId> {
        self.channel_id.as_ref().or(self.item.channel.as_ref())
    }

    /// The pinned message's ts; None for a pinned file.
    pub fn message_ts(&self) -> Option<&Ts> {
        self.item
            .message
            .as_ref()
            .map(|m| &m.ts)
            .filter(|ts| !ts.is_empty())
            .or(self.item.ts.as_ref())
    }
}

/// What a pin points at: a message (with the message itself) or a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PinItem {
    /// `message` or `file`.
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    pub channel: Option<ChannelId>,
    pub ts: Option<Ts>,
    pub message: Option<Box<Message>>,
}

/// `user_change` / `team_join`: the full user object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UserEvent {
    #[serde(deserialize_with = "null_default")]
    pub user: User,
    pub event_ts: Option<Ts>,
}

/// `emoji_changed`. When `subtype` is missing or unknown, reload with emoji.list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EmojiChangedEvent {
    /// `add`, `remove`, `rename`.
    pub subtype: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub names: Vec<String>,
    pub old_name: Option<String>,
    pub new_name: Option<String>,
    /// An image URL or `alias:<name>`.
    pub value: Option<String>,
    pub event_ts: Option<Ts>,
}

/// `file_shared`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FileSharedEvent {
    #[serde(deserialize_with = "null_default")]
    pub file_id: String,
    pub user_id: Option<UserId>,
    pub channel_id: Option<ChannelId>,
    pub event_ts: Option<Ts>,
}

/// `tokens_revoked`: user IDs whose tokens died, by token kind.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TokensRevokedEvent {
    #[serde(deserialize_with = "null_default")]
    pub tokens: RevokedTokens,
    pub event_ts: Option<Ts>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RevokedTokens {
    #[serde(deserialize_with = "null_default")]
    pub oauth: Vec<UserId>,
    #[serde(deserialize_with = "null_default")]
    pub bot: Vec<UserId>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(v: Value) -> SlackEvent {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pins_of_messages_and_files() {
        // The shapes of Slack's pin_added docs: the message inside the item, and the channel
        // both at the top and in the item.
        let added = SlackEvent::from_value(json!({"type": "pin_added", "user": "U1",
            "channel_id": "C1", "item": {"type": "message", "channel": "C1", "created": 1,
            "created_by": "U1", "message": {"type": "message", "ts": "1360782804.083113",
            "text": "pin me", "user": "U2"}}, "event_ts": "1360782804.083113"}));
        let SlackEvent::PinAdded(p) = &added else {
            panic!("{added:?}")
        };
        assert_eq!(p.channel().map(|c| c.as_str()), Some("C1"));
        assert_eq!(
            p.message_ts().map(|t| t.as_str()),
            Some("1360782804.083113")
        );
        assert_eq!(added.channel(), Some("C1"));
        assert_eq!(added.event_type(), "pin_added");
        let removed = SlackEvent::from_value(json!({"type": "pin_removed", "user": "U1",
            "item": {"type": "message", "channel": "C9", "ts": "2.0"}, "has_pins": false}));
        let SlackEvent::PinRemoved(p) = &removed else {
            panic!("{removed:?}")
        };
        assert_eq!(
            (
                p.channel().map(|c| c.as_str()),
                p.message_ts().map(|t| t.as_str())
            ),
            (Some("C9"), Some("2.0"))
        );
        let file = SlackEvent::from_value(json!({"type": "pin_added", "channel_id": "C1",
            "item": {"type": "file", "file": {"id": "F1"}}}));
        let SlackEvent::PinAdded(p) = &file else {
            panic!("{file:?}")
        };
        assert_eq!(p.message_ts(), None);
    }

    #[test]
    fn outer_wrapper_socket_mode_delivery() {
        let cb: EventCallback = serde_json::from_value(json!({
            "token":"verification-token","team_id":"T111","context_team_id":"T111",
            "context_enterprise_id":null,"api_app_id":"A111",
            "event":{"client_msg_id":"f0582a78-72db-4feb-b2f3-1e47d66365c8","type":"message",
              "text":"<@U111> Hi here!","user":"U222","ts":"1610241741.000200","team":"T111",
              "channel":"C111","event_ts":"1610241741.000200","channel_type":"channel"},
            "type":"event_callback","event_id":"Ev111","event_time":1610241741,
            "authorizations":[{"enterprise_id":null,"team_id":"T111","user_id":"U333",
              "is_bot":true,"is_enterprise_install":false}],
            "is_ext_shared_channel":false,"event_context":"1-message-T111-C111"
        }))
        .unwrap();
        assert_eq!(cb.kind, "event_callback");
        assert_eq!(cb.event_id, "Ev111");
        assert_eq!(cb.event_time, 1610241741);
        assert_eq!(cb.authorizations[0].user_id, "U333");
        assert_eq!(cb.event.channel(), Some("C111"));
        let SlackEvent::Message(m) = &cb.event else {
            panic!("not a message: {:?}", cb.event)
        };
        assert_eq!(m.subtype, MessageSubtype::Normal);
        assert!(m.is_new_message());
        assert_eq!(m.message.user.as_deref(), Some("U222"));
        assert_eq!(m.message.text, "<@U111> Hi here!");
        assert_eq!(m.channel_type.as_deref(), Some("channel"));
    }

    #[test]
    fn unknown_outer_and_inner_types_parse() {
        let cb: EventCallback = serde_json::from_value(json!({
            "type":"event_callback","event_id":"Ev2",
            "event":{"type":"huddle_started","channel":{"id":"C9"},"weird":[1,2]}
        }))
        .unwrap();
        assert!(matches!(cb.event, SlackEvent::Other(_)));
        assert_eq!(cb.event.event_type(), "huddle_started");
        assert_eq!(cb.event.channel(), Some("C9"));

        let rate: EventCallback = serde_json::from_value(json!({
            "token":"x","type":"app_rate_limited","team_id":"T1",
            "minute_rate_limited":1518467820,"api_app_id":"A1"
        }))
        .unwrap();
        assert_eq!(rate.kind, "app_rate_limited");
        assert_eq!(rate.event, SlackEvent::Other(Value::Null));
    }

    #[test]
    fn known_type_with_wrong_shape_is_other() {
        let e = ev(json!({"type":"reaction_added","user":5,"item":"nope"}));
        assert!(matches!(e, SlackEvent::Other(_)));
        let e = ev(json!({"type":"message","subtype":"message_changed","channel":"C1"}));
        assert!(matches!(e, SlackEvent::Other(_)), "changed without message");
    }

    #[test]
    fn own_bot_message_without_subtype() {
        let e = ev(json!({
            "bot_id":"B053Q2PM7S4","type":"message","text":"Give me just a few moments :)",
            "user":"U052KRAG4MV","ts":"1681444262.072099","app_id":"A052TNLPX1U","blocks":[],
            "team":"T03R7BR3RGF",
            "bot_profile":{"id":"B053Q2PM7S4","deleted":false,"name":"Email Agent",
              "updated":1681409978,"app_id":"A052TNLPX1U",
              "icons":{"image_36":"https://a/36.png","image_48":"…","image_72":"…"},
              "team_id":"T03R7BR3RGF"},
            "channel":"D0532RVSDFE","event_ts":"1681444262.072099","channel_type":"im"
        }));
        assert!(e.is_from_bot(&"B053Q2PM7S4".into(), "", &"".into()));
        assert!(e.is_from_bot(&"".into(), "A052TNLPX1U", &"".into()));
        assert!(e.is_from_bot(&"".into(), "", &"U052KRAG4MV".into()));
        assert!(!e.is_from_bot(&"BOTHER".into(), "AOTHER", &"UOTHER".into()));
        assert!(!e.is_from_bot(&"".into(), "", &"".into()));
        assert_eq!(e.channel(), Some("D0532RVSDFE"));
    }

    #[test]
    fn subtypes() {
        let tb = ev(
            json!({"type":"message","subtype":"thread_broadcast","user":"U061F7AUR",
            "text":"Is but a message within a thread","thread_ts":"1517414896.001003",
            "ts":"1517414906.000889",
            "root":{"type":"message","user":"U061F7AUR","text":"All that we see or seem",
              "thread_ts":"1517414896.001003","reply_count":1,"ts":"1517414896.001003"},
            "channel":"C1","event_ts":"1517414906.000889","channel_type":"channel"}),
        );
        let SlackEvent::Message(m) = tb else { panic!() };
        assert_eq!(m.subtype, MessageSubtype::ThreadBroadcast);
        assert!(m.message.is_thread_reply());
        assert_eq!(m.message.root.as_ref().unwrap().reply_count, Some(1));

        let changed = ev(
            json!({"type":"message","subtype":"message_changed","hidden":true,
            "channel":"C123ABC456","ts":"1358878755.000001",
            "message":{"type":"message","user":"U123ABC456","text":"Hello, world!",
              "ts":"1355517523.000005","edited":{"user":"U123ABC456","ts":"1358878755.000001"}},
            "previous_message":{"type":"message","user":"U123ABC456","text":"Hello",
              "ts":"1355517523.000005"},
            "event_ts":"1358878755.000001","channel_type":"channel"}),
        );
        assert!(changed.is_from_bot(&"".into(), "", &"U123ABC456".into()));
        let SlackEvent::Message(m) = changed else {
            panic!()
        };
        let MessageSubtype::Changed {
            message,
            previous_message,
        } = &m.subtype
        else {
            panic!("{:?}", m.subtype)
        };
        assert_eq!(message.text, "Hello, world!");
        assert_eq!(previous_message.as_ref().unwrap().text, "Hello");
        assert!(!m.is_new_message());
        assert_eq!(m.channel, "C123ABC456");

        let deleted = ev(
            json!({"type":"message","subtype":"message_deleted","hidden":true,
            "channel":"C123ABC456","ts":"1358878755.000001","deleted_ts":"1358878749.000002",
            "event_ts":"1358878755.000002",
            "previous_message":{"type":"message","user":"U1","text":"…","ts":"1358878749.000002"},
            "channel_type":"channel"}),
        );
        assert!(!deleted.is_from_bot(&"".into(), "", &"U1".into()));
        let SlackEvent::Message(m) = deleted else {
            panic!()
        };
        assert!(
            matches!(&m.subtype, MessageSubtype::Deleted { deleted_ts, .. } if deleted_ts == "1358878749.000002")
        );

        let cases = [
            (
                json!({"type":"message","subtype":"bot_message","ts":"1358877455.000010",
                "text":"Pushing is the answer","bot_id":"BB12033","username":"github","icons":{},
                "channel":"C1"}),
                MessageSubtype::BotMessage,
            ),
            (
                json!({"type":"message","subtype":"me_message","channel":"C2147483705",
                "user":"U2147483697","text":"is doing that thing","ts":"1355517523.000005"}),
                MessageSubtype::MeMessage,
            ),
            (
                json!({"type":"message","subtype":"channel_topic","ts":"1358877455.000010",
                "user":"U2147483828","topic":"hello world","channel":"C1",
                "text":"<@U2147483828|cal> set the channel topic: hello world"}),
                MessageSubtype::ChannelTopic {
                    topic: "hello world".into(),
                },
            ),
            (
                json!({"type":"message","subtype":"channel_name","ts":"1358877455.000010",
                "user":"U2147483828","old_name":"random","name":"watercooler","channel":"C1",
                "text":"renamed"}),
                MessageSubtype::ChannelName {
                    old_name: "random".into(),
                    name: "watercooler".into(),
                },
            ),
            (
                json!({"type":"message","subtype":"channel_join","ts":"1358877458.000011",
                "user":"U2147483828","text":"has joined","inviter":"U123456789","channel":"C1"}),
                MessageSubtype::ChannelJoin {
                    inviter: Some("U123456789".into()),
                },
            ),
            (
                json!({"type":"message","subtype":"huddle_thread","user":"USLACKBOT",
                "text":"","channel":"C1","ts":"1.2","room":{"id":"R1"}}),
                MessageSubtype::Other("huddle_thread".into()),
            ),
        ];
        for (v, want) in cases {
            let SlackEvent::Message(m) = ev(v.clone()) else {
                panic!("{v}")
            };
            assert_eq!(m.subtype, want, "{v}");
        }
    }

    #[test]
    fn file_share() {
        let e = ev(
            json!({"type":"message","subtype":"file_share","text":"We got one!",
            "user":"U061F7AUR","upload":true,"display_as_bot":false,
            "files":[{"id":"F0RDC39U1","created":1529342081,"name":"ghostrap.png",
              "title":"ghostrap.png","mimetype":"image/png","filetype":"png","size":196920,
              "url_private":"https://files.slack.com/files-pri/T061EG9R6-F0RDC39U1/ghostrap.png",
              "url_private_download":"https://files.slack.com/files-pri/T061EG9R6-F0RDC39U1/download/ghostrap.png",
              "thumb_360":"https://files.slack.com/files-tmb/x.png","thumb_360_w":360}],
            "ts":"1529342088.000086","channel":"D0L4B9P0Q","event_ts":"1529342088.000086",
            "channel_type":"im"}),
        );
        let SlackEvent::Message(m) = e else { panic!() };
        assert_eq!(m.subtype, MessageSubtype::FileShare);
        assert_eq!(m.message.files[0].mimetype, "image/png");
    }

    #[test]
    fn other_events() {
        let r = ev(
            json!({"type":"reaction_added","user":"U123ABC456","reaction":"thumbsup",
            "item_user":"U222222222",
            "item":{"type":"message","channel":"C123ABC456","ts":"1360782400.498405"},
            "event_ts":"1360782804.083113"}),
        );
        assert_eq!(r.channel(), Some("C123ABC456"));
        assert!(r.is_from_bot(&"".into(), "", &"U123ABC456".into()));
        let SlackEvent::ReactionAdded(ra) = &r else {
            panic!()
        };
        assert_eq!(ra.item.ts.as_deref(), Some("1360782400.498405"));

        let file_reaction = ev(json!({"type":"reaction_removed","user":"U1","reaction":"x",
            "item":{"type":"file","file":"F1"},"event_ts":"1.1"}));
        assert!(matches!(file_reaction, SlackEvent::ReactionRemoved(_)));
        assert_eq!(file_reaction.channel(), None);

        let j = ev(json!({"type":"member_joined_channel","user":"W123ABC456",
            "channel":"C123ABC456","channel_type":"C","team":"T123ABC456",
            "inviter":"U123456789","enterprise":"E123456789"}));
        assert_eq!(j.channel(), Some("C123ABC456"));
        let SlackEvent::MemberJoinedChannel(m) = &j else {
            panic!()
        };
        assert_eq!(m.inviter.as_deref(), Some("U123456789"));

        let l = ev(
            json!({"type":"member_left_channel","user":"W1","channel":"C2",
            "channel_type":"G","team":"T1"}),
        );
        assert!(matches!(l, SlackEvent::MemberLeftChannel(_)));

        let c = ev(
            json!({"type":"channel_created","channel":{"id":"C024BE91L","name":"fun",
            "created":1360782804,"creator":"U024BE7LH"}}),
        );
        assert_eq!(c.channel(), Some("C024BE91L"));
        let SlackEvent::ChannelCreated(cc) = &c else {
            panic!()
        };
        assert_eq!(cc.channel.name, "fun");
        assert_eq!(cc.channel.creator.as_deref(), Some("U024BE7LH"));

        let rn = ev(json!({"type":"channel_rename","channel":{"id":"C02ELGNBH",
            "name":"new_name","created":1360782804}}));
        assert!(matches!(&rn, SlackEvent::ChannelRename(c) if c.channel.name == "new_name"));

        let a = ev(json!({"type":"channel_archive","channel":"C123ABC456","user":"U123ABC456"}));
        assert_eq!(a.channel(), Some("C123ABC456"));
        assert!(matches!(a, SlackEvent::ChannelArchive(_)));

        let u = ev(json!({"type":"user_change","user":{"id":"U1","name":"x",
            "profile":{"display_name":"Ex","fields":null}},"cache_ts":1690000000,
            "event_ts":"1690000000.000100"}));
        assert_eq!(u.channel(), None);
        assert!(matches!(&u, SlackEvent::UserChange(e) if e.user.display_name() == "Ex"));

        let t = ev(
            json!({"type":"tokens_revoked","tokens":{"oauth":[],"bot":["U0BOT"]},
            "event_ts":"1.0"}),
        );
        assert!(matches!(&t, SlackEvent::TokensRevoked(e) if e.tokens.bot == ["U0BOT"]));
        assert_eq!(
            ev(json!({"type":"app_uninstalled"})),
            SlackEvent::AppUninstalled
        );

        let emoji = ev(
            json!({"type":"emoji_changed","subtype":"rename","old_name":"grin",
            "new_name":"cheese-grin","value":"https://x.gif","event_ts":"1361482916.000004"}),
        );
        assert!(
            matches!(&emoji, SlackEvent::EmojiChanged(e) if e.new_name.as_deref() == Some("cheese-grin"))
        );

        let fs = ev(json!({"type":"file_shared","channel_id":"D01315BHHSN",
            "file_id":"F2147483862","user_id":"U0Z7K8SRH","file":{"id":"F2147483862"},
            "event_ts":"1617804931.000300"}));
        assert_eq!(fs.channel(), Some("D01315BHHSN"));
    }
}
