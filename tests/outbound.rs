//! Matrix → Slack as dependable as Slack → Matrix: a queue per portal (one failing channel
//! holds back only itself), exactly-once posts when Slack's answer is lost, retrying that
//! ends with a notice, and a shutdown that finishes in-flight sends — the Slack emulator, a
//! real Synapse and the bridge, on SQLite and PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use slack_emulator::{ChannelKind, Workspace};
use support::{
    TestDb,
    bridge::DOMAIN,
    process::BridgeProcess,
    world::{WAIT, World, body, bot, poll, wait_after, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    a_rate_limited_channel_holds_back_only_itself,
    a_failing_channel_holds_back_only_itself,
    posts_whose_answer_is_lost_appear_once,
    a_channel_failing_for_good_is_given_up_with_a_notice,
    sigkill_with_messages_in_flight_loses_and_doubles_nothing,
    a_login_interrupted_by_a_crash_is_not_run_again,
    sigterm_lets_sends_in_flight_finish,
    kills_during_the_initial_sync_never_make_a_second_room,
    slack_events_queued_during_a_homeserver_outage_arrive_in_order,
);

/// How long a message in a healthy channel may take while another channel fails: ~0.2 s
/// unloaded, and far less than the failing channel's waits (30 s Retry-After, a 503 for good).
const NOT_HELD_BACK: Duration = Duration::from_secs(8);

async fn setup(hs: HomeserverKind, db: Option<TestDb>) -> World {
    world_with(hs, Workspace::demo(), db, true, Vec::new()).await
}

/// Waits until `text` is in the channel's history, and returns when it got there.
async fn wait_posted(w: &World, channel: &str, text: &str, timeout: Duration) -> Instant {
    poll(&format!("{text:?} on Slack"), timeout, async || {
        (w.posted(channel, text) > 0).then(Instant::now)
    })
    .await
}

/// Channel A answered 429 with Retry-After: 30 holds back A only: B's message gets through
/// at once, A's arrives once after the wait.
async fn a_rate_limited_channel_holds_back_only_itself(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let a = w.emu.channel_id("general").unwrap();
    let b = w.emu.channel_id("random").unwrap();
    let room_a = w.joined_room_of(&a).await;
    let room_b = w.joined_room_of(&b).await;
    w.emu.rate_limit_channel("chat.postMessage", &a, 1, 30);
    w.owner.send_text(&room_a, "to A").await.unwrap();
    poll("A's first, rate-limited attempt", WAIT, async || {
        (!w.emu
            .calls("chat.postMessage")
            .iter()
            .all(|c| c.status != 429))
        .then_some(())
    })
    .await;
    let sent_b = Instant::now();
    w.owner.send_text(&room_b, "to B").await.unwrap();
    let got_b = wait_posted(&w, &b, "to B", WAIT).await;
    eprintln!(
        "B reached Slack {:?} after it was sent, A rate limited",
        got_b - sent_b
    );
    // Unblocked, B takes well under 2 s; the bound leaves room for a loaded machine and
    // stays far below A's 30 s wait.
    assert!(
        got_b - sent_b < NOT_HELD_BACK,
        "B waited {:?} behind rate-limited A",
        got_b - sent_b
    );
    assert_eq!(
        w.posted(&a, "to A"),
        0,
        "A is still waiting for Retry-After"
    );
    wait_posted(&w, &a, "to A", Duration::from_secs(60)).await;
    // Per-portal order: a sentinel after A's message means nothing else is on its way.
    w.owner.send_text(&room_a, "A sentinel").await.unwrap();
    wait_posted(&w, &a, "A sentinel", WAIT).await;
    assert_eq!(w.posted(&a, "to A"), 1);
    bridge.stop().await.unwrap();
}

/// Channel A failing with 503 for good holds back only A; once Slack recovers, A's message
/// arrives once.
async fn a_failing_channel_holds_back_only_itself(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let a = w.emu.channel_id("general").unwrap();
    let b = w.emu.channel_id("random").unwrap();
    let room_a = w.joined_room_of(&a).await;
    let room_b = w.joined_room_of(&b).await;
    w.emu
        .fault("chat.postMessage")
        .channel(&a)
        .forever()
        .http_status(503);
    w.owner.send_text(&room_a, "to failing A").await.unwrap();
    poll("A failing twice", WAIT, async || {
        (w.emu
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.status == 503)
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    for i in 0..3 {
        let sent = Instant::now();
        w.owner.send_text(&room_b, &format!("B {i}")).await.unwrap();
        let got = wait_posted(&w, &b, &format!("B {i}"), WAIT).await;
        eprintln!(
            "B {i} reached Slack {:?} after it was sent, A failing",
            got - sent
        );
        assert!(
            got - sent < NOT_HELD_BACK,
            "B {i} waited {:?} behind failing A",
            got - sent
        );
    }
    assert_eq!(w.posted(&a, "to failing A"), 0);
    w.emu.clear_faults();
    wait_posted(&w, &a, "to failing A", Duration::from_secs(90)).await;
    w.owner.send_text(&room_a, "A sentinel").await.unwrap();
    wait_posted(&w, &a, "A sentinel", WAIT).await;
    assert_eq!(w.posted(&a, "to failing A"), 1);
    bridge.stop().await.unwrap();
}

/// A post Slack applied but answered 503, and one applied and answered only after the
/// client's timeout: each is on Slack once (the bridge finds the first post by its metadata
/// instead of posting again).
async fn posts_whose_answer_is_lost_appear_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    w.env
        .edit_config("  request_timeout: 30s", "  request_timeout: 2s");
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;

    w.emu.apply_then_fail("chat.postMessage", 1, 503);
    w.owner.send_text(&room, "applied then 503").await.unwrap();
    w.emu
        .apply_then_delay("chat.postMessage", 1, Duration::from_secs(5));
    w.owner.send_text(&room, "applied then slow").await.unwrap();
    w.owner.send_text(&room, "sentinel").await.unwrap();
    wait_posted(&w, &general, "sentinel", Duration::from_secs(60)).await;
    assert_eq!(w.posted(&general, "applied then 503"), 1);
    assert_eq!(w.posted(&general, "applied then slow"), 1);
    let history = w.emu.calls("conversations.history");
    assert!(
        history
            .iter()
            .any(|c| c.param("include_all_metadata").as_deref() == Some("true")),
        "the bridge looked for its earlier posts by their metadata"
    );
    // Each post carries its Matrix event id.
    let with_meta = w
        .emu
        .messages(&general)
        .into_iter()
        .filter(|m| m["metadata"]["event_type"] == "slack_bridge_matrix_event")
        .count();
    assert!(with_meta >= 3, "posts carry metadata: {with_meta}");
    bridge.stop().await.unwrap();
}

/// With `retry_for: 5s`, a channel failing for good: the message is given up with a notice
/// naming it and the reason, and the portal's next message goes through once Slack recovers.
async fn a_channel_failing_for_good_is_given_up_with_a_notice(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = setup(hs, db).await;
    w.env.edit_config("    retry_for: 1h", "    retry_for: 5s");
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    w.emu
        .fault("chat.postMessage")
        .channel(&general)
        .forever()
        .http_status(503);
    let sent = w.owner.send_text(&room, "doomed message").await.unwrap();
    let notice = wait_after(&w.owner, &room, &sent, |e| {
        e["sender"] == bot().as_str() && body(e).contains("doomed message")
    })
    .await
    .expect("a notice about the given-up message");
    let text = body(&notice);
    assert!(text.contains("was not sent to Slack"), "{text}");
    assert!(text.contains("503"), "the reason is named: {text}");
    assert!(text.contains("gave up after retrying"), "{text}");
    // The given-up event shows in /metrics and in `list`.
    let metrics = w.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("slack_bridge_given_up_events_total{direction=\"matrix_to_slack\"} 1")),
        "{metrics}"
    );
    let mgmt = w.management_room().await;
    let listed = w.command(&mgmt, "list").await;
    assert!(
        body(&listed).contains("1 to Slack not delivered"),
        "list shows the failure: {}",
        body(&listed)
    );
    w.emu.clear_faults();
    w.owner.send_text(&room, "after recovery").await.unwrap();
    wait_posted(&w, &general, "after recovery", WAIT).await;
    assert_eq!(w.posted(&general, "doomed message"), 0);
    bridge.stop().await.unwrap();
}

