//! The OTLP listeners: OpenTelemetry SDKs on this server export here as X-Ray SDKs send UDP,
//! over HTTP (`POST /v1/traces`, loopback 4318, `http.rs`) or gRPC (`TraceService/Export`,
//! loopback 4317, `grpc.rs`). Spans become X-Ray documents through the SDK's one mapping
//! (`roentgen_sdk::otlp`), framed as datagrams, and enter the same pipeline: the workers'
//! validation and scrubbing, the memory budget, batching, forwarding and the spool. A request
//! the buffer cannot take is refused as "retry later" (HTTP 503, gRPC `UNAVAILABLE`), never
//! dropped silently.

mod grpc;
mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use roentgen_sdk::model::nest::write_nested;
use roentgen_sdk::model::{Segment, encode_datagram};
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};

pub use grpc::router as grpc_router;
pub use http::{MAX_BODY_BYTES, router};

use crate::listener::{PacketBatch, PacketPool};
use crate::memory::{MemoryBudget, admission_charge};
use crate::telemetry::{Counters, RateLimit};

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

/// A request's spans as framed datagrams.
struct Framed {
    /// One datagram per document: a tree of the request's spans ([`nest`]), or a span alone.
    datagrams: Vec<Vec<u8>>,
    /// Spans in the request.
    spans: usize,
    /// Why each of the others was refused.
    refused: Vec<String>,
}

/// A document framed as the UDP listener receives it.
fn frame(segment: &Segment) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(segment).map_err(|e| e.to_string())?;
    let mut datagram = Vec::new();
    encode_datagram(&json, &mut datagram).map_err(|e| e.to_string())?;
    Ok(datagram)
}

/// Maps a decoded request's spans and frames them (blocking work: run it off the runtime).
/// Spans whose parent came in the same request travel inside it, one document per tree as an
/// X-Ray SDK sends a segment (the collector stores what it gets); a span that would be refused
/// alone is framed alone, so the workers refuse only it, and a tree past a datagram is framed
/// span by span.
fn datagrams(request: &ExportTraceServiceRequest, mapping: &MappingConfig) -> Framed {
    let mapped = map_resource_spans(&request.resource_spans, mapping);
    let spans = mapped.segments.len() + mapped.rejected.len();
    let mut refused: Vec<String> = mapped
        .rejected
        .iter()
        .map(|r| format!("span {}: {}", r.span_id, r.error))
        .collect();
    let (valid, invalid): (Vec<Segment>, Vec<Segment>) = mapped
        .segments
        .into_iter()
        .partition(|s| s.validate_for_ingest().is_ok());
    let framed =
        |segment: &Segment| frame(segment).map_err(|e| format!("span {}: {e}", segment.id));
    let trees = write_nested(valid, |segment| framed(segment));
    let mut out = Vec::with_capacity(trees.len() + invalid.len());
    for result in trees.into_iter().chain(invalid.iter().map(framed)) {
        match result {
            Ok(d) => out.push(d),
            Err(e) => refused.push(e),
        }
    }
    Framed {
        datagrams: out,
        spans,
        refused,
    }
}

/// A taken request's answer: how many spans were refused, and the first reason.
struct Taken {
    rejected: usize,
    message: String,
}

/// Counts a framed request and hands it to the workers; `Err` (the buffer is full: the sender
/// retries) with the reason, counted and logged at most every 10 s.
fn take(state: &OtlpState, framed: Framed) -> Result<Taken, String> {
    let Framed {
        datagrams,
        spans,
        refused,
    } = framed;
    let counters = &state.counters;
    counters
        .otlp_spans
        .fetch_add(spans as u64, Ordering::Relaxed);
    counters
        .otlp_spans_rejected
        .fetch_add(refused.len() as u64, Ordering::Relaxed);
    if let Err(message) = enqueue(state, datagrams) {
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
        return Err(message);
    }
    let message = refused
        .first()
        .map(|first| format!("{} of {spans} spans refused; first: {first}", refused.len()))
        .unwrap_or_default();
    Ok(Taken {
        rejected: refused.len(),
        message,
    })
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
