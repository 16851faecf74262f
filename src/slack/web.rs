//! Slack Web API client (slack-protocol.md §5): typed methods over reqwest, typed errors that
//! name their fix, `Retry-After` handling, pacing that queues rather than fails, cursor
//! pagination, the three-step file upload, and authenticated file downloads.
//!
//! Every method is sent as a form-encoded POST with the token in `Authorization: Bearer`:
//! Slack accepts forms everywhere, while JSON bodies are silently ignored by the methods that
//! do not support them (files.getUploadURLExternal among them).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use reqwest::{StatusCode, header::HeaderMap, redirect};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::{
    sync::OwnedMutexGuard,
    time::{Instant, sleep, sleep_until},
};
use url::Url;

use super::types::{AuthTest, Bot, Conversation, ConversationKind, EmojiMap, File, Message};
use super::types::{Team, User};
use crate::config::{Secret, SlackConfig};

/// Error codes after which a token will never work again; the login must be replaced.
const AUTH_DEAD: &[&str] = &[
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_authed",
    "team_disabled",
    "user_removed_from_team",
];

/// Guards against a server that keeps handing out cursors.
const MAX_PAGES: usize = 10_000;

/// Redirect hops followed for one file download.
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `{"ok":false,"error":…}`.
    #[error("slack {method} failed with `{error}`{}", hint(.error))]
    Api {
        method: String,
        error: String,
        needed: Option<String>,
        provided: Option<String>,
    },
    /// `missing_scope`: the app's grant lacks what the method needs.
    #[error(
        "slack {method} needs the `{needed}` scope, which the bot token lacks (granted: {}); add it under OAuth & Permissions in the slack app settings and reinstall the app to the workspace",
        granted(.provided)
    )]
    MissingScope {
        method: String,
        needed: String,
        provided: String,
    },
    /// Still rate limited after every retry.
    #[error(
        "slack {method} is still rate limited after {attempts} attempts (last retry-after {}s); the bridge is sending more than slack allows, try again later",
        .retry_after.as_secs()
    )]
    RateLimited {
        method: String,
        attempts: u32,
        retry_after: Duration,
    },
    /// The request did not get a usable HTTP answer (`status` is `None` when no answer came
    /// at all: connection refused, timeout, TLS failure).
    #[error("cannot reach slack for {method}: {reason}")]
    Http {
        method: String,
        status: Option<u16>,
        reason: String,
    },
    /// The answer was not the JSON the method documents.
    #[error("cannot read slack's answer to {method}: {reason}")]
    Decode { method: String, reason: String },
    /// A private file URL answered with Slack's sign-in page instead of the file.
    #[error(
        "downloading a file from {host} returned slack's sign-in page instead of the file: the bot token is invalid or lacks the `files:read` scope; add files:read under OAuth & Permissions, reinstall the app and log in again"
    )]
    FileAuth { host: String },
    #[error("invalid slack url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
}

fn hint(code: &str) -> &'static str {
    match code {
        c if AUTH_DEAD.contains(&c) => {
            "; the token is invalid, expired or revoked, or the app was uninstalled: reinstall the slack app and log in again with the new tokens"
        }
        "not_allowed_token_type" => {
            "; the wrong kind of token was used: the bot token starts with xoxb-, the app-level token with xapp-"
        }
        "missing_args" => "; a token or required argument is missing",
        "not_in_channel" => {
            "; invite the bot to the channel (or grant chat:write.public to post in public channels)"
        }
        "channel_not_found" => "; the conversation does not exist or the bot cannot see it",
        "is_archived" => "; the channel is archived; unarchive it in slack",
        "msg_too_long" | "msg_blocks_too_long" => "; the message is too long for slack",
        _ => "",
    }
}

fn granted(provided: &str) -> &str {
    if provided.is_empty() {
        "none"
    } else {
        provided
    }
}

