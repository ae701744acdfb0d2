//! `GET /metrics`, `GET /healthz` and `GET /readyz`: what a scraper and a load balancer ask.
//! The health answers say "ok" or a short reason and nothing else (no versions, paths or
//! counts): they are served without authentication.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::render::render;
use crate::api::AppState;
use crate::store::StoreError;

/// How long `/readyz` waits for the store's check before answering 503.
const READY_DEADLINE: Duration = Duration::from_secs(3);

/// The routes over `state`; merge them next to the API's.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.counters, state.store.live_counters().as_deref()),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let outcome = tokio::time::timeout(READY_DEADLINE, state.store.ready()).await;
    let reason = match outcome {
        Ok(Ok(())) => return (StatusCode::OK, "ok\n"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: store check failed");
            unready_reason(&error)
        }
        Err(_) => {
            tracing::warn!(
                deadline = ?READY_DEADLINE,
                "not ready: the store's check did not finish in time"
            );
            "store not responding\n"
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, reason)
}

/// The short, detail-free reason `/readyz` gives for a failed store check.
fn unready_reason(error: &StoreError) -> &'static str {
    match error {
        StoreError::Open(_) => "store unreachable\n",
        StoreError::WriterGone => "store writer stopped\n",
        _ => "store not writable\n",
    }
}
