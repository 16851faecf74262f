//! The two durable inboxes: Slack events (deduplicated on `event_id`) and homeserver
//! transactions (deduplicated on `txn_id`). An entry is stored before its delivery is
//! acknowledged and processed afterwards, in arrival order, so nothing is lost to a crash.

use super::{Result, Store, now_ms, on_pool};
use crate::ids::{ChannelId, TeamId};

const SLACK_INSERT: &str =
    "INSERT INTO slack_inbox (event_id, team_id, channel_id, payload, received_at, queue)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING";
const SLACK_PENDING: &str =
    "SELECT id, event_id, team_id, channel_id, payload, attempts FROM slack_inbox
    WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2";
// A handled entry keeps its key (for deduplication) but not its payload: the inboxes would
// otherwise grow without bound, and a transaction may carry a pasted token.
const SLACK_DONE: &str =
    "UPDATE slack_inbox SET state = 'done', done_at = $2, payload = '' WHERE id = $1";
const SLACK_FAILED: &str = "UPDATE slack_inbox SET state = 'failed', last_error = $2, attempts = attempts + 1, done_at = $3 WHERE id = $1";
const SLACK_ATTEMPT: &str =
    "UPDATE slack_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1";
const SLACK_COUNT: &str = "SELECT COUNT(*) FROM slack_inbox WHERE event_id = $1";

const SLACK_DEPTH: &str = "SELECT COUNT(*) FROM slack_inbox WHERE state = $1";
const HS_DEPTH: &str = "SELECT COUNT(*) FROM hs_inbox WHERE state = $1";

const HS_INSERT: &str = "INSERT INTO hs_inbox (txn_id, body, received_at) VALUES ($1, $2, $3)
    ON CONFLICT (txn_id) DO NOTHING";
const HS_PENDING: &str = "SELECT id, txn_id, body, attempts FROM hs_inbox
    WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2";
const HS_DONE: &str = "UPDATE hs_inbox SET state = 'done', done_at = $2, body = '' WHERE id = $1";
const HS_ATTEMPT: &str =
    "UPDATE hs_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SlackInboxEntry {
    pub id: i64,
    pub event_id: String,
    pub team_id: TeamId,
    pub channel_id: Option<ChannelId>,
    pub payload: String,
    pub attempts: i64,
}

/// The advisory lock key that serialises Slack inbox writers on PostgreSQL.
const SLACK_INBOX_LOCK: i64 = 0x51ac_0b0c;

/// How much waits in the inboxes, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxDepths {
    pub slack_pending: i64,
    pub slack_failed: i64,
    pub hs_pending: i64,
}

/// A Slack event about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewSlackEvent<'a> {
    pub event_id: &'a str,
    pub team_id: &'a TeamId,
    pub channel_id: Option<&'a ChannelId>,
    pub payload: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HsTxn {
    pub id: i64,
    pub txn_id: String,
    pub body: String,
    pub attempts: i64,
}

impl Store {
    /// Stores a Slack event unless its `event_id` is known; true when it was new.
    pub async fn insert_slack_event(
        &self,
        event_id: &str,
        team_id: &TeamId,
        channel_id: Option<&ChannelId>,
        payload: &str,
    ) -> Result<bool> {
        let new = self
            .insert_slack_events(&[NewSlackEvent {
                event_id,
                team_id,
                channel_id,
                payload,
            }])
            .await?;
        Ok(new[0])
    }

    /// Pending Slack events after `after_id`, oldest first.
    pub async fn pending_slack_events(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<SlackInboxEntry>> {
        Ok(on_pool!(self, pool => sqlx::query_as(SLACK_PENDING)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// Stores several Slack events in one transaction (one disk sync for a burst); for each,
    /// true when it was new.
    pub async fn insert_slack_events(&self, events: &[NewSlackEvent<'_>]) -> Result<Vec<bool>> {
        let now = now_ms();
        let postgres = self.dialect() == super::Dialect::Postgres;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                // PostgreSQL hands out ids at insert and shows rows at commit; two concurrent
                // writers could commit id 11 before id 10, and a reader paging by id would
                // skip 10. One writer at a time keeps ids visible in order (SQLite already
                // allows only one writer).
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SLACK_INBOX_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                let n = sqlx::query(SLACK_INSERT)
                    .bind(e.event_id)
                    .bind(e.team_id)
                    .bind(e.channel_id)
                    .bind(e.payload)
                    .bind(now)
                    .bind(super::queues::slack_queue(e.team_id, e.channel_id))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                out.push(n > 0);
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    pub async fn mark_slack_done(&self, id: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SLACK_DONE).bind(id).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Gives up on an event for good, keeping the reason for the operator.
    pub async fn mark_slack_failed(&self, id: i64, error: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SLACK_FAILED).bind(id).bind(error).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Counts a failed attempt that will be retried.
    pub async fn note_slack_attempt(&self, id: i64, error: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query(SLACK_ATTEMPT).bind(id).bind(error).execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn slack_event_count(&self, event_id: &str) -> Result<i64> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar(SLACK_COUNT).bind(event_id).fetch_one(pool).await?),
        )
    }

    /// Stores a homeserver transaction unless its txn id is known; true when it was new.
    pub async fn insert_hs_txn(&self, txn_id: &str, body: &str) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(HS_INSERT)
            .bind(txn_id)
            .bind(body)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    pub async fn pending_hs_txns(&self, after_id: i64, limit: i64) -> Result<Vec<HsTxn>> {
        Ok(on_pool!(self, pool => sqlx::query_as(HS_PENDING)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    pub async fn inbox_depths(&self) -> Result<InboxDepths> {
        let count = |sql: &'static str, state: &'static str| async move {
            let n: i64 =
                on_pool!(self, pool => sqlx::query_scalar(sql).bind(state).fetch_one(pool).await?);
            Ok::<i64, super::StoreError>(n)
        };
        Ok(InboxDepths {
            slack_pending: count(SLACK_DEPTH, "pending").await?,
            slack_failed: count(SLACK_DEPTH, "failed").await?,
            hs_pending: count(HS_DEPTH, "pending").await?,
        })
    }

    pub async fn mark_hs_done(&self, id: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(HS_DONE).bind(id).bind(now_ms()).execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn note_hs_attempt(&self, id: i64, error: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query(HS_ATTEMPT).bind(id).bind(error).execute(pool).await?.rows_affected());
        Ok(())
    }
}
