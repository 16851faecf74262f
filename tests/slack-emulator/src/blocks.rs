//! Derives the `rich_text` block a Slack client would attach to a human message from its mrkdwn
//! `text` (slack-protocol.md §3, §4), and light validation of `blocks` sent to chat.* methods.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::util;

/// A few common standard emoji with their code points; anything else without a custom entry
/// is emitted without `unicode`, which clients must tolerate anyway.
const EMOJI_UNICODE: &[(&str, &str)] = &[
    ("wave", "1f44b"),
    ("thumbsup", "1f44d"),
    ("+1", "1f44d"),
    ("thumbsdown", "1f44e"),
    ("-1", "1f44e"),
    ("tada", "1f389"),
    ("heart", "2764-fe0f"),
    ("smile", "1f604"),
    ("joy", "1f602"),
    ("eyes", "1f440"),
    ("fire", "1f525"),
    ("rocket", "1f680"),
    ("white_check_mark", "2705"),
    ("x", "274c"),
    ("pray", "1f64f"),
    ("100", "1f4af"),
    ("slightly_smiling_face", "1f642"),
    ("books", "1f4da"),
];

#[derive(Clone, Copy, Default, PartialEq)]
struct Style {
    bold: bool,
    italic: bool,
    strike: bool,
    code: bool,
}

impl Style {
    fn to_json(self) -> Option<Value> {
        let mut m = Map::new();
        for (k, on) in [
            ("bold", self.bold),
            ("italic", self.italic),
            ("strike", self.strike),
            ("code", self.code),
        ] {
            if on {
                m.insert(k.into(), json!(true));
            }
        }
        (!m.is_empty()).then_some(Value::Object(m))
    }
}

/// Block IDs are short random strings in real captures (`"2Le"`, `"3Uk3Q"`).
fn block_id() -> String {
    util::random_alnum(5)
}

/// Builds `{"type":"rich_text","block_id":…,"elements":[…]}` from mrkdwn (already escaped
/// with `&amp;`/`&lt;`/`&gt;`, mentions as `<@U…>`), the way the desktop client does.
pub fn rich_text_from_mrkdwn(text: &str, custom_emoji: &BTreeMap<String, String>) -> Value {
    let mut containers: Vec<Value> = Vec::new();
    let mut section: Vec<Value> = Vec::new();
    let mut quote: Vec<String> = Vec::new();
    let mut list: Option<(String, u64, Vec<Value>)> = None;

    let flush_section = |section: &mut Vec<Value>, out: &mut Vec<Value>| {
        if !section.is_empty() {
            out.push(
                json!({"type": "rich_text_section", "elements": merge(std::mem::take(section))}),
            );
        }
    };
    let flush_quote = |quote: &mut Vec<String>, out: &mut Vec<Value>| {
        if !quote.is_empty() {
            let t = std::mem::take(quote).join("\n");
            out.push(json!({"type": "rich_text_quote", "elements": merge(inline(&t, Style::default(), custom_emoji))}));
        }
    };
    let flush_list = |list: &mut Option<(String, u64, Vec<Value>)>, out: &mut Vec<Value>| {
        if let Some((style, indent, items)) = list.take() {
            out.push(json!({"type": "rich_text_list", "elements": items, "style": style, "indent": indent, "border": 0}));
        }
    };

    let mut rest = text;
    let mut lines: Vec<&str> = Vec::new();
    // Pre-split so fenced code spanning lines is handled as one unit.
    while !rest.is_empty() {
        if let Some(start) = rest.find("```")
            && let Some(len) = rest[start + 3..].find("```")
        {
            lines.extend(rest[..start].split('\n'));
            if lines.last() == Some(&"") {
                lines.pop();
            }
            lines.push(&rest[start..start + 3 + len + 3]);
            rest = rest[start + 3 + len + 3..].trim_start_matches('\n');
            continue;
        }
        lines.extend(rest.split('\n'));
        break;
    }

    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let last = i + 1 == n;
        if line.starts_with("```") && line.ends_with("```") && line.len() >= 6 {
            flush_section(&mut section, &mut containers);
            flush_quote(&mut quote, &mut containers);
            flush_list(&mut list, &mut containers);
            let code = line[3..line.len() - 3].trim_matches('\n');
            containers.push(json!({"type": "rich_text_preformatted",
                "elements": [{"type": "text", "text": unescape(code)}], "border": 0}));
            continue;
        }
        if let Some(q) = line.strip_prefix("&gt;") {
            flush_section(&mut section, &mut containers);
            flush_list(&mut list, &mut containers);
            quote.push(q.strip_prefix(' ').unwrap_or(q).to_string());
            continue;
        }
        flush_quote(&mut quote, &mut containers);
        let trimmed = line.trim_start_matches(' ');
        let indent = ((line.len() - trimmed.len()) / 4) as u64;
        let item = if let Some(t) = trimmed.strip_prefix("• ") {
            Some(("bullet", t))
        } else {
            trimmed
                .split_once(". ")
                .filter(|(num, _)| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, t)| ("ordered", t))
        };
        if let Some((style, t)) = item {
            flush_section(&mut section, &mut containers);
            let same = matches!(&list, Some((s, ind, _)) if s == style && *ind == indent);
            if !same {
                flush_list(&mut list, &mut containers);
                list = Some((style.to_string(), indent, Vec::new()));
            }
            let el = json!({"type": "rich_text_section", "elements": merge(inline(t, Style::default(), custom_emoji))});
            list.as_mut().unwrap().2.push(el);
            continue;
        }
        flush_list(&mut list, &mut containers);
        section.extend(inline(line, Style::default(), custom_emoji));
        if !last {
            section.push(text_el("\n", Style::default()));
        }
    }
    flush_section(&mut section, &mut containers);
    flush_quote(&mut quote, &mut containers);
    flush_list(&mut list, &mut containers);
    json!({"type": "rich_text", "block_id": block_id(), "elements": containers})
}

