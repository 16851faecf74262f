//! Every parser of what Slack, the homeserver and the operator send, fed random and mutated
//! input on the stable toolchain (proptest's runner, no nightly fuzzer needed): Socket Mode
//! frames, Events API payloads of every type, `rich_text` blocks, mrkdwn, the Matrix HTML →
//! Slack converter, homeserver transactions and the config loader. None may panic, recurse
//! without bound, or produce output out of proportion to its input.
//!
//! `FUZZ_CASES` sets the inputs per target (default 2,000, what CI runs); `FUZZ_SEED` the
//! seed (default fixed, so a CI failure reproduces). The documented long run:
//! `FUZZ_CASES=1000000 cargo test --release --test fuzz -- --nocapture --test-threads 2`.

use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner},
};
use serde_json::{Value, json};
use slack_bridge::{
    config::{self, Mode},
    format::{self, ChannelRef, GroupRef, MatrixContext, Mention, SlackContext, html, mrkdwn},
    matrix::txn::Transaction,
    slack::{
        events::{EventCallback, MessageSubtype, SlackEvent},
        frames::{self, Frame},
        types::Message,
    },
};

// ---- the runner ----

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("FUZZ_CASES is a number"))
        .unwrap_or(2_000)
}

/// Runs `check` on `cases()` inputs of `strategy`, from a seed fixed per target; a failure
/// panics with the smallest input proptest could shrink it to.
fn fuzz<S: Strategy>(target: &str, strategy: S, check: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("FUZZ_SEED is a number"))
        .unwrap_or(0x5eed_b41d);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in target.bytes().enumerate() {
        bytes[8 + i % 24] ^= b;
    }
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |input| {
        check(input);
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
    println!(
        "{target}: {} inputs, no failure, in {:.1?} (seed {seed})",
        cases(),
        started.elapsed()
    );
}

/// Output out of proportion to the input is a blow-up; mentions, emoji and links grow by a
/// bounded factor (a custom emoji's `<img>` is the largest).
fn assert_proportionate(what: &str, input: usize, output: usize) {
    assert!(
        output <= 64 * input + 4096,
        "{what}: {input} bytes in, {output} bytes out"
    );
}

// ---- text soups ----

