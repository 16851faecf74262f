//! The Web API at `/api/<method>`: body parsing (query, form, JSON where Slack accepts it),
//! token checks, scripted faults, scope checks with `missing_scope`, cursor pagination, the
//! `x-oauth-scopes` header, call recording, and the method implementations (including message
//! metadata: validated on chat.postMessage / chat.update, returned by conversations.history and
//! replies only with `include_all_metadata=true`).
//!
//! Calls act as an [`Actor`]: the bot (bot token) or a person (user token, `xoxp-…`). A user
//! token has its own scopes, creates content as that person (messages without bot fields,
//! reactions, files), may change only their messages, and sees private conversations only
//! where they are a member. oauth.v2.access needs no token: it takes the app's client
//! credentials and a code from [`crate::Emulator::authorize_user`].

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::actions::{ApiPost, EditBlocks};
use crate::faults::{FaultBody, FaultKind, HistoryTier1};
use crate::model::{Channel, ChannelKind, File, UserId, Workspace};
use crate::oauth::UserToken;
use crate::server::Inner;
use crate::util;

/// Which token a call presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Bot,
    App,
    /// A person's user token (`xoxp-…`); [`RecordedCall::token_user`] says whose.
    User,
    /// No token at all.
    None,
    /// A token the workspace does not know.
    Invalid,
}

/// How the parameters arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    None,
    Form,
    Json,
    Other,
}

/// A Web API call as the emulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedCall {
    pub method: String,
    pub http_method: String,
    /// Query and body parameters merged; form values are strings, JSON values keep their type.
    /// Parameters of a JSON body sent to a method without JSON support are not here, because
    /// Slack does not see them either.
    pub params: Map<String, Value>,
    pub token_kind: TokenKind,
    /// For a user token: the Slack user ID of the person it belongs to (also when revoked).
    pub token_user: Option<String>,
    /// Whether the token came from the `Authorization` header (else a `token` parameter).
    pub token_in_header: bool,
    pub body_kind: BodyKind,
    /// The HTTP status the client got.
    pub status: u16,
    /// The body the client got: the JSON response, or for an injected HTTP-status fault the
    /// raw body as a JSON string (`""` when empty).
    pub response: Value,
    /// The injected fault that hit this call, as a label such as `rate_limit:7`,
    /// `error:not_in_channel`, `http_status:503`, `apply_then_status:502` or
    /// `apply_then_delay:800ms`. A call refused by [`crate::Emulator::set_history_tier1`] is
    /// labelled `rate_limit:<Retry-After>` as well.
    pub fault: Option<String>,
    /// For `apply_then_*` faults: the JSON response the method really produced (the client got
    /// `response` instead, or got it late).
    pub applied_response: Option<Value>,
}

impl RecordedCall {
    /// A parameter as a string (JSON non-strings are rendered as JSON).
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.get(name).map(value_to_string)
    }
}

fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) struct ApiError {
    code: String,
    extra: Map<String, Value>,
    status: StatusCode,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: &str) -> Self {
        ApiError {
            code: code.to_string(),
            extra: Map::new(),
            status: StatusCode::OK,
            retry_after: None,
        }
    }

    fn with(mut self, k: &str, v: Value) -> Self {
        self.extra.insert(k.to_string(), v);
        self
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        ApiError::new(&e.code)
    }
}

type ApiResult = Result<Map<String, Value>, ApiError>;

pub(crate) struct Params {
    map: Map<String, Value>,
}

impl Params {
    fn str(&self, k: &str) -> Option<String> {
        self.map
            .get(k)
            .filter(|v| !v.is_null())
            .map(value_to_string)
    }

    fn nonempty(&self, k: &str) -> Option<String> {
        self.str(k).filter(|s| !s.is_empty())
    }

    fn req(&self, k: &str, err: &str) -> Result<String, ApiError> {
        self.nonempty(k).ok_or_else(|| ApiError::new(err))
    }

    fn bool(&self, k: &str) -> bool {
        match self.map.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A structured parameter: JSON bodies carry it as-is, forms as a JSON string.
    fn json(&self, k: &str) -> Result<Option<Value>, ()> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

/// Per-method facts: whether JSON bodies are accepted (slack-protocol.md §5), the scope the
/// method needs when it does not depend on the conversation type, and whether it takes no
/// token (oauth.v2.access authenticates the app by its client credentials).
struct Spec {
    json: bool,
    scope: Option<&'static str>,
    tokenless: bool,
}

fn spec(method: &str) -> Option<Spec> {
    let (json, scope) = match method {
        "oauth.v2.access" => {
            return Some(Spec {
                json: false,
                scope: None,
                tokenless: true,
            });
        }
        "auth.test" => (true, None),
        "apps.connections.open" => (true, Some("connections:write")),
        "team.info" => (true, Some("team:read")),
        "conversations.list" | "conversations.info" | "conversations.members" => (false, None),
        "conversations.history" => (true, None),
        "conversations.replies" => (false, None),
        "conversations.join" => (true, Some("channels:join")),
        "users.info" | "users.list" | "bots.info" => (false, Some("users:read")),
        "chat.postMessage" | "chat.update" | "chat.delete" => (true, Some("chat:write")),
        "reactions.add" | "reactions.remove" => (true, Some("reactions:write")),
        "files.getUploadURLExternal" => (false, Some("files:write")),
        "files.completeUploadExternal" => (true, Some("files:write")),
        "files.info" => (false, Some("files:read")),
        "emoji.list" => (false, Some("emoji:read")),
        "usergroups.list" => (false, Some("usergroups:read")),
        _ => return None,
    };
    Some(Spec {
        json,
        scope,
        tokenless: false,
    })
}

fn missing_scope(granted: &BTreeSet<String>, needed: &[&str]) -> ApiError {
    let provided: Vec<&str> = granted.iter().map(String::as_str).collect();
    ApiError::new("missing_scope")
        .with("needed", json!(needed.join(",")))
        .with("provided", json!(provided.join(",")))
}

/// `missing_scope` unless the token's `granted` scopes include all of `scopes`.
fn need_scopes(granted: &BTreeSet<String>, scopes: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| !granted.contains(*s))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing_scope(granted, &missing))
    }
}

