//! Socket Mode acceptance tests: the real `SocketManager` (tungstenite, `apps.connections.open`
//! through `SlackClient`, the durable inbox) against the Slack emulator, under refreshes,
//! `too_many_websockets`, redeliveries, dropped acks and a revoked app token.

mod support;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use slack_bridge::{
    bridge::slack_inbox::InboxStore,
    config::Secret,
    slack::{
        socket::{SocketConfig, SocketManager, SocketState, TungsteniteConnector, WebApiOpener},
        web::SlackClient,
    },
    store::Store,
};
use slack_emulator::{Config, Emulator, Target, Workspace};
use support::TestDb;
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::timeout,
};

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

/// Short timings so faults resolve in milliseconds, not Slack's seconds.
fn socket_config() -> SocketConfig {
    SocketConfig {
        hello_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        ping_interval: Duration::from_secs(5),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
        too_many_backoff: Duration::from_secs(1),
        on_ack: None,
    }
}

/// A workspace with three people and three channels, the bot a member of each.
struct Fixture {
    emu: Emulator,
    users: Vec<String>,
    channels: Vec<String>,
}

async fn fixture() -> Fixture {
    let mut ws = Workspace::new("T0SOCKET01", "Socket Test");
    let bot = ws.bot_user_id().to_owned();
    let users: Vec<String> = [
        ("alice", "Alice Liddell"),
        ("bob", "Bob Builder"),
        ("carol", "Carol Danvers"),
    ]
    .iter()
    .map(|(n, r)| ws.add_user(n, r))
    .collect();
    let members: Vec<&str> = users
        .iter()
        .map(String::as_str)
        .chain([bot.as_str()])
        .collect();
    let channels = vec![
        ws.add_channel("general", false, &members),
        ws.add_channel("random", false, &members),
        ws.add_channel("secret", true, &members),
    ];
    let mut config = Config::default();
    // Quick redelivery of unacked envelopes, enough retries that a dropped-ack window never
    // makes the emulator give an event up, and a short grace before refreshed sockets close.
    config.socket.ack_timeout = Duration::from_millis(500);
    config.socket.max_retries = 10;
    config.socket.refresh_grace = Duration::from_millis(500);
    let emu = Emulator::start_with(ws, config)
        .await
        .expect("start the slack emulator");
    Fixture {
        emu,
        users,
        channels,
    }
}

/// A `SocketManager` running in a task.
struct Running {
    state: watch::Receiver<SocketState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<SocketState>,
}