fn text_el(t: &str, style: Style) -> Value {
    let mut v = json!({"type": "text", "text": t});
    if let Some(s) = style.to_json() {
        v.as_object_mut().unwrap().insert("style".into(), s);
    }
    v
}

/// Joins adjacent text runs of equal style, as Slack's own blocks never split them.
fn merge(elements: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for el in elements {
        if el["type"] == "text"
            && let Some(prev) = out.last_mut()
            && prev["type"] == "text"
            && prev.get("style") == el.get("style")
        {
            let joined = format!(
                "{}{}",
                prev["text"].as_str().unwrap_or(""),
                el["text"].as_str().unwrap_or("")
            );
            prev["text"] = json!(joined);
            continue;
        }
        if el["type"] == "text" && el["text"] == "" {
            continue;
        }
        out.push(el);
    }
    out
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn is_boundary(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c.is_whitespace() || "([{.,;:!?\"'-/".contains(c),
    }
}

/// Inline mrkdwn: `<…>` control sequences, `:emoji:`, and `*_~`` ` `` styles (which must
/// open after a boundary and close before one, like Slack's parser).
fn inline(s: &str, style: Style, emoji: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    let flush = |buf: &mut String, out: &mut Vec<Value>| {
        if !buf.is_empty() {
            out.push(text_el(&unescape(buf), style));
            buf.clear();
        }
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        let prev = if i == 0 { None } else { Some(chars[i - 1].1) };
        if c == '<'
            && let Some(end) = s[pos..].find('>')
        {
            flush(&mut buf, &mut out);
            out.push(control(&s[pos + 1..pos + end], style));
            let target = pos + end + 1;
            while i < chars.len() && chars[i].0 < target {
                i += 1;
            }
            continue;
        }
        if c == ':'
            && let Some(end) = s[pos + 1..].find(':')
        {
            let name = &s[pos + 1..pos + 1 + end];
            let mut consumed = end + 2;
            let mut skin = None;
            if s[pos + consumed..].starts_with(":skin-tone-") {
                let tail = &s[pos + consumed + 1..];
                if let Some(e2) = tail.find(':') {
                    skin = tail["skin-tone-".len()..e2].parse::<u64>().ok();
                    consumed += e2 + 2;
                }
            }
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-'".contains(c))
            {
                flush(&mut buf, &mut out);
                let mut el = json!({"type": "emoji", "name": name});
                // Custom emoji have no code point; unknown standard ones are left without
                // one too, since this table is deliberately small.
                if !emoji.contains_key(name)
                    && let Some(u) = EMOJI_UNICODE.iter().find(|(n, _)| *n == name)
                {
                    el["unicode"] = json!(u.1);
                }
                if let Some(t) = skin {
                    el["skin_tone"] = json!(t);
                }
                out.push(el);
                let target = pos + consumed;
                while i < chars.len() && chars[i].0 < target {
                    i += 1;
                }
                continue;
            }
        }
        if "*_~`".contains(c) && is_boundary(prev) {
            let next = chars.get(i + 1).map(|x| x.1);
            if next.is_some_and(|n| !n.is_whitespace() && n != c) {
                // Find a closing delimiter followed by a boundary.
                let mut j = i + 1;
                let mut close = None;
                while j < chars.len() {
                    if chars[j].1 == c
                        && !chars[j - 1].1.is_whitespace()
                        && is_boundary(chars.get(j + 1).map(|x| x.1))
                    {
                        close = Some(j);
                        break;
                    }
                    if chars[j].1 == '\n' {
                        break;
                    }
                    j += 1;
                }
                if let Some(j) = close {
                    flush(&mut buf, &mut out);
                    let inner = &s[chars[i + 1].0..chars[j].0];
                    let mut st = style;
                    match c {
                        '*' => st.bold = true,
                        '_' => st.italic = true,
                        '~' => st.strike = true,
                        _ => st.code = true,
                    }
                    if c == '`' {
                        out.push(text_el(&unescape(inner), st));
                    } else {
                        out.extend(inline(inner, st, emoji));
                    }
                    i = j + 1;
                    continue;
                }
            }
        }
        buf.push(c);
        i += 1;
    }
    flush(&mut buf, &mut out);
    out
}

