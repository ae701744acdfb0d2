//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, gzip or not (the SDK's `otlp::wire`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use roentgen_sdk::otlp::wire::{self, Encoding, WireError};

use super::{OtlpState, datagrams, take};

/// Largest request body as sent.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The router for the OTLP/HTTP port.
pub fn router(state: Arc<OtlpState>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            count_refusals,
        ))
        .with_state(state)
}

/// Counts every answer that is not a success, the body limit's 413 and unknown paths included.
async fn count_refusals(State(state): State<Arc<OtlpState>>, response: Response) -> Response {
    if !response.status().is_success() {
        state
            .counters
            .otlp_requests_refused
            .fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// An error answer in the request's encoding: HTTP status `code`, gRPC code `grpc`.
fn status(encoding: Encoding, code: u16, grpc: i32, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_status(encoding, grpc, message),
    )
        .into_response()
}

async fn export(State(state): State<Arc<OtlpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, content_encoding) =
        (text(header::CONTENT_TYPE), text(header::CONTENT_ENCODING));
    let mapping = state.mapping.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let (encoding, request) =
            wire::decode_http(content_type.as_deref(), content_encoding.as_deref(), &body)?;
        Ok::<_, (Encoding, WireError)>((encoding, datagrams(&request, &mapping)))
    })
    .await;
    let (encoding, framed) = match prepared {
        Ok(Ok(framed)) => framed,
        Ok(Err((encoding, e))) => {
            if let Some(suppressed) = state.log.check() {
                tracing::warn!(error = %e, suppressed_lines = suppressed, "OTLP request refused");
            }
            return status(encoding, e.http_status(), 3, &e.to_string());
        }
        Err(e) => return status(Encoding::Json, 500, 13, &e.to_string()),
    };
    match take(&state, framed) {
        Ok(taken) => status_ok(encoding, &taken),
        Err(message) => status(encoding, 503, 14, &message),
    }
}

/// The answer to a taken request, with its partial success.
fn status_ok(encoding: Encoding, taken: &super::Taken) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_response(encoding, taken.rejected, &taken.message),
    )
        .into_response()
}
