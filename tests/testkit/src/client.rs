//! `TestClient`: a minimal Matrix client-server API client for tests acting as a Matrix user (or as
//! the appservice, with the as_token), plus the JSON request plumbing the fixture shares.
//!
//! It speaks raw JSON (`serde_json::Value`) on purpose: tests assert on what the homeserver really
//! sent, and a typed client would hide fields the bridge might get wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::FixtureError;

/// Default timeout of one HTTP request; generous because a busy 2-core CI box can stall Synapse.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between `/messages` polls in [`TestClient::wait_for_event`].
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A Matrix user (or appservice token) talking to the homeserver's client-server API.
///
/// Paths passed to [`get`](Self::get) / [`post`](Self::post) / [`put`](Self::put) are absolute
/// (`/_matrix/client/v3/...`) and may carry a query string, e.g. `?user_id=@slack_x:test.local` for
/// appservice masquerading. Room and event IDs given to the typed helpers are percent-encoded here.
#[derive(Debug, Clone)]
pub struct TestClient {
    base_url: String,
    user_id: String,
    access_token: String,
    device_id: Option<String>,
    http: reqwest::Client,
}

impl TestClient {
    /// A client for `user_id` with `access_token`. No request is made; see
    /// [`Synapse::client_with_token`](crate::Synapse::client_with_token) to learn the user from
    /// the token instead.
    pub fn new(
        base_url: impl Into<String>,
        user_id: impl Into<String>,
        access_token: impl Into<String>,
    ) -> TestClient {
        TestClient {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            user_id: user_id.into(),
            access_token: access_token.into(),
            device_id: None,
            http: http_client(true),
        }
    }

    pub(crate) fn with_device(mut self, device_id: Option<String>) -> TestClient {
        self.device_id = device_id;
        self
    }

    /// The full Matrix user ID, e.g. `@alice:test.local`.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The access token (for building a bridge config or raw requests).
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The device created at registration, if known.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// The homeserver base URL, e.g. `http://127.0.0.1:34567`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` with this user's token; non-2xx becomes [`FixtureError::Matrix`].
    pub async fn get(&self, path: &str) -> Result<Value, FixtureError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, FixtureError> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, FixtureError> {
        self.request(Method::PUT, path, Some(body)).await
    }

