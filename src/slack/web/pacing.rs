//! Outgoing request pacing, so callers wait for a slot instead of getting Slack's 429: one
//! token bucket per method at its tier's rate, one FIFO lane per conversation for
//! chat.postMessage (held for the whole call, retries included, so messages to a channel
//! arrive in call order), and the per-key block a 429's Retry-After puts on every caller.
//!
//! The buckets are hand-written rather than `governor`'s: a caller here reserves the next free
//! slot (tokens may go negative) and sleeps until it, so waiters are served in call order and
//! run on tokio's clock (paused in tests); governor's `until_ready` lets waiters race for
//! each cell and measures time on its own clock.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    sync::OwnedMutexGuard,
    time::{Instant, sleep, sleep_until},
};

/// A token-bucket rate: one token every `interval`, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    /// No pacing at all.
    pub const UNLIMITED: Rate = Rate {
        interval: Duration::ZERO,
        burst: 1,
    };

    pub fn per_minute(n: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(60) / n.max(1),
            burst: 1,
        }
    }

    pub fn per_second(n: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / n.max(1),
            burst: 1,
        }
    }

    pub fn with_burst(self, burst: u32) -> Rate {
        Rate {
            burst: burst.max(1),
            ..self
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.interval.is_zero()
    }
}

/// Slack's rate-limit tiers (slack-protocol.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Tier1,
    Tier2,
    Tier3,
    Tier4,
    /// Method-specific limits (auth.test, chat.postMessage).
    Special,
}

/// The documented tier of a method. Unknown methods count as Tier 3, the common case.
pub fn method_tier(method: &str) -> Tier {
    match method {
        "auth.test" | "chat.postMessage" => Tier::Special,
        "conversations.list" | "users.list" | "reactions.remove" | "emoji.list"
        | "files.upload" => Tier::Tier2,
        "conversations.members"
        | "users.info"
        | "files.getUploadURLExternal"
        | "files.completeUploadExternal"
        | "files.info" => Tier::Tier4,
        // apps.connections.open: api.slack.com says Tier 1, docs.slack.dev says Tier 3. A
        // local guess must not delay socket reconnects by a minute, and Slack's own 429 is
        // still honoured, so the looser reading wins.
        _ => Tier::Tier3,
    }
}

/// Outgoing request pacing. Slack limits each method per app per workspace; callers wait for
/// a slot instead of getting an error.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub tier1: Rate,
    pub tier2: Rate,
    pub tier3: Rate,
    pub tier4: Rate,
    /// chat.postMessage into one conversation ("1 per second, short bursts allowed").
    pub post_message_per_channel: Rate,
    /// chat.postMessage across the workspace ("several hundred messages per minute").
    pub post_message_workspace: Rate,
    /// Per-method overrides, e.g. conversations.history at 1/min for apps outside the
    /// Marketplace since 2025.
    pub overrides: HashMap<String, Rate>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            tier1: Rate::per_minute(1).with_burst(2),
            tier2: Rate::per_minute(20).with_burst(10),
            tier3: Rate::per_minute(50).with_burst(20),
            tier4: Rate::per_minute(100).with_burst(40),
            post_message_per_channel: Rate::per_second(1).with_burst(3),
            post_message_workspace: Rate::per_minute(300).with_burst(30),
            overrides: HashMap::new(),
        }
    }
}

impl Pacing {
    /// No pacing; Slack's 429s are still honoured.
    pub fn unlimited() -> Pacing {
        Pacing {
            tier1: Rate::UNLIMITED,
            tier2: Rate::UNLIMITED,
            tier3: Rate::UNLIMITED,
            tier4: Rate::UNLIMITED,
            post_message_per_channel: Rate::UNLIMITED,
            post_message_workspace: Rate::UNLIMITED,
            overrides: HashMap::new(),
        }
    }

    /// The workspace-wide rate of `method`.
    pub fn rate_for(&self, method: &str) -> Rate {
        if let Some(r) = self.overrides.get(method) {
            return *r;
        }
        match method_tier(method) {
            Tier::Tier1 => self.tier1,
            Tier::Tier2 => self.tier2,
            Tier::Tier3 => self.tier3,
            Tier::Tier4 => self.tier4,
            Tier::Special if method == "chat.postMessage" => self.post_message_workspace,
            Tier::Special => Rate::UNLIMITED,
        }
    }
}

