//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, served by the
//! daemon (loopback 4317) and the collector (`--otlp-grpc`). The generated server of
//! `opentelemetry-proto` (over `tonic`) with the bounds both share; each implements
//! [`TraceService`] over its own pipeline and serves it on its own HTTP/2 connections.
//!
//! Status codes follow the OTLP specification: `INVALID_ARGUMENT` for a request that does not
//! decode (not retried), `UNAVAILABLE` when the receiver cannot take it now (retried),
//! `RESOURCE_EXHAUSTED` for a message past the bound; refused spans of an accepted request go
//! in the partial success, as over HTTP.

pub use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use tonic::codec::CompressionEncoding;

/// Largest message accepted, once decompressed (gRPC's own frame bound applies before).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The path of `Export`, the one method served.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC status code of a trailers-only answer (an error before any message), read from
/// its headers; `None` when the headers carry none (a reply whose status is in the trailers).
pub fn early_status<B>(response: &http::Response<B>) -> Option<tonic::Code> {
    let value = response.headers().get("grpc-status")?.to_str().ok()?;
    value.trim().parse::<i32>().ok().map(tonic::Code::from)
}

/// What `prost` says of a message that does not decode, which `tonic` answers `INTERNAL`.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// Makes a request that does not decode `INVALID_ARGUMENT`, as OTLP asks (`tonic` answers
/// gRPC's generic `INTERNAL`); every other answer is left as it is. Apply it to every answer.
pub fn refine_status<B>(response: &mut http::Response<B>) {
    if early_status(response) != Some(tonic::Code::Internal) {
        return;
    }
    let undecodable = response
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.replace("%20", " ").starts_with(UNDECODABLE));
    if undecodable {
        let code = tonic::Code::InvalidArgument as i32;
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from(code));
    }
}

/// `service` as a gRPC server: gzip requests accepted, messages bounded by
/// [`MAX_MESSAGE_BYTES`] (past it, `RESOURCE_EXHAUSTED` or `OUT_OF_RANGE`).
pub fn server<T: TraceService>(service: T) -> TraceServiceServer<T> {
    TraceServiceServer::new(service)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_request_becomes_invalid_argument_and_nothing_else_changes() {
        use prost::Message;
        let error =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &[0xff_u8; 16][..],
            )
            .unwrap_err();
        let mut undecodable: http::Response<()> =
            tonic::Status::internal(error.to_string()).into_http();
        refine_status(&mut undecodable);
        assert_eq!(
            early_status(&undecodable),
            Some(tonic::Code::InvalidArgument)
        );
        let mut internal: http::Response<()> = tonic::Status::internal("disk").into_http();
        refine_status(&mut internal);
        assert_eq!(early_status(&internal), Some(tonic::Code::Internal));
    }

    #[test]
    fn an_error_status_is_read_from_the_headers_and_a_reply_has_none() {
        let refused: http::Response<()> = tonic::Status::invalid_argument("bad").into_http();
        assert_eq!(early_status(&refused), Some(tonic::Code::InvalidArgument));
        let reply = http::Response::new(());
        assert_eq!(early_status(&reply), None);
    }
}