fn soup(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(tokens).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
            1 => any::<String>(),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

const MRKDWN: &[&str] = &[
    "*",
    "_",
    "~",
    "`",
    "```",
    ">",
    ">>>",
    "&gt;",
    "&lt;",
    "&amp;",
    "&",
    "<",
    ">",
    "|",
    "\n",
    " ",
    "a",
    "word",
    "é",
    "😀",
    "\u{200b}",
    ":",
    "::",
    ":smile:",
    ":+1::skin-tone-3:",
    ":party-parrot:",
    ":nope:",
    "<@U1>",
    "<@U1|bob>",
    "<@W2>",
    "<#C1>",
    "<#C1|general>",
    "<#C9|>",
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<!group>",
    "<!subteam^S1|@team>",
    "<!subteam^S1>",
    "<!date^1700000000^{date_short}|Nov 14>",
    "<!date^x",
    "<!other>",
    "<https://example.com>",
    "<https://example.com|label>",
    "<mailto:a@b.c|mail>",
    "<https://x.slack.com/archives/C1/p1700000000000100>",
    "<http://x|",
    "<@",
    "<#",
    "<!",
    "*bold*",
    "_it_",
    "~del~",
    "`code`",
    "```pre```",
    "> quote\n",
    "• ",
    "1. ",
];

fn mrkdwn_text() -> impl Strategy<Value = String> {
    soup(MRKDWN, 48)
}

const HTML: &[&str] = &[
    "<b>",
    "</b>",
    "<strong>",
    "</strong>",
    "<i>",
    "</i>",
    "<em>",
    "<del>",
    "</del>",
    "<s>",
    "<strike>",
    "<u>",
    "<code>",
    "</code>",
    "<pre>",
    "</pre>",
    "<pre><code class=\"language-rust\">",
    "</code></pre>",
    "<blockquote>",
    "</blockquote>",
    "<ul>",
    "</ul>",
    "<ol>",
    "<ol start=\"7\">",
    "<ol start=\"-3\">",
    "<ol start=\"x\">",
    "</ol>",
    "<li>",
    "</li>",
    "<p>",
    "</p>",
    "<h1>",
    "</h1>",
    "<h6>",
    "<br>",
    "<br/>",
    "<hr>",
    "<div>",
    "</div>",
    "<span>",
    "</span>",
    "<span data-mx-spoiler>",
    "<span data-mx-color=\"#f00\">",
    "<font color=\"red\">",
    "<sup>",
    "<sub>",
    "<table>",
    "<tr>",
    "<td>",
    "<th>",
    "</table>",
    "<details>",
    "<summary>",
    "<mx-reply>",
    "</mx-reply>",
    "<script>",
    "</script>",
    "<style>",
    "<a href=\"https://matrix.to/#/@slack_t1-u1:example.com\">",
    "<a href=\"https://matrix.to/#/@alice:example.com\">",
    "<a href=\"https://matrix.to/#/!room:example.com\">",
    "<a href=\"https://matrix.to/#/!room:example.com/$ev1\">",
    "<a href=\"https://matrix.to/#/%40slack_t1-u1%3Aexample.com\">",
    "<a href=\"matrix:u/alice:example.com\">",
    "<a href=\"matrix:roomid/room:example.com\">",
    "<a href=\"https://example.com/?a=1&amp;b=|\">",
    "<a href=\"\">",
    "<a>",
    "</a>",
    "<a href=\"https://matrix.to/#/%\">",
    "<img src=\"mxc://example.com/e\" data-mx-emoticon alt=\":party:\">",
    "<img>",
    "<img alt=\"x\">",
    "<input>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE html>",
    "<?xml?>",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#x1F600;",
    "&#99999999;",
    "&#0;",
    "&nbsp;",
    "&bogus;",
    "<",
    ">",
    "\"",
    "'",
    "=",
    "text",
    " ",
    "\n",
    "\t",
    "*",
    "_",
    "~",
    "`",
    "|",
    "@room",
    "<@U1>",
    "<!here>",
    "<a href=\"https://matrix.to/#/@",
    "<b",
    "</",
    "<p/>",
];

fn html_text() -> impl Strategy<Value = String> {
    soup(HTML, 48)
}

// ---- JSON: generated trees and mutated real payloads ----

const KEYS: &[&str] = &[
    "type",
    "subtype",
    "text",
    "ts",
    "thread_ts",
    "channel",
    "user",
    "bot_id",
    "app_id",
    "elements",
    "style",
    "blocks",
    "block_id",
    "attachments",
    "files",
    "message",
    "previous_message",
    "url",
    "name",
    "unicode",
    "user_id",
    "channel_id",
    "usergroup_id",
    "range",
    "indent",
    "border",
    "offset",
    "fallback",
    "value",
    "timestamp",
    "format",
    "event",
    "payload",
    "envelope_id",
    "event_id",
    "team_id",
    "item",
    "reaction",
    "item_user",
    "code",
    "bold",
    "italic",
    "strike",
    "emoji",
    "fields",
    "title",
    "title_link",
    "pretext",
    "footer",
    "image_url",
    "id",
    "mimetype",
    "size",
    "content",
    "body",
    "msgtype",
    "m.relates_to",
    "rel_type",
    "event_id",
    "key",
    "formatted_body",
    "format",
    "m.new_content",
    "sender",
    "room_id",
    "state_key",
    "membership",
    "origin_server_ts",
    "unsigned",
    "redacts",
];

const STRINGS: &[&str] = &[
    "message",
    "rich_text",
    "rich_text_section",
    "rich_text_list",
    "rich_text_quote",
    "rich_text_preformatted",
    "text",
    "link",
    "user",
    "channel",
    "usergroup",
    "emoji",
    "broadcast",
    "date",
    "color",
    "bullet",
    "ordered",
    "here",
    "channel",
    "everyone",
    "message_changed",
    "message_deleted",
    "bot_message",
    "me_message",
    "file_share",
    "thread_broadcast",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_join",
    "channel_leave",
    "pinned_item",
    "reaction_added",
    "member_joined_channel",
    "events_api",
    "hello",
    "disconnect",
    "event_callback",
    "m.room.message",
    "m.text",
    "m.notice",
    "m.emote",
    "m.image",
    "m.file",
    "m.replace",
    "m.reaction",
    "m.annotation",
    "m.thread",
    "m.room.redaction",
    "m.room.member",
    "join",
    "leave",
    "invite",
    "org.matrix.custom.html",
    "U1",
    "C1",
    "T1",
    "S1",
    "W2",
    "1700000000.000100",
    "smile",
    "party-parrot",
    "1f600",
    "https://example.com",
    "mxc://example.com/m",
    "@alice:example.com",
    "!room:example.com",
    "$ev1",
    "",
    " ",
    "<@U1>",
    "*x*",
    "\n",
    "<b>x</b>",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        mrkdwn_text().prop_map(Value::from),
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// One change to a JSON document: at the node `at` (in document order), `op` replaces it,
/// removes it, turns it into another type or duplicates it.
#[derive(Debug, Clone)]
struct Mutation {
    at: Index,
    op: u8,
    with: Value,
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(
        (any::<Index>(), 0u8..6, json_tree()).prop_map(|(at, op, with)| Mutation { at, op, with }),
        0..6,
    )
}

fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

fn mutate(mut doc: Value, changes: &[Mutation]) -> Value {
    for m in changes {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = m.at.get(&all).clone();
        let (parent, key) = match at.rfind('/') {
            Some(i) => (
                at[..i].to_owned(),
                at[i + 1..].replace("~1", "/").replace("~0", "~"),
            ),
            None => (String::new(), String::new()),
        };
        match m.op {
            0 => *doc.pointer_mut(&at).unwrap() = m.with.clone(),
            1 => match doc.pointer_mut(&parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            },
            2 => {
                let node = doc.pointer_mut(&at).unwrap();
                *node = match &*node {
                    Value::String(s) => json!([s.clone()]),
                    Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
                    Value::Object(_) => Value::String(node.to_string()),
                    Value::Number(n) => Value::String(n.to_string()),
                    other => Value::String(other.to_string()),
                };
            }
            3 => {
                if let Some(Value::Array(items)) = doc.pointer_mut(&parent)
                    && let Ok(i) = key.parse::<usize>()
                {
                    let copy = items[i].clone();
                    items.insert(i, copy);
                }
            }
            4 => {
                if let Some(Value::Object(map)) = doc.pointer_mut(&at) {
                    map.insert("type".into(), m.with.clone());
                }
            }
            _ => {
                if let Some(Value::String(s)) = doc.pointer_mut(&at) {
                    s.push_str(&m.with.to_string());
                }
            }
        }
    }
    doc
}

fn mutated(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    (prop::sample::select(seeds), mutations()).prop_map(|(seed, m)| mutate(seed, &m))
}

// ---- seeds: the payloads Slack and the homeserver really send ----

fn rich_text_seed() -> Value {
    json!([{"type": "rich_text", "block_id": "b1", "elements": [
        {"type": "rich_text_section", "elements": [
            {"type": "text", "text": "hi ", "style": {"bold": true, "italic": true, "strike": true, "code": true}},
            {"type": "user", "user_id": "U1"},
            {"type": "channel", "channel_id": "C1"},
            {"type": "usergroup", "usergroup_id": "S1"},
            {"type": "broadcast", "range": "here"},
            {"type": "emoji", "name": "smile", "unicode": "1f604"},
            {"type": "emoji", "name": "party-parrot"},
            {"type": "emoji", "name": "+1", "unicode": "1f44d-1f3fd", "skin_tone": 3},
            {"type": "link", "url": "https://example.com", "text": "site", "style": {"bold": true}},
            {"type": "link", "url": "https://x.slack.com/archives/C1/p1700000000000100"},
            {"type": "date", "timestamp": 1700000000, "format": "{date_short}", "fallback": "Nov 14"},
            {"type": "color", "value": "#ff0000"}
        ]},
        {"type": "rich_text_list", "style": "ordered", "indent": 1, "offset": 2, "border": 0, "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "one"}]},
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "two\nlines"}]}
        ]},
        {"type": "rich_text_list", "style": "bullet", "indent": 0, "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "dot"}]}
        ]},
        {"type": "rich_text_quote", "elements": [{"type": "text", "text": "quoted <b>&amp;"}]},
        {"type": "rich_text_preformatted", "border": 0, "elements": [{"type": "text", "text": "fn main() {}\n  x"}]}
    ]}, {"type": "section", "text": {"type": "mrkdwn", "text": "*section* <@U1>"}},
        {"type": "image", "image_url": "https://example.com/i.png", "alt_text": "img"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]},
        {"type": "divider"}, {"type": "header", "text": {"type": "plain_text", "text": "Head"}}])
}

