//! OTLP spans -> X-Ray documents: the one mapping shared by the SDK's OpenTelemetry exporter,
//! the daemon's OTLP listeners and the collector's `/v1/traces`, over the types of
//! `opentelemetry-proto` (the OTLP wire format).
//!
//! `span.rs` holds the rules (AWS's published conversion), `resource.rs` what a resource says,
//! `attributes.rs` attribute lookups, `stacktrace.rs` the frames of `exception.stacktrace`,
//! `wire.rs` the OTLP/HTTP bodies.

mod attributes;
#[cfg(feature = "otlp-grpc")]
pub mod grpc;
mod resource;
mod span;
mod stacktrace;
pub mod wire;
#[cfg(feature = "otlp-workload")]
pub mod workload;

pub use opentelemetry_proto;
pub use span::{SpanError, segment_id, trace_id};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::model::Segment;

/// How spans become documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingConfig {
    /// Attribute keys indexed as annotations (searchable with `annotation.KEY`), besides the
    /// ones a span lists in its `aws.xray.annotations` attribute; the others become metadata.
    pub annotation_keys: Vec<String>,
    /// Every scalar attribute becomes an annotation.
    pub index_all_attributes: bool,
}

/// A span that did not become a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSpan {
    /// The span id as sent, in hex.
    pub span_id: String,
    /// Why.
    pub error: SpanError,
}

/// The documents of a request's spans, and the spans refused.
#[derive(Debug, Default)]
pub struct Mapped {
    /// One document per span, in request order.
    pub segments: Vec<Segment>,
    /// The spans that could not be mapped.
    pub rejected: Vec<RejectedSpan>,
}

/// Maps every span of `resource_spans`.
pub fn map_resource_spans(resource_spans: &[ResourceSpans], config: &MappingConfig) -> Mapped {
    let mut out = Mapped::default();
    for rs in resource_spans {
        let attributes = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let resource = resource::Resource::read(attributes::Attributes(attributes));
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            match span::map(span, &resource, config) {
                Ok(doc) => out.segments.push(doc),
                Err(error) => out.rejected.push(RejectedSpan {
                    span_id: span.span_id.iter().map(|b| format!("{b:02x}")).collect(),
                    error,
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
