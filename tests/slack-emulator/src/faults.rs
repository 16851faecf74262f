//! Scripted Web API faults, per method and optionally per conversation (the call's `channel`
//! parameter). Before the method runs: HTTP 429 with `Retry-After`, a given error code, or a
//! bare HTTP status with an HTML or empty body (Slack's edge answering 5xx). After the method
//! ran (the change is applied and its events are queued): an HTTP status instead of the real
//! response, or the real response held back for a while, so a client with a shorter timeout
//! gives up on a call that did happen.
//!
//! A fault fires `times` times, or until [`Faults::clear`] when `times` is [`FOREVER`].
//! At most one fault fires per call, in this order: rate limit, HTTP status, error, apply then
//! status, apply then delay; within one kind a channel-scoped fault wins over an unscoped one.
//! Installing a fault of the same kind for the same method and channel replaces the old one.
//!
//! Besides scripted faults, [`HistoryTier1`] models Slack's 2025 limit on conversations.history
//! and conversations.replies for non-Marketplace apps; it decides before the scripted faults
//! (a call it refuses consumes none) and is not affected by [`Faults::clear`].
//!
//! (Socket Mode faults live on the dispatcher: drop acks, redeliver, forced disconnects; token
//! revocation and scope removal live on the workspace.)

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// `times` value for a fault that lasts until `clear_faults`.
pub const FOREVER: u32 = u32::MAX;

/// Body of an injected HTTP-status answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultBody {
    /// A small `text/html` error page, like Slack's edge serves on 5xx.
    #[default]
    Html,
    /// No body at all (`content-length: 0`).
    Empty,
}

/// What a fault does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 429, `Retry-After: retry_after`, `{"ok":false,"error":"ratelimited"}`; not run.
    RateLimit { retry_after: u64 },
    /// HTTP 200 `{"ok":false,"error":error}`; not run.
    Error { error: String },
    /// HTTP `status` with `body`; not run.
    HttpStatus { status: u16, body: FaultBody },
    /// Runs the method, then answers HTTP `status` with `body` instead of its response.
    ApplyThenStatus { status: u16, body: FaultBody },
    /// Runs the method and records the call, then holds the real response for `delay_ms`.
    ApplyThenDelay { delay_ms: u64 },
}

impl FaultKind {
    /// Lower fires first.
    fn rank(&self) -> u8 {
        match self {
            FaultKind::RateLimit { .. } => 0,
            FaultKind::HttpStatus { .. } => 1,
            FaultKind::Error { .. } => 2,
            FaultKind::ApplyThenStatus { .. } => 3,
            FaultKind::ApplyThenDelay { .. } => 4,
        }
    }

    /// Whether the method still runs when this fault fires.
    pub fn applies(&self) -> bool {
        matches!(
            self,
            FaultKind::ApplyThenStatus { .. } | FaultKind::ApplyThenDelay { .. }
        )
    }

    pub fn delay(&self) -> Option<Duration> {
        match self {
            FaultKind::ApplyThenDelay { delay_ms } => Some(Duration::from_millis(*delay_ms)),
            _ => None,
        }
    }

    /// A short label for [`crate::RecordedCall::fault`].
    pub fn label(&self) -> String {
        match self {
            FaultKind::RateLimit { retry_after } => format!("rate_limit:{retry_after}"),
            FaultKind::Error { error } => format!("error:{error}"),
            FaultKind::HttpStatus { status, .. } => format!("http_status:{status}"),
            FaultKind::ApplyThenStatus { status, .. } => format!("apply_then_status:{status}"),
            FaultKind::ApplyThenDelay { delay_ms } => format!("apply_then_delay:{delay_ms}ms"),
        }
    }
}

/// An installed fault, as listed by [`crate::Emulator::faults`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub method: String,
    /// Conversation ID the fault is scoped to (names and user IDs are resolved when the fault is
    /// installed, where the conversation exists); `None` matches every call of the method.
    pub channel: Option<String>,
    /// Calls left to hit; [`FOREVER`] never runs out.
    pub remaining: u32,
    #[serde(flatten)]
    pub kind: FaultKind,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Vec<Fault>,
    pub tier1: HistoryTier1,
}

/// Slack's 2025 rate limit for non-Marketplace apps: conversations.history and
/// conversations.replies each allow one call per `interval`, with pages of at most
/// [`HistoryTier1::PAGE_CAP`] messages. Time is tokio's, so a paused test clock drives it.
#[derive(Debug, Default)]
pub(crate) struct HistoryTier1 {
    interval: Option<Duration>,
    /// When each method's previous call was accepted.
    last: HashMap<String, Instant>,
}

impl HistoryTier1 {
    const METHODS: [&str; 2] = ["conversations.history", "conversations.replies"];
    /// Largest page while the limit is on.
    pub const PAGE_CAP: usize = 15;

    /// Turns the limit on (`Some`) or off, forgetting earlier calls.
    pub fn set(&mut self, interval: Option<Duration>) {
        self.interval = interval;
        self.last.clear();
    }

    pub fn is_on(&self) -> bool {
        self.interval.is_some()
    }

    /// Accepts (and remembers) a call of `method` at `now`, or refuses it with the rate limit
    /// to answer when it comes less than `interval` after the method's previous accepted call.
    pub fn check(&mut self, method: &str, now: Instant) -> Option<FaultKind> {
        let interval = self.interval.filter(|_| Self::METHODS.contains(&method))?;
        if let Some(last) = self.last.get(method) {
            let wait = interval.saturating_sub(now.duration_since(*last));
            if !wait.is_zero() {
                // Whole seconds, rounded up, and never 0 (which would invite a busy retry).
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Some(FaultKind::RateLimit {
                    retry_after: secs.max(1),
                });
            }
        }
        self.last.insert(method.to_string(), now);
        None
    }
}