fn attachments_seed() -> Value {
    json!([{"fallback": "fb", "color": "#36a64f", "pretext": "pre <@U1>", "author_name": "a",
        "title": "T", "title_link": "https://example.com", "text": "*att* text",
        "fields": [{"title": "F", "value": "v <#C1>", "short": true}],
        "image_url": "https://example.com/i.png", "footer": "foot", "ts": 1700000000,
        "is_msg_unfurl": true, "message_blocks": [{"team": "T1", "channel": "C1", "ts": "1.2",
        "message": {"blocks": rich_text_seed()}}], "from_url": "https://x.slack.com/archives/C1/p1"}])
}

fn message_seed() -> Value {
    json!({"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1",
        "text": "*hi* <@U1> <#C1|general> :smile: <https://example.com|x>", "ts": "1700000000.000100",
        "event_ts": "1700000000.000100", "team": "T1", "client_msg_id": "c1",
        "blocks": rich_text_seed(), "attachments": attachments_seed(),
        "files": [{"id": "F1", "name": "a.png", "title": "a", "mimetype": "image/png", "filetype": "png",
            "size": 10, "url_private": "https://files.slack.com/a.png", "mode": "hosted",
            "original_w": 10, "original_h": 10, "thumb_360": "https://files.slack.com/t.png"}],
        "thread_ts": "1699999999.000100", "parent_user_id": "U2", "edited": {"user": "U1", "ts": "1.3"},
        "reactions": [{"name": "smile", "users": ["U1"], "count": 1}],
        "bot_profile": {"id": "B1", "app_id": "A1", "name": "bot", "icons": {"image_48": "https://e/i"}},
        "metadata": {"event_type": "matrix", "event_payload": {"event_id": "$ev1"}}})
}