/// What a call presented to authenticate itself.
struct Credentials {
    kind: TokenKind,
    /// The user token behind [`TokenKind::User`], as it stood when the call arrived.
    user: Option<UserToken>,
    /// `client_id` and `client_secret` from an HTTP Basic `Authorization` header.
    basic: Option<(String, String)>,
}

/// `Authorization: Basic base64(id:secret)`, as Slack prefers for oauth.v2.access.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(util::base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Who a Web API call acts as: the app's bot user (bot token) or the person a user token
/// belongs to. What the call creates is theirs, and conversations other than public channels
/// exist for it only where they are a member.
struct Actor {
    /// The bot user's ID or the person's.
    id: UserId,
    /// A user token's scopes; `None` for the bot, whose grant is the workspace's `scopes`
    /// (read at each use, so [`crate::Emulator::set_scopes`] applies at once).
    user_scopes: Option<BTreeSet<String>>,
}

impl Actor {
    fn bot(ws: &Workspace) -> Self {
        Actor {
            id: ws.bot_user_id.clone(),
            user_scopes: None,
        }
    }

    fn person(t: UserToken) -> Self {
        Actor {
            id: t.user,
            user_scopes: Some(t.scopes),
        }
    }

    fn is_bot(&self) -> bool {
        self.user_scopes.is_none()
    }

    /// The scopes the call's token grants.
    fn scopes<'a>(&'a self, ws: &'a Workspace) -> &'a BTreeSet<String> {
        self.user_scopes.as_ref().unwrap_or(&ws.scopes)
    }

    fn is_member(&self, c: &Channel) -> bool {
        c.is_member(&self.id)
    }
}

fn kind_scope(kind: ChannelKind, suffix: &str) -> String {
    format!("{}:{suffix}", kind.scope_family())
}

pub(crate) async fn api(
    State(inner): State<Arc<Inner>>,
    Path(method): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let spec = spec(&method);
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut map = Map::new();
    for (k, v) in util::parse_form(query.as_deref().unwrap_or("")) {
        map.insert(k, json!(v));
    }
    let mut warnings: Vec<String> = Vec::new();
    let mut parse_error = None;
    let body_kind = if body.is_empty() {
        BodyKind::None
    } else if ctype.starts_with("application/json") {
        if !ctype.contains("charset") {
            warnings.push("missing_charset".into());
        }
        // Slack only reads JSON bodies for methods that declare JSON support; elsewhere the
        // body is invisible and the call behaves as if its arguments were absent.
        if spec.as_ref().map(|s| s.json).unwrap_or(false) {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(o)) => map.extend(o),
                Ok(_) => parse_error = Some("json_not_object"),
                Err(_) => parse_error = Some("invalid_json"),
            }
        }
        BodyKind::Json
    } else if ctype.starts_with("application/x-www-form-urlencoded") || ctype.is_empty() {
        for (k, v) in util::parse_form(&String::from_utf8_lossy(&body)) {
            map.insert(k, json!(v));
        }
        BodyKind::Form
    } else {
        BodyKind::Other
    };

    let auth_value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth_header = auth_value
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_string());
    let basic = auth_value.and_then(basic_credentials);
    let token_param = match body_kind {
        BodyKind::Json => None,
        _ => map.get("token").and_then(Value::as_str).map(str::to_string),
    };
    map.remove("token");
    let is_aco = method == "apps.connections.open";
    // apps.connections.open reads the app token from the header only.
    let (token, token_in_header) = match (&auth_header, is_aco) {
        (Some(t), _) => (Some(t.clone()), true),
        (None, false) => (token_param, false),
        (None, true) => (None, false),
    };

    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
    let (creds, scopes_header) = {
        let ws = inner.ws.lock().unwrap();
        let (kind, user, scopes) = match token.as_deref() {
            None => (TokenKind::None, None, None),
            Some(t) if t == ws.bot_token => (TokenKind::Bot, None, Some(join(&ws.scopes))),
            Some(t) if t == ws.app_token => (TokenKind::App, None, Some(join(&ws.app_scopes))),
            Some(t) => match ws.oauth.token(t) {
                Some(u) => (TokenKind::User, Some(u.clone()), Some(join(&u.scopes))),
                None => (TokenKind::Invalid, None, None),
            },
        };
        (Credentials { kind, user, basic }, scopes)
    };

    let params = Params { map };
    let (result, fault) = run(
        &inner,
        &method,
        &http_method,
        spec.as_ref(),
        &creds,
        parse_error,
        &params,
        &mut warnings,
    );

    let (status, mut body_json, retry_after) = match result {
        Ok(mut o) => {
            let mut out = Map::new();
            out.insert("ok".into(), json!(true));
            out.append(&mut o);
            (StatusCode::OK, out, None)
        }
        Err(e) => {
            let mut out = Map::new();
            out.insert("ok".into(), json!(false));
            out.insert("error".into(), json!(e.code));
            out.extend(e.extra);
            (e.status, out, e.retry_after)
        }
    };
    if !warnings.is_empty() {
        body_json.insert("warning".into(), json!(warnings.join(",")));
        let meta = body_json
            .entry("response_metadata")
            .or_insert_with(|| json!({}));
        meta["warnings"] = json!(warnings);
    }
    let body_value = Value::Object(body_json);
    // An HTTP-status fault replaces whatever the method (if it ran) answered.
    let raw = match &fault {
        Some(
            FaultKind::HttpStatus { status, body } | FaultKind::ApplyThenStatus { status, body },
        ) => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some((code, *body, edge_body(code, *body)))
        }
        _ => None,
    };
    let applies = fault.as_ref().is_some_and(FaultKind::applies);
    inner.calls.lock().unwrap().push(RecordedCall {
        method: method.clone(),
        http_method: http_method.to_string(),
        params: params.map.clone(),
        token_kind: creds.kind,
        token_user: creds.user.as_ref().map(|u| u.user.clone()),
        token_in_header,
        body_kind,
        status: raw.as_ref().map_or(status, |r| r.0).as_u16(),
        response: match &raw {
            Some((_, _, text)) => json!(text),
            None => body_value.clone(),
        },
        fault: fault.as_ref().map(FaultKind::label),
        applied_response: applies.then(|| body_value.clone()),
    });
    // Recorded first, so a test sees the call while its response is still held back. No lock
    // is held here.
    if let Some(d) = fault.as_ref().and_then(FaultKind::delay) {
        tokio::time::sleep(d).await;
    }
    if let Some((code, kind, text)) = raw {
        let mut resp = (code, text).into_response();
        let h = resp.headers_mut();
        match kind {
            FaultBody::Html => {
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
            FaultBody::Empty => {
                h.remove(header::CONTENT_TYPE);
            }
        }
        return resp;
    }

    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body_value.to_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Some(s) = scopes_header.and_then(|s| HeaderValue::from_str(&s).ok()) {
        h.insert("x-oauth-scopes", s);
    }
    if let Some(scope) = spec.as_ref().and_then(|s| s.scope)
        && let Ok(v) = HeaderValue::from_str(scope)
    {
        h.insert("x-accepted-oauth-scopes", v);
    }
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The HTML page Slack's edge serves with a bare 5xx (or any injected status).
fn edge_body(code: StatusCode, kind: FaultBody) -> String {
    match kind {
        FaultBody::Empty => String::new(),
        FaultBody::Html => {
            let title = format!(
                "{} {}",
                code.as_u16(),
                code.canonical_reason().unwrap_or("Error")
            );
            format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
            )
        }
    }
}

