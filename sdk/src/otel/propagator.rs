//! `X-Amzn-Trace-Id` as an OpenTelemetry text-map propagator.
//!
//! OpenTelemetry continues a trace only under a remote parent span, but a load balancer sends
//! `Root` alone. Such a header becomes a remote parent with a synthetic span id derived from
//! the trace id and marked in the `TraceState` ([`ROOT_ONLY_KEY`]); the exporter omits a parent
//! it recognises as one (`is_root_only_parent`), so the first span becomes a root segment of
//! the load balancer's trace. The header's other keys (`Lineage`, unknown ones) ride in the
//! `TraceState` too ([`EXTRA_KEY`]) and go out again with every call made under the trace.
//!
//! OpenTelemetry has no deferred decision: a header without `Sampled=1` (a load balancer's
//! often has none) arrives as an unsampled remote parent, which `Sampler::ParentBased` hands
//! to its `remote_parent_not_sampled` sampler (off by default).

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceState};

use super::{segment_id_from_otel, trace_id_from_otel, trace_id_to_otel};
use crate::model::{SamplingDecision, TRACE_HEADER, TraceHeader, TraceId};

/// `TraceState` key marking a trace continued from a header without `Parent`.
pub const ROOT_ONLY_KEY: &str = "xray-root-only";
/// `TraceState` key holding the header's keys other than `Root`, `Parent` and `Sampled`,
/// percent-encoded (`%`, `,` and `=` are not allowed there).
pub const EXTRA_KEY: &str = "xray-extra";

/// The span id standing for the absent parent of a `Root`-only header: the trace id's low 64
/// bits (never zero, an invalid span id).
fn root_only_span_id(trace_id: TraceId) -> SpanId {
    let low = trace_id.random_bits() as u64;
    SpanId::from_bytes(low.max(1).to_be_bytes())
}

/// Whether `parent` is the synthetic parent the propagator made for a `Root`-only header.
pub(super) fn is_root_only_parent(
    trace_id: opentelemetry::trace::TraceId,
    parent: SpanId,
    state: &TraceState,
) -> bool {
    state.get(ROOT_ONLY_KEY).is_some() && parent == root_only_span_id(trace_id_from_otel(trace_id))
}

/// The header's other keys as one `TraceState` value, `key%3Dvalue;...` with `%`, `,` and
/// `=` percent-encoded; `None` when there are none or they do not fit (256 bytes).
fn encode_extra(extra: &[(String, String)]) -> Option<String> {
    let encode = |out: &mut String, part: &str| {
        for c in part.chars() {
            match c {
                '%' => out.push_str("%25"),
                ',' => out.push_str("%2C"),
                '=' => out.push_str("%3D"),
                c => out.push(c),
            }
        }
    };
    let mut out = String::new();
    for (key, value) in extra {
        if !out.is_empty() {
            out.push(';');
        }
        encode(&mut out, key);
        out.push_str("%3D");
        encode(&mut out, value);
    }
    (!out.is_empty() && out.len() <= 256).then_some(out)
}

/// The keys [`encode_extra`] wrote, in their order.
fn decode_extra(value: &str) -> Vec<(String, String)> {
    let decode = |part: &str| {
        part.replace("%3D", "=")
            .replace("%2C", ",")
            .replace("%25", "%")
    };
    value
        .split(';')
        .filter_map(|pair| {
            // Keys hold no `=`: the first `%3D` is the separator (every `%` starts a triple).
            let at = pair.find("%3D")?;
            Some((decode(&pair[..at]), decode(&pair[at + 3..])))
        })
        .collect()
}

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
        let state = context.trace_state();
        let root_only = is_root_only_parent(context.trace_id(), context.span_id(), state);
        let header = TraceHeader {
            root: Some(trace_id_from_otel(context.trace_id())),
            parent: (!root_only).then(|| segment_id_from_otel(context.span_id())),
            sampled: SamplingDecision::from(context.is_sampled()),
            extra: state.get(EXTRA_KEY).map(decode_extra).unwrap_or_default(),
        };
        injector.set(TRACE_HEADER, header.to_string());
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(value) = extractor.get(TRACE_HEADER) else {
            return cx.clone();
        };
        // As the official SDKs: a header with one bad field keeps the fields it can read.
        let (header, _) = TraceHeader::parse_lenient(value);
        let Some(root) = header.root else {
            return cx.clone();
        };
        let flags = if header.sampled == SamplingDecision::Sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let mut state = Vec::with_capacity(2);
        let parent = match header.parent {
            Some(parent) => SpanId::from_bytes(parent.as_u64().to_be_bytes()),
            None => {
                state.push((ROOT_ONLY_KEY, "1".to_owned()));
                root_only_span_id(root)
            }
        };
        if let Some(extra) = encode_extra(&header.extra) {
            state.push((EXTRA_KEY, extra));
        }
        // Both keys and every encoded value are valid: this cannot fail.
        let state = TraceState::from_key_value(state).unwrap_or_default();
        let context = SpanContext::new(trace_id_to_otel(root), parent, flags, true, state);
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

    fn round_trip(header: &str) -> (Context, Option<String>) {
        let propagator = XRayPropagator::default();
        let mut carrier = HashMap::new();
        carrier.insert("x-amzn-trace-id".to_owned(), header.to_owned());
        let cx = propagator.extract(&carrier);
        let mut out: HashMap<String, String> = HashMap::new();
        propagator.inject_context(&cx, &mut out);
        (cx, out.remove("x-amzn-trace-id"))
    }

    #[test]
    fn a_root_only_header_continues_its_trace_without_a_parent() {
        let (cx, out) = round_trip("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
        let span = cx.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        assert_eq!(
            trace_id_from_otel(context.trace_id()).to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(context.trace_state().get(ROOT_ONLY_KEY), Some("1"));
        assert!(is_root_only_parent(
            context.trace_id(),
            context.span_id(),
            context.trace_state()
        ));
        // Forwarded as it came: no `Parent` that would point at a span nobody sends.
        assert_eq!(
            out.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );
        // A header with a parent is not taken for one.
        let (cx, _) = round_trip(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=bd862e3fe1be46a9;Sampled=1",
        );
        let span = cx.span();
        let context = span.span_context();
        assert_eq!(context.trace_state().get(ROOT_ONLY_KEY), None);
        assert!(!is_root_only_parent(
            context.trace_id(),
            context.span_id(),
            context.trace_state()
        ));
    }

    #[test]
    fn lineage_and_unknown_keys_travel_in_the_trace_state() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;\
                      Lineage=a87bd80c:1|68fd508a:5;Tenant=a,b%3D=c";
        let (cx, out) = round_trip(header);
        assert!(
            cx.span()
                .span_context()
                .trace_state()
                .get(EXTRA_KEY)
                .is_some()
        );
        assert_eq!(out.as_deref(), Some(header));
        let (_, out) = round_trip("Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1");
        assert_eq!(
            out.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=a87bd80c:1")
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
