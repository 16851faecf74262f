//! The transport: the one request/retry path every Web API method goes through ([`call`]),
//! the Slack answer checked for `ok`, 429s retried with [`crate::retry::Backoff`] delays unless
//! Slack named a wait, and the raw file transfers (upload to the URL Slack handed out, private
//! file downloads) with redirects followed by hand so the token only goes to Slack's hosts.
//!
//! [`call`]: SlackClient::call

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{SlackClient, SlackError, error::api_error};
use crate::retry::Backoff;

/// Redirect hops followed for one file download.
const MAX_REDIRECTS: usize = 5;

/// Retries after rate limiting (HTTP 429 or `ok:false, error:ratelimited`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first wait when a 429 carries no `Retry-After` (the Python SDK waits this long);
    /// each further one doubles, with jitter, up to `max_retry_after`.
    pub default_retry_after: Duration,
    /// Upper bound for one wait, however long Slack asks for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            default_retry_after: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delays for 429s that name no wait.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.default_retry_after, self.max_retry_after)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Auth {
    /// The token the methods act with: the bot's, or a user's for a [`SlackClient::for_user`].
    Bot,
    App,
    /// None: the method authenticates otherwise (oauth.v2.access, with the client secret).
    None,
}

/// Form parameters of one call.
#[derive(Debug, Default)]
pub(super) struct Form(Vec<(&'static str, String)>);

impl Form {
    pub(super) fn new() -> Form {
        Form::default()
    }

    pub(super) fn set(mut self, k: &'static str, v: impl Into<String>) -> Form {
        self.0.push((k, v.into()));
        self
    }

    pub(super) fn opt(self, k: &'static str, v: Option<impl Into<String>>) -> Form {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
}

impl SlackClient {
    /// The one request path of every Web API method: pacing (the method's bucket, and the
    /// conversation's lane for chat.postMessage), the form POST with the token in the header,
    /// 429 retries, and the answer checked for `ok`.
    pub(super) async fn call(
        &self,
        method: &str,
        auth: Auth,
        form: Form,
        lane: Option<&str>,
    ) -> Result<(Value, HeaderMap), SlackError> {
        let inner = &self.inner;
        let _lane = inner.pacer.acquire(method, lane).await;
        let retry = &inner.options.retry;
        let backoff = retry.backoff();
        let mut delays = backoff.delays();
        // A 429 holds back every caller of the method, except for chat.postMessage, whose
        // limit is per conversation: one rate-limited channel must not stall the others.
        let block_key = match lane {
            Some(l) => format!("{method}:{l}"),
            None => method.to_string(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            inner.pacer.wait_unblocked(&block_key).await;
            if attempt > 1 && lane.is_none() {
                // A retry after a 429 takes a slot like any call: at a rate learned from
                // the 429, waiting retries go one by one instead of all at once.
                inner.pacer.acquire(method, None).await;
            }
            let token = match auth {
                Auth::Bot => Some(&inner.bot_token),
                Auth::App => Some(&inner.app_token),
                Auth::None => None,
            };
            let mut req = inner
                .http
                .post(format!("{}/{method}", inner.api_url))
                .timeout(inner.options.request_timeout);
            if let Some(token) = token {
                req = req.bearer_auth(token.expose());
            }
            if !form.0.is_empty() {
                req = req.form(&form.0);
            }
            tracing::debug!(method, attempt, "slack call");
            let resp = req.send().await.map_err(|e| SlackError::Http {
                method: method.to_string(),
                status: None,
                reason: e.without_url().to_string(),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| SlackError::Http {
                method: method.to_string(),
                status: Some(status.as_u16()),
                reason: e.without_url().to_string(),
            })?;
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            let code = json
                .as_ref()
                .filter(|j| j.get("ok").and_then(Value::as_bool) != Some(true))
                .and_then(|j| j.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let limited = status == StatusCode::TOO_MANY_REQUESTS
                || matches!(code.as_deref(), Some("ratelimited" | "rate_limited"));
            if limited {
                // Slack's Retry-After is when its window reopens: waited as asked, with no
                // jitter on top (a 1 s ask must not become the backoff's 30 s). A 429 that
                // names no wait backs off.
                let wait = retry_after(&headers)
                    .unwrap_or_else(|| backoff.wait(delays.next(), None))
                    .min(retry.max_retry_after);
                if attempt >= retry.max_attempts {
                    tracing::warn!(method, attempt, "slack rate limit: giving up");
                    return Err(SlackError::RateLimited {
                        method: method.to_string(),
                        attempts: attempt,
                        retry_after: wait,
                    });
                }
                tracing::warn!(
                    method,
                    attempt,
                    retry_after_ms = wait.as_millis() as u64,
                    "slack rate limit: waiting"
                );
                inner.pacer.block(&block_key, Instant::now() + wait);
                if lane.is_none()
                    && let Some(rate) = inner.pacer.limited(method, wait)
                {
                    tracing::warn!(
                        method,
                        interval_s = rate.interval.as_secs_f32(),
                        "Slack limits this method far below its tier (as it does conversations.history for apps outside the Marketplace): pacing it to what Slack allows"
                    );
                }
                continue;
            }
            let Some(json) = json else {
                return Err(if status.is_success() {
                    SlackError::Decode {
                        method: method.to_string(),
                        reason: format!("not json: {}", snippet(&body)),
                    }
                } else {
                    SlackError::Http {
                        method: method.to_string(),
                        status: Some(status.as_u16()),
                        reason: format!("HTTP {status}: {}", snippet(&body)),
                    }
                });
            };
            if let Some(code) = code {
                return Err(api_error(method, code, &json));
            }
            if json.get("ok").and_then(Value::as_bool) != Some(true) {
                return Err(SlackError::Decode {
                    method: method.to_string(),
                    reason: format!("no `ok` in {}", snippet(&body)),
                });
            }
            if lane.is_none() {
                inner.pacer.accepted(method);
            }
            if let Some(w) = json.pointer("/response_metadata/warnings") {
                tracing::debug!(method, warnings = %w, "slack warnings");
            }
            return Ok((json, headers));
        }
    }

    pub(super) async fn bot(&self, method: &str, form: Form) -> Result<Value, SlackError> {
        self.call(method, Auth::Bot, form, None)
            .await
            .map(|(v, _)| v)
    }

    /// Whether the bot token may be sent to `url`: the configured API host, or Slack's own
    /// hosts over https.
    pub(super) fn token_allowed(&self, url: &Url) -> bool {
        let api = &self.inner.api;
        let Some(host) = url.host_str() else {
            return false;
        };
        if url.scheme() == api.scheme()
            && Some(host) == api.host_str()
            && url.port_or_known_default() == api.port_or_known_default()
        {
            return true;
        }
        let host = host.to_ascii_lowercase();
        url.scheme() == "https"
            && ["slack.com", "slack-edge.com"]
                .iter()
                .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    }

    /// Step 2 of an upload: POST the raw bytes to the URL from step 1.
    pub async fn upload_to_url(&self, upload_url: &str, bytes: Vec<u8>) -> Result<(), SlackError> {
        let len = bytes.len() as u64;
        self.upload_stream_to_url(upload_url, reqwest::Body::from(bytes), len)
            .await
    }

    /// [`Self::upload_to_url`] from a body streamed as it is sent (`len` bytes), so a large
    /// file is never held whole in memory.
    pub async fn upload_stream_to_url(
        &self,
        upload_url: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<(), SlackError> {
        const METHOD: &str = "file upload";
        let url = Url::parse(upload_url).map_err(|e| SlackError::InvalidUrl {
            url: upload_url.to_string(),
            reason: e.to_string(),
        })?;
        let mut req = self
            .inner
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(self.inner.options.download_timeout)
            .body(body);
        if self.token_allowed(&url) {
            req = req.bearer_auth(self.inner.bot_token.expose());
        }
        let resp = req.send().await.map_err(|e| SlackError::Http {
            method: METHOD.into(),
            status: None,
            reason: e.to_string(),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(SlackError::Http {
            method: METHOD.into(),
            status: Some(status.as_u16()),
            reason: format!("HTTP {status}: {}", snippet(&body)),
        })
    }

    /// Downloads a private file (`url_private` / `url_private_download`). Slack's sign-in
    /// page instead of the file is [`SlackError::FileAuth`].
    pub async fn download_file(&self, url: &str) -> Result<Vec<u8>, SlackError> {
        self.download_file_expecting(url, None).await
    }

    /// Like [`Self::download_file`], but an HTML answer is accepted when the file itself is
    /// HTML (`mimetype` from the file object).
    pub async fn download_file_expecting(
        &self,
        url: &str,
        mimetype: Option<&str>,
    ) -> Result<Vec<u8>, SlackError> {
        let resp = self.download_response(url, mimetype).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SlackError::Http {
            method: "file download".into(),
            status: Some(status.as_u16()),
            reason: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    /// The answer to a file download, checked (redirects followed, the sign-in page
    /// recognised) but its body not yet read: the caller streams it.
    pub async fn download_response(
        &self,
        url: &str,
        mimetype: Option<&str>,
    ) -> Result<reqwest::Response, SlackError> {
        const METHOD: &str = "file download";
        let html_expected = mimetype.is_some_and(|m| m.starts_with("text/html"));
        let mut url = Url::parse(url).map_err(|e| SlackError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        for _ in 0..=MAX_REDIRECTS {
            let host = url.host_str().unwrap_or("").to_string();
            let mut req = self
                .inner
                .http
                .get(url.clone())
                .timeout(self.inner.options.download_timeout);
            let with_token = self.token_allowed(&url);
            if with_token {
                req = req.bearer_auth(self.inner.bot_token.expose());
            }
            tracing::debug!(host = %host, with_token, "file download");
            let resp = req.send().await.map_err(|e| SlackError::Http {
                method: METHOD.into(),
                status: None,
                reason: e.to_string(),
            })?;
            let status = resp.status();
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| SlackError::Http {
                        method: METHOD.into(),
                        status: Some(status.as_u16()),
                        reason: format!("HTTP {status} without a usable Location"),
                    })?;
                // Slack sends unauthenticated file requests to the workspace sign-in page
                // with `?redir=/files-pri/…`.
                if next.query_pairs().any(|(k, _)| k == "redir") {
                    return Err(SlackError::FileAuth { host });
                }
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(SlackError::Http {
                    method: METHOD.into(),
                    status: Some(status.as_u16()),
                    reason: format!("HTTP {status} from {host}"),
                });
            }
            let html = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/html"));
            if html && !html_expected {
                return Err(SlackError::FileAuth { host });
            }
            return Ok(resp);
        }
        Err(SlackError::Http {
            method: METHOD.into(),
            status: None,
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Secret;

    use super::*;

    #[test]
    fn token_only_to_slack_hosts() {
        let c = SlackClient::new(
            "http://127.0.0.1:5555/api/",
            Secret::new("xoxb-1"),
            Secret::new("xapp-1"),
        )
        .unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:5555/api");
        let ok = |u: &str| c.token_allowed(&Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:5555/files-pri/T-F/x.png"));
        assert!(!ok("http://127.0.0.1:5556/files-pri/T-F/x.png"));
        assert!(ok("https://files.slack.com/files-pri/T-F/x.png"));
        assert!(ok("https://acme.slack.com/?redir=x"));
        assert!(ok("https://avatars.slack-edge.com/a.png"));
        assert!(!ok("http://files.slack.com/x"));
        assert!(!ok("https://evilslack.com/x"));
        assert!(!ok("https://files.slack.com.evil.example/x"));
        assert!(!ok("https://example.com/x"));
        assert!(format!("{c:?}").contains("127.0.0.1") && !format!("{c:?}").contains("xoxb"));
        assert!(SlackClient::new("not a url", Secret::new(""), Secret::new("")).is_err());
    }

    #[test]
    fn retry_after_header() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
