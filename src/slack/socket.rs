//! The Socket Mode connection manager: `apps.connections.open` → connect → "connected" after
//! `hello` → every envelope stored in the durable inbox, then acked → on a `disconnect`
//! warning or refresh, a new socket is opened **before** the old one closes, so no event falls
//! into a gap → dead credentials stop it for good (no hot loop) → half-open sockets are found
//! by an idle watchdog → reconnects back off exponentially with jitter.
//!
//! The WebSocket is reached through [`SocketConnector`] and the URL through [`SocketOpener`],
//! so unit tests drive the whole state machine with in-memory channels.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Duration,
};
use tracing::Instrument;

use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::tungstenite::Message;

use super::frames::{self, Envelope, Frame};
use crate::retry::Backoff;

pub use crate::BoxFuture;
pub type WsError = Box<dyn std::error::Error + Send + Sync>;
pub type WsSink = Pin<Box<dyn Sink<Message, Error = WsError> + Send>>;
pub type WsStream = Pin<Box<dyn Stream<Item = Result<Message, WsError>> + Send>>;

/// Why no socket URL could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The credentials are dead (revoked, invalid, app uninstalled): retrying cannot help.
    Dead(String),
    /// Slack asked us to wait.
    RateLimited(Duration),
    /// Anything else: retried with backoff.
    Other(String),
}

/// Gets a fresh single-use WebSocket URL (`apps.connections.open`).
pub trait SocketOpener: Send + Sync {
    fn open(&self) -> BoxFuture<'_, Result<String, OpenError>>;
}

/// Opens a WebSocket.
pub trait SocketConnector: Send + Sync {
    fn connect(&self, url: String) -> BoxFuture<'_, Result<(WsSink, WsStream), String>>;
}

/// Stores an envelope durably; `Ok(true)` when it was new, `Ok(false)` for a redelivery.
/// Only after `Ok` is the envelope acked.
pub trait EnvelopeStore: Send + Sync {
    fn store<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<bool, String>>;

    /// Stores a burst at once (all or nothing); by default one by one.
    fn store_batch<'a>(
        &'a self,
        envelopes: &'a [Envelope],
    ) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(envelopes.len());
            for e in envelopes {
                out.push(self.store(e).await?);
            }
            Ok(out)
        })
    }

    /// Slack is connected after a time with no connection open (the first connection, or a
    /// reconnect after a drop): events of that time may never come. Runs before the
    /// connection's first envelope is stored, so whatever it queues comes first. By default
    /// nothing.
    fn connected_after_gap(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The production connector: tokio-tungstenite over rustls.
pub struct TungsteniteConnector;

impl SocketConnector for TungsteniteConnector {
    fn connect(&self, url: String) -> BoxFuture<'_, Result<(WsSink, WsStream), String>> {
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let (sink, stream) = ws.split();
            let sink: WsSink = Box::pin(sink.sink_map_err(|e| Box::new(e) as WsError));
            let stream: WsStream = Box::pin(stream.map(|r| r.map_err(|e| Box::new(e) as WsError)));
            Ok((sink, stream))
        })
    }
}

/// The production opener: `apps.connections.open` with the login's app-level token. Dead
/// credentials stop the manager; Slack's rate limit is honoured.
pub struct WebApiOpener(pub Arc<super::web::SlackClient>);

impl SocketOpener for WebApiOpener {
    fn open(&self) -> BoxFuture<'_, Result<String, OpenError>> {
        Box::pin(async move {
            self.0.apps_connections_open().await.map_err(|e| {
                if e.is_auth_dead() {
                    OpenError::Dead(e.to_string())
                } else if let Some(wait) = e.retry_after() {
                    OpenError::RateLimited(wait)
                } else {
                    OpenError::Other(e.to_string())
                }
            })
        })
    }
}

/// What the manager is doing, for `ping` and the health endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketState {
    Connecting,
    Connected,
    /// Waiting to reconnect after `reason`.
    Reconnecting {
        attempt: u32,
        reason: String,
    },
    /// Credentials are dead; nothing is retried until a new login.
    Invalid(String),
    Stopped,
}