fn event_seeds() -> Vec<Value> {
    let m = message_seed();
    vec![
        m.clone(),
        json!({"type": "message", "subtype": "message_changed", "channel": "C1", "hidden": true,
            "ts": "2.1", "event_ts": "2.1", "message": m.clone(), "previous_message": m.clone()}),
        json!({"type": "message", "subtype": "message_deleted", "channel": "C1", "hidden": true,
            "ts": "2.2", "deleted_ts": "1700000000.000100", "previous_message": m.clone()}),
        json!({"type": "message", "subtype": "bot_message", "channel": "C1", "bot_id": "B1",
            "username": "hook", "icons": {"emoji": ":ghost:"}, "text": "from a bot", "ts": "3.1"}),
        json!({"type": "message", "subtype": "me_message", "channel": "C1", "user": "U1", "text": "waves", "ts": "3.2"}),
        json!({"type": "message", "subtype": "thread_broadcast", "channel": "C1", "user": "U1",
            "text": "also", "ts": "3.3", "thread_ts": "1.1", "root": m.clone()}),
        json!({"type": "message", "subtype": "channel_topic", "channel": "C1", "user": "U1", "topic": "new *topic*", "ts": "3.4"}),
        json!({"type": "message", "subtype": "channel_purpose", "channel": "C1", "user": "U1", "purpose": "p", "ts": "3.5"}),
        json!({"type": "message", "subtype": "channel_name", "channel": "C1", "user": "U1", "old_name": "a", "name": "b", "ts": "3.6"}),
        json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "inviter": "U2", "text": "<@U1> has joined", "ts": "3.7"}),
        json!({"type": "message", "subtype": "channel_leave", "channel": "C1", "user": "U1", "ts": "3.8"}),
        json!({"type": "message", "subtype": "pinned_item", "channel": "C1", "user": "U1", "item_type": "C", "ts": "3.9"}),
        json!({"type": "reaction_added", "user": "U1", "reaction": "thumbsup::skin-tone-2", "item_user": "U2",
            "item": {"type": "message", "channel": "C1", "ts": "1.1"}, "event_ts": "4.1"}),
        json!({"type": "reaction_removed", "user": "U1", "reaction": "party-parrot",
            "item": {"type": "file", "file": "F1"}, "event_ts": "4.2"}),
        json!({"type": "member_joined_channel", "user": "U1", "channel": "C1", "channel_type": "C", "team": "T1", "inviter": "U2"}),
        json!({"type": "member_left_channel", "user": "U1", "channel": "C1", "channel_type": "G", "team": "T1"}),
        json!({"type": "channel_created", "channel": {"id": "C2", "name": "new", "created": 1, "creator": "U1"}}),
        json!({"type": "channel_rename", "channel": {"id": "C1", "name": "renamed", "created": 1}}),
        json!({"type": "group_rename", "channel": {"id": "G1", "name": "priv", "created": 1}}),
        json!({"type": "channel_archive", "channel": "C1", "user": "U1"}),
        json!({"type": "group_unarchive", "channel": "G1", "actor_id": "U1"}),
        json!({"type": "channel_deleted", "channel": "C1"}),
        json!({"type": "pin_added", "user": "U1", "channel_id": "C1", "item": {"type": "message", "message": m.clone()}}),
        json!({"type": "user_change", "user": {"id": "U1", "team_id": "T1", "name": "bob", "deleted": false,
            "profile": {"display_name": "Bob", "real_name": "Bob B", "image_512": "https://e/a.png"}, "is_bot": false}}),
        json!({"type": "team_join", "user": {"id": "U3", "name": "new", "profile": {}}}),
        json!({"type": "emoji_changed", "subtype": "add", "name": "party", "value": "https://emoji.slack-edge.com/p.gif"}),
        json!({"type": "emoji_changed", "subtype": "remove", "names": ["a", "b"]}),
        json!({"type": "emoji_changed", "subtype": "rename", "old_name": "a", "new_name": "b", "value": "alias:smile"}),
        json!({"type": "file_shared", "file_id": "F1", "user_id": "U1", "channel_id": "C1", "file": {"id": "F1"}}),
        json!({"type": "tokens_revoked", "tokens": {"oauth": ["U1"], "bot": ["B1"]}}),
        json!({"type": "app_uninstalled"}),
    ]
}

fn envelope(event: Value) -> Value {
    json!({"envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf", "type": "events_api",
        "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "",
        "payload": {"token": "legacy", "team_id": "T1", "context_team_id": "T1", "api_app_id": "A1",
            "event": event, "type": "event_callback", "event_id": "Ev1", "event_time": 1700000000,
            "authorizations": [{"enterprise_id": null, "team_id": "T1", "user_id": "U0", "is_bot": true,
                "is_enterprise_install": false}], "is_ext_shared_channel": false,
            "event_context": "4-abc"}})
}

