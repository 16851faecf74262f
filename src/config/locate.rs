//! Finding a dotted config key in the YAML text, so that problems name their line. serde_yaml
//! keeps no positions for values, and the config files are block-style YAML, so an
//! indentation scan is enough.

/// The key names along a path reported by `serde_ignored`; sequence indexes become numbers.
pub fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(index.to_string());
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(key.clone());
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

/// A key line split into its indentation (with list dashes counted as indentation), its key,
/// and the byte offset just past the colon.
pub struct KeyLine<'a> {
    pub indent: usize,
    pub key: &'a str,
    pub after_colon: usize,
}

/// Parses `line` as `<indent>[- ]key: value`; `None` for comments, blanks, list scalars and
/// anything else that is not a block mapping key.
pub fn key_line(line: &str) -> Option<KeyLine<'_>> {
    let mut indent = line.len() - line.trim_start_matches(' ').len();
    let mut rest = &line[indent..];
    while let Some(r) = rest.strip_prefix("- ") {
        let spaces = r.len() - r.trim_start_matches(' ').len();
        indent += 2 + spaces;
        rest = &r[spaces..];
    }
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let (key, key_len) = if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = rest[1..].find(q)? + 1;
        (&rest[1..end], end + 1)
    } else {
        let colon = rest.find(':')?;
        (&rest[..colon], colon)
    };
    let after = &rest[key_len..];
    if !after.starts_with(':') {
        return None;
    }
    let next = after[1..].chars().next();
    if !matches!(next, None | Some(' ') | Some('\t')) {
        return None;
    }
    if key.contains(['{', '[', ' ']) && !rest.starts_with(['"', '\'']) {
        return None;
    }
    Some(KeyLine {
        indent,
        key,
        after_colon: line.len() - after.len() + 1,
    })
}

/// The 1-based line of the key at `segments` (sequence indexes ignored), or of its parent when
/// the key sits inside the parent's flow mapping (`bot: {username: x}`).
pub fn line_of(text: &str, segments: &[String]) -> Option<usize> {
    let names: Vec<&str> = segments
        .iter()
        .map(String::as_str)
        .filter(|s| s.parse::<usize>().is_err())
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut parent_line = None;
    for (i, line) in text.lines().enumerate() {
        let Some(kl) = key_line(line) else { continue };
        while stack.last().is_some_and(|(ind, _)| *ind >= kl.indent) {
            stack.pop();
        }
        stack.push((kl.indent, kl.key));
        let path: Vec<&str> = stack.iter().map(|(_, k)| *k).collect();
        if path == names {
            return Some(i + 1);
        }
        if names.len() > 1 && path == names[..names.len() - 1] {
            let last = names[names.len() - 1];
            let value = &line[kl.after_colon..];
            if value.contains('{') && value.contains(&format!("{last}:")) {
                parent_line = Some(i + 1);
            }
        }
    }
    parent_line
}

/// The line (1-based) where flow collections (`[…]`, `{…}`) first nest deeper than `limit`,
/// outside quotes and comments; one linear pass.
pub fn flow_nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
        }
        if comment {
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if !prev.is_alphanumeric() => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
homeserver:
  address: http://127.0.0.1:8008   # the CS API
  domain: example.org
appservice:
  bot: {username: slackbot, colour: red}
slack:
  logins:
    - bot_token: xoxb-1
      owner: \"@a:b\"
    - bot_tokn: xoxb-2
";

    fn seg(s: &str) -> Vec<String> {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn finds_block_keys() {
        assert_eq!(line_of(TEXT, &seg("homeserver.domain")), Some(4));
        assert_eq!(line_of(TEXT, &seg("homeserver.address")), Some(3));
        assert_eq!(line_of(TEXT, &seg("slack.logins.1.bot_tokn")), Some(11));
        assert_eq!(line_of(TEXT, &seg("slack.logins.0.owner")), Some(10));
    }

    #[test]
    fn flow_mapping_key_points_at_parent() {
        assert_eq!(line_of(TEXT, &seg("appservice.bot.colour")), Some(6));
    }

    #[test]
    fn absent_key_has_no_line() {
        assert_eq!(line_of(TEXT, &seg("database.uri")), None);
    }
}
