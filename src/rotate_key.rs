//! `slack-bridge rotate-key`: the stored secrets re-sealed under a new key.
//!
//! In place (the key in a file): the new key is written to `<key file>.new` first, the
//! database re-sealed in one transaction, then `.new` renamed over the key file. Interrupted
//! after the commit, the database opens with `.new` only: running the command again sees
//! that and finishes the rename. Interrupted before, `.new` is a leftover that is replaced.

use std::path::{Path, PathBuf};

use crate::{
    Error,
    config::Config,
    crypto::{self, EncryptionKey, KeyOrigin},
    store::{Store, StoreError},
};

/// Rotates the key of `config`'s database; answers what was done, for the operator.
pub async fn run(config: &Config, new_key_file: Option<&Path>) -> Result<String, Error> {
    let store = Store::connect(config.database.uri(), 1).await?;
    let result = rotate(&store, config, new_key_file).await;
    store.close().await;
    result
}

fn pending_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

async fn rotate(
    store: &Store,
    config: &Config,
    new_key_file: Option<&Path>,
) -> Result<String, Error> {
    let Some((current, origin)) = crypto::load(&config.database)? else {
        if store.is_sealed().await? {
            return Err(StoreError::KeyMissing {
                path: config.database.key_file().display().to_string(),
            }
            .into());
        }
        return Ok(format!(
            "Nothing to rotate: there is no key yet ({} is created at the first start).",
            config.database.key_file().display()
        ));
    };
    let in_place = match (&origin, new_key_file) {
        (_, Some(_)) => None,
        (KeyOrigin::File(path), None) => Some(path.clone()),
        (KeyOrigin::Env, None) => {
            return Err(Error::Usage(
                "the key comes from SLACK_BRIDGE_ENCRYPTION_KEY: give --new-key-file PATH for the new key".into(),
            ));
        }
    };
    let unlocked = match store.unlock(&current, &origin.to_string()).await {
        Ok(s) => s,
        Err(StoreError::WrongKey { origin: o }) => {
            // A rotation that committed and was stopped before its rename?
            if let Some(key_file) = &in_place {
                let pending = pending_path(key_file);
                if let Ok(new) = crypto::read_key_file(&pending)
                    && store.unlock(&new, "").await.is_ok()
                {
                    finish(&pending, key_file)?;
                    return Ok(format!(
                        "Finished an interrupted rotation: {} holds the new key.",
                        key_file.display()
                    ));
                }
            }
            return Err(StoreError::WrongKey { origin: o }.into());
        }
        Err(e) => return Err(e.into()),
    };
    let new = EncryptionKey::generate()?;
    let target = match (&in_place, new_key_file) {
        (Some(key_file), _) => {
            let pending = pending_path(key_file);
            // A leftover of a rotation stopped before its commit: the database does not use it.
            match std::fs::remove_file(&pending) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(crypto::KeyError::Write {
                        path: pending,
                        source,
                    }
                    .into());
                }
            }
            pending
        }
        (None, Some(path)) => path.to_owned(),
        (None, None) => unreachable!("in place unless a new key file is given"),
    };
    crypto::write_key_file(&target, &new)?;
    let logins = unlocked.rotate_key(&new).await?;
    tracing::info!(logins, "re-sealed the stored secrets under a new key");
    Ok(match &in_place {
        Some(key_file) => {
            finish(&target, key_file)?;
            format!(
                "Re-sealed {logins} login(s) under a new key, now in {}; the old key opens nothing any more.",
                key_file.display()
            )
        }
        None => format!(
            "Re-sealed {logins} login(s) under the new key in {}. Point database.encryption_key_file at it (or set SLACK_BRIDGE_ENCRYPTION_KEY to its contents) before the next start.",
            target.display()
        ),
    })
}

/// Moves the new key over the key file, durably.
fn finish(pending: &Path, key_file: &Path) -> Result<(), Error> {
    let err = |source| crypto::KeyError::Write {
        path: key_file.to_owned(),
        source,
    };
    std::fs::rename(pending, key_file).map_err(err)?;
    crypto::sync_dir(key_file).map_err(err)?;
    Ok(())
}