fn frame_seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = event_seeds().into_iter().map(envelope).collect();
    seeds.extend([
        json!({"type": "hello", "num_connections": 1, "debug_info": {"host": "a", "approximate_connection_time": 18060}, "connection_info": {"app_id": "A1"}}),
        json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "a"}}),
        json!({"type": "disconnect", "reason": "too_many_websockets"}),
        json!({"envelope_id": "e2", "type": "interactive", "payload": {"type": "block_actions"}, "accepts_response_payload": true}),
        json!({"envelope_id": "e3", "type": "slash_commands", "payload": {"command": "/x"}}),
        json!({"envelope_id": "e4", "type": "events_api", "payload": {"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1}}),
    ]);
    seeds
}

fn txn_event_seeds() -> Vec<Value> {
    let base = |content: Value, ty: &str| {
        json!({"type": ty, "event_id": "$e1", "room_id": "!room:example.com", "sender": "@alice:example.com",
            "origin_server_ts": 1700000000000u64, "content": content, "unsigned": {"age": 1, "transaction_id": "t"}})
    };
    vec![
        base(
            json!({"msgtype": "m.text", "body": "hi *there*", "format": "org.matrix.custom.html",
            "formatted_body": "<b>hi</b> <a href=\"https://matrix.to/#/@slack_t1-u1:example.com\">Bob</a>",
            "m.mentions": {"user_ids": ["@slack_t1-u1:example.com"], "room": true}}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.text", "body": "* edited", "m.new_content": {"msgtype": "m.text", "body": "edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.text", "body": "> <@a:x> q\n\nreply", "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": "$root",
            "is_falling_back": true, "m.in_reply_to": {"event_id": "$last"}}}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.emote", "body": "waves"}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.notice", "body": "bot says"}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://example.com/cat",
            "info": {"mimetype": "image/png", "size": 10, "w": 1, "h": 1}, "filename": "cat.png"}),
            "m.room.message",
        ),
        base(
            json!({"msgtype": "m.file", "body": "caption", "filename": "a.pdf", "url": "mxc://example.com/a"}),
            "m.room.message",
        ),
        base(
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e0", "key": "👍"}}),
            "m.reaction",
        ),
        json!({"type": "m.room.redaction", "event_id": "$r", "room_id": "!room:example.com", "sender": "@alice:example.com",
            "origin_server_ts": 1, "redacts": "$e0", "content": {"redacts": "$e0", "reason": "oops"}}),
        json!({"type": "m.room.member", "event_id": "$m", "room_id": "!room:example.com", "sender": "@alice:example.com",
            "state_key": "@slackbot:example.com", "origin_server_ts": 1, "content": {"membership": "invite", "is_direct": true}}),
        json!({"type": "m.room.name", "event_id": "$n", "room_id": "!room:example.com", "sender": "@alice:example.com",
            "state_key": "", "origin_server_ts": 1, "content": {"name": "x"}}),
    ]
}

fn txn_seeds() -> Vec<Value> {
    vec![
        json!({"events": txn_event_seeds(), "ephemeral": [
            {"type": "m.typing", "room_id": "!room:example.com", "content": {"user_ids": ["@alice:example.com"]}},
            {"type": "m.receipt", "room_id": "!room:example.com", "content": {"$e1": {"m.read": {"@alice:example.com": {"ts": 1}}}}}]}),
        json!({"events": [], "de.sorunome.msc2409.ephemeral": [{"type": "m.presence", "sender": "@a:x", "content": {"presence": "online"}}],
            "de.sorunome.msc2409.to_device": [], "org.matrix.msc3202.device_lists": {"changed": [], "left": []}}),
    ]
}

// ---- the pipelines the bridge runs on what it parsed ----

/// A context that resolves every id the message names, as the bridge's lookups would.
fn slack_context(msg: &Message) -> SlackContext {
    let (users, channels) =
        format::referenced_ids_with(&msg.text, msg.blocks.as_ref(), msg.attachments.as_ref());
    let mut ctx = SlackContext::default();
    for u in users {
        let mention = Mention {
            mxid: format!("@slack_t1-{}:example.com", u.to_lowercase()),
            name: format!("User {u}"),
        };
        ctx.users.insert(u, mention);
    }
    for c in channels {
        let portal = ChannelRef {
            room_id: Some(format!("!{c}:example.com")),
            name: c.clone(),
        };
        ctx.channels.insert(c, portal);
    }
    for g in format::referenced_usergroups(&msg.text, msg.blocks.as_ref(), msg.attachments.as_ref())
    {
        let group = GroupRef {
            handle: format!("group-{g}"),
            members: vec!["@slack_t1-u1:example.com".into()],
        };
        ctx.usergroups.insert(g, group);
    }
    for (channel, ts) in
        format::referenced_permalinks(&msg.text, msg.blocks.as_ref(), msg.attachments.as_ref())
    {
        ctx.messages.insert(
            (channel, ts),
            "https://matrix.to/#/!room:example.com/$ev".into(),
        );
    }
    for name in format::referenced_custom_emoji(msg.blocks.as_ref()) {
        ctx.emoji.insert(name, "mxc://example.com/emoji".into());
    }
    ctx.emoji
        .insert("party-parrot".into(), "mxc://example.com/pp".into());
    ctx
}

