//! The homeserver client: client-server API calls as the bridge bot or, by `user_id`
//! masquerading, as a ghost. Requests and responses are ruma's endpoint types; this file adds
//! the transport (reqwest), the as_token, bounded retries, and errors that keep the errcode.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    sync::{Mutex, RwLock},
    time::Duration,
};

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedMxcUri, OwnedRoomId, OwnedServerName,
    OwnedTransactionId, OwnedUserId, RoomId, UserId,
    api::{
        IncomingResponseExt, OutgoingRequestAppserviceExt, SupportedVersions,
        auth_scheme::{AuthScheme, SendAccessToken},
        client::{
            account::{
                register::{self, LoginType},
                whoami,
            },
            appservice::request_ping,
            authenticated_media::{get_content, get_media_config},
            media::create_content,
            membership::{
                invite_user::{self, v3::InvitationRecipient},
                join_room_by_id, kick_user, leave_room,
            },
            message::send_message_event,
            profile::set_profile_field,
            redact::redact_event,
            room::{create_room, get_room_event},
            state::{get_state_event_for_key, send_state_event},
        },
        path_builder::VersionHistory,
    },
    events::{MessageLikeEventContent, StateEventContent},
    profile::ProfileFieldValue,
};
use serde::Deserialize;

use crate::config::Secret;

/// How long one media transfer may take, body included.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The spec versions assumed until `/versions` has been read.
const DEFAULT_VERSIONS: &[&str] = &[
    "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
];

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The homeserver answered with a Matrix error.
    #[error("homeserver answered HTTP {status} {errcode}: {error}")]
    Api {
        status: u16,
        errcode: String,
        error: String,
        retry_after_ms: Option<u64>,
    },
    #[error("cannot reach the homeserver at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("cannot build the request: {0}")]
    Build(String),
    #[error("unexpected response from the homeserver: {0}")]
    Response(String),
}

impl MatrixError {
    /// The Matrix errcode, when the homeserver sent one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Api { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// The wait before retrying after this error, when it is worth retrying (429, 502-504,
    /// no connection): what the homeserver asked for (`retry_after_ms` or `Retry-After`), or
    /// the backoff's `next` delay when that is longer. An ask longer than `max_delay` is not
    /// slept through inside one request: the error, with its ask, goes back to the caller,
    /// whose queue waits it out.
    fn retry_delay(&self, next: Option<Duration>, policy: &RetryPolicy) -> Option<Duration> {
        let asked = match self {
            Self::Api {
                status: 429 | 502..=504,
                retry_after_ms,
                ..
            } => retry_after_ms.map(Duration::from_millis),
            Self::Unreachable { .. } => None,
            _ => return None,
        };
        if asked.is_some_and(|a| a > policy.max_delay) {
            return None;
        }
        Some(policy.backoff().wait(next, asked))
    }

    /// Fills `retry_after_ms` from a `Retry-After` header (seconds) when the body named no
    /// wait: proxies and some homeservers send only the header.
    fn with_retry_after(mut self, headers: &reqwest::header::HeaderMap) -> Self {
        if let Self::Api { retry_after_ms, .. } = &mut self
            && retry_after_ms.is_none()
        {
            *retry_after_ms = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| secs.saturating_mul(1000));
        }
        self
    }
}

/// How often and how long a request is retried on 429, 502-504 and connection errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff delay (before jitter); each further one doubles.
    pub base_delay: Duration,
    /// No backoff delay is longer (before jitter), and no longer wait the homeserver asks
    /// for is slept through in here.
    pub max_delay: Duration,
}

