//! Secrets at rest: the Slack tokens the `login` command stores are sealed with
//! XChaCha20-Poly1305 under the bridge's encryption key before they reach the database.
//!
//! The key is 32 random bytes, kept base64-encoded in `database.encryption_key_file` (by
//! default `slack-bridge.key` beside the config; `-g` and the first start create it, mode
//! 0600) or given as `SLACK_BRIDGE_ENCRYPTION_KEY`. A sealed value is `enc:v1:` and the
//! base64 of a fresh 24-byte nonce followed by the ciphertext; what it belongs to (table,
//! column, row) is bound in as associated data, so a value moved to another row does not
//! open. This module does no I/O but [`load`], [`create`], [`write_key_file`] and
//! [`read_key_file`].

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};

use crate::config::{DatabaseConfig, Secret};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the encryption key in {origin} is not a key: expected 32 bytes in base64 (44 characters), as `slack-bridge -g` writes"
    )]
    Malformed { origin: String },
    #[error("cannot read the encryption key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the encryption key file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate an encryption key: {0}")]
    Random(String),
}

/// The bridge's encryption key. Its Debug shows nothing of it.
#[derive(Clone)]
pub struct EncryptionKey([u8; KEY_LEN]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

impl EncryptionKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(key))
    }

    /// Parses the base64 text of a key file or the environment variable; `origin` names it
    /// in the error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed {
            origin: origin.to_owned(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| malformed())?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| malformed())?;
        Ok(Self(key))
    }

    /// The key as a key file holds it.
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.0))
    }
}

/// Seals and opens values under one key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

/// A sealed value did not open: another key sealed it, or it was altered or moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the value does not open with this key")]
pub struct OpenError;

impl Cipher {
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            aead: XChaCha20Poly1305::new((&key.0).into()),
        }
    }

    /// Seals `plain`, bound to `aad` (what it belongs to).
    pub fn seal(&self, aad: &str, plain: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let sealed = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            // Encryption fails only for messages beyond the cipher's limit (256 GiB).
            .map_err(|_| KeyError::Random("the value is too long to seal".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value [`Cipher::seal`] made with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Secret, OpenError> {
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or(OpenError)?;
        let bytes = STANDARD.decode(body).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| OpenError)
    }
}

/// Whether a stored value is sealed (rather than a plain value from before encryption).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Where the key of a running bridge came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => write!(f, "the environment variable SLACK_BRIDGE_ENCRYPTION_KEY"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<EncryptionKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    EncryptionKey::parse(&text, &path.display().to_string())
}

/// Writes `key` to a new file at `path`, readable by its owner only, synced to disk before
/// it returns. An existing file is never overwritten.
pub fn write_key_file(path: &Path, key: &EncryptionKey) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    writeln!(f, "{}", key.to_base64().expose()).map_err(err)?;
    f.sync_all().map_err(err)?;
    sync_dir(path).map_err(err)
}

/// Syncs the directory holding `path`, so a new or renamed entry survives power loss.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// The configured key: `SLACK_BRIDGE_ENCRYPTION_KEY` if set, else the key file's; `None`
/// when neither exists yet. Whether the key is the one the database was sealed with is
/// [`crate::store::Store::unlock`]'s check.
pub fn load(db: &DatabaseConfig) -> Result<Option<(EncryptionKey, KeyOrigin)>, KeyError> {
    if let Some(key) = &db.encryption_key {
        let key = EncryptionKey::parse(key.expose(), &KeyOrigin::Env.to_string())?;
        return Ok(Some((key, KeyOrigin::Env)));
    }
    let path = db.key_file();
    match read_key_file(&path) {
        Ok(key) => Ok(Some((key, KeyOrigin::File(path)))),
        Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Creates the key file with a fresh key (it must not exist).
pub fn create(db: &DatabaseConfig) -> Result<(EncryptionKey, KeyOrigin), KeyError> {
    let path = db.key_file();
    let key = EncryptionKey::generate()?;
    write_key_file(&path, &key)?;
    Ok((key, KeyOrigin::File(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&EncryptionKey::generate().unwrap())
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let c = cipher();
        let sealed = c.seal("logins.bot_token:T1", "xoxb-secret").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("xoxb"), "{sealed}");
        assert_eq!(
            c.open("logins.bot_token:T1", &sealed).unwrap().expose(),
            "xoxb-secret"
        );
        assert_eq!(c.open("logins.bot_token:T2", &sealed), Err(OpenError));
        assert_eq!(
            cipher().open("logins.bot_token:T1", &sealed),
            Err(OpenError)
        );
        // Two seals of one value differ (fresh nonces).
        assert_ne!(
            sealed,
            c.seal("logins.bot_token:T1", "xoxb-secret").unwrap()
        );
    }

    #[test]
    fn altered_or_truncated_values_do_not_open() {
        let c = cipher();
        let sealed = c.seal("a", "value").unwrap();
        let mut bytes = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{SEALED_PREFIX}{}", STANDARD.encode(&bytes));
        assert_eq!(c.open("a", &altered), Err(OpenError));
        for bad in ["enc:v1:", "enc:v1:AAAA", "enc:v1:!!", "xoxb-plain"] {
            assert_eq!(c.open("a", bad), Err(OpenError), "{bad}");
        }
    }

    #[test]
    fn keys_round_trip_through_their_text_and_refuse_anything_else() {
        let k = EncryptionKey::generate().unwrap();
        let text = k.to_base64();
        let back = EncryptionKey::parse(&format!("{}\n", text.expose()), "f").unwrap();
        let sealed = Cipher::new(&k).seal("x", "y").unwrap();
        assert_eq!(Cipher::new(&back).open("x", &sealed).unwrap().expose(), "y");
        for bad in [
            "",
            "short",
            &STANDARD.encode([0u8; 31]),
            "not base64 at all!",
        ] {
            let e = EncryptionKey::parse(bad, "/etc/key").unwrap_err();
            assert!(e.to_string().contains("/etc/key"), "{e}");
        }
        assert_eq!(format!("{k:?}"), "EncryptionKey(***)");
    }

    #[test]
    fn a_key_file_is_created_once_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = EncryptionKey::generate().unwrap();
        write_key_file(&path, &key).unwrap();
        assert!(write_key_file(&path, &key).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            read_key_file(&path).unwrap().to_base64().expose(),
            key.to_base64().expose()
        );
    }
}