fn convert_slack_message(msg: &Message) {
    let ctx = slack_context(msg);
    let out = format::slack_message_to_matrix(
        &msg.text,
        msg.blocks.as_ref(),
        msg.attachments.as_ref(),
        &ctx,
    );
    let input = msg.text.len()
        + msg.blocks.as_ref().map_or(0, |b| b.to_string().len())
        + msg.attachments.as_ref().map_or(0, |a| a.to_string().len());
    assert_proportionate(
        "Slack message",
        input,
        out.body.len() + out.formatted_body.as_ref().map_or(0, String::len),
    );
    let _ = msg.is_thread_reply();
    if let Some(html) = &out.formatted_body {
        // What the bridge sends Matrix must read back (an echo, a quoted reply).
        let _ = html::to_slack(html, &MatrixContext::default());
    }
}

fn bridge_slack_event(event: &SlackEvent) {
    let _ = event.event_type();
    let _ = event.channel();
    let _ = event.is_from_bot(&"B1".into(), "A1", &"U0".into());
    if let SlackEvent::Message(m) = event {
        let _ = m.is_new_message();
        convert_slack_message(&m.message);
        match &m.subtype {
            MessageSubtype::Changed {
                message,
                previous_message,
            } => {
                convert_slack_message(message);
                if let Some(p) = previous_message {
                    convert_slack_message(p);
                }
            }
            MessageSubtype::Deleted {
                previous_message: Some(p),
                ..
            } => convert_slack_message(p),
            MessageSubtype::ChannelTopic { topic } => {
                let _ = mrkdwn::to_matrix(topic, &SlackContext::default());
            }
            _ => {}
        }
    }
}

fn bridge_frame(text: &str) {
    match frames::parse(text) {
        Ok(Frame::EventsApi(envelope)) => {
            let _ = envelope.dedupe_key();
            let _ = envelope.team_id();
            let _ = envelope.channel_id();
            let _ = frames::ack(&envelope.envelope_id);
            if let Ok(callback) = serde_json::from_value::<EventCallback>(envelope.payload.clone())
            {
                bridge_slack_event(&callback.event);
            }
        }
        Ok(Frame::OtherEnvelope { envelope_id, .. }) => {
            let _ = frames::ack(&envelope_id);
        }
        Ok(_) | Err(_) => {}
    }
}

fn matrix_context() -> MatrixContext {
    let mut ctx = MatrixContext::default();
    ctx.users
        .insert("@slack_t1-u1:example.com".into(), "U1".into());
    ctx.rooms.insert("!room:example.com".into(), "C1".into());
    ctx.events.insert(
        "$ev1".into(),
        "https://x.slack.com/archives/C1/p1700000000000100".into(),
    );
    ctx
}

fn convert_matrix_html(body: &str, html_body: &str) {
    let out = format::matrix_to_slack(body, Some(html_body), &matrix_context());
    assert_proportionate("Matrix HTML", body.len() + html_body.len(), out.len());
    let _ = html::link_targets(html_body);
}

fn bridge_transaction(body: &[u8]) {
    use ruma::events::{
        AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent, room::message::MessageType,
    };
    let Ok(txn) = Transaction::parse(body) else {
        return;
    };
    let _ = txn.ephemeral();
    for raw in &txn.events {
        let Ok(ev) = raw.deserialize() else {
            continue;
        };
        let _ = (ev.event_id(), ev.room_id(), ev.sender());
        if let AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
            MessageLikeEvent::Original(m),
        )) = ev
        {
            let _ = m.content.relates_to.is_some();
            let (body, formatted) = match &m.content.msgtype {
                MessageType::Text(t) => (&t.body, &t.formatted),
                MessageType::Notice(t) => (&t.body, &t.formatted),
                MessageType::Emote(t) => (&t.body, &t.formatted),
                _ => continue,
            };
            let html_body = formatted.as_ref().map_or("", |f| f.body.as_str());
            convert_matrix_html(body, html_body);
        }
    }
}

// ---- the targets ----

#[test]
fn socket_mode_frames() {
    let text = prop_oneof![
        4 => mutated(frame_seeds()).prop_map(|v| v.to_string()),
        1 => mrkdwn_text(),
        1 => json_tree().prop_map(|v| v.to_string()),
        // A valid frame cut short or with bytes changed.
        2 => (prop::sample::select(frame_seeds()), any::<Index>(), any::<u8>()).prop_map(
            |(seed, at, byte)| {
                let mut text = seed.to_string().into_bytes();
                let i = at.index(text.len());
                if byte % 2 == 0 {
                    text.truncate(i);
                } else {
                    text[i] = byte;
                }
                String::from_utf8_lossy(&text).into_owned()
            }
        ),
    ];
    fuzz("socket_mode_frames", text, |text| bridge_frame(&text));
}

