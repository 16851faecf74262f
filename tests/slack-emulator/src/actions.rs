//! Workspace mutations shared by the test control surface (people acting) and the Web API
//! (the bot acting). Each returns its result plus the inner events it caused, so the caller
//! can hand them to Socket Mode after releasing the workspace lock.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::Error;
use crate::events::RawEvent;
use crate::model::{self, ChannelKind, File, Message, Workspace};
use crate::util;

pub(crate) type Outcome<T> = Result<(T, Vec<RawEvent>), Error>;

/// What a person changes in their profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ProfileUpdate {
    pub real_name: Option<String>,
    pub display_name: Option<String>,
    pub status_text: Option<String>,
    pub status_emoji: Option<String>,
    pub title: Option<String>,
    /// New avatar image bytes (PNG); changes `avatar_hash` and the image URLs.
    #[serde(skip)]
    pub avatar: Option<Vec<u8>>,
}

/// Options for a post through the Web API (chat.postMessage parameters that shape the stored
/// message), by the bot or by a person with a user token.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiPost {
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<String>,
    pub reply_broadcast: bool,
    pub username: Option<String>,
    pub icon_url: Option<String>,
    pub icon_emoji: Option<String>,
    pub metadata: Option<Value>,
}

/// What an edit does to a message's blocks.
#[derive(Debug, Clone)]
pub(crate) enum EditBlocks {
    /// A person's edit in a Slack client: re-derived from the new text.
    Derive,
    /// chat.update without `blocks`: the previous blocks stay.
    Keep,
    /// chat.update with `blocks`; an empty array removes them.
    Set(Value),
}

impl Workspace {
    fn need_user(&self, user: &str) -> Result<(), Error> {
        self.user(user)
            .map(|_| ())
            .ok_or_else(|| Error::new("user_not_found"))
    }

    fn need_member(&self, user: &str, channel: &str) -> Result<(), Error> {
        self.need_user(user)?;
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        if c.archived {
            return Err(Error::new("is_archived"));
        }
        if !c.is_member(user) {
            return Err(Error::new("not_in_channel"));
        }
        Ok(())
    }

    /// Resolves a `thread_ts` to the thread's root, since replying to a reply lands in the
    /// same thread.
    fn thread_root(&self, channel: &str, thread_ts: &str) -> String {
        self.channel(channel)
            .and_then(|c| c.message(thread_ts))
            .and_then(|m| m.thread_ts.clone())
            .unwrap_or_else(|| thread_ts.to_string())
    }

    /// Stores a new message and produces its `message` event, plus the thread parent's
    /// `message_changed` when it is a reply.
    fn insert_and_announce(&mut self, channel: &str, msg: Message) -> Vec<RawEvent> {
        let ts = msg.ts.clone();
        let parent_before = msg.is_reply().then(|| {
            let c = self.channel(channel).unwrap();
            msg.thread_ts
                .as_deref()
                .and_then(|t| c.message(t))
                .map(|p| (p.ts.clone(), self.message_json(c, p)))
        });
        self.push_message(channel, msg);
        let c = self.channel(channel).unwrap();
        let m = c.message(&ts).unwrap();
        let mut out = vec![self.new_message_event(c, m)];
        if self.thread_parent_updates
            && let Some(Some((pts, before))) = parent_before
            && let Some(p) = c.message(&pts)
        {
            let after = self.message_json(c, p);
            let ev_ts = self.clock.next();
            out.push(self.message_changed_event(c, before, after, &ev_ts));
        }
        out
    }

    /// A person posts `text` (mrkdwn as it appears in `text`, already `&lt;`-escaped).
    pub(crate) fn act_post(
        &mut self,
        user: &str,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
        broadcast: bool,
        blocks: Option<Value>,
    ) -> Outcome<String> {
        self.need_member(user, channel)?;
        let root = thread_ts.map(|t| self.thread_root(channel, t));
        if let Some(r) = &root
            && self.channel(channel).unwrap().message(r).is_none()
        {
            return Err(Error::new("thread_not_found"));
        }
        let ts = self.clock.next();
        let mut msg = self.user_message_body(user, text, &ts, root.as_deref());
        if let Some(b) = blocks {
            msg.body.insert("blocks".into(), b);
        }
        if broadcast && let Some(r) = &root {
            msg.body.insert("subtype".into(), json!("thread_broadcast"));
            let c = self.channel(channel).unwrap();
            let parent = c.message(r).unwrap();
            let mut rootv = self.message_json(c, parent);
            // The root summary already counts this reply.
            let count = rootv["reply_count"].as_u64().unwrap_or(0) + 1;
            rootv["reply_count"] = json!(count);
            rootv["thread_ts"] = json!(r);
            msg.body.insert("root".into(), rootv);
        }
        let events = self.insert_and_announce(channel, msg);
        Ok((ts, events))
    }

