//! Secrets: a redacting string type and the rules for where a secret may come from.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A token or password. `Debug` and `Display` print `***`, so a secret can sit inside any
/// struct that gets logged; the value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that sends it over the wire or writes it to a file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a resolved secret came from; `-g` only writes tokens back into config.yaml when they
/// live there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretSource {
    Inline,
    File,
    Env,
    #[default]
    Absent,
}

/// A random token of `len` characters from the 64-character URL-safe alphabet, read from the
/// operating system's RNG. 64 divides 256, so masking a byte keeps the choice uniform.
pub fn random_token(len: usize) -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "xoxb-very-secret");
    }

    #[test]
    fn random_tokens_are_url_safe_and_distinct() {
        let a = random_token(64).unwrap();
        let b = random_token(64).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
