//! The per-portal work queues of both directions: `slack_inbox` (Slack events, keyed
//! `<team>:<channel>`) and `outbox` (Matrix events, keyed by portal room or `commands`). Both
//! are read the same way: which queues have work, then a bounded window of one queue, oldest
//! first, so memory stays flat however much waits.

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId};

/// The queue of Matrix bot commands and bot invites.
pub const COMMAND_QUEUE: &str = "commands";

const OUTBOX_INSERT: &str = "INSERT INTO outbox (event_id, queue, room_id, payload, received_at)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING";

/// One of the two queue tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueTable {
    /// Slack → Matrix.
    SlackInbox,
    /// Matrix → Slack.
    Outbox,
}

impl QueueTable {
    fn table(self) -> &'static str {
        match self {
            Self::SlackInbox => "slack_inbox",
            Self::Outbox => "outbox",
        }
    }

    /// The column that says where an item belongs besides its queue: the team of a Slack
    /// event, the room of a Matrix event.
    fn scope(self) -> &'static str {
        match self {
            Self::SlackInbox => "team_id",
            Self::Outbox => "room_id",
        }
    }

    /// `slack_to_matrix` / `matrix_to_slack`, for logs and metrics.
    pub fn direction(self) -> &'static str {
        match self {
            Self::SlackInbox => "slack_to_matrix",
            Self::Outbox => "matrix_to_slack",
        }
    }
}

/// The queue key of a Slack event.
pub fn slack_queue(team_id: &TeamId, channel_id: Option<&ChannelId>) -> String {
    format!("{team_id}:{}", channel_id.map_or("-", ChannelId::as_str))
}

/// An item of a queue.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedItem {
    pub id: i64,
    pub queue: String,
    /// Slack `event_id` or Matrix event id.
    pub event_id: String,
    /// Team (Slack events) or room (Matrix events).
    pub scope: String,
    pub payload: String,
    /// `pending`, or `running` for a command that started before a crash.
    pub state: String,
    pub attempts: i64,
    pub first_attempt_at: Option<i64>,
    pub received_at: i64,
}

/// A Matrix event about to be queued.
#[derive(Debug, Clone, Copy)]
pub struct NewOutboxEvent<'a> {
    pub event_id: &'a str,
    pub queue: &'a str,
    pub room_id: &'a str,
    pub payload: &'a str,
}

/// What waits in one direction, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: i64,
    /// `received_at` (ms) of the oldest item still waiting.
    pub oldest_pending_ms: Option<i64>,
    pub failed: i64,
}

/// Failures of one queue, for `list`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueFailure {
    pub queue: String,
    pub failed: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Queues Matrix events (a redelivered one is recognised by its event id); for each,
    /// true when it was new.
    pub async fn insert_outbox(&self, events: &[NewOutboxEvent<'_>]) -> Result<Vec<bool>> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                let n = sqlx::query(OUTBOX_INSERT)
                    .bind(e.event_id)
                    .bind(e.queue)
                    .bind(e.room_id)
                    .bind(e.payload)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                out.push(n > 0);
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// The queues that have work waiting.
    pub async fn pending_queues(&self, t: QueueTable) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT queue FROM {} WHERE state IN ('pending', 'running')",
            t.table()
        );
        Ok(on_pool!(self, pool => sqlx::query_scalar(&sql).fetch_all(pool).await?))
    }

    /// The oldest `limit` items waiting in `queue`.
    pub async fn queue_window(
        &self,
        t: QueueTable,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<QueuedItem>> {
        let sql = format!(
            "SELECT id, queue, event_id, {scope} AS scope, payload, state, attempts,
                first_attempt_at, received_at
            FROM {table} WHERE state IN ('pending', 'running') AND queue = $1
            ORDER BY id LIMIT $2",
            scope = t.scope(),
            table = t.table()
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(queue)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// The item is handled; its key stays (for deduplication), its payload goes.
    pub async fn queue_done(&self, t: QueueTable, id: i64) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET state = 'done', done_at = $2, payload = '' WHERE id = $1",
            t.table()
        );
        on_pool!(self, pool => sqlx::query(&sql).bind(id).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Gives up on an item for good, keeping the reason for the operator.
    pub async fn queue_failed(&self, t: QueueTable, id: i64, error: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET state = 'failed', last_error = $2, attempts = attempts + 1,
                done_at = $3, payload = '' WHERE id = $1",
            t.table()
        );
        on_pool!(self, pool => sqlx::query(&sql).bind(id).bind(error).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Counts a failed attempt that will be retried; returns when the first attempt was (ms),
    /// the start of the item's retry period.
    pub async fn queue_attempt(&self, t: QueueTable, id: i64, error: &str) -> Result<i64> {
        let sql = format!(
            "UPDATE {} SET attempts = attempts + 1, last_error = $2,
                first_attempt_at = COALESCE(first_attempt_at, $3)
            WHERE id = $1 RETURNING first_attempt_at",
            t.table()
        );
        let now = now_ms();
        let first: Option<Option<i64>> = on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(id)
            .bind(error)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        Ok(first.flatten().unwrap_or(now))
    }

    /// Marks a command as started, so a crash and a redelivery never run it twice.
    pub async fn queue_running(&self, t: QueueTable, id: i64) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET state = 'running', first_attempt_at = COALESCE(first_attempt_at, $2)
            WHERE id = $1",
            t.table()
        );
        on_pool!(self, pool => sqlx::query(&sql).bind(id).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn queue_stats(&self, t: QueueTable) -> Result<QueueStats> {
        let waiting = format!(
            "SELECT COUNT(*), MIN(received_at) FROM {} WHERE state IN ('pending', 'running')",
            t.table()
        );
        let failed = format!("SELECT COUNT(*) FROM {} WHERE state = 'failed'", t.table());
        let (pending, oldest): (i64, Option<i64>) =
            on_pool!(self, pool => sqlx::query_as(&waiting).fetch_one(pool).await?);
        let failed: i64 =
            on_pool!(self, pool => sqlx::query_scalar(&failed).fetch_one(pool).await?);
        Ok(QueueStats {
            pending,
            oldest_pending_ms: oldest,
            failed,
        })
    }

    /// Per queue: how many items were given up on, and the newest reason.
    pub async fn queue_failures(&self, t: QueueTable) -> Result<Vec<QueueFailure>> {
        let sql = format!(
            "SELECT f.queue, f.failed, (SELECT last_error FROM {table} l
                WHERE l.queue = f.queue AND l.state = 'failed' ORDER BY l.id DESC LIMIT 1)
                AS last_error
            FROM (SELECT queue, COUNT(*) AS failed FROM {table} WHERE state = 'failed'
                GROUP BY queue) f",
            table = t.table()
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }
}
