//! The HTTP control API under `/_emulator/` (JSON in, JSON out) so a sandbox user can drive
//! the emulator with curl: act as users, read what the app did, inject faults. Every route
//! delegates to the same [`Emulator`] methods the Rust tests use.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::Inner;
use crate::{Emulator, Error, FaultBody, ProfileUpdate, Target, util};

type S = State<Arc<Inner>>;

fn emu(inner: Arc<Inner>) -> Emulator {
    Emulator::from_inner(inner)
}

fn reply<T: serde::Serialize>(r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => {
            let mut out = json!({"ok": true});
            match serde_json::to_value(v) {
                Ok(Value::Object(o)) => out.as_object_mut().unwrap().extend(o),
                Ok(Value::Null) => {}
                Ok(other) => {
                    out["result"] = other;
                }
                Err(_) => {}
            }
            Json(out).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": e.code})),
        )
            .into_response(),
    }
}

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/", get(index))
        .route("/info", get(info))
        .route("/users", get(list_users).post(add_user))
        .route("/channels", get(list_channels).post(create_channel))
        .route("/post", post(post_message))
        .route("/me", post(me_message))
        .route("/edit", post(edit))
        .route("/delete", post(delete))
        .route("/react", post(react))
        .route("/unreact", post(unreact))
        .route("/share_file", post(share_file))
        .route("/rename", post(rename))
        .route("/topic", post(topic))
        .route("/purpose", post(purpose))
        .route("/join", post(join))
        .route("/leave", post(leave))
        .route("/archive", post(archive))
        .route("/profile", post(profile))
        .route("/emoji", post(emoji))
        .route("/calls", get(calls).delete(clear_calls))
        .route("/acks", get(acks))
        .route("/deliveries", get(deliveries))
        .route("/events", get(events))
        .route("/messages/{channel}", get(messages))
        .route("/connections", get(connections))
        .route("/faults", get(list_faults))
        .route("/faults/rate_limit", post(rate_limit))
        .route("/faults/fail_next", post(fail_next))
        .route("/faults/http_status", post(http_status))
        .route("/faults/apply_then_status", post(apply_then_status))
        .route("/faults/apply_then_delay", post(apply_then_delay))
        .route("/faults/clear", post(clear_faults))
        .route("/faults/drop_acks", post(drop_acks))
        .route("/faults/redeliver", post(redeliver))
        .route("/faults/disconnect", post(disconnect))
        .route("/faults/revoke", post(revoke))
        .route("/oauth/authorize", post(oauth_authorize))
        .route("/oauth/user_token", post(oauth_user_token))
        .route("/scopes", get(scopes).post(set_scopes))
        .route("/scopes/remove", post(remove_scopes))
        .route("/config", post(config))
}

pub(crate) async fn index() -> Json<Value> {
    Json(json!({
        "ok": true,
        "routes": [
            "GET /_emulator/info", "GET|POST /_emulator/users", "GET|POST /_emulator/channels",
            "POST /_emulator/post", "POST /_emulator/me", "POST /_emulator/edit",
            "POST /_emulator/delete", "POST /_emulator/react", "POST /_emulator/unreact",
            "POST /_emulator/share_file", "POST /_emulator/rename", "POST /_emulator/topic",
            "POST /_emulator/purpose", "POST /_emulator/join", "POST /_emulator/leave",
            "POST /_emulator/archive", "POST /_emulator/profile", "POST /_emulator/emoji",
            "GET|DELETE /_emulator/calls?method=", "GET /_emulator/acks", "GET /_emulator/deliveries",
            "GET /_emulator/events", "GET /_emulator/messages/{channel}", "GET /_emulator/connections",
            "GET /_emulator/faults",
            "POST /_emulator/faults/rate_limit {method, retry_after=1, times=1, forever?, channel?}",
            "POST /_emulator/faults/fail_next {method, error, times=1, forever?, channel?}",
            "POST /_emulator/faults/http_status {method, status, body=html|empty, times=1, forever?, channel?}",
            "POST /_emulator/faults/apply_then_status {method, status=503, body=html|empty, times=1, forever?, channel?}",
            "POST /_emulator/faults/apply_then_delay {method, delay_ms, times=1, forever?, channel?}",
            "POST /_emulator/faults/{clear,drop_acks,redeliver,disconnect}",
            "POST /_emulator/faults/revoke {token: bot|app|user, user?}",
            "POST /_emulator/oauth/authorize {user, scopes, redirect_uri?}",
            "POST /_emulator/oauth/user_token {user, scopes}",
            "GET|POST /_emulator/scopes", "POST /_emulator/scopes/remove", "POST /_emulator/config",
        ],
    }))
}

