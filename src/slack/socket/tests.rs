//! The connection manager driven through in-memory sockets, with time paused so backoff and
//! watchdogs are measured exactly.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{sink, stream};
use tokio::{sync::mpsc, time::Instant};

use super::*;

/// The Slack side of one in-memory connection.
struct FakeConn {
    to_client: mpsc::UnboundedSender<Result<Message, WsError>>,
    from_client: mpsc::UnboundedReceiver<Message>,
}

impl FakeConn {
    fn send(&self, text: &str) {
        self.to_client
            .send(Ok(Message::Text(text.to_owned().into())))
            .unwrap();
    }

    fn hello(&self) {
        self.send(r#"{"type":"hello","num_connections":1}"#);
    }

    fn event(&self, envelope_id: &str, event_id: &str) {
        self.send(&format!(
            r#"{{"envelope_id":"{envelope_id}","type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":"",
               "payload":{{"type":"event_callback","team_id":"T1","event_id":"{event_id}","event":{{"type":"message","channel":"C1","text":"x","ts":"1.1"}}}}}}"#
        ));
    }

    /// The next non-ping frame the client sent.
    async fn next(&mut self) -> Message {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(120), self.from_client.recv())
                .await
                .expect("client sent nothing")
                .expect("client went away");
            if !matches!(m, Message::Ping(_)) {
                return m;
            }
        }
    }

    fn closed_by_client(&mut self) -> bool {
        while let Ok(m) = self.from_client.try_recv() {
            if matches!(m, Message::Close(_)) {
                return true;
            }
        }
        false
    }
}

#[derive(Default)]
struct FakeSlack {
    /// Results for successive `open` calls; empty means "a URL".
    script: Mutex<Vec<Result<String, OpenError>>>,
    opens: Mutex<Vec<Instant>>,
    conns: Mutex<Option<mpsc::UnboundedSender<FakeConn>>>,
}

impl SocketOpener for FakeSlack {
    fn open(&self) -> BoxFuture<'_, Result<String, OpenError>> {
        Box::pin(async move {
            self.opens.lock().unwrap().push(Instant::now());
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                Ok("ws://fake/link/?ticket=t".into())
            } else {
                script.remove(0)
            }
        })
    }
}

impl SocketConnector for FakeSlack {
    fn connect(&self, _url: String) -> BoxFuture<'_, Result<(WsSink, WsStream), String>> {
        Box::pin(async move {
            let (to_client, client_rx) = mpsc::unbounded_channel::<Result<Message, WsError>>();
            let (client_tx, from_client) = mpsc::unbounded_channel::<Message>();
            let sink: WsSink = Box::pin(sink::unfold(client_tx, |tx, m: Message| async move {
                tx.send(m).map_err(|e| Box::new(e) as WsError)?;
                Ok::<_, WsError>(tx)
            }));
            let stream: WsStream = Box::pin(stream::unfold(client_rx, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            }));
            if let Some(tx) = self.conns.lock().unwrap().as_ref() {
                let _ = tx.send(FakeConn {
                    to_client,
                    from_client,
                });
            }
            Ok((sink, stream))
        })
    }
}

#[derive(Default)]
struct MemStore {
    seen: Mutex<HashSet<String>>,
    stored: Mutex<Vec<String>>,
    batches: Mutex<Vec<usize>>,
    /// New events and `gap` (each [`EnvelopeStore::connected_after_gap`]), in order.
    log: Mutex<Vec<String>>,
}

impl EnvelopeStore for MemStore {
    fn store<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let key = envelope.dedupe_key();
            let new = self.seen.lock().unwrap().insert(key.clone());
            if new {
                self.log.lock().unwrap().push(key.clone());
                self.stored.lock().unwrap().push(key);
            }
            Ok(new)
        })
    }

    fn store_batch<'a>(
        &'a self,
        envelopes: &'a [Envelope],
    ) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        Box::pin(async move {
            self.batches.lock().unwrap().push(envelopes.len());
            let mut out = Vec::new();
            for e in envelopes {
                out.push(self.store(e).await?);
            }
            Ok(out)
        })
    }

    fn connected_after_gap(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.log.lock().unwrap().push("gap".into()) })
    }
}

struct Harness {
    slack: Arc<FakeSlack>,
    store: Arc<MemStore>,
    conns: mpsc::UnboundedReceiver<FakeConn>,
    state: watch::Receiver<SocketState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<SocketState>,
}

