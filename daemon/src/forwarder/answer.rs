//! What the collector's answer to `PutTraceSegments` means for the batch: delivered (with the
//! entries of `UnprocessedTraceSegments`), or failed, and how.
//!
//! The rule, in one place: only a per-document refusal that X-Ray marks non-retryable is
//! final. Every whole-request failure keeps the batch: connection errors, timeouts, 5xx, any
//! 4xx (a rotated key, clock skew, a wrong endpoint path, a body limit) and a 2xx whose body
//! is not an X-Ray answer. A 4xx is a *refusal*: the operator has something to fix, so it is
//! logged loudly and shown in `/metrics`, and a 413 splits the batch before retrying.

use roentgen_sdk::scrub::log_safe;
use serde::Deserialize;

use crate::telemetry::BackendError;

/// A failed exchange with the collector; the batch is kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct SendError {
    /// The X-Ray backend error kind.
    pub kind: BackendError,
    /// The HTTP status when the collector refused the whole request (a 4xx answer).
    pub refused: Option<u16>,
    /// What happened.
    pub message: String,
}

impl SendError {
    /// Whether the collector said the request is too large (split it and retry the halves).
    pub fn too_large(&self) -> bool {
        self.refused == Some(413)
    }
}

/// What an operator should look at when the collector refuses every request with `status`.
pub fn refusal_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "check the daemon's credentials (access key, secret) and its clock: SigV4 allows 5 minutes of skew"
        }
        404 | 405 => {
            "check `endpoint`: the collector has no PutTraceSegments at that URL (a path or port typo?)"
        }
        408 => "the collector timed out reading the request: check the network and its timeouts",
        413 => {
            "a single document is larger than the collector (or a proxy before it) accepts: raise its body limit"
        }
        _ => "see the collector's answer",
    }
}

/// One entry of `UnprocessedTraceSegments`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Unprocessed {
    /// The document's id.
    pub id: Option<String>,
    /// The error code.
    pub error_code: Option<String>,
    /// The message.
    pub message: Option<String>,
}

impl Unprocessed {
    /// Whether sending the document again may succeed (throttling or a server-side failure).
    pub fn retryable(&self) -> bool {
        let code = self
            .error_code
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        ["throttl", "internal", "unavailable", "timeout", "limit"]
            .iter()
            .any(|k| code.contains(k))
    }
}

/// A `PutTraceSegments` answer; every field of X-Ray's is optional, but it must be a JSON
/// object.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PutResponse {
    unprocessed_trace_segments: Vec<Unprocessed>,
}

/// Reads the collector's answer: the unprocessed entries of a 2xx, or why the batch failed.
pub fn read(status: u16, body: &[u8]) -> Result<Vec<Unprocessed>, SendError> {
    // The collector's answer may echo a document: scrubbed before it goes into a log line.
    let excerpt = || log_safe(&String::from_utf8_lossy(&body[..body.len().min(300)]));
    if (200..300).contains(&status) {
        // An object, then its fields: serde would also take a struct from a JSON array.
        return serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
            .and_then(|object| serde_json::from_value::<PutResponse>(object.into()))
            .map(|r| r.unprocessed_trace_segments)
            .map_err(|e| SendError {
                kind: BackendError::Other,
                refused: None,
                message: format!(
                    "HTTP {status} with an answer that is not PutTraceSegments JSON ({e}): {}",
                    excerpt()
                ),
            });
    }
    let message = format!("HTTP {status}: {}", excerpt());
    Err(match status {
        429 => SendError {
            kind: BackendError::Http4xx,
            refused: None,
            message,
        },
        400..=499 => SendError {
            kind: BackendError::Http4xx,
            refused: Some(status),
            message,
        },
        500..=599 => SendError {
            kind: BackendError::Http5xx,
            refused: None,
            message,
        },
        _ => SendError {
            kind: BackendError::Other,
            refused: None,
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprocessed_codes() {
        let u = |code: &str| Unprocessed {
            id: Some("0000000000000001".into()),
            error_code: Some(code.into()),
            message: None,
        };
        assert!(u("ThrottledException").retryable());
        assert!(u("InternalFailure").retryable());
        assert!(!u("InvalidSegment").retryable());
        assert!(!u("TraceTooLarge").retryable());
    }

    #[test]
    fn only_a_well_formed_2xx_delivers() {
        let listed = read(
            200,
            br#"{"UnprocessedTraceSegments":[{"Id":"a","ErrorCode":"X","Message":"m"}]}"#,
        )
        .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(read(200, b"{}").unwrap().is_empty());
        for garbage in [
            &b""[..],
            b"<html>ok</html>",
            b"[1]",
            b"[]",
            b"{\"Unprocessed",
        ] {
            let e = read(200, garbage).unwrap_err();
            assert_eq!(e.kind, BackendError::Other);
            assert_eq!(e.refused, None);
        }
    }

    #[test]
    fn every_4xx_but_429_is_a_refusal_and_nothing_is_final() {
        for status in [400, 401, 403, 404, 405, 408, 413, 451] {
            let e = read(status, b"{\"message\":\"no\"}").unwrap_err();
            assert_eq!(e.refused, Some(status), "{status}");
            assert_eq!(e.kind, BackendError::Http4xx);
        }
        assert!(read(413, b"").unwrap_err().too_large());
        assert_eq!(read(429, b"").unwrap_err().refused, None);
        assert_eq!(read(503, b"").unwrap_err().kind, BackendError::Http5xx);
        assert_eq!(read(302, b"").unwrap_err().kind, BackendError::Other);
        assert!(refusal_hint(401).contains("clock"));
        assert!(refusal_hint(404).contains("endpoint"));
    }
}
