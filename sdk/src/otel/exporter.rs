//! The span exporter and the X-Ray-compatible id generator.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId as OtelTraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{IdGenerator, SpanData, SpanExporter};
use rand::Rng;

use super::convert::span_to_segment;
use crate::recorder::Recorder;

/// Exports OpenTelemetry spans as X-Ray documents through a [`Recorder`]'s emitter.
///
/// Server and consumer spans, and spans whose parent is remote or absent, become segments named
/// after the service; the others become subsegments sent on their own.
#[derive(Debug, Clone)]
pub struct XRayExporter {
    recorder: Recorder,
    service_name: String,
}

impl XRayExporter {
    /// An exporter naming segments `service_name`.
    pub fn new(recorder: Recorder, service_name: &str) -> Self {
        Self {
            recorder,
            service_name: service_name.to_owned(),
        }
    }

    /// Converts and queues spans; never blocks (the emitter drops and counts when full).
    pub fn export_spans(&self, batch: Vec<SpanData>) {
        for span in batch {
            if let Some(segment) = span_to_segment(&span, &self.service_name) {
                self.recorder.submit(Box::new(segment));
            }
        }
    }
}

impl SpanExporter for XRayExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.export_spans(batch);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.recorder.flush(std::time::Duration::from_secs(5));
        Ok(())
    }
}

/// Generates trace ids X-Ray accepts: the epoch second in the first 32 bits, then 96 bits from
/// the thread's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct XRayIdGenerator;

impl IdGenerator for XRayIdGenerator {
    fn new_trace_id(&self) -> OtelTraceId {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as u32;
        let random: u128 = rand::rng().random();
        let value = (u128::from(seconds) << 96) | (random & ((1u128 << 96) - 1));
        OtelTraceId::from_bytes(value.to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        let mut rng = rand::rng();
        loop {
            let v: u64 = rng.random();
            if v != 0 {
                return SpanId::from_bytes(v.to_be_bytes());
            }
        }
    }
}