async fn info(State(i): S) -> Response {
    let e = emu(i);
    let (client_id, client_secret) = e.oauth_client();
    reply(Ok(json!({
        "client_id": client_id,
        "client_secret": client_secret,
        "base_url": e.base_url(),
        "api_url": e.api_url(),
        "bot_token": e.bot_token(),
        "app_token": e.app_token(),
        "team_id": e.team_id(),
        "bot_user_id": e.bot_user_id(),
        "bot_id": e.bot_id(),
        "app_id": e.app_id(),
    })))
}

async fn list_users(State(i): S) -> Response {
    let ws = i.ws.lock().unwrap();
    let users: Vec<Value> = ws
        .users
        .iter()
        .map(|u| json!({"id": u.id, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot}))
        .collect();
    reply(Ok(json!({"users": users})))
}

async fn list_channels(State(i): S) -> Response {
    let ws = i.ws.lock().unwrap();
    let chans: Vec<Value> = ws
        .channels
        .iter()
        .map(|c| {
            json!({"id": c.id, "name": c.name, "kind": c.kind, "members": c.members,
                "bot_is_member": ws.bot_is_member(c), "archived": c.archived})
        })
        .collect();
    reply(Ok(json!({"channels": chans})))
}

#[derive(Deserialize)]
struct AddUser {
    name: String,
    real_name: Option<String>,
}

async fn add_user(State(i): S, Json(b): Json<AddUser>) -> Response {
    let id = emu(i).add_user(&b.name, b.real_name.as_deref().unwrap_or(&b.name));
    reply(Ok(json!({"user": id})))
}

#[derive(Deserialize)]
struct CreateChannel {
    user: String,
    name: String,
    #[serde(default)]
    private: bool,
}

async fn create_channel(State(i): S, Json(b): Json<CreateChannel>) -> Response {
    reply(
        emu(i)
            .create_channel(&b.user, &b.name, b.private)
            .map(|c| json!({"channel": c})),
    )
}

#[derive(Deserialize)]
struct Post {
    user: String,
    channel: String,
    text: String,
    thread_ts: Option<String>,
    #[serde(default)]
    broadcast: bool,
    blocks: Option<Value>,
}

async fn post_message(State(i): S, Json(b): Json<Post>) -> Response {
    let e = emu(i);
    let r = match (&b.thread_ts, b.blocks) {
        (Some(t), _) if b.broadcast => e.reply_broadcast(&b.user, &b.channel, t, &b.text),
        (Some(t), _) => e.reply(&b.user, &b.channel, t, &b.text),
        (None, Some(bl)) => e.post_message_with_blocks(&b.user, &b.channel, &b.text, bl),
        (None, None) => e.post_message(&b.user, &b.channel, &b.text),
    };
    reply(r.map(|ts| json!({"ts": ts})))
}

#[derive(Deserialize)]
struct Me {
    user: String,
    channel: String,
    text: String,
}

async fn me_message(State(i): S, Json(b): Json<Me>) -> Response {
    reply(
        emu(i)
            .me_message(&b.user, &b.channel, &b.text)
            .map(|ts| json!({"ts": ts})),
    )
}

#[derive(Deserialize)]
struct Edit {
    user: String,
    channel: String,
    ts: String,
    text: String,
}

async fn edit(State(i): S, Json(b): Json<Edit>) -> Response {
    reply(
        emu(i)
            .edit(&b.user, &b.channel, &b.ts, &b.text)
            .map(|ts| json!({"edit_ts": ts})),
    )
}

#[derive(Deserialize)]
struct MsgRef {
    user: String,
    channel: String,
    ts: String,
}

async fn delete(State(i): S, Json(b): Json<MsgRef>) -> Response {
    reply(emu(i).delete(&b.user, &b.channel, &b.ts))
}

#[derive(Deserialize)]
struct React {
    user: String,
    channel: String,
    ts: String,
    name: String,
}

async fn react(State(i): S, Json(b): Json<React>) -> Response {
    reply(emu(i).react(&b.user, &b.channel, &b.ts, &b.name))
}