impl RetryPolicy {
    fn backoff(&self) -> crate::retry::Backoff {
        crate::retry::Backoff::new(self.base_delay, self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
    retry_after_ms: Option<u64>,
}

/// A client for one homeserver, authenticated with the appservice's as_token.
pub struct MatrixClient {
    http: reqwest::Client,
    base: String,
    as_token: Secret,
    appservice_id: String,
    bot: OwnedUserId,
    versions: RwLock<SupportedVersions>,
    registered: Mutex<HashSet<OwnedUserId>>,
    retry: RetryPolicy,
    /// The upload limit and when it was read.
    upload_limit: Mutex<Option<(std::time::Instant, u64)>>,
}

impl std::fmt::Debug for MatrixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixClient")
            .field("base", &self.base)
            .field("bot", &self.bot)
            .finish_non_exhaustive()
    }
}

impl MatrixClient {
    pub fn new(base: &str, as_token: Secret, appservice_id: &str, bot: OwnedUserId) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("slack-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings");
        let versions: Vec<String> = DEFAULT_VERSIONS.iter().map(|v| (*v).to_owned()).collect();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            as_token,
            appservice_id: appservice_id.to_owned(),
            bot,
            versions: RwLock::new(SupportedVersions::from_parts(&versions, &BTreeMap::new())),
            registered: Mutex::new(HashSet::new()),
            retry: RetryPolicy::default(),
            upload_limit: Mutex::new(None),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn bot(&self) -> &UserId {
        &self.bot
    }

    /// `GET /_matrix/client/versions`, remembering the answer for choosing endpoint paths.
    pub async fn load_versions(&self) -> Result<Vec<String>, MatrixError> {
        #[derive(Deserialize)]
        struct Versions {
            versions: Vec<String>,
            #[serde(default)]
            unstable_features: BTreeMap<String, bool>,
        }
        let url = format!("{}/_matrix/client/versions", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        let v: Versions = serde_json::from_slice(&body).map_err(|e| {
            MatrixError::Response(format!("{url} did not answer with Matrix versions: {e}"))
        })?;
        *self.versions.write().expect("versions lock") =
            SupportedVersions::from_parts(&v.versions, &v.unstable_features);
        Ok(v.versions)
    }

    /// Sends a ruma request, as `as_user` when given (appservice identity assertion), with
    /// retries on rate limits, gateway errors and connection failures.
    pub async fn send<R>(
        &self,
        request: R,
        as_user: Option<&UserId>,
    ) -> Result<R::IncomingResponse, MatrixError>
    where
        R: OutgoingRequestAppserviceExt<PathBuilder = VersionHistory>,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let identity = match as_user {
            Some(u) => ruma::api::AppserviceUserIdentity::new(u),
            None => ruma::api::AppserviceUserIdentity::default(),
        };
        let versions = self.versions.read().expect("versions lock").clone();
        let http_req: http::Request<Vec<u8>> = request
            .try_into_http_request_with_identity(
                &self.base,
                SendAccessToken::Always(self.as_token.expose()),
                identity,
                Cow::Owned(versions),
            )
            .map_err(|e| MatrixError::Build(e.to_string()))?;
        let response = self.execute(&http_req).await?;
        let (parts, body) = response.into_parts();
        R::IncomingResponse::try_from_http_response(http::Response::from_parts(
            parts,
            body.as_slice(),
        ))
        .map_err(|e| MatrixError::Response(e.to_string()))
    }

