//! The HTTP listener: the appservice API plus `/health` (process up), `/ready` (database and
//! homeserver reachable) and `/metrics` (Prometheus), with Matrix-shaped errors for every
//! unknown path or method.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use serde_json::json;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    config::{ListenerLimits, MetricsConfig},
    matrix::{
        MatrixClient,
        appservice::{self, AppserviceState, MatrixErrorResponse},
    },
    store::Store,
};

#[derive(Clone)]
struct ReadyState {
    store: Store,
    matrix: Arc<MatrixClient>,
    metrics: Arc<crate::metrics::Metrics>,
    /// The bridge layer, for the state of the Slack logins (absent in Matrix-only tests).
    core: Option<Arc<crate::bridge::Core>>,
}

/// Serves `app` on `listener` until `stop` is cancelled, within `limits`: at most
/// `max_connections` connections at once (the rest wait unaccepted in the kernel's queue,
/// holding no descriptor of ours), headers within `header_timeout`. At `stop` it accepts no
/// more, lets requests in flight finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ListenerLimits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            // The peer went away between connecting and our accept: nothing to do.
            Err(e) if is_peer_error(&e) => continue,
            Err(e) => {
                // Out of descriptors or memory: wait for some to be freed rather than spin.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "cannot accept connections; retrying");
                    last_warning = Some(Instant::now());
                }
                if !crate::supervisor::sleep_or_cancel(&stop, Duration::from_millis(100)).await {
                    break;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let header_timeout = limits.header_timeout;
        let stop = stop.clone();
        connections.spawn(
            async move {
                let _permit = permit;
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let r = tokio::select! {
                    r = conn.as_mut() => r,
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
            }
            .in_current_span(),
        );
    }
    connections.close();
    connections.wait().await;
}

/// Errors of one connection that came and went, not of the listener.
fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// Serves `app` on `listener` in a task until `stop` is cancelled (the doctor's short-lived
/// listener).
pub fn spawn(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { serve(listener, app, &limits, stop).await }.in_current_span())
}

/// The routes of the two listeners: the appservice one, and the operator's (`/metrics`,
/// `/ready`, `/health`) when `metrics.listen` puts those on an address of their own.
pub struct Routes {
    pub appservice: Router,
    pub ops: Option<Router>,
}

/// The listeners' routes; `/metrics` only when `metrics.enabled`.
pub fn routes(
    appservice_state: AppserviceState,
    matrix: Arc<MatrixClient>,
    core: Option<Arc<crate::bridge::Core>>,
    metrics: &MetricsConfig,
    limits: &ListenerLimits,
) -> Routes {
    let ready = ReadyState {
        store: appservice_state.store.clone(),
        matrix,
        metrics: appservice_state.metrics.clone(),
        core,
    };
    let mut ops = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready_check));
    if metrics.enabled {
        ops = ops.route("/metrics", get(metrics_text));
    }
    let ops = ops.with_state(ready);
    let appservice = appservice::router(appservice_state);
    let (appservice, ops) = if metrics.listen.is_some() {
        let health = Router::new().route("/health", get(health));
        (appservice.merge(health), Some(ops))
    } else {
        (appservice.merge(ops), None)
    };
    let finish = |r: Router| {
        r.fallback(appservice::unrecognized)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(
                usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX),
            ))
            .layer(axum::middleware::from_fn_with_state(
                limits.clone(),
                enforce_limits,
            ))
    };
    Routes {
        appservice: finish(appservice),
        ops: ops.map(finish),
    }
}

/// A declared body over the limit is refused before a byte of it is read (a body without a
/// length is cut off at the limit by [`DefaultBodyLimit`]); a request that takes longer than
/// `request_timeout`, reading its body included, is answered 408.
async fn enforce_limits(
    State(limits): State<ListenerLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return MatrixErrorResponse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!(
                "request body too large (at most {} bytes)",
                limits.max_body_bytes
            ),
        )
        .into_response();
    }
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => MatrixErrorResponse(
            StatusCode::REQUEST_TIMEOUT,
            "M_UNKNOWN",
            "the request took too long".into(),
        )
        .into_response(),
    }
}

async fn method_not_allowed() -> Response {
    MatrixErrorResponse(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "method not allowed on this endpoint".into(),
    )
    .into_response()
}

/// Prometheus (OpenMetrics) text.
async fn metrics_text(State(s): State<ReadyState>) -> Response {
    let out = s.metrics.render(&s.store).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready_check(State(s): State<ReadyState>) -> Response {
    let timeout = Duration::from_secs(3);
    let db = match tokio::time::timeout(timeout, s.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let hs = match tokio::time::timeout(timeout, s.matrix.load_versions()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let mut slack = serde_json::Map::new();
    let mut slack_ok = true;
    for rt in s.core.iter().flat_map(|c| c.all_logins()) {
        let h = rt.health();
        let down_too_long = h.down_for.is_some_and(|d| d > SOCKET_DOWN_LIMIT);
        slack_ok &= !down_too_long;
        slack.insert(rt.team_id().to_string(), json!(h.describe()));
    }
    let status = if db.is_ok() && hs.is_ok() && slack_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "database": show(&db), "homeserver": show(&hs), "slack": slack })),
    )
        .into_response()
}

/// A login's socket down for longer than this makes the bridge not ready.
const SOCKET_DOWN_LIMIT: Duration = Duration::from_secs(60);