    /// A post without derived blocks or `client_msg_id` (integrations, Slack's own messages),
    /// shaped by `shape` with its ts before it is stored and announced.
    fn act_post_shaped(
        &mut self,
        user: &str,
        channel: &str,
        text: &str,
        shape: impl FnOnce(&mut serde_json::Map<String, Value>, &str),
    ) -> Outcome<String> {
        self.need_member(user, channel)?;
        let ts = self.clock.next();
        let mut msg = self.user_message_body(user, text, &ts, None);
        msg.body.remove("blocks");
        msg.body.remove("client_msg_id");
        shape(&mut msg.body, &ts);
        let events = self.insert_and_announce(channel, msg);
        Ok((ts, events))
    }

    /// A post with legacy `attachments` and no blocks, as integrations (webhooks, CI bots)
    /// send them.
    pub(crate) fn act_post_attachments(
        &mut self,
        user: &str,
        channel: &str,
        text: &str,
        attachments: Value,
    ) -> Outcome<String> {
        self.act_post_shaped(user, channel, text, |body, _| {
            body.insert("attachments".into(), attachments);
        })
    }

    /// `user` pins (or unpins) a message: `pin_added` / `pin_removed` with the message as
    /// history shows it.
    pub(crate) fn act_pin(
        &mut self,
        user: &str,
        channel: &str,
        ts: &str,
        pinned: bool,
    ) -> Outcome<()> {
        self.need_member(user, channel)?;
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        let message = self.message_json(c, m);
        let author = m.user.clone();
        let visible = c.kind == ChannelKind::Public || self.bot_is_member(c);
        let kind = if pinned { "pin_added" } else { "pin_removed" };
        let now = util::now_secs();
        let mut ev = json!({
            "type": kind,
            "user": user,
            "channel_id": channel,
            "item": {"type": "message", "channel": channel, "message": message,
                     "created": now, "created_by": user},
            "pin_count": 1,
            "pinned_info": {"channel": channel, "pinned_by": user, "pinned_ts": now},
            "event_ts": self.clock.next(),
        });
        if let Some(a) = author {
            ev["item_user"] = json!(a);
        }
        if !pinned {
            ev["has_pins"] = json!(false);
        }
        Ok(((), vec![RawEvent::new(ev, kind, Some(channel), visible)]))
    }

    /// `user` starts a huddle: a `huddle_thread` message with the huddle's `room`.
    pub(crate) fn act_huddle(&mut self, user: &str, channel: &str) -> Outcome<String> {
        self.act_post_shaped(user, channel, "", |body, ts| {
            body.insert("subtype".into(), json!("huddle_thread"));
            let start = ts.split('.').next().unwrap_or_default();
            body.insert(
                "room".into(),
                json!({"id": format!("R{}", ts.replace('.', "")), "name": "", "created_by": user,
                       "date_start": start.parse::<u64>().unwrap_or(0),
                       "participants": [user], "channels": [channel], "is_dm_call": false}),
            );
        })
    }

    /// A `/me` message: `subtype: me_message`, no blocks.
    pub(crate) fn act_me_message(
        &mut self,
        user: &str,
        channel: &str,
        text: &str,
    ) -> Outcome<String> {
        self.need_member(user, channel)?;
        let ts = self.clock.next();
        let mut body = serde_json::Map::new();
        body.insert("type".into(), json!("message"));
        body.insert("subtype".into(), json!("me_message"));
        body.insert("user".into(), json!(user));
        body.insert("text".into(), json!(text));
        body.insert("ts".into(), json!(ts));
        let msg = Message {
            ts: ts.clone(),
            thread_ts: None,
            user: Some(user.into()),
            body,
            reactions: vec![],
            files: vec![],
        };
        Ok((ts.clone(), self.insert_and_announce(channel, msg)))
    }

