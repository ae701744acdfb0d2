//! `X-Amzn-Trace-Id` as an OpenTelemetry text-map propagator.

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceState};

use super::{segment_id_from_otel, trace_id_from_otel, trace_id_to_otel};
use crate::model::{SamplingDecision, TRACE_HEADER, TraceHeader};

/// Reads and writes the X-Ray trace header. `Sampled=?` is read as "not sampled yet", since
/// OpenTelemetry has no deferred decision; the local sampler then decides for root spans.
#[derive(Debug, Clone)]
pub struct XRayPropagator {
    fields: [String; 1],
}

impl Default for XRayPropagator {
    fn default() -> Self {
        Self {
            fields: [TRACE_HEADER.to_lowercase()],
        }
    }
}

impl TextMapPropagator for XRayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return;
        }
        let header = TraceHeader {
            root: Some(trace_id_from_otel(context.trace_id())),
            parent: Some(segment_id_from_otel(context.span_id())),
            sampled: SamplingDecision::from(context.is_sampled()),
            extra: Vec::new(),
        };
        injector.set(TRACE_HEADER, header.to_string());
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(value) = extractor.get(TRACE_HEADER) else {
            return cx.clone();
        };
        // As the official SDKs: a header with one bad field keeps the fields it can read.
        let (header, _) = TraceHeader::parse_lenient(value);
        let (Some(root), Some(parent)) = (header.root, header.parent) else {
            return cx.clone();
        };
        let flags = if header.sampled == SamplingDecision::Sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let context = SpanContext::new(
            trace_id_to_otel(root),
            SpanId::from_bytes(parent.as_u64().to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        cx.with_remote_span_context(context)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn extract_then_inject_keeps_root_and_decision() {
        let propagator = XRayPropagator::default();
        let mut carrier = HashMap::new();
        carrier.insert(
            "x-amzn-trace-id".to_owned(),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
        );
        let cx = propagator.extract(&carrier);
        let mut out: HashMap<String, String> = HashMap::new();
        propagator.inject_context(&cx, &mut out);
        assert_eq!(
            out.get("x-amzn-trace-id").map(String::as_str),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
        );
    }

    #[test]
    fn malformed_headers_leave_the_context_alone() {
        let propagator = XRayPropagator::default();
        let mut carrier = HashMap::new();
        carrier.insert("x-amzn-trace-id".to_owned(), "Root=bogus".to_owned());
        let cx = propagator.extract(&carrier);
        assert!(!cx.span().span_context().is_valid());
    }
}
