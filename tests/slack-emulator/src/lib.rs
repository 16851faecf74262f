//! Slack emulator for slack-bridge tests: a workspace model served over the Slack Web API
//! (`/api/<method>`) and Socket Mode (`/link/`), with a control surface (Rust methods on
//! [`Emulator`] and JSON endpoints under `/_emulator/`) for acting as users, observing what the
//! app did, and injecting faults. Shapes follow /work/shared/reference/slack-protocol.md.
//!
//! Tokens: the app's bot token (`xoxb-…`) and app-level token (`xapp-…`) exist from the start;
//! people get user tokens (`xoxp-…`) through OAuth v2. [`Emulator::oauth_client`] gives the
//! app's client ID and secret, [`Emulator::authorize_user`] (`POST /_emulator/oauth/authorize`)
//! is a person approving the authorize URL and returns the one-time `code` (10 minutes, once),
//! which the Web API method oauth.v2.access exchanges for the person's token;
//! [`Emulator::user_token`] (`POST /_emulator/oauth/user_token`) issues one directly. A user
//! token acts as its person with its own scopes: posts are plain messages by them (no
//! `bot_id`), only their messages can be changed, and private conversations they are not in
//! do not exist for it. [`Emulator::revoke_user_token`] and [`Emulator::revoke_bot_token`]
//! send `tokens_revoked`; [`RecordedCall::token_user`] says whose user token a call used.
//!
//! Web API faults are scripted per method and optionally per conversation (the call's
//! `channel` parameter; an ID, `#name` or person's ID, resolved as chat.postMessage does), for
//! `times` calls or [`FOREVER`] until [`Emulator::clear_faults`]:
//!
//! | kind | method runs? | client gets | Rust | route (`POST /_emulator/…`) |
//! | --- | --- | --- | --- | --- |
//! | rate limit | no | 429 + `Retry-After` | [`Emulator::rate_limit`], `_channel` | `faults/rate_limit` |
//! | error | no | 200 `{"ok":false,"error":…}` | [`Emulator::fail_next`], `_channel` | `faults/fail_next` |
//! | HTTP status | no | status, HTML or empty body | [`Emulator::fail_status`] | `faults/http_status` |
//! | apply, then status | yes, events too | status, HTML or empty body | [`Emulator::apply_then_fail`] | `faults/apply_then_status` |
//! | apply, then delay | yes, recorded first | real response after a delay | [`Emulator::apply_then_delay`] | `faults/apply_then_delay` |
//!
//! [`Emulator::fault`] builds any of them with `.channel()`, `.times()`, `.forever()` and
//! `.body()`; [`Emulator::faults`] (`GET /_emulator/faults`) lists what is installed, and each
//! [`RecordedCall`] names the fault that hit it. [`Emulator::set_history_tier1`] rate-limits
//! conversations.history / replies as Slack does for non-Marketplace apps.
//!
//! ```no_run
//! # async fn demo() {
//! let emu = slack_emulator::Emulator::start(slack_emulator::Workspace::demo()).await;
//! let api = emu.api_url(); // point the bridge's `slack.api_url` here
//! # }
//! ```

mod actions;
pub mod blocks;
mod control;
mod error;
mod events;
mod faults;
pub mod model;
mod oauth;
mod server;
pub mod socket;
pub mod util;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use actions::ProfileUpdate;
pub use error::Error;
pub use faults::{FOREVER, Fault, FaultBody, FaultKind};
pub use model::{BotId, ChannelId, ChannelKind, FileId, UserId, Workspace};
pub use oauth::CODE_TTL as OAUTH_CODE_TTL;
pub use server::Config;
pub use socket::{AckRecord, DeliveryRecord, EventRecord, SocketConfig, Target};
pub use web::{BodyKind, RecordedCall, TokenKind};

use server::Inner;

/// Owns the server tasks; dropping the last owning [`Emulator`] stops them.
struct Guard {
    inner: std::sync::Weak<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.close_all_sockets("emulator shutting down");
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A file to share with [`Emulator::share_files`].
#[derive(Debug, Clone, Default)]
pub struct FileSpec {
    pub name: String,
    pub mimetype: String,
    pub bytes: Vec<u8>,
    /// An external file: Slack only links here (no bytes).
    pub external_url: Option<String>,
    /// Message events carry only a stub (`file_access: check_file_info`).
    pub check_file_info: bool,
    pub duration_ms: Option<u64>,
}

impl FileSpec {
    pub fn new(name: &str, mimetype: &str, bytes: Vec<u8>) -> Self {
        FileSpec {
            name: name.into(),
            mimetype: mimetype.into(),
            bytes,
            ..FileSpec::default()
        }
    }
}

/// A running emulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
    _guard: Option<Arc<Guard>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.inner.base_url)
            .finish()
    }
}

