//! The HTTP server: shared state, the route table, and the non-API endpoints (Socket Mode
//! upgrade, file upload URL, authenticated file downloads, avatar images).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::events::RawEvent;
use crate::faults::Faults;
use crate::model::Workspace;
use crate::socket::{Dispatcher, SocketConfig};
use crate::util;
use crate::web::RecordedCall;

/// Emulator settings beyond the workspace itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub socket: SocketConfig,
    /// Maximum (and default) `limit` of conversations.history / replies. Slack caps
    /// non-Marketplace apps at 15 since 2025 (slack-protocol.md §5); `None` uses the documented
    /// 999 / 100.
    pub history_limit_cap: Option<u32>,
    /// Delay before a files.completeUploadExternal share shows up in the channel, since Slack
    /// shares asynchronously.
    pub file_share_delay: Duration,
    /// File downloads are sent at this many bytes per second (`None`: at once), so a test can
    /// act in the middle of a transfer.
    pub download_rate: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            socket: SocketConfig::default(),
            history_limit_cap: Some(15),
            file_share_delay: Duration::from_millis(150),
            download_rate: None,
        }
    }
}

pub(crate) struct Inner {
    pub ws: Mutex<Workspace>,
    pub disp: Mutex<Dispatcher>,
    pub faults: Mutex<Faults>,
    pub calls: Mutex<Vec<RecordedCall>>,
    pub config: Mutex<Config>,
    pub base_url: String,
    /// File ids of the downloads that started, in order.
    pub downloads: Mutex<Vec<String>>,
}

impl Inner {
    pub fn new(ws: Workspace, config: Config, base_url: String) -> Self {
        Inner {
            ws: Mutex::new(ws),
            disp: Mutex::new(Dispatcher::new(config.socket.clone())),
            faults: Mutex::new(Faults::default()),
            calls: Mutex::new(Vec::new()),
            config: Mutex::new(config),
            base_url,
            downloads: Mutex::new(Vec::new()),
        }
    }

    /// Wraps and queues events; called with the workspace lock held so event order follows
    /// the order of changes.
    pub fn commit(&self, ws: &Workspace, events: Vec<RawEvent>) {
        let payloads: Vec<_> = events.iter().filter_map(|e| ws.wrap_event(e)).collect();
        if payloads.is_empty() {
            return;
        }
        let mut d = self.disp.lock().unwrap();
        for p in payloads {
            d.enqueue(p);
        }
    }

    pub fn ws_url(&self) -> String {
        self.base_url.replacen("http://", "ws://", 1)
    }
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/{method}", any(crate::web::api))
        .route("/link", get(link))
        .route("/link/", get(link))
        // Slack takes files up to 1 GB (axum's default body limit is 2 MB).
        .route(
            "/upload/v1/{ticket}",
            post(upload).layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/files-pri/{id}/{*rest}", get(download))
        .route("/files-tmb/{id}/{*rest}", get(download))
        .route("/avatars/{file}", get(avatar))
        .route("/emoji/{file}", get(emoji_image))
        // `nest` does not match the trailing-slash form of its own root.
        .route("/_emulator/", get(crate::control::index))
        .nest("/_emulator", crate::control::routes())
        .with_state(inner)
}

async fn link(
    State(inner): State<Arc<Inner>>,
    RawQuery(q): RawQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let params = util::parse_form(q.as_deref().unwrap_or(""));
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (app_id, revoked) = {
        let ws = inner.ws.lock().unwrap();
        (ws.app_id.clone(), ws.app_token_revoked)
    };
    let ticket_ok = get("ticket")
        .map(|t| inner.disp.lock().unwrap().consume_ticket(&t))
        .unwrap_or(false);
    if !ticket_ok || revoked || get("app_id").as_deref() != Some(app_id.as_str()) {
        // A reused or unknown ticket is refused at the HTTP level, before any upgrade.
        return (StatusCode::UNAUTHORIZED, "invalid ticket\n").into_response();
    }
    let debug = get("debug_reconnects").as_deref() == Some("true");
    match upgrade {
        Ok(u) => u
            .on_upgrade(move |socket| crate::socket::run_socket(socket, inner, debug))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The upload URL: takes raw bytes or a multipart body and answers `OK - <n>` in text/plain.
async fn upload(
    State(inner): State<Arc<Inner>>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bytes = if ctype.starts_with("multipart/form-data") {
        match multipart_file(ctype, &body) {
            Some(b) => b,
            None => return (StatusCode::BAD_REQUEST, "invalid multipart body\n").into_response(),
        }
    } else {
        body.to_vec()
    };
    let n = bytes.len();
    let mut ws = inner.ws.lock().unwrap();
    let Some(f) = ws
        .files
        .iter_mut()
        .find(|f| f.upload_ticket == ticket && !f.uploaded)
    else {
        return (StatusCode::NOT_FOUND, "unknown or used upload URL\n").into_response();
    };
    if let Some(declared) = f.declared_len
        && declared != n as u64
    {
        // Slack's behaviour on a mismatch is undocumented; being strict catches a wrong
        // `length` in files.getUploadURLExternal.
        return (
            StatusCode::BAD_REQUEST,
            format!("length mismatch: declared {declared}, received {n}\n"),
        )
            .into_response();
    }
    f.bytes = Arc::new(bytes);
    f.uploaded = true;
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("OK - {n}"),
    )
        .into_response()
}

/// Extracts the first part that carries a filename (or the only part) from multipart data.
fn multipart_file(ctype: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = ctype
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let parts = split_bytes(body, delim.as_bytes());
    let mut fallback = None;
    for part in parts {
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        if part.starts_with(b"--") || part.is_empty() {
            continue;
        }
        let sep = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..sep]).to_lowercase();
        let mut content = &part[sep + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        if head.contains("filename=") {
            return Some(content.to_vec());
        }
        fallback.get_or_insert(content.to_vec());
    }
    fallback
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut hay: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, delim) {
        out.push(&hay[..i]);
        hay = &hay[i + delim.len()..];
    }
    out.push(hay);
    out
}

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en-US\"><head><meta charset=\"utf-8\">\
<title>Slack</title></head><body><div id=\"page\"><h1>Sign in to your workspace</h1>\
<form id=\"signin_form\" action=\"/\" method=\"post\"><input type=\"email\" name=\"email\">\
<input type=\"password\" name=\"password\"><button type=\"submit\">Sign in</button></form></div></body></html>\n";