/// A token bucket whose tokens may go negative: each caller reserves the next free slot and
/// sleeps until it, so waiters are served in call order without holding a lock while asleep.
#[derive(Debug)]
pub(super) struct Bucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: f64::from(rate.burst),
            last: now,
        }
    }

    /// Lowers the rate to `rate` (when it is slower), starting with no token saved.
    fn slow_to(&mut self, rate: Rate, now: Instant) -> bool {
        if rate.interval <= self.rate.interval {
            return false;
        }
        self.rate = rate;
        self.tokens = 0.0;
        self.last = now;
        true
    }

    /// Takes one token and returns how long to wait before using it.
    fn reserve(&mut self, now: Instant) -> Duration {
        if self.rate.is_unlimited() {
            return Duration::ZERO;
        }
        let interval = self.rate.interval.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed / interval).min(f64::from(self.rate.burst));
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            self.rate.interval.mul_f64(-self.tokens)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub(super) struct Pacer {
    pacing: Pacing,
    methods: Mutex<HashMap<String, Bucket>>,
    /// One FIFO lane per conversation for chat.postMessage. The lane's async mutex is held
    /// for the whole call, retries included, so messages to one channel arrive in call order.
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Bucket>>>>,
    /// Per method: no request before this instant (a 429's Retry-After applies to every
    /// caller of the method, not just the one that got it).
    blocked_until: Mutex<HashMap<String, Instant>>,
    /// Per method: its last few accepted calls within [`LEARN_WINDOW`], to tell a method
    /// Slack limits far below its tier (see [`Pacer::limited`]).
    accepted: Mutex<HashMap<String, std::collections::VecDeque<Instant>>>,
}

/// Slack's rate-limit window.
const LEARN_WINDOW: Duration = Duration::from_secs(60);
/// A 429 after at most this many accepted calls in the window means a per-minute limit of
/// about that many calls.
const LEARN_MAX_CALLS: usize = 2;

impl Pacer {
    pub(super) fn new(pacing: Pacing) -> Pacer {
        Pacer {
            pacing,
            methods: Mutex::default(),
            lanes: Mutex::default(),
            blocked_until: Mutex::default(),
            accepted: Mutex::default(),
        }
    }

