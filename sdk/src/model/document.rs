//! Segment and subsegment documents as the official SDKs send them.
//!
//! Every optional field is an `Option` that is skipped when absent, and every object keeps the
//! fields it does not know in `extra`, so a document parsed and re-serialized loses nothing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::ids::{SegmentId, TraceId};

/// A segment, or a subsegment (embedded or sent on its own).
///
/// X-Ray segments and subsegments share almost all fields; a subsegment sent on its own carries
/// `type: "subsegment"`, `trace_id` and `parent_id`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Segment {
    /// Logical name of the service or the downstream call.
    pub name: String,
    /// Unique id within the trace.
    pub id: SegmentId,
    /// Trace this document belongs to; required on top-level documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Id of the calling segment or subsegment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<SegmentId>,
    /// Start, epoch seconds.
    pub start_time: f64,
    /// End, epoch seconds; absent while `in_progress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Set while the work is not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<bool>,
    /// `"subsegment"` for a subsegment sent on its own.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `aws`, `remote` (or `local`, sent by Python) for subsegments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Resource type the service runs on, e.g. `AWS::EC2::Instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// End user of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Service information (`version`, runtime, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Map<String, Value>>,
    /// HTTP request and response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// SQL query information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Sql>,
    /// AWS resource information (free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Map<String, Value>>,
    /// A client error (4xx) occurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<bool>,
    /// The request was throttled (429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<bool>,
    /// A server error (5xx or exception) occurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<bool>,
    /// The error's cause: an exception id or the exceptions themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Indexed key-value pairs; values are strings, numbers or booleans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    /// Free-form data by namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Nested subsegments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsegments: Option<Vec<Segment>>,
    /// Ids of sibling subsegments that finished before this one started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precursor_ids: Option<Vec<SegmentId>>,
    /// The downstream call was traced (Node sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traced: Option<bool>,
    /// ARN of the AWS resource running the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<String>,
    /// Fields this version does not know; kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Segment {
    /// Whether this document is a subsegment sent on its own.
    pub fn is_subsegment(&self) -> bool {
        self.kind.as_deref() == Some("subsegment")
    }

    /// Number of subsegments nested below this document, at any depth.
    pub fn subsegment_count(&self) -> usize {
        self.subsegments
            .iter()
            .flatten()
            .map(|s| 1 + s.subsegment_count())
            .sum()
    }

    /// Sets `error`, `throttle` and `fault` from an HTTP status as X-Ray does:
    /// 4xx -> error, 429 -> throttle (and error), 5xx -> fault.
    pub fn apply_status_flags(&mut self, status: u16) {
        match status {
            429 => {
                self.error = Some(true);
                self.throttle = Some(true);
            }
            400..=499 => self.error = Some(true),
            500..=599 => self.fault = Some(true),
            _ => {}
        }
    }
}

/// The `http` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Http {
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `http.request`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// User agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `client_ip` came from `X-Forwarded-For`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<bool>,
    /// The downstream call was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traced: Option<bool>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `http.response`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Body length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `sql` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sql {
    /// Connection string (without password, ideally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Query with values replaced by placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<String>,
    /// Engine name, e.g. `PostgreSQL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// Engine version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    /// Driver name and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Database user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `call` or `statement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `cause`: either the id of an exception recorded elsewhere in the trace, or the details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cause {
    /// 16-hex id of an exception recorded in another (sub)segment.
    ExceptionId(String),
    /// The exceptions themselves.
    Details(CauseDetails),
}

/// The detailed form of `cause`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CauseDetails {
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Source paths loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The exceptions, outermost first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceptions: Option<Vec<Exception>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One recorded exception.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exception {
    /// 16-hex id, referenced by other `cause` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Exception type or class.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Raised by a downstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<bool>,
    /// Number of stack frames omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
    /// Number of exceptions skipped between this one and its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    /// Id of the exception's cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Stack frames, innermost first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<StackFrame>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One stack frame. `line` is `Some(None)` when the SDK sent `null` (Node does).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StackFrame {
    /// Source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Line number; `Some(None)` keeps an explicit `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable::deserialize",
        serialize_with = "nullable::serialize"
    )]
    pub line: Option<Option<u64>>,
    /// Function or method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Keeps "absent" and "null" apart for fields where an SDK sends an explicit `null`.
mod nullable {
    use super::*;

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }

    pub fn serialize<S, T>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// Whether a JSON value may be an annotation value (string, number or boolean).
pub fn annotation_value_is_valid(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}