impl Faults {
    /// Installs `f`, replacing a fault of the same kind for the same method and channel.
    pub fn add(&mut self, f: Fault) {
        self.list.retain(|o| {
            !(o.method == f.method && o.channel == f.channel && o.kind.rank() == f.kind.rank())
        });
        self.list.push(f);
    }

    #[cfg(test)]
    fn rate_limit(&mut self, method: &str, times: u32, retry_after: u64) {
        self.add(Fault {
            method: method.into(),
            channel: None,
            remaining: times,
            kind: FaultKind::RateLimit { retry_after },
        });
    }

    #[cfg(test)]
    fn fail_next(&mut self, method: &str, times: u32, error: &str) {
        self.add(Fault {
            method: method.into(),
            channel: None,
            remaining: times,
            kind: FaultKind::Error {
                error: error.into(),
            },
        });
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Faults that can still fire, in installation order.
    pub fn list(&self) -> Vec<Fault> {
        self.list
            .iter()
            .filter(|f| f.remaining > 0)
            .cloned()
            .collect()
    }

    /// Consumes one fault for a call of `method` whose conversation is `channels` (the raw
    /// `channel` parameter and what it resolves to; empty when the call names none).
    pub fn take(&mut self, method: &str, channels: &[String]) -> Option<FaultKind> {
        let i = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, f)| f.method == method && f.remaining > 0)
            .filter(|(_, f)| f.channel.as_ref().is_none_or(|c| channels.contains(c)))
            // Stable: installation order breaks ties.
            .min_by_key(|(_, f)| (f.kind.rank(), f.channel.is_none()))
            .map(|(i, _)| i)?;
        let f = &mut self.list[i];
        if f.remaining != FOREVER {
            f.remaining -= 1;
        }
        Some(f.kind.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(n: u64) -> Option<FaultKind> {
        Some(FaultKind::RateLimit { retry_after: n })
    }

    #[test]
    fn counts_down() {
        let mut f = Faults::default();
        f.rate_limit("chat.postMessage", 2, 1);
        f.fail_next("chat.postMessage", 1, "not_in_channel");
        assert_eq!(f.take("chat.postMessage", &[]), rl(1));
        assert_eq!(f.take("chat.postMessage", &[]), rl(1));
        assert_eq!(
            f.take("chat.postMessage", &[]),
            Some(FaultKind::Error {
                error: "not_in_channel".into()
            })
        );
        assert_eq!(f.take("chat.postMessage", &[]), None);
        assert_eq!(f.take("auth.test", &[]), None);
    }

    #[test]
    fn same_kind_replaces_and_scoped_wins() {
        let mut f = Faults::default();
        f.rate_limit("m", 5, 1);
        f.rate_limit("m", 1, 2);
        f.add(Fault {
            method: "m".into(),
            channel: Some("C1".into()),
            remaining: 1,
            kind: FaultKind::RateLimit { retry_after: 9 },
        });
        assert_eq!(f.list().len(), 2);
        // A call in another channel only sees the unscoped one.
        assert_eq!(f.take("m", &["C2".into()]), rl(2));
        f.rate_limit("m", 1, 2);
        assert_eq!(f.take("m", &["C1".into()]), rl(9));
        assert_eq!(f.take("m", &["C1".into()]), rl(2));
        assert_eq!(f.take("m", &["C1".into()]), None);
    }

    #[test]
    fn history_tier1_spaces_calls_per_method() {
        let mut t = HistoryTier1::default();
        let t0 = Instant::now();
        assert_eq!(t.check("conversations.history", t0), None, "off by default");
        assert_eq!(t.check("conversations.history", t0), None);
        t.set(Some(Duration::from_millis(2500)));
        assert_eq!(t.check("conversations.history", t0), None);
        assert_eq!(t.check("conversations.replies", t0), None, "counted apart");
        assert_eq!(t.check("chat.postMessage", t0), None);
        assert_eq!(
            t.check("chat.postMessage", t0),
            None,
            "other methods are free"
        );
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(t.check("conversations.history", at(400)), rl(3));
        // Refused calls do not restart the interval.
        assert_eq!(t.check("conversations.history", at(1600)), rl(1));
        assert_eq!(t.check("conversations.history", at(2499)), rl(1));
        assert_eq!(t.check("conversations.history", at(2500)), None);
        assert_eq!(t.check("conversations.history", at(2600)), rl(3));
        t.set(Some(Duration::from_millis(200)));
        assert_eq!(t.check("conversations.replies", at(2600)), None, "reset");
        assert_eq!(t.check("conversations.replies", at(2601)), rl(1));
        t.set(None);
        assert_eq!(t.check("conversations.replies", at(2602)), None);
    }

    #[test]
    fn forever_lasts_until_clear() {
        let mut f = Faults::default();
        f.add(Fault {
            method: "m".into(),
            channel: None,
            remaining: FOREVER,
            kind: FaultKind::HttpStatus {
                status: 503,
                body: FaultBody::Empty,
            },
        });
        for _ in 0..1000 {
            assert!(f.take("m", &[]).is_some());
        }
        f.clear();
        assert_eq!(f.take("m", &[]), None);
    }
}