fn start(script: Vec<Result<String, OpenError>>) -> Harness {
    let slack = Arc::new(FakeSlack::default());
    *slack.script.lock().unwrap() = script;
    let (tx, conns) = mpsc::unbounded_channel();
    *slack.conns.lock().unwrap() = Some(tx);
    let store = Arc::new(MemStore::default());
    let manager = SocketManager::new(
        "T1",
        slack.clone(),
        slack.clone(),
        store.clone(),
        SocketConfig::default(),
    );
    let state = manager.state();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(manager.run(async {
        let _ = stop_rx.await;
    }));
    Harness {
        slack,
        store,
        conns,
        state,
        stop: Some(stop),
        task,
    }
}

impl Harness {
    async fn conn(&mut self) -> FakeConn {
        tokio::time::timeout(Duration::from_secs(600), self.conns.recv())
            .await
            .expect("no connection opened")
            .unwrap()
    }

    async fn wait_state(&mut self, want: impl Fn(&SocketState) -> bool) -> SocketState {
        let s = tokio::time::timeout(Duration::from_secs(600), self.state.wait_for(|s| want(s)))
            .await
            .expect("state never reached")
            .unwrap();
        s.clone()
    }
}

fn ack_of(m: &Message) -> String {
    let Message::Text(t) = m else {
        panic!("expected an ack, got {m:?}")
    };
    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
    v["envelope_id"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn envelopes_are_stored_then_acked_and_redeliveries_deduplicated() {
    let mut h = start(vec![]);
    let mut c = h.conn().await;
    assert_eq!(*h.state.borrow(), SocketState::Connecting);
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    c.event("env-1", "Ev1");
    assert_eq!(ack_of(&c.next().await), "env-1");
    assert_eq!(*h.store.stored.lock().unwrap(), ["Ev1"]);
    // Slack redelivers the same event in a new envelope: acked again, stored once.
    c.event("env-2", "Ev1");
    assert_eq!(ack_of(&c.next().await), "env-2");
    c.event("env-3", "Ev2");
    assert_eq!(ack_of(&c.next().await), "env-3");
    assert_eq!(*h.store.stored.lock().unwrap(), ["Ev1", "Ev2"]);
    // Other envelope types are acked too, so Slack stops resending them.
    c.send(r#"{"envelope_id":"slash-1","type":"slash_commands","payload":{}}"#);
    assert_eq!(ack_of(&c.next().await), "slash-1");
    h.stop.take().unwrap().send(()).unwrap();
    assert_eq!(h.task.await.unwrap(), SocketState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn refresh_opens_the_new_socket_before_closing_the_old() {
    let mut h = start(vec![]);
    let mut old = h.conn().await;
    old.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    old.send(
        r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-2"}}"#,
    );
    let mut new = h.conn().await;
    // Until the new socket says hello, the old one stays open and keeps working.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!old.closed_by_client());
    old.event("env-late", "EvLate");
    assert_eq!(ack_of(&old.next().await), "env-late");
    new.hello();
    assert!(matches!(old.next().await, Message::Close(_)));
    new.event("env-new", "EvNew");
    assert_eq!(ack_of(&new.next().await), "env-new");
    assert_eq!(*h.store.stored.lock().unwrap(), ["EvLate", "EvNew"]);
    assert_eq!(h.slack.opens.lock().unwrap().len(), 2);
}

/// The first connection and every reconnect after a time with no connection report a gap
/// (the bridge catches up then), before their first envelope is stored; a refresh, whose
/// sockets overlap, does not.
#[tokio::test(start_paused = true)]
async fn a_gap_is_reported_before_the_next_envelope_and_a_refresh_is_none() {
    let mut h = start(vec![]);
    let mut first = h.conn().await;
    first.hello();
    first.event("env-1", "Ev1");
    assert_eq!(ack_of(&first.next().await), "env-1");
    first.send(
        r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-2"}}"#,
    );
    let mut second = h.conn().await;
    second.hello();
    assert!(matches!(first.next().await, Message::Close(_)));
    second.event("env-2", "Ev2");
    assert_eq!(ack_of(&second.next().await), "env-2");
    // The network drops the socket: the next connection follows a gap.
    drop(second);
    let mut third = h.conn().await;
    third.hello();
    third.event("env-3", "Ev3");
    assert_eq!(ack_of(&third.next().await), "env-3");
    assert_eq!(
        *h.store.log.lock().unwrap(),
        ["gap", "Ev1", "Ev2", "gap", "Ev3"]
    );
}

#[tokio::test(start_paused = true)]
async fn dead_credentials_stop_without_retrying() {
    let mut h = start(vec![
        Ok("ws://fake/1".into()),
        Err(OpenError::Dead("token_revoked".into())),
    ]);
    let c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    // Slack closes the socket of a revoked app; the reconnect learns the token is dead.
    drop(c);
    let state = h.task.await.unwrap();
    assert_eq!(state, SocketState::Invalid("token_revoked".into()));
    assert_eq!(h.slack.opens.lock().unwrap().len(), 2, "no reconnect storm");
}

#[tokio::test(start_paused = true)]
async fn link_disabled_marks_the_login_invalid() {
    let mut h = start(vec![]);
    let c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    c.send(r#"{"type":"disconnect","reason":"link_disabled"}"#);
    let SocketState::Invalid(reason) = h.task.await.unwrap() else {
        panic!()
    };
    assert!(reason.contains("Socket Mode is disabled"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn failed_opens_back_off_exponentially_with_jitter() {
    let script = (0..5)
        .map(|i| Err(OpenError::Other(format!("internal_error {i}"))))
        .collect();
    let mut h = start(script);
    let c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    let opens = h.slack.opens.lock().unwrap().clone();
    assert_eq!(opens.len(), 6);
    let gaps: Vec<Duration> = opens.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let full = Duration::from_secs(1 << i);
        assert!(
            *gap >= full / 2 && *gap <= full,
            "attempt {i}: waited {gap:?}, expected between {:?} and {full:?}",
            full / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn slack_rate_limit_on_open_is_honoured() {
    let mut h = start(vec![Err(OpenError::RateLimited(Duration::from_secs(30)))]);
    let _c = h.conn().await;
    let opens = h.slack.opens.lock().unwrap().clone();
    assert!(opens[1] - opens[0] >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_half_open_socket_is_detected_and_replaced() {
    let mut h = start(vec![]);
    let mut c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    let connected = Instant::now();
    // Slack goes silent: no frames, no pongs.
    let _new = h.conn().await;
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(40),
        "replaced after {waited:?}"
    );
    // The client pinged meanwhile.
    let mut pings = 0;
    while let Ok(m) = c.from_client.try_recv() {
        pings += usize::from(matches!(m, Message::Ping(_)));
    }
    assert!(pings >= 2, "{pings} pings");
}

#[tokio::test(start_paused = true)]
async fn too_many_websockets_backs_off() {
    let mut h = start(vec![]);
    let mut c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    let at = Instant::now();
    c.send(r#"{"type":"disconnect","reason":"too_many_websockets"}"#);
    assert!(matches!(c.next().await, Message::Close(_)));
    drop(c);
    let _next = h.conn().await;
    assert!(
        at.elapsed() >= Duration::from_secs(30),
        "waited {:?}",
        at.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn no_hello_means_no_connection() {
    let mut h = start(vec![]);
    let _silent = h.conn().await;
    let _next = h.conn().await;
    h.wait_state(|s| matches!(s, SocketState::Reconnecting { .. }))
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_stored_together_then_acked_in_order() {
    let mut h = start(vec![]);
    let mut c = h.conn().await;
    c.hello();
    h.wait_state(|s| *s == SocketState::Connected).await;
    // What queued up during an outage arrives at once, with a control frame in between.
    for i in 0..5 {
        c.event(&format!("env-{i}"), &format!("Ev{i}"));
    }
    c.send(r#"{"envelope_id":"slash-1","type":"slash_commands","payload":{}}"#);
    c.event("env-5", "Ev5");
    let mut acks = Vec::new();
    for _ in 0..7 {
        acks.push(ack_of(&c.next().await));
    }
    assert_eq!(
        acks,
        [
            "env-0", "env-1", "env-2", "env-3", "env-4", "slash-1", "env-5"
        ]
    );
    let batches = h.store.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 6);
    assert!(batches[0] > 1, "the burst was stored together: {batches:?}");
    assert_eq!(
        *h.store.stored.lock().unwrap(),
        ["Ev0", "Ev1", "Ev2", "Ev3", "Ev4", "Ev5"]
    );
}

#[test]
fn reconnect_waits_are_capped() {
    let config = SocketConfig::default();
    assert_eq!(backoff(&config, 0), Duration::ZERO);
    for n in [7, 8, 50, 1000, u32::MAX] {
        let w = backoff(&config, n);
        assert!(
            w >= config.backoff_max / 2 && w <= config.backoff_max,
            "attempt {n}: {w:?}"
        );
    }
}
