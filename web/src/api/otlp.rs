//! OTLP/HTTP ingest, `POST /v1/traces`: OpenTelemetry SDKs export here directly (protobuf or
//! JSON, gzip or not). Spans become X-Ray documents through the SDK's one mapping, are scrubbed
//! (by default: they skipped the daemon's scrubbing), then take the `PutTraceSegments` path;
//! spans refused anywhere are counted in the OTLP partial-success answer.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roentgen_sdk::otlp::wire::{self, Encoding, WireError};
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};
use roentgen_sdk::scrub::Scrubber;
use serde_json::Value;

use super::AppState;
use super::traces::{prepare_document, store_prepared, unprocessed};
use crate::store::IngestDocument;

/// Largest request accepted once decompressed.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// How OTLP spans are turned into documents here.
#[derive(Debug, Clone, Default)]
pub struct OtlpIngest {
    /// Scrubs the documents (the default scrubber unless configured off).
    pub scrubber: Option<Scrubber>,
    /// Annotation keys and the like.
    pub mapping: MappingConfig,
}

fn error(encoding: Encoding, status: StatusCode, code: i32, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_status(encoding, code, message),
    )
        .into_response()
}

/// Decodes, maps and prepares a request: the documents to store and the refusals so far.
fn prepare(
    body: &[u8],
    encoding: Encoding,
    content_encoding: Option<&str>,
    ingest: &OtlpIngest,
) -> Result<(Vec<IngestDocument>, Vec<Value>, usize), WireError> {
    let request = wire::decode_request(body, encoding, content_encoding, MAX_DECOMPRESSED_BYTES)?;
    let mapped = map_resource_spans(&request.resource_spans, &ingest.mapping);
    let spans = mapped.segments.len() + mapped.rejected.len();
    let mut refused: Vec<Value> = mapped
        .rejected
        .into_iter()
        .map(|r| unprocessed(Some(r.span_id), "InvalidSegment", r.error.to_string()))
        .collect();
    let mut docs = Vec::with_capacity(mapped.segments.len());
    for segment in mapped.segments {
        let prepared = serde_json::to_string(&segment)
            .map_err(|e| {
                unprocessed(
                    Some(segment.id.to_string()),
                    "InternalFailure",
                    e.to_string(),
                )
            })
            .and_then(|raw| prepare_document(&raw, ingest.scrubber.as_ref()));
        match prepared {
            Ok(doc) => docs.push(doc),
            Err(refusal) => refused.push(refusal),
        }
    }
    Ok((docs, refused, spans))
}

/// `POST /v1/traces`.
pub async fn export_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(encoding) = Encoding::from_content_type(text(header::CONTENT_TYPE)) else {
        return error(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            &WireError::ContentType.to_string(),
        );
    };
    state
        .counters
        .ingest_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let content_encoding = text(header::CONTENT_ENCODING).map(str::to_owned);
    let ingest = state.otlp.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(&body, encoding, content_encoding.as_deref(), &ingest)
    })
    .await;
    let (docs, refused, spans) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => {
            let status = match e {
                WireError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                WireError::ContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::warn!(error = %e, "OTLP request refused");
            return error(encoding, status, 3, &e.to_string());
        }
        Err(e) => {
            return error(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                &e.to_string(),
            );
        }
    };
    let refused = match store_prepared(&state, docs, refused).await {
        Ok(refused) => refused,
        Err(e) => {
            // The store is unavailable or busy: retryable (503), as the OTLP spec asks.
            tracing::warn!(error = %e, "OTLP spans not stored");
            return error(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                &e.to_string(),
            );
        }
    };
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
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_response(encoding, refused.len(), &message),
    )
        .into_response()
}