impl SlackError {
    /// The Slack error code, when Slack sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { error, .. } => Some(error),
            SlackError::MissingScope { .. } => Some("missing_scope"),
            SlackError::RateLimited { .. } => Some("ratelimited"),
            _ => None,
        }
    }

    /// True when the token is dead for good (invalid, revoked, expired, uninstalled): retrying
    /// cannot help and the login has to be replaced.
    pub fn is_auth_dead(&self) -> bool {
        matches!(self, SlackError::Api { error, .. } if AUTH_DEAD.contains(&error.as_str()))
    }

    pub fn is_missing_scope(&self) -> bool {
        matches!(self, SlackError::MissingScope { .. })
    }

    /// The scope(s) Slack says are needed, comma-separated.
    pub fn needed_scope(&self) -> Option<&str> {
        match self {
            SlackError::MissingScope { needed, .. } => Some(needed),
            SlackError::Api { needed, .. } => needed.as_deref(),
            _ => None,
        }
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, SlackError::RateLimited { .. })
    }

    /// How long Slack last asked to wait, when the call gave up on a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same call may succeed later unchanged: network failures, server errors,
    /// Slack's transient error codes and exhausted rate limits. Not idempotent calls
    /// (chat.postMessage) may then have gone through; callers dedupe by their own records.
    pub fn is_retryable(&self) -> bool {
        match self {
            SlackError::Http { status, .. } => {
                status.is_none_or(|s| s >= 500 || s == 408 || s == 429)
            }
            SlackError::RateLimited { .. } => true,
            SlackError::Api { error, .. } => matches!(
                error.as_str(),
                "internal_error" | "fatal_error" | "request_timeout" | "service_unavailable"
            ),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pacing

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
struct Bucket {
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
struct Pacer {
    pacing: Pacing,
    methods: Mutex<HashMap<String, Bucket>>,
    /// One FIFO lane per conversation for chat.postMessage. The lane's async mutex is held
    /// for the whole call, retries included, so messages to one channel arrive in call order.
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Bucket>>>>,
    /// Per method: no request before this instant (a 429's Retry-After applies to every
    /// caller of the method, not just the one that got it).
    blocked_until: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    fn new(pacing: Pacing) -> Pacer {
        Pacer {
            pacing,
            methods: Mutex::default(),
            lanes: Mutex::default(),
            blocked_until: Mutex::default(),
        }
    }

    /// Waits for a slot for `method` (and for `lane`, when given). The returned guard keeps
    /// the lane until the call is done.
    async fn acquire(&self, method: &str, lane: Option<&str>) -> Option<OwnedMutexGuard<Bucket>> {
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

    async fn wait_unblocked(&self, method: &str) {
        let until = lock(&self.blocked_until).get(method).copied();
        if let Some(until) = until
            && until > Instant::now()
        {
            sleep_until(until).await;
        }
    }

    fn block(&self, method: &str, until: Instant) {
        let mut b = lock(&self.blocked_until);
        let e = b.entry(method.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// client

/// Retries after rate limiting.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Wait when a 429 carries no `Retry-After` (the Python SDK's default).
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

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub pacing: Pacing,
    pub retry: RetryPolicy,
    /// `limit` for the `*_all` pagination helpers (Slack recommends 100–200).
    pub page_size: u32,
    pub request_timeout: Duration,
    pub download_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pacing: Pacing::default(),
            retry: RetryPolicy::default(),
            page_size: 200,
            request_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(300),
        }
    }
}

/// auth.test plus the scopes granted to the bot token (from `x-oauth-scopes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authed {
    pub info: AuthTest,
    pub scopes: BTreeSet<String>,
}

impl Authed {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The scopes of `wanted` that were not granted.
    pub fn missing_scopes<'a>(&self, wanted: &[&'a str]) -> Vec<&'a str> {
        wanted
            .iter()
            .copied()
            .filter(|s| !self.scopes.contains(*s))
            .collect()
    }
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next_cursor: Option<String>,
}

/// conversations.history parameters.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub channel: String,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Only messages after this ts (or at it, with `inclusive`).
    pub oldest: Option<String>,
    /// Only messages before this ts (or at it, with `inclusive`).
    pub latest: Option<String>,
    pub inclusive: bool,
    /// Return each message's `metadata` (Slack leaves it out otherwise).
    pub include_all_metadata: bool,
}

