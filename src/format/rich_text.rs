//! Slack `blocks` (chiefly `rich_text`) → Matrix body + HTML.
//!
//! Besides `rich_text`, the text-bearing layout blocks bots send (`section`, `header`, `context`,
//! `divider`) are rendered too, so a bot message is not reduced to its notification fallback.

use serde_json::Value;

use super::render::{Labels, Render};
use super::{MatrixMessage, SlackContext, emoji, mrkdwn};

/// Converts a message's `blocks` array; `None` when no block carries text, so the caller falls back
/// to the mrkdwn `text`.
pub fn to_matrix(blocks: &Value, ctx: &SlackContext) -> Option<MatrixMessage> {
    to_matrix_with_labels(blocks, ctx, &Labels::default())
}

pub(super) fn to_matrix_with_labels(
    blocks: &Value,
    ctx: &SlackContext,
    labels: &Labels,
) -> Option<MatrixMessage> {
    let mut r = Render::new(ctx, labels);
    render_blocks(&mut r, blocks).then(|| r.finish())
}

/// Renders the blocks into `r`; false when none of them carried text.
pub(super) fn render_blocks(r: &mut Render<'_>, blocks: &Value) -> bool {
    let Some(blocks) = blocks.as_array() else {
        return false;
    };
    let mut any = false;
    for block in blocks {
        any |= render_block(r, block);
    }
    any && !r.is_empty()
}

/// Every user and channel id in the blocks, including mrkdwn text inside layout blocks.
pub(super) fn collect_ids(value: &Value, users: &mut Vec<String>, channels: &mut Vec<String>) {
    let push = |list: &mut Vec<String>, id: Option<&str>| {
        if let Some(id) = id.filter(|id| !id.is_empty())
            && !list.iter().any(|known| known == id)
        {
            list.push(id.to_owned());
        }
    };
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, users, channels)),
        Value::Object(map) => {
            match map.get("type").and_then(Value::as_str) {
                Some("user") => push(users, map.get("user_id").and_then(Value::as_str)),
                Some("channel") => push(channels, map.get("channel_id").and_then(Value::as_str)),
                Some("mrkdwn") => {
                    if let Some(text) = map.get("text").and_then(Value::as_str) {
                        mrkdwn::collect_ids(text, users, channels);
                    }
                }
                _ => {}
            }
            map.values().for_each(|v| collect_ids(v, users, channels));
        }
        _ => {}
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn elements(v: &Value) -> &[Value] {
    v.get("elements")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Renders one top-level block; false when it is a kind that carries no text (image, actions…).
fn render_block(r: &mut Render<'_>, block: &Value) -> bool {
    let start_paragraph = |r: &mut Render<'_>| r.paragraph_break();
    match str_field(block, "type") {
        Some("rich_text") => {
            start_paragraph(r);
            render_containers(r, elements(block));
        }
        Some("section") => {
            start_paragraph(r);
            if let Some(text) = block.get("text") {
                render_text_object(r, text);
            }
            for field in block
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                r.paragraph_break();
                render_text_object(r, field);
            }
        }
        Some("header") => {
            start_paragraph(r);
            r.tag("strong", |r| {
                if let Some(text) = block.get("text") {
                    render_text_object(r, text);
                }
            });
        }
        Some("context") => {
            start_paragraph(r);
            let texts = elements(block)
                .iter()
                .filter(|e| str_field(e, "text").is_some());
            for (i, text) in texts.enumerate() {
                if i > 0 {
                    r.text(" ");
                }
                render_text_object(r, text);
            }
        }
        Some("image") => {
            let Some(url) = str_field(block, "image_url") else {
                return false;
            };
            start_paragraph(r);
            let label = block
                .get("title")
                .and_then(|t| str_field(t, "text"))
                .or_else(|| str_field(block, "alt_text"));
            r.link(url, label);
            // Not text: a message of images alone is its `text` when it has one.
            return false;
        }
        // Standard Markdown from apps; shown as its text.
        Some("markdown") => {
            let Some(text) = str_field(block, "text") else {
                return false;
            };
            start_paragraph(r);
            r.text_with_emoji(text);
        }
        Some("divider") => {
            r.block_start();
            r.html("<hr>");
            r.body("---");
            r.block_end();
        }
        _ => return false,
    }
    true
}