/// A conversation as Slack resolves a `channel` argument: an ID, a `#name` / `name`, or a
/// person's ID standing for their DM with the bot.
pub(crate) fn resolve_channel(ws: &Workspace, raw: &str) -> Option<String> {
    ws.channel(raw)
        .or_else(|| ws.channel_by_name(raw))
        .or_else(|| {
            (raw != ws.bot_user_id && ws.user(raw).is_some())
                .then(|| ws.dm_with(raw))
                .flatten()
        })
        .map(|c| c.id.clone())
}

/// The conversation a call is about, for channel-scoped faults: its `channel` (or
/// files.completeUploadExternal's `channel_id`) parameter as sent, plus what that resolves to.
fn call_channels(inner: &Inner, p: &Params) -> Vec<String> {
    let Some(raw) = p.nonempty("channel").or_else(|| p.nonempty("channel_id")) else {
        return Vec::new();
    };
    let resolved = resolve_channel(&inner.ws.lock().unwrap(), &raw);
    let mut out = vec![raw];
    out.extend(resolved.filter(|r| *r != out[0]));
    out
}

/// Checks the call, applies scripted faults, runs the method. Returns the method's result (or
/// the error a fault put in its place) and the fault that fired, if any.
#[allow(clippy::too_many_arguments)]
fn run(
    inner: &Arc<Inner>,
    method: &str,
    http_method: &Method,
    spec: Option<&Spec>,
    creds: &Credentials,
    parse_error: Option<&str>,
    p: &Params,
    warnings: &mut Vec<String>,
) -> (ApiResult, Option<FaultKind>) {
    if let Err(e) = check(inner, http_method, spec, creds, parse_error) {
        return (Err(e), None);
    }
    let channels = call_channels(inner, p);
    // The history Tier 1 limit refuses a call like a rate-limit fault, before scripted faults.
    let fault = {
        let mut faults = inner.faults.lock().unwrap();
        let limited = faults.tier1.check(method, tokio::time::Instant::now());
        limited.or_else(|| faults.take(method, &channels))
    };
    let result = match &fault {
        Some(FaultKind::RateLimit { retry_after }) => Err(ApiError {
            code: "ratelimited".into(),
            extra: Map::new(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(*retry_after),
        }),
        Some(FaultKind::Error { error }) => Err(ApiError::new(error)),
        // The method does not run; the caller answers the status.
        Some(FaultKind::HttpStatus { .. }) => Err(ApiError::new("http_status_fault")),
        _ => dispatch(inner, method, http_method, spec, creds, p, warnings),
    };
    (result, fault)
}

fn check(
    inner: &Arc<Inner>,
    http_method: &Method,
    spec: Option<&Spec>,
    creds: &Credentials,
    parse_error: Option<&str>,
) -> Result<(), ApiError> {
    if http_method != Method::GET && http_method != Method::POST {
        return Err(ApiError::new("invalid_post_type"));
    }
    if !spec.is_some_and(|s| s.tokenless) {
        let ws = inner.ws.lock().unwrap();
        match creds.kind {
            TokenKind::None => return Err(ApiError::new("not_authed")),
            TokenKind::Invalid => return Err(ApiError::new("invalid_auth")),
            TokenKind::Bot if ws.bot_token_revoked => return Err(ApiError::new("token_revoked")),
            TokenKind::User if creds.user.as_ref().is_some_and(|u| u.revoked) => {
                return Err(ApiError::new("token_revoked"));
            }
            // A revoked app token cannot open sockets; Slack says invalid_auth there.
            TokenKind::App if ws.app_token_revoked => return Err(ApiError::new("invalid_auth")),
            _ => {}
        }
    }
    if let Some(e) = parse_error {
        return Err(ApiError::new(e));
    }
    Ok(())
}

fn dispatch(
    inner: &Arc<Inner>,
    method: &str,
    http_method: &Method,
    spec: Option<&Spec>,
    creds: &Credentials,
    p: &Params,
    warnings: &mut Vec<String>,
) -> ApiResult {
    let Some(spec) = spec else {
        return Err(ApiError::new("unknown_method"));
    };
    if spec.tokenless {
        return oauth_v2_access(inner, p, creds.basic.as_ref());
    }
    // apps.connections.open takes only the app token; everything else a bot or user token.
    if method == "apps.connections.open" {
        return match creds.kind {
            TokenKind::App => connections_open(inner, http_method),
            _ => Err(ApiError::new("not_allowed_token_type")),
        };
    }
    let actor = match (creds.kind, &creds.user) {
        (TokenKind::Bot, _) => Actor::bot(&inner.ws.lock().unwrap()),
        (TokenKind::User, Some(t)) => Actor::person(t.clone()),
        _ => return Err(ApiError::new("not_allowed_token_type")),
    };
    // User tokens join with channels:write; bots have channels:join (slack-protocol.md §5).
    let scope = match method {
        "conversations.join" if !actor.is_bot() => Some("channels:write"),
        _ => spec.scope,
    };
    if let Some(scope) = scope {
        let ws = inner.ws.lock().unwrap();
        need_scopes(actor.scopes(&ws), &[scope])?;
    }
    let a = &actor;
    match method {
        "auth.test" => auth_test(inner, a),
        "team.info" => team_info(inner),
        "conversations.list" => conversations_list(inner, a, p),
        "conversations.info" => conversations_info(inner, a, p),
        "conversations.members" => conversations_members(inner, a, p),
        "conversations.history" => conversations_history(inner, a, p),
        "conversations.replies" => conversations_replies(inner, a, p),
        "conversations.join" => conversations_join(inner, a, p, warnings),
        "users.info" => users_info(inner, a, p),
        "users.list" => users_list(inner, a, p),
        "bots.info" => bots_info(inner, p),
        "chat.postMessage" => chat_post_message(inner, a, p, warnings),
        "chat.update" => chat_update(inner, a, p, warnings),
        "chat.delete" => chat_delete(inner, a, p),
        "reactions.add" => reactions(inner, a, p, true),
        "reactions.remove" => reactions(inner, a, p, false),
        "files.getUploadURLExternal" => get_upload_url(inner, a, p),
        "files.completeUploadExternal" => complete_upload(inner, a, p),
        "files.info" => files_info(inner, a, p),
        "emoji.list" => emoji_list(inner),
        "usergroups.list" => usergroups_list(inner, p),
        _ => Err(ApiError::new("unknown_method")),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// pagination

const CURSOR_PREFIX: &str = "offset:";

fn page_limit(p: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match p.nonempty("limit") {
        None => Ok(default),
        Some(s) => {
            let n: i64 = s.parse().map_err(|_| ApiError::new("invalid_limit"))?;
            if n < 0 {
                return Err(ApiError::new("invalid_limit"));
            }
            Ok(if n == 0 {
                default
            } else {
                (n as usize).min(max)
            })
        }
    }
}

fn page_offset(p: &Params) -> Result<usize, ApiError> {
    match p.nonempty("cursor") {
        None => Ok(0),
        Some(c) => util::base64_decode(&c)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(CURSOR_PREFIX).and_then(|n| n.parse().ok()))
            .ok_or_else(|| ApiError::new("invalid_cursor")),
    }
}

fn cursor_for(offset: usize) -> String {
    util::base64_encode(format!("{CURSOR_PREFIX}{offset}").as_bytes())
}

/// Slices `items` and returns the page plus `next_cursor` ("" when done, as Slack sends it).
fn paginate<T: Clone>(
    items: &[T],
    p: &Params,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, String), ApiError> {
    let limit = page_limit(p, default, max)?;
    let offset = page_offset(p)?;
    if offset > items.len() {
        return Err(ApiError::new("invalid_cursor"));
    }
    let end = (offset + limit).min(items.len());
    let next = if end < items.len() {
        cursor_for(end)
    } else {
        String::new()
    };
    Ok((items[offset..end].to_vec(), next))
}

// ---------------------------------------------------------------------------------------------
// conversations

/// The actor (bot or person) sees every public channel, and private conversations (private
/// channels, DMs, group DMs) only when a member; anything else is `channel_not_found`, as
/// Slack hides it.
fn visible_channel<'a>(
    ws: &'a Workspace,
    actor: &Actor,
    id: Option<String>,
) -> Result<&'a Channel, ApiError> {
    let id = id.ok_or_else(|| ApiError::new("channel_not_found"))?;
    let c = ws
        .channel(&id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if c.kind != ChannelKind::Public && !actor.is_member(c) {
        return Err(ApiError::new("channel_not_found"));
    }
    Ok(c)
}

/// auth.test: who the token is. A user token names its person and has no `bot_id`.
fn auth_test(inner: &Arc<Inner>, actor: &Actor) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let name = ws
        .user(&actor.id)
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let mut out = obj(json!({
        "url": format!("{}/", inner.base_url),
        "team": ws.team_name,
        "user": name,
        "team_id": ws.team_id,
        "user_id": actor.id,
        "is_enterprise_install": false,
    }));
    if actor.is_bot() {
        out.insert("bot_id".into(), json!(ws.bot_id));
    }
    Ok(out)
}

