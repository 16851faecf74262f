//! The workspace model: team, users, bots, conversations, messages, reactions, files, emoji,
//! the app's own identity (bot user, bot id, app id, tokens, scopes, event subscriptions), and
//! the JSON renderings of those objects in the shapes the Web API and Events API use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::oauth::OAuth;
use crate::util::{self, TsClock};

pub type UserId = String;
pub type ChannelId = String;
pub type FileId = String;
pub type BotId = String;

/// The four conversation types of the Conversations API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Public,
    Private,
    Im,
    Mpim,
}

impl ChannelKind {
    /// `channel_type` as it appears on message events.
    pub fn message_channel_type(self) -> &'static str {
        match self {
            ChannelKind::Public => "channel",
            ChannelKind::Private => "group",
            ChannelKind::Im => "im",
            ChannelKind::Mpim => "mpim",
        }
    }

    /// The `types=` token of conversations.list.
    pub fn list_type(self) -> &'static str {
        match self {
            ChannelKind::Public => "public_channel",
            ChannelKind::Private => "private_channel",
            ChannelKind::Im => "im",
            ChannelKind::Mpim => "mpim",
        }
    }

    /// Scope prefix: `channels`, `groups`, `im`, `mpim` (+ `:read` / `:history`).
    pub fn scope_family(self) -> &'static str {
        match self {
            ChannelKind::Public => "channels",
            ChannelKind::Private => "groups",
            ChannelKind::Im => "im",
            ChannelKind::Mpim => "mpim",
        }
    }

    /// The `message.*` event subscription that delivers messages of this conversation type.
    pub fn message_subscription(self) -> &'static str {
        match self {
            ChannelKind::Public => "message.channels",
            ChannelKind::Private => "message.groups",
            ChannelKind::Im => "message.im",
            ChannelKind::Mpim => "message.mpim",
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub real_name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub title: String,
    pub color: String,
    pub status_text: String,
    pub status_emoji: String,
    pub is_admin: bool,
    pub is_bot: bool,
    pub bot_id: Option<BotId>,
    pub app_id: Option<String>,
    pub deleted: bool,
    pub avatar_hash: String,
    /// Custom avatar bytes; `None` serves a generated PNG.
    pub avatar: Option<Arc<Vec<u8>>>,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct Bot {
    pub id: BotId,
    pub name: String,
    pub app_id: String,
    pub user_id: UserId,
    pub deleted: bool,
    pub updated: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Topic {
    pub value: String,
    pub creator: String,
    pub last_set: i64,
}

#[derive(Debug, Clone)]
pub struct Reaction {
    pub name: String,
    pub users: Vec<UserId>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub ts: String,
    pub thread_ts: Option<String>,
    /// Author user ID (for bots, the bot user), used for permission checks and `parent_user_id`.
    pub user: Option<UserId>,
    /// The stored wire shape without the derived fields (reactions, thread summary).
    pub body: Map<String, Value>,
    pub reactions: Vec<Reaction>,
    pub files: Vec<FileId>,
}

impl Message {
    pub fn is_reply(&self) -> bool {
        matches!(&self.thread_ts, Some(t) if *t != self.ts)
    }

    pub fn subtype(&self) -> Option<&str> {
        self.body.get("subtype").and_then(Value::as_str)
    }

    /// Shown in conversations.history: top-level messages and broadcast replies.
    pub fn in_history(&self) -> bool {
        !self.is_reply() || self.subtype() == Some("thread_broadcast")
    }
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
    pub created: i64,
    pub creator: UserId,
    pub members: Vec<UserId>,
    pub topic: Topic,
    pub purpose: Topic,
    pub archived: bool,
    pub is_general: bool,
    pub previous_names: Vec<String>,
    pub messages: Vec<Message>,
    pub updated_ms: i64,
}

impl Channel {
    pub fn is_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| m == user)
    }

    pub fn message(&self, ts: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.ts == ts)
    }

    pub fn message_mut(&mut self, ts: &str) -> Option<&mut Message> {
        self.messages.iter_mut().find(|m| m.ts == ts)
    }

    pub fn replies(&self, thread_ts: &str) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(move |m| m.is_reply() && m.thread_ts.as_deref() == Some(thread_ts))
    }
}

#[derive(Debug, Clone)]
pub struct File {
    pub id: FileId,
    pub name: String,
    pub title: String,
    pub mimetype: String,
    pub user: UserId,
    pub created: i64,
    pub bytes: Arc<Vec<u8>>,
    /// `length` declared to files.getUploadURLExternal; `None` for user uploads.
    pub declared_len: Option<u64>,
    pub uploaded: bool,
    pub completed: bool,
    pub alt_txt: Option<String>,
    /// (channel, message ts) for every share, in order.
    pub shares: Vec<(ChannelId, String)>,
    pub upload_ticket: String,
    /// An external file (Google Drive, …): Slack only links to it.
    pub external_url: Option<String>,
    /// Message events carry only a stub with `file_access: check_file_info` (Slack Connect);
    /// the whole object comes from files.info.
    pub check_file_info: bool,
    /// Deleted: messages show a tombstone, downloads and files.info fail.
    pub deleted: bool,
    /// Length of an audio or video clip.
    pub duration_ms: Option<u64>,
}

