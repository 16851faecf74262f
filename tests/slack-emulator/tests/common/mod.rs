//! Test helpers: a started emulator with short timeouts, a small Web API client, and a Socket
//! Mode client on tokio-tungstenite.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_emulator::{Config, Emulator, SocketConfig, Workspace};
use tokio_tungstenite::tungstenite::Message;

pub struct Fixture {
    pub emu: Emulator,
    pub alice: String,
    pub bob: String,
    pub general: String,
    pub random: String,
    pub secret: String,
    pub outside: String,
    pub dm: String,
    pub mpim: String,
    pub http: reqwest::Client,
}

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub async fn fixture_with(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let mut ws = Workspace::new("T0TEAM0001", "Acme");
    let alice = ws.add_user("alice", "Alice Liddell");
    let bob = ws.add_user("bob", "Bob Builder");
    let bot = ws.bot_user_id().to_string();
    let general = ws.add_channel("general", false, &[&alice, &bob, &bot]);
    let random = ws.add_channel("random", false, &[&alice, &bot]);
    let secret = ws.add_channel("secret", true, &[&alice, &bot]);
    let outside = ws.add_channel("outside", false, &[&alice, &bob]);
    let dm = ws.add_dm(&alice);
    let mpim = ws.add_mpim(&[&alice, &bob]);
    let mut config = Config {
        socket: SocketConfig {
            ack_timeout: Duration::from_millis(300),
            refresh_grace: Duration::from_millis(200),
            ..SocketConfig::default()
        },
        file_share_delay: Duration::from_millis(20),
        ..Config::default()
    };
    tweak(&mut config);
    let emu = Emulator::start_with(ws, config).await.unwrap();
    Fixture {
        emu,
        alice,
        bob,
        general,
        random,
        secret,
        outside,
        dm,
        mpim,
        http: reqwest::Client::new(),
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Fixture {
    /// Form-encoded POST with the bot token in the header.
    pub async fn api(&self, method: &str, params: &[(&str, &str)]) -> Resp {
        let token = self.emu.bot_token();
        self.api_token(method, Some(&token), params).await
    }

    pub async fn api_token(
        &self,
        method: &str,
        token: Option<&str>,
        params: &[(&str, &str)],
    ) -> Resp {
        let body: String = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    slack_emulator::util::percent_encode(k),
                    slack_emulator::util::percent_encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .http
            .post(format!("{}/{method}", self.emu.api_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn api_json(&self, method: &str, body: Value) -> Resp {
        let req = self
            .http
            .post(format!("{}/{method}", self.emu.api_url()))
            .header("content-type", "application/json; charset=utf-8")
            .header("authorization", format!("Bearer {}", self.emu.bot_token()))
            .body(body.to_string());
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.emu.base_url()));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send().await.unwrap()
    }

    /// apps.connections.open with the app token in the header.
    pub async fn open_url(&self) -> String {
        let r = self
            .http
            .post(format!("{}/apps.connections.open", self.emu.api_url()))
            .header("authorization", format!("Bearer {}", self.emu.app_token()))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["ok"], true, "{v}");
        v["url"].as_str().unwrap().to_string()
    }

    pub async fn connect(&self) -> Sock {
        let url = self.open_url().await;
        Sock::connect(&url).await.expect("socket connects")
    }
}

async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(json!({"_raw": text}));
    Resp {
        status,
        headers,
        body,
    }
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Sock {
    pub ws: WsStream,
    pub pings: usize,
    pub closed: bool,
}

impl Sock {
    pub async fn connect(url: &str) -> Result<Sock, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Sock {
            ws,
            pings: 0,
            closed: false,
        })
    }

    /// Next JSON text frame, or `None` on timeout/close. Pings are counted and skipped.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let left = end.checked_duration_since(tokio::time::Instant::now())?;
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap());
                }
                Ok(Some(Ok(Message::Close(_)))) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(Ok(Message::Ping(_)))) => self.pings += 1,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Next envelope of `type: events_api`, skipping other frames.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let left = end.checked_duration_since(tokio::time::Instant::now())?;
            let f = self.next(left).await?;
            if f["type"] == "events_api" {
                return Some(f);
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn ack(&mut self, envelope: &Value) {
        self.send(json!({"envelope_id": envelope["envelope_id"]}))
            .await;
    }
}

pub const SEC: Duration = Duration::from_secs(1);
pub const LONG: Duration = Duration::from_secs(5);

/// Asserts `v` has `key` of the given JSON type name.
pub fn has(v: &Value, key: &str, ty: &str) {
    let f = v
        .get(key)
        .unwrap_or_else(|| panic!("missing `{key}` in {v}"));
    let ok = match ty {
        "string" => f.is_string(),
        "bool" => f.is_boolean(),
        "number" => f.is_number(),
        "array" => f.is_array(),
        "object" => f.is_object(),
        "null" => f.is_null(),
        _ => unreachable!(),
    };
    assert!(ok, "`{key}` should be {ty} in {v}");
}

/// `"1700000000.123456"`.
pub fn is_ts(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    let (a, b) = s.split_once('.').unwrap_or(("", ""));
    a.len() == 10 && b.len() == 6 && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
}
