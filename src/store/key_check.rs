//! `key_check`: which key the database's secrets are sealed with. [`Store::unlock`] checks
//! the configured key against it (a wrong key stops the start, before anything is read or
//! written with it), seals what was stored in plain text before encryption existed, and
//! [`Store::rotate_key`] re-seals everything under a new key in one transaction.

use std::sync::Arc;

use super::{Result, Store, StoreError, on_pool, user_logins};
use crate::{
    crypto::{Cipher, EncryptionKey, is_sealed},
    ids::{TeamId, UserId},
};

/// What the check row seals; only its key opens it to this.
const CHECK: &str = "slack-bridge key check v1";
const CHECK_AAD: &str = "key_check";

const SELECT: &str = "SELECT sealed FROM key_check WHERE id = 1";
const INSERT: &str =
    "INSERT INTO key_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
const UPDATE: &str = "UPDATE key_check SET sealed = $1 WHERE id = 1";
const TOKENS: &str = "SELECT team_id, bot_token, app_token FROM logins";
const SET_TOKENS: &str = "UPDATE logins SET bot_token = $2, app_token = $3 WHERE team_id = $1";

/// The associated data of a login's token: the column and the row it belongs to.
pub(super) fn token_aad(column: &str, team_id: &TeamId) -> String {
    format!("logins.{column}:{team_id}")
}

fn seal(cipher: &Cipher, aad: &str, plain: &str) -> Result<String> {
    cipher
        .seal(aad, plain)
        .map_err(|e| StoreError::Seal(e.to_string()))
}

impl Store {
    /// This store with `key` for its secrets, once the key proved to be the database's
    /// (the first key a database sees becomes its key). Tokens stored in plain text by an
    /// earlier release are sealed here. `origin` names the key in the error.
    pub async fn unlock(&self, key: &EncryptionKey, origin: &str) -> Result<Store> {
        let cipher = Cipher::new(key);
        let wrong = || StoreError::WrongKey {
            origin: origin.to_owned(),
        };
        let sealed_check = seal(&cipher, CHECK_AAD, CHECK)?;
        on_pool!(self, pool => sqlx::query(INSERT).bind(&sealed_check).execute(pool).await?.rows_affected());
        let stored: String =
            on_pool!(self, pool => sqlx::query_scalar(SELECT).fetch_one(pool).await?);
        match cipher.open(CHECK_AAD, &stored) {
            Ok(v) if v.expose() == CHECK => {}
            _ => return Err(wrong()),
        }
        let rows: Vec<(TeamId, String, String)> =
            on_pool!(self, pool => sqlx::query_as(TOKENS).fetch_all(pool).await?);
        let mut sealed_now = 0;
        for (team, bot, app) in rows {
            if is_sealed(&bot) && is_sealed(&app) {
                continue;
            }
            let reseal = |column: &str, value: &str| -> Result<String> {
                let aad = token_aad(column, &team);
                if is_sealed(value) {
                    cipher.open(&aad, value).map_err(|_| wrong())?;
                    Ok(value.to_owned())
                } else {
                    seal(&cipher, &aad, value)
                }
            };
            let (bot, app) = (reseal("bot_token", &bot)?, reseal("app_token", &app)?);
            on_pool!(self, pool => sqlx::query(SET_TOKENS)
                .bind(&team)
                .bind(&bot)
                .bind(&app)
                .execute(pool)
                .await?
                .rows_affected());
            sealed_now += 1;
        }
        if sealed_now > 0 {
            tracing::info!(
                logins = sealed_now,
                "sealed the Slack tokens stored before encryption"
            );
        }
        Ok(Store {
            pool: self.pool.clone(),
            cipher: Some(Arc::new(cipher)),
        })
    }

    /// Re-seals every secret and the key check under `new`, in one transaction: either all
    /// of the database is under the new key afterwards or all of it still under the old
    /// one. Needs an unlocked store; answers how many logins were re-sealed.
    pub async fn rotate_key(&self, new: &EncryptionKey) -> Result<usize> {
        let old = self.cipher()?;
        let new = Cipher::new(new);
        let check = seal(&new, CHECK_AAD, CHECK)?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows: Vec<(TeamId, String, String)> =
                sqlx::query_as(TOKENS).fetch_all(&mut *tx).await?;
            let count = rows.len();
            for (team, bot, app) in rows {
                let reseal = |column: &str, value: &str| -> Result<String> {
                    let aad = token_aad(column, &team);
                    let plain = old
                        .open(&aad, value)
                        .map_err(|_| StoreError::Corrupt(format!("logins.{column} of {team} does not open with the current key")))?;
                    seal(&new, &aad, plain.expose())
                };
                let (bot, app) = (reseal("bot_token", &bot)?, reseal("app_token", &app)?);
                sqlx::query(SET_TOKENS)
                    .bind(&team)
                    .bind(&bot)
                    .bind(&app)
                    .execute(&mut *tx)
                    .await?;
            }
            let users: Vec<(TeamId, UserId, String)> =
                sqlx::query_as(user_logins::TOKENS).fetch_all(&mut *tx).await?;
            for (team, user, token) in users {
                let plain = old
                    .open(&user_logins::user_token_aad(&team, &user), &token)
                    .map_err(|_| StoreError::Corrupt(format!("user_logins.token of {user} in {team} does not open with the current key")))?;
                let token = user_logins::seal_user_token(&new, &team, &user, &plain)?;
                sqlx::query(user_logins::SET_TOKEN)
                    .bind(&team)
                    .bind(&user)
                    .bind(&token)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(UPDATE).bind(&check).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(count)
        })
    }

    /// Whether a key was ever used with this database (its secrets are sealed).
    pub async fn is_sealed(&self) -> Result<bool> {
        let stored: Option<String> =
            on_pool!(self, pool => sqlx::query_scalar(SELECT).fetch_optional(pool).await?);
        Ok(stored.is_some())
    }

    /// The cipher of an unlocked store.
    pub(super) fn cipher(&self) -> Result<&Cipher> {
        self.cipher.as_deref().ok_or(StoreError::Locked)
    }
}