    /// Edits a message's text (and blocks, see [`EditBlocks`]); `message_changed` follows.
    /// `metadata`: `None` keeps the message's metadata, `Some(None)` removes it,
    /// `Some(Some(m))` replaces it (chat.update's rules).
    pub(crate) fn act_edit(
        &mut self,
        user: &str,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: EditBlocks,
        metadata: Option<Option<Value>>,
    ) -> Outcome<String> {
        self.need_user(user)?;
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        if m.user.as_deref() != Some(user) {
            return Err(Error::new("cant_update_message"));
        }
        let before = self.message_json(c, m);
        let edit_ts = self.clock.next();
        let new_blocks = match blocks {
            EditBlocks::Set(Value::Array(a)) if a.is_empty() => None,
            EditBlocks::Set(b) => Some(b),
            EditBlocks::Keep => m.body.get("blocks").cloned(),
            EditBlocks::Derive if !text.is_empty() => {
                Some(json!([crate::blocks::rich_text_from_mrkdwn(
                    text,
                    &self.emoji
                )]))
            }
            EditBlocks::Derive => None,
        };
        let c = self.channel_mut(channel).unwrap();
        let m = c.message_mut(ts).unwrap();
        m.body.insert("text".into(), json!(text));
        match new_blocks {
            Some(b) => {
                m.body.insert("blocks".into(), b);
            }
            None => {
                m.body.remove("blocks");
            }
        }
        match metadata {
            Some(Some(md)) => {
                m.body.insert("metadata".into(), md);
            }
            Some(None) => {
                m.body.remove("metadata");
            }
            None => {}
        }
        m.body
            .insert("edited".into(), json!({"user": user, "ts": edit_ts}));
        let c = self.channel(channel).unwrap();
        let after = self.message_json(c, c.message(ts).unwrap());
        let ev = self.message_changed_event(c, before, after, &edit_ts);
        Ok((edit_ts, vec![ev]))
    }

    /// Adds a link preview to a message's `attachments`, as Slack does a moment after a post
    /// with a link; the `message_changed` keeps `text` and `edited` as they were.
    pub(crate) fn act_unfurl(
        &mut self,
        channel: &str,
        ts: &str,
        url: &str,
        title: &str,
    ) -> Outcome<()> {
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        let before = self.message_json(c, m);
        let c = self.channel_mut(channel).unwrap();
        let m = c.message_mut(ts).unwrap();
        let attachments = m.body.entry("attachments").or_insert_with(|| json!([]));
        if let Some(list) = attachments.as_array_mut() {
            let id = list.len() + 1;
            list.push(json!({
                "id": id,
                "from_url": url,
                "original_url": url,
                "title": title,
                "title_link": url,
                "fallback": title,
                "service_name": url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default(),
            }));
        }
        let c = self.channel(channel).unwrap();
        let after = self.message_json(c, c.message(ts).unwrap());
        let ev_ts = self.clock.next();
        let ev = self.message_changed_event(c, before, after, &ev_ts);
        Ok(((), vec![ev]))
    }

    /// Deletes a message. A thread root with replies becomes a tombstone, as in Slack.
    pub(crate) fn act_delete(
        &mut self,
        user: Option<&str>,
        channel: &str,
        ts: &str,
    ) -> Outcome<()> {
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        if let Some(u) = user
            && m.user.as_deref() != Some(u)
            && !self.user(u).map(|x| x.is_admin).unwrap_or(false)
        {
            return Err(Error::new("cant_delete_message"));
        }
        let before = self.message_json(c, m);
        let has_replies = !m.is_reply() && c.replies(ts).next().is_some();
        let parent = m.is_reply().then(|| m.thread_ts.clone()).flatten();
        let parent_before = parent
            .as_deref()
            .and_then(|p| c.message(p))
            .map(|p| self.message_json(c, p));
        let ev_ts = self.clock.next();
        let cm = self.channel_mut(channel).unwrap();
        if has_replies {
            let m = cm.message_mut(ts).unwrap();
            let mut body = serde_json::Map::new();
            body.insert("type".into(), json!("message"));
            body.insert("subtype".into(), json!("tombstone"));
            body.insert("text".into(), json!("This message was deleted."));
            body.insert("user".into(), json!("USLACKBOT"));
            body.insert("hidden".into(), json!(true));
            body.insert("ts".into(), json!(ts));
            body.insert("thread_ts".into(), json!(ts));
            m.body = body;
            m.reactions.clear();
            m.files.clear();
        } else {
            cm.messages.retain(|m| m.ts != ts);
        }
        let c = self.channel(channel).unwrap();
        let mut events = vec![self.message_deleted_event(c, before, ts, &ev_ts)];
        if self.thread_parent_updates
            && let (Some(p), Some(pb)) = (parent.as_deref(), parent_before)
            && let Some(pm) = c.message(p)
        {
            let after = self.message_json(c, pm);
            let ts2 = self.clock.next();
            events.push(self.message_changed_event(c, pb, after, &ts2));
        }
        Ok(((), events))
    }