/// A whole Slack workspace plus the installed app. Build one with [`Workspace::new`] or
/// [`Workspace::demo`], then hand it to [`crate::Emulator::start`]. Builder methods here create
/// state silently (no events); after start use the `Emulator` methods, which emit events.
#[derive(Debug)]
pub struct Workspace {
    pub(crate) team_id: String,
    pub(crate) team_name: String,
    pub(crate) domain: String,
    pub(crate) users: Vec<User>,
    pub(crate) bots: Vec<Bot>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) files: Vec<File>,
    pub(crate) emoji: BTreeMap<String, String>,
    /// Images of custom emoji served by the emulator (`/emoji/<name>.png`), public like
    /// emoji.slack-edge.com.
    pub(crate) emoji_images: BTreeMap<String, Vec<u8>>,
    pub(crate) usergroups: Vec<Usergroup>,
    pub(crate) bot_user_id: UserId,
    pub(crate) bot_id: BotId,
    pub(crate) app_id: String,
    pub(crate) bot_token: String,
    pub(crate) app_token: String,
    pub(crate) bot_token_revoked: bool,
    pub(crate) app_token_revoked: bool,
    /// The app's client credentials, pending OAuth codes and the people's user tokens.
    pub(crate) oauth: OAuth,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) app_scopes: BTreeSet<String>,
    pub(crate) bot_events: BTreeSet<String>,
    pub(crate) clock: TsClock,
    pub(crate) base_url: String,
    pub(crate) verification_token: String,
    /// Emit a `message_changed` for the thread parent when a reply lands (its reply summary
    /// changes), as Slack does; bridges must not mistake it for an edit.
    pub thread_parent_updates: bool,
}

/// A user group (`<!subteam^S…>` in text).
#[derive(Debug, Clone)]
pub struct Usergroup {
    pub id: String,
    pub handle: String,
    pub name: String,
    pub users: Vec<String>,
}

/// Bot scopes of the bridge manifest in slack-protocol.md §6, the default grant.
pub const DEFAULT_BOT_SCOPES: &[&str] = &[
    "channels:history",
    "channels:read",
    "channels:join",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "mpim:history",
    "mpim:read",
    "chat:write",
    "chat:write.customize",
    "chat:write.public",
    "reactions:read",
    "reactions:write",
    "users:read",
    "users:read.email",
    "team:read",
    "files:read",
    "files:write",
    "emoji:read",
    "pins:read",
    "usergroups:read",
];

/// Bot event subscriptions of the bridge manifest in slack-protocol.md §6.
pub const DEFAULT_BOT_EVENTS: &[&str] = &[
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
    "reaction_added",
    "reaction_removed",
    "member_joined_channel",
    "member_left_channel",
    "channel_created",
    "channel_rename",
    "channel_deleted",
    "channel_archive",
    "channel_unarchive",
    "group_rename",
    "group_archive",
    "group_unarchive",
    "pin_added",
    "pin_removed",
    "user_change",
    "team_join",
    "emoji_changed",
    "file_shared",
    "file_deleted",
];

/// Width and height of the still the emulator serves for a video.
pub const VIDEO_STILL_SIZE: u32 = 64;

const COLORS: &[&str] = &[
    "9f69e7", "4bbe2e", "e7392d", "3c989f", "e0a729", "674b1b", "5b89d5", "db3150", "2b6836",
];

impl Workspace {
    /// An empty workspace with the app installed: bot user `matrix-bridge`, its bot and app IDs,
    /// a bot token (`xoxb-…`) and an app-level token (`xapp-…`), the manifest's scopes and events,
    /// and the app's OAuth client ID and secret (no user tokens yet).
    pub fn new(team_id: &str, team_name: &str) -> Self {
        let app_id = util::slack_id('A');
        let bot_id = util::slack_id('B');
        let bot_user_id = util::slack_id('U');
        let domain: String = team_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let bot_token = format!(
            "xoxb-{}-{}-{}",
            util::random_digits(12),
            util::random_digits(13),
            util::random_alnum(24)
        );
        let app_token = format!(
            "xapp-1-{app_id}-{}-{}",
            util::random_digits(13),
            util::random_hex(64)
        );
        let mut ws = Workspace {
            team_id: team_id.to_string(),
            team_name: team_name.to_string(),
            domain,
            users: Vec::new(),
            bots: Vec::new(),
            channels: Vec::new(),
            files: Vec::new(),
            emoji: BTreeMap::new(),
            emoji_images: BTreeMap::new(),
            usergroups: Vec::new(),
            bot_user_id: bot_user_id.clone(),
            bot_id: bot_id.clone(),
            app_id: app_id.clone(),
            bot_token,
            app_token,
            bot_token_revoked: false,
            app_token_revoked: false,
            oauth: OAuth::new(),
            scopes: DEFAULT_BOT_SCOPES.iter().map(|s| s.to_string()).collect(),
            app_scopes: ["connections:write".to_string()].into(),
            bot_events: DEFAULT_BOT_EVENTS.iter().map(|s| s.to_string()).collect(),
            clock: TsClock::default(),
            base_url: "http://127.0.0.1:0".into(),
            verification_token: util::random_alnum(24),
            thread_parent_updates: true,
        };
        ws.insert_bot_user(bot_user_id, bot_id, app_id, "matrix-bridge");
        ws
    }

