//! The Matrix side against a real Synapse: transactions reach the bridge layer exactly once
//! through failures and outages, the homeserver client does what a bridge needs, the
//! appservice API answers as the spec says, and misconfigurations are diagnosed.

mod support;

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use ruma::{
    MilliSecondsSinceUnixEpoch, UInt, UserId,
    api::client::room::create_room,
    events::{
        reaction::ReactionEventContent,
        relation::Annotation,
        room::message::{ReplacementMetadata, RoomMessageEventContent},
    },
};
use serde_json::{Value, json};
use slack_bridge::{matrix::appservice::AppserviceState, matrix_client, server, store::Store};
use slack_emulator::Workspace;
use support::{
    bridge::{DOMAIN, Env, EnvOptions},
    world::world_with_env,
};
use testkit::{HomeserverKind, free_port};

on_both_homeservers!(
    a_message_reaches_the_bridge_layer_exactly_once_through_errors_and_outages,
    ghosts_rooms_messages_edits_reactions_redactions_and_media,
    a_wrong_as_token_is_diagnosed,
    a_homeserver_that_cannot_reach_the_bridge_is_diagnosed,
    doctor_passes_on_a_working_setup;
    synapse_only: rate_limited_sends_are_retried_until_they_pass;
    tuwunel_only:
        an_admin_room_registration_works_without_a_restart,
        a_bot_user_the_homeserver_did_not_create_is_explained,
);

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");

/// Sits between Synapse and the bridge, failing the first `fail` transactions with a 500 and
/// recording every transaction path it saw.
struct FaultProxy {
    target: String,
    fail: AtomicUsize,
    seen: Mutex<Vec<String>>,
    http: reqwest::Client,
}

async fn start_proxy(port: u16, target_port: u16, fail: usize) -> Arc<FaultProxy> {
    let proxy = Arc::new(FaultProxy {
        target: format!("http://127.0.0.1:{target_port}"),
        fail: AtomicUsize::new(fail),
        seen: Mutex::new(Vec::new()),
        http: reqwest::Client::new(),
    });
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    proxy
}

