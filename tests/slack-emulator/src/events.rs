//! Events API payloads: inner events as the workspace changes, the visibility rule (which
//! subscription delivers an event and whether the bot may see it), and the outer
//! `event_callback` wrapper (slack-protocol.md §2.1).

use serde_json::{Value, json};

use crate::model::{Channel, Message, Workspace};
use crate::util;

/// An inner event before wrapping. `deliver` is decided by the action at the moment the bot's
/// visibility is known (e.g. before a leave, after a join).
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub event: Value,
    pub subscription: String,
    pub channel: Option<String>,
    pub deliver: bool,
}

impl RawEvent {
    pub fn new(event: Value, subscription: &str, channel: Option<&str>, deliver: bool) -> Self {
        RawEvent {
            event,
            subscription: subscription.to_string(),
            channel: channel.map(str::to_string),
            deliver,
        }
    }
}

impl Workspace {
    /// Wraps an inner event as Slack's outer `event_callback` payload, or `None` when the app
    /// is not subscribed to it or may not see it.
    pub(crate) fn wrap_event(&self, raw: &RawEvent) -> Option<Value> {
        if !raw.deliver || !self.bot_events.contains(&raw.subscription) {
            return None;
        }
        let et = raw.event["type"].as_str().unwrap_or("message");
        let mut ctx = json!({"et": et, "tid": self.team_id, "aid": self.app_id});
        if let Some(c) = &raw.channel {
            ctx["cid"] = json!(c);
        }
        let event_context = format!("4-{}", util::base64_encode(ctx.to_string().as_bytes()));
        Some(json!({
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": null,
            "api_app_id": self.app_id,
            "event": raw.event,
            "type": "event_callback",
            "event_id": util::event_id(),
            "event_time": util::now_secs(),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": event_context,
        }))
    }

    /// A `message` event (any subtype) for a message in `c`, delivered only to members.
    pub(crate) fn message_event(&self, c: &Channel, mut event: Value, event_ts: &str) -> RawEvent {
        let o = event.as_object_mut().expect("message event is an object");
        o.insert("channel".into(), json!(c.id));
        o.insert("event_ts".into(), json!(event_ts));
        o.insert("channel_type".into(), json!(c.kind.message_channel_type()));
        RawEvent::new(
            event,
            c.kind.message_subscription(),
            Some(&c.id),
            self.bot_is_member(c),
        )
    }

    /// The `message` event for a newly posted message: its stored body, with file objects.
    pub(crate) fn new_message_event(&self, c: &Channel, m: &Message) -> RawEvent {
        let mut ev = serde_json::Value::Object(m.body.clone());
        if !m.files.is_empty() {
            let files: Vec<Value> = m
                .files
                .iter()
                .filter_map(|f| self.file(f))
                .map(|f| self.file_in_message(f))
                .collect();
            ev["files"] = json!(files);
        }
        if m.is_reply()
            && let Some(parent) = m.thread_ts.as_deref().and_then(|t| c.message(t))
            && let Some(u) = &parent.user
        {
            ev["parent_user_id"] = json!(u);
        }
        self.message_event(c, ev, &m.ts)
    }

    /// `message_changed` for `after` (rendered as history shows it) replacing `before`.
    pub(crate) fn message_changed_event(
        &self,
        c: &Channel,
        before: Value,
        after: Value,
        event_ts: &str,
    ) -> RawEvent {
        let ev = json!({
            "type": "message",
            "subtype": "message_changed",
            "hidden": true,
            "message": after,
            "previous_message": before,
            "ts": event_ts,
        });
        self.message_event(c, ev, event_ts)
    }

    /// `message_deleted` for a message whose last rendering was `before`.
    pub(crate) fn message_deleted_event(
        &self,
        c: &Channel,
        before: Value,
        deleted_ts: &str,
        event_ts: &str,
    ) -> RawEvent {
        let ev = json!({
            "type": "message",
            "subtype": "message_deleted",
            "hidden": true,
            "deleted_ts": deleted_ts,
            "previous_message": before,
            "ts": event_ts,
        });
        self.message_event(c, ev, event_ts)
    }

    /// `member_joined_channel` / `member_left_channel` use single-letter channel types.
    pub(crate) fn member_channel_type(c: &Channel) -> &'static str {
        match c.kind {
            crate::model::ChannelKind::Public => "C",
            _ => "G",
        }
    }

    pub(crate) fn user_change_event(&self, user: &str) -> Option<RawEvent> {
        let u = self.user(user)?;
        let ev = json!({
            "type": "user_change",
            "user": self.user_json(u, self.scopes.contains("users:read.email")),
            "cache_ts": util::now_secs(),
            "event_ts": self.clock.next(),
        });
        Some(RawEvent::new(ev, "user_change", None, true))
    }
}
