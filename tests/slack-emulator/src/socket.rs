//! Socket Mode: single-use connection tickets, the WebSocket endpoint at `/link/`, frame shapes
//! (`hello`, `events_api` envelopes, `disconnect`), delivery of each event to exactly one open
//! connection, ack tracking, redelivery on ack timeout or lost sockets, and server pings.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::server::Inner;
use crate::util;

/// Tunables for Socket Mode behaviour; all have Slack-like defaults and can be shortened for tests.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Redeliver an envelope not acked within this long (Slack: 3 s).
    pub ack_timeout: Duration,
    /// Redeliveries after the first attempt before an event is given up (HTTP Events API: 3).
    pub max_retries: u32,
    /// How long a socket told `refresh_requested`/`warning` stays open before being closed.
    pub refresh_grace: Duration,
    /// Interval of server WebSocket pings.
    pub ping_interval: Duration,
    /// Concurrent sockets allowed per app (Slack: 10).
    pub max_connections: usize,
    /// Connection lifetime when the URL carries `debug_reconnects=true` (Slack: ~360 s);
    /// afterwards the socket gets `refresh_requested`.
    pub debug_reconnect_after: Duration,
    /// Acks of this many bytes or more are silently dropped (slack-go's documented observation).
    pub max_ack_bytes: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            ack_timeout: Duration::from_secs(3),
            max_retries: 3,
            refresh_grace: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            max_connections: 10,
            debug_reconnect_after: Duration::from_secs(360),
            max_ack_bytes: 20 * 1024,
        }
    }
}

/// An ack the emulator received (accepted or, with drop_acks, ignored).
#[derive(Debug, Clone, Serialize)]
pub struct AckRecord {
    pub envelope_id: String,
    /// `None` when the envelope ID was unknown (already acked, expired, or made up).
    pub event_id: Option<String>,
    pub connection_id: u64,
    pub retry_attempt: u32,
    /// From sending the envelope to receiving the ack.
    #[serde(serialize_with = "ser_ms", rename = "latency_ms")]
    pub latency: Duration,
    /// The ack's `payload`, if it carried one.
    pub payload: Option<Value>,
    /// True when the ack was ignored because of [`crate::Emulator::drop_acks`] or its size.
    pub dropped: bool,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// One envelope sent to a socket.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub envelope_id: String,
    pub event_id: String,
    pub connection_id: u64,
    pub retry_attempt: u32,
    pub retry_reason: String,
    pub event_type: String,
}

/// An event the app was sent (the outer `event_callback` payload) and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub event_id: String,
    pub payload: Value,
    pub acked: bool,
    /// Retries exhausted without an ack.
    pub given_up: bool,
}

/// Which sockets a forced disconnect targets.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    All,
    One(u64),
    Newest,
    Oldest,
}

pub(crate) enum Outbound {
    Text(String),
    Close(u16, String),
    /// Ends the socket with no close frame, like a network drop.
    Drop,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Told to go away; receives no new envelopes but its acks still count.
    draining: bool,
    host: String,
}

struct InFlight {
    envelope_id: String,
    event_id: String,
    payload: Value,
    conn: u64,
    sent: Instant,
    deadline: Instant,
    retry_attempt: u32,
}

struct Queued {
    event_id: String,
    payload: Value,
    retry_attempt: u32,
    retry_reason: String,
}

/// All Socket Mode state. Lock order: the workspace lock (if held) comes before this one.
pub(crate) struct Dispatcher {
    pub config: SocketConfig,
    conns: Vec<Conn>,
    next_conn: u64,
    rr: usize,
    inflight: Vec<InFlight>,
    queue: VecDeque<Queued>,
    pub acks: Vec<AckRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    pub events: Vec<EventRecord>,
    /// While set, events generated with no socket open are dropped, not queued.
    pub drop_while_disconnected: bool,
    /// Events dropped that way, never sent.
    pub dropped: Vec<EventRecord>,
    tickets: HashSet<String>,
    used_tickets: HashSet<String>,
    pub drop_acks: bool,
    pub total_connections: u64,
    hosts: HashMap<u64, String>,
}