#[derive(Clone)]
pub struct SocketConfig {
    /// A connection that has not said `hello` by then is abandoned.
    pub hello_timeout: Duration,
    /// A connection with no frame at all (not even a pong) for this long is half-open.
    pub idle_timeout: Duration,
    /// How often we ping the server.
    pub ping_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Extra wait after `too_many_websockets`, so several bridges sharing an app do not fight.
    pub too_many_backoff: Duration,
    /// Told how long each envelope took from being read to being acked.
    pub on_ack: Option<AckObserver>,
}

/// Called with each ack's latency (for the metrics).
pub type AckObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl std::fmt::Debug for SocketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketConfig")
            .field("hello_timeout", &self.hello_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("too_many_backoff", &self.too_many_backoff)
            .finish_non_exhaustive()
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            too_many_backoff: Duration::from_secs(30),
            on_ack: None,
        }
    }
}

impl SocketConfig {
    /// The reconnect delays: doubling from `backoff_base`, never above `backoff_max`, each
    /// jittered between half and all of its length so many bridges do not reconnect in
    /// lockstep. backon's jitter adds up to one more delay, hence the halved bounds.
    pub fn backoff_policy(&self) -> Backoff {
        Backoff::new(self.backoff_base / 2, self.backoff_max / 2)
    }
}

/// The wait before reconnect attempt `failures` (1-based): the `failures`-th delay of
/// [`SocketConfig::backoff_policy`]. Indexed by the count rather than drawn from one running
/// sequence because a failure and the close that follows it ask for the same attempt's wait.
pub fn backoff(config: &SocketConfig, failures: u32) -> Duration {
    let Some(n) = failures.checked_sub(1) else {
        return Duration::ZERO;
    };
    // Far past the cap every delay is alike; no need to walk further.
    let n = n.min(64) as usize;
    let policy = config.backoff_policy();
    policy.wait(policy.delays().nth(n), None)
}

enum ConnEvent {
    Hello(u64),
    Disconnect(u64, String),
    Closed(u64, String),
}

struct ConnHandle {
    close: Option<oneshot::Sender<()>>,
    hello: bool,
    draining: bool,
}

pub struct SocketManager {
    pub opener: Arc<dyn SocketOpener>,
    pub connector: Arc<dyn SocketConnector>,
    pub store: Arc<dyn EnvelopeStore>,
    pub config: SocketConfig,
    /// For logs: which login this socket serves.
    pub label: String,
    state: watch::Sender<SocketState>,
}

impl SocketManager {
    pub fn new(
        label: impl Into<String>,
        opener: Arc<dyn SocketOpener>,
        connector: Arc<dyn SocketConnector>,
        store: Arc<dyn EnvelopeStore>,
        config: SocketConfig,
    ) -> Self {
        Self {
            opener,
            connector,
            store,
            config,
            label: label.into(),
            state: watch::Sender::new(SocketState::Connecting),
        }
    }

    pub fn state(&self) -> watch::Receiver<SocketState> {
        self.state.subscribe()
    }

    fn set(&self, s: SocketState) {
        self.state.send_replace(s);
    }