    async fn execute(
        &self,
        req: &http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, MatrixError> {
        let url = req.uri().to_string();
        let mut attempt = 0;
        let mut delays = self.retry.backoff().delays();
        loop {
            let result = self.execute_once(req, &url).await;
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            attempt += 1;
            match err.retry_delay(delays.next(), &self.retry) {
                Some(delay) if attempt < self.retry.attempts => {
                    tracing::warn!(
                        method = %req.method(),
                        path = req.uri().path(),
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %err,
                        "homeserver request failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(err),
            }
        }
    }

    async fn execute_once(
        &self,
        req: &http::Request<Vec<u8>>,
        url: &str,
    ) -> Result<http::Response<Vec<u8>>, MatrixError> {
        let mut builder = self
            .http
            .request(req.method().clone(), url)
            .body(req.body().clone());
        for (name, value) in req.headers() {
            builder = builder.header(name, value);
        }
        let resp = builder.send().await.map_err(|e| unreachable(url, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| unreachable(url, &e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body).with_retry_after(&headers));
        }
        let mut out = http::Response::builder().status(status);
        for (name, value) in &headers {
            out = out.header(name, value);
        }
        out.body(body.to_vec())
            .map_err(|e| MatrixError::Response(e.to_string()))
    }

    /// The user the as_token (or `as_user`) acts as.
    pub async fn whoami(&self, as_user: Option<&UserId>) -> Result<OwnedUserId, MatrixError> {
        Ok(self
            .send(whoami::v3::Request::new(), as_user)
            .await?
            .user_id)
    }

    /// `POST /_matrix/client/v1/appservice/{id}/ping`: asks the homeserver to call us back.
    pub async fn ping(&self, txn_id: &str) -> Result<Duration, MatrixError> {
        let mut req = request_ping::v1::Request::new(self.appservice_id.clone());
        req.transaction_id = Some(txn_id.into());
        Ok(self.send(req, None).await?.duration)
    }

    /// Registers `user_id` (a ghost, or the bot at start) unless this process registered it
    /// before; an existing user (`M_USER_IN_USE`) counts as success.
    pub async fn ensure_registered(&self, user_id: &UserId) -> Result<(), MatrixError> {
        if self.registered.lock().expect("lock").contains(user_id) {
            return Ok(());
        }
        let mut req = register::v3::Request::new();
        req.username = Some(user_id.localpart().to_owned());
        req.inhibit_login = true;
        req.login_type = Some(LoginType::ApplicationService);
        match self.send(req, None).await {
            Ok(_) => {}
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => {}
            Err(e) => return Err(e),
        }
        self.registered
            .lock()
            .expect("lock")
            .insert(user_id.to_owned());
        Ok(())
    }

    pub async fn set_display_name(&self, user_id: &UserId, name: &str) -> Result<(), MatrixError> {
        let req = set_profile_field::v3::Request::new(
            user_id.to_owned(),
            ProfileFieldValue::DisplayName(name.to_owned()),
        );
        self.send(req, Some(user_id)).await.map(|_| ())
    }

    pub async fn set_avatar_url(
        &self,
        user_id: &UserId,
        mxc: OwnedMxcUri,
    ) -> Result<(), MatrixError> {
        let req = set_profile_field::v3::Request::new(
            user_id.to_owned(),
            ProfileFieldValue::AvatarUrl(mxc),
        );
        self.send(req, Some(user_id)).await.map(|_| ())
    }

    /// Creates a room with the server's default room version. Room IDs are opaque: v12 IDs
    /// carry no server name.
    pub async fn create_room(
        &self,
        as_user: Option<&UserId>,
        request: create_room::v3::Request,
    ) -> Result<OwnedRoomId, MatrixError> {
        Ok(self.send(request, as_user).await?.room_id)
    }

    /// The room an alias points to, None when the alias does not exist.
    pub async fn resolve_alias(
        &self,
        alias: &ruma::RoomAliasId,
    ) -> Result<Option<OwnedRoomId>, MatrixError> {
        let req = ruma::api::client::alias::get_alias::v3::Request::new(alias.to_owned());
        match self.send(req, None).await {
            Ok(r) => Ok(Some(r.room_id)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn invite(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<(), MatrixError> {
        let req = invite_user::v3::Request::new(
            room_id.to_owned(),
            InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(user_id.to_owned())),
        );
        self.send(req, as_user).await.map(|_| ())
    }

    pub async fn join(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
    ) -> Result<(), MatrixError> {
        self.send(
            join_room_by_id::v3::Request::new(room_id.to_owned()),
            as_user,
        )
        .await
        .map(|_| ())
    }

    pub async fn leave(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
    ) -> Result<(), MatrixError> {
        self.send(leave_room::v3::Request::new(room_id.to_owned()), as_user)
            .await
            .map(|_| ())
    }

    pub async fn kick(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        user_id: &UserId,
        reason: Option<&str>,
    ) -> Result<(), MatrixError> {
        let mut req = kick_user::v3::Request::new(room_id.to_owned(), user_id.to_owned());
        req.reason = reason.map(str::to_owned);
        self.send(req, as_user).await.map(|_| ())
    }

    /// Sends a message-like event. `txn_id` must be unique across the whole appservice:
    /// Synapse deduplicates per (path, appservice), not per masqueraded user. `ts` sets the
    /// event's `origin_server_ts` (timestamp massaging), in milliseconds.
    pub async fn send_message<C: MessageLikeEventContent>(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        txn_id: &str,
        content: &C,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<OwnedEventId, MatrixError> {
        let mut req = send_message_event::v3::Request::new(
            room_id.to_owned(),
            OwnedTransactionId::from(txn_id),
            content,
        )
        .map_err(|e| MatrixError::Build(e.to_string()))?;
        req.timestamp = ts;
        Ok(self.send(req, as_user).await?.event_id)
    }

    /// A state event's content as JSON; None when the room has no such state.
    pub async fn state_json(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<serde_json::Value>, MatrixError> {
        let req = ruma::api::client::state::get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            event_type.into(),
            state_key.to_owned(),
        );
        match self.send(req, None).await {
            Ok(r) => serde_json::from_str(r.event_or_content.get())
                .map(Some)
                .map_err(|e| MatrixError::Build(format!("{event_type} state: {e}"))),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets a state event from JSON content, as the bot.
    pub async fn put_state_json(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &serde_json::Value,
    ) -> Result<OwnedEventId, MatrixError> {
        let body = ruma::serde::Raw::new(content)
            .map_err(|e| MatrixError::Build(e.to_string()))?
            .cast_unchecked();
        let req = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            event_type.into(),
            state_key.to_owned(),
            body,
        );
        Ok(self.send(req, None).await?.event_id)
    }

    /// A state event's typed content; None when the room has no such state.
    pub async fn state<C>(
        &self,
        room_id: &RoomId,
        state_key: &str,
    ) -> Result<Option<C>, MatrixError>
    where
        C: ruma::events::StaticEventContent + serde::de::DeserializeOwned,
    {
        self.state_json(room_id, C::TYPE, state_key)
            .await?
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| MatrixError::Build(format!("{} state: {e}", C::TYPE)))
            })
            .transpose()
    }

    /// Sets a state event from typed content, as the bot.
    pub async fn put_state<C>(
        &self,
        room_id: &RoomId,
        state_key: &str,
        content: &C,
    ) -> Result<OwnedEventId, MatrixError>
    where
        C: ruma::events::StaticEventContent + serde::Serialize,
    {
        let json = serde_json::to_value(content).map_err(|e| MatrixError::Build(e.to_string()))?;
        self.put_state_json(room_id, C::TYPE, state_key, &json)
            .await
    }

    /// Sends a message-like event given as JSON (for fields ruma's types do not carry, like
    /// `com.beeper.reaction.shortcode`).
    pub async fn send_raw(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        txn_id: &str,
        event_type: &str,
        content: &serde_json::Value,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<OwnedEventId, MatrixError> {
        let body = ruma::serde::Raw::new(content)
            .map_err(|e| MatrixError::Build(e.to_string()))?
            .cast_unchecked();
        let mut req = send_message_event::v3::Request::new_raw(
            room_id.to_owned(),
            OwnedTransactionId::from(txn_id),
            event_type.into(),
            body,
        );
        req.timestamp = ts;
        Ok(self.send(req, as_user).await?.event_id)
    }

    /// Sends a reaction; `None` when this user already reacted with the same key
    /// (`M_DUPLICATE_ANNOTATION`), which is what a re-added Slack reaction should be.
    pub async fn send_reaction(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        txn_id: &str,
        content: &serde_json::Value,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<Option<OwnedEventId>, MatrixError> {
        match self
            .send_raw(as_user, room_id, txn_id, "m.reaction", content, ts)
            .await
        {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.errcode() == Some("M_DUPLICATE_ANNOTATION") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a state event; `state_key` is `&EmptyStateKey` for keyless events.
    pub async fn send_state<C, K>(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        state_key: &K,
        content: &C,
    ) -> Result<OwnedEventId, MatrixError>
    where
        C: StateEventContent,
        C::StateKey: std::borrow::Borrow<K>,
        K: AsRef<str> + ?Sized,
    {
        let req = send_state_event::v3::Request::new(room_id.to_owned(), state_key, content)
            .map_err(|e| MatrixError::Build(e.to_string()))?;
        Ok(self.send(req, as_user).await?.event_id)
    }

    pub async fn redact(
        &self,
        as_user: Option<&UserId>,
        room_id: &RoomId,
        event_id: &ruma::EventId,
        txn_id: &str,
        reason: Option<&str>,
    ) -> Result<OwnedEventId, MatrixError> {
        let mut req = redact_event::v3::Request::new(
            room_id.to_owned(),
            event_id.to_owned(),
            OwnedTransactionId::from(txn_id),
        );
        req.reason = reason.map(str::to_owned);
        Ok(self.send(req, as_user).await?.event_id)
    }

    /// Who sent an event, as the bot sees it; None when the event is unknown.
    pub async fn event_sender(
        &self,
        room_id: &RoomId,
        event_id: &ruma::EventId,
    ) -> Result<Option<OwnedUserId>, MatrixError> {
        let req = get_room_event::v3::Request::new(room_id.to_owned(), event_id.to_owned());
        match self.send(req, None).await {
            Ok(r) => Ok(r.event.get_field::<OwnedUserId>("sender").ok().flatten()),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The display name and avatar (`mxc://`) `user_id` has in `room` (its member event).
    pub async fn member_profile(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<(Option<String>, Option<String>), MatrixError> {
        let req = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            ruma::events::StateEventType::RoomMember,
            user_id.to_string(),
        );
        let resp = self.send(req, None).await?;
        let v: serde_json::Value = serde_json::from_str(resp.event_or_content.get())
            .map_err(|e| MatrixError::Response(e.to_string()))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|d| d.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok((field("displayname"), field("avatar_url")))
    }

    /// Uploads media (`/_matrix/media/v3/upload`).
    pub async fn upload(
        &self,
        as_user: Option<&UserId>,
        bytes: Vec<u8>,
        content_type: &str,
        filename: Option<&str>,
    ) -> Result<OwnedMxcUri, MatrixError> {
        let mut req = create_content::v3::Request::new(bytes);
        req.content_type = Some(content_type.to_owned());
        req.filename = filename.map(str::to_owned);
        Ok(self.send(req, as_user).await?.content_uri)
    }

    /// Uploads media streamed from `body` (`len` bytes), so a large file is never held whole
    /// in memory. Not retried here (the body is consumed): the caller starts the transfer
    /// again.
    pub async fn upload_stream(
        &self,
        as_user: Option<&UserId>,
        body: reqwest::Body,
        len: u64,
        content_type: &str,
        filename: Option<&str>,
    ) -> Result<OwnedMxcUri, MatrixError> {
        #[derive(Deserialize)]
        struct Uploaded {
            content_uri: OwnedMxcUri,
        }
        let url = format!("{}/_matrix/media/v3/upload", self.base);
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = filename {
            query.push(("filename", f));
        }
        if let Some(u) = as_user {
            query.push(("user_id", u.as_str()));
        }
        let resp = self
            .http
            .post(&url)
            .query(&query)
            .bearer_auth(self.as_token.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(MEDIA_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body).with_retry_after(&headers));
        }
        let up: Uploaded = serde_json::from_slice(&body)
            .map_err(|e| MatrixError::Response(format!("media upload answer: {e}")))?;
        Ok(up.content_uri)
    }

    /// Starts a download through the authenticated media endpoint; the caller streams the
    /// body (`Content-Length` and `Content-Type` are in its headers).
    pub async fn download_stream(
        &self,
        mxc: &ruma::MxcUri,
    ) -> Result<reqwest::Response, MatrixError> {
        let (server, media_id) = mxc
            .parts()
            .map_err(|e| MatrixError::Build(format!("invalid mxc URI {mxc}: {e}")))?;
        let url = format!(
            "{}/_matrix/client/v1/media/download/{server}/{media_id}",
            self.base
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(self.as_token.expose())
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(api_error(status.as_u16(), &body).with_retry_after(&headers));
        }
        Ok(resp)
    }

    /// The largest upload the homeserver accepts, in bytes (`m.upload.size` of
    /// `/_matrix/client/v1/media/config`; the legacy `/_matrix/media/v3/config` is refused where
    /// unauthenticated media is off, e.g. tuwunel). tuwunel 1.4.6 answers 20 MiB by default.
    pub async fn upload_limit(&self) -> Result<u64, MatrixError> {
        let resp = self
            .send(get_media_config::v1::Request::new(), None)
            .await?;
        Ok(resp.upload_size.into())
    }

    /// [`Self::upload_limit`], read at most once an hour.
    pub async fn upload_limit_cached(&self) -> Result<u64, MatrixError> {
        const FRESH: Duration = Duration::from_secs(3600);
        if let Some((at, limit)) = *self.upload_limit.lock().expect("upload limit lock")
            && at.elapsed() < FRESH
        {
            return Ok(limit);
        }
        let limit = self.upload_limit().await?;
        *self.upload_limit.lock().expect("upload limit lock") =
            Some((std::time::Instant::now(), limit));
        Ok(limit)
    }

    /// Downloads media through the authenticated endpoint
    /// (`/_matrix/client/v1/media/download`); the legacy one answers 404 on current servers.
    pub async fn download(
        &self,
        mxc: &ruma::MxcUri,
    ) -> Result<(Vec<u8>, Option<String>), MatrixError> {
        let (server, media_id) = mxc
            .parts()
            .map_err(|e| MatrixError::Build(format!("invalid mxc URI {mxc}: {e}")))?;
        let req = get_content::v1::Request::new(media_id.to_owned(), OwnedServerName::from(server));
        let resp = self.send(req, None).await?;
        Ok((resp.file, resp.content_type))
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> MatrixError {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    MatrixError::Unreachable {
        url: url.split('?').next().unwrap_or(url).to_owned(),
        reason,
    }
}

fn api_error(status: u16, body: &[u8]) -> MatrixError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errcode.is_empty() => MatrixError::Api {
            status,
            // The conduwuit family starts `error` with the errcode again.
            error: b
                .error
                .strip_prefix(b.errcode.as_str())
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_owned)
                .unwrap_or(b.error),
            errcode: b.errcode,
            retry_after_ms: b.retry_after_ms,
        },
        _ => MatrixError::Api {
            status,
            errcode: "M_UNKNOWN".into(),
            error: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            retry_after_ms: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_errcode_and_message_once() {
        let e = api_error(
            404,
            br#"{"errcode":"M_NOT_FOUND","error":"M_NOT_FOUND: User does not exist."}"#,
        );
        assert_eq!(
            e.to_string(),
            "homeserver answered HTTP 404 M_NOT_FOUND: User does not exist."
        );
        let e = api_error(
            401,
            br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid token"}"#,
        );
        assert_eq!(
            e.to_string(),
            "homeserver answered HTTP 401 M_UNKNOWN_TOKEN: Invalid token"
        );
        let e = api_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.errcode(), Some("M_UNKNOWN"));
    }
}