impl Dispatcher {
    pub fn new(config: SocketConfig) -> Self {
        Dispatcher {
            config,
            conns: Vec::new(),
            next_conn: 1,
            rr: 0,
            inflight: Vec::new(),
            queue: VecDeque::new(),
            acks: Vec::new(),
            deliveries: Vec::new(),
            events: Vec::new(),
            drop_while_disconnected: false,
            dropped: Vec::new(),
            tickets: HashSet::new(),
            used_tickets: HashSet::new(),
            drop_acks: false,
            total_connections: 0,
            hosts: HashMap::new(),
        }
    }

    pub fn issue_ticket(&mut self) -> String {
        let t = util::uuid_v4();
        self.tickets.insert(t.clone());
        t
    }

    /// Tickets are single-use: a reconnect must call apps.connections.open again.
    pub fn consume_ticket(&mut self, ticket: &str) -> bool {
        if self.tickets.remove(ticket) {
            self.used_tickets.insert(ticket.to_string());
            true
        } else {
            false
        }
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn connection_ids(&self) -> Vec<u64> {
        self.conns.iter().map(|c| c.id).collect()
    }

    /// Registers a socket and returns its id, the `hello` frame, and whether it exceeds the limit.
    fn register(
        &mut self,
        tx: mpsc::UnboundedSender<Outbound>,
        debug: bool,
        app_id: &str,
    ) -> (u64, String, bool) {
        let id = self.next_conn;
        self.next_conn += 1;
        self.total_connections += 1;
        let host = format!(
            "applink-{}-{}",
            util::random_hex(10),
            util::random_alnum(5).to_lowercase()
        );
        self.hosts.insert(id, host.clone());
        self.conns.push(Conn {
            id,
            tx,
            draining: false,
            host: host.clone(),
        });
        let hello = json!({
            "type": "hello",
            "num_connections": self.conns.len(),
            "debug_info": {
                "host": host,
                "build_number": 112,
                "approximate_connection_time": if debug { self.config.debug_reconnect_after.as_secs() } else { 18060 },
            },
            "connection_info": {"app_id": app_id},
        });
        let too_many = self.conns.len() > self.config.max_connections;
        if too_many {
            // The newest socket over the limit is told to go away and never gets events.
            if let Some(c) = self.conns.last_mut() {
                c.draining = true;
            }
        }
        (id, hello.to_string(), too_many)
    }

    /// Forgets a closed socket; anything still in flight on it is redelivered elsewhere now
    /// rather than waiting for the ack timeout.
    fn unregister(&mut self, id: u64) {
        self.conns.retain(|c| c.id != id);
        let now = Instant::now();
        for f in self.inflight.iter_mut().filter(|f| f.conn == id) {
            f.deadline = now;
        }
        self.tick(now);
    }

    /// Queues a new event payload for delivery, or drops it when no socket is open and
    /// `drop_while_disconnected` is set.
    pub fn enqueue(&mut self, payload: Value) {
        let event_id = payload["event_id"].as_str().unwrap_or_default().to_string();
        let record = EventRecord {
            event_id: event_id.clone(),
            payload: payload.clone(),
            acked: false,
            given_up: false,
        };
        if self.drop_while_disconnected && self.conns.is_empty() {
            self.dropped.push(record);
            return;
        }
        self.events.push(record);
        self.queue.push_back(Queued {
            event_id,
            payload,
            retry_attempt: 0,
            retry_reason: String::new(),
        });
        self.flush();
    }

    /// Sends an already-delivered event again as a retry (a fault knob).
    pub fn redeliver(&mut self, event_id: &str) -> bool {
        let Some(rec) = self.events.iter().rev().find(|e| e.event_id == event_id) else {
            return false;
        };
        let attempt = self
            .deliveries
            .iter()
            .filter(|d| d.event_id == event_id)
            .map(|d| d.retry_attempt)
            .max()
            .map(|a| a + 1)
            .unwrap_or(0);
        self.queue.push_back(Queued {
            event_id: event_id.to_string(),
            payload: rec.payload.clone(),
            retry_attempt: attempt,
            retry_reason: if attempt == 0 {
                String::new()
            } else {
                "timeout".into()
            },
        });
        self.flush();
        true
    }

    /// Round-robin over sockets that are not draining, so consecutive events land on
    /// different sockets and a client must handle events from all of them.
    fn pick(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.conns.len())
            .filter(|&i| !self.conns[i].draining)
            .collect();
        if live.is_empty() {
            return None;
        }
        self.rr = self.rr.wrapping_add(1);
        Some(live[self.rr % live.len()])
    }