fn with_style(mut v: Value, style: Style) -> Value {
    if let Some(s) = style.to_json() {
        v.as_object_mut().unwrap().insert("style".into(), s);
    }
    v
}

fn control(inner: &str, style: Style) -> Value {
    let (target, label) = match inner.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inner, None),
    };
    if let Some(u) = target.strip_prefix('@') {
        return with_style(json!({"type": "user", "user_id": u}), style);
    }
    if let Some(c) = target.strip_prefix('#') {
        return with_style(json!({"type": "channel", "channel_id": c}), style);
    }
    if let Some(cmd) = target.strip_prefix('!') {
        if let Some(id) = cmd.strip_prefix("subteam^") {
            return json!({"type": "usergroup", "usergroup_id": id});
        }
        if let Some(rest) = cmd.strip_prefix("date^") {
            let mut parts = rest.splitn(3, '^');
            let ts: i64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let format = parts.next().unwrap_or("{date}");
            let mut v = json!({"type": "date", "timestamp": ts, "format": format});
            if let Some(l) = label {
                v["fallback"] = json!(unescape(l));
            }
            return v;
        }
        let range = match cmd {
            "here" => "here",
            "channel" | "group" => "channel",
            "everyone" => "everyone",
            other => return text_el(&format!("<{}>", label.unwrap_or(other)), style),
        };
        return json!({"type": "broadcast", "range": range});
    }
    let mut v = json!({"type": "link", "url": unescape(target)});
    if let Some(l) = label {
        v["text"] = json!(unescape(l));
    }
    with_style(v, style)
}

/// Block kit types chat.postMessage accepts at the top level.
const BLOCK_TYPES: &[&str] = &[
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "table",
    "video",
];

