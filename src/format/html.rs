//! Matrix `org.matrix.custom.html` (and plain bodies) → Slack mrkdwn, for messages sent from
//! Matrix. Parsing is ruma-html's; this module only walks the tree.

use ruma::html::{Html, NodeData, NodeRef};

use super::MatrixContext;

/// Converts Matrix HTML to mrkdwn. Pills of bridged users and rooms become Slack mentions; the
/// reply fallback (`<mx-reply>`) is dropped.
pub fn to_slack(html: &str, ctx: &MatrixContext) -> String {
    let Some(doc) = parse(html) else {
        return escape_slack(&strip_tags(html));
    };
    let mut w = Writer::default();
    for child in doc.children() {
        walk(&child, ctx, Mode::Normal, &mut w);
    }
    w.finish()
}

/// The user and room IDs the links (pills) of `html` point at, in document order.
pub fn link_targets(html: &str) -> Vec<String> {
    fn collect(node: &NodeRef, out: &mut Vec<String>) {
        if node.as_element().is_some_and(|e| &*e.name.local == "a")
            && let Some(target) = attr(node, "href").and_then(|h| matrix_target(&h))
        {
            out.push(target);
        }
        for child in node.children() {
            collect(&child, out);
        }
    }
    let Some(doc) = parse(html) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for child in doc.children() {
        collect(&child, &mut out);
    }
    out
}

/// Elements nested deeper than this are no message a person wrote; the parser's tree (and
/// dropping it) would recurse once per level, so such HTML is not parsed at all.
pub const MAX_DEPTH: usize = 100;

/// More tags than this are more than a Matrix event (64 KiB) carries in practice; ruma-html
/// finds a node's next sibling by searching its parent's children, so walking a node with n
/// children takes n² steps, and such HTML is not parsed either.
pub const MAX_TAGS: usize = 10_000;

/// The parsed document, or `None` when it is [`too_complex`].
fn parse(html: &str) -> Option<Html> {
    (!too_complex(html)).then(|| Html::parse(html))
}

/// Whether `html` may nest elements deeper than [`MAX_DEPTH`] or hold more than [`MAX_TAGS`]
/// tags, by counting start and end tags in one linear pass. Tags HTML closes implicitly (an
/// unclosed `<li>`, `<p>`) count as open, so this can only overestimate.
pub fn too_complex(html: &str) -> bool {
    const VOID: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    ];
    let mut tags = 0usize;
    let b = html.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == start || !b[start].is_ascii_alphabetic() {
            continue;
        }
        tags += 1;
        if tags > MAX_TAGS {
            return true;
        }
        let name = html[start..i].to_ascii_lowercase();
        // The tag's end, stopping at the next `<` so that every byte is looked at once.
        // A `/>` does not close an HTML element (`<b/>` opens a `<b>`), so it is not looked at.
        while i < b.len() && b[i] != b'>' && b[i] != b'<' {
            i += 1;
        }
        if VOID.contains(&name.as_str()) {
            continue;
        }
        depth += 1;
        if depth > MAX_DEPTH {
            return true;
        }
    }
    false
}

/// The text of `html` without its tags, for HTML too complex to parse.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Escapes Slack's control characters in literal text (`&`, `<`, `>`); nothing else needs it.
pub fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Inside inline code or a link label: no markup, only text.
    Plain,
    /// Inside `<pre>`: whitespace is kept.
    Pre,
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Renders inline content for a wrapper, so a leading space is still meaningful.
    inline: bool,
}

impl Writer {
    fn inline() -> Self {
        Self {
            out: String::new(),
            inline: true,
        }
    }

    fn at_line_start(&self) -> bool {
        self.out.ends_with('\n') || (self.out.is_empty() && !self.inline)
    }