/// A conversations.history page, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub messages: Vec<Message>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// chat.postMessage parameters. `username`/`icon_*` need chat:write.customize.
#[derive(Debug, Clone, Default)]
pub struct PostMessage {
    pub channel: String,
    /// mrkdwn; also the notification fallback when `blocks` are given.
    pub text: String,
    pub blocks: Option<Value>,
    /// The thread root's ts (not a reply's).
    pub thread_ts: Option<String>,
    pub reply_broadcast: bool,
    pub username: Option<String>,
    pub icon_url: Option<String>,
    pub icon_emoji: Option<String>,
    pub unfurl_links: Option<bool>,
    pub unfurl_media: Option<bool>,
    pub metadata: Option<Value>,
}

impl PostMessage {
    pub fn new(channel: impl Into<String>, text: impl Into<String>) -> PostMessage {
        PostMessage {
            channel: channel.into(),
            text: text.into(),
            ..Default::default()
        }
    }
}

/// chat.update parameters.
#[derive(Debug, Clone, Default)]
pub struct UpdateMessage {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Option<Value>,
}

/// The answer of chat.postMessage / chat.update.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub message: Option<Message>,
}

/// files.getUploadURLExternal's answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UploadUrl {
    pub upload_url: String,
    pub file_id: String,
}

/// One entry of files.completeUploadExternal's `files`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileUpload {
    pub id: String,
    pub title: Option<String>,
}

/// Everything for a whole upload: the bytes and where to share them.
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    pub filename: String,
    pub title: Option<String>,
    pub bytes: Vec<u8>,
    /// Without a channel the file stays private to the bot.
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    pub initial_comment: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Auth {
    Bot,
    App,
}

