//! The `/_emulator/` JSON control API, as a sandbox user would drive it with curl.

mod common;

use common::*;
use serde_json::{Value, json};

async fn ctl(f: &Fixture, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/_emulator{path}", f.emu.base_url());
    let req = match body {
        Some(b) => f.http.post(url).json(&b),
        None => f.http.get(url),
    };
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn act_observe_and_inject_over_http() {
    let f = fixture().await;
    let (_, info) = ctl(&f, "/info", None).await;
    assert_eq!(info["bot_token"], f.emu.bot_token());
    assert_eq!(info["api_url"], f.emu.api_url());

    let (s, r) = ctl(
        &f,
        "/post",
        Some(json!({"user": f.alice, "channel": f.general, "text": "hi from curl"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let ts = r["ts"].as_str().unwrap().to_string();
    let (_, r) = ctl(
        &f,
        "/post",
        Some(json!({"user": f.bob, "channel": f.general, "text": "reply", "thread_ts": ts})),
    )
    .await;
    assert!(r["ts"].is_string());
    let (_, r) = ctl(
        &f,
        "/react",
        Some(json!({"user": f.bob, "channel": f.general, "ts": ts, "name": "tada"})),
    )
    .await;
    assert_eq!(r["ok"], true);
    let (s, r) = ctl(
        &f,
        "/post",
        Some(json!({"user": f.bob, "channel": f.secret, "text": "not a member"})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(r["error"], "not_in_channel");

    let (_, m) = ctl(&f, "/messages/general", None).await;
    let msgs = m["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["reactions"][0]["name"], "tada");

    let (_, r) = ctl(
        &f,
        "/share_file",
        Some(json!({"user": f.alice, "channel": f.general, "name": "n.txt", "content": "note"})),
    )
    .await;
    let fid = r["file"].as_str().unwrap().to_string();
    assert_eq!(f.emu.file_bytes(&fid).unwrap(), b"note");

    ctl(
        &f,
        "/faults/rate_limit",
        Some(json!({"method": "auth.test", "times": 1, "retry_after": 3})),
    )
    .await;
    let r = f.api("auth.test", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "3");
    ctl(
        &f,
        "/faults/fail_next",
        Some(json!({"method": "auth.test", "error": "fatal_error"})),
    )
    .await;
    assert_eq!(f.api("auth.test", &[]).await.body["error"], "fatal_error");

    let (_, calls) = ctl(&f, "/calls?method=auth.test", None).await;
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["status"], 429);
    assert_eq!(calls[0]["token_kind"], "bot");

    let mut sock = f.connect().await;
    sock.next(SEC).await.unwrap();
    let (_, c) = ctl(&f, "/connections", None).await;
    assert_eq!(c["count"], 1);
    let (_, d) = ctl(&f, "/faults/disconnect", Some(json!({"reason": "warning"}))).await;
    assert_eq!(d["disconnected"], 1);
    // Events queued while no socket was open arrive first.
    let mut frame = sock.next(SEC).await.unwrap();
    while frame["type"] == "events_api" {
        frame = sock.next(SEC).await.unwrap();
    }
    assert_eq!(frame["type"], "disconnect");
    assert_eq!(frame["reason"], "warning");

    ctl(&f, "/scopes/remove", Some(json!({"scopes": ["team:read"]}))).await;
    assert_eq!(f.api("team.info", &[]).await.body["error"], "missing_scope");
    ctl(&f, "/faults/revoke", Some(json!({"token": "bot"}))).await;
    assert_eq!(f.api("auth.test", &[]).await.body["error"], "token_revoked");
}

#[tokio::test]
async fn channel_and_user_management_over_http() {
    let f = fixture().await;
    let (_, u) = ctl(
        &f,
        "/users",
        Some(json!({"name": "zed", "real_name": "Zed Z"})),
    )
    .await;
    let zed = u["user"].as_str().unwrap().to_string();
    let (_, c) = ctl(&f, "/channels", Some(json!({"user": zed, "name": "zone"}))).await;
    let zone = c["channel"].as_str().unwrap().to_string();
    let (_, r) = ctl(
        &f,
        "/join",
        Some(json!({"user": f.emu.bot_user_id(), "channel": zone, "inviter": zed})),
    )
    .await;
    assert_eq!(r["ok"], true);
    assert!(f.emu.members(&zone).contains(&f.emu.bot_user_id()));
    let (_, r) = ctl(
        &f,
        "/rename",
        Some(json!({"user": zed, "channel": zone, "name": "zone-2"})),
    )
    .await;
    assert_eq!(r["ok"], true);
    let (_, r) = ctl(
        &f,
        "/topic",
        Some(json!({"user": zed, "channel": zone, "topic": "zzz"})),
    )
    .await;
    assert_eq!(r["ok"], true);
    let (_, r) = ctl(
        &f,
        "/profile",
        Some(json!({"user": zed, "display_name": "zeddy"})),
    )
    .await;
    assert_eq!(r["ok"], true);
    let b = f.api("users.info", &[("user", &zed)]).await.body;
    assert_eq!(b["user"]["profile"]["display_name"], "zeddy");
    let info = f
        .api("conversations.info", &[("channel", &zone)])
        .await
        .body;
    assert_eq!(info["channel"]["name"], "zone-2");
    assert_eq!(info["channel"]["topic"]["value"], "zzz");
    assert_eq!(info["channel"]["previous_names"], json!(["zone"]));
}
