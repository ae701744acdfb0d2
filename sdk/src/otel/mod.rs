//! The OpenTelemetry bridge: apps that trace with `opentelemetry` export through Roentgen.
//!
//! - [`XRayExporter`]: an `opentelemetry_sdk` span exporter that turns spans into X-Ray
//!   documents and sends them through the recorder's emitter (so they are scrubbed first);
//! - [`XRayIdGenerator`]: trace ids whose first 32 bits are the epoch second, as X-Ray requires;
//! - [`XRayPropagator`]: reads and writes `X-Amzn-Trace-Id`.

mod exporter;
mod propagator;

pub use exporter::{XRayExporter, XRayIdGenerator};
pub use propagator::{EXTRA_KEY, ROOT_ONLY_KEY, XRayPropagator};

use crate::model::{SegmentId, TraceId};

/// An OpenTelemetry trace id as an X-Ray trace id (high 32 bits = epoch second).
pub fn trace_id_from_otel(id: opentelemetry::trace::TraceId) -> TraceId {
    TraceId::from_w3c(id.to_bytes())
}

/// An X-Ray trace id as an OpenTelemetry trace id.
pub fn trace_id_to_otel(id: TraceId) -> opentelemetry::trace::TraceId {
    opentelemetry::trace::TraceId::from_bytes(id.to_w3c())
}

/// An OpenTelemetry span id as a segment id.
pub fn segment_id_from_otel(id: opentelemetry::trace::SpanId) -> SegmentId {
    SegmentId::from_u64(u64::from_be_bytes(id.to_bytes()))
}