/// oauth.v2.access: the app (client credentials from HTTP Basic auth, else the `client_id`
/// and `client_secret` parameters) redeems a code from [`crate::Emulator::authorize_user`]
/// for the person's user token. The answer is Slack's shape for a user-scope-only install.
fn oauth_v2_access(inner: &Arc<Inner>, p: &Params, basic: Option<&(String, String)>) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let (id, secret) = match basic {
        Some((i, s)) => (Some(i.clone()), Some(s.clone())),
        None => (p.nonempty("client_id"), p.nonempty("client_secret")),
    };
    ws.oauth
        .check_client(id.as_deref(), secret.as_deref())
        .map_err(ApiError::new)?;
    match p.nonempty("grant_type").as_deref() {
        None | Some("authorization_code") => {}
        // Token rotation is off, so there are no refresh tokens.
        Some("refresh_token") => return Err(ApiError::new("invalid_refresh_token")),
        Some(_) => return Err(ApiError::new("invalid_grant_type")),
    }
    let now = tokio::time::Instant::now();
    let t = ws
        .oauth
        .redeem(
            p.nonempty("code").as_deref(),
            p.nonempty("redirect_uri").as_deref(),
            now,
        )
        .map_err(ApiError::new)?;
    let scope = t.scopes.iter().cloned().collect::<Vec<_>>().join(",");
    Ok(obj(json!({
        "app_id": ws.app_id,
        "authed_user": {
            "id": t.user,
            "scope": scope,
            "access_token": t.token,
            "token_type": "user",
        },
        "team": {"id": ws.team_id, "name": ws.team_name},
        "enterprise": null,
        "is_enterprise_install": false,
    })))
}

fn connections_open(inner: &Arc<Inner>, http_method: &Method) -> ApiResult {
    if http_method != Method::POST {
        return Err(ApiError::new("invalid_post_type"));
    }
    let app_id = inner.ws.lock().unwrap().app_id.clone();
    let ticket = inner.disp.lock().unwrap().issue_ticket();
    Ok(obj(json!({
        "url": format!("{}/link/?ticket={ticket}&app_id={app_id}", inner.ws_url()),
    })))
}

