//! Message formatting between Slack (mrkdwn, rich_text blocks) and Matrix (HTML + plain body).
//! Pure converters: the caller resolves users and channels into [`SlackContext`] /
//! [`MatrixContext`] beforehand, so nothing here does I/O.

use std::collections::BTreeMap;

use crate::ids::{ChannelId, Ts};
use serde_json::Value;

mod attachments;
pub mod emoji;
pub mod html;
pub mod mrkdwn;
mod render;
pub use render::escape_html;
pub mod rich_text;

/// A Slack message converted for Matrix (`m.text` content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatrixMessage {
    /// Plain text fallback: mentions as display names, emoji as unicode.
    pub body: String,
    /// `org.matrix.custom.html`; `None` when the plain body says it all.
    pub formatted_body: Option<String>,
    /// MXIDs of mentioned users, for `m.mentions.user_ids`.
    pub mentioned_users: Vec<String>,
    /// `@here` / `@channel` / `@everyone`, for `m.mentions.room`.
    pub mentions_room: bool,
}

/// A Slack user as seen from Matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub mxid: String,
    pub name: String,
}

/// A Slack channel as seen from Matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRef {
    /// The portal room, when one exists.
    pub room_id: Option<String>,
    pub name: String,
}

/// A Slack user group as seen from Matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// Without the `@`.
    pub handle: String,
    /// The Matrix users of its members, all mentioned when the group is.
    pub members: Vec<String>,
}

/// Lookups for Slack → Matrix, filled by the caller from [`referenced_ids`].
#[derive(Debug, Clone, Default)]
pub struct SlackContext {
    /// Slack user id → ghost (or puppeted Matrix user).
    pub users: BTreeMap<String, Mention>,
    /// Slack channel id → portal.
    pub channels: BTreeMap<String, ChannelRef>,
    /// User group id (`S…`) → handle and members.
    pub usergroups: BTreeMap<String, GroupRef>,
    /// A bridged Slack message (channel, ts) → the matrix.to link of its event, for
    /// permalinks in the text.
    pub messages: BTreeMap<(String, String), String>,
    /// A workspace custom emoji (name without colons) → its image on Matrix (`mxc://…`),
    /// shown inline as an emoticon.
    pub emoji: BTreeMap<String, String>,
}

/// The conversation and ts a Slack message permalink points at
/// (`https://acme.slack.com/archives/C0123/p1700000000000100`, maybe with `?thread_ts=…`).
pub fn slack_permalink(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    if !(host == "slack.com" || host.ends_with(".slack.com")) {
        return None;
    }
    let path = path.split(['?', '#']).next()?;
    let mut parts = path.split('/');
    if parts.next()? != "archives" {
        return None;
    }
    let channel = parts.next().filter(|c| !c.is_empty())?;
    let digits = parts.next()?.strip_prefix('p')?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) || parts.next().is_some() {
        return None;
    }
    Some((
        channel.to_owned(),
        format!("{}.{}", &digits[..10], &digits[10..]),
    ))
}

/// The Slack messages a message links to (its permalinks), for [`SlackContext::messages`].
pub fn referenced_permalinks(
    text: &str,
    blocks: Option<&Value>,
    attachments: Option<&Value>,
) -> Vec<(String, String)> {
    let blocks = blocks.map(Value::to_string).unwrap_or_default();
    let attachments = attachments.map(Value::to_string).unwrap_or_default();
    let mut out = Vec::new();
    for source in [text, blocks.as_str(), attachments.as_str()] {
        for (i, _) in source.match_indices("https://") {
            let url: String = source[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"|>\"\\<".contains(*c))
                .collect();
            if let Some(target) = slack_permalink(&url)
                && !out.contains(&target)
            {
                out.push(target);
            }
        }
    }
    out
}

/// Lookups for Matrix → Slack.
#[derive(Debug, Clone, Default)]
pub struct MatrixContext {
    /// MXID → Slack user id (ghosts map to their Slack user).
    pub users: BTreeMap<String, String>,
    /// Matrix room id → Slack channel id.
    pub rooms: BTreeMap<String, String>,
    /// Matrix event id of a bridged message → its Slack permalink.
    pub events: BTreeMap<String, String>,
}

