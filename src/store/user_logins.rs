//! `user_logins`: a Matrix user's own Slack account (a user token from `login-user`), so their
//! messages reach Slack as them. The token is sealed like the bot tokens.

use ruma::{OwnedUserId, UserId};

use super::{LoginState, Result, Store, StoreError, matrix_id, now_ms, on_pool};
use crate::{
    config::Secret,
    crypto::Cipher,
    ids::{self, TeamId},
};

const UPSERT: &str = "INSERT INTO user_logins
    (mxid, team_id, slack_user_id, token, scopes, state, state_reason, created_at)
    VALUES ($1, $2, $3, $4, $5, 'ok', NULL, $6)
    ON CONFLICT (mxid, team_id) DO UPDATE SET slack_user_id = excluded.slack_user_id,
        token = excluded.token, scopes = excluded.scopes, state = 'ok', state_reason = NULL";
const SELECT: &str =
    "SELECT mxid, team_id, slack_user_id, token, scopes, state, state_reason FROM user_logins";
const SET_STATE: &str = "UPDATE user_logins SET state = $3, state_reason = $4 WHERE team_id = $1 AND slack_user_id = $2";
const DELETE: &str = "DELETE FROM user_logins WHERE mxid = $1 AND team_id = $2";
pub(super) const TOKENS: &str = "SELECT team_id, slack_user_id, token FROM user_logins";
pub(super) const SET_TOKEN: &str =
    "UPDATE user_logins SET token = $3 WHERE team_id = $1 AND slack_user_id = $2";

/// A Matrix user's link to their Slack account in one workspace.
#[derive(Debug, Clone)]
pub struct UserLogin {
    pub mxid: OwnedUserId,
    pub team_id: TeamId,
    pub slack_user_id: ids::UserId,
    pub token: Secret,
    /// As Slack granted them, comma-separated.
    pub scopes: String,
    pub state: LoginState,
    pub state_reason: Option<String>,
}

type Row = (
    String,
    TeamId,
    ids::UserId,
    String,
    String,
    String,
    Option<String>,
);

/// The associated data of a user token: the row it belongs to.
pub(super) fn user_token_aad(team_id: &TeamId, slack_user: &ids::UserId) -> String {
    format!("user_logins.token:{team_id}:{slack_user}")
}

impl Store {
    fn user_login_from_row(&self, r: Row) -> Result<UserLogin> {
        let aad = user_token_aad(&r.1, &r.2);
        let token = self.cipher()?.open(&aad, &r.3).map_err(|_| {
            StoreError::Corrupt(format!(
                "user_logins.token of {} in {} does not open with the key",
                r.2, r.1
            ))
        })?;
        Ok(UserLogin {
            mxid: matrix_id("user_logins.mxid", r.0)?,
            team_id: r.1,
            slack_user_id: r.2,
            token,
            scopes: r.4,
            state: LoginState::parse(&r.5)?,
            state_reason: r.6,
        })
    }

    /// Links (or re-links) a Matrix user to a Slack user of a workspace; the token is sealed.
    pub async fn upsert_user_login(&self, l: &UserLogin) -> Result<()> {
        let token = seal_user_token(self.cipher()?, &l.team_id, &l.slack_user_id, &l.token)?;
        on_pool!(self, pool => sqlx::query(UPSERT)
            .bind(l.mxid.as_str())
            .bind(&l.team_id)
            .bind(&l.slack_user_id)
            .bind(&token)
            .bind(&l.scopes)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn get_user_login(
        &self,
        mxid: &UserId,
        team_id: &TeamId,
    ) -> Result<Option<UserLogin>> {
        let sql = format!("{SELECT} WHERE mxid = $1 AND team_id = $2");
        let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(mxid.as_str())
            .bind(team_id)
            .fetch_optional(pool)
            .await?);
        row.map(|r| self.user_login_from_row(r)).transpose()
    }

    /// Who linked this Slack user, if anyone.
    pub async fn user_login_by_slack(
        &self,
        team_id: &TeamId,
        slack_user: &ids::UserId,
    ) -> Result<Option<UserLogin>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND slack_user_id = $2");
        let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(slack_user)
            .fetch_optional(pool)
            .await?);
        row.map(|r| self.user_login_from_row(r)).transpose()
    }

    /// Every Slack account a Matrix user linked, by workspace.
    pub async fn user_logins_of(&self, mxid: &UserId) -> Result<Vec<UserLogin>> {
        let sql = format!("{SELECT} WHERE mxid = $1 ORDER BY team_id");
        let rows: Vec<Row> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(mxid.as_str())
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| self.user_login_from_row(r))
            .collect()
    }

    pub async fn set_user_login_state(
        &self,
        team_id: &TeamId,
        slack_user: &ids::UserId,
        state: LoginState,
        reason: Option<&str>,
    ) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(SET_STATE)
            .bind(team_id)
            .bind(slack_user)
            .bind(state.as_str())
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Unlinks; answers whether there was a link.
    pub async fn delete_user_login(&self, mxid: &UserId, team_id: &TeamId) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(DELETE)
            .bind(mxid.as_str())
            .bind(team_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }
}

pub(super) fn seal_user_token(
    cipher: &Cipher,
    team_id: &TeamId,
    slack_user: &ids::UserId,
    token: &Secret,
) -> Result<String> {
    cipher
        .seal(&user_token_aad(team_id, slack_user), token.expose())
        .map_err(|e| StoreError::Seal(e.to_string()))
}
