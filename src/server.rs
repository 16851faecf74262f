//! The HTTP listener: the appservice API plus `/health` (process up) and `/ready` (database
//! and homeserver reachable), with Matrix-shaped errors for every unknown path or method.

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
}

pub fn router(appservice_state: AppserviceState, matrix: Arc<MatrixClient>) -> Router {
    let ready = ReadyState {
        store: appservice_state.store.clone(),
        matrix,
    };
    let ops = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready_check))
        .with_state(ready);
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