/// SIGKILL while 20 Matrix messages are in flight (Slack answering slowly), then a restart:
/// every message is on Slack exactly once, in order.
async fn sigkill_with_messages_in_flight_loses_and_doubles_nothing(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = setup(hs, db).await;
    w.env
        .edit_config("  request_timeout: 30s", "  request_timeout: 3s");
    let mut bridge = BridgeProcess::start(&w.env).await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    // Every post is applied, then answered late: the kill lands between Slack posting and
    // the bridge recording it.
    w.emu
        .apply_then_delay("chat.postMessage", 5, Duration::from_secs(10));
    let texts: Vec<String> = (0..20).map(|i| format!("in flight {i:02}")).collect();
    for t in &texts {
        w.owner.send_text(&room, t).await.unwrap();
    }
    poll("the first slow post", WAIT, async || {
        (w.posted(&general, &texts[0]) > 0).then_some(())
    })
    .await;
    bridge.kill();
    w.emu.clear_faults();
    let bridge = BridgeProcess::start(&w.env).await;
    // The next message after the restart (tuwunel before 1.8.3 pushes transactions it held
    // while the bridge was down only when a new event comes; see the README).
    w.owner.send_text(&room, "sentinel").await.unwrap();
    wait_posted(&w, &general, "sentinel", Duration::from_secs(90)).await;
    let got: Vec<String> = w
        .slack_texts(&general)
        .into_iter()
        .filter(|t| t.starts_with("in flight"))
        .collect();
    assert_eq!(got, texts, "each message once, in order");
    bridge.stop_and_check_exit().await;
}