/// Form parameters of one call.
#[derive(Debug, Default)]
struct Form(Vec<(&'static str, String)>);

impl Form {
    fn new() -> Form {
        Form::default()
    }

    fn set(mut self, k: &'static str, v: impl Into<String>) -> Form {
        self.0.push((k, v.into()));
        self
    }

    fn opt(self, k: &'static str, v: Option<impl Into<String>>) -> Form {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
}

/// A Slack Web API client for one workspace login. Cheap to clone; clones share pacing.
#[derive(Clone)]
pub struct SlackClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash.
    api_url: String,
    api: Url,
    bot_token: Secret,
    app_token: Secret,
    options: ClientOptions,
    pacer: Pacer,
}

impl fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackClient")
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

impl SlackClient {
    /// A client with default pacing and retries. `api_url` is `https://slack.com/api` or the
    /// emulator's `api_url()`.
    pub fn new(api_url: &str, bot_token: Secret, app_token: Secret) -> Result<Self, SlackError> {
        Self::with_options(api_url, bot_token, app_token, ClientOptions::default())
    }

    /// A client for `slack.api_url` of the config.
    pub fn from_config(
        config: &SlackConfig,
        bot_token: Secret,
        app_token: Secret,
    ) -> Result<Self, SlackError> {
        Self::new(&config.api_url, bot_token, app_token)
    }

    pub fn with_options(
        api_url: &str,
        bot_token: Secret,
        app_token: Secret,
        options: ClientOptions,
    ) -> Result<Self, SlackError> {
        let trimmed = api_url.trim_end_matches('/');
        let api = Url::parse(trimmed).map_err(|e| SlackError::InvalidUrl {
            url: api_url.to_string(),
            reason: e.to_string(),
        })?;
        if api.host_str().is_none() || !matches!(api.scheme(), "http" | "https") {
            return Err(SlackError::InvalidUrl {
                url: api_url.to_string(),
                reason: "expected an http(s) url such as https://slack.com/api".into(),
            });
        }
        // Redirects are followed by hand so the token only ever goes to Slack's own hosts.
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("slack-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SlackError::Http {
                method: "client setup".into(),
                status: None,
                reason: e.to_string(),
            })?;
        Ok(SlackClient {
            inner: Arc::new(Inner {
                http,
                api_url: trimmed.to_string(),
                api,
                bot_token,
                app_token,
                pacer: Pacer::new(options.pacing.clone()),
                options,
            }),
        })
    }

    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    // ---- transport ----

    async fn call(
        &self,
        method: &str,
        auth: Auth,
        form: Form,
        lane: Option<&str>,
    ) -> Result<(Value, HeaderMap), SlackError> {
        let inner = &self.inner;
        let _lane = inner.pacer.acquire(method, lane).await;
        let retry = &inner.options.retry;
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
            let token = match auth {
                Auth::Bot => &inner.bot_token,
                Auth::App => &inner.app_token,
            };
            let mut req = inner
                .http
                .post(format!("{}/{method}", inner.api_url))
                .bearer_auth(token.expose())
                .timeout(inner.options.request_timeout);
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
                let wait = retry_after(&headers)
                    .unwrap_or(retry.default_retry_after)
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
            if let Some(w) = json.pointer("/response_metadata/warnings") {
                tracing::debug!(method, warnings = %w, "slack warnings");
            }
            return Ok((json, headers));
        }
    }

    async fn bot(&self, method: &str, form: Form) -> Result<Value, SlackError> {
        self.call(method, Auth::Bot, form, None)
            .await
            .map(|(v, _)| v)
    }

    /// Whether the bot token may be sent to `url`: the configured API host, or Slack's own
    /// hosts over https.
    fn token_allowed(&self, url: &Url) -> bool {
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

    // ---- methods ----

    /// auth.test, plus the bot token's granted scopes from the `x-oauth-scopes` header.
    pub async fn auth_test(&self) -> Result<Authed, SlackError> {
        let (mut v, headers) = self.call("auth.test", Auth::Bot, Form::new(), None).await?;
        let info: AuthTest = decode("auth.test", v.take())?;
        let scopes = headers
            .get("x-oauth-scopes")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Authed { info, scopes })
    }

    pub async fn team_info(&self) -> Result<Team, SlackError> {
        let v = self.bot("team.info", Form::new()).await?;
        field("team.info", v, "team")
    }

    /// One page of conversations.list of the given kinds (all kinds when empty).
    pub async fn conversations_list(
        &self,
        types: &[ConversationKind],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Conversation>, SlackError> {
        let types = if types.is_empty() {
            &ConversationKind::ALL[..]
        } else {
            types
        };
        let types: Vec<&str> = types.iter().map(|k| k.list_type()).collect();
        let form = Form::new()
            .set("types", types.join(","))
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("conversations.list", form).await?;
        page("conversations.list", v, "channels")
    }

    pub async fn conversations_list_all(
        &self,
        types: &[ConversationKind],
    ) -> Result<Vec<Conversation>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move {
            self.conversations_list(types, cursor.as_deref(), limit)
                .await
        })
        .await
    }

    /// conversations.info, with `num_members`.
    pub async fn conversations_info(&self, channel: &str) -> Result<Conversation, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("include_num_members", "true");
        let v = self.bot("conversations.info", form).await?;
        field("conversations.info", v, "channel")
    }

    pub async fn conversations_members(
        &self,
        channel: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<String>, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("conversations.members", form).await?;
        page("conversations.members", v, "members")
    }

    pub async fn conversations_members_all(
        &self,
        channel: &str,
    ) -> Result<Vec<String>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move {
            self.conversations_members(channel, cursor.as_deref(), limit)
                .await
        })
        .await
    }

    /// One page of conversations.history, newest first.
    pub async fn conversations_history(&self, q: &HistoryQuery) -> Result<History, SlackError> {
        let form = Form::new()
            .set("channel", q.channel.as_str())
            .opt("cursor", q.cursor.as_deref())
            .opt("limit", q.limit.map(|l| l.to_string()))
            .opt("oldest", q.oldest.as_deref())
            .opt("latest", q.latest.as_deref())
            .opt("inclusive", q.inclusive.then_some("true"))
            .opt(
                "include_all_metadata",
                q.include_all_metadata.then_some("true"),
            );
        let v = self.bot("conversations.history", form).await?;
        let has_more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let Page { items, next_cursor } = page("conversations.history", v, "messages")?;
        Ok(History {
            messages: items,
            has_more,
            next_cursor,
        })
    }

    /// One page of a thread: the root first (on every page), then replies oldest first.
    pub async fn conversations_replies(
        &self,
        channel: &str,
        ts: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Message>, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("ts", ts)
            .opt("cursor", cursor)
            .opt("limit", limit.map(|l| l.to_string()));
        let v = self.bot("conversations.replies", form).await?;
        page("conversations.replies", v, "messages")
    }

    /// Joins a public channel (channels:join). Joining again is not an error.
    pub async fn conversations_join(&self, channel: &str) -> Result<Conversation, SlackError> {
        let v = self
            .bot("conversations.join", Form::new().set("channel", channel))
            .await?;
        field("conversations.join", v, "channel")
    }

    pub async fn users_info(&self, user: &str) -> Result<User, SlackError> {
        let v = self
            .bot("users.info", Form::new().set("user", user))
            .await?;
        field("users.info", v, "user")
    }

    pub async fn users_list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<User>, SlackError> {
        let form = Form::new()
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("users.list", form).await?;
        page("users.list", v, "members")
    }

    pub async fn users_list_all(&self) -> Result<Vec<User>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move { self.users_list(cursor.as_deref(), limit).await }).await
    }

    /// bots.info; gives the `app_id` of a `bot_id` when auth.test does not.
    pub async fn bots_info(&self, bot: &str) -> Result<Bot, SlackError> {
        let v = self.bot("bots.info", Form::new().set("bot", bot)).await?;
        field("bots.info", v, "bot")
    }

    /// chat.postMessage. Calls for one channel are paced and sent in call order.
    pub async fn chat_post_message(&self, msg: &PostMessage) -> Result<Posted, SlackError> {
        let form = Form::new()
            .set("channel", msg.channel.as_str())
            .set("text", msg.text.as_str())
            .opt("blocks", msg.blocks.as_ref().map(Value::to_string))
            .opt("thread_ts", msg.thread_ts.as_deref())
            .opt(
                "reply_broadcast",
                (msg.reply_broadcast && msg.thread_ts.is_some()).then_some("true"),
            )
            .opt("username", msg.username.as_deref())
            .opt("icon_url", msg.icon_url.as_deref())
            .opt("icon_emoji", msg.icon_emoji.as_deref())
            .opt("unfurl_links", msg.unfurl_links.map(|b| b.to_string()))
            .opt("unfurl_media", msg.unfurl_media.map(|b| b.to_string()))
            .opt("metadata", msg.metadata.as_ref().map(Value::to_string));
        let (v, _) = self
            .call(
                "chat.postMessage",
                Auth::Bot,
                form,
                Some(msg.channel.as_str()),
            )
            .await?;
        decode("chat.postMessage", v)
    }

    pub async fn chat_update(&self, msg: &UpdateMessage) -> Result<Posted, SlackError> {
        let form = Form::new()
            .set("channel", msg.channel.as_str())
            .set("ts", msg.ts.as_str())
            .set("text", msg.text.as_str())
            .opt("blocks", msg.blocks.as_ref().map(Value::to_string));
        let v = self.bot("chat.update", form).await?;
        decode("chat.update", v)
    }

    pub async fn chat_delete(&self, channel: &str, ts: &str) -> Result<(), SlackError> {
        let form = Form::new().set("channel", channel).set("ts", ts);
        self.bot("chat.delete", form).await.map(drop)
    }

    /// reactions.add; `name` without colons (they are stripped if present).
    pub async fn reactions_add(
        &self,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), SlackError> {
        self.reaction("reactions.add", channel, ts, name).await
    }

    pub async fn reactions_remove(
        &self,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), SlackError> {
        self.reaction("reactions.remove", channel, ts, name).await
    }

    async fn reaction(
        &self,
        method: &str,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("timestamp", ts)
            .set("name", name.trim_matches(':'));
        self.bot(method, form).await.map(drop)
    }

    /// Step 1 of an upload: reserve a file ID and an upload URL for `length` bytes.
    pub async fn files_get_upload_url_external(
        &self,
        filename: &str,
        length: u64,
    ) -> Result<UploadUrl, SlackError> {
        let form = Form::new()
            .set("filename", filename)
            .set("length", length.to_string());
        let v = self.bot("files.getUploadURLExternal", form).await?;
        decode("files.getUploadURLExternal", v)
    }

    /// Step 2 of an upload: POST the raw bytes to the URL from step 1.
    pub async fn upload_to_url(&self, upload_url: &str, bytes: Vec<u8>) -> Result<(), SlackError> {
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
            .timeout(self.inner.options.download_timeout)
            .body(bytes);
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

    /// Step 3 of an upload: finish it and share the files into `channel_id` (they stay
    /// private without one). Slack shares asynchronously; the `file_share` message follows.
    pub async fn files_complete_upload_external(
        &self,
        files: &[FileUpload],
        channel_id: Option<&str>,
        thread_ts: Option<&str>,
        initial_comment: Option<&str>,
    ) -> Result<Vec<File>, SlackError> {
        let files: Vec<Value> = files
            .iter()
            .map(|f| {
                let mut o = serde_json::json!({"id": f.id});
                if let Some(t) = &f.title {
                    o["title"] = Value::String(t.clone());
                }
                o
            })
            .collect();
        let form = Form::new()
            .set("files", Value::Array(files).to_string())
            .opt("channel_id", channel_id)
            .opt("thread_ts", thread_ts)
            .opt("initial_comment", initial_comment);
        let v = self.bot("files.completeUploadExternal", form).await?;
        list("files.completeUploadExternal", v, "files")
    }

    /// The whole upload flow for one file; returns the completed file object.
    pub async fn upload_file(&self, req: UploadRequest) -> Result<File, SlackError> {
        let target = self
            .files_get_upload_url_external(&req.filename, req.bytes.len() as u64)
            .await?;
        self.upload_to_url(&target.upload_url, req.bytes).await?;
        let files = self
            .files_complete_upload_external(
                &[FileUpload {
                    id: target.file_id.clone(),
                    title: req.title,
                }],
                req.channel_id.as_deref(),
                req.thread_ts.as_deref(),
                req.initial_comment.as_deref(),
            )
            .await?;
        files
            .into_iter()
            .find(|f| f.id == target.file_id)
            .ok_or_else(|| SlackError::Decode {
                method: "files.completeUploadExternal".into(),
                reason: format!("the answer does not list file {}", target.file_id),
            })
    }

    pub async fn files_info(&self, file: &str) -> Result<File, SlackError> {
        let v = self
            .bot("files.info", Form::new().set("file", file))
            .await?;
        field("files.info", v, "file")
    }

    /// Custom emoji: name → image URL or `alias:<name>`.
    pub async fn emoji_list(&self) -> Result<EmojiMap, SlackError> {
        let v = self.bot("emoji.list", Form::new()).await?;
        field("emoji.list", v, "emoji")
    }

    /// A fresh, single-use Socket Mode URL. Uses the app-level token, in the header only.
    pub async fn apps_connections_open(&self) -> Result<String, SlackError> {
        let (v, _) = self
            .call("apps.connections.open", Auth::App, Form::new(), None)
            .await?;
        field("apps.connections.open", v, "url")
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
            let bytes = resp.bytes().await.map_err(|e| SlackError::Http {
                method: METHOD.into(),
                status: Some(status.as_u16()),
                reason: e.to_string(),
            })?;
            return Ok(bytes.to_vec());
        }
        Err(SlackError::Http {
            method: METHOD.into(),
            status: None,
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Follows `next_cursor` until it is empty, collecting every item. Empty pages that still
/// carry a cursor are normal (Slack filters after paging) and are followed.
pub async fn paginate<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, SlackError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, SlackError>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = fetch(cursor.take()).await?;
        out.extend(page.items);
        match page.next_cursor.filter(|c| !c.is_empty()) {
            None => return Ok(out),
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(SlackError::Decode {
                        method: "pagination".into(),
                        reason: "slack repeated a cursor; stopping to avoid a loop".into(),
                    });
                }
                cursor = Some(next);
            }
        }
    }
    Err(SlackError::Decode {
        method: "pagination".into(),
        reason: format!("more than {MAX_PAGES} pages"),
    })
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