/// The largest file Slack takes.
const MAX_UPLOAD: usize = 1 << 30;

/// The pseudo-method to install faults of file downloads for, e.g.
/// `emu.fault("files.download").forever().http_status(503)`.
pub const DOWNLOAD_FAULTS: &str = "files.download";

/// `url_private` downloads need `Authorization: Bearer <token>` with files:read (the bot token
/// or a live user token); anything else gets HTTP 200 with an HTML login page, exactly the
/// trap real Slack sets.
async fn download(
    State(inner): State<Arc<Inner>>,
    Path((id, rest)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // Download faults are installed for the pseudo-method `files.download` (HTTP statuses
    // only: the edge answering 5xx).
    if let Some(crate::faults::FaultKind::HttpStatus { status, .. }) =
        inner.faults.lock().unwrap().take(DOWNLOAD_FAULTS, &[])
    {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (
            code,
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html><body><h1>{code}</h1></body></html>\n"),
        )
            .into_response();
    }
    let ws = inner.ws.lock().unwrap();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let authed = match auth {
        Some(t) if t == ws.bot_token => !ws.bot_token_revoked && ws.scopes.contains("files:read"),
        Some(t) => ws
            .oauth
            .token(t)
            .is_some_and(|u| !u.revoked && u.scopes.contains("files:read")),
        None => false,
    };
    // `<team>-<file>` or, for thumbnails, `<team>-<file>-<secret>`.
    let file_id = id.split('-').nth(1).unwrap_or("");
    let file = ws.file(file_id).filter(|f| f.uploaded && !f.deleted);
    match (authed, file) {
        (true, Some(_)) if rest.ends_with("_thumb_video.png") => (
            [(header::CONTENT_TYPE, "image/png".to_string())],
            util::avatar_png("336699", crate::model::VIDEO_STILL_SIZE),
        )
            .into_response(),
        (true, Some(f)) => {
            inner.downloads.lock().unwrap().push(f.id.clone());
            let headers = [
                (header::CONTENT_TYPE, f.mimetype.clone()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", f.name.replace('"', "")),
                ),
                (header::CONTENT_LENGTH, f.bytes.len().to_string()),
            ];
            match inner.config.lock().unwrap().download_rate {
                None => (headers, f.bytes.to_vec()).into_response(),
                Some(rate) => (headers, throttled(f.bytes.clone(), rate)).into_response(),
            }
        }
        (true, None) => (StatusCode::NOT_FOUND, "file not found\n").into_response(),
        (false, _) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            LOGIN_PAGE,
        )
            .into_response(),
    }
}

/// A body sent in tenth-of-a-second chunks of `rate / 10` bytes.
fn throttled(bytes: Arc<Vec<u8>>, rate: u64) -> axum::body::Body {
    let chunk = (rate / 10).max(1) as usize;
    let stream = futures_util::stream::unfold(0usize, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let end = (at + chunk).min(bytes.len());
            let part = Bytes::copy_from_slice(&bytes[at..end]);
            Some((Ok::<_, std::convert::Infallible>(part), end))
        }
    });
    axum::body::Body::from_stream(stream)
}

/// Custom emoji images (public, like emoji.slack-edge.com): `<name>.png`.
async fn emoji_image(State(inner): State<Arc<Inner>>, Path(file): Path<String>) -> Response {
    let name = file.trim_end_matches(".png");
    let ws = inner.ws.lock().unwrap();
    match ws.emoji_images.get(name) {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such emoji\n").into_response(),
    }
}

/// Avatar images (public, like avatars.slack-edge.com): `<user>.png`, optional `?s=<size>`.
async fn avatar(
    State(inner): State<Arc<Inner>>,
    Path(file): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let user_id = file.trim_end_matches(".png");
    let size = util::parse_form(q.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "s")
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .unwrap_or(192)
        .clamp(16, 512);
    let ws = inner.ws.lock().unwrap();
    match ws.user(user_id) {
        Some(u) => {
            let png = match &u.avatar {
                Some(b) => b.to_vec(),
                None => util::avatar_png(&u.color, size),
            };
            ([(header::CONTENT_TYPE, "image/png")], png).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such avatar\n").into_response(),
    }
}