/// A `login` command, then SIGKILL before the bridge has marked it done, then a restart: the
/// login is not run a second time (one `auth.test` for it), and its sender is told.
async fn a_login_interrupted_by_a_crash_is_not_run_again(hs: HomeserverKind, db: Option<TestDb>) {
    let w = world_with(hs, Workspace::demo(), db, false, Vec::new()).await;
    let mut bridge = BridgeProcess::start(&w.env).await;
    let mgmt = w.management_room().await;
    // team.info comes last in the login's checks; it hangs, and the bridge dies meanwhile.
    w.emu
        .apply_then_delay("team.info", 1, Duration::from_secs(30));
    w.send_login(&mgmt).await;
    poll("the login's checks under way", WAIT, async || {
        (!w.emu.calls("team.info").is_empty()).then_some(())
    })
    .await;
    bridge.kill();
    w.emu.clear_faults();
    let bridge = BridgeProcess::start(&w.env).await;
    let told = poll("the interrupted-command notice", WAIT, async || {
        let events = w.owner.messages(&mgmt, 50).await.ok()?;
        events.into_iter().find(|e| {
            e["sender"] == bot().as_str() && body(e).contains("stopped while it ran your command")
        })
    })
    .await;
    assert!(body(&told).contains("`login`"), "{told}");
    // Per-queue order: the answer to a later command means the login was not retried.
    let pong = w.command(&mgmt, "help").await;
    assert!(body(&pong).contains("Commands"), "{pong}");
    assert_eq!(w.emu.calls("auth.test").len(), 1, "the login ran once");
    assert_eq!(
        w.emu.calls("apps.connections.open").len(),
        1,
        "the login's app token was checked once, and no socket was opened for the login that never finished"
    );
    bridge.stop_and_check_exit().await;
}

