//! Slack Web API client (slack-protocol.md §5), one job per file:
//! - `error`: [`SlackError`], whose messages name their fix;
//! - `pacing`: tier buckets, the per-channel FIFO lanes for chat.postMessage and the
//!   Retry-After block, so callers queue rather than fail;
//! - `transport`: the one request/retry path, 429 retries, redirects that keep the token on
//!   Slack's hosts, file uploads and downloads;
//! - `methods`: the typed Web API methods and cursor pagination.
//!
//! Their parameters and answers ([`PostMessage`], [`Page`], …) are plain data in
//! [`super::requests`], next to the wire types; they are re-exported here.
//!
//! Every method is sent as a form-encoded POST with the token in `Authorization: Bearer`:
//! Slack accepts forms everywhere, while JSON bodies are silently ignored by the methods that
//! do not support them (files.getUploadURLExternal among them).

mod error;
mod methods;
mod pacing;
mod transport;

use std::{fmt, sync::Arc, time::Duration};

use reqwest::redirect;
use url::Url;

pub use self::{
    error::SlackError,
    methods::paginate,
    pacing::{Pacing, Rate, Tier, method_tier},
    transport::RetryPolicy,
};
pub use super::requests::{
    Authed, AuthedUser, FileUpload, History, HistoryQuery, OAuthAccess, Page, PostMessage, Posted,
    UpdateMessage, UploadRequest, UploadUrl,
};
use crate::config::Secret;
use pacing::Pacer;

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
    /// The token the Web API methods send: the bot's, or a linked user's.
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

    /// Whether this client sends `token`.
    pub fn has_token(&self, token: &Secret) -> bool {
        self.inner.bot_token.expose() == token.expose()
    }

    /// Whether this client acts as a Slack user ([`Self::for_user`]) rather than the bot.
    pub fn is_user(&self) -> bool {
        self.inner.bot_token.expose().starts_with("xoxp-")
    }

    /// A client that acts as a Slack user (their `xoxp-…` token from `login-user`): every
    /// method sends that token, paced apart from the bot, as Slack limits user tokens per user.
    pub fn for_user(&self, token: Secret) -> SlackClient {
        let i = &self.inner;
        SlackClient {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                api_url: i.api_url.clone(),
                api: i.api.clone(),
                bot_token: token,
                app_token: Secret::new(""),
                pacer: Pacer::new(i.options.pacing.clone()),
                options: i.options.clone(),
            }),
        }
    }
}
