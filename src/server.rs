//! The HTTP listener: the appservice API plus `/health` (process up), `/ready` (database and
//! homeserver reachable) and `/metrics` (Prometheus), with Matrix-shaped errors for every
//! unknown path or method.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::{
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
    stats: Arc<crate::matrix::appservice::AppserviceStats>,
}

/// Serves `app` on `listener` in a task until `true` is sent on the returned sender; the
/// task ends with the server's result.
pub fn spawn(
    listener: tokio::net::TcpListener,
    app: Router,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    (stop_tx, task)
}

/// The listener's routes; `/metrics` only when `metrics` is on.
pub fn router(
    appservice_state: AppserviceState,
    matrix: Arc<MatrixClient>,
    metrics: bool,
) -> Router {
    let ready = ReadyState {
        store: appservice_state.store.clone(),
        matrix,
        stats: appservice_state.stats.clone(),
    };
    let mut ops = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready_check));
    if metrics {
        ops = ops.route("/metrics", get(metrics_text));
    }
    let ops = ops.with_state(ready);
    appservice::router(appservice_state)
        .merge(ops)
        .fallback(appservice::unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed() -> Response {
    MatrixErrorResponse(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "method not allowed on this endpoint".into(),
    )
    .into_response()
}

/// Prometheus text format: transaction counters and how much waits in the inboxes.
async fn metrics_text(State(s): State<ReadyState>) -> Response {
    use std::{fmt::Write, sync::atomic::Ordering};
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: i64| {
        let _ = writeln!(out, "# HELP slack_bridge_{name} {help}");
        let _ = writeln!(out, "# TYPE slack_bridge_{name} {kind}");
        let _ = writeln!(out, "slack_bridge_{name} {value}");
    };
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
    metric(
        "transactions_total",
        "counter",
        "Homeserver transactions stored.",
        n(&s.stats.transactions),
    );
    metric(
        "duplicate_transactions_total",
        "counter",
        "Homeserver transactions received again (answered, not processed again).",
        n(&s.stats.duplicate_transactions),
    );
    metric(
        "pings_total",
        "counter",
        "Appservice pings from the homeserver.",
        n(&s.stats.pings),
    );
    match s.store.inbox_depths().await {
        Ok(d) => {
            metric(
                "slack_inbox_pending",
                "gauge",
                "Slack events stored, not yet bridged.",
                d.slack_pending,
            );
            metric(
                "slack_inbox_failed",
                "gauge",
                "Slack events given up on.",
                d.slack_failed,
            );
            metric(
                "hs_inbox_pending",
                "gauge",
                "Homeserver transactions stored, not yet processed.",
                d.hs_pending,
            );
            metric("database_up", "gauge", "Whether the database answered.", 1);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the inbox depths");
            metric("database_up", "gauge", "Whether the database answered.", 0);
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
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
    let status = if db.is_ok() && hs.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "database": show(&db), "homeserver": show(&hs) })),
    )
        .into_response()
}
