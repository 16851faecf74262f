//! Rewriting one scalar of config.yaml in place, keeping every comment and the layout, so `-g`
//! can store generated tokens without destroying the operator's annotated file.

use super::locate::key_line;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("section `{0}` not found in the config file; add it and run again")]
    SectionMissing(String),
    #[error("`{0}` is written as a flow or multi-line value; put it on one line as `key: value`")]
    Unsupported(String),
}

/// Returns `text` with the value of `section.key` replaced by `value` (a plain scalar), keeping
/// any trailing comment. When the key is absent it is inserted as the section's first entry.
pub fn set_scalar(text: &str, section: &str, key: &str, value: &str) -> Result<String, EditError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut section_line = None;
    let mut child_indent = None;
    let mut target = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(kl) = key_line(line.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        match section_line {
            None => {
                if kl.indent == 0 && kl.key == section {
                    let rest = line[kl.after_colon..].trim();
                    if !(rest.is_empty() || rest.starts_with('#')) {
                        return Err(EditError::Unsupported(section.to_owned()));
                    }
                    section_line = Some(i);
                }
            }
            Some(_) => {
                if kl.indent == 0 {
                    break;
                }
                let indent = *child_indent.get_or_insert(kl.indent);
                if kl.indent == indent && kl.key == key {
                    target = Some((i, kl.after_colon));
                    break;
                }
            }
        }
    }
    let Some(section_line) = section_line else {
        return Err(EditError::SectionMissing(section.to_owned()));
    };
    let mut out = String::with_capacity(text.len() + value.len());
    match target {
        Some((i, after_colon)) => {
            let line = lines[i];
            let body = line.trim_end_matches(['\n', '\r']);
            let ending = &line[body.len()..];
            let old = &body[after_colon..];
            if old.trim_start().starts_with(['|', '>', '{', '[']) {
                return Err(EditError::Unsupported(format!("{section}.{key}")));
            }
            let comment = find_comment(old);
            for l in &lines[..i] {
                out.push_str(l);
            }
            out.push_str(&body[..after_colon]);
            out.push(' ');
            out.push_str(value);
            if let Some(c) = comment {
                let value_part = &old[..c];
                let gap = value_part.len() - value_part.trim_end().len();
                out.push_str(&" ".repeat(gap.max(1)));
                out.push_str(&old[c..]);
            }
            out.push_str(ending);
            for l in &lines[i + 1..] {
                out.push_str(l);
            }
        }
        None => {
            let indent = child_indent.unwrap_or(2);
            for (i, l) in lines.iter().enumerate() {
                out.push_str(l);
                if !l.ends_with('\n') {
                    out.push('\n');
                }
                if i == section_line {
                    out.push_str(&format!("{}{key}: {value}\n", " ".repeat(indent)));
                }
            }
        }
    }
    Ok(out)
}

/// Byte offset of a `#` comment in a scalar value, skipping `#` inside quotes and `#` not
/// preceded by whitespace (YAML allows `a#b` as a plain scalar).
fn find_comment(value: &str) -> Option<usize> {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in value.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return Some(i),
            None => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
homeserver:
  domain: example.org # ours
appservice:
  # tokens below
  id: slack
  as_token: generate      # written by -g
  hs_token: \"generate\"
  bot:
    username: slackbot
other:
  as_token: untouched
";

    #[test]
    fn replaces_value_and_keeps_comment_alignment() {
        let out = set_scalar(TEXT, "appservice", "as_token", "NEW").unwrap();
        assert!(
            out.contains("  as_token: NEW      # written by -g\n"),
            "{out}"
        );
        assert!(out.contains("other:\n  as_token: untouched\n"));
        assert!(out.contains("  # tokens below\n"));
        assert_eq!(out.lines().count(), TEXT.lines().count());
    }

    #[test]
    fn replaces_quoted_value() {
        let out = set_scalar(TEXT, "appservice", "hs_token", "TOK").unwrap();
        assert!(out.contains("  hs_token: TOK\n"), "{out}");
    }

    #[test]
    fn does_not_touch_nested_keys_of_same_name() {
        let out = set_scalar(TEXT, "appservice", "username", "x").unwrap();
        assert!(out.contains("    username: slackbot\n"));
        assert!(out.contains("appservice:\n  username: x\n"), "{out}");
    }

    #[test]
    fn missing_section_is_an_error() {
        assert!(matches!(
            set_scalar(TEXT, "database", "uri", "x"),
            Err(EditError::SectionMissing(_))
        ));
    }
}
