//! The daemon's TCP side: the centralized-sampling proxy the SDKs poll (`POST /GetSamplingRules`,
//! `POST /SamplingTargets`, forwarded verbatim to the collector) and `GET /metrics` in the
//! Prometheus text format.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::memory::MemoryBudget;
use crate::telemetry::Counters;

/// What the TCP routes need.
#[derive(Clone)]
pub struct ProxyState {
    /// HTTP client to the collector.
    pub client: reqwest::Client,
    /// The collector's base URL (ends with `/`).
    pub endpoint: reqwest::Url,
    /// Counters for `/metrics`.
    pub counters: Arc<Counters>,
    /// The memory bound, for the buffer gauges.
    pub budget: Arc<MemoryBudget>,
    /// Signs the forwarded requests with SigV4 when set.
    pub credentials: Option<crate::forwarder::sign::Credentials>,
}

/// The router for the TCP port.
pub fn router(state: ProxyState) -> Router {
    Router::new()
        .route("/GetSamplingRules", post(get_sampling_rules))
        .route("/SamplingTargets", post(sampling_targets))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<ProxyState>) -> impl IntoResponse {
    let text = state
        .counters
        .render_prometheus(state.budget.used() as u64, state.budget.limit() as u64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn get_sampling_rules(
    State(state): State<ProxyState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy(&state, "GetSamplingRules", &headers, body).await
}

async fn sampling_targets(
    State(state): State<ProxyState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy(&state, "SamplingTargets", &headers, body).await
}

async fn proxy(state: &ProxyState, path: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let Ok(url) = state.endpoint.join(path) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad collector URL".into(),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let sent = crate::forwarder::sign::post(
        &state.client,
        &url,
        state.credentials.as_ref(),
        &content_type,
        body,
    )
    .send()
    .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let e = crate::forwarder::client::error_chain(&e);
            tracing::warn!(error = %e, path, "sampling proxy: collector unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                format!("collector unreachable: {e}"),
            );
        }
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    match response.bytes().await {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("collector answer unreadable: {e}"),
        ),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"__type": "ServiceUnavailable", "message": message}).to_string(),
    )
        .into_response()
}