/// SIGTERM while sends are in flight (Slack answering slowly): they complete, and the bridge
/// exits 0 well within 15 s.
async fn sigterm_lets_sends_in_flight_finish(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = BridgeProcess::start(&w.env).await;
    let general = w.emu.channel_id("general").unwrap();
    let random = w.emu.channel_id("random").unwrap();
    let room_g = w.joined_room_of(&general).await;
    let room_r = w.joined_room_of(&random).await;
    w.emu
        .apply_then_delay("chat.postMessage", 2, Duration::from_secs(3));
    w.owner.send_text(&room_g, "slow to general").await.unwrap();
    w.owner.send_text(&room_r, "slow to random").await.unwrap();
    poll("both slow posts under way", WAIT, async || {
        (w.emu.calls("chat.postMessage").len() >= 2).then_some(())
    })
    .await;
    let stopping = Instant::now();
    let status = bridge.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "stopped in {:?}",
        stopping.elapsed()
    );
    // Recorded as sent before exiting: a restart does not look for or post them again.
    let store = w.store().await.unwrap();
    for room in [&room_g, &room_r] {
        let events = w.owner.messages(room, 20).await.unwrap();
        let id = events
            .iter()
            .find(|e| body(e).starts_with("slow to"))
            .and_then(|e| e["event_id"].as_str())
            .unwrap()
            .to_owned();
        assert!(
            matches!(
                store
                    .begin_outgoing(
                        &ruma::OwnedEventId::try_from(id.as_str()).unwrap(),
                        &ruma::OwnedRoomId::try_from(room.as_str()).unwrap(),
                        &w.emu.team_id().into(),
                        &"x".into()
                    )
                    .await
                    .unwrap(),
                slack_bridge::store::Outgoing::Sent(_)
            ),
            "{id} was recorded as sent before the bridge exited"
        );
    }
    assert_eq!(w.posted(&general, "slow to general"), 1);
    assert_eq!(w.posted(&random, "slow to random"), 1);
}

/// The bridge started and stopped in-process twice, each time in a runtime of its own: after
/// `run` returns, nothing it started is left running in that runtime, and its port is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_leaves_nothing_running() {
    let w = setup(HomeserverKind::Synapse, None).await;
    let general = w.emu.channel_id("general").unwrap();
    for round in 0..2 {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = w.env.config();
        let registration = w.env.registration_path.clone();
        let port = w.env.as_port;
        let bridge = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                slack_bridge::run(
                    slack_bridge::Bridge::new(config, registration, listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
            });
            // Tasks of dropped clients (connection pools) wind down on their own.
            let metrics = rt.metrics();
            let deadline = Instant::now() + Duration::from_secs(10);
            while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            (result, metrics.num_alive_tasks())
        });
        let room = w.joined_room_of(&general).await;
        let text = format!("round {round}");
        w.owner.send_text(&room, &text).await.unwrap();
        wait_posted(&w, &general, &text, WAIT).await;
        stop_tx.send(()).unwrap();
        let (result, alive) = tokio::task::spawn_blocking(move || bridge.join().unwrap())
            .await
            .unwrap();
        result.unwrap();
        assert_eq!(alive, 0, "tasks left running after run returned");
        std::net::TcpListener::bind(("127.0.0.1", w.env.as_port))
            .unwrap_or_else(|e| panic!("port {} still taken after stop: {e}", w.env.as_port));
    }
    let _ = DOMAIN;
}

