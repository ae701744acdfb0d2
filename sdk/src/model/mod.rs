//! The X-Ray segment document: types, identifiers, the trace header and the UDP framing.
//!
//! This is the one definition of the wire format in the workspace; the daemon and the collector
//! reuse it through the `model` feature without the SDK's runtime.

pub mod calendar;
mod document;
mod header;
mod ids;
pub mod nest;
pub mod sampling;
mod validate;
mod wire;

pub use document::{
    Cause, CauseDetails, Exception, Http, HttpRequest, HttpResponse, Segment, Sql, StackFrame,
    annotation_value_is_valid,
};
pub use header::{HeaderError, SamplingDecision, TRACE_HEADER, TraceHeader};
pub use ids::{IdError, SegmentId, TraceId};
pub use validate::{DocumentHead, ValidationError, ValidationErrorKind, valid_name};
pub use wire::{DAEMON_HEADER, MAX_DOCUMENT_BYTES, WireError, encode_datagram, split_datagram};