    pub fn flush(&mut self) {
        while !self.queue.is_empty() {
            let Some(i) = self.pick() else { return };
            let q = self.queue.pop_front().unwrap();
            let envelope_id = util::uuid_v4();
            let env = json!({
                "envelope_id": envelope_id,
                "payload": q.payload,
                "type": "events_api",
                "accepts_response_payload": false,
                "retry_attempt": q.retry_attempt,
                "retry_reason": q.retry_reason,
            });
            let conn = &self.conns[i];
            if conn.tx.send(Outbound::Text(env.to_string())).is_err() {
                // The socket task is gone; drop it and try the next one.
                let id = conn.id;
                self.conns.retain(|c| c.id != id);
                self.queue.push_front(q);
                continue;
            }
            let now = Instant::now();
            self.deliveries.push(DeliveryRecord {
                envelope_id: envelope_id.clone(),
                event_id: q.event_id.clone(),
                connection_id: conn.id,
                retry_attempt: q.retry_attempt,
                retry_reason: q.retry_reason.clone(),
                event_type: q.payload["event"]["type"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            });
            self.inflight.push(InFlight {
                envelope_id,
                event_id: q.event_id,
                payload: q.payload,
                conn: conn.id,
                sent: now,
                deadline: now + self.config.ack_timeout,
                retry_attempt: q.retry_attempt,
            });
        }
    }

    /// Requeues envelopes whose ack deadline passed, with `retry_attempt` incremented and
    /// `retry_reason: "timeout"`; gives up after `max_retries`.
    pub fn tick(&mut self, now: Instant) {
        let (due, keep): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|f| f.deadline <= now);
        self.inflight = keep;
        for f in due {
            if f.retry_attempt < self.config.max_retries {
                self.queue.push_back(Queued {
                    event_id: f.event_id,
                    payload: f.payload,
                    retry_attempt: f.retry_attempt + 1,
                    retry_reason: "timeout".into(),
                });
            } else if let Some(e) = self
                .events
                .iter_mut()
                .rev()
                .find(|e| e.event_id == f.event_id)
            {
                e.given_up = true;
            }
        }
        self.flush();
    }

    /// Handles a client text frame. Accepts `{"envelope_id"}`, `{"envelope_id","payload":{…}}`
    /// and `{"envelope_id","payload":{}}`; ignores anything else.
    fn on_frame(&mut self, conn: u64, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            tracing::debug!(conn, "ignoring non-JSON frame from client");
            return;
        };
        let Some(envelope_id) = v["envelope_id"].as_str() else {
            return;
        };
        let dropped = self.drop_acks || text.len() >= self.config.max_ack_bytes;
        let pos = self
            .inflight
            .iter()
            .position(|f| f.envelope_id == envelope_id);
        let (event_id, retry_attempt, latency) = match pos {
            Some(i) => {
                let f = &self.inflight[i];
                (Some(f.event_id.clone()), f.retry_attempt, f.sent.elapsed())
            }
            None => (None, 0, Duration::ZERO),
        };
        if !dropped && let Some(i) = pos {
            let f = self.inflight.remove(i);
            if let Some(e) = self
                .events
                .iter_mut()
                .rev()
                .find(|e| e.event_id == f.event_id)
            {
                e.acked = true;
            }
        }
        self.acks.push(AckRecord {
            envelope_id: envelope_id.to_string(),
            event_id,
            connection_id: conn,
            retry_attempt,
            latency,
            payload: v.get("payload").cloned(),
            dropped,
        });
    }

    fn targets(&self, target: Target) -> Vec<u64> {
        match target {
            Target::All => self.conns.iter().map(|c| c.id).collect(),
            Target::One(id) => self
                .conns
                .iter()
                .filter(|c| c.id == id)
                .map(|c| c.id)
                .collect(),
            Target::Newest => self.conns.last().map(|c| vec![c.id]).unwrap_or_default(),
            Target::Oldest => self.conns.first().map(|c| vec![c.id]).unwrap_or_default(),
        }
    }

    /// Sends a `disconnect` frame and marks the sockets draining; returns their ids so the
    /// caller can close them after the grace period.
    fn send_disconnect(&mut self, target: Target, reason: &str) -> Vec<u64> {
        let ids = self.targets(target);
        for c in self.conns.iter_mut().filter(|c| ids.contains(&c.id)) {
            c.draining = true;
            let frame =
                json!({"type": "disconnect", "reason": reason, "debug_info": {"host": c.host}});
            let _ = c.tx.send(Outbound::Text(frame.to_string()));
        }
        ids
    }

    fn close(&mut self, ids: &[u64], code: u16, reason: &str) {
        for c in self.conns.iter().filter(|c| ids.contains(&c.id)) {
            let _ = c.tx.send(Outbound::Close(code, reason.to_string()));
        }
    }

    pub fn pending_count(&self) -> usize {
        self.inflight.len() + self.queue.len()
    }
}