/// The permalink Slack gives a message: `https://<domain>.slack.com/archives/<channel>/p<ts>`,
/// with the thread for a reply.
pub fn slack_permalink_of(
    domain: &str,
    channel: &ChannelId,
    ts: &Ts,
    thread_ts: Option<&Ts>,
) -> String {
    let mut url = format!(
        "https://{domain}.slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    );
    if let Some(t) = thread_ts.filter(|t| *t != ts) {
        url.push_str(&format!("?thread_ts={t}&cid={channel}"));
    }
    url
}

/// Every Slack user and channel id a message refers to (text and blocks), so the caller can
/// resolve them before calling [`slack_to_matrix`]. Deduplicated, in order of appearance.
pub fn referenced_ids(text: &str, blocks: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut channels = Vec::new();
    if let Some(blocks) = blocks {
        rich_text::collect_ids(blocks, &mut users, &mut channels);
    }
    mrkdwn::collect_ids(text, &mut users, &mut channels);
    (users, channels)
}

/// Converts a Slack message: `rich_text` blocks when present, the mrkdwn `text` otherwise.
pub fn slack_to_matrix(text: &str, blocks: Option<&Value>, ctx: &SlackContext) -> MatrixMessage {
    slack_message_to_matrix(text, blocks, None, ctx)
}

/// [`slack_to_matrix`] with the message's legacy `attachments` after its text.
pub fn slack_message_to_matrix(
    text: &str,
    blocks: Option<&Value>,
    attachments: Option<&Value>,
    ctx: &SlackContext,
) -> MatrixMessage {
    // The mrkdwn text carries labels (`<@U1|bob>`, `<!subteam^S1|@team>`) that blocks lack; they
    // are the best fallback for ids the caller could not resolve.
    let labels = mrkdwn::labels(text);
    let mut r = render::Render::new(ctx, &labels);
    if !blocks.is_some_and(|b| rich_text::render_blocks(&mut r, b)) {
        // Blocks without text (or none): the text says it all, and the images when there
        // is no text.
        let images = std::mem::replace(&mut r, render::Render::new(ctx, &labels));
        mrkdwn::render(&mut r, text);
        if r.is_empty() {
            r = images;
        }
    }
    if let Some(a) = attachments {
        attachments::render(&mut r, a);
    }
    r.finish()
}

/// The user groups (`S…`) a message mentions, in its text, blocks and attachments.
/// The custom emoji a message's `rich_text` names: `emoji` elements without a code point that
/// are no standard emoji (Slack marks emoji explicitly there, so no lookup is wasted on text
/// that merely has colons).
pub fn referenced_custom_emoji(blocks: Option<&Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("emoji")
                    && map.get("unicode").is_none()
                    && let Some(name) = map.get("name").and_then(Value::as_str)
                    && emoji::shortcode_to_unicode(name).is_none()
                    && !out.iter().any(|o| o == name)
                {
                    out.push(name.to_owned());
                }
                map.values().for_each(|v| walk(v, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(b) = blocks {
        walk(b, &mut out);
    }
    out
}

pub fn referenced_usergroups(
    text: &str,
    blocks: Option<&Value>,
    attachments: Option<&Value>,
) -> Vec<String> {
    fn from_text(text: &str, out: &mut Vec<String>) {
        for (i, _) in text.match_indices("<!subteam^") {
            let rest = &text[i + "<!subteam^".len()..];
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !id.is_empty() && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    fn from_blocks(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| from_blocks(i, out)),
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("usergroup")
                    && let Some(id) = map.get("usergroup_id").and_then(Value::as_str)
                    && !out.iter().any(|o| o == id)
                {
                    out.push(id.to_owned());
                }
                if let Some(t) = map.get("text").and_then(Value::as_str) {
                    from_text(t, out);
                }
                map.values().for_each(|v| from_blocks(v, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    from_text(text, &mut out);
    if let Some(b) = blocks {
        from_blocks(b, &mut out);
    }
    for t in attachments.map(attachments::texts).unwrap_or_default() {
        from_text(t, &mut out);
    }
    out
}

/// The ids of [`referenced_ids`] plus those the attachments mention.
pub fn referenced_ids_with(
    text: &str,
    blocks: Option<&Value>,
    attachments: Option<&Value>,
) -> (Vec<String>, Vec<String>) {
    let (mut users, mut channels) = referenced_ids(text, blocks);
    for t in attachments.map(attachments::texts).unwrap_or_default() {
        mrkdwn::collect_ids(t, &mut users, &mut channels);
    }
    (users, channels)
}

/// Converts a Matrix message to Slack mrkdwn: the HTML when present, the plain body otherwise
/// (also when the HTML nests too deep to be a message anyone wrote).
pub fn matrix_to_slack(body: &str, formatted_body: Option<&str>, ctx: &MatrixContext) -> String {
    match formatted_body {
        Some(html) if !html.trim().is_empty() && !html::too_complex(html) => {
            html::to_slack(html, ctx)
        }
        _ => html::escape_slack(body),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn slack_ctx() -> SlackContext {
        let mut ctx = SlackContext::default();
        ctx.users.insert(
            "U1".into(),
            Mention {
                mxid: "@slack_t1-u1:example.com".into(),
                name: "Alice".into(),
            },
        );
        ctx.channels.insert(
            "C1".into(),
            ChannelRef {
                room_id: Some("!general:example.com".into()),
                name: "general".into(),
            },
        );
        ctx
    }

    fn matrix_ctx() -> MatrixContext {
        let mut ctx = MatrixContext::default();
        ctx.users
            .insert("@slack_t1-u1:example.com".into(), "U1".into());
        ctx.rooms.insert("!general:example.com".into(), "C1".into());
        ctx
    }

    #[test]
    fn referenced_ids_from_text_and_blocks() {
        let blocks = json!([{"type":"rich_text","block_id":"2Le","elements":[{"type":"rich_text_section",
            "elements":[{"type":"user","user_id":"U01JKSB8T7Y"},{"type":"text","text":" see "},
            {"type":"channel","channel_id":"C02GD0YEHDJ"}]}]}]);
        let (users, channels) = referenced_ids(
            "<@U01JKSB8T7Y> see <#C02GD0YEHDJ|dev> <@W9|x>",
            Some(&blocks),
        );
        assert_eq!(users, ["U01JKSB8T7Y", "W9"]);
        assert_eq!(channels, ["C02GD0YEHDJ"]);
        assert_eq!(referenced_ids("", None), (vec![], vec![]));
    }

    #[test]
    fn attachments_of_integrations_follow_the_text() {
        let attachments = json!([
            {"fallback": "Build #42 failed", "pretext": "CI for <@U1>", "title": "Build #42",
             "title_link": "https://ci.example/42", "text": "*failed* on main",
             "fields": [{"title": "Branch", "value": "main", "short": true}], "color": "danger"},
            {"fallback": "only a fallback"},
            {"from_url": "https://example.com", "title": "A link preview", "fallback": "x"}
        ]);
        let msg = slack_message_to_matrix("", None, Some(&attachments), &slack_ctx());
        assert_eq!(
            msg.body,
            "CI for Alice\n> Build #42 (https://ci.example/42)\n> failed on main\n> Branch: main\n> only a fallback"
        );
        let html = msg.formatted_body.unwrap();
        assert!(
            html.contains(
                "<blockquote><strong><a href=\"https://ci.example/42\">Build #42</a></strong>"
            ),
            "{html}"
        );
        assert!(html.contains("<strong>failed</strong> on main"), "{html}");
        assert!(
            !html.contains("A link preview"),
            "unfurls are left out: {html}"
        );
        assert_eq!(msg.mentioned_users, ["@slack_t1-u1:example.com"]);
        let (users, _) = referenced_ids_with("", None, Some(&attachments));
        assert_eq!(users, ["U1"]);
    }

    #[test]
    fn links_to_bridged_events_become_slack_permalinks() {
        let link = slack_permalink_of("acme", &"C1".into(), &"1700000000.000100".into(), None);
        assert_eq!(link, "https://acme.slack.com/archives/C1/p1700000000000100");
        assert_eq!(
            slack_permalink(&link),
            Some(("C1".into(), "1700000000.000100".into()))
        );
        assert_eq!(
            slack_permalink_of(
                "acme",
                &"C1".into(),
                &"1700000000.000200".into(),
                Some(&"1700000000.000100".into())
            ),
            "https://acme.slack.com/archives/C1/p1700000000000200?thread_ts=1700000000.000100&cid=C1"
        );
        let mut ctx = matrix_ctx();
        ctx.events.insert("$e".into(), link.clone());
        assert_eq!(
            matrix_to_slack(
                "msg",
                Some(
                    "see <a href=\"https://matrix.to/#/!general:example.com/$e?via=example.com\">this</a>"
                ),
                &ctx
            ),
            format!("see <{link}|this>")
        );
        assert_eq!(
            matrix_to_slack(
                "msg",
                Some("<a href=\"https://matrix.to/#/!general:example.com/$other\">that</a>"),
                &ctx
            ),
            "<https://matrix.to/#/!general:example.com/$other|that>",
            "events the bridge does not know keep their Matrix link"
        );
    }

    #[test]
    fn permalinks_to_bridged_messages_link_their_events() {
        assert_eq!(
            slack_permalink(
                "https://acme.slack.com/archives/C1/p1700000000000100?thread_ts=1.2&cid=C1"
            ),
            Some(("C1".into(), "1700000000.000100".into()))
        );
        assert_eq!(
            slack_permalink("https://evil.example/archives/C1/p1700000000000100"),
            None
        );
        assert_eq!(slack_permalink("https://acme.slack.com/archives/C1"), None);
        let text = "see <https://acme.slack.com/archives/C1/p1700000000000100> and \
                    <https://acme.slack.com/archives/C1/p1700000000000200|that>";
        assert_eq!(
            referenced_permalinks(text, None, None),
            [
                ("C1".to_owned(), "1700000000.000100".to_owned()),
                ("C1".to_owned(), "1700000000.000200".to_owned())
            ]
        );
        let mut ctx = slack_ctx();
        ctx.messages.insert(
            ("C1".into(), "1700000000.000100".into()),
            "https://matrix.to/#/!r:x/$e".into(),
        );
        let msg = slack_to_matrix(text, None, &ctx);
        let html = msg.formatted_body.unwrap();
        assert!(
            html.contains("<a href=\"https://matrix.to/#/!r:x/$e\">"),
            "{html}"
        );
        assert!(
            html.contains("href=\"https://acme.slack.com/archives/C1/p1700000000000200\""),
            "unbridged messages keep their Slack link: {html}"
        );
    }

    #[test]
    fn usergroup_mentions_mention_every_member() {
        let mut ctx = slack_ctx();
        ctx.usergroups.insert(
            "S1".into(),
            GroupRef {
                handle: "devs".into(),
                members: vec![
                    "@slack_t1-u1:example.com".into(),
                    "@slack_t1-u2:example.com".into(),
                ],
            },
        );
        let msg = slack_to_matrix("<!subteam^S1|@old-label> ship it", None, &ctx);
        assert_eq!(msg.body, "@devs ship it");
        assert_eq!(
            msg.mentioned_users,
            ["@slack_t1-u1:example.com", "@slack_t1-u2:example.com"]
        );
        let blocks = json!([{"type":"rich_text","elements":[{"type":"rich_text_section",
            "elements":[{"type":"usergroup","usergroup_id":"S2"}]}]}]);
        assert_eq!(
            referenced_usergroups("<!subteam^S1> and <!subteam^S1|@x>", Some(&blocks), None),
            ["S1", "S2"]
        );
        let unknown = slack_to_matrix("<!subteam^S9|@ops>", None, &ctx);
        assert_eq!(unknown.body, "@ops");
        assert!(unknown.mentioned_users.is_empty());
    }

    #[test]
    fn shared_messages_are_quoted_with_their_author_and_link() {
        let attachments = json!([{"is_share": true, "is_msg_unfurl": true,
            "from_url": "https://acme.slack.com/archives/C1/p1700000000000100",
            "author_name": "Alice", "author_id": "U1", "text": "the *plan*",
            "fallback": "[Nov 14] Alice: the plan", "ts": "1700000000.000100"}]);
        let msg = slack_message_to_matrix("look:", None, Some(&attachments), &slack_ctx());
        assert_eq!(
            msg.body,
            "look:\n> Alice: the plan\n> Original message (https://acme.slack.com/archives/C1/p1700000000000100)"
        );
        let html = msg.formatted_body.unwrap();
        assert!(
            html.contains("<blockquote><strong>Alice</strong>: the <strong>plan</strong>"),
            "{html}"
        );
    }

    #[test]
    fn image_and_unknown_blocks_never_leave_a_message_empty() {
        let blocks = json!([{"type":"image","image_url":"https://x/cat.png","alt_text":"a cat"}]);
        let msg = slack_to_matrix("", Some(&blocks), &slack_ctx());
        assert_eq!(msg.body, "a cat (https://x/cat.png)");
        let blocks = json!([{"type":"actions","elements":[{"type":"button"}]}]);
        let msg = slack_to_matrix("Approve the deploy?", Some(&blocks), &slack_ctx());
        assert_eq!(
            msg.body, "Approve the deploy?",
            "unknown blocks fall back to the text"
        );
    }

    #[test]
    fn blocks_preferred_over_text() {
        let blocks = json!([{"type":"rich_text","block_id":"x","elements":[{"type":"rich_text_section",
            "elements":[{"type":"text","text":"from blocks","style":{"bold":true}}]}]}]);
        let msg = slack_to_matrix("*from text*", Some(&blocks), &slack_ctx());
        assert_eq!(msg.body, "from blocks");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<strong>from blocks</strong>")
        );
    }

    #[test]
    fn falls_back_to_text_without_rich_text() {
        let blocks = json!([{"type":"image","image_url":"https://x/y.png","alt_text":"y"}]);
        let msg = slack_to_matrix("*hi*", Some(&blocks), &slack_ctx());
        assert_eq!(msg.formatted_body.as_deref(), Some("<strong>hi</strong>"));
        let msg = slack_to_matrix("plain", None, &slack_ctx());
        assert_eq!(
            msg,
            MatrixMessage {
                body: "plain".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn unresolved_block_mentions_use_text_labels() {
        let blocks = json!([{"type":"rich_text","block_id":"x","elements":[{"type":"rich_text_section",
            "elements":[{"type":"usergroup","usergroup_id":"S01BL602YLU"},{"type":"text","text":" hi "},
            {"type":"user","user_id":"U77"}]}]}]);
        let msg = slack_to_matrix(
            "<!subteam^S01BL602YLU|@devs> hi <@U77|bob>",
            Some(&blocks),
            &SlackContext::default(),
        );
        assert_eq!(msg.body, "@devs hi @bob");
        assert!(msg.mentioned_users.is_empty());
    }

    #[test]
    fn matrix_to_slack_plain_and_html() {
        let ctx = matrix_ctx();
        assert_eq!(matrix_to_slack("a < b & c", None, &ctx), "a &lt; b &amp; c");
        assert_eq!(matrix_to_slack("*x*", Some("<b>x</b>"), &ctx), "*x*");
        assert_eq!(matrix_to_slack("x", Some(""), &ctx), "x");
    }

    #[test]
    fn round_trip_matrix_slack_matrix() {
        let html = "<strong>bold</strong> and <em>it</em> and <del>gone</del> with <code>a*b</code> \
                    see <a href=\"https://example.com/?a=1&amp;b=2\">the docs</a>, \
                    ping <a href=\"https://matrix.to/#/@slack_t1-u1:example.com\">Alice</a> \
                    in <a href=\"https://matrix.to/#/!general:example.com\">#general</a>";
        let slack = matrix_to_slack("fallback", Some(html), &matrix_ctx());
        assert_eq!(
            slack,
            "*bold* and _it_ and ~gone~ with `a*b` see <https://example.com/?a=1&amp;b=2|the docs>, \
             ping <@U1> in <#C1>"
        );
        let back = slack_to_matrix(&slack, None, &slack_ctx());
        assert_eq!(back.formatted_body.as_deref(), Some(html));
        assert_eq!(back.mentioned_users, ["@slack_t1-u1:example.com"]);
        assert_eq!(
            back.body,
            "bold and it and gone with `a*b` see the docs (https://example.com/?a=1&b=2), \
             ping Alice in #general"
        );
    }

    #[test]
    fn round_trip_code_block_and_quote() {
        let html = "<blockquote>quoted <em>words</em></blockquote><pre><code>let x = *p &amp;&amp; y;\nz()</code></pre>";
        let slack = matrix_to_slack("", Some(html), &matrix_ctx());
        assert_eq!(
            slack,
            "> quoted _words_\n```\nlet x = *p &amp;&amp; y;\nz()\n```"
        );
        let back = slack_to_matrix(&slack, None, &slack_ctx());
        assert_eq!(back.formatted_body.as_deref(), Some(html));
    }

    #[test]
    fn round_trip_slack_matrix_slack() {
        let text = "*bold* _it_ ~gone~ `a_b` <https://x.org/?q=1&amp;r=2|x> <@U1> <#C1|general> a &lt; b\n&gt; quoted";
        let msg = slack_to_matrix(text, None, &slack_ctx());
        let back = matrix_to_slack(&msg.body, msg.formatted_body.as_deref(), &matrix_ctx());
        // Slack escapes the quote marker in events; a sent message uses a literal `>`.
        let expected = text
            .replace("<#C1|general>", "<#C1>")
            .replace("\n&gt; ", "\n> ");
        assert_eq!(back, expected);
    }
}