    fn insert_bot_user(&mut self, user_id: UserId, bot_id: BotId, app_id: String, name: &str) {
        let now = util::now_secs();
        let color = COLORS[self.users.len() % COLORS.len()].to_string();
        self.users.push(User {
            id: user_id.clone(),
            name: name.to_string(),
            real_name: name.to_string(),
            display_name: String::new(),
            email: None,
            title: String::new(),
            color,
            status_text: String::new(),
            status_emoji: String::new(),
            is_admin: false,
            is_bot: true,
            bot_id: Some(bot_id.clone()),
            app_id: Some(app_id.clone()),
            deleted: false,
            avatar_hash: util::random_hex(12),
            avatar: None,
            updated: now,
        });
        self.bots.push(Bot {
            id: bot_id,
            name: name.to_string(),
            app_id,
            user_id,
            deleted: false,
            updated: now,
        });
    }

    /// A demo workspace: four people, `#general`, `#random`, a private `#secret`, a DM and a
    /// group DM with the bot, some history with a thread and reactions, and custom emoji.
    pub fn demo() -> Self {
        let mut ws = Workspace::new("T0DEMO0001", "Acme Demo");
        let alice = ws.add_user("alice", "Alice Liddell");
        let bob = ws.add_user("bob", "Bob Builder");
        let carol = ws.add_user("carol", "Carol Danvers");
        let dave = ws.add_user("dave", "Dave Lister");
        let bot = ws.bot_user_id.clone();
        let general = ws.add_channel("general", false, &[&alice, &bob, &carol, &dave, &bot]);
        if let Some(c) = ws.channel_mut(&general) {
            c.is_general = true;
            c.topic = Topic {
                value: "Company-wide announcements".into(),
                creator: alice.clone(),
                last_set: util::now_secs() - 3600,
            };
        }
        let random = ws.add_channel("random", false, &[&alice, &bob, &carol, &bot]);
        ws.add_channel("secret", true, &[&alice, &carol, &bot]);
        ws.add_channel("not-bridged", false, &[&alice, &dave]);
        let dm = ws.add_dm(&alice);
        ws.add_mpim(&[&alice, &bob]);
        let root = ws.seed_message(&general, &alice, "Welcome to *Acme*! :wave:", 7200);
        ws.seed_reply(
            &general,
            &bob,
            &root,
            "Thanks <@".to_string() + &alice + ">!",
            7100,
        );
        ws.seed_reaction(&general, &root, &carol, "tada");
        ws.seed_message(
            &general,
            &carol,
            "Docs are at <https://example.com/docs|the wiki>",
            3600,
        );
        ws.seed_message(&random, &bob, "anyone up for lunch?", 1800);
        ws.seed_message(&dm, &alice, "hi bot", 600);
        ws.add_emoji("partyparrot", "https://emoji.example.com/partyparrot.gif");
        ws.add_emoji("pp", "alias:partyparrot");
        ws
    }

    pub fn team_id(&self) -> &str {
        &self.team_id
    }
    pub fn bot_user_id(&self) -> &str {
        &self.bot_user_id
    }
    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
    pub fn bot_token(&self) -> &str {
        &self.bot_token
    }
    pub fn app_token(&self) -> &str {
        &self.app_token
    }

    /// Adds a person; `name` is the lowercase handle, `real_name` the full name.
    pub fn add_user(&mut self, name: &str, real_name: &str) -> UserId {
        let id = util::slack_id('U');
        let color = COLORS[self.users.len() % COLORS.len()].to_string();
        self.users.push(User {
            id: id.clone(),
            name: name.to_lowercase(),
            real_name: real_name.to_string(),
            display_name: name.to_string(),
            email: Some(format!(
                "{}@{}.example.com",
                name.to_lowercase(),
                self.domain
            )),
            title: String::new(),
            color,
            status_text: String::new(),
            status_emoji: String::new(),
            is_admin: self.users.len() == 1,
            is_bot: false,
            bot_id: None,
            app_id: None,
            deleted: false,
            avatar_hash: util::random_hex(12),
            avatar: None,
            updated: util::now_secs(),
        });
        id
    }