/// A composition text object: `{"type":"mrkdwn"|"plain_text","text":…}`.
fn render_text_object(r: &mut Render<'_>, obj: &Value) {
    let Some(text) = str_field(obj, "text") else {
        return;
    };
    match str_field(obj, "type") {
        Some("mrkdwn") => mrkdwn::render(r, text),
        _ => r.text_with_emoji(text),
    }
}

/// The containers of one `rich_text` block. Nested lists arrive as flat siblings with a larger
/// `indent`, so consecutive lists are rendered together to rebuild the nesting.
fn render_containers(r: &mut Render<'_>, containers: &[Value]) {
    let mut i = 0;
    while i < containers.len() {
        let container = &containers[i];
        match str_field(container, "type") {
            Some("rich_text_list") => {
                let run = containers[i..]
                    .iter()
                    .take_while(|c| str_field(c, "type") == Some("rich_text_list"))
                    .count();
                render_lists(r, &containers[i..i + run]);
                i += run;
                continue;
            }
            Some("rich_text_preformatted") => {
                r.code_block(|r| render_inline(r, elements(container)));
            }
            Some("rich_text_quote") => r.quote(|r| render_inline(r, elements(container))),
            // rich_text_section, and anything newer that has inline elements.
            _ => render_inline(r, elements(container)),
        }
        i += 1;
    }
}

struct OpenList {
    indent: u64,
    ordered: bool,
    /// Items so far, starting at the list's `offset`; numbers continue when a nested list
    /// interrupts it.
    items: u64,
    li_open: bool,
}

fn render_lists(r: &mut Render<'_>, lists: &[Value]) {
    r.block_start();
    let mut stack: Vec<OpenList> = Vec::new();
    for list in lists {
        let indent = list.get("indent").and_then(Value::as_u64).unwrap_or(0);
        let ordered = str_field(list, "style") == Some("ordered");
        let offset = list.get("offset").and_then(Value::as_u64).unwrap_or(0);
        while stack.last().is_some_and(|top| {
            top.indent > indent || (top.indent == indent && top.ordered != ordered)
        }) {
            close_list(r, &mut stack);
        }
        if stack.last().is_none_or(|top| top.indent < indent) {
            let tag = if ordered { "ol" } else { "ul" };
            match offset {
                0 => r.html(&format!("<{tag}>")),
                _ => r.html(&format!("<{tag} start=\"{}\">", offset.saturating_add(1))),
            }
            stack.push(OpenList {
                indent,
                ordered,
                items: offset,
                li_open: false,
            });
        }
        // The plain body indents by the lists open, not by `indent` itself: Slack's levels
        // may skip, and a hostile one is any number.
        let depth = stack.len().saturating_sub(1);
        let Some(top) = stack.last_mut() else {
            continue;
        };
        for item in elements(list) {
            if top.li_open {
                r.html("</li>");
            }
            top.li_open = true;
            top.items = top.items.saturating_add(1);
            r.html("<li>");
            let marker = if ordered {
                format!("{}. ", top.items)
            } else {
                "• ".to_owned()
            };
            r.body(&format!("{}{marker}", "    ".repeat(depth)));
            render_inline(r, elements(item));
            r.block_start();
        }
    }
    while !stack.is_empty() {
        close_list(r, &mut stack);
    }
    r.block_end();
}

fn close_list(r: &mut Render<'_>, stack: &mut Vec<OpenList>) {
    if let Some(list) = stack.pop() {
        if list.li_open {
            r.html("</li>");
        }
        r.html(if list.ordered { "</ol>" } else { "</ul>" });
    }
}

