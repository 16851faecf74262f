//! The per-portal queues, both directions: one worker per queue that has work, reading its
//! queue from the database in bounded windows, oldest first, so one portal's events are
//! handled in order, portals run concurrently, and memory stays flat however long the backlog.
//!
//! A failure the same call may survive later (rate limits, 5xx, network) is retried with
//! backoff and jitter, honouring Retry-After, for at most `bridge.outbound.retry_for` from the
//! item's first attempt; then the item is given up (the handler tells the room) and its queue
//! moves on. Only the failing queue waits. A refusal is given up at once.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;
use tracing::Instrument;

use super::BridgeError;
use crate::{
    BoxFuture,
    retry::Backoff,
    store::{QueueTable, QueuedItem, Store, now_ms},
    supervisor::{Supervisor, sleep_or_cancel},
};

/// Items read from the database at once per queue.
const WINDOW: i64 = 16;
/// How often every queue is looked at even without a wake-up (work left by a crash).
const RESCAN: Duration = Duration::from_secs(30);

/// How the queues retry: [`Backoff`] delays, for at most `retry_for` per item.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up on an item this long after its first attempt.
    pub retry_for: Duration,
    pub backoff: Backoff,
}

/// What handling an item came to.
pub enum Handled {
    Done,
    /// Try again later.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        /// Wait without a deadline: the failure blocks every queue alike (the homeserver is
        /// down) and nothing is lost by waiting.
        no_deadline: bool,
    },
    /// Never going to work: give up now.
    Refused(String),
}

impl From<Result<(), BridgeError>> for Handled {
    fn from(r: Result<(), BridgeError>) -> Self {
        match r {
            Ok(()) => Handled::Done,
            Err(e) if e.is_retryable() => Handled::Retry {
                retry_after: e.retry_after(),
                no_deadline: e.is_outage(),
                reason: e.to_string(),
            },
            Err(e) => Handled::Refused(e.to_string()),
        }
    }
}

/// One direction's handling of its items.
pub trait QueueHandler: Send + Sync + 'static {
    fn table(&self) -> QueueTable;

    fn handle<'a>(&'a self, item: &'a QueuedItem) -> BoxFuture<'a, Handled>;

    /// The item was given up on (`reason` says why): tell whoever needs to know.
    fn give_up<'a>(&'a self, item: &'a QueuedItem, reason: &'a str) -> BoxFuture<'a, ()>;
}

/// Queues with new work, reported by whoever stored it. Holds keys, not items: its size is
/// bounded by the number of queues.
#[derive(Default)]
pub struct QueueWaker {
    keys: Mutex<HashSet<String>>,
    notify: Notify,
}

impl QueueWaker {
    pub fn wake(&self, queue: impl Into<String>) {
        self.keys.lock().expect("waker").insert(queue.into());
        self.notify.notify_one();
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.keys.lock().expect("waker"))
    }
}

/// Runs the workers of one direction.
pub struct Scheduler<H: QueueHandler> {
    handler: H,
    store: Store,
    policy: RetryPolicy,
    sup: Supervisor,
    waker: Arc<QueueWaker>,
    active: Mutex<HashSet<String>>,
}

impl<H: QueueHandler> Scheduler<H> {
    pub fn new(
        handler: H,
        store: Store,
        policy: RetryPolicy,
        sup: Supervisor,
        waker: Arc<QueueWaker>,
    ) -> Arc<Self> {
        Arc::new(Self {
            handler,
            store,
            policy,
            sup,
            waker,
            active: Mutex::new(HashSet::new()),
        })
    }