    /// Adds another app's bot (not ours) with its bot user; returns `(bot_id, bot_user_id)`.
    pub fn add_bot(&mut self, name: &str) -> (BotId, UserId) {
        let bot_id = util::slack_id('B');
        let user_id = util::slack_id('U');
        self.insert_bot_user(user_id.clone(), bot_id.clone(), util::slack_id('A'), name);
        (bot_id, user_id)
    }

    /// Adds a public or private channel with the given members (include
    /// [`Workspace::bot_user_id`] for the bot to be in it).
    pub fn add_channel(&mut self, name: &str, private: bool, members: &[&str]) -> ChannelId {
        let kind = if private {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        };
        let creator = members.first().map(|s| s.to_string()).unwrap_or_default();
        self.insert_channel(util::slack_id('C'), name, kind, creator, members)
    }

    /// Adds the DM between `user` and the bot.
    pub fn add_dm(&mut self, user: &str) -> ChannelId {
        let bot = self.bot_user_id.clone();
        self.insert_channel(
            util::slack_id('D'),
            user,
            ChannelKind::Im,
            user.to_string(),
            &[user, &bot],
        )
    }

    /// Adds a group DM between `users` and the bot.
    pub fn add_mpim(&mut self, users: &[&str]) -> ChannelId {
        let bot = self.bot_user_id.clone();
        let mut members: Vec<&str> = users.to_vec();
        members.push(&bot);
        let names: Vec<String> = members
            .iter()
            .map(|u| {
                self.user(u)
                    .map(|x| x.name.clone())
                    .unwrap_or(u.to_string())
            })
            .collect();
        let name = format!("mpdm-{}-1", names.join("--"));
        let creator = users.first().map(|s| s.to_string()).unwrap_or_default();
        self.insert_channel(
            util::slack_id('C'),
            &name,
            ChannelKind::Mpim,
            creator,
            &members,
        )
    }

    pub(crate) fn insert_channel(
        &mut self,
        id: ChannelId,
        name: &str,
        kind: ChannelKind,
        creator: UserId,
        members: &[&str],
    ) -> ChannelId {
        let now = util::now_secs();
        let mut uniq: Vec<UserId> = Vec::new();
        for m in members {
            if !uniq.iter().any(|u| u == m) {
                uniq.push(m.to_string());
            }
        }
        self.channels.push(Channel {
            id: id.clone(),
            name: name.to_string(),
            kind,
            created: now - 86_400,
            creator,
            members: uniq,
            topic: Topic::default(),
            purpose: Topic::default(),
            archived: false,
            is_general: false,
            previous_names: Vec::new(),
            messages: Vec::new(),
            updated_ms: now * 1000,
        });
        id
    }

    /// The workspace's Slack domain (`<domain>.slack.com`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds a user group (`@handle`) of `users`; returns its `S…` id.
    pub fn add_usergroup(&mut self, handle: &str, name: &str, users: &[&str]) -> String {
        let id = util::slack_id('S');
        self.usergroups.push(Usergroup {
            id: id.clone(),
            handle: handle.to_owned(),
            name: name.to_owned(),
            users: users.iter().map(|u| u.to_string()).collect(),
        });
        id
    }

    /// Adds a custom emoji; `value` is an image URL or `alias:<name>`.
    pub fn add_emoji(&mut self, name: &str, value: &str) {
        self.emoji.insert(name.to_string(), value.to_string());
    }

    /// Seeds history without emitting events; `secs_ago` back-dates the `ts`.
    pub fn seed_message(&mut self, channel: &str, user: &str, text: &str, secs_ago: u64) -> String {
        let ts = self.clock.past(secs_ago);
        let msg = self.user_message_body(user, text, &ts, None);
        self.push_message(channel, msg);
        ts
    }

    pub fn seed_reply(
        &mut self,
        channel: &str,
        user: &str,
        thread_ts: &str,
        text: String,
        secs_ago: u64,
    ) -> String {
        let ts = self.clock.past(secs_ago);
        let msg = self.user_message_body(user, &text, &ts, Some(thread_ts));
        self.push_message(channel, msg);
        ts
    }

    pub fn seed_reaction(&mut self, channel: &str, ts: &str, user: &str, name: &str) {
        if let Some(m) = self.channel_mut(channel).and_then(|c| c.message_mut(ts)) {
            add_reaction(m, name, user);
        }
    }

