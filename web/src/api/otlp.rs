//! OTLP/HTTP ingest, `POST /v1/traces`: OpenTelemetry SDKs export here directly (protobuf or
//! JSON, gzip or not). Spans become X-Ray documents through the SDK's one mapping, are scrubbed
//! (by default: they skipped the daemon's scrubbing), then take the `PutTraceSegments` path;
//! spans refused anywhere are counted in the OTLP partial-success answer.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roentgen_sdk::model::nest::write_nested;
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use roentgen_sdk::otlp::wire::{self, Encoding, WireError};
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};
use roentgen_sdk::scrub::Scrubber;
use serde_json::Value;

use super::AppState;
use super::traces::{finish, scrub, store_prepared, unprocessed, validate};
use crate::store::IngestDocument;

/// How OTLP spans are turned into documents here.
#[derive(Debug, Clone, Default)]
pub struct OtlpIngest {
    /// Scrubs the documents (the default scrubber unless configured off).
    pub scrubber: Option<Scrubber>,
    /// Annotation keys and the like.
    pub mapping: MappingConfig,
}

/// An error answer in the request's encoding: HTTP `status`, gRPC `code`.
fn error(encoding: Encoding, status: u16, code: i32, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_status(encoding, code, message),
    )
        .into_response()
}

/// Maps and prepares a decoded request (blocking work): the documents to store, the refusals
/// so far, and the number of spans. Each span is validated on its own; the pieces whose parent
/// came in the same request are then stored inside it (one document per tree, as an X-Ray SDK
/// sends a segment), unless that tree outgrows a document.
pub fn prepare(
    request: &ExportTraceServiceRequest,
    ingest: &OtlpIngest,
) -> (Vec<IngestDocument>, Vec<Value>, usize) {
    let mapped = map_resource_spans(&request.resource_spans, &ingest.mapping);
    let spans = mapped.segments.len() + mapped.rejected.len();
    let mut refused: Vec<Value> = mapped
        .rejected
        .into_iter()
        .map(|r| unprocessed(Some(r.span_id), "InvalidSegment", r.error.to_string()))
        .collect();
    let mut valid = Vec::with_capacity(mapped.segments.len());
    for segment in mapped.segments {
        match validate(&segment) {
            Ok(()) => valid.push(segment),
            Err(refusal) => refused.push(refusal),
        }
    }
    let mut docs = Vec::with_capacity(valid.len());
    let scrubber = ingest.scrubber.as_ref().map(Scrubber::lend);
    // Typed all the way: scrubbed and written once (no text round trip); a piece taken back
    // out of a tree too large is scrubbed again, which changes nothing.
    let written = write_nested(valid, |segment| {
        scrub(segment, scrubber.as_deref());
        finish(segment, None, true)
    });
    for result in written {
        match result {
            Ok(doc) => docs.push(doc),
            Err(refusal) => refused.push(refusal),
        }
    }
    (docs, refused, spans)
}

/// What a stored request answers: spans refused and the first reason (the partial success).
pub(super) struct Stored {
    pub rejected: usize,
    pub message: String,
}

/// Stores prepared documents and counts the spans; `Err` when the store cannot take them now
/// (the sender retries).
pub(super) async fn store(
    state: &AppState,
    docs: Vec<IngestDocument>,
    refused: Vec<Value>,
    spans: usize,
) -> Result<Stored, String> {
    let refused = store_prepared(state, docs, refused).await.map_err(|e| {
        tracing::warn!(error = %e, "OTLP spans not stored");
        e.to_string()
    })?;
    state
        .counters
        .otlp_spans
        .fetch_add(spans as u64, Ordering::Relaxed);
    let message = refused
        .first()
        .map(|r| {
            format!(
                "{} of {spans} spans refused; first: {}",
                refused.len(),
                r.get("Message").and_then(Value::as_str).unwrap_or("")
            )
        })
        .unwrap_or_default();
    Ok(Stored {
        rejected: refused.len(),
        message,
    })
}

/// `POST /v1/traces`.
pub async fn export_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, content_encoding) =
        (text(header::CONTENT_TYPE), text(header::CONTENT_ENCODING));
    state
        .counters
        .ingest_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let ingest = state.otlp.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let (encoding, request) =
            wire::decode_http(content_type.as_deref(), content_encoding.as_deref(), &body)?;
        Ok::<_, (Encoding, WireError)>((encoding, prepare(&request, &ingest)))
    })
    .await;
    let (encoding, (docs, refused, spans)) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err((encoding, e))) => {
            tracing::warn!(error = %e, "OTLP request refused");
            return error(encoding, e.http_status(), 3, &e.to_string());
        }
        Err(e) => return error(Encoding::Json, 500, 13, &e.to_string()),
    };
    match store(&state, docs, refused, spans).await {
        Ok(stored) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            wire::encode_response(encoding, stored.rejected, &stored.message),
        )
            .into_response(),
        // The store is unavailable or busy: retryable (503), as the OTLP spec asks.
        Err(message) => error(encoding, 503, 14, &message),
    }
}
