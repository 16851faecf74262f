//! Scripted Web API faults: the next N calls of a method get HTTP 429 with `Retry-After`, or a
//! given error code. (Socket Mode faults live on the dispatcher: drop acks, redeliver, forced
//! disconnects; token revocation and scope removal live on the workspace.)

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct Faults {
    rate_limit: HashMap<String, (u32, u64)>,
    fail: HashMap<String, (u32, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Injected {
    RateLimited { retry_after: u64 },
    Fail(String),
}

impl Faults {
    pub fn rate_limit(&mut self, method: &str, times: u32, retry_after: u64) {
        self.rate_limit
            .insert(method.to_string(), (times, retry_after));
    }

    pub fn fail_next(&mut self, method: &str, times: u32, error: &str) {
        self.fail
            .insert(method.to_string(), (times, error.to_string()));
    }

    pub fn clear(&mut self) {
        self.rate_limit.clear();
        self.fail.clear();
    }

    /// Consumes one scripted fault for `method`; rate limits win over errors, as Slack's
    /// limiter answers before the method runs.
    pub fn take(&mut self, method: &str) -> Option<Injected> {
        if let Some((n, secs)) = self.rate_limit.get_mut(method)
            && *n > 0
        {
            *n -= 1;
            return Some(Injected::RateLimited { retry_after: *secs });
        }
        if let Some((n, err)) = self.fail.get_mut(method)
            && *n > 0
        {
            *n -= 1;
            return Some(Injected::Fail(err.clone()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down() {
        let mut f = Faults::default();
        f.rate_limit("chat.postMessage", 2, 1);
        f.fail_next("chat.postMessage", 1, "not_in_channel");
        assert_eq!(
            f.take("chat.postMessage"),
            Some(Injected::RateLimited { retry_after: 1 })
        );
        assert_eq!(
            f.take("chat.postMessage"),
            Some(Injected::RateLimited { retry_after: 1 })
        );
        assert_eq!(
            f.take("chat.postMessage"),
            Some(Injected::Fail("not_in_channel".into()))
        );
        assert_eq!(f.take("chat.postMessage"), None);
        assert_eq!(f.take("auth.test"), None);
    }
}
