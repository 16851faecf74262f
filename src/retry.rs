//! The one retry policy of the bridge: exponential backoff with full jitter and a cap on the
//! delay (from `backon`), where a wait the other side asked for (`Retry-After`,
//! `retry_after_ms`) wins over a shorter backoff. Every retry loop takes its delays from here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (before jitter).
    pub min: Duration,
    /// No delay is longer (before jitter).
    pub max: Duration,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// Endless delays: doubling from `min` up to `max`, each with jitter.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The wait before the next attempt: the backoff's next delay, or what the other side
    /// asked for when that is longer (plus at most `min` of the backoff, so many waiters do
    /// not all come back at the same instant).
    pub fn wait(&self, next: Option<Duration>, retry_after: Option<Duration>) -> Duration {
        let b = next.unwrap_or(self.max);
        retry_after.map_or(b, |r| r.max(b.min(r + self.min)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(60))
    }

    #[test]
    fn delays_grow_to_the_cap_with_jitter() {
        let d: Vec<Duration> = policy().delays().take(20).collect();
        assert!(d.iter().all(|d| *d <= Duration::from_secs(120)), "{d:?}");
        assert!(
            d[15..].iter().any(|d| *d >= Duration::from_secs(30)),
            "{d:?}"
        );
        assert!(d[0] < Duration::from_secs(2), "{d:?}");
    }

    #[test]
    fn retry_after_wins_over_a_shorter_backoff() {
        let p = policy();
        let w = p.wait(Some(Duration::from_secs(1)), Some(Duration::from_secs(30)));
        assert!(w >= Duration::from_secs(30) && w <= Duration::from_millis(30_500));
        assert_eq!(
            p.wait(Some(Duration::from_secs(2)), None),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.wait(Some(Duration::from_secs(50)), Some(Duration::from_secs(5))),
            Duration::from_millis(5_500)
        );
    }
}