    /// Replaces the granted bot scopes.
    pub fn set_scopes(&mut self, scopes: &[&str]) {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces the bot event subscriptions (e.g. `message.channels`, `reaction_added`).
    pub fn set_bot_events(&mut self, events: &[&str]) {
        self.bot_events = events.iter().map(|s| s.to_string()).collect();
    }

    // ---- lookups ----

    pub fn users(&self) -> &[User] {
        &self.users
    }
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }
    pub fn files(&self) -> &[File] {
        &self.files
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    pub(crate) fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }
    pub(crate) fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }
    pub fn channel_by_name(&self, name: &str) -> Option<&Channel> {
        let name = name.trim_start_matches('#');
        self.channels.iter().find(|c| {
            c.name == name && matches!(c.kind, ChannelKind::Public | ChannelKind::Private)
        })
    }
    pub fn file(&self, id: &str) -> Option<&File> {
        self.files.iter().find(|f| f.id == id)
    }
    pub(crate) fn file_mut(&mut self, id: &str) -> Option<&mut File> {
        self.files.iter_mut().find(|f| f.id == id)
    }
    pub fn bot(&self, id: &str) -> Option<&Bot> {
        self.bots.iter().find(|b| b.id == id)
    }
    pub fn dm_with(&self, user: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| {
            c.kind == ChannelKind::Im && c.is_member(user) && c.is_member(&self.bot_user_id)
        })
    }
    /// The DM between two people (one person alone: their DM with themselves).
    pub(crate) fn im_between(&self, a: &str, b: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| {
            c.kind == ChannelKind::Im
                && c.is_member(a)
                && c.is_member(b)
                && c.members.iter().all(|m| m == a || m == b)
        })
    }
    /// Adds the DM between two people silently.
    pub(crate) fn add_im_between(&mut self, a: &str, b: &str) -> ChannelId {
        self.insert_channel(
            util::slack_id('D'),
            b,
            ChannelKind::Im,
            a.to_string(),
            &[a, b],
        )
    }
    pub fn bot_is_member(&self, channel: &Channel) -> bool {
        channel.is_member(&self.bot_user_id)
    }

    /// Inserts keeping `messages` sorted by `ts`, so back-dated seeds and live posts interleave.
    pub(crate) fn push_message(&mut self, channel: &str, msg: Message) {
        if let Some(c) = self.channel_mut(channel) {
            let key = util::parse_ts(&msg.ts).unwrap_or(0);
            let pos = c
                .messages
                .iter()
                .position(|m| util::parse_ts(&m.ts).unwrap_or(0) > key)
                .unwrap_or(c.messages.len());
            c.messages.insert(pos, msg);
        }
    }

    /// The stored form of a human's message: mrkdwn `text` plus a `rich_text` block derived
    /// from it, and a `client_msg_id`, as Slack clients produce.
    pub(crate) fn user_message_body(
        &self,
        user: &str,
        text: &str,
        ts: &str,
        thread_ts: Option<&str>,
    ) -> Message {
        let mut body = Map::new();
        body.insert("user".into(), json!(user));
        body.insert("type".into(), json!("message"));
        body.insert("ts".into(), json!(ts));
        body.insert("client_msg_id".into(), json!(util::uuid_v4()));
        body.insert("text".into(), json!(text));
        body.insert("team".into(), json!(self.team_id));
        if !text.is_empty() {
            body.insert(
                "blocks".into(),
                json!([crate::blocks::rich_text_from_mrkdwn(text, &self.emoji)]),
            );
        }
        let mut m = Message {
            ts: ts.to_string(),
            thread_ts: thread_ts.map(str::to_string),
            user: Some(user.to_string()),
            body,
            reactions: Vec::new(),
            files: Vec::new(),
        };
        if let Some(t) = thread_ts {
            m.body.insert("thread_ts".into(), json!(t));
        }
        m
    }

    // ---- renderings ----

    pub(crate) fn avatar_url(&self, user: &User, size: u32) -> String {
        format!(
            "{}/avatars/{}.png?v={}&s={size}",
            self.base_url, user.id, user.avatar_hash
        )
    }

    /// users.info / users.list / user_change shape (slack-protocol.md §5).
    pub fn user_json(&self, u: &User, with_email: bool) -> Value {
        let mut profile = Map::new();
        let pj = |k: &str, v: Value, p: &mut Map<String, Value>| {
            p.insert(k.to_string(), v);
        };
        pj("title", json!(u.title), &mut profile);
        pj("phone", json!(""), &mut profile);
        pj("skype", json!(""), &mut profile);
        pj("real_name", json!(u.real_name), &mut profile);
        pj("real_name_normalized", json!(u.real_name), &mut profile);
        pj("display_name", json!(u.display_name), &mut profile);
        pj(
            "display_name_normalized",
            json!(u.display_name),
            &mut profile,
        );
        pj("fields", json!(null), &mut profile);
        pj("status_text", json!(u.status_text), &mut profile);
        pj("status_emoji", json!(u.status_emoji), &mut profile);
        pj("status_expiration", json!(0), &mut profile);
        pj("avatar_hash", json!(u.avatar_hash), &mut profile);
        if with_email && let Some(e) = &u.email {
            pj("email", json!(e), &mut profile);
        }
        let (first, last) = u.real_name.split_once(' ').unwrap_or((&u.real_name, ""));
        pj("first_name", json!(first), &mut profile);
        pj("last_name", json!(last), &mut profile);
        for s in [24, 32, 48, 72, 192, 512, 1024] {
            pj(
                &format!("image_{s}"),
                json!(self.avatar_url(u, s)),
                &mut profile,
            );
        }
        pj(
            "image_original",
            json!(self.avatar_url(u, 1024)),
            &mut profile,
        );
        pj("is_custom_image", json!(u.avatar.is_some()), &mut profile);
        if let (Some(bot_id), Some(app_id)) = (&u.bot_id, &u.app_id) {
            pj("bot_id", json!(bot_id), &mut profile);
            pj("api_app_id", json!(app_id), &mut profile);
            pj("always_active", json!(true), &mut profile);
        }
        pj("team", json!(self.team_id), &mut profile);
        json!({
            "id": u.id,
            "team_id": self.team_id,
            "name": u.name,
            "deleted": u.deleted,
            "color": u.color,
            "real_name": u.real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": u.is_admin,
            "is_owner": u.is_admin,
            "is_primary_owner": false,
            "is_restricted": false,
            "is_ultra_restricted": false,
            "is_bot": u.is_bot,
            "is_app_user": false,
            "updated": u.updated,
            "is_email_confirmed": !u.is_bot,
            "who_can_share_contact_card": "EVERYONE",
        })
    }

    /// bots.info shape.
    pub fn bot_json(&self, b: &Bot) -> Value {
        let icons = self
            .user(&b.user_id)
            .map(|u| {
                json!({
                    "image_36": self.avatar_url(u, 36),
                    "image_48": self.avatar_url(u, 48),
                    "image_72": self.avatar_url(u, 72),
                })
            })
            .unwrap_or(json!({}));
        json!({
            "id": b.id,
            "deleted": b.deleted,
            "name": b.name,
            "updated": b.updated,
            "app_id": b.app_id,
            "user_id": b.user_id,
            "icons": icons,
        })
    }

    /// `bot_profile` as embedded in messages posted by a bot.
    pub fn bot_profile_json(&self, b: &Bot) -> Value {
        let mut v = self.bot_json(b);
        v.as_object_mut()
            .unwrap()
            .insert("team_id".into(), json!(self.team_id));
        v.as_object_mut().unwrap().remove("user_id");
        v
    }

    /// conversations.info / conversations.list object (slack-protocol.md §5), as the bot
    /// sees it.
    pub fn channel_json(&self, c: &Channel) -> Value {
        self.channel_json_as(c, &self.bot_user_id)
    }

    /// [`Workspace::channel_json`] as `viewer` sees it: `is_member` is theirs, and a DM's
    /// `user` is the member other than them.
    pub(crate) fn channel_json_as(&self, c: &Channel, viewer: &str) -> Value {
        let is_member = c.is_member(viewer);
        if c.kind == ChannelKind::Im {
            let other = c
                .members
                .iter()
                .find(|m| *m != viewer)
                .cloned()
                .unwrap_or_else(|| viewer.to_string());
            return json!({
                "id": c.id,
                "created": c.created,
                "is_archived": c.archived,
                "is_im": true,
                "is_org_shared": false,
                "context_team_id": self.team_id,
                "updated": c.updated_ms,
                "user": other,
                "is_user_deleted": self.user(&other).map(|u| u.deleted).unwrap_or(false),
                "priority": 0,
            });
        }
        let private = c.kind != ChannelKind::Public;
        let topic_json =
            |t: &Topic| json!({"value": t.value, "creator": t.creator, "last_set": t.last_set});
        json!({
            "id": c.id,
            "name": c.name,
            "is_channel": c.kind == ChannelKind::Public,
            "is_group": c.kind == ChannelKind::Private,
            "is_im": false,
            "is_mpim": c.kind == ChannelKind::Mpim,
            "is_private": private,
            "created": c.created,
            "creator": c.creator,
            "is_archived": c.archived,
            "is_general": c.is_general,
            "unlinked": 0,
            "name_normalized": c.name,
            "is_shared": false,
            "is_ext_shared": false,
            "is_org_shared": false,
            "pending_shared": [],
            "is_pending_ext_shared": false,
            "is_member": is_member,
            "context_team_id": self.team_id,
            "updated": c.updated_ms,
            "topic": topic_json(&c.topic),
            "purpose": topic_json(&c.purpose),
            "previous_names": c.previous_names,
            "num_members": c.members.len(),
        })
    }

    /// The thinner channel object of channel_created / channel_rename events.
    pub fn channel_event_json(&self, c: &Channel) -> Value {
        json!({
            "id": c.id,
            "name": c.name,
            "name_normalized": c.name,
            "created": c.created,
            "creator": c.creator,
            "is_channel": c.kind == ChannelKind::Public,
            "is_private": c.kind != ChannelKind::Public,
            "is_mpim": c.kind == ChannelKind::Mpim,
            "is_shared": false,
            "is_ext_shared": false,
            "is_org_shared": false,
            "context_team_id": self.team_id,
            "updated": c.updated_ms,
        })
    }

    pub fn file_urls(&self, f: &File) -> (String, String) {
        let enc = util::percent_encode(&f.name);
        (
            format!(
                "{}/files-pri/{}-{}/{enc}",
                self.base_url, self.team_id, f.id
            ),
            format!(
                "{}/files-pri/{}-{}/download/{enc}",
                self.base_url, self.team_id, f.id
            ),
        )
    }

    /// The file object (slack-protocol.md §2.3 file_share and §5 upload flow).
    pub fn file_json(&self, f: &File) -> Value {
        if f.deleted {
            return json!({"id": f.id, "mode": "tombstone"});
        }
        if let Some(url) = &f.external_url {
            return json!({
                "id": f.id, "created": f.created, "timestamp": f.created, "name": f.name,
                "title": f.title, "mimetype": f.mimetype, "filetype": "gdoc",
                "pretty_type": "Google Docs", "user": f.user, "editable": false, "size": 0,
                "mode": "external", "is_external": true, "external_type": "gdrive",
                "external_url": url, "url_private": url, "is_public": false,
                "permalink": format!("{}/files/{}/{}/{}", self.base_url, f.user, f.id, util::percent_encode(&f.name)),
                "file_access": "visible",
            });
        }
        let (url_private, url_download) = self.file_urls(f);
        let filetype = filetype_of(&f.name, &f.mimetype);
        let mut v = json!({
            "id": f.id,
            "created": f.created,
            "timestamp": f.created,
            "name": f.name,
            "title": f.title,
            "mimetype": f.mimetype,
            "filetype": filetype,
            "pretty_type": filetype.to_uppercase(),
            "user": f.user,
            "user_team": self.team_id,
            "editable": false,
            "size": f.bytes.len(),
            "mode": "hosted",
            "is_external": false,
            "external_type": "",
            "is_public": f.shares.iter().any(|(c, _)| self.channel(c).map(|c| c.kind == ChannelKind::Public).unwrap_or(false)),
            "public_url_shared": false,
            "display_as_bot": false,
            "username": "",
            "url_private": url_private,
            "url_private_download": url_download,
            "permalink": format!("{}/files/{}/{}/{}", self.base_url, f.user, f.id, util::percent_encode(&f.name)),
            "permalink_public": format!("{}/{}-{}-{}", self.base_url, self.team_id, f.id, f.upload_ticket),
            "has_rich_preview": false,
            "file_access": "visible",
        });
        let o = v.as_object_mut().unwrap();
        if let Some(alt) = &f.alt_txt {
            o.insert("alt_txt".into(), json!(alt));
        }
        if f.mimetype.starts_with("image/") {
            let thumb = format!(
                "{}/files-tmb/{}-{}-{}/{}",
                self.base_url,
                self.team_id,
                f.id,
                f.upload_ticket,
                util::percent_encode(&f.name)
            );
            for s in [64, 80, 360, 480] {
                o.insert(format!("thumb_{s}"), json!(thumb));
                o.insert(format!("thumb_{s}_w"), json!(s));
                o.insert(format!("thumb_{s}_h"), json!(s));
            }
            if let Some((w, h)) = util::png_dimensions(&f.bytes) {
                o.insert("original_w".into(), json!(w));
                o.insert("original_h".into(), json!(h));
            }
        }
        if f.mimetype.starts_with("video/") {
            // A still of the video, as a PNG (see the download route).
            o.insert(
                "thumb_video".into(),
                json!(format!(
                    "{}/files-tmb/{}-{}-{}/{}_thumb_video.png",
                    self.base_url,
                    self.team_id,
                    f.id,
                    f.upload_ticket,
                    util::percent_encode(&f.name)
                )),
            );
            o.insert("thumb_video_w".into(), json!(VIDEO_STILL_SIZE));
            o.insert("thumb_video_h".into(), json!(VIDEO_STILL_SIZE));
        }
        if let Some(ms) = f.duration_ms {
            o.insert("duration_ms".into(), json!(ms));
        }
        let mut public = Map::new();
        let mut private = Map::new();
        let mut channels = Vec::new();
        let mut groups = Vec::new();
        let mut ims = Vec::new();
        for (cid, ts) in &f.shares {
            let Some(c) = self.channel(cid) else { continue };
            let share = json!([{"reply_users": [], "reply_users_count": 0, "reply_count": 0, "ts": ts,
                "channel_name": c.name, "team_id": self.team_id, "share_user_id": f.user, "source": "UNKNOWN"}]);
            match c.kind {
                ChannelKind::Public => {
                    public.insert(cid.clone(), share);
                    channels.push(cid.clone());
                }
                ChannelKind::Private | ChannelKind::Mpim => {
                    private.insert(cid.clone(), share);
                    groups.push(cid.clone());
                }
                ChannelKind::Im => {
                    private.insert(cid.clone(), share);
                    ims.push(cid.clone());
                }
            }
        }
        let mut shares = Map::new();
        if !public.is_empty() {
            shares.insert("public".into(), Value::Object(public));
        }
        if !private.is_empty() {
            shares.insert("private".into(), Value::Object(private));
        }
        o.insert("shares".into(), Value::Object(shares));
        o.insert("channels".into(), json!(channels));
        o.insert("groups".into(), json!(groups));
        o.insert("ims".into(), json!(ims));
        o.insert("comments_count".into(), json!(0));
        v
    }

    /// A file as a message event carries it: the whole object, or only the stub Slack sends
    /// for files whose details need files.info.
    pub fn file_in_message(&self, f: &File) -> Value {
        if f.check_file_info && !f.deleted {
            return json!({"id": f.id, "mode": "hosted", "file_access": "check_file_info",
                "created": f.created, "timestamp": f.created, "user": f.user});
        }
        self.file_json(f)
    }

    /// A message as conversations.history / replies show it: stored body plus reactions,
    /// file objects and the thread summary Slack derives.
    pub fn message_json(&self, c: &Channel, m: &Message) -> Value {
        let mut body = m.body.clone();
        if !m.files.is_empty() {
            let files: Vec<Value> = m
                .files
                .iter()
                .filter_map(|id| self.file(id))
                .map(|f| self.file_in_message(f))
                .collect();
            body.insert("files".into(), json!(files));
        }
        if !m.reactions.is_empty() {
            let r: Vec<Value> = m
                .reactions
                .iter()
                .map(|r| json!({"name": r.name, "users": r.users, "count": r.users.len()}))
                .collect();
            body.insert("reactions".into(), json!(r));
        }
        if m.is_reply() {
            if let Some(parent) = m.thread_ts.as_deref().and_then(|t| c.message(t))
                && let Some(u) = &parent.user
            {
                body.insert("parent_user_id".into(), json!(u));
            }
        } else {
            let replies: Vec<&Message> = c.replies(&m.ts).collect();
            if !replies.is_empty() {
                let mut users: Vec<String> = Vec::new();
                for r in &replies {
                    if let Some(u) = &r.user
                        && !users.contains(u)
                    {
                        users.push(u.clone());
                    }
                }
                body.insert("thread_ts".into(), json!(m.ts));
                body.insert("reply_count".into(), json!(replies.len()));
                body.insert("reply_users_count".into(), json!(users.len()));
                body.insert("latest_reply".into(), json!(replies.last().unwrap().ts));
                body.insert("reply_users".into(), json!(users));
                body.insert("is_locked".into(), json!(false));
                body.insert("subscribed".into(), json!(false));
            }
        }
        Value::Object(body)
    }
}

