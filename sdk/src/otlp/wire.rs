//! OTLP/HTTP bodies: an `ExportTraceServiceRequest` in protobuf or JSON, gzip or not, decoded
//! within a size bound; the answer (with its partial success) and errors (`google.rpc.Status`)
//! encoded the way the request came. Shared by the daemon's and the collector's listeners.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; `None` for any other type.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Why a body was refused; each says what the sender can fix.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Neither protobuf nor JSON.
    #[error("Content-Type must be application/x-protobuf or application/json")]
    ContentType,
    /// Compressed with something other than gzip.
    #[error("Content-Encoding {0:?} is not supported (gzip or none)")]
    ContentEncoding(String),
    /// Larger than allowed once decompressed.
    #[error("the request is larger than {0} bytes decompressed")]
    TooLarge(usize),
    /// Not valid gzip.
    #[error("the gzip body cannot be read: {0}")]
    Gzip(std::io::Error),
    /// Not a valid `ExportTraceServiceRequest`.
    #[error("not an OTLP ExportTraceServiceRequest: {0}")]
    Decode(String),
}

/// Largest request accepted once decompressed, by every OTLP/HTTP receiver.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

impl WireError {
    /// The HTTP status that answers it: 415 for a type or encoding not taken, 413 past the
    /// bound, 400 for a body that does not decode (as the OTLP specification says).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ContentType | Self::ContentEncoding(_) => 415,
            Self::TooLarge(_) => 413,
            Self::Gzip(_) | Self::Decode(_) => 400,
        }
    }
}

/// Decodes an OTLP/HTTP request from its `Content-Type`, `Content-Encoding` and body, within
/// [`MAX_DECOMPRESSED_BYTES`]; a refusal comes with the encoding to answer it in (JSON when the
/// type is not known).
pub fn decode_http(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<(Encoding, ExportTraceServiceRequest), (Encoding, WireError)> {
    let encoding = Encoding::from_content_type(content_type)
        .ok_or((Encoding::Json, WireError::ContentType))?;
    decode_request(body, encoding, content_encoding, MAX_DECOMPRESSED_BYTES)
        .map(|request| (encoding, request))
        .map_err(|e| (encoding, e))
}

/// Decodes a request body of `max_bytes` at most once decompressed.
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
    content_encoding: Option<&str>,
    max_bytes: usize,
) -> Result<ExportTraceServiceRequest, WireError> {
    let inflated;
    let body = match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => {
            if body.len() > max_bytes {
                return Err(WireError::TooLarge(max_bytes));
            }
            body
        }
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(max_bytes as u64 + 1)
                .read_to_end(&mut out)
                .map_err(WireError::Gzip)?;
            if out.len() > max_bytes {
                return Err(WireError::TooLarge(max_bytes));
            }
            inflated = out;
            &inflated[..]
        }
        Some(other) => return Err(WireError::ContentEncoding(other.to_owned())),
    };
    match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(body).map_err(|e| WireError::Decode(e.to_string()))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| WireError::Decode(e.to_string()))
        }
    }
}

/// The answer: empty when every span was taken, else the partial success (HTTP and gRPC).
pub fn response(rejected_spans: usize, error_message: &str) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected_spans as i64,
            error_message: error_message.to_owned(),
        }),
    }
}

/// The answer's body in the request's encoding.
pub fn encode_response(encoding: Encoding, rejected_spans: usize, error_message: &str) -> Vec<u8> {
    let response = response(rejected_spans, error_message);
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error body: `google.rpc.Status` with `code` (a gRPC code: 3 invalid argument, 8
/// resource exhausted, 13 internal, 16 unauthenticated) and the message.
pub fn encode_status(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
        "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "name":"GET /","kind":2,"startTimeUnixNano":"1800000000000000000","endTimeUnixNano":"1800000000100000000",
        "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}}]}]}]}]}"#;

    #[test]
    fn json_protobuf_and_gzip_decode_to_the_same_request() {
        let from_json = decode_request(JSON.as_bytes(), Encoding::Json, None, 1 << 20).unwrap();
        let span = &from_json.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_800_000_000_000_000_000);
        assert_eq!(
            span.span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        let bytes = from_json.encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let from_gzip = decode_request(&gz, Encoding::Protobuf, Some("gzip"), 1 << 20).unwrap();
        assert_eq!(from_gzip, from_json);
    }

    #[test]
    fn bodies_past_the_bound_bad_encodings_and_garbage_are_refused() {
        let big = vec![0u8; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&big).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 10_000);
        assert!(matches!(
            decode_request(&bomb, Encoding::Protobuf, Some("gzip"), 64 << 10),
            Err(WireError::TooLarge(_))
        ));
        assert!(matches!(
            decode_request(b"x", Encoding::Protobuf, Some("br"), 10),
            Err(WireError::ContentEncoding(_))
        ));
        assert!(matches!(
            decode_request(b"\xff\xff\xff", Encoding::Protobuf, None, 10),
            Err(WireError::Decode(_))
        ));
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type(Some("text/plain")), None);
    }

    #[test]
    fn partial_success_is_said_only_when_spans_were_rejected() {
        assert!(encode_response(Encoding::Protobuf, 0, "").is_empty());
        let body = encode_response(Encoding::Json, 2, "two spans had no trace id");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedSpans"], 2);
        assert_eq!(
            v["partialSuccess"]["errorMessage"],
            "two spans had no trace id"
        );
    }
}