fn team_info(inner: &Arc<Inner>) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let icon = format!("{}/avatars/{}.png", inner.base_url, ws.bot_user_id);
    Ok(obj(json!({
        "team": {
            "id": ws.team_id,
            "name": ws.team_name,
            "url": format!("{}/", inner.base_url),
            "domain": ws.domain,
            "email_domain": format!("{}.example.com", ws.domain),
            "icon": {
                "image_34": icon, "image_44": icon, "image_68": icon, "image_88": icon,
                "image_102": icon, "image_132": icon, "image_230": icon, "image_default": true,
            },
            "avatar_base_url": format!("{}/avatars/", inner.base_url),
            "is_verified": false,
        }
    })))
}

fn conversations_list(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let types_param = p
        .nonempty("types")
        .unwrap_or_else(|| "public_channel".into());
    let mut kinds = Vec::new();
    for t in types_param.split(',').map(str::trim) {
        let k = match t {
            "public_channel" => ChannelKind::Public,
            "private_channel" => ChannelKind::Private,
            "im" => ChannelKind::Im,
            "mpim" => ChannelKind::Mpim,
            _ => return Err(ApiError::new("invalid_types")),
        };
        kinds.push(k);
    }
    let needed: Vec<String> = kinds.iter().map(|k| kind_scope(*k, "read")).collect();
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    need_scopes(actor.scopes(&ws), &needed)?;
    let exclude_archived = p.bool("exclude_archived");
    // Slack pages over all conversations and filters afterwards, so pages can be short or even
    // empty while `next_cursor` is set; clients must keep following the cursor.
    let all: Vec<&Channel> = ws.channels.iter().collect();
    let (page, next) = paginate(&all, p, 100, 1000)?;
    let channels: Vec<Value> = page
        .into_iter()
        .filter(|c| kinds.contains(&c.kind))
        .filter(|c| c.kind == ChannelKind::Public || actor.is_member(c))
        .filter(|c| !(exclude_archived && c.archived))
        .map(|c| ws.channel_json_as(c, &actor.id))
        .collect();
    Ok(obj(json!({
        "channels": channels,
        "response_metadata": {"next_cursor": next},
    })))
}

fn conversations_info(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    need_scopes(actor.scopes(&ws), &[&kind_scope(c.kind, "read")])?;
    let mut v = ws.channel_json_as(c, &actor.id);
    if !p.bool("include_num_members") {
        v.as_object_mut().unwrap().remove("num_members");
    }
    Ok(obj(json!({"channel": v})))
}

fn conversations_members(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    need_scopes(actor.scopes(&ws), &[&kind_scope(c.kind, "read")])?;
    let (page, next) = paginate(&c.members, p, 100, 1000)?;
    Ok(obj(json!({
        "members": page,
        "response_metadata": {"next_cursor": next},
    })))
}

fn history_access<'a>(
    ws: &'a Workspace,
    actor: &Actor,
    p: &Params,
) -> Result<&'a Channel, ApiError> {
    let c = visible_channel(ws, actor, p.nonempty("channel"))?;
    need_scopes(actor.scopes(ws), &[&kind_scope(c.kind, "history")])?;
    if !actor.is_member(c) {
        return Err(ApiError::new("not_in_channel"));
    }
    Ok(c)
}

/// The default and maximum `limit`, after the configured cap and the history Tier 1 cap.
fn history_limits(inner: &Arc<Inner>, default: usize, max: usize) -> (usize, usize) {
    let configured = inner.config.lock().unwrap().history_limit_cap;
    let mut cap = configured.map_or(usize::MAX, |c| c as usize);
    if inner.faults.lock().unwrap().tier1.is_on() {
        cap = cap.min(HistoryTier1::PAGE_CAP);
    }
    (default.min(cap), max.min(cap))
}

fn conversations_history(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let (default, max) = history_limits(inner, 100, 999);
    let ws = inner.ws.lock().unwrap();
    let c = history_access(&ws, actor, p)?;
    let parse = |k: &str, err: &str| -> Result<Option<u64>, ApiError> {
        match p.nonempty(k) {
            None => Ok(None),
            Some(s) => util::parse_ts(&s)
                .map(Some)
                .ok_or_else(|| ApiError::new(err)),
        }
    };
    let oldest = parse("oldest", "invalid_ts_oldest")?;
    let latest = parse("latest", "invalid_ts_latest")?;
    let inclusive = p.bool("inclusive");
    let limit = page_limit(p, default, max)?;
    let before = match p.nonempty("cursor") {
        None => None,
        Some(cur) => Some(
            util::base64_decode(&cur)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.strip_prefix("next_ts:")
                        .and_then(|t| t.parse::<u64>().ok())
                })
                .ok_or_else(|| ApiError::new("invalid_cursor"))?,
        ),
    };
    let mut msgs: Vec<_> = c
        .messages
        .iter()
        .filter(|m| m.in_history())
        .filter(|m| {
            let t = util::parse_ts(&m.ts).unwrap_or(0);
            let lo = oldest.is_none_or(|o| if inclusive { t >= o } else { t > o });
            let hi = latest.is_none_or(|l| if inclusive { t <= l } else { t < l });
            let cur = before.is_none_or(|b| t <= b);
            lo && hi && cur
        })
        .collect();
    msgs.reverse(); // newest first
    let has_more = msgs.len() > limit;
    let next = if has_more {
        let t = util::parse_ts(&msgs[limit].ts).unwrap_or(0);
        util::base64_encode(format!("next_ts:{t}").as_bytes())
    } else {
        String::new()
    };
    let mut out: Vec<Value> = msgs
        .into_iter()
        .take(limit)
        .map(|m| ws.message_json(c, m))
        .collect();
    strip_metadata(p, &mut out);
    let mut r = obj(json!({
        "messages": out,
        "has_more": has_more,
        "pin_count": 0,
        "channel_actions_ts": null,
        "channel_actions_count": 0,
    }));
    if has_more {
        r.insert("response_metadata".into(), json!({"next_cursor": next}));
    }
    Ok(r)
}

