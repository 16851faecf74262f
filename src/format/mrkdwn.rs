//! Slack mrkdwn (a message's `text`) → Matrix body + HTML.
//!
//! mrkdwn is not CommonMark: `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ```pre``` ````,
//! `>` quotes at line start, `<…>` control sequences, and only `&amp; &lt; &gt;` as entities.

use super::render::{Labels, Render};
use super::{MatrixMessage, SlackContext};

/// Converts mrkdwn text; mentions resolve through `ctx`, falling back to the labels in the text.
pub fn to_matrix(text: &str, ctx: &SlackContext) -> MatrixMessage {
    let labels = labels(text);
    let mut r = Render::new(ctx, &labels);
    render(&mut r, text);
    r.finish()
}

/// Renders mrkdwn into an existing output (also used for `section` blocks).
pub(super) fn render(r: &mut Render<'_>, text: &str) {
    let mut rest = text;
    while !rest.is_empty() {
        let Some((before, code, after)) = split_code_block(rest) else {
            render_lines(r, rest);
            break;
        };
        render_lines(r, before);
        r.code_block(|r| {
            let code = code.strip_prefix('\n').unwrap_or(code);
            let code = code.strip_suffix('\n').unwrap_or(code);
            render_code(r, code);
        });
        rest = after.strip_prefix('\n').unwrap_or(after);
    }
}

/// Every `<@U…>` and `<#C…>` in the text, appended unless already present.
pub(super) fn collect_ids(text: &str, users: &mut Vec<String>, channels: &mut Vec<String>) {
    for inner in control_sequences(text) {
        let (target, _) = split_label(inner);
        let (list, id) = match target.chars().next() {
            Some('@') => (&mut *users, &target[1..]),
            Some('#') => (&mut *channels, &target[1..]),
            _ => continue,
        };
        if !id.is_empty() && !list.iter().any(|known| known == id) {
            list.push(id.to_owned());
        }
    }
}

/// The labels Slack put on mentions in the text.
pub(super) fn labels(text: &str) -> Labels {
    let mut labels = Labels::default();
    for inner in control_sequences(text) {
        let (target, Some(label)) = split_label(inner) else {
            continue;
        };
        let label = decode_entities(label);
        if let Some(id) = target.strip_prefix('@') {
            labels.users.insert(id.to_owned(), label);
        } else if let Some(id) = target.strip_prefix('#') {
            labels.channels.insert(id.to_owned(), label);
        } else if let Some(id) = target.strip_prefix("!subteam^") {
            labels.usergroups.insert(id.to_owned(), label);
        }
    }
    labels
}

fn control_sequences(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find('<')?;
        let len = rest[start..].find('>')?;
        let inner = &rest[start + 1..start + len];
        rest = &rest[start + len + 1..];
        Some(inner)
    })
}

fn split_label(inner: &str) -> (&str, Option<&str>) {
    match inner.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (inner, None),
    }
}

/// `(before, code, after)` around the first closed ```` ``` ```` block.
fn split_code_block(s: &str) -> Option<(&str, &str, &str)> {
    let open = s.find("```")?;
    let close = s[open + 3..].find("```")? + open + 3;
    Some((&s[..open], &s[open + 3..close], &s[close + 3..]))
}

/// Paragraph text: runs of `>` lines become quotes, everything else inline text.
fn render_lines(r: &mut Render<'_>, s: &str) {
    if s.is_empty() {
        return;
    }
    let s = r.skip_leading_newline(s);
    let lines: Vec<&str> = s.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        if let Some(rest) = quote_all_marker(lines[i]) {
            let mut quoted = vec![rest];
            quoted.extend(&lines[i + 1..]);
            r.quote(|r| render_inline(r, &quoted.join("\n")));
            return;
        }
        let start = i;
        let quoted = quote_marker(lines[i]).is_some();
        while i < lines.len()
            && quote_marker(lines[i]).is_some() == quoted
            && quote_all_marker(lines[i]).is_none()
        {
            i += 1;
        }
        if quoted {
            let inner: Vec<&str> = lines[start..i]
                .iter()
                .filter_map(|l| quote_marker(l))
                .collect();
            r.quote(|r| render_inline(r, &inner.join("\n")));
        } else {
            let mut text = lines[start..i].join("\n");
            if i < lines.len() {
                // The newline before a quote is implied by the quote block.
                text.push('\n');
            }
            render_inline(r, &text);
        }
    }
}