/// Rejects what Slack answers `invalid_blocks` to: non-arrays, more than 50 blocks, unknown
/// block types, and rich_text/section blocks missing their required parts.
pub fn validate_blocks(blocks: &Value) -> Result<(), String> {
    let arr = blocks.as_array().ok_or("blocks must be an array")?;
    if arr.len() > 50 {
        return Err("no more than 50 items allowed [json-pointer:/blocks]".into());
    }
    for (i, b) in arr.iter().enumerate() {
        let t = b["type"].as_str().ok_or(format!(
            "missing required field: type [json-pointer:/blocks/{i}]"
        ))?;
        if !BLOCK_TYPES.contains(&t) {
            return Err(format!(
                "unsupported type: {t} [json-pointer:/blocks/{i}/type]"
            ));
        }
        match t {
            "rich_text" => {
                let els = b["elements"].as_array().ok_or(format!(
                    "missing required field: elements [json-pointer:/blocks/{i}]"
                ))?;
                for (j, e) in els.iter().enumerate() {
                    let et = e["type"].as_str().unwrap_or("");
                    if !matches!(
                        et,
                        "rich_text_section"
                            | "rich_text_list"
                            | "rich_text_quote"
                            | "rich_text_preformatted"
                    ) {
                        return Err(format!(
                            "unsupported type: {et} [json-pointer:/blocks/{i}/elements/{j}/type]"
                        ));
                    }
                    if !e["elements"].is_array() {
                        return Err(format!(
                            "missing required field: elements [json-pointer:/blocks/{i}/elements/{j}]"
                        ));
                    }
                }
            }
            "section" if b.get("text").is_none() && b.get("fields").is_none() => {
                return Err(format!(
                    "must provide either text or fields [json-pointer:/blocks/{i}]"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Value {
        rich_text_from_mrkdwn(s, &BTreeMap::new())
    }

    #[test]
    fn mention_and_text_match_reference_shape() {
        let b = rt("<@U01JKSB8T7Y> test");
        assert_eq!(b["type"], "rich_text");
        assert!(b["block_id"].is_string());
        assert_eq!(
            b["elements"],
            json!([{"type":"rich_text_section","elements":[
                {"type":"user","user_id":"U01JKSB8T7Y"},{"type":"text","text":" test"}]}])
        );
    }

    #[test]
    fn styles_links_emoji_and_broadcast() {
        let b = rt(
            "*Hey!* this is ~very~ `block` <https://slack.com|Slack website!> :tada: <!here> a &lt; b",
        );
        let els = &b["elements"][0]["elements"];
        assert_eq!(
            els[0],
            json!({"type":"text","text":"Hey!","style":{"bold":true}})
        );
        assert_eq!(
            els[2],
            json!({"type":"text","text":"very","style":{"strike":true}})
        );
        assert_eq!(
            els[4],
            json!({"type":"text","text":"block","style":{"code":true}})
        );
        assert_eq!(
            els[6],
            json!({"type":"link","url":"https://slack.com","text":"Slack website!"})
        );
        assert_eq!(
            els[8],
            json!({"type":"emoji","name":"tada","unicode":"1f389"})
        );
        assert_eq!(els[10], json!({"type":"broadcast","range":"here"}));
        assert_eq!(els[11], json!({"type":"text","text":" a < b"}));
    }

    #[test]
    fn quote_list_and_preformatted() {
        let b = rt("intro\n&gt; quoted\n• a\n• b\n```let x = 1;```");
        let types: Vec<&str> = b["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "rich_text_section",
                "rich_text_quote",
                "rich_text_list",
                "rich_text_preformatted"
            ]
        );
        assert_eq!(b["elements"][2]["style"], "bullet");
        assert_eq!(b["elements"][2]["indent"], 0);
        assert_eq!(b["elements"][2]["elements"].as_array().unwrap().len(), 2);
        assert_eq!(b["elements"][3]["elements"][0]["text"], "let x = 1;");
    }

    #[test]
    fn validation() {
        assert!(validate_blocks(&json!([rt("hi")])).is_ok());
        assert!(validate_blocks(&json!([{"type":"bogus"}])).is_err());
        assert!(validate_blocks(&json!({"type":"section"})).is_err());
        assert!(validate_blocks(&json!([{"type":"section"}])).is_err());
    }
}
