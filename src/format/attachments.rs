//! Legacy message `attachments`, as integrations (CI, monitoring, RSS, webhooks) still send
//! them: each one becomes a quote with its pretext, linked title, text and fields, or its
//! `fallback` when it has none of those. Link previews Slack adds itself (unfurls) are left
//! out: the link is in the message already.

use serde_json::Value;

use super::{mrkdwn, render::Render};

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn flag(a: &Value, key: &str) -> bool {
    a.get(key).and_then(Value::as_bool) == Some(true)
}

/// A message shared or forwarded into this one (`is_share`), or the preview of a link to a
/// Slack message (`is_msg_unfurl`): shown as a quote of that message.
fn is_shared_message(a: &Value) -> bool {
    flag(a, "is_share") || flag(a, "is_msg_unfurl")
}

/// A preview Slack made of a link in the message (`from_url`, app unfurls).
fn is_unfurl(a: &Value) -> bool {
    !is_shared_message(a) && (a.get("from_url").is_some() || flag(a, "is_app_unfurl"))
}

fn fields(a: &Value) -> impl Iterator<Item = (&str, &str)> {
    a.get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let title = str_field(f, "title").unwrap_or_default();
            let value = str_field(f, "value").unwrap_or_default();
            (!title.is_empty() || !value.is_empty()).then_some((title, value))
        })
}

/// The mrkdwn texts of the attachments, for the ids they mention.
pub(super) fn texts(attachments: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    for a in attachments.as_array().into_iter().flatten() {
        if is_unfurl(a) {
            continue;
        }
        out.extend(str_field(a, "pretext"));
        out.extend(str_field(a, "text"));
        out.extend(fields(a).map(|(_, v)| v));
    }
    out
}

/// Renders each attachment after what `r` holds; false when there was nothing to render.
pub(super) fn render(r: &mut Render<'_>, attachments: &Value) -> bool {
    let mut any = false;
    for a in attachments.as_array().into_iter().flatten() {
        if is_unfurl(a) {
            continue;
        }
        if is_shared_message(a) {
            render_shared(r, a);
            any = true;
            continue;
        }
        let pretext = str_field(a, "pretext");
        let title = str_field(a, "title");
        let text = str_field(a, "text");
        let has_fields = fields(a).next().is_some();
        let fallback = str_field(a, "fallback");
        if pretext.is_none() && title.is_none() && text.is_none() && !has_fields {
            let Some(fallback) = fallback else { continue };
            r.paragraph_break();
            r.quote(|r| r.text_with_emoji(fallback));
            any = true;
            continue;
        }
        if let Some(p) = pretext {
            r.paragraph_break();
            mrkdwn::render(r, p);
        }
        r.quote(|r| {
            if let Some(t) = title {
                r.tag("strong", |r| match str_field(a, "title_link") {
                    Some(link) => r.link(link, Some(t)),
                    None => r.text_with_emoji(t),
                });
            }
            if let Some(t) = text {
                r.paragraph_break();
                mrkdwn::render(r, t);
            }
            for (title, value) in fields(a) {
                r.paragraph_break();
                if !title.is_empty() {
                    r.tag("strong", |r| r.text_with_emoji(title));
                    r.text(": ");
                }
                mrkdwn::render(r, value);
            }
        });
        any = true;
    }
    any
}

/// A shared message: who wrote it and what, quoted, with the link to the original.
fn render_shared(r: &mut Render<'_>, a: &Value) {
    r.paragraph_break();
    r.quote(|r| {
        if let Some(author) = str_field(a, "author_name").or_else(|| str_field(a, "author_subname"))
        {
            r.tag("strong", |r| r.text_with_emoji(author));
            r.text(": ");
        }
        match str_field(a, "text") {
            Some(t) => mrkdwn::render(r, t),
            None => r.text_with_emoji(str_field(a, "fallback").unwrap_or_default()),
        }
        if let Some(link) = str_field(a, "from_url").or_else(|| str_field(a, "original_url")) {
            r.paragraph_break();
            r.link(link, Some("Original message"));
        }
    });
}