fn render_inline(r: &mut Render<'_>, elements: &[Value]) {
    for element in elements {
        let style = element.get("style");
        let on = |key: &str| style.and_then(|s| s.get(key)).and_then(Value::as_bool) == Some(true);
        let styles: Vec<&str> = [
            ("bold", "strong"),
            ("italic", "em"),
            ("strike", "del"),
            ("underline", "u"),
        ]
        .into_iter()
        .filter(|(key, _)| on(key))
        .map(|(_, tag)| tag)
        .collect();
        styled(r, &styles, on("code"), |r| render_element(r, element));
    }
}

fn styled(r: &mut Render<'_>, tags: &[&str], code: bool, f: impl FnOnce(&mut Render<'_>)) {
    match tags.split_first() {
        Some((tag, rest)) => r.tag(tag, |r| styled(r, rest, code, f)),
        None if code => r.inline_code(f),
        None => f(r),
    }
}

fn render_element(r: &mut Render<'_>, element: &Value) {
    let field = |key| str_field(element, key);
    match field("type") {
        Some("text") => {
            let text = field("text").unwrap_or_default();
            let text = r.skip_leading_newline(text);
            r.text(text);
        }
        Some("link") => {
            if let Some(url) = field("url") {
                r.link(url, field("text"));
            }
        }
        Some("user") => r.user(field("user_id").unwrap_or_default(), None),
        Some("channel") => r.channel(field("channel_id").unwrap_or_default(), None),
        Some("usergroup") => r.usergroup(field("usergroup_id").unwrap_or_default(), None),
        Some("team") => r.text(&format!("@{}", field("team_id").unwrap_or_default())),
        Some("broadcast") => r.broadcast(field("range").unwrap_or("here")),
        Some("emoji") => render_emoji(r, element),
        Some("date") => match field("fallback") {
            Some(fallback) => r.text(fallback),
            None => r.text(&format_timestamp(
                element
                    .get("timestamp")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            )),
        },
        Some("color") => r.text(field("value").unwrap_or_default()),
        _ => {
            if let Some(text) = field("text") {
                r.text(text);
            }
        }
    }
}

fn render_emoji(r: &mut Render<'_>, element: &Value) {
    let name = str_field(element, "name").unwrap_or_default();
    // `unicode` is the exact sequence (tone included); the name is the fallback for older payloads.
    let from_codepoints = str_field(element, "unicode").and_then(|hex| {
        hex.split('-')
            .map(|cp| u32::from_str_radix(cp, 16).ok().and_then(char::from_u32))
            .collect::<Option<String>>()
    });
    let named = || {
        let tone = element.get("skin_tone").and_then(Value::as_u64);
        tone.and_then(|t| emoji::shortcode_to_unicode(&format!("{name}::skin-tone-{t}")))
            .or_else(|| emoji::shortcode_to_unicode(name))
            .map(str::to_owned)
    };
    match from_codepoints.or_else(named) {
        Some(unicode) => r.text(&unicode),
        None => r.emoji(name),
    }
}