fn conversations_replies(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let (default, max) = history_limits(inner, 1000, 1000);
    let ws = inner.ws.lock().unwrap();
    let c = history_access(&ws, actor, p)?;
    let ts = p.req("ts", "thread_not_found")?;
    let parent = c
        .message(&ts)
        .ok_or_else(|| ApiError::new("thread_not_found"))?;
    let root = match &parent.thread_ts {
        Some(t) if *t != parent.ts => c
            .message(t)
            .ok_or_else(|| ApiError::new("thread_not_found"))?,
        _ => parent,
    };
    let replies: Vec<_> = c.replies(&root.ts).collect();
    // The root counts against the limit on every page and is repeated at the top of each.
    let limit = page_limit(p, default, max)?.max(2);
    let per_page = limit - 1;
    let offset = page_offset(p)?;
    if offset > replies.len() {
        return Err(ApiError::new("invalid_cursor"));
    }
    let end = (offset + per_page).min(replies.len());
    let mut out = vec![ws.message_json(c, root)];
    out.extend(replies[offset..end].iter().map(|m| ws.message_json(c, m)));
    strip_metadata(p, &mut out);
    let has_more = end < replies.len();
    let mut r = obj(json!({"messages": out, "has_more": has_more}));
    if has_more {
        r.insert(
            "response_metadata".into(),
            json!({"next_cursor": cursor_for(end)}),
        );
    }
    Ok(r)
}

fn conversations_join(
    inner: &Arc<Inner>,
    actor: &Actor,
    p: &Params,
    warnings: &mut Vec<String>,
) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    if c.kind != ChannelKind::Public {
        if actor.is_member(c) {
            warnings.push("already_in_channel".into());
            return Ok(obj(json!({"channel": ws.channel_json_as(c, &actor.id)})));
        }
        return Err(ApiError::new("method_not_supported_for_channel_type"));
    }
    if c.archived {
        return Err(ApiError::new("is_archived"));
    }
    let id = c.id.clone();
    let (joined, events) = ws.act_join(&actor.id, &id, None)?;
    if !joined {
        warnings.push("already_in_channel".into());
    }
    inner.commit(&ws, events);
    let c = ws.channel(&id).unwrap();
    Ok(obj(json!({"channel": ws.channel_json_as(c, &actor.id)})))
}

// ---------------------------------------------------------------------------------------------
// users, bots, team, emoji

fn users_info(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let id = p.req("user", "user_not_found")?;
    let u = ws
        .user(&id)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    let email = actor.scopes(&ws).contains("users:read.email");
    Ok(obj(json!({"user": ws.user_json(u, email)})))
}

fn users_list(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let email = actor.scopes(&ws).contains("users:read.email");
    let all: Vec<Value> = ws.users.iter().map(|u| ws.user_json(u, email)).collect();
    let (page, next) = paginate(&all, p, 100, 1000)?;
    Ok(obj(json!({
        "members": page,
        "cache_ts": util::now_secs(),
        "response_metadata": {"next_cursor": next},
    })))
}

fn bots_info(inner: &Arc<Inner>, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let id = p.req("bot", "bot_not_found")?;
    let b = ws.bot(&id).ok_or_else(|| ApiError::new("bot_not_found"))?;
    Ok(obj(json!({"bot": ws.bot_json(b)})))
}

fn emoji_list(inner: &Arc<Inner>) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    Ok(obj(json!({
        "emoji": ws.emoji,
        "cache_ts": format!("{}.000000", util::now_secs()),
    })))
}

/// usergroups.list: the workspace's user groups; their members only with `include_users`.
fn usergroups_list(inner: &Arc<Inner>, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let with_users = p.bool("include_users");
    let groups: Vec<Value> = ws
        .usergroups
        .iter()
        .map(|g| {
            let mut v = json!({
                "id": g.id, "team_id": ws.team_id, "is_usergroup": true, "name": g.name,
                "handle": g.handle, "description": "", "user_count": g.users.len(),
                "date_create": util::now_secs(), "date_delete": 0,
            });
            if with_users {
                v["users"] = json!(g.users);
            }
            v
        })
        .collect();
    Ok(obj(json!({ "usergroups": groups })))
}

// ---------------------------------------------------------------------------------------------
// chat

/// Resolves chat.postMessage's `channel`: an ID, a `#name`, or a user ID (the DM between the
/// actor and that user, opened if needed). Only the bot may post in public channels it is not
/// in (with chat:write.public); people post only where they are members.
fn post_target(ws: &mut Workspace, actor: &Actor, raw: &str) -> Result<String, ApiError> {
    if raw.starts_with('U') || raw.starts_with('W') {
        if ws.user(raw).is_none() {
            return Err(ApiError::new("channel_not_found"));
        }
        if let Some(c) = ws.im_between(&actor.id, raw) {
            return Ok(c.id.clone());
        }
        return Ok(if actor.is_bot() {
            ws.add_dm(raw)
        } else {
            ws.add_im_between(&actor.id, raw)
        });
    }
    let c = ws
        .channel(raw)
        .or_else(|| ws.channel_by_name(raw))
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if c.kind != ChannelKind::Public && !actor.is_member(c) {
        return Err(ApiError::new("channel_not_found"));
    }
    if c.archived {
        return Err(ApiError::new("is_archived"));
    }
    let public_ok = actor.is_bot() && ws.scopes.contains("chat:write.public");
    if !actor.is_member(c) && !public_ok {
        return Err(ApiError::new("not_in_channel"));
    }
    Ok(c.id.clone())
}

fn parse_blocks(p: &Params) -> Result<Option<Value>, ApiError> {
    let blocks = p
        .json("blocks")
        .map_err(|_| ApiError::new("invalid_blocks_format"))?;
    if let Some(b) = &blocks {
        if !b.is_array() {
            return Err(ApiError::new("invalid_blocks_format"));
        }
        crate::blocks::validate_blocks(b).map_err(|m| {
            ApiError::new("invalid_blocks")
                .with("errors", json!([m.clone()]))
                .with(
                    "response_metadata",
                    json!({"messages": [format!("[ERROR] {m}")]}),
                )
        })?;
    }
    Ok(blocks)
}

/// A `metadata` argument of chat.postMessage / chat.update (Slack docs, "Using message
/// metadata").
enum MetadataArg {
    /// Not given (or an empty string).
    Absent,
    /// `{}`: chat.update removes the message's metadata.
    Remove,
    /// Valid: `{"event_type": …, "event_payload": {…}}`, as stored.
    Set(Value),
    /// An `event_type` outside letters, digits, `_` and `-`: Slack answers ok with an
    /// `invalid_metadata_schema` warning and ignores the metadata.
    Ignored,
}

