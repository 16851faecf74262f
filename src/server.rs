//! The HTTP listener: the appservice API plus `/health` (process up), `/ready` (database and
//! homeserver reachable) and `/metrics` (Prometheus), with Matrix-shaped errors for every
//! unknown path or method.

use std::{sync::Arc, time::Duration};
use tracing::Instrument;

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
    metrics: Arc<crate::metrics::Metrics>,
    /// The bridge layer, for the state of the Slack logins (absent in Matrix-only tests).
    core: Option<Arc<crate::bridge::Core>>,
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
    // Requests are served in tasks of their own: they log inside the caller's span too.
    let span = tracing::Span::current();
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            next.run(req).instrument(span.clone())
        },
    ));
    let task = tokio::spawn(
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                })
                .await
        }
        .in_current_span(),
    );
    (stop_tx, task)
}

/// The listener's routes; `/metrics` only when `metrics` is on.
pub fn router(
    appservice_state: AppserviceState,
    matrix: Arc<MatrixClient>,
    core: Option<Arc<crate::bridge::Core>>,
    metrics: bool,
) -> Router {
    let ready = ReadyState {
        store: appservice_state.store.clone(),
        matrix,
        metrics: appservice_state.metrics.clone(),
        core,
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
        slack.insert(rt.team_id().to_owned(), json!(h.describe()));
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