    /// Keeps a connection up until `shutdown` resolves or the credentials die; returns the
    /// final state.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> SocketState {
        let (tx, mut rx) = mpsc::channel::<ConnEvent>(64);
        let mut conns: BTreeMap<u64, ConnHandle> = BTreeMap::new();
        let mut next_id = 0u64;
        let mut failures = 0u32;
        let mut need_new = true;
        let mut not_before = Instant::now();
        let mut last_reason = String::from("starting");
        // Connections that said hello and are still open.
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The connections belong to the manager: none outlives `run`.
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        let close_all = |conns: &mut BTreeMap<u64, ConnHandle>| {
            for c in conns.values_mut() {
                if let Some(close) = c.close.take() {
                    let _ = close.send(());
                }
            }
        };
        loop {
            if need_new && Instant::now() >= not_before {
                need_new = false;
                if failures > 0 {
                    self.set(SocketState::Reconnecting {
                        attempt: failures,
                        reason: last_reason.clone(),
                    });
                } else if !conns.values().any(|c| c.hello) {
                    self.set(SocketState::Connecting);
                }
                let opened = tokio::select! {
                    _ = &mut shutdown => {
                        close_all(&mut conns);
                        finish(tasks).await;
                        self.set(SocketState::Stopped);
                        return SocketState::Stopped;
                    }
                    r = self.open_and_connect() => r,
                };
                match opened {
                    Ok((sink, stream)) => {
                        next_id += 1;
                        let (close_tx, close_rx) = oneshot::channel();
                        conns.insert(
                            next_id,
                            ConnHandle {
                                close: Some(close_tx),
                                hello: false,
                                draining: false,
                            },
                        );
                        tracing::debug!(login = %self.label, connection = next_id, "socket mode connection opened");
                        while tasks.try_join_next().is_some() {}
                        tasks.spawn(
                            connection(
                                next_id,
                                sink,
                                stream,
                                self.store.clone(),
                                tx.clone(),
                                close_rx,
                                live.clone(),
                                self.config.clone(),
                                self.label.clone(),
                            )
                            .in_current_span(),
                        );
                    }
                    Err(OpenError::Dead(reason)) => {
                        tracing::error!(login = %self.label, %reason, "slack credentials are no longer valid; log in again");
                        close_all(&mut conns);
                        finish(tasks).await;
                        let state = SocketState::Invalid(reason);
                        self.set(state.clone());
                        return state;
                    }
                    Err(OpenError::RateLimited(wait)) => {
                        tracing::warn!(login = %self.label, wait_s = wait.as_secs(), "apps.connections.open rate limited");
                        last_reason = "rate limited by Slack".into();
                        need_new = true;
                        not_before = Instant::now() + wait;
                    }
                    Err(OpenError::Other(reason)) => {
                        failures += 1;
                        let wait = backoff(&self.config, failures);
                        tracing::warn!(login = %self.label, attempt = failures, retry_in_ms = wait.as_millis() as u64, %reason, "cannot open a socket mode connection");
                        last_reason = reason;
                        need_new = true;
                        not_before = Instant::now() + wait;
                    }
                }
                continue;
            }
            let wake = if need_new {
                not_before
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            tokio::select! {
                _ = &mut shutdown => {
                    close_all(&mut conns);
                    finish(tasks).await;
                    self.set(SocketState::Stopped);
                    return SocketState::Stopped;
                }
                _ = sleep_until(wake) => {}
                Some(ev) = rx.recv() => match ev {
                    ConnEvent::Hello(id) => {
                        failures = 0;
                        if let Some(c) = conns.get_mut(&id) {
                            c.hello = true;
                        }
                        // The new socket is up: only now let the draining ones go.
                        for c in conns.values_mut().filter(|c| c.draining) {
                            if let Some(close) = c.close.take() {
                                let _ = close.send(());
                            }
                        }
                        tracing::info!(login = %self.label, connection = id, "slack socket mode connected");
                        self.set(SocketState::Connected);
                    }
                    ConnEvent::Disconnect(id, reason) => {
                        tracing::info!(login = %self.label, connection = id, %reason, "slack asked to disconnect");
                        match reason.as_str() {
                            "link_disabled" => {
                                close_all(&mut conns);
                                finish(tasks).await;
                                let state = SocketState::Invalid(
                                    "Socket Mode is disabled for this Slack app (link_disabled): turn it on in the app's settings".into(),
                                );
                                self.set(state.clone());
                                return state;
                            }
                            "too_many_websockets" => {
                                if let Some(c) = conns.get_mut(&id)
                                    && let Some(close) = c.close.take()
                                {
                                    let _ = close.send(());
                                }
                                last_reason = "too many websockets for this Slack app".into();
                                failures += 1;
                                need_new = false;
                                not_before = Instant::now() + self.config.too_many_backoff.max(backoff(&self.config, failures));
                            }
                            _ => {
                                if let Some(c) = conns.get_mut(&id) {
                                    c.draining = true;
                                }
                                if !conns.values().any(|c| !c.draining) {
                                    need_new = true;
                                    not_before = Instant::now();
                                }
                            }
                        }
                    }
                    ConnEvent::Closed(id, reason) => {
                        let handle = conns.remove(&id);
                        tracing::info!(login = %self.label, connection = id, %reason, "socket mode connection closed");
                        if handle.as_ref().is_some_and(|h| !h.hello) {
                            failures += 1;
                        }
                        if !conns.values().any(|c| !c.draining) && !need_new {
                            need_new = true;
                            last_reason = reason;
                            not_before = not_before.max(Instant::now() + backoff(&self.config, failures));
                        }
                    }
                },
            }
        }
    }