    /// Any method; the building block of the helpers below.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, FixtureError> {
        send_json(
            &self.http,
            method,
            &format!("{}{path}", self.base_url),
            Some(&self.access_token),
            body,
        )
        .await
    }

    /// Downloads media through the authenticated endpoint: the bytes and their content type.
    pub async fn download(&self, mxc: &str) -> Result<(Vec<u8>, String), FixtureError> {
        let rest = mxc.strip_prefix("mxc://").unwrap_or(mxc);
        let url = format!("{}/_matrix/client/v1/media/download/{rest}", self.base_url);
        self.raw_bytes(Method::GET, &url, None).await
    }

    /// Uploads media (`/_matrix/media/v3/upload`); returns the `mxc://` URI.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        filename: &str,
    ) -> Result<String, FixtureError> {
        let url = format!(
            "{}/_matrix/media/v3/upload?filename={}",
            self.base_url,
            enc(filename)
        );
        let (body, _) = self
            .raw_bytes(Method::POST, &url, Some((bytes, content_type)))
            .await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| FixtureError::Matrix {
            method: "POST".into(),
            url: url.clone(),
            status: 200,
            errcode: None,
            body: format!("not JSON ({e}): {}", String::from_utf8_lossy(&body)),
        })?;
        Ok(v["content_uri"].as_str().unwrap_or_default().to_owned())
    }

    async fn raw_bytes(
        &self,
        method: Method,
        url: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<(Vec<u8>, String), FixtureError> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.access_token);
        if let Some((bytes, ctype)) = body {
            req = req.header("content-type", ctype).body(bytes);
        }
        let http_err = |e: reqwest::Error| FixtureError::Http {
            method: method.to_string(),
            url: url.to_owned(),
            source: e,
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.map_err(http_err)?.to_vec();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            return Err(matrix_error(&method, url, status.as_u16(), text));
        }
        Ok((bytes, ctype))
    }

    /// `GET /account/whoami`: the user ID the token belongs to (honours `?user_id=` masquerading
    /// if you use [`get`](Self::get) directly).
    pub async fn whoami(&self) -> Result<String, FixtureError> {
        let reply = self.get("/_matrix/client/v3/account/whoami").await?;
        string_field(&reply, "user_id", "GET /account/whoami")
    }

    /// Creates a private room (`preset: private_chat`) and returns its room ID.
    pub async fn create_room(&self) -> Result<String, FixtureError> {
        self.create_room_with(&json!({ "preset": "private_chat" }))
            .await
    }

    /// `POST /createRoom` with a caller-supplied body (name, invite, room_version, …); returns the
    /// room ID.
    pub async fn create_room_with(&self, body: &Value) -> Result<String, FixtureError> {
        let reply = self.post("/_matrix/client/v3/createRoom", body).await?;
        string_field(&reply, "room_id", "POST /createRoom")
    }

    /// Invites `user_id` into `room_id`.
    pub async fn invite(&self, room_id: &str, user_id: &str) -> Result<(), FixtureError> {
        self.post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(room_id)),
            &json!({ "user_id": user_id }),
        )
        .await
        .map(drop)
    }

    /// Joins a room by ID or alias; returns the room ID.
    pub async fn join(&self, room_id_or_alias: &str) -> Result<String, FixtureError> {
        let reply = self
            .post(
                &format!("/_matrix/client/v3/join/{}", enc(room_id_or_alias)),
                &json!({}),
            )
            .await?;
        string_field(&reply, "room_id", "POST /join")
    }

    /// Leaves a room.
    pub async fn leave(&self, room_id: &str) -> Result<(), FixtureError> {
        self.post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(room_id)),
            &json!({}),
        )
        .await
        .map(drop)
    }

    /// Sends an `m.text` message; returns the event ID.
    pub async fn send_text(&self, room_id: &str, body: &str) -> Result<String, FixtureError> {
        self.send_event(
            room_id,
            "m.room.message",
            &json!({ "msgtype": "m.text", "body": body }),
        )
        .await
    }

    /// Sends any message-like event with a fresh transaction ID; returns the event ID.
    pub async fn send_event(
        &self,
        room_id: &str,
        event_type: &str,
        content: &Value,
    ) -> Result<String, FixtureError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            enc(room_id),
            enc(event_type),
            next_txn_id()
        );
        let reply = self.put(&path, content).await?;
        string_field(&reply, "event_id", "PUT /send")
    }

    /// Sets a state event; returns the event ID.
    pub async fn send_state(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<String, FixtureError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room_id),
            enc(event_type),
            enc(state_key)
        );
        let reply = self.put(&path, content).await?;
        string_field(&reply, "event_id", "PUT /state")
    }

    /// Redacts an event; returns the redaction's event ID.
    pub async fn redact(
        &self,
        room_id: &str,
        event_id: &str,
        reason: Option<&str>,
    ) -> Result<String, FixtureError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room_id),
            enc(event_id),
            next_txn_id()
        );
        let body = match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        };
        let reply = self.put(&path, &body).await?;
        string_field(&reply, "event_id", "PUT /redact")
    }

    /// The latest `limit` events of the room's timeline, **oldest first** (the server returns
    /// them newest first with `dir=b`; they are reversed so `last()` is the newest).
    pub async fn messages(&self, room_id: &str, limit: u32) -> Result<Vec<Value>, FixtureError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
            enc(room_id)
        );
        let reply = self.get(&path).await?;
        let mut events = match reply.get("chunk") {
            Some(Value::Array(chunk)) => chunk.clone(),
            _ => {
                return Err(unexpected("GET /messages", "no `chunk` array", &reply));
            }
        };
        events.reverse();
        Ok(events)
    }

    /// One event by ID.
    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<Value, FixtureError> {
        self.get(&format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room_id),
            enc(event_id)
        ))
        .await
    }

    /// The room's full current state (array of state events).
    pub async fn state(&self, room_id: &str) -> Result<Vec<Value>, FixtureError> {
        let reply = self
            .get(&format!("/_matrix/client/v3/rooms/{}/state", enc(room_id)))
            .await?;
        match reply {
            Value::Array(events) => Ok(events),
            other => Err(unexpected("GET /state", "not an array", &other)),
        }
    }

    /// The content of one state event (`GET /state/{type}/{state_key}`).
    pub async fn state_event(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Value, FixtureError> {
        self.get(&format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room_id),
            enc(event_type),
            enc(state_key)
        ))
        .await
    }

    /// Room IDs this user is joined to.
    pub async fn joined_rooms(&self) -> Result<Vec<String>, FixtureError> {
        let reply = self.get("/_matrix/client/v3/joined_rooms").await?;
        string_array(&reply, "joined_rooms", "GET /joined_rooms")
    }

    /// User IDs joined to the room.
    pub async fn joined_members(&self, room_id: &str) -> Result<Vec<String>, FixtureError> {
        let reply = self
            .get(&format!(
                "/_matrix/client/v3/rooms/{}/joined_members",
                enc(room_id)
            ))
            .await?;
        match reply.get("joined") {
            Some(Value::Object(map)) => Ok(map.keys().cloned().collect()),
            _ => Err(unexpected(
                "GET /joined_members",
                "no `joined` object",
                &reply,
            )),
        }
    }

    /// Polls `/messages` (no `/sync`) until an event matching `predicate` shows up among the latest
    /// 100 events, and returns the oldest such event. Errors on timeout with a summary of what was
    /// seen, so a failing bridge test says what arrived instead.
    pub async fn wait_for_event(
        &self,
        room_id: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, FixtureError> {
        let started = Instant::now();
        loop {
            let events = self.messages(room_id, 100).await?;
            if let Some(found) = events.iter().find(|e| predicate(e)) {
                return Ok(found.clone());
            }
            if started.elapsed() >= timeout {
                return Err(FixtureError::Timeout {
                    what: format!("a matching event in {room_id} (as {})", self.user_id),
                    secs: started.elapsed().as_secs_f64(),
                    last_seen: summarize(&events),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// [`wait_for_event`](Self::wait_for_event) for an `m.room.message` whose `body` equals `body`.
    pub async fn wait_for_text(
        &self,
        room_id: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<Value, FixtureError> {
        self.wait_for_event(
            room_id,
            |e| e["type"] == "m.room.message" && e["content"]["body"] == body,
            timeout,
        )
        .await
    }
}

/// The error for a non-2xx answer, with the Matrix errcode when the body has one.
fn matrix_error(method: &Method, url: &str, status: u16, body: String) -> FixtureError {
    let errcode = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["errcode"].as_str().map(str::to_owned));
    FixtureError::Matrix {
        method: method.to_string(),
        url: url.to_owned(),
        status,
        errcode,
        body,
    }
}

/// One line per event (`sender type body`), newest last, for timeout messages.
fn summarize(events: &[Value]) -> String {
    if events.is_empty() {
        return "no events".into();
    }
    let lines: Vec<String> = events
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(|e| {
            let mut line = format!(
                "{} {}",
                e["sender"].as_str().unwrap_or("?"),
                e["type"].as_str().unwrap_or("?")
            );
            if let Some(body) = e["content"]["body"].as_str() {
                line.push_str(&format!(" {body:?}"));
            } else if let Some(membership) = e["content"]["membership"].as_str() {
                line.push_str(&format!(
                    " {membership} {}",
                    e["state_key"].as_str().unwrap_or("")
                ));
            }
            line
        })
        .collect();
    format!(
        "{} events, latest {}:\n  {}",
        events.len(),
        lines.len(),
        lines.join("\n  ")
    )
}

/// A reqwest client for talking to the local homeserver.
///
/// `pooled = false` disables keep-alive pooling: the shared Synapse outlives the tokio runtime of
/// each `#[tokio::test]`, and a pooled connection whose runtime is gone fails the next request.
pub(crate) fn http_client(pooled: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        // A developer's HTTP(S)_PROXY must not capture requests to 127.0.0.1.
        .no_proxy();
    if !pooled {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder
        .build()
        .expect("testkit: building the reqwest client cannot fail with this configuration")
}

/// Sends a JSON request and decodes a JSON answer; non-2xx becomes [`FixtureError::Matrix`] with
/// the `errcode` extracted.
pub(crate) async fn send_json(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, FixtureError> {
    let http_err = |source| FixtureError::Http {
        method: method.to_string(),
        url: url.to_owned(),
        source,
    };
    let mut request = http.request(method.clone(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(http_err)?;
    let status = response.status();
    let text = response.text().await.map_err(http_err)?;
    if !status.is_success() {
        return Err(matrix_error(&method, url, status.as_u16(), text));
    }
    serde_json::from_str(&text).map_err(|e| FixtureError::UnexpectedResponse {
        method: method.to_string(),
        url: url.to_owned(),
        detail: format!("body is not JSON ({e}): {text}"),
    })
}

pub(crate) fn string_field(reply: &Value, field: &str, what: &str) -> Result<String, FixtureError> {
    reply[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| unexpected(what, &format!("no string `{field}`"), reply))
}

fn string_array(reply: &Value, field: &str, what: &str) -> Result<Vec<String>, FixtureError> {
    reply[field]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| unexpected(what, &format!("no array `{field}`"), reply))
}

fn unexpected(what: &str, detail: &str, reply: &Value) -> FixtureError {
    let (method, url) = what.split_once(' ').unwrap_or(("", what));
    FixtureError::UnexpectedResponse {
        method: method.into(),
        url: url.into(),
        detail: format!("{detail} in {reply}"),
    }
}

/// Transaction IDs unique across processes and restarts: Synapse deduplicates sends per
/// (path, token) for 30 minutes, so a reused ID would silently return an old event.
fn next_txn_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "testkit.{}.{nanos}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Percent-encodes one path segment (room IDs contain `!`, aliases `#` and `:`, event IDs `$`,
/// `+` and `/` in room versions 1-3).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_escapes_matrix_sigils() {
        assert_eq!(enc("!abc:test.local"), "%21abc%3Atest.local");
        assert_eq!(enc("#room:x"), "%23room%3Ax");
        assert_eq!(enc("$a+b/c"), "%24a%2Bb%2Fc");
        assert_eq!(enc("m.room.message"), "m.room.message");
    }

    #[test]
    fn txn_ids_are_unique() {
        assert_ne!(next_txn_id(), next_txn_id());
    }
}
