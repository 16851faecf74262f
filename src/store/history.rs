//! `backfill`: per portal, its initial backfill's state and how far history was caught up.

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId, Ts};

const SELECT: &str = "SELECT team_id, channel_id, initial, until_ts, caught_up_ts, run, run_done, run_total, bridged FROM backfill";
const INSERT: &str = "INSERT INTO backfill (team_id, channel_id, initial, caught_up_ts, updated_at)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id, channel_id) DO NOTHING";
const SET_UNTIL: &str =
    "UPDATE backfill SET until_ts = $3, updated_at = $4 WHERE team_id = $1 AND channel_id = $2";
const PROGRESS: &str =
    "UPDATE backfill SET run = $3, run_done = $4, run_total = $5, updated_at = $6
    WHERE team_id = $1 AND channel_id = $2";
const FINISH: &str = "UPDATE backfill SET initial = 'done', run_done = $3, run_total = $4,
    bridged = bridged + $5,
    caught_up_ts = COALESCE(NULLIF($6, ''), caught_up_ts), updated_at = $7
    WHERE team_id = $1 AND channel_id = $2";
const NEWEST_MESSAGE: &str = "SELECT MAX(ts) FROM messages WHERE team_id = $1 AND channel_id = $2";
const RECENT_TOP_LEVEL: &str = "SELECT DISTINCT ts FROM messages
    WHERE team_id = $1 AND channel_id = $2 AND deleted = 0 AND (thread_ts IS NULL OR thread_ts = ts)
    ORDER BY ts DESC LIMIT $3";
const RECENT_THREADS: &str = "SELECT thread_ts, MAX(ts) AS newest FROM messages
    WHERE team_id = $1 AND channel_id = $2 AND thread_ts IS NOT NULL
    GROUP BY thread_ts ORDER BY newest DESC LIMIT $3";

/// A portal's history state.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Backfill {
    pub team_id: TeamId,
    pub channel_id: ChannelId,
    /// `pending` or `done`.
    pub initial: String,
    pub until_ts: Option<Ts>,
    pub caught_up_ts: Option<Ts>,
    /// `backfill`, `catch-up`, or empty before the first run.
    pub run: String,
    pub run_done: i64,
    pub run_total: i64,
    pub bridged: i64,
}

impl Backfill {
    pub fn initial_pending(&self) -> bool {
        self.initial == "pending"
    }
}

/// Which run a progress update belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRun {
    Backfill,
    CatchUp,
}

impl HistoryRun {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backfill => "backfill",
            Self::CatchUp => "catch-up",
        }
    }
}

impl Store {
    /// Records a new portal's history state: an initial backfill to do (`pending`), or none,
    /// and the ts catch-up starts after. A second call for the portal changes nothing.
    pub async fn insert_backfill(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        pending: bool,
        caught_up_ts: &Ts,
    ) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(INSERT)
            .bind(team_id)
            .bind(channel_id)
            .bind(if pending { "pending" } else { "done" })
            .bind(caught_up_ts)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    pub async fn get_backfill(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
    ) -> Result<Option<Backfill>> {
        let sql = format!("{SELECT} WHERE team_id = $1 AND channel_id = $2");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .bind(channel_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn list_backfills(&self, team_id: &TeamId) -> Result<Vec<Backfill>> {
        let sql = format!("{SELECT} WHERE team_id = $1 ORDER BY channel_id");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .fetch_all(pool)
            .await?))
    }

    /// Portals whose initial backfill has not finished (after a restart: resumed).
    pub async fn pending_backfills(&self, team_id: &TeamId) -> Result<Vec<Backfill>> {
        let sql =
            format!("{SELECT} WHERE team_id = $1 AND initial = 'pending' ORDER BY channel_id");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(team_id)
            .fetch_all(pool)
            .await?))
    }

    /// Fixes the newest message an initial backfill covers.
    pub async fn set_backfill_until(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        ts: &Ts,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SET_UNTIL)
            .bind(team_id)
            .bind(channel_id)
            .bind(ts)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn set_history_progress(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        run: HistoryRun,
        done: i64,
        total: i64,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(PROGRESS)
            .bind(team_id)
            .bind(channel_id)
            .bind(run.as_str())
            .bind(done)
            .bind(total)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A run finished: the initial backfill is done, `bridged` more messages came from
    /// history, and the next catch-up starts after `caught_up_ts` (unchanged when empty).
    pub async fn finish_history_run(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        done: i64,
        total: i64,
        bridged: i64,
        caught_up_ts: &Ts,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(FINISH)
            .bind(team_id)
            .bind(channel_id)
            .bind(done)
            .bind(total)
            .bind(bridged)
            .bind(caught_up_ts)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The newest bridged message (either direction) of a conversation.
    pub async fn newest_message_ts(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
    ) -> Result<Option<Ts>> {
        let row: (Option<Ts>,) = on_pool!(self, pool => sqlx::query_as(NEWEST_MESSAGE)
            .bind(team_id)
            .bind(channel_id)
            .fetch_one(pool)
            .await?);
        Ok(row.0)
    }

    /// The newest bridged top-level messages of a conversation (not deleted), newest first.
    pub async fn recent_top_level(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        limit: i64,
    ) -> Result<Vec<Ts>> {
        let rows: Vec<(Ts,)> = on_pool!(self, pool => sqlx::query_as(RECENT_TOP_LEVEL)
            .bind(team_id)
            .bind(channel_id)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The threads of a conversation with the most recent bridged activity: (root ts, newest
    /// bridged ts in it), newest first.
    pub async fn recent_threads(
        &self,
        team_id: &TeamId,
        channel_id: &ChannelId,
        limit: i64,
    ) -> Result<Vec<(Ts, Ts)>> {
        Ok(on_pool!(self, pool => sqlx::query_as(RECENT_THREADS)
            .bind(team_id)
            .bind(channel_id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }
}
