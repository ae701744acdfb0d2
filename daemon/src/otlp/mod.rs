//! The OTLP/HTTP listener (`POST /v1/traces`, loopback 4318 by default): OpenTelemetry SDKs on
//! this server export here as X-Ray SDKs send UDP. Spans become X-Ray documents through the
//! SDK's one mapping (`roentgen_sdk::otlp`), framed as datagrams, and enter the same pipeline:
//! the workers' validation and scrubbing, the memory budget, batching, forwarding and the
//! spool. A request the buffer cannot take is answered 503 (OTLP's "retry later"), never
//! dropped silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use roentgen_sdk::model::encode_datagram;
use roentgen_sdk::otlp::wire::{self, Encoding, WireError};
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};

use crate::listener::{PacketBatch, PacketPool};
use crate::memory::{MemoryBudget, admission_charge};
use crate::telemetry::{Counters, RateLimit};

/// Largest request body as sent.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Largest request once decompressed.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// What the listener needs: the workers' inputs and the pipeline's bounds.
pub struct OtlpState {
    /// One channel per worker (the UDP listener's too); requests go round-robin.
    pub workers: Vec<SyncSender<PacketBatch>>,
    /// Where batches come from.
    pub pool: Arc<PacketPool>,
    /// The memory bound.
    pub budget: Arc<MemoryBudget>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// How spans become documents.
    pub mapping: MappingConfig,
    next: AtomicUsize,
    /// Refusals are logged at most this often (a sender retrying into a full buffer would
    /// otherwise flood the log; the counters have every one).
    log: RateLimit,
}

impl OtlpState {
    /// State over the workers' inputs.
    pub fn new(
        workers: Vec<SyncSender<PacketBatch>>,
        pool: Arc<PacketPool>,
        budget: Arc<MemoryBudget>,
        counters: Arc<Counters>,
        mapping: MappingConfig,
    ) -> Self {
        Self {
            workers,
            pool,
            budget,
            counters,
            mapping,
            next: AtomicUsize::new(0),
            log: RateLimit::new(std::time::Duration::from_secs(10)),
        }
    }
}

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

/// An error answer in the request's encoding.
fn status(encoding: Encoding, code: StatusCode, grpc: i32, message: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_status(encoding, grpc, message),
    )
        .into_response()
}

/// A request's spans as framed datagrams.
struct Framed {
    /// One datagram per span that became a document.
    datagrams: Vec<Vec<u8>>,
    /// Spans in the request.
    spans: usize,
    /// Why each of the others was refused.
    refused: Vec<String>,
}

/// Decodes a request and frames its spans.
fn datagrams(
    body: &[u8],
    encoding: Encoding,
    content_encoding: Option<&str>,
    mapping: &MappingConfig,
) -> Result<Framed, WireError> {
    let request = wire::decode_request(body, encoding, content_encoding, MAX_DECOMPRESSED_BYTES)?;
    let mapped = map_resource_spans(&request.resource_spans, mapping);
    let spans = mapped.segments.len() + mapped.rejected.len();
    let mut refused: Vec<String> = mapped
        .rejected
        .iter()
        .map(|r| format!("span {}: {}", r.span_id, r.error))
        .collect();
    let mut out = Vec::with_capacity(mapped.segments.len());
    for segment in &mapped.segments {
        let framed = serde_json::to_vec(segment)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                let mut datagram = Vec::new();
                encode_datagram(&json, &mut datagram).map_err(|e| e.to_string())?;
                Ok(datagram)
            });
        match framed {
            Ok(d) => out.push(d),
            Err(e) => refused.push(format!("span {}: {e}", segment.id)),
        }
    }
    Ok(Framed {
        datagrams: out,
        spans,
        refused,
    })
}

async fn export(State(state): State<Arc<OtlpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(encoding) = Encoding::from_content_type(text(header::CONTENT_TYPE)) else {
        let message = WireError::ContentType.to_string();
        return status(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            &message,
        );
    };
    let content_encoding = text(header::CONTENT_ENCODING).map(str::to_owned);
    let mapping = state.mapping.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        datagrams(&body, encoding, content_encoding.as_deref(), &mapping)
    })
    .await;
    let Framed {
        datagrams,
        spans,
        refused,
    } = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => {
            if let Some(suppressed) = state.log.check() {
                tracing::warn!(error = %e, suppressed_lines = suppressed, "OTLP request refused");
            }
            let code = match e {
                WireError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                WireError::ContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            return status(encoding, code, 3, &e.to_string());
        }
        Err(e) => {
            return status(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                &e.to_string(),
            );
        }
    };
    let counters = &state.counters;
    counters
        .otlp_spans
        .fetch_add(spans as u64, Ordering::Relaxed);
    counters
        .otlp_spans_rejected
        .fetch_add(refused.len() as u64, Ordering::Relaxed);
    if let Err(message) = enqueue(&state, datagrams) {
        counters
            .otlp_spans_refused
            .fetch_add((spans - refused.len()) as u64, Ordering::Relaxed);
        if let Some(suppressed) = state.log.check() {
            tracing::warn!(
                %message,
                spans,
                suppressed_lines = suppressed,
                "OTLP request refused; the sender retries it"
            );
        }
        return status(encoding, StatusCode::SERVICE_UNAVAILABLE, 14, &message);
    }
    let message = refused
        .first()
        .map(|first| format!("{} of {spans} spans refused; first: {first}", refused.len()))
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        wire::encode_response(encoding, refused.len(), &message),
    )
        .into_response()
}

/// Charges the budget for the datagrams and hands them to a worker, all or none.
fn enqueue(state: &OtlpState, datagrams: Vec<Vec<u8>>) -> Result<(), String> {
    if datagrams.is_empty() {
        return Ok(());
    }
    let mut batch = state.pool.take();
    for d in &datagrams {
        batch.push(d);
    }
    batch.received_at = Some(Instant::now());
    let charge: usize = datagrams.iter().map(|d| admission_charge(d.len())).sum();
    if !state.budget.try_acquire(charge) {
        state.pool.give(batch);
        return Err(format!(
            "the daemon's buffer is full ({} of {} bytes): retry later",
            state.budget.used(),
            state.budget.limit()
        ));
    }
    // Each datagram's admission is charged here (the worker settles it); the batch's unused
    // capacity is not (`overhead` stays 0), unlike the UDP listener's long-lived batches.
    batch.overhead = 0;
    let workers = state.workers.len().max(1);
    let first = state.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..workers {
        let Some(worker) = state.workers.get((first + i) % workers) else {
            break;
        };
        match worker.try_send(batch) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => batch = back,
        }
    }
    state.budget.release(charge);
    state.pool.give(batch);
    Err("every worker's queue is full: retry later".to_owned())
}