async fn unreact(State(i): S, Json(b): Json<React>) -> Response {
    reply(emu(i).unreact(&b.user, &b.channel, &b.ts, &b.name))
}

#[derive(Deserialize)]
struct ShareFile {
    user: String,
    channel: String,
    name: String,
    mimetype: Option<String>,
    /// UTF-8 content, or use `content_base64` for binary.
    content: Option<String>,
    content_base64: Option<String>,
    #[serde(default)]
    comment: String,
    thread_ts: Option<String>,
}

async fn share_file(State(i): S, Json(b): Json<ShareFile>) -> Response {
    let bytes = match (&b.content_base64, &b.content) {
        (Some(s), _) => match util::base64_decode(s) {
            Some(v) => v,
            None => return reply::<()>(Err(Error::new("invalid_base64"))),
        },
        (None, Some(t)) => t.clone().into_bytes(),
        (None, None) => util::avatar_png("4bbe2e", 64),
    };
    let mime = b.mimetype.clone().unwrap_or_else(|| {
        if b.content.is_some() {
            "text/plain".into()
        } else {
            "image/png".into()
        }
    });
    reply(
        emu(i)
            .share_file_with(
                &b.user,
                &b.channel,
                &b.name,
                bytes,
                &mime,
                &b.comment,
                b.thread_ts.as_deref(),
            )
            .map(|(f, ts)| json!({"file": f, "ts": ts})),
    )
}

#[derive(Deserialize)]
struct Rename {
    user: String,
    channel: String,
    name: String,
}

async fn rename(State(i): S, Json(b): Json<Rename>) -> Response {
    reply(emu(i).rename_channel(&b.user, &b.channel, &b.name))
}

#[derive(Deserialize)]
struct Topic {
    user: String,
    channel: String,
    #[serde(alias = "purpose")]
    topic: String,
}

async fn topic(State(i): S, Json(b): Json<Topic>) -> Response {
    reply(emu(i).set_topic(&b.user, &b.channel, &b.topic))
}

async fn purpose(State(i): S, Json(b): Json<Topic>) -> Response {
    reply(emu(i).set_purpose(&b.user, &b.channel, &b.topic))
}

#[derive(Deserialize)]
struct Join {
    user: String,
    channel: String,
    inviter: Option<String>,
}

async fn join(State(i): S, Json(b): Json<Join>) -> Response {
    let e = emu(i);
    reply(match &b.inviter {
        Some(inv) => e.invite(inv, &b.user, &b.channel),
        None => e.join(&b.user, &b.channel),
    })
}

async fn leave(State(i): S, Json(b): Json<Join>) -> Response {
    reply(emu(i).leave(&b.user, &b.channel))
}

#[derive(Deserialize)]
struct Archive {
    user: String,
    channel: String,
    #[serde(default = "yes")]
    archived: bool,
}

fn yes() -> bool {
    true
}

async fn archive(State(i): S, Json(b): Json<Archive>) -> Response {
    reply(emu(i).archive_channel(&b.user, &b.channel, b.archived))
}

#[derive(Deserialize)]
struct Profile {
    user: String,
    #[serde(flatten)]
    update: ProfileUpdate,
    avatar_base64: Option<String>,
}

async fn profile(State(i): S, Json(mut b): Json<Profile>) -> Response {
    if let Some(a) = &b.avatar_base64 {
        match util::base64_decode(a) {
            Some(v) => b.update.avatar = Some(v),
            None => return reply::<()>(Err(Error::new("invalid_base64"))),
        }
    }
    reply(emu(i).update_profile(&b.user, b.update))
}

#[derive(Deserialize)]
struct Emoji {
    name: String,
    value: String,
}

async fn emoji(State(i): S, Json(b): Json<Emoji>) -> Response {
    emu(i).add_emoji(&b.name, &b.value);
    reply::<()>(Ok(()))
}

#[derive(Deserialize)]
struct CallsQuery {
    method: Option<String>,
}

async fn calls(State(i): S, Query(q): Query<CallsQuery>) -> Response {
    let e = emu(i);
    let calls = match q.method {
        Some(m) => e.calls(&m),
        None => e.all_calls(),
    };
    reply(Ok(json!({"calls": calls})))
}

async fn clear_calls(State(i): S) -> Response {
    emu(i).clear_calls();
    reply::<()>(Ok(()))
}

async fn acks(State(i): S) -> Response {
    reply(Ok(json!({"acks": emu(i).all_acks()})))
}