    async fn open_and_connect(&self) -> Result<(WsSink, WsStream), OpenError> {
        let url = self.opener.open().await?;
        self.connector
            .connect(url)
            .await
            .map_err(|e| OpenError::Other(format!("websocket connect failed: {e}")))
    }
}

/// Lets closed connections say goodbye for a moment, then drops the rest.
async fn finish(mut tasks: tokio::task::JoinSet<()>) {
    let _ = timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.shutdown().await;
}

/// Envelopes stored in one transaction at most.
const MAX_BATCH: usize = 100;

/// The next frame: one read ahead earlier, else from the socket.
async fn next_message(
    lookahead: &mut VecDeque<Option<Result<Message, WsError>>>,
    stream: &mut WsStream,
) -> Option<Result<Message, WsError>> {
    match lookahead.pop_front() {
        Some(item) => item,
        None => stream.next().await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    id: u64,
    mut sink: WsSink,
    mut stream: WsStream,
    store: Arc<dyn EnvelopeStore>,
    events: mpsc::Sender<ConnEvent>,
    mut close_rx: oneshot::Receiver<()>,
    live: Arc<std::sync::atomic::AtomicUsize>,
    config: SocketConfig,
    label: String,
) {
    use std::sync::atomic::Ordering;
    /// Counts this connection as live from its hello until it closes or ends, however.
    struct Live(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let mut counted: Option<Live> = None;
    let opened = Instant::now();
    let mut last_seen = opened;
    let mut said_hello = false;
    let mut next_ping = opened + config.ping_interval;
    // Frames read ahead while collecting a batch, handled before reading more.
    let mut lookahead: VecDeque<Option<Result<Message, WsError>>> = VecDeque::new();
    let reason = loop {
        let deadline = if said_hello {
            last_seen + config.idle_timeout
        } else {
            opened + config.hello_timeout
        };
        tokio::select! {
            biased;
            _ = &mut close_rx => {
                // Closing: no longer a connection events can come over.
                drop(counted.take());
                let _ = sink.send(Message::Close(None)).await;
                // Give Slack a moment to finish the close handshake; it may not close the TCP
                // connection itself.
                let _ = timeout(Duration::from_secs(1), async {
                    while let Some(Ok(_)) = stream.next().await {}
                }).await;
                break "closed by the bridge".to_owned();
            }
            _ = sleep_until(deadline) => {
                break if said_hello {
                    format!("no traffic for {} s (half-open socket)", config.idle_timeout.as_secs())
                } else {
                    format!("no hello within {} s", config.hello_timeout.as_secs())
                };
            }
            _ = sleep_until(next_ping) => {
                next_ping = Instant::now() + config.ping_interval;
                if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                    break format!("ping failed: {e}");
                }
            }
            msg = next_message(&mut lookahead, &mut stream) => {
                let msg = match msg {
                    None => break "closed by Slack".to_owned(),
                    Some(Err(e)) => break format!("read failed: {e}"),
                    Some(Ok(m)) => m,
                };
                last_seen = Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(frame) => {
                        break format!("closed by Slack ({})", frame.map(|f| f.code.to_string()).unwrap_or_default());
                    }
                    _ => continue,
                };
                match frames::parse(text.as_str()) {
                    Ok(Frame::Hello { num_connections }) => {
                        said_hello = true;
                        tracing::debug!(login = %label, connection = id, ?num_connections, "hello");
                        if counted.is_none() {
                            let gap = live.fetch_add(1, Ordering::SeqCst) == 0;
                            counted = Some(Live(live.clone()));
                            if gap {
                                store.connected_after_gap().await;
                            }
                        }
                        let _ = events.send(ConnEvent::Hello(id)).await;
                    }
                    Ok(Frame::Disconnect { reason }) => {
                        let _ = events.send(ConnEvent::Disconnect(id, reason)).await;
                    }
                    Ok(Frame::EventsApi(first)) => {
                        let started = Instant::now();
                        // After a reconnect Slack sends what queued up in one burst: store
                        // everything already waiting in one transaction instead of one disk
                        // sync per envelope, so the last of the burst is acked in time too.
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH && lookahead.is_empty() {
                            let Some(item) = stream.next().now_or_never() else { break };
                            if let Some(Ok(Message::Text(t))) = &item
                                && let Ok(Frame::EventsApi(e)) = frames::parse(t.as_str())
                            {
                                batch.push(e);
                            } else {
                                lookahead.push_back(item);
                            }
                        }
                        let span = tracing::debug_span!(
                            "envelopes",
                            envelope_id = %batch[0].envelope_id,
                            event_id = %batch[0].dedupe_key(),
                            count = batch.len(),
                        );
                        match store.store_batch(&batch).instrument(span).await {
                            Ok(new) => {
                                let mut failed = None;
                                for envelope in &batch {
                                    if let Err(e) = sink.feed(Message::Text(frames::ack(&envelope.envelope_id).into())).await {
                                        failed = Some(e);
                                        break;
                                    }
                                }
                                if let Some(e) = failed {
                                    break format!("ack failed: {e}");
                                }
                                if let Err(e) = sink.flush().await {
                                    break format!("ack failed: {e}");
                                }
                                if let Some(observe) = &config.on_ack {
                                    let took = started.elapsed();
                                    batch.iter().for_each(|_| observe(took));
                                }
                                tracing::debug!(
                                    login = %label,
                                    connection = id,
                                    envelopes = batch.len(),
                                    new = new.iter().filter(|n| **n).count(),
                                    envelope_id = %batch[0].envelope_id,
                                    first_event_id = %batch[0].dedupe_key(),
                                    retry_attempt = batch[0].retry_attempt,
                                    ack_ms = started.elapsed().as_millis() as u64,
                                    "envelopes stored and acked"
                                );
                            }
                            Err(e) => {
                                // Not stored, so not acked: Slack redelivers them.
                                tracing::error!(login = %label, envelopes = batch.len(), envelope_id = %batch[0].envelope_id, error = %e, "cannot store slack events; leaving them unacked for redelivery");
                            }
                        }
                    }
                    Ok(Frame::OtherEnvelope { kind, envelope_id }) => {
                        tracing::debug!(login = %label, %kind, %envelope_id, "acking an envelope the bridge does not use");
                        if let Err(e) = sink.send(Message::Text(frames::ack(&envelope_id).into())).await {
                            break format!("ack failed: {e}");
                        }
                    }
                    Ok(Frame::Unknown { kind }) => {
                        tracing::debug!(login = %label, %kind, "ignoring an unknown socket mode frame");
                    }
                    Err(e) => {
                        tracing::warn!(login = %label, error = %e, "ignoring an unparsable socket mode frame");
                    }
                }
            }
        }
    };
    let _ = events.send(ConnEvent::Closed(id, reason)).await;
}

#[cfg(test)]
mod tests;