fn api_error(method: &str, code: String, json: &Value) -> SlackError {
    let s = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    if code == "missing_scope" {
        return SlackError::MissingScope {
            method: method.to_string(),
            needed: s("needed").unwrap_or_else(|| "(not named by slack)".into()),
            provided: s("provided").unwrap_or_default(),
        };
    }
    SlackError::Api {
        method: method.to_string(),
        error: code,
        needed: s("needed"),
        provided: s("provided"),
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn decode<T: DeserializeOwned>(method: &str, v: Value) -> Result<T, SlackError> {
    serde_json::from_value(v).map_err(|e| SlackError::Decode {
        method: method.to_string(),
        reason: e.to_string(),
    })
}

/// A required top-level field of the answer.
fn field<T: DeserializeOwned>(method: &str, mut v: Value, name: &str) -> Result<T, SlackError> {
    match v.get_mut(name).map(Value::take) {
        None | Some(Value::Null) => Err(SlackError::Decode {
            method: method.to_string(),
            reason: format!("no `{name}` in the answer"),
        }),
        Some(f) => decode(method, f),
    }
}

/// A list field; absent or null reads as empty.
fn list<T: DeserializeOwned>(method: &str, mut v: Value, name: &str) -> Result<Vec<T>, SlackError> {
    match v.get_mut(name).map(Value::take) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(f) => decode(method, f),
    }
}

fn page<T: DeserializeOwned>(method: &str, v: Value, name: &str) -> Result<Page<T>, SlackError> {
    let next_cursor = v
        .pointer("/response_metadata/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Page {
        items: list(method, v, name)?,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_their_fix() {
        let e = api_error(
            "chat.postMessage",
            "missing_scope".into(),
            &json!({"ok":false,"error":"missing_scope","needed":"chat:write","provided":"commands"}),
        );
        let msg = e.to_string();
        assert!(msg.contains("`chat:write`"), "{msg}");
        assert!(msg.contains("reinstall"), "{msg}");
        assert!(e.is_missing_scope());
        assert_eq!(e.needed_scope(), Some("chat:write"));
        assert!(!e.is_auth_dead());

        for code in AUTH_DEAD {
            let e = api_error("auth.test", code.to_string(), &json!({}));
            assert!(e.is_auth_dead(), "{code}");
            assert!(e.to_string().contains("log in again"), "{e}");
        }
        let e = api_error("chat.postMessage", "not_in_channel".into(), &json!({}));
        assert!(!e.is_auth_dead());
        assert_eq!(e.code(), Some("not_in_channel"));
        assert!(e.to_string().contains("invite the bot"));
        assert!(
            SlackError::FileAuth { host: "x".into() }
                .to_string()
                .contains("files:read")
        );
    }

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

    #[tokio::test]
    async fn paginate_follows_cursors_through_empty_pages() {
        let pages = [
            (vec![1, 2], Some("a")),
            (vec![], Some("b")),
            (vec![3], Some("")),
        ];
        let calls = Mutex::new(Vec::new());
        let all = paginate(|cursor| {
            calls.lock().unwrap().push(cursor.clone());
            let i = calls.lock().unwrap().len() - 1;
            let (items, next) = pages[i].clone();
            async move {
                Ok(Page {
                    items,
                    next_cursor: next.map(str::to_string),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(
            *calls.lock().unwrap(),
            [None, Some("a".to_string()), Some("b".to_string())]
        );

        let looping = paginate(|_| async {
            Ok(Page::<u8> {
                items: vec![],
                next_cursor: Some("same".into()),
            })
        })
        .await;
        assert!(matches!(looping, Err(SlackError::Decode { .. })));
    }

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