    /// Text with HTML whitespace rules: runs collapse to one space, and none at a line start.
    fn text(&mut self, s: &str, mode: Mode) {
        if mode == Mode::Pre {
            self.out.push_str(&escape_slack(s));
            return;
        }
        for (i, word) in s.split(|c: char| c.is_ascii_whitespace()).enumerate() {
            if i > 0 && !self.at_line_start() && !self.out.ends_with(' ') {
                self.out.push(' ');
            }
            self.out.push_str(&escape_slack(word));
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn trim_line_end(&mut self) {
        let trimmed = self.out.trim_end_matches(' ').len();
        self.out.truncate(trimmed);
    }

    fn line_start(&mut self) {
        self.trim_line_end();
        if !self.at_line_start() {
            self.out.push('\n');
        }
    }

    fn blank_line(&mut self) {
        self.line_start();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn finish(self) -> String {
        self.out.trim_matches(|c| c == '\n' || c == ' ').to_owned()
    }
}

fn walk_children(node: &NodeRef, ctx: &MatrixContext, mode: Mode, w: &mut Writer) {
    for child in node.children() {
        walk(&child, ctx, mode, w);
    }
}

/// Renders `node`'s children on their own, for wrapping or prefixing.
fn render_children(node: &NodeRef, ctx: &MatrixContext, mode: Mode) -> String {
    let mut w = Writer::default();
    walk_children(node, ctx, mode, &mut w);
    w.finish()
}

fn attr(node: &NodeRef, name: &str) -> Option<String> {
    let element = node.as_element()?;
    let attrs = element.attrs.borrow();
    attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.to_string())
}

fn walk(node: &NodeRef, ctx: &MatrixContext, mode: Mode, w: &mut Writer) {
    let element = match node.data() {
        NodeData::Text(text) => return w.text(&text.borrow(), mode),
        NodeData::Element(element) => element,
        NodeData::Document | NodeData::Other => return walk_children(node, ctx, mode, w),
    };
    let name: &str = &element.name.local;
    match (name, mode) {
        ("mx-reply" | "script" | "style" | "head" | "title", _) => {}
        ("br", Mode::Pre) => w.raw("\n"),
        ("br", _) => {
            w.trim_line_end();
            w.raw("\n");
        }
        (_, Mode::Pre) => walk_children(node, ctx, mode, w),
        ("a", _) => link(node, ctx, mode, w),
        ("img", _) => {
            // Custom emoji (`data-mx-emoticon`) carry their `:shortcode:` as alt text.
            if let Some(alt) = attr(node, "alt") {
                w.text(&alt, mode);
            }
        }
        (_, Mode::Plain) => walk_children(node, ctx, mode, w),
        ("strong" | "b", _) => wrap(node, ctx, w, "*"),
        ("em" | "i", _) => wrap(node, ctx, w, "_"),
        ("del" | "s" | "strike", _) => wrap(node, ctx, w, "~"),
        ("code", _) => {
            let code = render_children(node, ctx, Mode::Plain);
            if !code.is_empty() {
                w.raw(&format!("`{code}`"));
            }
        }
        ("pre", _) => {
            let mut inner = Writer::default();
            walk_children(node, ctx, Mode::Pre, &mut inner);
            let code = inner.out.strip_suffix('\n').unwrap_or(&inner.out);
            w.line_start();
            w.raw(&format!("```\n{code}\n```"));
            w.line_start();
        }
        ("blockquote", _) => {
            let inner = render_children(node, ctx, mode);
            w.line_start();
            let quoted: Vec<String> = inner
                .lines()
                .map(|line| {
                    if line.is_empty() {
                        ">".to_owned()
                    } else {
                        format!("> {line}")
                    }
                })
                .collect();
            w.raw(&quoted.join("\n"));
            w.line_start();
        }
        ("ul" | "ol", _) => list(node, ctx, name == "ol", w),
        ("p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6", _) => {
            w.blank_line();
            if name.starts_with('h') {
                wrap(node, ctx, w, "*");
            } else {
                walk_children(node, ctx, mode, w);
            }
            w.blank_line();
        }
        ("div" | "li" | "tr" | "table" | "details" | "summary", _) => {
            w.line_start();
            walk_children(node, ctx, mode, w);
            w.line_start();
        }
        ("hr", _) => {
            w.line_start();
            w.raw("---");
            w.line_start();
        }
        _ => walk_children(node, ctx, mode, w),
    }
}

/// `*x*`, `_x_`, `~x~`. Slack only honours markers that hug non-space text on one line, so the
/// markers go inside surrounding whitespace and around each line separately.
fn wrap(node: &NodeRef, ctx: &MatrixContext, w: &mut Writer, marker: &str) {
    let mut inner = Writer::inline();
    walk_children(node, ctx, Mode::Normal, &mut inner);
    let inner = inner.out;
    let lines: Vec<String> = inner
        .split('\n')
        .map(|line| {
            let core = line.trim();
            if core.is_empty() {
                return line.to_owned();
            }
            let lead = &line[..line.len() - line.trim_start().len()];
            let trail = &line[line.trim_end().len()..];
            format!("{lead}{marker}{core}{marker}{trail}")
        })
        .collect();
    let joined = lines.join("\n");
    if w.out.is_empty() || w.out.ends_with('\n') || w.out.ends_with(' ') {
        w.raw(joined.trim_start_matches(' '));
    } else {
        w.raw(&joined);
    }
}

fn list(node: &NodeRef, ctx: &MatrixContext, ordered: bool, w: &mut Writer) {
    let mut number = attr(node, "start")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(1);
    w.line_start();
    for child in node.children() {
        let is_item = child.as_element().is_some_and(|e| &*e.name.local == "li");
        if !is_item {
            // Whitespace between items, or stray content: kept only if it says something.
            let mut stray = Writer::default();
            walk(&child, ctx, Mode::Normal, &mut stray);
            let stray = stray.finish();
            if !stray.is_empty() {
                w.line_start();
                w.raw(&stray);
                w.line_start();
            }
            continue;
        }
        let marker = if ordered {
            format!("{number}. ")
        } else {
            "• ".to_owned()
        };
        number += 1;
        let content = render_children(&child, ctx, Mode::Normal);
        w.line_start();
        for (i, line) in content.lines().enumerate() {
            if i == 0 {
                w.raw(&format!("{marker}{line}"));
            } else {
                w.raw(&format!("\n    {line}"));
            }
        }
        if content.is_empty() {
            w.raw(marker.trim_end());
        }
        w.line_start();
    }
}

fn link(node: &NodeRef, ctx: &MatrixContext, mode: Mode, w: &mut Writer) {
    let label = render_children(node, ctx, Mode::Plain);
    let Some(href) = attr(node, "href").filter(|h| !h.trim().is_empty()) else {
        return w.raw(&label);
    };
    let href = href.trim();
    if let Some(target) = matrix_target(href) {
        if target.starts_with('@') {
            match ctx.users.get(&target) {
                Some(slack_user) if mode == Mode::Normal => {
                    return w.raw(&format!("<@{slack_user}>"));
                }
                _ => return w.raw(&label),
            }
        }
        if target.starts_with('!') && !target.contains('/') {
            match ctx.rooms.get(&target) {
                Some(channel) if mode == Mode::Normal => return w.raw(&format!("<#{channel}>")),
                _ => {}
            }
        }
        // A link to a bridged message: its Slack permalink.
        if let Some(permalink) = target
            .split_once('/')
            .and_then(|(_, event)| ctx.events.get(event))
            && mode == Mode::Normal
        {
            let url = escape_slack(permalink).replace('|', "%7C");
            return if label.is_empty() {
                w.raw(&format!("<{url}>"))
            } else {
                w.raw(&format!("<{url}|{label}>"))
            };
        }
    }
    if mode != Mode::Normal {
        return w.raw(&label);
    }
    // `|` would end the URL part of the control sequence.
    let url = escape_slack(href).replace('|', "%7C");
    if label.is_empty() || label == escape_slack(href) {
        w.raw(&format!("<{url}>"));
    } else {
        w.raw(&format!("<{url}|{label}>"));
    }
}

/// The user or room id a `matrix.to` or `matrix:` link points at, percent-decoded.
fn matrix_target(href: &str) -> Option<String> {
    if let Some(rest) = href.strip_prefix("https://matrix.to/#/") {
        let path = rest.split('?').next().unwrap_or(rest);
        return Some(percent_decode(path));
    }
    let rest = href.strip_prefix("matrix:")?;
    let path = rest.split('?').next().unwrap_or(rest);
    let (kind, id) = path.split_once('/')?;
    let sigil = match kind {
        "u" => '@',
        "roomid" => '!',
        _ => return None,
    };
    let id = id.split('/').next().unwrap_or(id);
    Some(format!("{sigil}{}", percent_decode(id)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MatrixContext {
        let mut ctx = MatrixContext::default();
        ctx.users
            .insert("@slack_t1-u1:example.com".into(), "U1".into());
        ctx.rooms.insert("!general:example.com".into(), "C1".into());
        ctx
    }

    fn slack(html: &str) -> String {
        to_slack(html, &ctx())
    }

    #[test]
    fn inline_styles() {
        assert_eq!(
            slack("<strong>a</strong> <b>b</b> <em>c</em> <i>d</i>"),
            "*a* *b* _c_ _d_"
        );
        assert_eq!(
            slack("<del>a</del> <s>b</s> <strike>c</strike> <code>d</code>"),
            "~a~ ~b~ ~c~ `d`"
        );
        assert_eq!(slack("<b><i>both</i></b>"), "*_both_*");
        assert_eq!(slack("x<b> spaced </b>y"), "x *spaced* y");
        assert_eq!(slack("<b> </b>"), "");
        assert_eq!(slack("<u>under</u>line"), "underline");
    }

    #[test]
    fn escapes_control_characters() {
        assert_eq!(
            slack("a &lt; b &amp;&amp; c &gt; d"),
            "a &lt; b &amp;&amp; c &gt; d"
        );
        assert_eq!(slack("<code>&lt;@U1&gt;</code>"), "`&lt;@U1&gt;`");
        assert_eq!(escape_slack("<!here> & co"), "&lt;!here&gt; &amp; co");
    }

    #[test]
    fn code_blocks_keep_whitespace() {
        assert_eq!(
            slack(
                "<p>run:</p><pre><code class=\"language-rust\">fn main() {\n    *x &lt; y;\n}\n</code></pre><p>done</p>"
            ),
            "run:\n\n```\nfn main() {\n    *x &lt; y;\n}\n```\n\ndone"
        );
    }

    #[test]
    fn paragraphs_and_breaks() {
        assert_eq!(slack("<p>one</p>\n<p>two</p>"), "one\n\ntwo");
        assert_eq!(slack("a<br>b<br/>c"), "a\nb\nc");
        assert_eq!(slack("a\n  b"), "a b");
        assert_eq!(slack("<h2>Title</h2><p>text</p>"), "*Title*\n\ntext");
        assert_eq!(slack("<b>a<br>b</b>"), "*a*\n*b*");
    }

    #[test]
    fn blockquotes() {
        assert_eq!(
            slack("<blockquote>\n<p>wise <em>words</em></p>\n</blockquote>\n<p>reply</p>"),
            "> wise _words_\n\nreply"
        );
        assert_eq!(slack("<blockquote>a<br><br>b</blockquote>"), "> a\n>\n> b");
    }

    #[test]
    fn lists() {
        assert_eq!(
            slack("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
            "• one\n• two"
        );
        assert_eq!(
            slack("<ol start=\"3\"><li>c</li><li>d</li></ol>"),
            "3. c\n4. d"
        );
        assert_eq!(
            slack("<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul>"),
            "• a\n    • a1\n    • a2\n• b"
        );
        assert_eq!(
            slack("<p>list:</p><ol><li><b>x</b></li></ol><p>end</p>"),
            "list:\n\n1. *x*\n\nend"
        );
    }

    #[test]
    fn links() {
        assert_eq!(
            slack("<a href=\"https://example.com\">site</a>"),
            "<https://example.com|site>"
        );
        assert_eq!(
            slack("<a href=\"https://example.com\">https://example.com</a>"),
            "<https://example.com>"
        );
        assert_eq!(
            slack("<a href=\"https://x.org/?a=1&amp;b=2|3\">a <b>bold</b> &lt;label&gt;</a>"),
            "<https://x.org/?a=1&amp;b=2%7C3|a bold &lt;label&gt;>"
        );
        assert_eq!(slack("<a>no href</a>"), "no href");
        assert_eq!(slack("<code><a href=\"https://x.org\">x</a></code>"), "`x`");
    }

    #[test]
    fn pills() {
        assert_eq!(
            slack("<a href=\"https://matrix.to/#/@slack_t1-u1:example.com\">Alice</a>: hi"),
            "<@U1>: hi"
        );
        assert_eq!(
            slack("<a href=\"https://matrix.to/#/%40slack_t1-u1%3Aexample.com\">Alice</a>"),
            "<@U1>"
        );
        assert_eq!(
            slack("<a href=\"matrix:u/slack_t1-u1:example.com?action=chat\">Alice</a>"),
            "<@U1>"
        );
        assert_eq!(
            slack("<a href=\"https://matrix.to/#/@bob:matrix.org\">Bob</a>"),
            "Bob"
        );
        assert_eq!(
            slack(
                "<a href=\"https://matrix.to/#/!general:example.com?via=example.com\">#general</a>"
            ),
            "<#C1>"
        );
        assert_eq!(
            slack("<a href=\"https://matrix.to/#/!other:example.com\">#other</a>"),
            "<https://matrix.to/#/!other:example.com|#other>"
        );
        assert_eq!(
            slack("<a href=\"https://matrix.to/#/!general:example.com/$event\">msg</a>"),
            "<https://matrix.to/#/!general:example.com/$event|msg>"
        );
    }

    #[test]
    fn reply_fallback_is_dropped() {
        let html = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!r:x/$e\">In reply to</a> \
                    <a href=\"https://matrix.to/#/@a:x\">@a:x</a><br>original</blockquote></mx-reply>my answer";
        assert_eq!(slack(html), "my answer");
    }

    #[test]
    fn images_and_custom_emoji() {
        assert_eq!(
            slack("nice <img data-mx-emoticon src=\"mxc://x/y\" alt=\":blobcat:\" height=\"32\">"),
            "nice :blobcat:"
        );
    }

    #[test]
    fn empty_and_plain() {
        assert_eq!(slack(""), "");
        assert_eq!(slack("just text"), "just text");
        assert_eq!(slack("<p></p>"), "");
    }

    #[test]
    fn malformed_html_does_not_panic() {
        assert_eq!(slack("<b>unclosed <i>tags"), "*unclosed _tags_*");
        assert_eq!(slack("<<>>&&"), "&lt;&lt;&gt;&gt;&amp;&amp;");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%40a%3Ab%zz%"), "@a:b%zz%");
    }
}
