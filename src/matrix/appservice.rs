//! The appservice HTTP API the homeserver calls: transactions, ping, user and alias queries,
//! authenticated by the hs_token. A transaction is stored before it is answered `200 {}` and
//! processed afterwards from the store, so answers stay fast and nothing is lost.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, Path, RawQuery, State, rejection::BytesRejection},
    http::{StatusCode, header::AUTHORIZATION, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::json;
use tokio::sync::Notify;

use super::{Namespace, txn::Transaction};
use crate::{config::Secret, store::Store};

/// What the appservice routes need.
#[derive(Clone)]
pub struct AppserviceState {
    pub hs_token: Secret,
    pub store: Store,
    pub namespace: Namespace,
    /// Woken whenever a new transaction is stored.
    pub inbox: Arc<Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppserviceState {
    /// The state for `config`'s hs_token, storing transactions in `store` and waking `inbox`.
    pub fn new(config: &crate::config::Config, store: Store, inbox: Arc<Notify>) -> Self {
        Self {
            hs_token: config
                .appservice
                .hs_token
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            store,
            namespace: Namespace::from_config(config),
            inbox,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }
}

/// A Matrix error response: status, errcode and message.
pub struct MatrixErrorResponse(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for MatrixErrorResponse {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "errcode": self.1, "error": self.2 }))).into_response()
    }
}

/// Proof that the request carried the right hs_token, in the `Authorization: Bearer` header or
/// in the legacy `access_token` query parameter.
pub struct HsAuth;

impl FromRequestParts<AppserviceState> for HsAuth {
    type Rejection = MatrixErrorResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppserviceState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let query = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        });
        let Some(token) = header.or(query) else {
            return Err(MatrixErrorResponse(
                StatusCode::UNAUTHORIZED,
                "M_UNAUTHORIZED",
                "missing hs_token (Authorization: Bearer)".into(),
            ));
        };
        if constant_time_eq(token.as_bytes(), state.hs_token.expose().as_bytes()) {
            Ok(HsAuth)
        } else {
            tracing::warn!(
                path = parts.uri.path(),
                "rejected a request with a wrong hs_token: the homeserver's registration holds other tokens than config.yaml"
            );
            Err(MatrixErrorResponse(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "wrong hs_token".into(),
            ))
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about where the first
/// difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn router(state: AppserviceState) -> Router {
    Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn_id}",
            put(put_transaction),
        )
        .route("/_matrix/app/v1/ping", post(post_ping))
        .route("/_matrix/app/v1/users/{user_id}", get(get_user))
        .route("/_matrix/app/v1/rooms/{room_alias}", get(get_room_alias))
        .with_state(state)
}

fn body_error(rejection: BytesRejection) -> MatrixErrorResponse {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        MatrixErrorResponse(status, "M_TOO_LARGE", "request body too large".into())
    } else {
        MatrixErrorResponse(status, "M_BAD_JSON", rejection.body_text())
    }
}

/// `PUT /_matrix/app/v1/transactions/{txnId}`
#[tracing::instrument(name = "transaction", skip_all, fields(txn_id = %txn_id))]
async fn put_transaction(
    _auth: HsAuth,
    State(state): State<AppserviceState>,
    Path(txn_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let txn = match Transaction::parse(&body) {
        Ok(t) => t,
        Err(e) => {
            let code = match e {
                super::txn::TxnError::NotJson(_) => "M_NOT_JSON",
                super::txn::TxnError::BadJson(_) => "M_BAD_JSON",
            };
            tracing::warn!(%txn_id, error = %e, "rejected a malformed transaction");
            return MatrixErrorResponse(StatusCode::BAD_REQUEST, code, e.to_string())
                .into_response();
        }
    };
    let text = String::from_utf8_lossy(&body);
    match state.store.insert_hs_txn(&txn_id, &text).await {
        Ok(true) => {
            state.metrics.transactions.inc();
            tracing::debug!(
                %txn_id,
                events = txn.events.len(),
                ephemeral = txn.ephemeral().len(),
                "transaction stored"
            );
            state.inbox.notify_one();
        }
        Ok(false) => {
            state.metrics.duplicate_transactions.inc();
            tracing::debug!(%txn_id, "transaction already stored, answering again");
        }
        Err(e) => {
            // Not stored means not acknowledged: the homeserver will retry.
            tracing::error!(%txn_id, error = %e, "cannot store a transaction; the homeserver will retry it");
            return MatrixErrorResponse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "bridge database unavailable".into(),
            )
            .into_response();
        }
    }
    Json(json!({})).into_response()
}

/// `POST /_matrix/app/v1/ping`
async fn post_ping(
    _auth: HsAuth,
    State(state): State<AppserviceState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let txn_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("transaction_id")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    state.metrics.pings.inc();
    tracing::debug!(transaction_id = ?txn_id, "homeserver pinged us");
    Json(json!({})).into_response()
}

/// `GET /_matrix/app/v1/users/{userId}`: a ghost we know exists; anything else does not.
async fn get_user(
    _auth: HsAuth,
    State(state): State<AppserviceState>,
    Path(user_id): Path<String>,
) -> Response {
    if state.namespace.is_ghost(&user_id)
        && let Ok(user_id) = ruma::UserId::parse(&user_id)
        && let Ok(Some(_)) = state.store.get_ghost_by_mxid(&user_id).await
    {
        return Json(json!({})).into_response();
    }
    MatrixErrorResponse(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "no such Slack user".into(),
    )
    .into_response()
}

/// `GET /_matrix/app/v1/rooms/{roomAlias}`: the bridge provisions no aliases.
async fn get_room_alias(
    _auth: HsAuth,
    Path(_alias): Path<String>,
    RawQuery(_q): RawQuery,
) -> Response {
    MatrixErrorResponse(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "the bridge does not provide room aliases".into(),
    )
    .into_response()
}

/// The answer to every path the bridge does not serve.
pub async fn unrecognized() -> Response {
    MatrixErrorResponse(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "unrecognized endpoint".into(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