impl Emulator {
    /// Starts on 127.0.0.1 with a free port and default settings. Panics if it cannot bind.
    pub async fn start(ws: Workspace) -> Emulator {
        Self::start_with(ws, Config::default())
            .await
            .expect("slack-emulator: cannot bind 127.0.0.1")
    }

    /// Starts with explicit settings (port, Socket Mode timings, history cap…).
    pub async fn start_with(mut ws: Workspace, config: Config) -> std::io::Result<Emulator> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port))).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        ws.base_url = base_url.clone();
        let inner = Arc::new(Inner::new(ws, config, base_url));
        let app = server::router(inner.clone());
        let serve = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "slack-emulator server stopped");
            }
        });
        let retry = tokio::spawn(socket::retry_loop(Arc::downgrade(&inner)));
        let guard = Guard {
            inner: Arc::downgrade(&inner),
            tasks: vec![serve, retry],
        };
        Ok(Emulator {
            inner,
            _guard: Some(Arc::new(guard)),
        })
    }

    /// A non-owning handle for the HTTP control routes.
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Emulator {
        Emulator {
            inner,
            _guard: None,
        }
    }

    /// Stops the server and closes all sockets (also happens when the last clone drops).
    pub fn shutdown(self) {
        drop(self)
    }

    // ---- identity ----

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }
    /// `base_url() + "/api"`, the Web API root (Slack's `https://slack.com/api`).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.inner.base_url)
    }
    fn ws<R>(&self, f: impl FnOnce(&Workspace) -> R) -> R {
        f(&self.inner.ws.lock().unwrap())
    }
    pub fn bot_token(&self) -> String {
        self.ws(|w| w.bot_token.clone())
    }
    pub fn app_token(&self) -> String {
        self.ws(|w| w.app_token.clone())
    }
    pub fn team_id(&self) -> String {
        self.ws(|w| w.team_id.clone())
    }
    pub fn team_name(&self) -> String {
        self.ws(|w| w.team_name.clone())
    }
    pub fn bot_user_id(&self) -> String {
        self.ws(|w| w.bot_user_id.clone())
    }
    pub fn bot_id(&self) -> String {
        self.ws(|w| w.bot_id.clone())
    }
    pub fn app_id(&self) -> String {
        self.ws(|w| w.app_id.clone())
    }

    /// Looks up a conversation ID by name (`general` or `#general`).
    pub fn channel_id(&self, name: &str) -> Option<ChannelId> {
        self.ws(|w| w.channel_by_name(name).map(|c| c.id.clone()))
    }
    /// Looks up a user ID by handle.
    pub fn user_id(&self, name: &str) -> Option<UserId> {
        self.ws(|w| {
            w.users
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.id.clone())
        })
    }
    /// The DM between `user` and the bot, if any.
    pub fn dm_id(&self, user: &str) -> Option<ChannelId> {
        self.ws(|w| w.dm_with(user).map(|c| c.id.clone()))
    }

    /// Silent direct access to the model (no events), for setup that has no dedicated method.
    pub fn with_workspace<R>(&self, f: impl FnOnce(&mut Workspace) -> R) -> R {
        f(&mut self.inner.ws.lock().unwrap())
    }

    /// Runs an action under the workspace lock and queues the events it caused.
    fn act<T>(&self, f: impl FnOnce(&mut Workspace) -> actions::Outcome<T>) -> Result<T, Error> {
        let mut ws = self.inner.ws.lock().unwrap();
        let (out, events) = f(&mut ws)?;
        self.inner.commit(&ws, events);
        Ok(out)
    }

    // ---- workspace changes that emit events ----

    /// Adds a person (`team_join` event).
    pub fn add_user(&self, name: &str, real_name: &str) -> UserId {
        self.act(|w| w.act_add_user(name, real_name))
            .expect("add_user cannot fail")
    }
    /// Adds a channel silently (setup); use [`Emulator::create_channel`] for the evented path.
    pub fn add_channel(&self, name: &str, private: bool, members: &[&str]) -> ChannelId {
        self.with_workspace(|w| w.add_channel(name, private, members))
    }
    /// Adds the DM between `user` and the bot silently.
    pub fn add_dm(&self, user: &str) -> ChannelId {
        self.with_workspace(|w| w.add_dm(user))
    }
    /// Adds a group DM of `users` and the bot silently.
    pub fn add_mpim(&self, users: &[&str]) -> ChannelId {
        self.with_workspace(|w| w.add_mpim(users))
    }
    /// `user` creates a channel (`channel_created` for public ones).
    pub fn create_channel(
        &self,
        user: &str,
        name: &str,
        private: bool,
    ) -> Result<ChannelId, Error> {
        self.act(|w| w.act_create_channel(user, name, private))
    }

    // ---- acting as users ----

    /// `user` posts mrkdwn `text` (escaped as Slack sends it: `&lt;`, `<@U…>`); the event
    /// carries `text`, a derived `rich_text` block and a `client_msg_id`. Returns the `ts`.
    pub fn post_message(&self, user: &str, channel: &str, text: &str) -> Result<String, Error> {
        self.act(|w| w.act_post(user, channel, text, None, false, None))
    }
    /// Like [`Emulator::post_message`] with explicit `blocks` instead of derived ones.
    pub fn post_message_with_blocks(
        &self,
        user: &str,
        channel: &str,
        text: &str,
        blocks: Value,
    ) -> Result<String, Error> {
        self.act(|w| w.act_post(user, channel, text, None, false, Some(blocks)))
    }
    /// A post with legacy `attachments` (pretext, title, text, fields, fallback) and no
    /// blocks, as integrations send them.
    pub fn post_attachments(
        &self,
        user: &str,
        channel: &str,
        text: &str,
        attachments: Value,
    ) -> Result<String, Error> {
        self.act(|w| w.act_post_attachments(user, channel, text, attachments))
    }
    /// `user` pins a message (`pin_added`).
    pub fn pin(&self, user: &str, channel: &str, ts: &str) -> Result<(), Error> {
        self.act(|w| w.act_pin(user, channel, ts, true))
    }
    /// `user` unpins a message (`pin_removed`).
    pub fn unpin(&self, user: &str, channel: &str, ts: &str) -> Result<(), Error> {
        self.act(|w| w.act_pin(user, channel, ts, false))
    }
    /// `user` starts a huddle in the channel (`subtype: huddle_thread`).
    pub fn start_huddle(&self, user: &str, channel: &str) -> Result<String, Error> {
        self.act(|w| w.act_huddle(user, channel))
    }
    /// A thread reply (`thread_ts` = the root, or any reply of it).
    pub fn reply(
        &self,
        user: &str,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Result<String, Error> {
        self.act(|w| w.act_post(user, channel, text, Some(thread_ts), false, None))
    }
    /// A thread reply also sent to the channel (`subtype: thread_broadcast`).
    pub fn reply_broadcast(
        &self,
        user: &str,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Result<String, Error> {
        self.act(|w| w.act_post(user, channel, text, Some(thread_ts), true, None))
    }
    /// A `/me` message (`subtype: me_message`).
    pub fn me_message(&self, user: &str, channel: &str, text: &str) -> Result<String, Error> {
        self.act(|w| w.act_me_message(user, channel, text))
    }
    /// Edits `user`'s message (`message_changed`); returns the edit's `ts`.
    pub fn edit(&self, user: &str, channel: &str, ts: &str, text: &str) -> Result<String, Error> {
        self.act(|w| w.act_edit(user, channel, ts, text, actions::EditBlocks::Derive, None))
    }
    /// Slack unfurls a link of a message: `attachments` gain a preview of `url` and a
    /// `message_changed` follows, with no `edited` (it is not an edit).
    pub fn unfurl(&self, channel: &str, ts: &str, url: &str, title: &str) -> Result<(), Error> {
        self.act(|w| w.act_unfurl(channel, ts, url, title))
    }
    /// Deletes a message (`message_deleted`); authors and admins may.
    pub fn delete(&self, user: &str, channel: &str, ts: &str) -> Result<(), Error> {
        self.act(|w| w.act_delete(Some(user), channel, ts))
    }
    /// `reaction_added`; `name` without colons (`thumbsup`, `+1::skin-tone-2`).
    pub fn react(&self, user: &str, channel: &str, ts: &str, name: &str) -> Result<(), Error> {
        self.act(|w| w.act_react(user, channel, ts, name))
    }
    /// `reaction_removed`.
    pub fn unreact(&self, user: &str, channel: &str, ts: &str, name: &str) -> Result<(), Error> {
        self.act(|w| w.act_unreact(user, channel, ts, name))
    }
    /// `user` uploads and shares a file (`file_share` message + `file_shared`); returns its ID.
    pub fn share_file(
        &self,
        user: &str,
        channel: &str,
        name: &str,
        bytes: Vec<u8>,
        mimetype: &str,
    ) -> Result<FileId, Error> {
        self.share_file_with(user, channel, name, bytes, mimetype, "", None)
            .map(|(f, _)| f)
    }
    /// [`Emulator::share_file`] with a comment and/or into a thread; returns `(file_id, ts)`.
    #[allow(clippy::too_many_arguments)]
    pub fn share_file_with(
        &self,
        user: &str,
        channel: &str,
        name: &str,
        bytes: Vec<u8>,
        mimetype: &str,
        comment: &str,
        thread_ts: Option<&str>,
    ) -> Result<(FileId, String), Error> {
        self.act(|w| w.act_share_file(user, channel, name, bytes, mimetype, comment, thread_ts))
    }
    /// `user` shares several files in one `file_share` message; returns their IDs and the
    /// message ts.
    pub fn share_files(
        &self,
        user: &str,
        channel: &str,
        files: Vec<FileSpec>,
        comment: &str,
        thread_ts: Option<&str>,
    ) -> Result<(Vec<FileId>, String), Error> {
        self.act(|w| w.act_share_files(user, channel, files, comment, thread_ts))
    }
    /// Deletes a file (`file_deleted`; its messages show a tombstone).
    pub fn delete_file(&self, file: &str) -> Result<(), Error> {
        self.act(|w| w.act_delete_file(file))
    }
    /// `channel_rename` (or `group_rename`) plus a `channel_name` message.
    pub fn rename_channel(&self, user: &str, channel: &str, new_name: &str) -> Result<(), Error> {
        self.act(|w| w.act_rename(user, channel, new_name))
    }
    /// A `channel_topic` message.
    pub fn set_topic(&self, user: &str, channel: &str, topic: &str) -> Result<(), Error> {
        self.act(|w| w.act_set_topic(user, channel, topic))
    }
    /// A `channel_purpose` message.
    pub fn set_purpose(&self, user: &str, channel: &str, purpose: &str) -> Result<(), Error> {
        self.act(|w| w.act_set_purpose(user, channel, purpose))
    }
    /// `member_joined_channel` + `channel_join` message. Joining the bot user adds the bot.
    pub fn join(&self, user: &str, channel: &str) -> Result<(), Error> {
        self.act(|w| w.act_join(user, channel, None)).map(|_| ())
    }
    /// `inviter` adds `user` (the events carry `inviter`).
    pub fn invite(&self, inviter: &str, user: &str, channel: &str) -> Result<(), Error> {
        self.act(|w| w.act_join(user, channel, Some(inviter)))
            .map(|_| ())
    }
    /// `channel_leave` message + `member_left_channel`.
    pub fn leave(&self, user: &str, channel: &str) -> Result<(), Error> {
        self.act(|w| w.act_leave(user, channel))
    }
    /// An admin deletes the channel (`channel_deleted`); it is gone afterwards.
    pub fn delete_channel(&self, channel: &str) -> Result<(), Error> {
        self.act(|w| w.act_delete_channel(channel))
    }
    /// `channel_archive` / `channel_unarchive`.
    pub fn archive_channel(&self, user: &str, channel: &str, archived: bool) -> Result<(), Error> {
        self.act(|w| w.act_archive(user, channel, archived))
    }
    /// Changes a profile (`user_change` with the full user object).
    pub fn update_profile(&self, user: &str, update: ProfileUpdate) -> Result<(), Error> {
        self.act(|w| w.act_update_profile(user, update))
    }
    /// Sets a custom avatar (new `avatar_hash` and image URLs; `user_change`).
    pub fn set_avatar(&self, user: &str, png: Vec<u8>) -> Result<(), Error> {
        self.update_profile(
            user,
            ProfileUpdate {
                avatar: Some(png),
                ..Default::default()
            },
        )
    }
    /// Adds a custom emoji (`emoji_changed` with `subtype: add`).
    pub fn add_emoji(&self, name: &str, value: &str) {
        let _ = self.act(|w| w.act_add_emoji(name, value));
    }
    /// Adds a user group `@handle` of `users`; returns its `S…` id.
    pub fn add_usergroup(&self, handle: &str, name: &str, users: &[&str]) -> String {
        self.with_workspace(|w| w.add_usergroup(handle, name, users))
    }
    /// Adds a custom emoji whose image the emulator serves; returns its URL.
    pub fn add_emoji_image(&self, name: &str, png: Vec<u8>) -> String {
        let url = format!("{}/emoji/{name}.png", self.base_url());
        self.with_workspace(|w| w.emoji_images.insert(name.to_owned(), png));
        self.add_emoji(name, &url);
        url
    }

    // ---- OAuth and user tokens ----

    /// The app's OAuth `(client_id, client_secret)`, fixed for the emulator's lifetime; what
    /// oauth.v2.access checks (as parameters or HTTP Basic auth).
    pub fn oauth_client(&self) -> (String, String) {
        self.ws(|w| (w.oauth.client_id.clone(), w.oauth.client_secret.clone()))
    }
    /// `user` (an ID or handle of a person) approves the app's authorize URL
    /// (`/oauth/v2/authorize?client_id=…&user_scope=…&redirect_uri=…`) for the user `scopes`;
    /// returns the `code` Slack puts in the redirect. oauth.v2.access takes it once, within
    /// [`OAUTH_CODE_TTL`] (10 minutes on the tokio clock), and then issues a user token with
    /// exactly `scopes`, replacing the one `user` had. `redirect_uri` is `""` when the
    /// authorize URL had none. Panics for an unknown user, a bot user or no scopes.
    pub fn authorize_user(&self, user: &str, scopes: &[&str], redirect_uri: &str) -> String {
        self.try_authorize_user(user, scopes, redirect_uri)
            .unwrap_or_else(|e| panic!("slack-emulator: authorize_user({user:?}): {e}"))
    }
    pub(crate) fn try_authorize_user(
        &self,
        user: &str,
        scopes: &[&str],
        redirect_uri: &str,
    ) -> Result<String, Error> {
        let mut ws = self.inner.ws.lock().unwrap();
        let id = grantee(&ws, user, scopes)?;
        let now = tokio::time::Instant::now();
        Ok(ws.oauth.authorize(&id, scopes, redirect_uri, now))
    }
    /// Issues `user` (an ID or handle of a person) a user token (`xoxp-…`) with exactly
    /// `scopes`, as copied from the app's OAuth page; same effect as a code exchange (their
    /// previous token now answers `invalid_auth`). Panics for an unknown user, a bot user or
    /// no scopes.
    pub fn user_token(&self, user: &str, scopes: &[&str]) -> String {
        self.try_user_token(user, scopes)
            .unwrap_or_else(|e| panic!("slack-emulator: user_token({user:?}): {e}"))
    }
    pub(crate) fn try_user_token(&self, user: &str, scopes: &[&str]) -> Result<String, Error> {
        let mut ws = self.inner.ws.lock().unwrap();
        let id = grantee(&ws, user, scopes)?;
        let scopes = scopes.iter().map(|s| s.to_string()).collect();
        Ok(ws.oauth.issue(&id, scopes).token)
    }
    /// `user`'s user token now answers `token_revoked` (and downloads get the login page); the
    /// app gets `tokens_revoked` with `user`'s ID in `tokens.oauth`. Panics unless `user` (an
    /// ID or handle) holds a live user token.
    pub fn revoke_user_token(&self, user: &str) {
        self.try_revoke_user_token(user)
            .unwrap_or_else(|e| panic!("slack-emulator: revoke_user_token({user:?}): {e}"))
    }
    pub(crate) fn try_revoke_user_token(&self, user: &str) -> Result<(), Error> {
        let mut ws = self.inner.ws.lock().unwrap();
        let id = person(&ws, user)?;
        if !ws.oauth.revoke(&id) {
            return Err(Error::new("no_user_token"));
        }
        self.tokens_revoked(&mut ws, vec![id], vec![]);
        Ok(())
    }

    // ---- observation ----

    /// Web API calls of `method`, oldest first.
    pub fn calls(&self, method: &str) -> Vec<RecordedCall> {
        self.inner
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }
    /// Every Web API call, oldest first.
    pub fn all_calls(&self) -> Vec<RecordedCall> {
        self.inner.calls.lock().unwrap().clone()
    }
    pub fn clear_calls(&self) {
        self.inner.calls.lock().unwrap().clear();
    }
    /// Acks that counted (not dropped), oldest first.
    pub fn acks(&self) -> Vec<AckRecord> {
        let d = self.inner.disp.lock().unwrap();
        d.acks.iter().filter(|a| !a.dropped).cloned().collect()
    }
    /// All acks received, including ones ignored by [`Emulator::drop_acks`].
    pub fn all_acks(&self) -> Vec<AckRecord> {
        self.inner.disp.lock().unwrap().acks.clone()
    }
    /// Every envelope sent, including retries.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.disp.lock().unwrap().deliveries.clone()
    }
    /// Every event payload queued for the app.
    pub fn events(&self) -> Vec<EventRecord> {
        self.inner.disp.lock().unwrap().events.clone()
    }
    /// Events dropped by [`Emulator::drop_events_while_disconnected`], oldest first; they are
    /// not in [`Emulator::events`] and were never sent (so neither acked nor given up).
    pub fn dropped_events(&self) -> Vec<EventRecord> {
        self.inner.disp.lock().unwrap().dropped.clone()
    }
    /// Envelopes queued or awaiting an ack.
    pub fn pending_events(&self) -> usize {
        self.inner.disp.lock().unwrap().pending_count()
    }
    /// All messages of a conversation (thread replies included), oldest first, rendered as
    /// conversations.history shows them.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        self.ws(|w| {
            w.channel(channel)
                .map(|c| c.messages.iter().map(|m| w.message_json(c, m)).collect())
                .unwrap_or_default()
        })
    }
    /// One message by `ts`.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.ws(|w| {
            let c = w.channel(channel)?;
            c.message(ts).map(|m| w.message_json(c, m))
        })
    }
    /// A file's stored bytes.
    pub fn file_bytes(&self, file: &str) -> Option<Vec<u8>> {
        self.ws(|w| w.file(file).map(|f| f.bytes.to_vec()))
    }
    /// A file object as files.info renders it.
    pub fn file_json(&self, file: &str) -> Option<Value> {
        self.ws(|w| w.file(file).map(|f| w.file_json(f)))
    }
    /// Members of a conversation.
    pub fn members(&self, channel: &str) -> Vec<UserId> {
        self.ws(|w| {
            w.channel(channel)
                .map(|c| c.members.clone())
                .unwrap_or_default()
        })
    }
    /// Open Socket Mode connections.
    pub fn connection_count(&self) -> usize {
        self.inner.disp.lock().unwrap().connection_count()
    }
    /// IDs of the open connections, oldest first.
    pub fn connection_ids(&self) -> Vec<u64> {
        self.inner.disp.lock().unwrap().connection_ids()
    }
    /// Sockets ever accepted.
    pub fn total_connections(&self) -> u64 {
        self.inner.disp.lock().unwrap().total_connections
    }

    // ---- waiting (for tests) ----

    /// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&Emulator) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return Some(v);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    /// Waits until at least `n` calls of `method` were made; returns them.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<RecordedCall>> {
        self.wait_for(timeout, |e| {
            let c = e.calls(method);
            (c.len() >= n).then_some(c)
        })
        .await
    }
    /// Waits until exactly `n` sockets are open.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |e| (e.connection_count() == n).then_some(()))
            .await
            .is_some()
    }
    /// Waits until at least `n` acks counted.
    pub async fn wait_for_acks(&self, n: usize, timeout: Duration) -> Option<Vec<AckRecord>> {
        self.wait_for(timeout, |e| {
            let a = e.acks();
            (a.len() >= n).then_some(a)
        })
        .await
    }

    // ---- faults ----

    /// The next `times` calls of `method` get HTTP 429, `Retry-After: retry_after_secs`.
    /// `times` = [`FOREVER`] lasts until [`Emulator::clear_faults`].
    pub fn rate_limit(&self, method: &str, times: u32, retry_after_secs: u64) {
        self.fault(method).times(times).rate_limit(retry_after_secs);
    }
    /// [`Emulator::rate_limit`] for calls whose `channel` is `channel` only (an ID, a `#name`
    /// or a person's ID for their DM; resolved as the Web API resolves `channel`).
    pub fn rate_limit_channel(
        &self,
        method: &str,
        channel: &str,
        times: u32,
        retry_after_secs: u64,
    ) {
        self.fault(method)
            .channel(channel)
            .times(times)
            .rate_limit(retry_after_secs);
    }
    /// The next `times` calls of `method` answer `{"ok":false,"error":error}`.
    pub fn fail_next(&self, method: &str, times: u32, error: &str) {
        self.fault(method).times(times).error(error);
    }
    /// [`Emulator::fail_next`] for calls in `channel` only.
    pub fn fail_next_channel(&self, method: &str, channel: &str, times: u32, error: &str) {
        self.fault(method)
            .channel(channel)
            .times(times)
            .error(error);
    }
    /// The next `times` calls of `method` get a bare HTTP `status` with an HTML error page,
    /// as from Slack's edge; the method does not run. Panics unless 200 ≤ `status` ≤ 599.
    pub fn fail_status(&self, method: &str, times: u32, status: u16) {
        self.fault(method).times(times).http_status(status);
    }
    /// The next `times` calls of `method` run (messages are posted, events emitted) and then
    /// answer HTTP `status` with an HTML error page instead of the real response.
    pub fn apply_then_fail(&self, method: &str, times: u32, status: u16) {
        self.fault(method).times(times).apply_then_status(status);
    }
    /// The next `times` calls of `method` run and are recorded in [`Emulator::calls`], then
    /// their real response is held back for `delay` (a tokio sleep, no lock held).
    pub fn apply_then_delay(&self, method: &str, times: u32, delay: Duration) {
        self.fault(method).times(times).apply_then_delay(delay);
    }
    /// A fault for `method`, configured by the builder: scope, count, body, then the kind.
    ///
    /// ```no_run
    /// # fn demo(emu: &slack_emulator::Emulator) {
    /// emu.fault("chat.postMessage").channel("#general").forever().http_status(503);
    /// emu.fault("chat.update").times(2).apply_then_delay(std::time::Duration::from_secs(3));
    /// # }
    /// ```
    pub fn fault(&self, method: &str) -> FaultBuilder<'_> {
        FaultBuilder {
            emu: self,
            method: method.to_string(),
            channel: None,
            times: 1,
            body: FaultBody::Html,
        }
    }
    /// Installed faults that can still fire.
    pub fn faults(&self) -> Vec<Fault> {
        self.inner.faults.lock().unwrap().list()
    }
    fn install_fault(&self, method: &str, channel: Option<&str>, times: u32, kind: FaultKind) {
        // Resolve while holding only the workspace lock; the fault list is locked after.
        let channel = channel.map(|c| {
            self.ws(|w| web::resolve_channel(w, c))
                .unwrap_or_else(|| c.to_string())
        });
        self.inner.faults.lock().unwrap().add(Fault {
            method: method.to_string(),
            channel,
            remaining: times,
            kind,
        });
    }
    pub fn clear_faults(&self) {
        self.inner.faults.lock().unwrap().clear();
    }
    /// While on, acks are received but ignored, so every envelope is redelivered.
    pub fn drop_acks(&self, drop: bool) {
        self.inner.disp.lock().unwrap().drop_acks = drop;
    }
    /// While on, Slack gives up on events it cannot deliver: an event generated while no
    /// Socket Mode connection is open is dropped instead of waiting for one, is never sent
    /// (not even after a socket connects) and is listed in [`Emulator::dropped_events`].
    /// Events queued or in flight while a socket was open are still redelivered, and a socket
    /// told to `disconnect` counts as open until it closes. Default off: events wait.
    pub fn drop_events_while_disconnected(&self, on: bool) {
        self.inner.disp.lock().unwrap().drop_while_disconnected = on;
    }
    /// Sends an event again as a retry (`retry_attempt` + 1) even if it was acked.
    pub fn redeliver(&self, event_id: &str) -> bool {
        self.inner.disp.lock().unwrap().redeliver(event_id)
    }
    /// Sends `disconnect` with `reason` to every socket; they close after the refresh grace.
    pub fn disconnect_all(&self, reason: &str) -> usize {
        self.inner.disconnect(Target::All, reason)
    }
    /// Sends `disconnect` to one socket (see [`Target`]).
    pub fn disconnect(&self, target: Target, reason: &str) -> usize {
        self.inner.disconnect(target, reason)
    }
    /// Ends every open socket abruptly, like a network drop: no `disconnect` frame and no
    /// close frame, so the client sees the connection end (1006, abnormal closure). Tokens
    /// stay valid and the app may reconnect through apps.connections.open; to keep it out a
    /// while, add `emu.fault("apps.connections.open").forever().http_status(503)` until
    /// [`Emulator::clear_faults`]. Unacked envelopes are redelivered once a socket is back.
    pub fn close_sockets(&self) {
        self.inner.drop_all_sockets();
    }
    /// Bot token now answers `token_revoked`; file downloads get the login page. The app
    /// gets `tokens_revoked` with the bot user in `tokens.bot`.
    pub fn revoke_bot_token(&self) {
        let mut ws = self.inner.ws.lock().unwrap();
        ws.bot_token_revoked = true;
        let bot = ws.bot_user_id.clone();
        self.tokens_revoked(&mut ws, vec![], vec![bot]);
    }
    /// Queues the `tokens_revoked` app event for the given user IDs (`tokens.oauth`: user
    /// tokens, `tokens.bot`: bot tokens).
    fn tokens_revoked(&self, ws: &mut Workspace, oauth: Vec<UserId>, bot: Vec<UserId>) {
        let ev = serde_json::json!({
            "type": "tokens_revoked",
            "tokens": {"oauth": oauth, "bot": bot},
            "event_ts": ws.clock.next(),
        });
        // App events need no subscription; deliver before sockets are affected.
        let raw = events::RawEvent::new(ev, "tokens_revoked", None, true);
        ws.bot_events.insert("tokens_revoked".into());
        self.inner.commit(ws, vec![raw]);
    }
    /// App token revoked: apps.connections.open answers `invalid_auth`, open sockets close.
    pub fn revoke_app_token(&self) {
        self.inner.ws.lock().unwrap().app_token_revoked = true;
        self.inner.close_all_sockets("token_revoked");
    }
    /// Replaces the granted bot scopes (reflected in `x-oauth-scopes` and `missing_scope`).
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.with_workspace(|w| w.set_scopes(scopes));
    }
    /// Removes scopes from the grant.
    pub fn remove_scopes(&self, scopes: &[&str]) {
        self.with_workspace(|w| {
            for s in scopes {
                w.scopes.remove(*s);
            }
        });
    }
    /// The granted bot scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.ws(|w| w.scopes.iter().cloned().collect())
    }
    /// Replaces the bot event subscriptions.
    pub fn set_bot_events(&self, events: &[&str]) {
        self.with_workspace(|w| w.set_bot_events(events));
    }
    /// Sends file downloads at `rate` bytes per second (`None`: at once).
    pub fn set_download_rate(&self, rate: Option<u64>) {
        self.inner.config.lock().unwrap().download_rate = rate;
    }
    /// The files whose download started, one entry per download, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.inner.downloads.lock().unwrap().clone()
    }
    /// How long after files.completeUploadExternal its share shows up (default 150 ms).
    pub fn set_file_share_delay(&self, d: Duration) {
        self.inner.config.lock().unwrap().file_share_delay = d;
    }
    pub fn set_ack_timeout(&self, d: Duration) {
        self.inner.disp.lock().unwrap().config.ack_timeout = d;
    }
    pub fn set_refresh_grace(&self, d: Duration) {
        self.inner.disp.lock().unwrap().config.refresh_grace = d;
    }
    pub fn set_max_retries(&self, n: u32) {
        self.inner.disp.lock().unwrap().config.max_retries = n;
    }
    /// Applies to sockets opened afterwards.
    pub fn set_ping_interval(&self, d: Duration) {
        self.inner.disp.lock().unwrap().config.ping_interval = d;
    }
    pub fn set_history_limit_cap(&self, cap: Option<u32>) {
        self.inner.config.lock().unwrap().history_limit_cap = cap;
    }
    /// Slack's 2025 limits for non-Marketplace apps: while `Some(interval)`,
    /// conversations.history and conversations.replies (each on its own) accept one call per
    /// `interval`. A call sooner than `interval` after that method's previous accepted call
    /// does not run and gets HTTP 429, `Retry-After` in whole seconds (rounded up, at least 1)
    /// and `{"ok":false,"error":"ratelimited"}`; [`Emulator::calls`] records it with the fault
    /// label `rate_limit:<secs>`. Accepted calls return at most 15 messages a page (replies:
    /// the root, repeated on every page, plus 14). This check comes before scripted faults, so
    /// a refused call consumes none. Setting it forgets earlier calls; `None` (default) is off.
    pub fn set_history_tier1(&self, interval: Option<Duration>) {
        self.inner.faults.lock().unwrap().tier1.set(interval);
    }
    /// Whether a thread reply also emits `message_changed` for its root (default on).
    pub fn set_thread_parent_updates(&self, on: bool) {
        self.with_workspace(|w| w.thread_parent_updates = on);
    }
}