/// `YYYY-MM-DD HH:MM UTC`, for date elements without a fallback.
fn format_timestamp(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one fallback.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::format::{ChannelRef, Mention};

    fn ctx() -> SlackContext {
        let mut ctx = SlackContext::default();
        ctx.users.insert(
            "WJC6QG0MS".into(),
            Mention {
                mxid: "@slack_t1-wjc6qg0ms:example.com".into(),
                name: "Wanda".into(),
            },
        );
        ctx.channels.insert(
            "C02GD0YEHDJ".into(),
            ChannelRef {
                room_id: Some("!dev:example.com".into()),
                name: "dev".into(),
            },
        );
        ctx
    }

    fn block(elements: Value) -> Value {
        json!([{"type": "rich_text", "block_id": "b1", "elements": elements}])
    }

    fn section(elements: Value) -> Value {
        block(json!([{"type": "rich_text_section", "elements": elements}]))
    }

    fn convert(blocks: &Value) -> MatrixMessage {
        to_matrix(blocks, &ctx()).expect("blocks render")
    }

    #[test]
    fn protocol_reference_example() {
        let blocks = json!([{"type":"rich_text","block_id":"3Uk3Q","elements":[
         {"type":"rich_text_section","elements":[{"type":"text","text":"Hey!","style":{"bold":true}},{"type":"text","text":" this is "},
           {"type":"text","text":"very","style":{"strike":true}},{"type":"text","text":"block","style":{"code":true}},
           {"type":"link","url":"https://slack.com","text":"Slack website!"}]},
         {"type":"rich_text_list","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"a"}]},
           {"type":"rich_text_section","elements":[{"type":"text","text":"b"}]}],"style":"ordered","indent":0,"border":0},
         {"type":"rich_text_list","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"bb"}]}],"style":"ordered","indent":1,"border":0},
         {"type":"rich_text_quote","elements":[{"type":"text","text":"this is very important"}]},
         {"type":"rich_text_preformatted","elements":[{"type":"text","text":"print(\"Hello world\")"}],"border":0},
         {"type":"rich_text_section","elements":[{"type":"user","user_id":"WJC6QG0MS"},{"type":"text","text":" "},
           {"type":"usergroup","usergroup_id":"S01BL602YLU"},{"type":"text","text":" "},{"type":"channel","channel_id":"C02GD0YEHDJ"}]}]}]);
        let msg = convert(&blocks);
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "<strong>Hey!</strong> this is <del>very</del><code>block</code>\
                 <a href=\"https://slack.com\">Slack website!</a>\
                 <ol><li>a</li><li>b<ol><li>bb</li></ol></li></ol>\
                 <blockquote>this is very important</blockquote>\
                 <pre><code>print(&quot;Hello world&quot;)</code></pre>\
                 <a href=\"https://matrix.to/#/@slack_t1-wjc6qg0ms:example.com\">Wanda</a> @S01BL602YLU \
                 <a href=\"https://matrix.to/#/!dev:example.com\">#dev</a>"
            )
        );
        assert_eq!(
            msg.body,
            "Hey! this is very`block`Slack website! (https://slack.com)\n\
             1. a\n\
             2. b\n    \
             1. bb\n\
             > this is very important\n\
             ```\nprint(\"Hello world\")\n```\n\
             Wanda @S01BL602YLU #dev"
        );
        assert_eq!(msg.mentioned_users, ["@slack_t1-wjc6qg0ms:example.com"]);
        assert!(!msg.mentions_room);
    }

    #[test]
    fn real_message_with_mention() {
        // From a real `message` event (slack-protocol.md §2.3).
        let blocks = json!([{"type":"rich_text","block_id":"2Le","elements":[{"type":"rich_text_section","elements":[
            {"type":"user","user_id":"U01JKSB8T7Y"},{"type":"text","text":" test"}]}]}]);
        let msg = convert(&blocks);
        assert_eq!(msg.body, "@U01JKSB8T7Y test");
        assert_eq!(msg.formatted_body, None);
        assert!(msg.mentioned_users.is_empty());
    }

    #[test]
    fn only_a_mention() {
        let msg = convert(&section(json!([{"type":"user","user_id":"WJC6QG0MS"}])));
        assert_eq!(msg.body, "Wanda");
        assert_eq!(msg.mentioned_users, ["@slack_t1-wjc6qg0ms:example.com"]);
    }

    #[test]
    fn nested_styles_and_newlines() {
        let msg = convert(&section(json!([
            {"type":"text","text":"both","style":{"bold":true,"italic":true}},
            {"type":"text","text":"\nline two "},
            {"type":"text","text":"code*","style":{"code":true,"bold":true}},
            {"type":"link","url":"https://x.org","style":{"italic":true}}
        ])));
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "<strong><em>both</em></strong><br>line two <strong><code>code*</code></strong>\
                 <em><a href=\"https://x.org\">https://x.org</a></em>"
            )
        );
        assert_eq!(msg.body, "both\nline two `code*`https://x.org");
    }

    #[test]
    fn html_injection_is_escaped() {
        let msg = convert(&section(json!([
            {"type":"text","text":"<script>alert(1)</script>","style":{"bold":true}},
            {"type":"link","url":"javascript:\"x","text":"<b>"}
        ])));
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>\
                 <a href=\"javascript:&quot;x\">&lt;b&gt;</a>"
            )
        );
    }

    #[test]
    fn nested_lists_go_up_and_down() {
        let item =
            |t: &str| json!({"type":"rich_text_section","elements":[{"type":"text","text":t}]});
        let blocks = block(json!([
            {"type":"rich_text_section","elements":[{"type":"text","text":"todo:\n"}]},
            {"type":"rich_text_list","style":"bullet","indent":0,"elements":[item("one")]},
            {"type":"rich_text_list","style":"bullet","indent":1,"elements":[item("one.a")]},
            {"type":"rich_text_list","style":"ordered","indent":2,"elements":[item("deep"), item("deeper")]},
            {"type":"rich_text_list","style":"bullet","indent":0,"elements":[item("two")]},
            {"type":"rich_text_section","elements":[{"type":"text","text":"\n"}]},
            {"type":"rich_text_list","style":"ordered","indent":0,"offset":3,"elements":[item("four")]},
            {"type":"rich_text_section","elements":[{"type":"text","text":"after"}]}
        ]));
        let msg = convert(&blocks);
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "todo:<ul><li>one<ul><li>one.a<ol><li>deep</li><li>deeper</li></ol></li></ul></li>\
                 <li>two</li></ul><ol start=\"4\"><li>four</li></ol>after"
            )
        );
        assert_eq!(
            msg.body,
            "todo:\n• one\n    • one.a\n        1. deep\n        2. deeper\n• two\n4. four\nafter"
        );
    }

    /// Found by fuzzing: an `indent` of 2⁶³ made the plain body's indentation overflow the
    /// allocator, and an `offset` of 2⁶⁴−1 the list's start number.
    #[test]
    fn hostile_indents_and_offsets() {
        let item =
            |t: &str| json!({"type":"rich_text_section","elements":[{"type":"text","text":t}]});
        let blocks = block(json!([
            {"type":"rich_text_list","style":"bullet","indent":0,"elements":[item("top")]},
            {"type":"rich_text_list","style":"ordered","indent":u64::MAX,"offset":u64::MAX,
             "elements":[item("far"), item("farther")]}
        ]));
        let msg = convert(&blocks);
        assert_eq!(
            msg.body,
            format!("• top\n    {}. far\n    {}. farther", u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn broadcasts_and_usergroups() {
        for range in ["here", "channel", "everyone"] {
            let msg = convert(&section(
                json!([{"type":"broadcast","range":range},{"type":"text","text":" standup"}]),
            ));
            assert_eq!(msg.body, "@room standup", "{range}");
            assert!(msg.mentions_room);
        }
    }

    #[test]
    fn emoji_elements() {
        let msg = convert(&section(json!([
            {"type":"emoji","name":"tada","unicode":"1f389"},
            {"type":"emoji","name":"thumbsup","unicode":"1f44d-1f3fc","skin_tone":3},
            {"type":"emoji","name":"wave","skin_tone":2},
            {"type":"emoji","name":"white_check_mark"},
            {"type":"emoji","name":"partyparrot"}
        ])));
        assert_eq!(msg.body, "🎉👍🏼👋🏻✅:partyparrot:");
        assert_eq!(msg.formatted_body, None);
    }

    #[test]
    fn custom_emoji_are_inline_images() {
        let mut ctx = ctx();
        ctx.emoji
            .insert("blobcat".into(), "mxc://example.com/blob".into());
        let blocks = section(json!([
            {"type":"text","text":"hi "},
            {"type":"emoji","name":"blobcat"},
            {"type":"emoji","name":"unknowncat"}
        ]));
        let msg = to_matrix(&blocks, &ctx).unwrap();
        assert_eq!(msg.body, "hi :blobcat::unknowncat:");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "hi <img data-mx-emoticon src=\"mxc://example.com/blob\" alt=\":blobcat:\" title=\":blobcat:\" height=\"32\">:unknowncat:"
            )
        );
        assert_eq!(
            crate::format::referenced_custom_emoji(Some(&blocks)),
            ["blobcat", "unknowncat"]
        );
    }

    #[test]
    fn code_blocks_do_not_ping() {
        let msg = convert(&block(
            json!([{"type":"rich_text_preformatted","border":0,"elements":[
            {"type":"text","text":"let x = *y;\n"},{"type":"user","user_id":"WJC6QG0MS"},
            {"type":"link","url":"https://x.org"},{"type":"broadcast","range":"here"}]}]),
        ));
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<pre><code>let x = *y;\n@Wandahttps://x.org@here</code></pre>")
        );
        assert!(msg.mentioned_users.is_empty());
        assert!(!msg.mentions_room);
    }

    #[test]
    fn dates_colors_and_teams() {
        let msg = convert(&section(json!([
            {"type":"date","timestamp":1628633089,"format":"{date_long}"},
            {"type":"text","text":" / "},
            {"type":"date","timestamp":1628633089,"format":"{date_long}","fallback":"Aug 10"},
            {"type":"text","text":" "},
            {"type":"color","value":"#ff0000"},
            {"type":"text","text":" "},
            {"type":"team","team_id":"T1"}
        ])));
        assert_eq!(msg.body, "2021-08-10 22:04 UTC / Aug 10 #ff0000 @T1");
        assert_eq!(format_timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn quote_then_text() {
        let msg = convert(&block(json!([
            {"type":"rich_text_quote","elements":[{"type":"text","text":"first\nsecond"}]},
            {"type":"rich_text_section","elements":[{"type":"text","text":"\nreply"}]}
        ])));
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<blockquote>first<br>second</blockquote>reply")
        );
        assert_eq!(msg.body, "> first\n> second\nreply");
    }

    #[test]
    fn layout_blocks_from_bots() {
        let blocks = json!([
            {"type":"header","text":{"type":"plain_text","text":"Deploy :rocket:"}},
            {"type":"section","text":{"type":"mrkdwn","text":"*prod* is live, <@WJC6QG0MS>"},
             "fields":[{"type":"mrkdwn","text":"_v1.2_"}]},
            {"type":"divider"},
            {"type":"context","elements":[{"type":"image","image_url":"https://x/i.png","alt_text":"i"},
                                          {"type":"plain_text","text":"by CI"}]},
            {"type":"actions","elements":[]}
        ]);
        let msg = convert(&blocks);
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "<strong>Deploy 🚀</strong><br><strong>prod</strong> is live, \
                 <a href=\"https://matrix.to/#/@slack_t1-wjc6qg0ms:example.com\">Wanda</a><br><em>v1.2</em>\
                 <hr>by CI"
            )
        );
        assert_eq!(msg.body, "Deploy 🚀\nprod is live, Wanda\nv1.2\n---\nby CI");
        assert_eq!(msg.mentioned_users.len(), 1);
    }

    #[test]
    fn nothing_to_render() {
        assert_eq!(to_matrix(&json!([]), &ctx()), None);
        assert_eq!(to_matrix(&json!({"not": "an array"}), &ctx()), None);
        assert_eq!(
            to_matrix(&json!([{"type":"image","image_url":"x"}]), &ctx()),
            None
        );
        assert_eq!(to_matrix(&block(json!([])), &ctx()), None);
        assert_eq!(
            to_matrix(&section(json!([{"type":"text","text":""}])), &ctx()),
            None
        );
    }

    #[test]
    fn collects_ids_everywhere() {
        let blocks = json!([
            {"type":"rich_text","elements":[{"type":"rich_text_list","style":"bullet","indent":0,"elements":[
                {"type":"rich_text_section","elements":[{"type":"user","user_id":"U2"},{"type":"channel","channel_id":"C2"}]}]}]},
            {"type":"section","text":{"type":"mrkdwn","text":"<@U3> <#C3|x> <@U2>"}}
        ]);
        let (mut users, mut channels) = (vec![], vec![]);
        collect_ids(&blocks, &mut users, &mut channels);
        assert_eq!(users, ["U2", "U3"]);
        assert_eq!(channels, ["C2", "C3"]);
    }
}