impl Inner {
    /// Sends `disconnect` with `reason` to the targeted sockets, then closes them after the
    /// refresh grace period (events still unacked there get redelivered on other sockets).
    pub(crate) fn disconnect(self: &Arc<Self>, target: Target, reason: &str) -> usize {
        let (ids, grace) = {
            let mut d = self.disp.lock().unwrap();
            let ids = d.send_disconnect(target, reason);
            (ids, d.config.refresh_grace)
        };
        let n = ids.len();
        if n > 0 {
            let inner = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                inner.disp.lock().unwrap().close(&ids, 1000, "");
            });
        }
        n
    }

    /// Closes every socket at once without a disconnect frame (token revocation).
    pub(crate) fn close_all_sockets(&self, reason: &str) {
        let mut d = self.disp.lock().unwrap();
        let ids = d.targets(Target::All);
        d.close(&ids, 1008, reason);
    }

    /// Ends every socket without a disconnect or close frame, like a network drop (the client
    /// sees 1006, abnormal closure). Unacked envelopes are redelivered once a socket is back.
    pub(crate) fn drop_all_sockets(&self) {
        let d = self.disp.lock().unwrap();
        for c in &d.conns {
            let _ = c.tx.send(Outbound::Drop);
        }
    }
}

/// Background timer driving ack deadlines.
pub(crate) async fn retry_loop(inner: std::sync::Weak<Inner>) {
    let mut iv = tokio::time::interval(Duration::from_millis(20));
    loop {
        iv.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.disp.lock().unwrap().tick(Instant::now());
    }
}