fn start_manager(emu: &Emulator, store: Store, app_token: String) -> Running {
    let client = SlackClient::new(
        &emu.api_url(),
        Secret::new(emu.bot_token()),
        Secret::new(app_token),
    )
    .expect("slack client for the emulator");
    let inbox = InboxStore {
        store,
        team_id: emu.team_id().into(),
        waker: Arc::default(),
        catchup_max: 500,
    };
    let manager = SocketManager::new(
        "socket-test",
        Arc::new(WebApiOpener(Arc::new(client))),
        Arc::new(TungsteniteConnector),
        Arc::new(inbox),
        socket_config(),
    );
    let state = manager.state();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(manager.run(async move {
        let _ = stopped.await;
    }));
    Running {
        state,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn wait_connected(&mut self, when: &str) {
        let waited = timeout(WAIT, async {
            loop {
                if *self.state.borrow_and_update() == SocketState::Connected {
                    return true;
                }
                if self.state.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        match waited {
            Ok(true) => {}
            Ok(false) => panic!(
                "the socket manager stopped instead of connecting ({when}); final state {:?}",
                *self.state.borrow()
            ),
            Err(_) => panic!(
                "the socket manager did not reach Connected within {WAIT:?} ({when}); state {:?}",
                *self.state.borrow()
            ),
        }
    }

    /// Resolves the shutdown future and returns the manager's final state.
    async fn stop(mut self) -> SocketState {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(WAIT, self.task)
            .await
            .unwrap_or_else(|_| panic!("the socket manager did not stop within {WAIT:?}"))
            .expect("socket manager task panicked")
    }
}

/// Waits for `cond` on the emulator or panics naming `what` did not happen.
async fn until(emu: &Emulator, what: &str, cond: impl FnMut(&Emulator) -> bool) {
    let mut cond = cond;
    if emu
        .wait_for(WAIT, |e| cond(e).then_some(()))
        .await
        .is_none()
    {
        panic!(
            "timed out after {WAIT:?} waiting for: {what} (open sockets {}, sockets ever {}, pending envelopes {})",
            emu.connection_count(),
            emu.total_connections(),
            emu.pending_events()
        );
    }
}

/// Every event the emulator queued has a counted ack and nothing is queued or in flight.
fn all_acked(e: &Emulator) -> bool {
    e.pending_events() == 0 && e.events().iter().all(|ev| ev.acked)
}

/// A small xorshift generator: the sample of redelivered events differs per run, and the
/// seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("random seed");
        Rng(u64::from_le_bytes(b) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

const EVENTS: usize = 1000;

/// Posts 1,000 messages while the emulator forces 3 refreshes, one `too_many_websockets`, a
/// window of dropped acks and random redeliveries; then checks the inbox holds each event
/// exactly once and every envelope was acked.
async fn thousand_events_never_lose_one(db: TestDb, label: &str) {
    let Fixture {
        emu,
        users,
        channels,
    } = fixture().await;
    let store = db.connect().await;
    let mut run = start_manager(&emu, store.clone(), emu.app_token());
    run.wait_connected("first connection").await;

    let mut rng = Rng::seeded();
    println!("[{label}] redelivery sample seed {:#x}", rng.0);

    // index → fault. Each fault first waits for the previous one to have resolved into
    // exactly one fresh, open socket, so the three refreshes are really three.
    let faults: HashMap<usize, &str> = [
        (120, "refresh_requested"),
        (280, "warning"),
        (440, "too_many_websockets"),
        (600, "refresh_requested"),
        (760, "drop_acks_on"),
        (800, "drop_acks_off"),
    ]
    .into_iter()
    .collect();
    // Sockets ever opened when the last socket-closing fault was forced.
    let mut sockets_at_fault: Option<u64> = None;
    let mut redelivered = 0usize;
    let mut pace = tokio::time::interval(Duration::from_millis(8));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let posting = Instant::now();
    for i in 0..EVENTS {
        pace.tick().await;
        if let Some(fault) = faults.get(&i) {
            match *fault {
                "drop_acks_on" => emu.drop_acks(true),
                "drop_acks_off" => emu.drop_acks(false),
                reason => {
                    until(
                        &emu,
                        &format!("one fresh open socket before forcing `{reason}` at message {i}"),
                        |e| {
                            sockets_at_fault.is_none_or(|n| e.total_connections() > n)
                                && e.connection_count() == 1
                        },
                    )
                    .await;
                    sockets_at_fault = Some(emu.total_connections());
                    let target = if reason == "too_many_websockets" {
                        Target::Newest
                    } else {
                        Target::All
                    };
                    assert_eq!(
                        emu.disconnect(target, reason),
                        1,
                        "`{reason}` reached one socket"
                    );
                }
            }
        }
        let user = &users[i % users.len()];
        let channel = &channels[(i / users.len()) % channels.len()];
        emu.post_message(user, channel, &format!("message {i} of {EVENTS}"))
            .unwrap_or_else(|e| panic!("post message {i}: {e:?}"));
        // About one event in twenty is sent again, as Slack's retries would.
        if i > 10 && rng.below(20) == 0 {
            let events = emu.events();
            let pick = &events[rng.below(events.len())].event_id;
            assert!(emu.redeliver(pick), "redeliver {pick}");
            redelivered += 1;
        }
    }
    emu.drop_acks(false);
    let posted_in = posting.elapsed();
    until(
        &emu,
        "every queued event acked and nothing pending",
        all_acked,
    )
    .await;
    // The last forced fault (a refresh) must have resolved too.
    let last = sockets_at_fault.expect("faults were forced");
    until(&emu, "a fresh socket after the last refresh", |e| {
        e.total_connections() > last && e.connection_count() == 1
    })
    .await;
    run.wait_connected("after all faults").await;
    assert_eq!(run.stop().await, SocketState::Stopped);

    // ---- the emulator's view: every event, every envelope acked ----
    let events = emu.events();
    let deliveries = emu.deliveries();
    let all_acks = emu.all_acks();
    let counted = emu.acks();
    let event_ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let distinct: HashSet<&str> = event_ids.iter().copied().collect();
    assert_eq!(
        events.len(),
        EVENTS,
        "the emulator queued one event per message"
    );
    assert_eq!(
        distinct.len(),
        EVENTS,
        "the emulator's event ids are unique"
    );
    assert!(
        events.iter().all(|e| e.acked && !e.given_up),
        "events never acked or given up: {:?}",
        events
            .iter()
            .filter(|e| !e.acked || e.given_up)
            .map(|e| &e.event_id)
            .collect::<Vec<_>>()
    );
    let counted_by_event: HashSet<&str> = counted
        .iter()
        .filter_map(|a| a.event_id.as_deref())
        .collect();
    let missing_ack: Vec<&&str> = event_ids
        .iter()
        .filter(|id| !counted_by_event.contains(**id))
        .collect();
    assert!(
        missing_ack.is_empty(),
        "events without a counted ack: {missing_ack:?}"
    );
    let mut acks_per_envelope: HashMap<&str, usize> = HashMap::new();
    for a in &all_acks {
        *acks_per_envelope.entry(a.envelope_id.as_str()).or_default() += 1;
    }
    let unacked: Vec<&str> = deliveries
        .iter()
        .map(|d| d.envelope_id.as_str())
        .filter(|e| !acks_per_envelope.contains_key(e))
        .collect();
    assert!(
        unacked.is_empty(),
        "{} of {} envelopes the emulator sent were never acked: {unacked:?}",
        unacked.len(),
        deliveries.len()
    );
    let double: Vec<(&&str, &usize)> = acks_per_envelope.iter().filter(|(_, n)| **n > 1).collect();
    assert!(double.is_empty(), "envelopes acked twice: {double:?}");
    // An ack slower than the emulator's ack timeout arrives after the retry went out; that is
    // noise on a loaded machine, not an error, so it is only reported.
    let late = all_acks.iter().filter(|a| a.event_id.is_none()).count();
    let retries = deliveries.iter().filter(|d| d.retry_attempt > 0).count();
    let dropped = all_acks.iter().filter(|a| a.dropped).count();
    assert!(
        retries >= redelivered && redelivered > 0,
        "redeliveries happened ({retries} retries, {redelivered} forced)"
    );
    assert!(dropped > 0, "the dropped-ack window dropped some acks");
    // 1 + 3 refreshes + 1 after too_many_websockets.
    assert!(
        emu.total_connections() >= 5,
        "sockets opened: {}",
        emu.total_connections()
    );

    // ---- the inbox: each event exactly once ----
    let rows = store
        .pending_slack_events(0, 10 * EVENTS as i64)
        .await
        .expect("read the inbox");
    let stored: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let stored_set: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(rows.len(), EVENTS, "the inbox holds one row per event");
    assert_eq!(
        stored_set, distinct,
        "the inbox holds exactly the emulator's events"
    );
    for id in &event_ids {
        assert_eq!(
            store.slack_event_count(id).await.expect("count"),
            1,
            "event {id} stored exactly once"
        );
    }
    let team = emu.team_id();
    assert!(rows.iter().all(|r| {
        r.team_id == team
            && r.channel_id
                .as_deref()
                .is_some_and(|c| channels.iter().any(|x| x == c))
    }));

    // ---- latency, reported but not asserted (shared, noisy machine) ----
    let mut latencies: Vec<Duration> = all_acks
        .iter()
        .filter(|a| a.event_id.is_some())
        .map(|a| a.latency)
        .collect();
    latencies.sort();
    // Per socket: the one opened after the `too_many_websockets` pause starts with the backlog
    // queued meanwhile, acked one by one, which is where the tail latency comes from.
    let mut per_socket: std::collections::BTreeMap<u64, (usize, Duration)> = Default::default();
    for a in all_acks.iter().filter(|a| a.event_id.is_some()) {
        let e = per_socket.entry(a.connection_id).or_default();
        e.0 += 1;
        e.1 = e.1.max(a.latency);
    }
    println!(
        "[{label}] {EVENTS} events in {posted_in:?}: {} envelopes ({retries} retries, {redelivered} forced redeliveries, {dropped} acks dropped, {late} late acks), {} sockets",
        deliveries.len(),
        emu.total_connections()
    );
    println!(
        "[{label}] ack latency over {} acks: p50 {:?}, p99 {:?}, max {:?} (target < 100 ms)",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    for (socket, (n, max)) in &per_socket {
        println!("[{label}]   socket {socket}: {n} acks, max latency {max:?}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_events_never_lose_one_sqlite() {
    thousand_events_never_lose_one(TestDb::sqlite(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_events_never_lose_one_postgres() {
    let Some(db) = TestDb::postgres("thousand_events_never_lose_one_postgres").await else {
        return;
    };
    thousand_events_never_lose_one(db, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_app_token_stops_without_a_reconnect_storm() {
    let Fixture {
        emu,
        users,
        channels,
    } = fixture().await;
    let db = TestDb::sqlite();
    let store = db.connect().await;
    let mut run = start_manager(&emu, store.clone(), emu.app_token());
    run.wait_connected("before the revoke").await;
    for i in 0..20 {
        emu.post_message(&users[i % 3], &channels[i % 3], &format!("before {i}"))
            .expect("post");
    }
    until(&emu, "the 20 events before the revoke acked", all_acked).await;

    let opens_before = emu.calls("apps.connections.open").len();
    let revoked_at = Instant::now();
    emu.revoke_app_token();
    let Running {
        state, mut task, ..
    } = run;
    let end = match timeout(Duration::from_secs(5), &mut task).await {
        Ok(r) => r.expect("socket manager task panicked"),
        Err(_) => {
            task.abort();
            panic!(
                "the manager did not give up within 5 s of the revoke; state {:?}, apps.connections.open calls since: {}",
                *state.borrow(),
                emu.calls("apps.connections.open").len() - opens_before
            );
        }
    };
    let took = revoked_at.elapsed();
    let opens = emu.calls("apps.connections.open").len() - opens_before;
    println!("revoke: manager ended as {end:?} after {took:?} and {opens} apps.connections.open");
    let SocketState::Invalid(reason) = &end else {
        panic!("the manager ended as {end:?}, not Invalid");
    };
    assert!(
        reason.contains("invalid_auth"),
        "the reason names Slack's error: {reason}"
    );
    assert_eq!(
        *state.borrow(),
        end,
        "the state watch shows the final state"
    );
    assert!(
        (1..=3).contains(&opens),
        "{opens} apps.connections.open calls after the revoke"
    );
    // The manager has returned (its tasks with it): the emulator sees its socket closed, and
    // no new one opens meanwhile.
    until(&emu, "the socket closed", |e| e.connection_count() == 0).await;
    assert_eq!(
        emu.calls("apps.connections.open").len() - opens_before,
        opens,
        "no apps.connections.open after the manager gave up"
    );
    assert_eq!(
        store
            .pending_slack_events(0, 100)
            .await
            .expect("inbox")
            .len(),
        20,
        "the events before the revoke stay in the inbox"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_survives_restart_and_dedupes_redeliveries() {
    let Fixture {
        emu,
        users,
        channels,
    } = fixture().await;
    let db = TestDb::sqlite();
    let store = db.connect().await;
    let mut run = start_manager(&emu, store.clone(), emu.app_token());
    run.wait_connected("first run").await;
    const N: usize = 30;
    for i in 0..N {
        emu.post_message(&users[i % 3], &channels[i % 3], &format!("durable {i}"))
            .expect("post");
    }
    until(&emu, "the first run's events acked", all_acked).await;
    assert_eq!(run.stop().await, SocketState::Stopped);
    until(&emu, "the first run's socket closed", |e| {
        e.connection_count() == 0
    })
    .await;
    store.close().await;
    drop(store);

    // Re-opened from disk: every acked event is there.
    let store = db.connect().await;
    let ids: Vec<String> = emu.events().into_iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), N);
    let rows = store.pending_slack_events(0, 1000).await.expect("inbox");
    let stored: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        stored,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "after re-opening, the inbox holds every acked event in arrival order"
    );
    for (row, ev) in rows.iter().zip(emu.events()) {
        let payload: serde_json::Value = serde_json::from_str(&row.payload).expect("json payload");
        // Everything Slack sent, but its legacy verification token (a secret never needed).
        let mut sent = ev.payload.clone();
        assert!(
            sent.as_object_mut().unwrap().remove("token").is_some(),
            "the emulator sends the token, as Slack does"
        );
        assert_eq!(payload, sent, "stored payload of {}", row.event_id);
    }

    // Slack redelivers some of them to a restarted manager (while it was down, and after).
    let acks_before = emu.acks().len();
    for id in ids.iter().step_by(5) {
        assert!(emu.redeliver(id));
    }
    let mut run = start_manager(&emu, store.clone(), emu.app_token());
    run.wait_connected("after the restart").await;
    for id in ids.iter().skip(2).step_by(7) {
        assert!(emu.redeliver(id));
    }
    let redelivered = ids.iter().step_by(5).count() + ids.iter().skip(2).step_by(7).count();
    emu.post_message(&users[0], &channels[0], "after the restart")
        .expect("post");
    until(
        &emu,
        "the redeliveries and the new event acked after the restart",
        |e| all_acked(e) && e.acks().len() > acks_before + redelivered,
    )
    .await;
    assert_eq!(run.stop().await, SocketState::Stopped);

    let retries = emu
        .deliveries()
        .iter()
        .filter(|d| d.retry_attempt > 0)
        .count();
    assert!(
        retries >= redelivered,
        "each redelivery was sent as a retry ({retries} < {redelivered})"
    );
    let rows = store.pending_slack_events(0, 1000).await.expect("inbox");
    assert_eq!(
        rows.len(),
        N + 1,
        "redeliveries added no rows; the new event did"
    );
    for id in &ids {
        assert_eq!(
            store.slack_event_count(id).await.expect("count"),
            1,
            "{id} stored once"
        );
    }
    store.close().await;
}