async fn deliveries(State(i): S) -> Response {
    reply(Ok(json!({"deliveries": emu(i).deliveries()})))
}

async fn events(State(i): S) -> Response {
    reply(Ok(json!({"events": emu(i).events()})))
}

async fn messages(State(i): S, Path(channel): Path<String>) -> Response {
    let e = emu(i);
    let id = if e.with_workspace(|w| w.channel(&channel).is_some()) {
        channel
    } else {
        match e.channel_id(&channel) {
            Some(id) => id,
            None => return reply::<()>(Err(Error::new("channel_not_found"))),
        }
    };
    reply(Ok(json!({"channel": id, "messages": e.messages(&id)})))
}

async fn connections(State(i): S) -> Response {
    let e = emu(i);
    reply(Ok(json!({
        "count": e.connection_count(),
        "ids": e.connection_ids(),
        "total": e.total_connections(),
        "pending_events": e.pending_events(),
    })))
}

/// Body of the `/faults/*` routes that script Web API faults. `times` defaults to 1;
/// `forever: true` lasts until `/faults/clear`; `channel` scopes the fault to calls whose
/// `channel` parameter names that conversation.
#[derive(Deserialize)]
struct FaultReq {
    method: String,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    forever: bool,
    channel: Option<String>,
    #[serde(default = "one_u64")]
    retry_after: u64,
    error: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    body: FaultBody,
    delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}

fn fault_builder<'a>(e: &'a Emulator, b: &FaultReq) -> crate::FaultBuilder<'a> {
    let times = if b.forever { crate::FOREVER } else { b.times };
    let f = e.fault(&b.method).times(times).body(b.body);
    match &b.channel {
        Some(c) => f.channel(c),
        None => f,
    }
}

fn bad(code: &str) -> Response {
    reply::<()>(Err(Error::new(code)))
}

async fn list_faults(State(i): S) -> Response {
    reply(Ok(json!({"faults": emu(i).faults()})))
}

async fn rate_limit(State(i): S, Json(b): Json<FaultReq>) -> Response {
    let e = emu(i);
    fault_builder(&e, &b).rate_limit(b.retry_after);
    reply::<()>(Ok(()))
}

async fn fail_next(State(i): S, Json(b): Json<FaultReq>) -> Response {
    let Some(error) = b.error.as_deref().filter(|s| !s.is_empty()) else {
        return bad("missing_error");
    };
    let e = emu(i);
    fault_builder(&e, &b).error(error);
    reply::<()>(Ok(()))
}

/// The `status` of a request, or the error code to refuse it with.
fn status_of(b: &FaultReq, default: Option<u16>) -> Result<u16, &'static str> {
    match b.status.or(default) {
        Some(s) if (200..=599).contains(&s) => Ok(s),
        Some(_) => Err("invalid_status"),
        None => Err("missing_status"),
    }
}

async fn http_status(State(i): S, Json(b): Json<FaultReq>) -> Response {
    let status = match status_of(&b, None) {
        Ok(s) => s,
        Err(code) => return bad(code),
    };
    let e = emu(i);
    fault_builder(&e, &b).http_status(status);
    reply::<()>(Ok(()))
}

async fn apply_then_status(State(i): S, Json(b): Json<FaultReq>) -> Response {
    let status = match status_of(&b, Some(503)) {
        Ok(s) => s,
        Err(code) => return bad(code),
    };
    let e = emu(i);
    fault_builder(&e, &b).apply_then_status(status);
    reply::<()>(Ok(()))
}

async fn apply_then_delay(State(i): S, Json(b): Json<FaultReq>) -> Response {
    let Some(ms) = b.delay_ms else {
        return bad("missing_delay_ms");
    };
    let e = emu(i);
    fault_builder(&e, &b).apply_then_delay(Duration::from_millis(ms));
    reply::<()>(Ok(()))
}

async fn clear_faults(State(i): S) -> Response {
    emu(i).clear_faults();
    reply::<()>(Ok(()))
}

#[derive(Deserialize)]
struct DropAcks {
    #[serde(default = "yes")]
    drop: bool,
}

async fn drop_acks(State(i): S, Json(b): Json<DropAcks>) -> Response {
    emu(i).drop_acks(b.drop);
    reply::<()>(Ok(()))
}

#[derive(Deserialize)]
struct Redeliver {
    event_id: String,
}

