//! The Slack → Matrix output builder shared by the mrkdwn and rich_text converters: it writes the
//! plain body and the HTML side by side and collects mentions.

use std::collections::BTreeMap;

use super::{MatrixMessage, SlackContext, emoji};

/// Labels Slack put into the mrkdwn text (`<@U1|bob>`, `<#C1|general>`, `<!subteam^S1|@team>`),
/// used when the caller could not resolve an id.
#[derive(Debug, Default)]
pub(super) struct Labels {
    pub users: BTreeMap<String, String>,
    pub channels: BTreeMap<String, String>,
    pub usergroups: BTreeMap<String, String>,
}

pub(super) const MATRIX_TO: &str = "https://matrix.to/#/";

pub(super) struct Render<'a> {
    ctx: &'a SlackContext,
    labels: &'a Labels,
    body: String,
    html: String,
    /// The HTML carries something the body cannot, so `formatted_body` is worth sending.
    rich: bool,
    /// Inside a code block: newlines stay raw and mentions neither link nor ping.
    code: usize,
    /// The output just ended a block element (quote, code, list), so the next line has started.
    after_block: bool,
    mentioned_users: Vec<String>,
    mentions_room: bool,
}

impl<'a> Render<'a> {
    pub fn new(ctx: &'a SlackContext, labels: &'a Labels) -> Self {
        Self {
            ctx,
            labels,
            body: String::new(),
            html: String::new(),
            rich: false,
            code: 0,
            after_block: false,
            mentioned_users: Vec::new(),
            mentions_room: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.body.trim().is_empty() && !self.rich
    }

    /// Literal (already entity-decoded) text.
    pub fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.after_block = false;
        self.body.push_str(s);
        if self.code > 0 {
            self.html.push_str(&escape_html(s));
            return;
        }
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.html.push_str("<br>");
            }
            self.html.push_str(&escape_html(line));
        }
    }

    /// Text in which `:shortcode:` emoji become unicode; unknown names stay as typed.
    pub fn text_with_emoji(&mut self, s: &str) {
        let mut rest = s;
        while let Some(start) = rest.find(':') {
            let after = &rest[start + 1..];
            let Some(len) = shortcode_len(after) else {
                self.text(&rest[..=start]);
                rest = after;
                continue;
            };
            if self.knows_emoji(&after[..len]) {
                self.text(&rest[..start]);
                self.emoji(&after[..len]);
                rest = &after[len + 1..];
            } else {
                self.text(&rest[..=start]);
                rest = after;
            }
        }
        self.text(rest);
    }

    /// An emoji by its Slack name: the standard one's character, a workspace custom emoji's
    /// image (`data-mx-emoticon`, the body keeps `:name:`), or else the name as typed.
    pub fn emoji(&mut self, name: &str) {
        if let Some(unicode) = emoji::shortcode_to_unicode(name) {
            return self.text(unicode);
        }
        match self.ctx.emoji.get(name) {
            Some(mxc) if self.code == 0 => {
                let shortcode = escape_html(&format!(":{name}:"));
                self.after_block = false;
                self.html(&format!(
                    "<img data-mx-emoticon src=\"{}\" alt=\"{shortcode}\" title=\"{shortcode}\" height=\"32\">",
                    escape_html(mxc)
                ));
                self.body.push_str(&format!(":{name}:"));
            }
            _ => self.text(&format!(":{name}:")),
        }
    }

    /// Whether `name` is an emoji this rendering can show (standard or the workspace's).
    pub fn knows_emoji(&self, name: &str) -> bool {
        emoji::shortcode_to_unicode(name).is_some() || self.ctx.emoji.contains_key(name)
    }

    /// HTML-only markup.
    pub fn html(&mut self, markup: &str) {
        self.rich = true;
        self.html.push_str(markup);
    }

    pub fn body(&mut self, s: &str) {
        self.body.push_str(s);
    }

    /// Wraps `f`'s output in an inline tag (`strong`, `em`, `del`, `u`).
    pub fn tag(&mut self, tag: &str, f: impl FnOnce(&mut Self)) {
        if self.code > 0 {
            return f(self);
        }
        self.html(&format!("<{tag}>"));
        f(self);
        self.html(&format!("</{tag}>"));
    }

    pub fn inline_code(&mut self, f: impl FnOnce(&mut Self)) {
        if self.code > 0 {
            return f(self);
        }
        self.html("<code>");
        self.body.push('`');
        self.code += 1;
        f(self);
        self.code -= 1;
        self.body.push('`');
        self.html("</code>");
    }

    pub fn code_block(&mut self, f: impl FnOnce(&mut Self)) {
        self.block_start();
        self.html("<pre><code>");
        self.body.push_str("```\n");
        self.code += 1;
        f(self);
        self.code -= 1;
        self.body.push_str("\n```");
        self.html("</code></pre>");
        self.block_end();
    }

    pub fn quote(&mut self, f: impl FnOnce(&mut Self)) {
        self.block_start();
        self.html("<blockquote>");
        let outer = std::mem::take(&mut self.body);
        f(self);
        let inner = std::mem::replace(&mut self.body, outer);
        let quoted: Vec<String> = inner
            .trim_end_matches('\n')
            .split('\n')
            .map(|l| format!("> {l}"))
            .collect();
        self.body.push_str(&quoted.join("\n"));
        self.html("</blockquote>");
        self.block_end();
    }

    /// Before a block element: a trailing line break is implied by the block itself.
    pub fn block_start(&mut self) {
        if let Some(stripped) = self.html.strip_suffix("<br>") {
            self.html.truncate(stripped.len());
        }
        if !self.body.is_empty() && !self.body.ends_with('\n') {
            self.body.push('\n');
        }
    }

    pub fn block_end(&mut self) {
        if !self.body.ends_with('\n') {
            self.body.push('\n');
        }
        self.after_block = true;
    }

    /// Separates top-level blocks: a line break unless a block element already ended the line.
    pub fn paragraph_break(&mut self) {
        if !self.is_empty() && !self.after_block {
            self.text("\n");
        }
    }

    /// Text after a block element starts on its own line already.
    pub fn skip_leading_newline<'s>(&self, s: &'s str) -> &'s str {
        if self.after_block {
            s.strip_prefix('\n').unwrap_or(s)
        } else {
            s
        }
    }

    pub fn link(&mut self, url: &str, label: Option<&str>) {
        // A permalink to a bridged Slack message links its Matrix event instead.
        let bridged = super::slack_permalink(url).and_then(|k| self.ctx.messages.get(&k));
        let url = bridged.map_or(url, String::as_str);
        let label = label.filter(|l| !l.is_empty());
        if self.code > 0 {
            return self.text(label.unwrap_or(url));
        }
        self.html(&format!("<a href=\"{}\">", escape_html(url)));
        self.html.push_str(&escape_html(label.unwrap_or(url)));
        self.html.push_str("</a>");
        match label {
            Some(label) if label != url => {
                self.body.push_str(&format!("{label} ({url})"));
            }
            _ => self.body.push_str(url),
        }
    }

    pub fn user(&mut self, id: &str, label: Option<&str>) {
        match self.ctx.users.get(id) {
            Some(user) if self.code == 0 => {
                self.html(&format!(
                    "<a href=\"{MATRIX_TO}{}\">",
                    escape_html(&user.mxid)
                ));
                self.html.push_str(&escape_html(&user.name));
                self.html.push_str("</a>");
                self.body.push_str(&user.name);
                if !self.mentioned_users.contains(&user.mxid) {
                    self.mentioned_users.push(user.mxid.clone());
                }
            }
            Some(user) => self.text(&format!("@{}", user.name)),
            None => {
                let label = label
                    .or(self.labels.users.get(id).map(String::as_str))
                    .unwrap_or(id);
                self.text(&format!("@{}", label.trim_start_matches('@')));
            }
        }
    }

    pub fn channel(&mut self, id: &str, label: Option<&str>) {
        match self.ctx.channels.get(id) {
            Some(channel) => {
                let name = format!("#{}", channel.name.trim_start_matches('#'));
                match &channel.room_id {
                    Some(room) if self.code == 0 => {
                        self.html(&format!("<a href=\"{MATRIX_TO}{}\">", escape_html(room)));
                        self.html.push_str(&escape_html(&name));
                        self.html.push_str("</a>");
                        self.body.push_str(&name);
                    }
                    _ => self.text(&name),
                }
            }
            None => {
                let label = label
                    .or(self.labels.channels.get(id).map(String::as_str))
                    .unwrap_or(id);
                self.text(&format!("#{}", label.trim_start_matches('#')));
            }
        }
    }

    /// A user group: its current handle, and (outside code) every member mentioned.
    pub fn usergroup(&mut self, id: &str, label: Option<&str>) {
        if let Some(g) = self.ctx.usergroups.get(id) {
            if self.code == 0 {
                for m in &g.members {
                    if !self.mentioned_users.contains(m) {
                        self.mentioned_users.push(m.clone());
                    }
                }
            }
            let handle = g.handle.clone();
            return self.text(&format!("@{}", handle.trim_start_matches('@')));
        }
        let label = label
            .or(self.labels.usergroups.get(id).map(String::as_str))
            .unwrap_or(id);
        self.text(&format!("@{}", label.trim_start_matches('@')));
    }

    /// `@here`, `@channel`, `@everyone`: Matrix's `@room`, which clients highlight (inside
    /// code, the literal Slack name).
    pub fn broadcast(&mut self, range: &str) {
        if self.code > 0 {
            return self.text(&format!("@{range}"));
        }
        self.mentions_room = true;
        self.text("@room");
    }

    pub fn finish(mut self) -> MatrixMessage {
        while self.html.ends_with("<br>") {
            self.html.truncate(self.html.len() - 4);
        }
        let body = self.body.trim_end_matches('\n').to_owned();
        MatrixMessage {
            body,
            formatted_body: self.rich.then_some(self.html),
            mentioned_users: self.mentioned_users,
            mentions_room: self.mentions_room,
        }
    }
}

/// Length of a shortcode name at the start of `s` when a closing `:` follows it
/// (`thumbsup::skin-tone-2:` counts the tone as part of the name).
fn shortcode_len(s: &str) -> Option<usize> {
    let name_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || "_+-'".contains(c)))
            .unwrap_or(s.len())
    };
    let len = name_len(s);
    if len == 0 || !s[len..].starts_with(':') {
        return None;
    }
    if let Some(tone) = s[len..].strip_prefix("::") {
        let tone_len = name_len(tone);
        if tone.starts_with("skin-tone-") && tone[tone_len..].starts_with(':') {
            return Some(len + 2 + tone_len);
        }
    }
    Some(len)
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_in_text() {
        let ctx = SlackContext::default();
        let labels = Labels::default();
        let mut r = Render::new(&ctx, &labels);
        r.text_with_emoji("at 10:30: :tada: :party_parrot: :+1::skin-tone-3: done:");
        let msg = r.finish();
        assert_eq!(msg.body, "at 10:30: 🎉 :party_parrot: 👍🏼 done:");
        assert_eq!(msg.formatted_body, None);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