/// Builds a Web API fault; see [`Emulator::fault`]. Nothing is installed until one of the
/// kind methods (`rate_limit`, `error`, `http_status`, `apply_then_status`,
/// `apply_then_delay`) is called.
#[must_use = "a fault is installed only by its kind method, e.g. .http_status(503)"]
pub struct FaultBuilder<'a> {
    emu: &'a Emulator,
    method: String,
    channel: Option<String>,
    times: u32,
    body: FaultBody,
}

impl FaultBuilder<'_> {
    /// Only calls whose `channel` parameter (or `channel_id`) names this conversation.
    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }
    /// How many calls it hits (default 1).
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
    /// Hits every call until [`Emulator::clear_faults`].
    pub fn forever(self) -> Self {
        self.times(FOREVER)
    }
    /// Body of `http_status` / `apply_then_status` answers (default [`FaultBody::Html`]).
    pub fn body(mut self, body: FaultBody) -> Self {
        self.body = body;
        self
    }
    fn install(self, kind: FaultKind) {
        self.emu
            .install_fault(&self.method, self.channel.as_deref(), self.times, kind);
    }
    /// HTTP 429 with `Retry-After`; the method does not run.
    pub fn rate_limit(self, retry_after_secs: u64) {
        self.install(FaultKind::RateLimit {
            retry_after: retry_after_secs,
        });
    }
    /// `{"ok":false,"error":error}`; the method does not run.
    pub fn error(self, error: &str) {
        self.install(FaultKind::Error {
            error: error.to_string(),
        });
    }
    /// A bare HTTP `status`; the method does not run. Panics unless 200 ≤ `status` ≤ 599.
    pub fn http_status(self, status: u16) {
        let body = self.body;
        self.install(FaultKind::HttpStatus {
            status: valid_status(status),
            body,
        });
    }
    /// The method runs, then HTTP `status` replaces its response. Panics unless
    /// 200 ≤ `status` ≤ 599.
    pub fn apply_then_status(self, status: u16) {
        let body = self.body;
        self.install(FaultKind::ApplyThenStatus {
            status: valid_status(status),
            body,
        });
    }
    /// The method runs and is recorded, then its response waits `delay`.
    pub fn apply_then_delay(self, delay: Duration) {
        self.install(FaultKind::ApplyThenDelay {
            delay_ms: delay.as_millis().try_into().unwrap_or(u64::MAX),
        });
    }
}

/// The person `user` names (an ID, else a handle): `user_not_found`, or `user_is_bot` since
/// only people hold user tokens.
fn person(ws: &Workspace, user: &str) -> Result<UserId, Error> {
    let u = ws
        .user(user)
        .or_else(|| ws.users.iter().find(|u| u.name == user))
        .ok_or_else(|| Error::new("user_not_found"))?;
    if u.is_bot {
        return Err(Error::new("user_is_bot"));
    }
    Ok(u.id.clone())
}

/// [`person`] for a grant of `scopes`, which must not be empty (`no_scopes`).
fn grantee(ws: &Workspace, user: &str, scopes: &[&str]) -> Result<UserId, Error> {
    let id = person(ws, user)?;
    if scopes.is_empty() {
        return Err(Error::new("no_scopes"));
    }
    Ok(id)
}

fn valid_status(status: u16) -> u16 {
    assert!(
        (200..=599).contains(&status),
        "slack-emulator: fault status {status} is not an HTTP status in 200..=599"
    );
    status
}
