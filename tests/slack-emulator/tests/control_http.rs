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

#[tokio::test]
async fn web_api_faults_over_http() {
    let f = fixture().await;
    // Per-channel rate limit and error.
    let (s, _) = ctl(
        &f,
        "/faults/rate_limit",
        Some(json!({"method": "chat.postMessage", "channel": "#general", "retry_after": 2})),
    )
    .await;
    assert_eq!(s, 200);
    ctl(
        &f,
        "/faults/fail_next",
        Some(json!({"method": "chat.postMessage", "channel": f.random, "error": "is_archived"})),
    )
    .await;
    let post = |c: &str| {
        let c = c.to_string();
        let f = &f;
        async move {
            f.api("chat.postMessage", &[("channel", &c), ("text", "x")])
                .await
        }
    };
    assert_eq!(post(&f.secret).await.body["ok"], true);
    assert_eq!(post(&f.general).await.status, 429);
    assert_eq!(post(&f.random).await.body["error"], "is_archived");
    assert_eq!(post(&f.general).await.body["ok"], true);

    // Bare status, forever, empty body, scoped.
    ctl(
        &f,
        "/faults/http_status",
        Some(
            json!({"method": "chat.postMessage", "status": 503, "forever": true,
            "body": "empty", "channel": f.general}),
        ),
    )
    .await;
    for _ in 0..3 {
        let r = post(&f.general).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body["_raw"], "");
    }
    assert_eq!(post(&f.random).await.body["ok"], true);
    let (_, l) = ctl(&f, "/faults", None).await;
    let listed = l["faults"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{l}");
    assert_eq!(listed[0]["kind"], "http_status");
    assert_eq!(listed[0]["channel"], f.general.as_str());
    assert_eq!(listed[0]["remaining"], u32::MAX);
    ctl(&f, "/faults/clear", Some(json!({}))).await;
    assert_eq!(post(&f.general).await.body["ok"], true);

    // Apply, then fail (status defaults to 503).
    ctl(
        &f,
        "/faults/apply_then_status",
        Some(json!({"method": "chat.postMessage"})),
    )
    .await;
    let before = f.emu.messages(&f.general).len();
    let r = post(&f.general).await;
    assert_eq!(r.status, 503);
    assert!(r.body["_raw"].as_str().unwrap().contains("<html>"));
    assert_eq!(f.emu.messages(&f.general).len(), before + 1);

    // Apply, then delay.
    ctl(
        &f,
        "/faults/apply_then_delay",
        Some(json!({"method": "auth.test", "delay_ms": 400})),
    )
    .await;
    let t = std::time::Instant::now();
    assert_eq!(f.api("auth.test", &[]).await.body["ok"], true);
    assert!(t.elapsed() >= std::time::Duration::from_millis(400));
    let (_, calls) = ctl(&f, "/calls?method=auth.test", None).await;
    assert_eq!(calls["calls"][0]["fault"], "apply_then_delay:400ms");

    // Bad arguments are refused.
    let (s, r) = ctl(
        &f,
        "/faults/http_status",
        Some(json!({"method": "auth.test", "status": 42})),
    )
    .await;
    assert_eq!((s, r["error"].as_str()), (400, Some("invalid_status")));
    let (s, _) = ctl(
        &f,
        "/faults/apply_then_delay",
        Some(json!({"method": "auth.test"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = ctl(
        &f,
        "/faults/fail_next",
        Some(json!({"method": "auth.test"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(f.emu.faults().is_empty());

    let (_, idx) = ctl(&f, "/", None).await;
    let routes = idx["routes"].to_string();
    for r in [
        "http_status",
        "apply_then_status",
        "apply_then_delay",
        "GET /_emulator/faults",
    ] {
        assert!(routes.contains(r), "{r} listed in the index");
    }
}