fn parse_metadata(
    p: &Params,
    warnings: &mut Vec<String>,
    empty_removes: bool,
) -> Result<MetadataArg, ApiError> {
    let format = || ApiError::new("invalid_metadata_format");
    let v = match p.json("metadata") {
        Err(()) => return Err(format()),
        Ok(None) => return Ok(MetadataArg::Absent),
        Ok(Some(v)) => v,
    };
    let o = v.as_object().ok_or_else(format)?;
    if o.is_empty() && empty_removes {
        return Ok(MetadataArg::Remove);
    }
    let (Some(Value::String(event_type)), Some(payload @ Value::Object(_))) =
        (o.get("event_type"), o.get("event_payload"))
    else {
        return Err(format());
    };
    let valid = !event_type.is_empty()
        && event_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        warnings.push("invalid_metadata_schema".into());
        return Ok(MetadataArg::Ignored);
    }
    Ok(MetadataArg::Set(
        json!({"event_type": event_type, "event_payload": payload}),
    ))
}

/// conversations.history / replies leave `metadata` out unless `include_all_metadata` is set.
fn strip_metadata(p: &Params, messages: &mut [Value]) {
    if p.bool("include_all_metadata") {
        return;
    }
    for m in messages {
        if let Some(o) = m.as_object_mut() {
            o.remove("metadata");
            if let Some(root) = o.get_mut("root").and_then(Value::as_object_mut) {
                root.remove("metadata");
            }
        }
    }
}

const MAX_TEXT: usize = 40_000;

/// chat.postMessage, by the bot or, with a user token, by that person (a plain message of
/// theirs: `username` / `icon_*` are not applied).
fn chat_post_message(
    inner: &Arc<Inner>,
    actor: &Actor,
    p: &Params,
    warnings: &mut Vec<String>,
) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let raw = p.req("channel", "channel_not_found")?;
    let blocks = parse_blocks(p)?;
    let metadata = match parse_metadata(p, warnings, false)? {
        MetadataArg::Set(v) => Some(v),
        _ => None,
    };
    let attachments = p
        .json("attachments")
        .map_err(|_| ApiError::new("invalid_attachments"))?;
    let text = p.str("text").unwrap_or_default();
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if text.is_empty() && !has_blocks && attachments.is_none() {
        return Err(ApiError::new("no_text"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::new("msg_too_long"));
    }
    // Name and icon overrides are for bots; a person's post ignores them.
    let (username, icon_url, icon_emoji) = if actor.is_bot() {
        (
            p.nonempty("username"),
            p.nonempty("icon_url"),
            p.nonempty("icon_emoji"),
        )
    } else {
        (None, None, None)
    };
    if username.is_some() || icon_url.is_some() || icon_emoji.is_some() {
        // Whether Slack ignores or rejects these without the scope is unsure; rejecting
        // makes a missing scope visible.
        need_scopes(actor.scopes(&ws), &["chat:write.customize"])?;
    }
    let thread_ts = p.nonempty("thread_ts");
    if let Some(t) = &thread_ts
        && util::parse_ts(t).is_none()
    {
        return Err(ApiError::new("invalid_thread_ts"));
    }
    let channel = post_target(&mut ws, actor, &raw)?;
    let post = ApiPost {
        text,
        blocks,
        reply_broadcast: p.bool("reply_broadcast"),
        thread_ts,
        username,
        icon_url,
        icon_emoji,
        metadata,
    };
    let ((ts, message), events) = ws.api_post(&actor.id, &channel, post)?;
    inner.commit(&ws, events);
    let mut message = message;
    if let Some(o) = message.as_object_mut() {
        // The response's copy has no per-channel summary fields.
        for k in [
            "reactions",
            "reply_count",
            "reply_users",
            "reply_users_count",
            "latest_reply",
        ] {
            o.remove(k);
        }
    }
    Ok(obj(
        json!({"channel": channel, "ts": ts, "message": message}),
    ))
}

/// chat.update of one of the actor's own messages (`cant_update_message` otherwise).
fn chat_update(
    inner: &Arc<Inner>,
    actor: &Actor,
    p: &Params,
    warnings: &mut Vec<String>,
) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    let channel = c.id.clone();
    let ts = p.req("ts", "message_not_found")?;
    let m = c
        .message(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    if m.user.as_deref() != Some(actor.id.as_str()) {
        return Err(ApiError::new("cant_update_message"));
    }
    let blocks = parse_blocks(p)?;
    // Without `metadata` the message keeps its metadata; `{}` removes it.
    let metadata = match parse_metadata(p, warnings, true)? {
        MetadataArg::Absent | MetadataArg::Ignored => None,
        MetadataArg::Remove => Some(None),
        MetadataArg::Set(v) => Some(Some(v)),
    };
    let text = match p.str("text") {
        Some(t) => t,
        None if blocks.is_some() => String::new(),
        None => m
            .body
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    };
    if text.is_empty()
        && blocks
            .as_ref()
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    {
        return Err(ApiError::new("no_text"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::new("msg_too_long"));
    }
    let blocks = blocks.map_or(EditBlocks::Keep, EditBlocks::Set);
    let (_, events) = ws.act_edit(&actor.id, &channel, &ts, &text, blocks, metadata)?;
    inner.commit(&ws, events);
    let c = ws.channel(&channel).unwrap();
    let mut msg = ws.message_json(c, c.message(&ts).unwrap());
    if let Some(o) = msg.as_object_mut() {
        o.remove("ts");
        o.remove("reactions");
    }
    Ok(obj(
        json!({"channel": channel, "ts": ts, "text": text, "message": msg}),
    ))
}

/// chat.delete of one of the actor's own messages (`cant_delete_message` otherwise, also for
/// admins' user tokens: the stricter reading).
fn chat_delete(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    let channel = c.id.clone();
    let ts = p.req("ts", "message_not_found")?;
    let m = c
        .message(&ts)
        .ok_or_else(|| ApiError::new("message_not_found"))?;
    if m.user.as_deref() != Some(actor.id.as_str()) {
        return Err(ApiError::new("cant_delete_message"));
    }
    let (_, events) = ws.act_delete(Some(&actor.id), &channel, &ts)?;
    inner.commit(&ws, events);
    Ok(obj(json!({"channel": channel, "ts": ts})))
}

/// reactions.add / reactions.remove: the actor's reaction.
fn reactions(inner: &Arc<Inner>, actor: &Actor, p: &Params, add: bool) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let name = p.req("name", "invalid_name")?;
    if p.nonempty("timestamp").is_none() && p.nonempty("file").is_none() {
        return Err(ApiError::new("no_item_specified"));
    }
    let c = visible_channel(&ws, actor, p.nonempty("channel"))?;
    let channel = c.id.clone();
    let ts = p.req("timestamp", "no_item_specified")?;
    if c.archived {
        return Err(ApiError::new("is_archived"));
    }
    let (_, events) = if add {
        ws.act_react(&actor.id, &channel, &ts, &name)?
    } else {
        ws.act_unreact(&actor.id, &channel, &ts, &name)?
    };
    inner.commit(&ws, events);
    Ok(Map::new())
}