    /// Starts workers for woken queues (and for every queue with work, now and then) until
    /// the bridge stops.
    pub async fn run(self: Arc<Self>) {
        let table = self.handler.table();
        let stop = self.sup.stop_token().clone();
        let mut rescan = true;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let mut queues = self.waker.take();
            if rescan {
                match self.store.pending_queues(table).await {
                    Ok(all) => queues.extend(all),
                    Err(e) => {
                        tracing::error!(direction = table.direction(), error = %e, "cannot read the queues")
                    }
                }
            }
            for q in queues {
                self.start(q);
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.waker.notify.notified() => rescan = false,
                _ = tokio::time::sleep(RESCAN) => rescan = true,
            }
        }
    }

    fn start(self: &Arc<Self>, queue: String) {
        if self.sup.is_stopping() || !self.active.lock().expect("active").insert(queue.clone()) {
            return;
        }
        let me = self.clone();
        self.sup
            .spawn("queue worker", async move { me.work(queue).await });
    }

    async fn work(&self, queue: String) {
        let table = self.handler.table();
        loop {
            self.drain(&queue).await;
            // Leave, then look once more: work stored after the last window but before we
            // left would otherwise wait for the next rescan.
            self.active.lock().expect("active").remove(&queue);
            if self.sup.is_stopping() {
                return;
            }
            match self.store.queue_window(table, &queue, 1).await {
                Ok(w) if !w.is_empty() => {
                    if !self.active.lock().expect("active").insert(queue.clone()) {
                        return; // another worker took it
                    }
                }
                _ => return,
            }
        }
    }

    async fn drain(&self, queue: &str) {
        let table = self.handler.table();
        let stop = self.sup.stop_token();
        loop {
            if stop.is_cancelled() {
                return;
            }
            let window = match self.store.queue_window(table, queue, WINDOW).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(direction = table.direction(), queue, error = %e, "cannot read a queue");
                    if !sleep_or_cancel(stop, self.policy.backoff.min).await {
                        return;
                    }
                    continue;
                }
            };
            if window.is_empty() {
                return;
            }
            for item in &window {
                if !self.process(item).await {
                    return;
                }
            }
        }
    }

    /// Handles one item until it is done or given up; false when the bridge is stopping
    /// before that.
    async fn process(&self, item: &QueuedItem) -> bool {
        let table = self.handler.table();
        let stop = self.sup.stop_token();
        let span = tracing::info_span!(
            "queue item",
            direction = table.direction(),
            queue = %item.queue,
            event_id = %item.event_id,
            team = tracing::field::Empty,
            channel = tracing::field::Empty,
            room_id = tracing::field::Empty,
        );
        // Slack queues are `<team>:<channel>`, Matrix ones the room (or the command queue).
        match table {
            QueueTable::SlackInbox => {
                span.record("team", item.scope.as_str());
                if let Some((_, channel)) = item.queue.split_once(':') {
                    span.record("channel", channel);
                }
            }
            QueueTable::Outbox => {
                span.record("room_id", item.scope.as_str());
            }
        }
        let mut delays = self.policy.backoff.delays();
        loop {
            let outcome = self.handler.handle(item).instrument(span.clone()).await;
            let result = match outcome {
                Handled::Done => self.store.queue_done(table, item.id).await,
                Handled::Refused(reason) => {
                    tracing::warn!(direction = table.direction(), queue = %item.queue, event_id = %item.event_id, %reason, "not bridged");
                    self.handler.give_up(item, &reason).await;
                    self.store.queue_failed(table, item.id, &reason).await
                }
                Handled::Retry {
                    reason,
                    retry_after,
                    no_deadline,
                } => {
                    let first = match self.store.queue_attempt(table, item.id, &reason).await {
                        Ok(first) => first,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot record a failed attempt");
                            now_ms()
                        }
                    };
                    let elapsed =
                        Duration::from_millis(now_ms().saturating_sub(first).max(0) as u64);
                    if !no_deadline && elapsed >= self.policy.retry_for {
                        let why = format!(
                            "{reason} (gave up after retrying for {})",
                            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
                        );
                        tracing::warn!(direction = table.direction(), queue = %item.queue, event_id = %item.event_id, reason = %why, "giving up");
                        self.handler.give_up(item, &why).await;
                        if let Err(e) = self.store.queue_failed(table, item.id, &why).await {
                            tracing::error!(error = %e, "cannot record a given-up item");
                        }
                        return true;
                    }
                    let wait = self.policy.backoff.wait(delays.next(), retry_after);
                    tracing::warn!(
                        direction = table.direction(),
                        queue = %item.queue,
                        event_id = %item.event_id,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %reason,
                        "not bridged yet, will retry"
                    );
                    if !sleep_or_cancel(stop, wait).await {
                        return false;
                    }
                    continue;
                }
            };
            if let Err(e) = result {
                tracing::error!(direction = table.direction(), event_id = %item.event_id, error = %e, "cannot record a handled item");
            }
            return true;
        }
    }
}
