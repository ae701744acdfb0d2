//! Roentgen's instrumentation SDK and the X-Ray segment model shared by the whole workspace.
//!
//! Features decide how much of it a crate pulls in:
//! - `model`: the segment document, ids, the trace header and the UDP wire framing (serde only);
//! - `scrub`: the PII scrubber, for the daemon and the collector;
//! - `runtime`: the recorder, sampler and emitter linked into apps;
//! - `axum`: the tower/axum middleware and the outgoing-call helper;
//! - `otel`: the OpenTelemetry exporter and propagator;
//! - `sqlx`: an sqlx pool whose queries are traced.

#[cfg(feature = "axum")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod emitter;
#[cfg(feature = "axum")]
pub mod middleware;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "runtime")]
pub mod recorder;
#[cfg(feature = "runtime")]
pub mod sampling;
#[cfg(feature = "scrub")]
pub mod scrub;
#[cfg(feature = "sqlx")]
pub mod sqlx;
#[cfg(feature = "tracing-layer")]
pub mod tracing_layer;