    fn reaction_event(
        &self,
        kind: &str,
        user: &str,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> RawEvent {
        let c = self.channel(channel).unwrap();
        let m = c.message(ts).unwrap();
        let mut ev = json!({
            "type": kind,
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": self.clock.next(),
        });
        // Messages not authored by users (webhooks, legacy bot_message) carry no item_user.
        if let Some(author) = &m.user
            && m.body.get("user").is_some()
        {
            ev["item_user"] = json!(author);
        }
        RawEvent::new(ev, kind, Some(channel), self.bot_is_member(c))
    }

    pub(crate) fn act_react(
        &mut self,
        user: &str,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Outcome<()> {
        self.need_user(user)?;
        let name = validate_reaction_name(name)?;
        let c = self
            .channel_mut(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message_mut(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        if m.reactions.len() >= 23 && !m.reactions.iter().any(|r| r.name == name) {
            return Err(Error::new("too_many_reactions"));
        }
        if !model::add_reaction(m, &name, user) {
            return Err(Error::new("already_reacted"));
        }
        Ok((
            (),
            vec![self.reaction_event("reaction_added", user, channel, ts, &name)],
        ))
    }

    pub(crate) fn act_unreact(
        &mut self,
        user: &str,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Outcome<()> {
        self.need_user(user)?;
        let name = validate_reaction_name(name)?;
        let c = self
            .channel_mut(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let m = c
            .message_mut(ts)
            .ok_or_else(|| Error::new("message_not_found"))?;
        if !model::remove_reaction(m, &name, user) {
            return Err(Error::new("no_reaction"));
        }
        Ok((
            (),
            vec![self.reaction_event("reaction_removed", user, channel, ts, &name)],
        ))
    }

    /// Creates a file record (not yet shared anywhere).
    pub(crate) fn new_file(
        &mut self,
        user: &str,
        name: &str,
        bytes: Vec<u8>,
        mimetype: &str,
    ) -> String {
        let id = util::slack_id('F');
        self.files.push(File {
            id: id.clone(),
            name: name.to_string(),
            title: name.to_string(),
            mimetype: mimetype.to_string(),
            user: user.to_string(),
            created: util::now_secs(),
            bytes: Arc::new(bytes),
            declared_len: None,
            uploaded: true,
            completed: true,
            alt_txt: None,
            shares: vec![],
            upload_ticket: util::random_hex(10),
            external_url: None,
            check_file_info: false,
            deleted: false,
            duration_ms: None,
        });
        id
    }

    /// Shares existing files into a channel as one `file_share` message by `user`, plus a
    /// `file_shared` event per file (bridges must not double-handle the pair). `via_api`: the
    /// share came from files.completeUploadExternal (shaped as an API post by `user`, the bot
    /// or a person), else from a Slack client.
    pub(crate) fn share_file_message(
        &mut self,
        user: &str,
        channel: &str,
        files: &[String],
        text: &str,
        thread_ts: Option<&str>,
        via_api: bool,
    ) -> Outcome<String> {
        let root = thread_ts.map(|t| self.thread_root(channel, t));
        let ts = self.clock.next();
        let mut msg = if via_api {
            self.api_message_body(
                user,
                &ApiPost {
                    text: text.to_string(),
                    thread_ts: root.clone(),
                    ..Default::default()
                },
                &ts,
            )
        } else {
            let mut m = self.user_message_body(user, text, &ts, root.as_deref());
            if text.is_empty() {
                m.body.remove("client_msg_id");
            }
            m
        };
        msg.body.insert("subtype".into(), json!("file_share"));
        msg.body.insert("upload".into(), json!(true));
        msg.body.insert("display_as_bot".into(), json!(false));
        msg.files = files.to_vec();
        for id in files {
            if let Some(f) = self.file_mut(id) {
                f.shares.push((channel.to_string(), ts.clone()));
            }
        }
        let mut events = self.insert_and_announce(channel, msg);
        let c = self.channel(channel).unwrap();
        for id in files {
            let fs = json!({
                "type": "file_shared",
                "channel_id": channel,
                "file_id": id,
                "user_id": user,
                "file": {"id": id},
                "event_ts": self.clock.next(),
            });
            events.push(RawEvent::new(
                fs,
                "file_shared",
                Some(channel),
                self.bot_is_member(c),
            ));
        }
        Ok((ts, events))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn act_share_file(
        &mut self,
        user: &str,
        channel: &str,
        name: &str,
        bytes: Vec<u8>,
        mimetype: &str,
        comment: &str,
        thread_ts: Option<&str>,
    ) -> Outcome<(String, String)> {
        self.need_member(user, channel)?;
        let id = self.new_file(user, name, bytes, mimetype);
        let (ts, ev) = self.share_file_message(
            user,
            channel,
            std::slice::from_ref(&id),
            comment,
            thread_ts,
            false,
        )?;
        Ok(((id, ts), ev))
    }

    /// `user` shares several files in one message (with `comment`, into a thread).
    pub(crate) fn act_share_files(
        &mut self,
        user: &str,
        channel: &str,
        specs: Vec<crate::FileSpec>,
        comment: &str,
        thread_ts: Option<&str>,
    ) -> Outcome<(Vec<String>, String)> {
        self.need_member(user, channel)?;
        let ids: Vec<String> = specs
            .into_iter()
            .map(|spec| {
                let id = self.new_file(user, &spec.name, spec.bytes, &spec.mimetype);
                let f = self.file_mut(&id).unwrap();
                f.external_url = spec.external_url;
                f.check_file_info = spec.check_file_info;
                f.duration_ms = spec.duration_ms;
                id
            })
            .collect();
        let (ts, ev) = self.share_file_message(user, channel, &ids, comment, thread_ts, false)?;
        Ok(((ids, ts), ev))
    }

    /// Deletes a file: `file_deleted`, and each message that shared it shows a tombstone in
    /// its place (`message_changed` without `edited`: not an edit).
    pub(crate) fn act_delete_file(&mut self, file: &str) -> Outcome<()> {
        let f = self
            .file(file)
            .ok_or_else(|| Error::new("file_not_found"))?
            .clone();
        let mut before = Vec::new();
        for (cid, ts) in &f.shares {
            if let Some(c) = self.channel(cid)
                && let Some(m) = c.message(ts)
            {
                before.push((cid.clone(), ts.clone(), self.message_json(c, m)));
            }
        }
        self.file_mut(file).unwrap().deleted = true;
        let mut events = vec![RawEvent::new(
            json!({"type": "file_deleted", "file_id": file, "event_ts": self.clock.next()}),
            "file_deleted",
            None,
            true,
        )];
        for (cid, ts, before) in before {
            let c = self.channel(&cid).unwrap();
            let after = self.message_json(c, c.message(&ts).unwrap());
            let ev_ts = self.clock.next();
            events.push(self.message_changed_event(c, before, after, &ev_ts));
        }
        Ok(((), events))
    }

    pub(crate) fn act_rename(&mut self, user: &str, channel: &str, new_name: &str) -> Outcome<()> {
        self.need_user(user)?;
        validate_channel_name(new_name)?;
        if self.channel_by_name(new_name).is_some() {
            return Err(Error::new("name_taken"));
        }
        let c = self
            .channel_mut(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        if matches!(c.kind, ChannelKind::Im | ChannelKind::Mpim) {
            return Err(Error::new("method_not_supported_for_channel_type"));
        }
        let old = std::mem::replace(&mut c.name, new_name.to_string());
        c.previous_names.insert(0, old.clone());
        c.updated_ms = util::now_secs() * 1000;
        let c = self.channel(channel).unwrap();
        let member = self.bot_is_member(c);
        let mut events = Vec::new();
        let rename = if c.kind == ChannelKind::Public {
            RawEvent::new(
                json!({"type": "channel_rename", "channel": self.channel_event_json(c), "event_ts": self.clock.next()}),
                "channel_rename",
                Some(channel),
                true,
            )
        } else {
            RawEvent::new(
                json!({"type": "group_rename", "channel": self.channel_event_json(c), "event_ts": self.clock.next()}),
                "group_rename",
                Some(channel),
                member,
            )
        };
        events.push(rename);
        let uname = self.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let ts = self.clock.next();
        let msg = self.system_message(
            user,
            &ts,
            "channel_name",
            &format!("<@{user}|{uname}> has renamed the channel from \"{old}\" to \"{new_name}\""),
            &[("old_name", json!(old)), ("name", json!(new_name))],
        );
        events.extend(self.insert_and_announce(channel, msg));
        Ok(((), events))
    }

    fn system_message(
        &self,
        user: &str,
        ts: &str,
        subtype: &str,
        text: &str,
        extra: &[(&str, Value)],
    ) -> Message {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), json!("message"));
        body.insert("subtype".into(), json!(subtype));
        body.insert("ts".into(), json!(ts));
        body.insert("user".into(), json!(user));
        body.insert("text".into(), json!(text));
        for (k, v) in extra {
            body.insert(k.to_string(), v.clone());
        }
        Message {
            ts: ts.to_string(),
            thread_ts: None,
            user: Some(user.to_string()),
            body,
            reactions: vec![],
            files: vec![],
        }
    }

    pub(crate) fn act_set_topic(&mut self, user: &str, channel: &str, topic: &str) -> Outcome<()> {
        self.need_member(user, channel)?;
        let c = self.channel_mut(channel).unwrap();
        c.topic = model::Topic {
            value: topic.to_string(),
            creator: user.to_string(),
            last_set: util::now_secs(),
        };
        let uname = self.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let ts = self.clock.next();
        let msg = self.system_message(
            user,
            &ts,
            "channel_topic",
            &format!("<@{user}|{uname}> set the channel topic: {topic}"),
            &[("topic", json!(topic))],
        );
        Ok(((), self.insert_and_announce(channel, msg)))
    }

    pub(crate) fn act_set_purpose(
        &mut self,
        user: &str,
        channel: &str,
        purpose: &str,
    ) -> Outcome<()> {
        self.need_member(user, channel)?;
        let c = self.channel_mut(channel).unwrap();
        c.purpose = model::Topic {
            value: purpose.to_string(),
            creator: user.to_string(),
            last_set: util::now_secs(),
        };
        let uname = self.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let ts = self.clock.next();
        let msg = self.system_message(
            user,
            &ts,
            "channel_purpose",
            &format!("<@{user}|{uname}> set the channel purpose: {purpose}"),
            &[("purpose", json!(purpose))],
        );
        Ok(((), self.insert_and_announce(channel, msg)))
    }

    /// `user` joins (or, with `inviter`, is added to) a channel: `member_joined_channel` plus
    /// the `channel_join` message. When the bot itself joins, it sees both.
    pub(crate) fn act_join(
        &mut self,
        user: &str,
        channel: &str,
        inviter: Option<&str>,
    ) -> Outcome<bool> {
        self.need_user(user)?;
        let c = self
            .channel_mut(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        if c.archived {
            return Err(Error::new("is_archived"));
        }
        if c.kind == ChannelKind::Im {
            return Err(Error::new("method_not_supported_for_channel_type"));
        }
        if c.is_member(user) {
            return Ok((false, vec![]));
        }
        c.members.push(user.to_string());
        let c = self.channel(channel).unwrap();
        let mut ev = json!({
            "type": "member_joined_channel",
            "user": user,
            "channel": channel,
            "channel_type": Self::member_channel_type(c),
            "team": self.team_id,
            "event_ts": self.clock.next(),
        });
        if let Some(i) = inviter {
            ev["inviter"] = json!(i);
        }
        let mut events = vec![RawEvent::new(
            ev,
            "member_joined_channel",
            Some(channel),
            self.bot_is_member(c),
        )];
        let uname = self.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let ts = self.clock.next();
        let mut extra = vec![];
        if let Some(i) = inviter {
            extra.push(("inviter", json!(i)));
        }
        let msg = self.system_message(
            user,
            &ts,
            "channel_join",
            &format!("<@{user}|{uname}> has joined the channel"),
            &extra,
        );
        events.extend(self.insert_and_announce(channel, msg));
        Ok((true, events))
    }

    pub(crate) fn act_leave(&mut self, user: &str, channel: &str) -> Outcome<()> {
        self.need_user(user)?;
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        if !c.is_member(user) {
            return Err(Error::new("not_in_channel"));
        }
        if c.kind == ChannelKind::Im {
            return Err(Error::new("method_not_supported_for_channel_type"));
        }
        // The leave is visible to the bot if it was a member before (it sees its own leave).
        let visible = self.bot_is_member(c);
        let uname = self.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let ts = self.clock.next();
        let msg = self.system_message(
            user,
            &ts,
            "channel_leave",
            &format!("<@{user}|{uname}> has left the channel"),
            &[],
        );
        let mut events = self.insert_and_announce(channel, msg);
        let c = self.channel_mut(channel).unwrap();
        c.members.retain(|m| m != user);
        let c = self.channel(channel).unwrap();
        events.push(RawEvent::new(
            json!({
                "type": "member_left_channel",
                "user": user,
                "channel": channel,
                "channel_type": Self::member_channel_type(c),
                "team": self.team_id,
                "event_ts": self.clock.next(),
            }),
            "member_left_channel",
            Some(channel),
            visible,
        ));
        Ok(((), events))
    }

    pub(crate) fn act_create_channel(
        &mut self,
        user: &str,
        name: &str,
        private: bool,
    ) -> Outcome<String> {
        self.need_user(user)?;
        validate_channel_name(name)?;
        if self.channel_by_name(name).is_some() {
            return Err(Error::new("name_taken"));
        }
        let kind = if private {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        };
        let id = self.insert_channel(util::slack_id('C'), name, kind, user.to_string(), &[user]);
        let c = self.channel_mut(&id).unwrap();
        c.created = util::now_secs();
        let c = self.channel(&id).unwrap();
        let mut events = Vec::new();
        if !private {
            events.push(RawEvent::new(
                json!({"type": "channel_created", "channel": self.channel_event_json(c), "event_ts": self.clock.next()}),
                "channel_created",
                Some(&id),
                true,
            ));
        }
        Ok((id, events))
    }

    pub(crate) fn act_archive(&mut self, user: &str, channel: &str, archived: bool) -> Outcome<()> {
        self.need_user(user)?;
        let c = self
            .channel_mut(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        c.archived = archived;
        let c = self.channel(channel).unwrap();
        let kind = if archived {
            "channel_archive"
        } else {
            "channel_unarchive"
        };
        let visible = c.kind == ChannelKind::Public || self.bot_is_member(c);
        Ok((
            (),
            vec![RawEvent::new(
                json!({"type": kind, "channel": channel, "user": user, "event_ts": self.clock.next()}),
                kind,
                Some(channel),
                visible,
            )],
        ))
    }

    /// An admin deletes a channel: it is gone (every call naming it answers
    /// `channel_not_found`) and `channel_deleted` is sent.
    pub(crate) fn act_delete_channel(&mut self, channel: &str) -> Outcome<()> {
        let c = self
            .channel(channel)
            .ok_or_else(|| Error::new("channel_not_found"))?;
        let visible = c.kind == ChannelKind::Public || self.bot_is_member(c);
        self.channels.retain(|c| c.id != channel);
        Ok((
            (),
            vec![RawEvent::new(
                json!({"type": "channel_deleted", "channel": channel, "event_ts": self.clock.next()}),
                "channel_deleted",
                Some(channel),
                visible,
            )],
        ))
    }

    pub(crate) fn act_add_user(&mut self, name: &str, real_name: &str) -> Outcome<String> {
        let id = self.add_user(name, real_name);
        let u = self.user(&id).unwrap();
        let ev = json!({
            "type": "team_join",
            "user": self.user_json(u, self.scopes.contains("users:read.email")),
            "event_ts": self.clock.next(),
        });
        Ok((id, vec![RawEvent::new(ev, "team_join", None, true)]))
    }

    pub(crate) fn act_update_profile(&mut self, user: &str, p: ProfileUpdate) -> Outcome<()> {
        let u = self
            .user_mut(user)
            .ok_or_else(|| Error::new("user_not_found"))?;
        if let Some(v) = p.real_name {
            u.real_name = v;
        }
        if let Some(v) = p.display_name {
            u.display_name = v;
        }
        if let Some(v) = p.status_text {
            u.status_text = v;
        }
        if let Some(v) = p.status_emoji {
            u.status_emoji = v;
        }
        if let Some(v) = p.title {
            u.title = v;
        }
        if let Some(bytes) = p.avatar {
            u.avatar = Some(Arc::new(bytes));
            u.avatar_hash = util::random_hex(12);
        }
        u.updated = util::now_secs();
        let ev = self.user_change_event(user).unwrap();
        Ok(((), vec![ev]))
    }

    pub(crate) fn act_add_emoji(&mut self, name: &str, value: &str) -> Outcome<()> {
        self.emoji.insert(name.to_string(), value.to_string());
        let ev = json!({"type": "emoji_changed", "subtype": "add", "name": name, "value": value,
            "event_ts": self.clock.next()});
        Ok(((), vec![RawEvent::new(ev, "emoji_changed", None, true)]))
    }

    /// The stored form of a message `author` posted through the Web API: the bot's (bot token)
    /// or a person's (their user token).
    pub(crate) fn api_message_body(&self, author: &str, p: &ApiPost, ts: &str) -> Message {
        if author == self.bot_user_id {
            return self.bot_message_body(p, ts);
        }
        // A person's post is a plain message by them: no bot fields, name and icon overrides
        // are not applied, and unlike a client's post no `client_msg_id` and only the blocks
        // it was given.
        let mut m = self.user_message_body(author, &p.text, ts, p.thread_ts.as_deref());
        m.body.remove("client_msg_id");
        m.body.remove("blocks");
        if let Some(b) = &p.blocks {
            m.body.insert("blocks".into(), b.clone());
        }
        if let Some(md) = &p.metadata {
            m.body.insert("metadata".into(), md.clone());
        }
        m
    }

    /// The stored form of a message posted with the bot token. Without name/icon overrides it
    /// has no subtype but `bot_id`/`app_id`/`bot_profile` and `user` = the bot user (a real
    /// capture, slack-protocol.md §2.3); with overrides it takes the legacy
    /// `subtype: bot_message` + `username` + `icons` form, so bridges must handle both.
    fn bot_message_body(&self, p: &ApiPost, ts: &str) -> Message {
        let mut body = serde_json::Map::new();
        let custom = p.username.is_some() || p.icon_url.is_some() || p.icon_emoji.is_some();
        if custom {
            body.insert("subtype".into(), json!("bot_message"));
        } else {
            body.insert("user".into(), json!(self.bot_user_id));
        }
        body.insert("type".into(), json!("message"));
        body.insert("ts".into(), json!(ts));
        body.insert("bot_id".into(), json!(self.bot_id));
        body.insert("app_id".into(), json!(self.app_id));
        body.insert("text".into(), json!(p.text));
        body.insert("team".into(), json!(self.team_id));
        if let Some(u) = &p.username {
            body.insert("username".into(), json!(u));
        }
        if let Some(e) = &p.icon_emoji {
            body.insert("icons".into(), json!({"emoji": e}));
        } else if let Some(u) = &p.icon_url {
            body.insert(
                "icons".into(),
                json!({"image_36": u, "image_48": u, "image_72": u}),
            );
        }
        if let Some(b) = self.bot(&self.bot_id) {
            body.insert("bot_profile".into(), self.bot_profile_json(b));
        }
        if let Some(b) = &p.blocks {
            body.insert("blocks".into(), b.clone());
        }
        if let Some(m) = &p.metadata {
            body.insert("metadata".into(), m.clone());
        }
        if let Some(t) = &p.thread_ts {
            body.insert("thread_ts".into(), json!(t));
        }
        Message {
            ts: ts.to_string(),
            thread_ts: p.thread_ts.clone(),
            user: Some(self.bot_user_id.clone()),
            body,
            reactions: vec![],
            files: vec![],
        }
    }

    /// `author` (the bot user or a person with a user token) posts through chat.postMessage;
    /// returns the ts and the message as history renders it.
    pub(crate) fn api_post(
        &mut self,
        author: &str,
        channel: &str,
        mut p: ApiPost,
    ) -> Outcome<(String, Value)> {
        p.thread_ts = p.thread_ts.map(|t| self.thread_root(channel, &t));
        let ts = self.clock.next();
        let mut msg = self.api_message_body(author, &p, &ts);
        if p.reply_broadcast && p.thread_ts.is_some() {
            msg.body.insert("subtype".into(), json!("thread_broadcast"));
        }
        let events = self.insert_and_announce(channel, msg);
        let c = self.channel(channel).unwrap();
        let rendered = self.message_json(c, c.message(&ts).unwrap());
        Ok(((ts, rendered), events))
    }
}

/// Reaction names go without colons; `thumbsup::skin-tone-2` is the one allowed `::` form.
fn validate_reaction_name(name: &str) -> Result<String, Error> {
    let base = name.split("::").next().unwrap_or("");
    if name.is_empty()
        || base.is_empty()
        || base.contains(':')
        || name.starts_with(':')
        || name.ends_with(':')
        || name.contains(' ')
    {
        return Err(Error::new("invalid_name"));
    }
    Ok(name.to_string())
}

fn validate_channel_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::new("invalid_name_required"));
    }
    if name.chars().count() > 80 {
        return Err(Error::new("invalid_name_maxlength"));
    }
    if name
        .chars()
        .any(|c| c.is_uppercase() || c.is_whitespace() || ".,#@!?".contains(c))
    {
        return Err(Error::new("invalid_name_specials"));
    }
    Ok(())
}