// ---------------------------------------------------------------------------------------------
// files

/// files.getUploadURLExternal: a pending file owned by the actor.
fn get_upload_url(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let filename = p.req("filename", "invalid_arguments")?;
    let length: u64 = p
        .req("length", "invalid_arguments")?
        .parse()
        .map_err(|_| ApiError::new("invalid_arguments"))?;
    let id = util::slack_id('F');
    let ticket = format!("{}{}", util::random_alnum(24), util::random_hex(16));
    let mimetype = guess_mime(&filename);
    ws.files.push(File {
        id: id.clone(),
        name: filename.clone(),
        title: filename,
        mimetype,
        user: actor.id.clone(),
        created: util::now_secs(),
        bytes: Arc::new(Vec::new()),
        declared_len: Some(length),
        uploaded: false,
        completed: false,
        alt_txt: p.nonempty("alt_txt").or_else(|| p.nonempty("alt_text")),
        shares: vec![],
        upload_ticket: ticket.clone(),
        external_url: None,
        check_file_info: false,
        deleted: false,
        duration_ms: None,
    });
    Ok(obj(json!({
        "upload_url": format!("{}/upload/v1/{ticket}", inner.base_url),
        "file_id": id,
    })))
}

fn guess_mime(name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// files.completeUploadExternal: the share message (a moment later) is the actor's.
fn complete_upload(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let mut ws = inner.ws.lock().unwrap();
    let files = match p.json("files") {
        Ok(Some(Value::Array(a))) if !a.is_empty() => a,
        _ => return Err(ApiError::new("invalid_arguments")),
    };
    let mut ids = Vec::new();
    for f in &files {
        let id = f["id"]
            .as_str()
            .ok_or_else(|| ApiError::new("invalid_arguments"))?;
        let rec = ws.file(id).ok_or_else(|| ApiError::new("file_not_found"))?;
        // Completing twice, or before the bytes arrived, leaves nothing pending to complete.
        if !rec.uploaded || rec.completed {
            return Err(ApiError::new("file_not_found"));
        }
        ids.push((id.to_string(), f["title"].as_str().map(str::to_string)));
    }
    // Name and icon overrides apply to bots only, as in chat.postMessage.
    if actor.is_bot()
        && (p.nonempty("username").is_some()
            || p.nonempty("icon_url").is_some()
            || p.nonempty("icon_emoji").is_some())
    {
        need_scopes(actor.scopes(&ws), &["chat:write.customize"])?;
    }
    let mut targets: Vec<String> = Vec::new();
    if let Some(c) = p.nonempty("channel_id") {
        targets.push(c);
    }
    if let Some(cs) = p.nonempty("channels") {
        targets.extend(
            cs.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    if targets.len() > 100 {
        return Err(ApiError::new("channels_limit_exceeded"));
    }
    let thread_ts = p.nonempty("thread_ts");
    if thread_ts.is_some() && targets.len() > 1 {
        return Err(ApiError::new("invalid_arguments"));
    }
    for t in &targets {
        let c = visible_channel(&ws, actor, Some(t.clone()))?;
        if !actor.is_member(c) {
            return Err(ApiError::new("not_in_channel"));
        }
    }
    for (id, title) in &ids {
        let f = ws.file_mut(id).unwrap();
        f.completed = true;
        if let Some(t) = title {
            f.title = t.clone();
        }
    }
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|(id, _)| ws.file(id))
        .map(|f| ws.file_json(f))
        .collect();
    if !targets.is_empty() {
        let comment = p.str("initial_comment").unwrap_or_default();
        let file_ids: Vec<String> = ids.into_iter().map(|(id, _)| id).collect();
        let delay = inner.config.lock().unwrap().file_share_delay;
        let inner2 = inner.clone();
        let author = actor.id.clone();
        // Slack shares asynchronously: the response shows no shares yet and the file_share
        // message arrives a moment later.
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut ws = inner2.ws.lock().unwrap();
            for t in targets {
                match ws.share_file_message(
                    &author,
                    &t,
                    &file_ids,
                    &comment,
                    thread_ts.as_deref(),
                    true,
                ) {
                    Ok((_, events)) => inner2.commit(&ws, events),
                    Err(e) => tracing::warn!(channel = %t, error = %e, "file share failed"),
                }
            }
        });
    }
    Ok(obj(json!({"files": out})))
}

fn files_info(inner: &Arc<Inner>, actor: &Actor, p: &Params) -> ApiResult {
    let ws = inner.ws.lock().unwrap();
    let id = p.req("file", "file_not_found")?;
    let f = ws
        .file(&id)
        .filter(|f| f.completed)
        .ok_or_else(|| ApiError::new("file_not_found"))?;
    if f.deleted {
        return Err(ApiError::new("file_deleted"));
    }
    let visible = f.user == actor.id
        || f.shares.iter().any(|(c, _)| {
            ws.channel(c)
                .is_some_and(|c| c.kind == ChannelKind::Public || actor.is_member(c))
        });
    if !visible {
        return Err(ApiError::new("file_not_found"));
    }
    Ok(obj(json!({
        "file": ws.file_json(f),
        "comments": [],
        "response_metadata": {"next_cursor": ""},
    })))
}
