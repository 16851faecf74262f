//! Prometheus metrics (`/metrics`): one registry per running bridge, so several bridges in
//! one process (the tests) never mix their numbers. Counters and histograms are updated where
//! things happen; the queue gauges are read from the database at scrape time, so they survive
//! restarts and cannot drift.

use std::time::Duration;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::store::{HistoryRun, QueueTable, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Run {
    run: &'static str,
}

fn dir(t: QueueTable) -> Direction {
    Direction {
        direction: t.direction(),
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub transactions: Counter,
    pub duplicate_transactions: Counter,
    pub pings: Counter,
    given_up: Family<Direction, Counter>,
    queue_depth: Family<Direction, Gauge>,
    oldest_pending: Family<Direction, Gauge>,
    failed: Family<Direction, Gauge>,
    slack_inbox_pending: Gauge,
    slack_inbox_failed: Gauge,
    hs_inbox_pending: Gauge,
    database_up: Gauge,
    slack_ack_latency: Histogram,
    send_latency: Family<Direction, Histogram, fn() -> Histogram>,
    history: Family<Run, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slack_bridge");
        let m = Metrics {
            registry: Registry::default(),
            transactions: Counter::default(),
            duplicate_transactions: Counter::default(),
            pings: Counter::default(),
            given_up: Family::default(),
            queue_depth: Family::default(),
            oldest_pending: Family::default(),
            failed: Family::default(),
            slack_inbox_pending: Gauge::default(),
            slack_inbox_failed: Gauge::default(),
            hs_inbox_pending: Gauge::default(),
            database_up: Gauge::default(),
            slack_ack_latency: latency_histogram(),
            send_latency: Family::new_with_constructor(latency_histogram),
            history: Family::default(),
        };
        let r = &mut registry;
        r.register(
            "transactions",
            "Homeserver transactions stored",
            m.transactions.clone(),
        );
        r.register(
            "duplicate_transactions",
            "Homeserver transactions received again (answered, not processed again)",
            m.duplicate_transactions.clone(),
        );
        r.register(
            "pings",
            "Appservice pings from the homeserver",
            m.pings.clone(),
        );
        r.register(
            "given_up_events",
            "Events given up on after retrying for bridge.outbound.retry_for, or refused, since start",
            m.given_up.clone(),
        );
        r.register(
            "queue_depth",
            "Events waiting in the per-portal queues",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_pending_seconds",
            "Age of the oldest event waiting in the queues (0 when none waits)",
            m.oldest_pending.clone(),
        );
        r.register(
            "queue_failed",
            "Events given up on, kept in the database",
            m.failed.clone(),
        );
        r.register(
            "slack_inbox_pending",
            "Slack events stored, not yet bridged",
            m.slack_inbox_pending.clone(),
        );
        r.register(
            "slack_inbox_failed",
            "Slack events given up on",
            m.slack_inbox_failed.clone(),
        );
        r.register(
            "hs_inbox_pending",
            "Homeserver transactions stored, not yet processed",
            m.hs_inbox_pending.clone(),
        );
        r.register(
            "database_up",
            "Whether the database answered",
            m.database_up.clone(),
        );
        r.register(
            "slack_ack_latency_seconds",
            "Time from reading a Socket Mode envelope to acknowledging it (stored first)",
            m.slack_ack_latency.clone(),
        );
        r.register(
            "send_latency_seconds",
            "Duration of one send: a Matrix event to Slack, or a Slack message to the homeserver",
            m.send_latency.clone(),
        );
        r.register(
            "history_messages",
            "Slack messages bridged from history: a new portal's backfill, or the catch-up after the bridge was away",
            m.history.clone(),
        );
        // Every series exists from the start, at zero, so dashboards and alerts see it.
        for run in [HistoryRun::Backfill, HistoryRun::CatchUp] {
            let _ = m.history.get_or_create(&Run { run: run.as_str() });
        }
        for t in [QueueTable::SlackInbox, QueueTable::Outbox] {
            let _ = m.given_up.get_or_create(&dir(t));
            let _ = m.send_latency.get_or_create(&dir(t));
        }
        Metrics { registry, ..m }
    }

    /// `n` messages came from Slack's history.
    pub fn from_history(&self, run: HistoryRun, n: u64) {
        self.history
            .get_or_create(&Run { run: run.as_str() })
            .inc_by(n);
    }

    pub fn given_up(&self, t: QueueTable) {
        self.given_up.get_or_create(&dir(t)).inc();
    }

    pub fn slack_ack(&self, d: Duration) {
        self.slack_ack_latency.observe(d.as_secs_f64());
    }

    pub fn slack_send(&self, d: Duration) {
        self.send_latency
            .get_or_create(&dir(QueueTable::Outbox))
            .observe(d.as_secs_f64());
    }

    pub fn matrix_send(&self, d: Duration) {
        self.send_latency
            .get_or_create(&dir(QueueTable::SlackInbox))
            .observe(d.as_secs_f64());
    }

    /// The exposition text, with the database-backed gauges read now.
    pub async fn render(&self, store: &Store) -> String {
        match self.refresh(store).await {
            Ok(()) => {
                self.database_up.set(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the queues");
                self.database_up.set(0);
            }
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        out
    }

    async fn refresh(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let d = store.inbox_depths().await?;
        self.slack_inbox_pending.set(d.slack_pending);
        self.slack_inbox_failed.set(d.slack_failed);
        self.hs_inbox_pending.set(d.hs_pending);
        let now = crate::store::now_ms();
        for t in [QueueTable::SlackInbox, QueueTable::Outbox] {
            let s = store.queue_stats(t).await?;
            self.queue_depth.get_or_create(&dir(t)).set(s.pending);
            self.failed.get_or_create(&dir(t)).set(s.failed);
            let age = s.oldest_pending_ms.map_or(0, |o| (now - o).max(0) / 1000);
            self.oldest_pending.get_or_create(&dir(t)).set(age);
        }
        Ok(())
    }
}