#[test]
fn events_api_payloads() {
    let event = prop_oneof![
        6 => mutated(event_seeds()),
        1 => json_tree(),
    ];
    fuzz("events_api_payloads", event, |v| {
        let event = SlackEvent::from_value(v.clone());
        bridge_slack_event(&event);
        let _ = serde_json::from_value::<EventCallback>(json!({"event": v}));
    });
}

#[test]
fn rich_text_blocks() {
    let blocks = prop_oneof![
        4 => mutated(vec![rich_text_seed()]),
        1 => json_tree(),
        1 => mutated(vec![attachments_seed()]).prop_map(|a| json!({"attachments": a})),
    ];
    fuzz(
        "rich_text_blocks",
        (blocks, mrkdwn_text()),
        |(blocks, text)| {
            let mut msg = Message {
                text,
                ..Message::default()
            };
            match blocks {
                Value::Object(mut o) if o.contains_key("attachments") => {
                    msg.attachments = o.remove("attachments");
                }
                b => msg.blocks = Some(b),
            }
            convert_slack_message(&msg);
            if let Some(b) = &msg.blocks {
                let _ = format::rich_text::to_matrix(b, &slack_context(&msg));
            }
        },
    );
}

#[test]
fn mrkdwn_text_converts() {
    fuzz("mrkdwn", mrkdwn_text(), |text| {
        let msg = Message {
            text,
            ..Message::default()
        };
        convert_slack_message(&msg);
    });
}

#[test]
fn matrix_html_converts() {
    fuzz(
        "matrix_html",
        (html_text(), mrkdwn_text()),
        |(html_body, body)| {
            convert_matrix_html(&body, &html_body);
        },
    );
}