pub(crate) fn add_reaction(m: &mut Message, name: &str, user: &str) -> bool {
    match m.reactions.iter_mut().find(|r| r.name == name) {
        Some(r) if r.users.iter().any(|u| u == user) => false,
        Some(r) => {
            r.users.push(user.to_string());
            true
        }
        None => {
            m.reactions.push(Reaction {
                name: name.to_string(),
                users: vec![user.to_string()],
            });
            true
        }
    }
}

pub(crate) fn remove_reaction(m: &mut Message, name: &str, user: &str) -> bool {
    let Some(i) = m.reactions.iter().position(|r| r.name == name) else {
        return false;
    };
    let r = &mut m.reactions[i];
    let Some(j) = r.users.iter().position(|u| u == user) else {
        return false;
    };
    r.users.remove(j);
    if r.users.is_empty() {
        m.reactions.remove(i);
    }
    true
}

/// Slack's short `filetype` from the name, falling back to the MIME type.
pub fn filetype_of(name: &str, mimetype: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" | "jpg" | "gif" | "pdf" | "zip" | "mp4" | "webp" | "mp3" | "csv" | "html" => ext,
        "jpeg" => "jpg".into(),
        "txt" => "text".into(),
        "md" => "markdown".into(),
        "" => match mimetype {
            "image/png" => "png".into(),
            "image/jpeg" => "jpg".into(),
            "text/plain" => "text".into(),
            _ => "binary".into(),
        },
        _ => "binary".into(),
    }
}