fn quote_marker(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("&gt;")
        .or_else(|| line.strip_prefix('>'))?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// `>>>` quotes everything after it.
fn quote_all_marker(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("&gt;&gt;&gt;")
        .or_else(|| line.strip_prefix(">>>"))?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

#[derive(Debug, Clone, Copy)]
enum Tok<'s> {
    Text(&'s str),
    Control(&'s str),
    Code(&'s str),
    Emoji(&'s str),
    Mark { c: char, open: bool, close: bool },
}

fn tokenize<'s>(s: &'s str, known_emoji: &dyn Fn(&str) -> bool) -> Vec<Tok<'s>> {
    let mut toks = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    let flush = |toks: &mut Vec<Tok<'s>>, from: usize, to: usize| {
        if from < to {
            toks.push(Tok::Text(&s[from..to]));
        }
    };
    // The next `>`, newline and backtick at or after a position, found once per stretch so
    // that text with many unclosed `<` or backticks is still read in linear time.
    let mut gt = NextByte::new(b'>');
    let mut newline = NextByte::new(b'\n');
    let mut backtick = NextByte::new(b'`');
    while i < s.len() {
        let c = bytes[i];
        match c {
            b'<' => {
                if let Some(end) = gt.at(bytes, i) {
                    flush(&mut toks, text_start, i);
                    toks.push(Tok::Control(&s[i + 1..end]));
                    i = end + 1;
                    text_start = i;
                    continue;
                }
            }
            b'`' => {
                let line_end = newline.at(bytes, i + 1).unwrap_or(s.len());
                if let Some(len) = backtick
                    .at(bytes, i + 1)
                    .filter(|&end| end < line_end)
                    .map(|end| end - i - 1)
                    .filter(|&len| len > 0)
                {
                    flush(&mut toks, text_start, i);
                    toks.push(Tok::Code(&s[i + 1..i + 1 + len]));
                    i += len + 2;
                    text_start = i;
                    continue;
                }
            }
            b':' => {
                if let Some(len) = emoji_len(&s[i + 1..], known_emoji) {
                    flush(&mut toks, text_start, i);
                    toks.push(Tok::Emoji(&s[i + 1..i + 1 + len]));
                    i += len + 2;
                    text_start = i;
                    continue;
                }
            }
            b'*' | b'_' | b'~' => {
                let prev = s[..i].chars().next_back();
                let next = s[i + 1..].chars().next();
                let open = prev.is_none_or(|p| !p.is_alphanumeric() && p != c as char)
                    && next.is_some_and(|n| !n.is_whitespace() && n != c as char);
                let close = prev.is_some_and(|p| !p.is_whitespace() && p != c as char)
                    && next.is_none_or(|n| !n.is_alphanumeric() && n != c as char);
                if open || close {
                    flush(&mut toks, text_start, i);
                    toks.push(Tok::Mark {
                        c: c as char,
                        open,
                        close,
                    });
                    i += 1;
                    text_start = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
        // Stay on a char boundary: multi-byte chars never start with the ASCII bytes above.
        while i < s.len() && !s.is_char_boundary(i) {
            i += 1;
        }
    }
    flush(&mut toks, text_start, s.len());
    toks
}

/// The first position at or after `from` holding `byte`, remembered until `from` passes it.
struct NextByte {
    byte: u8,
    /// `(searched from, found at)`: the answer for every `from` up to the found position.
    last: Option<(usize, Option<usize>)>,
}

impl NextByte {
    fn new(byte: u8) -> Self {
        Self { byte, last: None }
    }

    fn at(&mut self, bytes: &[u8], from: usize) -> Option<usize> {
        match self.last {
            Some((searched, found)) if searched <= from && found.is_none_or(|f| from <= f) => found,
            _ => {
                let found = bytes
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| b == self.byte))
                    .map(|p| p + from);
                self.last = Some((from, found));
                found
            }
        }
    }
}

/// Length of a known `:shortcode:` name at the start of `s` (after the opening colon).
fn emoji_len(s: &str, known: &dyn Fn(&str) -> bool) -> Option<usize> {
    let end = s.find(':')?;
    let mut len = end;
    if s[end..].starts_with("::skin-tone-") {
        len = end + 2 + s[end + 2..].find(':')?;
    }
    let name = &s[..len];
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-':".contains(c));
    (valid && known(name)).then_some(len)
}

fn render_inline(r: &mut Render<'_>, s: &str) {
    let toks = tokenize(s, &|name| r.knows_emoji(name));
    let closers = Closers::new(&toks);
    render_tokens(r, &toks, 0..toks.len(), &closers);
}

/// For each token and marker, the first closing marker at or after it on the same line, so
/// that finding an opener's closer takes one lookup (a line of openers without closers would
/// otherwise be searched to its end once per opener).
struct Closers {
    /// Indexed by `[marker][token]`; `usize::MAX` for none.
    next: [Vec<usize>; 3],
}

impl Closers {
    const MARKERS: [char; 3] = ['*', '_', '~'];

    fn new(toks: &[Tok<'_>]) -> Self {
        let mut next = [
            vec![usize::MAX; toks.len() + 1],
            vec![usize::MAX; toks.len() + 1],
            vec![usize::MAX; toks.len() + 1],
        ];
        for (j, tok) in toks.iter().enumerate().rev() {
            for (m, c) in Self::MARKERS.iter().enumerate() {
                next[m][j] = match *tok {
                    Tok::Mark {
                        c: t, close: true, ..
                    } if t == *c => j,
                    Tok::Text(t) if t.contains('\n') => usize::MAX,
                    _ => next[m][j + 1],
                };
            }
        }
        Self { next }
    }

    /// The matching closer for the opener at `at`, on the same line, not right after it,
    /// and before `end`.
    fn find(&self, toks: &[Tok<'_>], at: usize, c: char, end: usize) -> Option<usize> {
        let m = Self::MARKERS.iter().position(|&x| x == c)?;
        if let Some(Tok::Text(t)) = toks.get(at + 1)
            && t.contains('\n')
        {
            return None;
        }
        let found = *self.next[m].get(at + 2)?;
        (found < end).then_some(found)
    }
}

fn render_tokens(
    r: &mut Render<'_>,
    toks: &[Tok<'_>],
    range: std::ops::Range<usize>,
    closers: &Closers,
) {
    let mut i = range.start;
    while i < range.end {
        match toks[i] {
            Tok::Text(t) => r.text(&decode_entities(t)),
            Tok::Control(inner) => render_control(r, inner),
            Tok::Code(code) => r.inline_code(|r| render_code(r, code)),
            Tok::Emoji(name) => r.emoji(name),
            Tok::Mark { c, open, .. } => {
                if let Some(close) = open.then(|| closers.find(toks, i, c, range.end)).flatten() {
                    let tag = match c {
                        '*' => "strong",
                        '_' => "em",
                        _ => "del",
                    };
                    r.tag(tag, |r| render_tokens(r, toks, i + 1..close, closers));
                    i = close + 1;
                    continue;
                }
                r.text(c.encode_utf8(&mut [0; 4]));
            }
        }
        i += 1;
    }
}

/// Code keeps its characters; control sequences inside still show their label or target.
fn render_code(r: &mut Render<'_>, code: &str) {
    for tok in tokenize_controls(code) {
        match tok {
            Tok::Control(inner) => render_control(r, inner),
            Tok::Text(t) => r.text(&decode_entities(t)),
            _ => {}
        }
    }
}

fn tokenize_controls(s: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        toks.push(Tok::Text(&rest[..start]));
        toks.push(Tok::Control(&rest[start + 1..start + len]));
        rest = &rest[start + len + 1..];
    }
    toks.push(Tok::Text(rest));
    toks
}

fn render_control(r: &mut Render<'_>, inner: &str) {
    let (target, label) = split_label(inner);
    let label = label.map(decode_entities);
    let label = label.as_deref();
    if let Some(id) = target.strip_prefix('@') {
        r.user(id, label);
    } else if let Some(id) = target.strip_prefix('#') {
        r.channel(id, label);
    } else if let Some(command) = target.strip_prefix('!') {
        match command {
            "here" | "channel" | "everyone" => r.broadcast(command),
            "group" => r.broadcast("channel"),
            _ => {
                if let Some(id) = command.strip_prefix("subteam^") {
                    r.usergroup(id, label);
                } else if command.starts_with("date^") {
                    // The fallback is Slack's own rendering for clients that cannot format dates.
                    r.text(label.unwrap_or(command));
                } else {
                    r.text(&format!("<{}>", label.unwrap_or(command)));
                }
            }
        }
    } else {
        r.link(&decode_entities(target), label);
    }
}

/// Slack escapes only these three; anything else that looks like an entity is literal text.
pub(super) fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ChannelRef, Mention};

    fn ctx() -> SlackContext {
        let mut ctx = SlackContext::default();
        ctx.users.insert(
            "U024BE7LH".into(),
            Mention {
                mxid: "@slack_t1-u024be7lh:example.com".into(),
                name: "Bob <Builder>".into(),
            },
        );
        ctx.channels.insert(
            "C024BE7LR".into(),
            ChannelRef {
                room_id: Some("!portal:example.com".into()),
                name: "general".into(),
            },
        );
        ctx.channels.insert(
            "C999".into(),
            ChannelRef {
                room_id: None,
                name: "secret".into(),
            },
        );
        ctx
    }

    fn html(text: &str) -> String {
        let msg = to_matrix(text, &ctx());
        msg.formatted_body
            .unwrap_or_else(|| format!("(plain) {}", msg.body))
    }

    #[test]
    fn plain_text_needs_no_html() {
        let msg = to_matrix("hello world\nsecond line", &ctx());
        assert_eq!(msg.body, "hello world\nsecond line");
        assert_eq!(msg.formatted_body, None);
        assert!(!msg.mentions_room);
        assert!(msg.mentioned_users.is_empty());
    }

    #[test]
    fn empty_text() {
        assert_eq!(to_matrix("", &ctx()), MatrixMessage::default());
    }

    #[test]
    fn styles() {
        assert_eq!(
            html("*bold* _italic_ ~strike~"),
            "<strong>bold</strong> <em>italic</em> <del>strike</del>"
        );
        assert_eq!(
            html("*bold _and italic_*"),
            "<strong>bold <em>and italic</em></strong>"
        );
        assert_eq!(html("a *b*\nc"), "a <strong>b</strong><br>c");
    }

    #[test]
    fn markers_that_are_not_styles() {
        assert_eq!(
            html("snake_case_name and 2*3*4"),
            "(plain) snake_case_name and 2*3*4"
        );
        assert_eq!(html("a * b * c"), "(plain) a * b * c");
        assert_eq!(
            html("*not closed\non this line*"),
            "(plain) *not closed\non this line*"
        );
        assert_eq!(html("**"), "(plain) **");
    }

    #[test]
    fn code_is_literal() {
        assert_eq!(
            html("use `*ptr_a* &amp;&amp; b` now"),
            "use <code>*ptr_a* &amp;&amp; b</code> now"
        );
        let msg = to_matrix(
            "before\n```\nfn main() { *x = _y_; }\n:tada: a &lt; b\n```\nafter",
            &ctx(),
        );
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("before<pre><code>fn main() { *x = _y_; }\n:tada: a &lt; b</code></pre>after")
        );
        assert_eq!(
            msg.body,
            "before\n```\nfn main() { *x = _y_; }\n:tada: a < b\n```\nafter"
        );
    }

    #[test]
    fn inline_code_block() {
        assert_eq!(
            html("run ```make test``` please"),
            "run <pre><code>make test</code></pre> please"
        );
    }

    #[test]
    fn unclosed_code_block_is_text() {
        assert_eq!(html("``` not code"), "(plain) ``` not code");
    }

    #[test]
    fn quotes() {
        assert_eq!(
            html("intro\n&gt; quoted *line*\n&gt; second\nafter"),
            "intro<blockquote>quoted <strong>line</strong><br>second</blockquote>after"
        );
        let msg = to_matrix("&gt;&gt;&gt; all\nof this", &ctx());
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<blockquote>all<br>of this</blockquote>")
        );
        assert_eq!(msg.body, "> all\n> of this");
        // `&gt;` elsewhere is just a character.
        assert_eq!(html("a &gt; b"), "(plain) a > b");
    }

    #[test]
    fn links() {
        assert_eq!(
            html("see <https://example.com/a?b=1&amp;c=2|the *docs*> and <http://foo.com/>"),
            "see <a href=\"https://example.com/a?b=1&amp;c=2\">the *docs*</a> and \
             <a href=\"http://foo.com/\">http://foo.com/</a>"
        );
        let msg = to_matrix("<mailto:bob@example.com|Bob>", &ctx());
        assert_eq!(msg.body, "Bob (mailto:bob@example.com)");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<a href=\"mailto:bob@example.com\">Bob</a>")
        );
    }

    #[test]
    fn bold_link() {
        assert_eq!(
            html("*<https://x.org|x>*"),
            "<strong><a href=\"https://x.org\">x</a></strong>"
        );
    }

    #[test]
    fn user_mentions() {
        let msg = to_matrix("<@U024BE7LH> hi <@U024BE7LH|bob>", &ctx());
        assert_eq!(msg.body, "Bob <Builder> hi Bob <Builder>");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some(
                "<a href=\"https://matrix.to/#/@slack_t1-u024be7lh:example.com\">Bob &lt;Builder&gt;</a> hi \
                 <a href=\"https://matrix.to/#/@slack_t1-u024be7lh:example.com\">Bob &lt;Builder&gt;</a>"
            )
        );
        assert_eq!(msg.mentioned_users, ["@slack_t1-u024be7lh:example.com"]);
    }

    #[test]
    fn only_a_mention() {
        let msg = to_matrix("<@U024BE7LH>", &ctx());
        assert_eq!(msg.body, "Bob <Builder>");
        assert_eq!(msg.mentioned_users.len(), 1);
    }

    #[test]
    fn unknown_mentions_degrade() {
        let msg = to_matrix(
            "<@U123> <@U456|carol> <#C123> <#C456|random> <#C999>",
            &ctx(),
        );
        assert_eq!(msg.body, "@U123 @carol #C123 #random #secret");
        assert_eq!(msg.formatted_body, None);
        assert!(msg.mentioned_users.is_empty());
    }

    #[test]
    fn channel_mentions() {
        let msg = to_matrix("join <#C024BE7LR|general>", &ctx());
        assert_eq!(msg.body, "join #general");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("join <a href=\"https://matrix.to/#/!portal:example.com\">#general</a>")
        );
    }

    #[test]
    fn special_mentions() {
        for (text, body) in [
            ("<!here> look", "@room look"),
            ("<!channel>", "@room"),
            ("<!everyone|everyone>", "@room"),
            ("<!group>", "@room"),
        ] {
            let msg = to_matrix(text, &ctx());
            assert_eq!(msg.body, body);
            assert!(msg.mentions_room, "{text}");
        }
        let msg = to_matrix("<!subteam^S123|@team> and <!subteam^S456>", &ctx());
        assert_eq!(msg.body, "@team and @S456");
        assert!(!msg.mentions_room);
        let msg = to_matrix(
            "<!date^1392734382^{date_num} {time_secs}|2014-02-18 6:39:42 AM PST>",
            &ctx(),
        );
        assert_eq!(msg.body, "2014-02-18 6:39:42 AM PST");
        assert_eq!(to_matrix("<!foo|bar>", &ctx()).body, "<bar>");
    }

    #[test]
    fn entities_and_html_injection() {
        let msg = to_matrix(
            "&lt;script&gt;alert(1)&lt;/script&gt; *x* &amp;amp;",
            &ctx(),
        );
        assert_eq!(msg.body, "<script>alert(1)</script> x &amp;");
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("&lt;script&gt;alert(1)&lt;/script&gt; <strong>x</strong> &amp;amp;")
        );
        let msg = to_matrix("<https://x.org/\"onmouseover=\"alert(1)|click>", &ctx());
        assert_eq!(
            msg.formatted_body.as_deref(),
            Some("<a href=\"https://x.org/&quot;onmouseover=&quot;alert(1)\">click</a>")
        );
    }

    #[test]
    fn emoji_shortcodes() {
        let msg = to_matrix(
            "ship it :rocket: :+1::skin-tone-2: :white_check_mark: :custom_thing:",
            &ctx(),
        );
        assert_eq!(msg.body, "ship it 🚀 👍🏻 ✅ :custom_thing:");
        assert_eq!(msg.formatted_body, None);
        assert_eq!(html("_:tada: party_"), "<em>🎉 party</em>");
    }

    #[test]
    fn ids_and_labels() {
        let text = "<@U1|ann> <@U1> <#C1|general> <!subteam^S1|@devs> <https://x.org|@U9>";
        let (mut users, mut channels) = (vec![], vec![]);
        collect_ids(text, &mut users, &mut channels);
        assert_eq!(users, ["U1"]);
        assert_eq!(channels, ["C1"]);
        let labels = labels(text);
        assert_eq!(labels.users["U1"], "ann");
        assert_eq!(labels.channels["C1"], "general");
        assert_eq!(labels.usergroups["S1"], "@devs");
    }
}