#[test]
fn homeserver_transactions() {
    let body = prop_oneof![
        4 => mutated(txn_seeds()).prop_map(|v| v.to_string().into_bytes()),
        1 => (mutated(txn_event_seeds()), mutated(txn_event_seeds()))
            .prop_map(|(a, b)| json!({"events": [a, b]}).to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => json_tree().prop_map(|v| json!({"events": [v]}).to_string().into_bytes()),
    ];
    fuzz("homeserver_transactions", body, |body| {
        bridge_transaction(&body)
    });
}

const EXAMPLE_CONFIG: &str = include_str!("../config.example.yaml");

const YAML: &[&str] = &[
    ":",
    ": ",
    "- ",
    "  ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "~",
    "null",
    "true",
    "no",
    "0x10",
    "1e9",
    "-1",
    "99999999999999999999",
    "10s",
    "1h 30m",
    "forever",
    "sqlite://x.db",
    "postgres://u:p@h/d",
    "http://127.0.0.1:1",
    "example.org",
    "generate",
    "xoxb-1",
    "xapp-1",
    "@a:example.org",
    "*",
    "admin",
    "relay",
    "homeserver",
    "appservice",
    "database",
    "slack",
    "bridge",
    "logging",
    "metrics",
    "limits",
    "domain",
    "address",
    "port",
    "as_token",
    "hs_token",
    "as_token_file",
    "logins",
    "uri",
    "max_body_bytes",
    "header_timeout",
    "listen",
    "permissions",
    "username_template",
    "{userid}",
    "<<: *a",
    "---",
    "...",
    "|",
    ">",
    "%YAML 1.2",
];

#[test]
fn config_loader() {
    let lines: Vec<String> = EXAMPLE_CONFIG.lines().map(str::to_owned).collect();
    let edited = (
        prop::collection::vec((any::<Index>(), 0u8..4, soup(YAML, 6)), 0..8),
        Just(lines),
    )
        .prop_map(|(edits, mut lines)| {
            for (at, op, text) in edits {
                let i = at
                    .index(lines.len().max(1))
                    .min(lines.len().saturating_sub(1));
                match op {
                    // Replace the value after the key.
                    0 => {
                        if let Some((key, _)) = lines[i].split_once(':') {
                            lines[i] = format!("{key}: {text}");
                        }
                    }
                    1 => {
                        lines.remove(i);
                    }
                    2 => lines.insert(i, text),
                    _ => lines[i] = format!("  {}", lines[i]),
                }
                if lines.is_empty() {
                    lines.push(String::new());
                }
            }
            lines.join("\n")
        });
    let text = prop_oneof![
        4 => edited,
        1 => soup(YAML, 40),
    ];
    fuzz(
        "config_loader",
        (text, any::<bool>()),
        |(text, generate)| {
            let mode = if generate { Mode::Generate } else { Mode::Run };
            let path = std::path::Path::new("/nonexistent/slack-bridge-fuzz/config.yaml");
            match config::Config::from_yaml(&text, path, mode, &|_| None) {
                Ok(c) => {
                    let _ = format!("{c:?}");
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        },
    );
}

// ---- what fuzzing found, and the limits it checks ----

/// Found by the HTML target: 10,000 nested tags overflowed the stack in the parser's tree.
/// Deeper than [`html::MAX_DEPTH`], the message goes as its plain body.
#[test]
fn deeply_nested_html_is_sent_as_its_plain_body() {
    // 100,000 levels (also past the tag limit), and 200 (past the depth limit only; `<b/>`
    // opens a `<b>` in HTML, it closes nothing).
    for (open, close, n) in [
        ("<b>", "</b>", 100_000),
        ("<blockquote>", "", 100_000),
        ("<ul><li>", "", 100_000),
        ("<a href=\"https://x\">", "</a>", 100_000),
        ("<b>", "", 200),
        ("<b/>", "", 200),
        ("<i  / >", "", 200),
    ] {
        let html_body = format!("{}deep{}", open.repeat(n), close.repeat(n));
        assert_eq!(
            format::matrix_to_slack("deep *body*", Some(&html_body), &matrix_context()),
            "deep *body*"
        );
        assert_eq!(html::to_slack(&html_body, &matrix_context()), "deep");
        assert!(html::link_targets(&html_body).is_empty());
    }
    // As deep as a message ever is, the formatting stays.
    let ok = format!("<b>{}x{}</b>", "<div>".repeat(50), "</div>".repeat(50));
    assert_eq!(
        format::matrix_to_slack("x", Some(&ok), &matrix_context()),
        "*x*"
    );
}

/// JSON nested beyond serde_json's recursion limit (128) is refused by the parser, so no
/// converter ever sees it; up to the limit, rich_text converts.
#[test]
fn deeply_nested_json_is_refused_before_it_is_walked() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let frame = format!(
        r#"{{"type":"events_api","envelope_id":"e","payload":{{"event":{{"type":"message","blocks":{deep}}}}}}}"#
    );
    assert!(frames::parse(&frame).is_err());
    assert!(Transaction::parse(format!(r#"{{"events":{deep}}}"#).as_bytes()).is_err());
    let mut element = r#"{"type":"text","text":"inner"}"#.to_owned();
    for _ in 0..25 {
        element = format!(
            r#"{{"type":"rich_text_list","style":"bullet","indent":0,"elements":[{{"type":"rich_text_section","elements":[{element}]}}]}}"#
        );
    }
    let blocks: Value = serde_json::from_str(&format!(
        r#"[{{"type":"rich_text","elements":[{element}]}}]"#
    ))
    .unwrap();
    // Not a shape Slack sends (its lists hold sections): what matters is that it returns.
    let _ = format::slack_to_matrix("", Some(&blocks), &SlackContext::default());
}

/// Found by the mrkdwn target: a line of unclosed `*` (or `<`, or backticks) was searched to
/// its end once per marker — 100,000 of them took two minutes. Now one pass each.
#[test]
fn pathological_mrkdwn_converts_in_one_pass() {
    for text in [
        "*a ".repeat(350_000),
        "<http://x|".repeat(100_000),
        "<@".repeat(500_000),
        "`a ".repeat(350_000),
        format!("{}x{}", "*_~".repeat(100_000), "~_*".repeat(100_000)),
        "> ".repeat(500_000),
        ":".repeat(1_000_000),
    ] {
        let msg = mrkdwn::to_matrix(&text, &SlackContext::default());
        assert!(!msg.body.is_empty(), "{}", &text[..20]);
    }
    let msg = mrkdwn::to_matrix("*a *b* c*", &SlackContext::default());
    assert_eq!(
        msg.formatted_body.as_deref(),
        Some("<strong>a *b</strong> c*")
    );
}

/// Found by the config target: YAML nested a few thousand `[` deep took the parser seconds
/// (quadratic in the depth); it is refused before parsing. An alias bomb is an error too.
#[test]
fn hostile_yaml_is_an_error() {
    let path = std::path::Path::new("c.yaml");
    for deep in [
        format!("homeserver: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("homeserver: {}", "{a: ".repeat(100_000)),
        (0..1_000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect(),
    ] {
        let t = std::time::Instant::now();
        let e = config::Config::from_yaml(&deep, path, Mode::Run, &|_| None).unwrap_err();
        println!(
            "{:?}: {}",
            t.elapsed(),
            e.to_string().lines().next().unwrap_or("")
        );
    }
    let mut laughs =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
            .to_owned();
    for i in 0..9u8 {
        let (prev, next) = ((b'a' + i) as char, (b'b' + i) as char);
        laughs.push_str(&format!(
            "{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    // Unknown keys are read whole (to name them): the bomb sits in one.
    laughs.push_str("homeserver: {domain: example.org}\nbomb: *j\n");
    let e = config::Config::from_yaml(&laughs, path, Mode::Run, &|_| None).unwrap_err();
    println!("{e}");
}