async fn forward(State(p): State<Arc<FaultProxy>>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let method = req.method().clone();
    let auth = req.headers().get("authorization").cloned();
    let body: Bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    if path.contains("/transactions/") {
        p.seen.lock().unwrap().push(path.clone());
        if p.fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "{\"errcode\":\"M_UNKNOWN\"}",
            )
                .into_response();
        }
    }
    let mut r = p
        .http
        .request(method, format!("{}{}", p.target, path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status();
            (status, resp.bytes().await.unwrap_or_default()).into_response()
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "bridge down").into_response(),
    }
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the bridge never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_message_reaches_the_bridge_layer_exactly_once_through_errors_and_outages(
    hs: HomeserverKind,
) {
    let proxy_port = support::bridge::restartable_port();
    let w = world_with_env(
        Workspace::demo(),
        None,
        true,
        EnvOptions {
            homeserver: hs,
            registration_url_port: Some(proxy_port),
            ..EnvOptions::default()
        },
    )
    .await;
    let env = &w.env;
    let proxy = start_proxy(proxy_port, env.as_port, 1).await;
    let bridge = env.run_bridge_full().await;
    wait_healthy(env.as_port).await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;

    // The first transaction is answered 500; the homeserver retries it with the same txnId.
    w.owner.send_text(&room, "first message").await.unwrap();
    w.wait_for_post("first message").await;
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2 && seen[0] == seen[1],
        "the failed transaction was retried with the same txnId: {seen:?}"
    );

    let ready = reqwest::get(format!("http://127.0.0.1:{}/ready", env.as_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The bridge goes away for a few seconds; the homeserver keeps the event. Synapse delivers
    // it at once on the restarted bridge's ping. tuwunel has no retry timer and its ping
    // flushes nothing before 1.8.3: the held transaction goes out with the next event for the
    // appservice, which is what a user sees when someone talks next.
    bridge.stop().await.unwrap();
    w.owner
        .send_text(&room, "sent while the bridge was down")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bridge = env.run_bridge_full().await;
    match hs {
        HomeserverKind::Synapse => {
            w.wait_for_post("sent while the bridge was down").await;
            w.owner.send_text(&room, "after the restart").await.unwrap();
        }
        HomeserverKind::Tuwunel => {
            wait_healthy(env.as_port).await;
            w.owner.send_text(&room, "after the restart").await.unwrap();
            w.wait_for_post("sent while the bridge was down").await;
        }
    }
    w.wait_for_post("after the restart").await;
    // A sentinel behind them: the room's messages go to Slack in order, so once it is there,
    // a duplicate of anything before it would be too.
    w.owner.send_text(&room, "sentinel").await.unwrap();
    w.wait_for_post("sentinel").await;
    for text in [
        "first message",
        "sent while the bridge was down",
        "after the restart",
    ] {
        assert_eq!(w.posted(&general, text), 1, "{text} once on Slack");
    }
    bridge.stop().await.unwrap();
}

async fn ghosts_rooms_messages_edits_reactions_redactions_and_media(hs: HomeserverKind) {
    let env = Env::start(hs).await;
    let config = env.config();
    let client = matrix_client(&config).unwrap();
    let ghost = UserId::parse(format!("@slack_t1-u1:{DOMAIN}")).unwrap();
    client.ensure_registered(&ghost).await.unwrap();
    // Idempotent, also for a fresh client that has no cache (M_USER_IN_USE).
    client.ensure_registered(&ghost).await.unwrap();
    matrix_client(&config)
        .unwrap()
        .ensure_registered(&ghost)
        .await
        .unwrap();
    client
        .set_display_name(&ghost, "Alice from Slack")
        .await
        .unwrap();

    let alice = env
        .hs
        .register_user("reader", "pw-reader", false)
        .await
        .unwrap();
    let mut req = create_room::v3::Request::new();
    req.name = Some("#general".into());
    req.invite = vec![UserId::parse(alice.user_id()).unwrap()];
    let room = client.create_room(None, req).await.unwrap();
    client.invite(None, &room, &ghost).await.unwrap();
    client.join(Some(&ghost), &room).await.unwrap();
    alice.join(room.as_str()).await.unwrap();

    let ts = MilliSecondsSinceUnixEpoch(UInt::new(1_700_000_000_123).unwrap());
    let msg = client
        .send_message(
            Some(&ghost),
            &room,
            "slack-T1-C1-1700000000.123456-0",
            &RoomMessageEventContent::text_plain("hello from slack"),
            Some(ts),
        )
        .await
        .unwrap();
    // The same txn id again returns the same event instead of a second message.
    let again = client
        .send_message(
            Some(&ghost),
            &room,
            "slack-T1-C1-1700000000.123456-0",
            &RoomMessageEventContent::text_plain("hello from slack"),
            Some(ts),
        )
        .await
        .unwrap();
    assert_eq!(msg, again);

    let event = alice
        .wait_for_text(room.as_str(), "hello from slack", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(event["sender"], ghost.as_str());
    assert_eq!(event["origin_server_ts"], 1_700_000_000_123u64);
    assert_eq!(event["event_id"], msg.as_str());
    let member = alice
        .state_event(room.as_str(), "m.room.member", ghost.as_str())
        .await
        .unwrap();
    assert_eq!(member["displayname"], "Alice from Slack");
    let messages = alice.messages(room.as_str(), 50).await.unwrap();
    assert_eq!(
        messages
            .iter()
            .filter(|e| e["content"]["body"] == "hello from slack")
            .count(),
        1
    );

    // Edit.
    let edit = RoomMessageEventContent::text_plain("hello, edited")
        .make_replacement(ReplacementMetadata::new(msg.clone(), None));
    client
        .send_message(Some(&ghost), &room, "slack-edit-1", &edit, None)
        .await
        .unwrap();
    // Reaction, twice: on Synapse the second is a duplicate annotation and counts as success;
    // tuwunel 1.4.6 accepts it as a second reaction event (so the bridge must not rely on
    // M_DUPLICATE_ANNOTATION to keep reactions single).
    let reaction = serde_json::to_value(ReactionEventContent::new(Annotation::new(
        msg.clone(),
        "👍".into(),
    )))
    .unwrap();
    let first = client
        .send_reaction(Some(&ghost), &room, "slack-react-1", &reaction, None)
        .await
        .unwrap();
    assert!(first.is_some());
    let second = client
        .send_reaction(Some(&ghost), &room, "slack-react-2", &reaction, None)
        .await
        .unwrap();
    let expected_reactions = match hs {
        HomeserverKind::Synapse => {
            assert_eq!(second, None);
            1
        }
        HomeserverKind::Tuwunel => {
            assert!(
                second.is_some(),
                "tuwunel 1.4.6 stores duplicate annotations"
            );
            2
        }
    };
    let edited = alice
        .wait_for_event(
            room.as_str(),
            |e| e["content"]["m.new_content"]["body"] == "hello, edited",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(edited["content"]["m.relates_to"]["rel_type"], "m.replace");
    let reactions: Vec<Value> = alice
        .messages(room.as_str(), 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == "m.reaction")
        .collect();
    assert_eq!(reactions.len(), expected_reactions);
    assert_eq!(reactions[0]["content"]["m.relates_to"]["key"], "👍");

    // Redaction.
    client
        .redact(
            Some(&ghost),
            &room,
            &msg,
            "slack-delete-1",
            Some("deleted on Slack"),
        )
        .await
        .unwrap();
    let original = alice.event(room.as_str(), msg.as_str()).await.unwrap();
    assert_eq!(original["content"], json!({}));
    assert!(original["unsigned"]["redacted_because"].is_object());

    // Media: upload as the ghost, download through the authenticated API, byte for byte.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mxc = client
        .upload(
            Some(&ghost),
            bytes.clone(),
            "application/octet-stream",
            Some("blob.bin"),
        )
        .await
        .unwrap();
    let (downloaded, content_type) = client.download(&mxc).await.unwrap();
    assert_eq!(downloaded, bytes);
    assert_eq!(content_type.as_deref(), Some("application/octet-stream"));
    // The upload limit, from the authenticated media config (the legacy one is 403 on tuwunel).
    let limit = client.upload_limit().await.unwrap();
    assert!(limit >= bytes.len() as u64, "{limit}");
}

/// The appservice API on its own: auth, malformed input, unknown paths, replays.
#[tokio::test]
async fn appservice_api_answers_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/b.db", dir.path().display()), 2)
        .await
        .unwrap();
    let text = format!(
        "homeserver: {{domain: {DOMAIN}, address: 'http://127.0.0.1:9'}}\nappservice: {{as_token: a, hs_token: the-hs-token}}\n"
    );
    let config = slack_bridge::config::Config::from_yaml(
        &text,
        std::path::Path::new("c.yaml"),
        slack_bridge::config::Mode::Run,
        &|_| None,
    )
    .unwrap();
    let state = AppserviceState::new(&config, store.clone(), Arc::new(tokio::sync::Notify::new()));
    let limits = config.appservice.limits.clone();
    let routes = server::routes(
        state,
        Arc::new(matrix_client(&config).unwrap()),
        None,
        &config.metrics,
        &limits,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let _server = server::spawn(listener, routes.appservice, limits, stop.clone());
    let _stop_at_end = stop.drop_guard();
    let http = reqwest::Client::new();
    let txn = |id: &str| format!("{base}/_matrix/app/v1/transactions/{id}");
    let body = r#"{"events":[{"type":"m.room.message","event_id":"$1","room_id":"!r","sender":"@a:test.local","origin_server_ts":1,"content":{"msgtype":"m.text","body":"x"}}]}"#;

    async fn check(r: reqwest::RequestBuilder, status: u16, errcode: Option<&str>) -> Value {
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        if let Some(code) = errcode {
            assert_eq!(v["errcode"], code, "{v}");
        }
        v
    }

    // No token, wrong token, right token (header), right token (legacy query parameter).
    check(http.put(txn("1")).body(body), 401, Some("M_UNAUTHORIZED")).await;
    check(
        http.put(txn("1")).bearer_auth("nope").body(body),
        403,
        Some("M_FORBIDDEN"),
    )
    .await;
    let ok = check(
        http.put(txn("1")).bearer_auth("the-hs-token").body(body),
        200,
        None,
    )
    .await;
    assert_eq!(ok, json!({}));
    check(
        http.put(format!("{}?access_token=the-hs-token", txn("2")))
            .body(body),
        200,
        None,
    )
    .await;
    // A replayed txnId is answered again and not stored twice.
    check(
        http.put(txn("1")).bearer_auth("the-hs-token").body(body),
        200,
        None,
    )
    .await;
    let pending = store.pending_hs_txns(0, 10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|t| t.txn_id.as_str())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    // Malformed input.
    check(
        http.put(txn("3"))
            .bearer_auth("the-hs-token")
            .body("{not json"),
        400,
        Some("M_NOT_JSON"),
    )
    .await;
    check(
        http.put(txn("4"))
            .bearer_auth("the-hs-token")
            .body(r#"{"evnts":[]}"#),
        400,
        Some("M_BAD_JSON"),
    )
    .await;
    let huge = format!(
        r#"{{"events":[],"pad":"{}"}}"#,
        "x".repeat(33 * 1024 * 1024)
    );
    check(
        http.put(txn("5")).bearer_auth("the-hs-token").body(huge),
        413,
        Some("M_TOO_LARGE"),
    )
    .await;
    assert_eq!(store.pending_hs_txns(0, 10).await.unwrap().len(), 2);
    // Unknown paths and methods.
    check(
        http.get(format!("{base}/_matrix/app/v1/nope"))
            .bearer_auth("the-hs-token"),
        404,
        Some("M_UNRECOGNIZED"),
    )
    .await;
    check(
        http.get(txn("6")).bearer_auth("the-hs-token"),
        405,
        Some("M_UNRECOGNIZED"),
    )
    .await;
    // Ping, user and alias queries.
    let ping = check(
        http.post(format!("{base}/_matrix/app/v1/ping"))
            .bearer_auth("the-hs-token")
            .body(r#"{"transaction_id":"t1"}"#),
        200,
        None,
    )
    .await;
    assert_eq!(ping, json!({}));
    check(
        http.get(format!(
            "{base}/_matrix/app/v1/users/%40slack_t1-nobody%3Atest.local"
        ))
        .bearer_auth("the-hs-token"),
        404,
        Some("M_NOT_FOUND"),
    )
    .await;
    check(
        http.get(format!(
            "{base}/_matrix/app/v1/rooms/%23slack_x%3Atest.local"
        ))
        .bearer_auth("the-hs-token"),
        404,
        Some("M_NOT_FOUND"),
    )
    .await;
    // Metrics: what was stored and what waits.
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for line in [
        "slack_bridge_transactions_total 2",
        "slack_bridge_duplicate_transactions_total 1",
        "slack_bridge_hs_inbox_pending 2",
        "slack_bridge_slack_inbox_pending 0",
        "slack_bridge_database_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    // Health is the process; readiness needs the homeserver, which is not there.
    check(http.get(format!("{base}/health")), 200, None).await;
    let ready = check(http.get(format!("{base}/ready")), 503, None).await;
    assert_eq!(ready["database"], "ok");
    assert!(
        ready["homeserver"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{ready}"
    );
}

/// Runs the binary to its exit (at most a minute) and returns its exit code and stderr.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("slack-bridge {args:?} did not exit within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn a_wrong_as_token_is_diagnosed(hs: HomeserverKind) {
    let env = Env::start(hs).await;
    let config = env.config();
    let real = config.appservice.as_token.unwrap();
    env.edit_config(
        &format!("  as_token: {}", real.expose()),
        "  as_token: not-the-registered-token",
    );
    let cfg = env.config_path.to_str().unwrap().to_owned();
    let reg = env.registration_path.to_str().unwrap().to_owned();
    let (code, err) = tokio::task::spawn_blocking(move || run_binary(&["-c", &cfg, "-r", &reg]))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Error: the homeserver does not know this as_token"),
        "{err}"
    );
    assert!(
        err.contains(env.registration_path.to_str().unwrap()),
        "{err}"
    );
    assert!(
        err.contains("app_service_config_files") && err.contains("!admin appservices register"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-registered-token"),
        "the token is not printed"
    );
}

async fn a_homeserver_that_cannot_reach_the_bridge_is_diagnosed(hs: HomeserverKind) {
    // The registration points at a port nothing listens on; the bridge listens elsewhere.
    let dead = free_port();
    let env = Env::start_with(EnvOptions {
        homeserver: hs,
        registration_url_port: Some(dead),
        ..EnvOptions::default()
    })
    .await;
    let cfg = env.config_path.to_str().unwrap().to_owned();
    let reg = env.registration_path.to_str().unwrap().to_owned();
    let (code, err) = tokio::task::spawn_blocking(move || run_binary(&["-c", &cfg, "-r", &reg]))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    // Synapse names the failure (MSC2659's M_CONNECTION_FAILED); tuwunel 1.4.6 answers a
    // generic 500 M_UNKNOWN quoting the URL it called, hs_token included, which the bridge
    // blanks.
    let errcode = match hs {
        HomeserverKind::Synapse => "M_CONNECTION_FAILED",
        HomeserverKind::Tuwunel => "M_UNKNOWN",
    };
    assert!(
        err.contains(&format!(
            "Error: the homeserver could not reach the bridge at http://127.0.0.1:{dead}: {errcode}"
        )),
        "{err}"
    );
    let hs_token = env.config().appservice.hs_token.unwrap();
    assert!(
        !err.contains(hs_token.expose()),
        "the hs_token is not printed: {err}"
    );
    assert!(
        err.contains("firewall") && err.contains("127.0.0.1"),
        "{err}"
    );

    // doctor reports the same without starting the bridge, next to the checks that passed.
    let cfg = env.config_path.to_str().unwrap().to_owned();
    let reg = env.registration_path.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["doctor", "-c", &cfg, "-r", &reg])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[ok  ] homeserver"), "{stdout}");
    assert!(stdout.contains("[FAIL] appservice ping"), "{stdout}");
}

async fn doctor_passes_on_a_working_setup(hs: HomeserverKind) {
    let env = Env::start(hs).await;
    let cfg = env.config_path.to_str().unwrap().to_owned();
    let reg = env.registration_path.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["doctor", "-c", &cfg, "-r", &reg])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "[ok  ] config",
        "[ok  ] database",
        "[ok  ] homeserver",
        "[ok  ] appservice ping",
        "All checks passed.",
    ] {
        assert!(stdout.contains(line), "{line} in:\n{stdout}");
    }
}

#[test]
fn an_unreachable_homeserver_lists_every_address_tried() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let dead = free_port();
    let text = format!(
        "homeserver:\n  domain: {DOMAIN}\n  address: http://localhost:{dead}\nappservice:\n  as_token: a-token\n  hs_token: h-token\ndatabase:\n  uri: sqlite://{}/b.db\n",
        dir.path().display()
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, err) = run_binary(&["-c", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "Error: cannot connect to the homeserver at http://localhost:{dead}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("localhost → 127.0.0.1:{dead} ")),
        "each address is listed: {err}"
    );
    assert!(
        err.contains(&format!("http://127.0.0.1:{dead}")),
        "suggests the literal IP: {err}"
    );
}

/// Synapse rate-limits the ghost (registration `rate_limited: true`, a tight `rc_message`):
/// the client waits `retry_after_ms` and every message still goes through, once. Synapse only:
/// tuwunel parses `rate_limited` and never enforces it.
async fn rate_limited_sends_are_retried_until_they_pass(hs: HomeserverKind) {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "rc_message".into(),
        json!({"per_second": 1, "burst_count": 2}),
    );
    let env = Env::start_with(EnvOptions {
        homeserver: hs,
        synapse_extra: extra,
        rate_limited: true,
        ..EnvOptions::default()
    })
    .await;
    let config = env.config();
    let client = matrix_client(&config).unwrap();
    let ghost = UserId::parse(format!("@slack_t1-rl:{DOMAIN}")).unwrap();
    client.ensure_registered(&ghost).await.unwrap();
    let room = client
        .create_room(None, create_room::v3::Request::new())
        .await
        .unwrap();
    client.invite(None, &room, &ghost).await.unwrap();
    client.join(Some(&ghost), &room).await.unwrap();

    // Synapse really limits this ghost: a raw burst gets a 429 with retry_after_ms.
    let http = reqwest::Client::new();
    let token = config.appservice.as_token.clone().unwrap();
    let mut saw_429 = None;
    for i in 0..6 {
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/raw-{i}?user_id={}",
            env.hs.base_url(),
            testkit::enc(room.as_str()),
            testkit::enc(ghost.as_str())
        );
        let resp = http
            .put(url)
            .bearer_auth(token.expose())
            .json(&json!({"msgtype": "m.text", "body": format!("raw {i}")}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            saw_429 = Some(resp.json::<Value>().await.unwrap());
            break;
        }
    }
    let limited = saw_429.expect("Synapse rate-limited the raw burst");
    assert_eq!(limited["errcode"], "M_LIMIT_EXCEEDED");
    assert!(limited["retry_after_ms"].as_u64().is_some(), "{limited}");

    // Through the client, every message of a burst arrives, each once.
    for i in 0..6 {
        client
            .send_message(
                Some(&ghost),
                &room,
                &format!("client-{i}"),
                &RoomMessageEventContent::text_plain(format!("client {i}")),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("message {i} was not retried through the rate limit: {e}"));
    }
    let reader = env
        .hs
        .register_user("rl-reader", "pw", false)
        .await
        .unwrap();
    client
        .invite(None, &room, &UserId::parse(reader.user_id()).unwrap())
        .await
        .unwrap();
    reader.join(room.as_str()).await.unwrap();
    let bodies: Vec<String> = reader
        .messages(room.as_str(), 100)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .filter(|b| b.starts_with("client "))
        .collect();
    let expected: Vec<String> = (0..6).map(|i| format!("client {i}")).collect();
    assert_eq!(bodies, expected);
}

/// The way continuwuity operators (and many tuwunel ones) register: `!admin appservices
/// register` with the YAML in `#admins`. It takes effect at once, no restart: the bridge starts
/// and a user's message reaches it.
async fn an_admin_room_registration_works_without_a_restart(hs: HomeserverKind) {
    let w = world_with_env(
        Workspace::demo(),
        None,
        true,
        EnvOptions {
            homeserver: hs,
            register_in_admin_room: true,
            ..EnvOptions::default()
        },
    )
    .await;
    let bridge = w.env.run_bridge_full().await;
    wait_healthy(w.env.as_port).await;
    let bot = w.env.bot_client().await;
    assert_eq!(bot.user_id(), w.env.config().bot_mxid());
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    w.owner
        .send_text(&room, "hello through an admin-room registration")
        .await
        .unwrap();
    w.wait_for_post("hello through an admin-room registration")
        .await;
    assert!(!bridge.is_finished());
    bridge.stop().await.unwrap();
}

/// tuwunel before 1.6.0 does not create the `sender_localpart` user of a config-file
/// registration: the bridge registers its bot itself at start (every tuwunel test relies on
/// that). When the registration names another sender (here a hand-edited `sender_localpart`,
/// the field notes' pitfall), `whoami` answers `404 M_NOT_FOUND` and the bridge stops saying
/// what to do instead of printing that bare error.
async fn a_bot_user_the_homeserver_did_not_create_is_explained(hs: HomeserverKind) {
    let env = Env::start_with(EnvOptions {
        homeserver: hs,
        registration_edits: vec![(
            "sender_localpart: slackbot".into(),
            "sender_localpart: bridgebot7f3a".into(),
        )],
        ..EnvOptions::default()
    })
    .await;
    let cfg = env.config_path.to_str().unwrap().to_owned();
    let reg = env.registration_path.to_str().unwrap().to_owned();
    let (code, err) = tokio::task::spawn_blocking(move || run_binary(&["-c", &cfg, "-r", &reg]))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "Error: the homeserver knows the as_token but has no user @slackbot:{DOMAIN}"
        )),
        "{err}"
    );
    assert!(
        err.contains("sender_localpart") && err.contains("!admin appservices register"),
        "{err}"
    );
}