    /// Slack accepted a call of `method`.
    pub(super) fn accepted(&self, method: &str) {
        let now = Instant::now();
        let mut all = lock(&self.accepted);
        let recent = all.entry(method.to_string()).or_default();
        recent.push_back(now);
        while recent.len() > LEARN_MAX_CALLS + 1
            || recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > LEARN_WINDOW)
        {
            recent.pop_front();
        }
    }

    /// Slack answered a call of `method` with a 429 asking to wait `retry_after`. When that
    /// came after only one or two accepted calls in the last minute, the method is limited
    /// far below its tier (conversations.history and .replies at 1 a minute for apps outside
    /// the Marketplace since 2025): its bucket slows to the rate Slack showed, so later calls
    /// wait their turn instead of being refused. Returns the new rate when it changed.
    pub(super) fn limited(&self, method: &str, retry_after: Duration) -> Option<Rate> {
        let now = Instant::now();
        let (calls, first) = {
            let all = lock(&self.accepted);
            let recent = all.get(method)?;
            let in_window: Vec<Instant> = recent
                .iter()
                .copied()
                .filter(|t| now.saturating_duration_since(*t) <= LEARN_WINDOW)
                .collect();
            (in_window.len(), *in_window.first()?)
        };
        if calls > LEARN_MAX_CALLS {
            return None;
        }
        let window = now.saturating_duration_since(first) + retry_after;
        let rate = Rate {
            interval: window / calls as u32,
            burst: 1,
        };
        let mut methods = lock(&self.methods);
        let bucket = methods
            .entry(method.to_string())
            .or_insert_with(|| Bucket::new(self.pacing.rate_for(method), now));
        bucket.slow_to(rate, now).then_some(rate)
    }

    /// Waits for a slot for `method` (and for `lane`, when given). The returned guard keeps
    /// the lane until the call is done.
    pub(super) async fn acquire(
        &self,
        method: &str,
        lane: Option<&str>,
    ) -> Option<OwnedMutexGuard<Bucket>> {
        let guard = match lane {
            Some(key) => {
                let lane = {
                    let rate = self.pacing.post_message_per_channel;
                    lock(&self.lanes)
                        .entry(key.to_string())
                        .or_insert_with(|| {
                            Arc::new(tokio::sync::Mutex::new(Bucket::new(rate, Instant::now())))
                        })
                        .clone()
                };
                let mut guard = lane.lock_owned().await;
                let wait = guard.reserve(Instant::now());
                if !wait.is_zero() {
                    tracing::debug!(method, wait_ms = wait.as_millis() as u64, "pacing channel");
                    sleep(wait).await;
                }
                Some(guard)
            }
            None => None,
        };
        let wait = {
            let mut methods = lock(&self.methods);
            let now = Instant::now();
            methods
                .entry(method.to_string())
                .or_insert_with(|| Bucket::new(self.pacing.rate_for(method), now))
                .reserve(now)
        };
        if !wait.is_zero() {
            tracing::debug!(method, wait_ms = wait.as_millis() as u64, "pacing method");
            sleep(wait).await;
        }
        guard
    }

    pub(super) async fn wait_unblocked(&self, method: &str) {
        let until = lock(&self.blocked_until).get(method).copied();
        if let Some(until) = until
            && until > Instant::now()
        {
            sleep_until(until).await;
        }
    }

    pub(super) fn block(&self, method: &str, until: Instant) {
        let mut b = lock(&self.blocked_until);
        let e = b.entry(method.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_rates() {
        assert_eq!(method_tier("conversations.list"), Tier::Tier2);
        assert_eq!(method_tier("users.info"), Tier::Tier4);
        assert_eq!(method_tier("chat.update"), Tier::Tier3);
        assert_eq!(method_tier("auth.test"), Tier::Special);
        let mut p = Pacing::default();
        assert_eq!(p.rate_for("auth.test"), Rate::UNLIMITED);
        assert_eq!(p.rate_for("users.list").interval, Duration::from_secs(3));
        p.overrides
            .insert("conversations.history".into(), Rate::per_minute(1));
        assert_eq!(
            p.rate_for("conversations.history").interval,
            Duration::from_secs(60)
        );
        assert_eq!(Rate::per_second(20).interval, Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_method_limited_below_its_tier_is_paced_to_what_slack_showed() {
        let pacer = Pacer::new(Pacing::default());
        let m = "conversations.history";
        // A Tier 3 method that Slack allows once a minute: accepted, then refused 1 s later.
        pacer.acquire(m, None).await;
        pacer.accepted(m);
        tokio::time::advance(Duration::from_secs(1)).await;
        let rate = pacer.limited(m, Duration::from_secs(59)).expect("slowed");
        assert_eq!(rate.interval, Duration::from_secs(60));
        // The next call waits a whole interval.
        let t0 = Instant::now();
        pacer.acquire(m, None).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(60));
        // A burst's 429 after many accepted calls is the tier's window, not a lower limit.
        let other = "chat.update";
        for _ in 0..5 {
            pacer.acquire(other, None).await;
            pacer.accepted(other);
        }
        assert_eq!(pacer.limited(other, Duration::from_secs(30)), None);
        // Nothing accepted yet: nothing to learn from.
        assert_eq!(pacer.limited("users.info", Duration::from_secs(30)), None);
    }

    #[test]
    fn bucket_reserves_in_order() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Rate::per_second(1).with_burst(3), t0);
        let waits: Vec<_> = (0..6).map(|_| b.reserve(t0)).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 0, 0, 1, 2, 3]);
        // After a long idle period the bucket is full again, but never above its burst.
        let later = t0 + Duration::from_secs(100);
        let waits: Vec<_> = (0..4).map(|_| b.reserve(later)).collect();
        assert_eq!(waits[..3], [Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_secs(1));
        let mut u = Bucket::new(Rate::UNLIMITED, t0);
        assert!((0..100).all(|_| u.reserve(t0).is_zero()));
    }

    #[tokio::test(start_paused = true)]
    async fn channel_lane_is_fifo_and_paced() {
        let mut pacing = Pacing::unlimited();
        pacing.post_message_per_channel = Rate::per_second(2).with_burst(2);
        let pacer = Arc::new(Pacer::new(pacing));
        let order = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..8u32 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _g = pacer.acquire("chat.postMessage", Some("C1")).await;
                // Holding the lane across an await must keep later callers behind us.
                tokio::time::sleep(Duration::from_millis(10)).await;
                order.lock().unwrap().push(i);
            }));
            // Let task i queue on the lane before task i+1 is spawned.
            tokio::task::yield_now().await;
        }
        // Another channel is not held up by C1's queue.
        let other = pacer.acquire("chat.postMessage", Some("C2")).await;
        assert!(Instant::now() - start < Duration::from_millis(100));
        drop(other);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
        // 8 messages, 2 free, then one per 500 ms.
        assert!(Instant::now() - start >= Duration::from_millis(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn method_block_applies_to_all_callers() {
        let pacer = Pacer::new(Pacing::unlimited());
        let start = Instant::now();
        pacer.block("users.info", start + Duration::from_secs(5));
        pacer.block("users.info", start + Duration::from_secs(2));
        pacer.wait_unblocked("users.info").await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        pacer.wait_unblocked("users.list").await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }
}