/// 10 SIGKILLs during the initial sync of 50 channels: in the end exactly one room per
/// channel, each reachable under its alias.
async fn kills_during_the_initial_sync_never_make_a_second_room(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let mut ws = Workspace::demo();
    let bot = ws.bot_user_id().to_owned();
    let alice = ws.add_user("zed", "Zed Zero");
    let mut channels = Vec::new();
    for i in 0..50 {
        channels.push(ws.add_channel(&format!("sync-{i:02}"), false, &[&alice, &bot]));
    }
    let w = world_with(hs, ws, db, true, Vec::new()).await;
    let expected = poll("the portal count", WAIT, async || {
        let total = w.emu.with_workspace(|ws| {
            ws.channels()
                .iter()
                .filter(|c| !c.archived && (c.kind == ChannelKind::Im || c.is_member(&bot)))
                .count()
        });
        Some(total)
    })
    .await;
    let portals = async || {
        let store = w.store().await?;
        let n = store
            .list_portals(&w.emu.team_id().into())
            .await
            .ok()?
            .len();
        store.close().await;
        Some(n)
    };
    for kill in 0..10 {
        let before = portals().await.unwrap_or(0);
        let mut bridge = BridgeProcess::start(&w.env).await;
        // Let it create a room or two, then crash it, at a different point each time.
        poll(
            "progress before the kill",
            Duration::from_secs(60),
            async || (portals().await? > before || before >= expected).then_some(()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(37 * kill)).await;
        bridge.kill();
    }
    let bridge = BridgeProcess::start(&w.env).await;
    poll("every portal", Duration::from_secs(180), async || {
        (portals().await? == expected).then_some(())
    })
    .await;
    let store = w.store().await.unwrap();
    let stored = store.list_portals(&w.emu.team_id().into()).await.unwrap();
    store.close().await;
    let bot_client = w.env.bot_client().await;
    let joined = bot_client.joined_rooms().await.unwrap();
    let space = w.space().await;
    let rooms: Vec<&String> = joined.iter().filter(|r| **r != space).collect();
    assert_eq!(
        rooms.len(),
        expected,
        "one room per conversation, none twice: {} rooms for {expected} conversations",
        rooms.len()
    );
    for p in &stored {
        let room = p.room_id.as_deref().unwrap();
        assert!(joined.iter().any(|r| r == room), "{room} is a bot room");
    }
    for c in &channels {
        let alias = format!(
            "#slack_{}-{}:{DOMAIN}",
            w.emu.team_id().to_lowercase(),
            c.to_lowercase()
        );
        let resolved = bot_client
            .get(&format!(
                "/_matrix/client/v3/directory/room/{}",
                testkit::enc(&alias)
            ))
            .await
            .unwrap();
        let stored_room = stored
            .iter()
            .find(|p| p.channel_id == *c)
            .and_then(|p| p.room_id.clone())
            .unwrap();
        assert_eq!(resolved["room_id"], stored_room.as_str(), "{alias}");
    }
    bridge.stop_and_check_exit().await;

    // The crash window itself, made certain: rooms created but never stored (the bridge died
    // right after createRoom). The next sync must find them, not create new ones.
    let lost = &channels[..5];
    forget_portals(&w, lost).await;
    let bridge = BridgeProcess::start(&w.env).await;
    poll("every portal again", Duration::from_secs(60), async || {
        (portals().await? == expected).then_some(())
    })
    .await;
    let store = w.store().await.unwrap();
    let again = store.list_portals(&w.emu.team_id().into()).await.unwrap();
    store.close().await;
    for c in lost {
        let before = stored.iter().find(|p| p.channel_id == *c).unwrap();
        let after = again.iter().find(|p| p.channel_id == *c).unwrap();
        assert_eq!(after.room_id, before.room_id, "{c} found its first room");
    }
    let joined = bot_client.joined_rooms().await.unwrap();
    assert_eq!(
        joined.len(),
        expected + 1,
        "no second room (plus the space)"
    );
    bridge.stop_and_check_exit().await;
}

/// Deletes portal rows behind the bridge's back, as if it had died before storing them.
async fn forget_portals(w: &World, channels: &[String]) {
    let uri = w.env.config().database.uri().to_owned();
    let team = w.emu.team_id();
    let sql = "DELETE FROM portals WHERE team_id = $1 AND channel_id = $2";
    if uri.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&uri).await.unwrap();
        for c in channels {
            sqlx::query(sql)
                .bind(&team)
                .bind(c)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&uri).await.unwrap();
        for c in channels {
            sqlx::query(sql)
                .bind(&team)
                .bind(c)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
}

/// Slack keeps sending while the homeserver is down: every event waits (no deadline for an
/// outage) and arrives once it is back, in order per channel, more than a window's worth.
async fn slack_events_queued_during_a_homeserver_outage_arrive_in_order(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let mut w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let random = w.emu.channel_id("random").unwrap();
    let room_g = w.joined_room_of(&general).await;
    let room_r = w.joined_room_of(&random).await;
    w.env.hs.stop().await;
    let texts = |c: &str| {
        (0..25)
            .map(|i| format!("{c} backlog {i:02}"))
            .collect::<Vec<_>>()
    };
    let (alice, bob) = (
        w.emu.user_id("alice").unwrap(),
        w.emu.user_id("bob").unwrap(),
    );
    for (g, r) in texts("general").iter().zip(texts("random")) {
        w.emu.post_message(&alice, &general, g).unwrap();
        w.emu.post_message(&bob, &random, &r).unwrap();
    }
    poll("every event stored", WAIT, async || {
        let store = w.store().await?;
        let d = store.inbox_depths().await.ok()?;
        store.close().await;
        (d.slack_pending >= 50).then_some(())
    })
    .await;
    w.env.hs.restart().await.unwrap();
    for (room, channel) in [(&room_g, "general"), (&room_r, "random")] {
        let want = texts(channel);
        let got = poll(
            &format!("the {channel} backlog"),
            Duration::from_secs(120),
            async || {
                let events = w.owner.messages(room, 100).await.ok()?;
                let got: Vec<String> = events
                    .iter()
                    .map(|e| body(e).to_owned())
                    .filter(|b| b.contains(" backlog "))
                    .collect();
                (got.len() >= want.len()).then_some(got)
            },
        )
        .await;
        assert_eq!(got, want, "{channel}: all once, in order");
    }
    bridge.stop().await.unwrap();
}

/// `/ready` tells the truth about Slack: 200 naming each login's socket while connected, 503
/// once a login's socket has been down for over a minute; `ping` and `/metrics` show the
/// same state and the queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_turns_503_when_a_socket_stays_down() {
    let w = setup(HomeserverKind::Synapse, None).await;
    let bridge = w.env.run_bridge_full().await;
    let team = w.emu.team_id();
    let url = format!("http://127.0.0.1:{}/ready", w.env.as_port);
    let ready = async || {
        let r = reqwest::get(&url).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json::<serde_json::Value>().await.ok()?))
    };
    let (status, body_json) = poll("a ready bridge", WAIT, async || {
        ready()
            .await
            .filter(|(_, b)| b["slack"][&team] == "connected")
    })
    .await;
    assert_eq!(status, 200, "{body_json}");
    let mgmt = w.management_room().await;
    let pinged = w.command(&mgmt, "ping").await;
    assert!(body(&pinged).contains("connected"), "{}", body(&pinged));
    assert!(
        body(&pinged).contains("Queue Matrix → Slack: "),
        "{}",
        body(&pinged)
    );
    let metrics = w.metrics().await;
    for family in [
        "slack_bridge_queue_depth{direction=\"matrix_to_slack\"}",
        "slack_bridge_queue_oldest_pending_seconds{direction=\"slack_to_matrix\"}",
        "slack_bridge_slack_ack_latency_seconds_bucket",
        "slack_bridge_send_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(family), "{family} in:\n{metrics}");
    }
    // The socket drops and cannot come back.
    w.emu
        .fault("apps.connections.open")
        .forever()
        .error("internal_error");
    w.emu.disconnect_all("refresh_requested");
    let (status, body_json) = poll("/ready to fail", Duration::from_secs(120), async || {
        ready().await.filter(|(s, _)| *s == 503)
    })
    .await;
    assert_eq!(status, 503);
    let slack = body_json["slack"][&team].as_str().unwrap_or_default();
    assert!(
        slack.contains("reconnecting") && slack.contains("not connected for"),
        "{body_json}"
    );
    assert_eq!(body_json["homeserver"], "ok", "{body_json}");
    let pinged = w.command(&mgmt, "ping").await;
    assert!(
        body(&pinged).contains("not connected for"),
        "{}",
        body(&pinged)
    );
    w.emu.clear_faults();
    poll("/ready to recover", Duration::from_secs(90), async || {
        ready().await.filter(|(s, _)| *s == 200)
    })
    .await;
    bridge.stop().await.unwrap();
}