/// Runs one accepted WebSocket: `hello` first, then envelopes, pings and client acks.
pub(crate) async fn run_socket(mut ws: WebSocket, inner: Arc<Inner>, debug_reconnects: bool) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app_id = inner.ws.lock().unwrap().app_id.clone();
    let (id, hello, too_many, ping_every, lifetime) = {
        let mut d = inner.disp.lock().unwrap();
        let (id, hello, too_many) = d.register(tx, debug_reconnects, &app_id);
        (
            id,
            hello,
            too_many,
            d.config.ping_interval,
            d.config.debug_reconnect_after,
        )
    };
    // Deliveries queued on `tx` meanwhile wait in `rx`, so hello always goes out first.
    if ws.send(WsMessage::Text(hello.into())).await.is_err() {
        inner.disp.lock().unwrap().unregister(id);
        return;
    }
    inner.disp.lock().unwrap().flush();
    if too_many {
        inner.disconnect(Target::One(id), "too_many_websockets");
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let refresh_at = tokio::time::sleep(if debug_reconnects {
        lifetime
    } else {
        Duration::from_secs(18060)
    });
    tokio::pin!(refresh_at);
    let mut refreshed = false;
    let host = {
        let d = inner.disp.lock().unwrap();
        d.hosts.get(&id).cloned().unwrap_or_default()
    };
    let started = SystemTime::now();
    loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(WsMessage::Text(t))) => inner.disp.lock().unwrap().on_frame(id, t.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {} // binary frames are ignored; pongs need no bookkeeping
            },
            out = rx.recv() => match out {
                Some(Outbound::Text(t)) => {
                    if ws.send(WsMessage::Text(t.into())).await.is_err() { break; }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = ws.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                // Dropping `ws` ends the TCP connection without a close handshake.
                Some(Outbound::Drop) | None => break,
            },
            _ = ping.tick() => {
                let payload = format!("Ping from {host}");
                if ws.send(WsMessage::Ping(payload.into_bytes().into())).await.is_err() { break; }
            }
            _ = &mut refresh_at, if !refreshed => {
                refreshed = true;
                inner.disconnect(Target::One(id), "refresh_requested");
            }
        }
    }
    tracing::debug!(
        connection = id,
        lived_ms = started.elapsed().map(|d| d.as_millis()).unwrap_or(0) as u64,
        "socket closed"
    );
    inner.disp.lock().unwrap().unregister(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Dispatcher, u64, Value, mpsc::UnboundedReceiver<Outbound>) {
        let mut d = Dispatcher::new(SocketConfig {
            ack_timeout: Duration::from_millis(100),
            ..SocketConfig::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, hello, too_many) = d.register(tx, false, "A111");
        assert!(!too_many);
        (d, id, serde_json::from_str(&hello).unwrap(), rx)
    }

    fn next_text(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Value {
        match rx.try_recv() {
            Ok(Outbound::Text(t)) => serde_json::from_str(&t).unwrap(),
            _ => panic!("expected a text frame"),
        }
    }

    fn payload() -> Value {
        json!({"type": "event_callback", "event_id": "Ev0TEST", "event": {"type": "message"}})
    }

    #[test]
    fn hello_frame_shape() {
        let (_, _, hello, _) = setup();
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["num_connections"], 1);
        assert!(
            hello["debug_info"]["host"]
                .as_str()
                .unwrap()
                .starts_with("applink-")
        );
        assert!(hello["debug_info"]["build_number"].is_number());
        assert_eq!(hello["debug_info"]["approximate_connection_time"], 18060);
        assert_eq!(hello["connection_info"], json!({"app_id": "A111"}));
    }

    #[test]
    fn envelope_frame_shape_and_retry() {
        let (mut d, _, _, mut rx) = setup();
        d.enqueue(payload());
        let env = next_text(&mut rx);
        let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "accepts_response_payload",
                "envelope_id",
                "payload",
                "retry_attempt",
                "retry_reason",
                "type"
            ]
        );
        assert_eq!(env["type"], "events_api");
        assert_eq!(env["retry_attempt"], 0);
        assert_eq!(env["retry_reason"], "");
        assert_eq!(env["payload"], payload());
        d.tick(Instant::now() + Duration::from_millis(150));
        let retry = next_text(&mut rx);
        assert_eq!(retry["retry_attempt"], 1);
        assert_eq!(retry["retry_reason"], "timeout");
        assert_ne!(retry["envelope_id"], env["envelope_id"]);
    }

    #[test]
    fn three_ack_forms() {
        let (mut d, id, _, mut rx) = setup();
        for (i, form) in [
            json!({}),
            json!({"payload": {}}),
            json!({"payload": {"text": "ok"}}),
        ]
        .into_iter()
        .enumerate()
        {
            d.enqueue(payload());
            let env = next_text(&mut rx);
            let mut ack = form;
            ack["envelope_id"] = env["envelope_id"].clone();
            d.on_frame(id, &ack.to_string());
            assert_eq!(d.acks.len(), i + 1);
            assert!(!d.acks[i].dropped);
            assert_eq!(d.acks[i].event_id.as_deref(), Some("Ev0TEST"));
        }
        d.tick(Instant::now() + Duration::from_secs(1));
        assert!(
            rx.try_recv().is_err(),
            "acked envelopes are not redelivered"
        );
        assert_eq!(d.pending_count(), 0);
    }

    #[test]
    fn disconnect_frame_shape_and_draining() {
        let (mut d, id, _, mut rx) = setup();
        let ids = d.send_disconnect(Target::All, "refresh_requested");
        assert_eq!(ids, [id]);
        let f = next_text(&mut rx);
        assert_eq!(f["type"], "disconnect");
        assert_eq!(f["reason"], "refresh_requested");
        assert!(f["debug_info"]["host"].is_string());
        // A draining socket gets no new envelopes; they wait for a fresh one.
        d.enqueue(payload());
        assert!(rx.try_recv().is_err());
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        d.register(tx2, false, "A111");
        d.flush();
        assert_eq!(next_text(&mut rx2)["type"], "events_api");
    }

    #[test]
    fn tickets_are_single_use() {
        let mut d = Dispatcher::new(SocketConfig::default());
        let t = d.issue_ticket();
        assert!(d.consume_ticket(&t));
        assert!(!d.consume_ticket(&t));
        assert!(!d.consume_ticket("made-up"));
    }
}
