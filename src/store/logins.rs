//! `logins`: a Slack app installed in a workspace (bot + app-level token) and its Matrix owner.
//! The tokens are stored sealed (see [`crate::crypto`]): only an unlocked store reads or
//! writes them.

use ruma::{OwnedRoomId, OwnedUserId, RoomId};

use super::{Result, Store, StoreError, key_check::token_aad, matrix_id, now_ms, on_pool};
use crate::{
    config::Secret,
    crypto::is_sealed,
    ids::{BotId, TeamId, UserId},
};

const UPSERT: &str = "INSERT INTO logins
    (team_id, team_name, bot_user_id, bot_id, app_id, owner_mxid, bot_token, app_token, state, state_reason, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ok', NULL, $9)
    ON CONFLICT (team_id) DO UPDATE SET team_name = excluded.team_name, bot_user_id = excluded.bot_user_id,
        bot_id = excluded.bot_id, app_id = excluded.app_id, owner_mxid = excluded.owner_mxid,
        bot_token = excluded.bot_token, app_token = excluded.app_token, state = 'ok', state_reason = NULL";
const SELECT: &str =
    "SELECT team_id, team_name, bot_user_id, bot_id, app_id, owner_mxid, bot_token, app_token,
    state, state_reason, space_room_id FROM logins";
const SET_STATE: &str = "UPDATE logins SET state = $2, state_reason = $3 WHERE team_id = $1";
const SET_SPACE: &str = "UPDATE logins SET space_room_id = $2 WHERE team_id = $1";
const DELETE: &str = "DELETE FROM logins WHERE team_id = $1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginState {
    Ok,
    /// Slack said the credentials are dead (revoked, uninstalled); not retried until a new login.
    Invalid,
    LoggedOut,
}

impl LoginState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Invalid => "invalid",
            Self::LoggedOut => "logged_out",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ok" => Self::Ok,
            "invalid" => Self::Invalid,
            "logged_out" => Self::LoggedOut,
            other => return Err(StoreError::Corrupt(format!("login state `{other}`"))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Login {
    pub team_id: TeamId,
    pub team_name: String,
    pub bot_user_id: UserId,
    pub bot_id: BotId,
    pub app_id: String,
    pub owner_mxid: OwnedUserId,
    pub bot_token: Secret,
    pub app_token: Secret,
    pub state: LoginState,
    pub state_reason: Option<String>,
    pub space_room_id: Option<OwnedRoomId>,
}

type LoginRow = (
    TeamId,
    String,
    UserId,
    BotId,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

impl Store {
    fn login_from_row(&self, r: LoginRow) -> Result<Login> {
        let open = |column: &str, value: String| -> Result<Secret> {
            if !is_sealed(&value) {
                // Stored by a release before encryption, and not unlocked yet.
                return Ok(Secret::new(value));
            }
            self.cipher()?
                .open(&token_aad(column, &r.0), &value)
                .map_err(|_| {
                    StoreError::Corrupt(format!(
                        "logins.{column} of {} does not open with the key",
                        r.0
                    ))
                })
        };
        Ok(Login {
            bot_token: open("bot_token", r.6)?,
            app_token: open("app_token", r.7)?,
            team_id: r.0,
            team_name: r.1,
            bot_user_id: r.2,
            bot_id: r.3,
            app_id: r.4,
            owner_mxid: matrix_id("logins.owner_mxid", r.5)?,
            state: LoginState::parse(&r.8)?,
            state_reason: r.9,
            space_room_id: r
                .10
                .map(|r| matrix_id("logins.space_room_id", r))
                .transpose()?,
        })
    }

    fn seal_token(&self, column: &str, team_id: &TeamId, token: &Secret) -> Result<String> {
        self.cipher()?
            .seal(&token_aad(column, team_id), token.expose())
            .map_err(|e| StoreError::Seal(e.to_string()))
    }
}

impl Store {
    /// Stores a verified login; logging in again replaces the tokens and revives the state.
    pub async fn upsert_login(&self, l: &Login) -> Result<()> {
        let bot_token = self.seal_token("bot_token", &l.team_id, &l.bot_token)?;
        let app_token = self.seal_token("app_token", &l.team_id, &l.app_token)?;
        on_pool!(self, pool => sqlx::query(UPSERT)
            .bind(&l.team_id)
            .bind(&l.team_name)
            .bind(&l.bot_user_id)
            .bind(&l.bot_id)
            .bind(&l.app_id)
            .bind(l.owner_mxid.as_str())
            .bind(&bot_token)
            .bind(&app_token)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn get_login(&self, team_id: &TeamId) -> Result<Option<Login>> {
        let sql = format!("{SELECT} WHERE team_id = $1");
        let row: Option<LoginRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .fetch_optional(pool)
            .await?);
        row.map(|r| self.login_from_row(r)).transpose()
    }

    pub async fn list_logins(&self) -> Result<Vec<Login>> {
        let sql = format!("{SELECT} ORDER BY team_id");
        let rows: Vec<LoginRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
        rows.into_iter().map(|r| self.login_from_row(r)).collect()
    }

    pub async fn set_login_state(
        &self,
        team_id: &TeamId,
        state: LoginState,
        reason: Option<&str>,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_STATE)
            .bind(team_id)
            .bind(state.as_str())
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn set_login_space(&self, team_id: &TeamId, space_room_id: &RoomId) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_SPACE)
            .bind(team_id)
            .bind(space_room_id.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn delete_login(&self, team_id: &TeamId) -> Result<bool> {
        let done = on_pool!(self, pool => sqlx::query(DELETE).bind(team_id).execute(pool).await?.rows_affected());
        Ok(done > 0)
    }
}