async fn redeliver(State(i): S, Json(b): Json<Redeliver>) -> Response {
    if emu(i).redeliver(&b.event_id) {
        reply::<()>(Ok(()))
    } else {
        reply::<()>(Err(Error::new("event_not_found")))
    }
}

#[derive(Deserialize)]
struct Disconnect {
    #[serde(default = "refresh")]
    reason: String,
    /// A connection id, or "all" (default), "newest", "oldest".
    connection: Option<Value>,
}

fn refresh() -> String {
    "refresh_requested".into()
}

async fn disconnect(State(i): S, Json(b): Json<Disconnect>) -> Response {
    let target = match &b.connection {
        None => Target::All,
        Some(Value::Number(n)) => Target::One(n.as_u64().unwrap_or(0)),
        Some(Value::String(s)) if s == "newest" => Target::Newest,
        Some(Value::String(s)) if s == "oldest" => Target::Oldest,
        Some(Value::String(s)) if s == "all" => Target::All,
        Some(Value::String(s)) => match s.parse() {
            Ok(n) => Target::One(n),
            Err(_) => return reply::<()>(Err(Error::new("invalid_connection"))),
        },
        Some(_) => return reply::<()>(Err(Error::new("invalid_connection"))),
    };
    let n = emu(i).disconnect(target, &b.reason);
    reply(Ok(json!({"disconnected": n})))
}

#[derive(Deserialize)]
struct Revoke {
    token: String,
    /// Whose user token, for `token: "user"` (an ID or handle).
    user: Option<String>,
}

async fn revoke(State(i): S, Json(b): Json<Revoke>) -> Response {
    let e = emu(i);
    match (b.token.as_str(), &b.user) {
        ("bot", _) => e.revoke_bot_token(),
        ("app", _) => e.revoke_app_token(),
        ("user", Some(u)) => return reply(e.try_revoke_user_token(u)),
        ("user", None) => return bad("missing_user"),
        _ => return reply::<()>(Err(Error::new("invalid_token_kind"))),
    }
    reply::<()>(Ok(()))
}

/// A person's grant of user scopes.
#[derive(Deserialize)]
struct Grant {
    user: String,
    scopes: Vec<String>,
    #[serde(default)]
    redirect_uri: String,
}

async fn oauth_authorize(State(i): S, Json(b): Json<Grant>) -> Response {
    let scopes: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    reply(
        emu(i)
            .try_authorize_user(&b.user, &scopes, &b.redirect_uri)
            .map(|code| json!({"code": code})),
    )
}

async fn oauth_user_token(State(i): S, Json(b): Json<Grant>) -> Response {
    let scopes: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    reply(
        emu(i)
            .try_user_token(&b.user, &scopes)
            .map(|token| json!({"token": token})),
    )
}

#[derive(Deserialize)]
struct Scopes {
    scopes: Vec<String>,
}

async fn scopes(State(i): S) -> Response {
    reply(Ok(json!({"scopes": emu(i).scopes()})))
}

async fn set_scopes(State(i): S, Json(b): Json<Scopes>) -> Response {
    let v: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    emu(i).set_scopes(&v);
    reply::<()>(Ok(()))
}

async fn remove_scopes(State(i): S, Json(b): Json<Scopes>) -> Response {
    let v: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    let e = emu(i);
    e.remove_scopes(&v);
    reply(Ok(json!({"scopes": e.scopes()})))
}

#[derive(Deserialize)]
struct ConfigBody {
    ack_timeout_ms: Option<u64>,
    refresh_grace_ms: Option<u64>,
    max_retries: Option<u32>,
    ping_interval_ms: Option<u64>,
    history_limit_cap: Option<Option<u32>>,
    thread_parent_updates: Option<bool>,
}

async fn config(State(i): S, Json(b): Json<ConfigBody>) -> Response {
    let e = emu(i);
    if let Some(ms) = b.ack_timeout_ms {
        e.set_ack_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = b.refresh_grace_ms {
        e.set_refresh_grace(Duration::from_millis(ms));
    }
    if let Some(n) = b.max_retries {
        e.set_max_retries(n);
    }
    if let Some(ms) = b.ping_interval_ms {
        e.set_ping_interval(Duration::from_millis(ms));
    }
    if let Some(c) = b.history_limit_cap {
        e.set_history_limit_cap(c);
    }
    if let Some(t) = b.thread_parent_updates {
        e.set_thread_parent_updates(t);
    }
    reply::<()>(Ok(()))
}
