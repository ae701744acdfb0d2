//! Every counter, gauge and histogram of the collector, in one struct shared by the handlers
//! and the layers through `AppState`; atomics only, but for the map of per-operation
//! histograms (read-locked per request, written once per operation).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use roentgen_daemon::telemetry::prometheus::Histogram;

/// Why a document was returned in `UnprocessedTraceSegments` (its `ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentRefusal {
    /// Not a valid segment document.
    InvalidSegment,
    /// Over the 64 KiB document limit.
    DocumentTooLarge,
    /// Our failure while preparing it.
    InternalFailure,
    /// Its trace is at its cap (documents or bytes).
    TraceTooLarge,
    /// A code this list does not know yet.
    Other,
}

impl DocumentRefusal {
    /// Every reason, in the order they are reported.
    pub const ALL: [Self; 5] = [
        Self::InvalidSegment,
        Self::DocumentTooLarge,
        Self::InternalFailure,
        Self::TraceTooLarge,
        Self::Other,
    ];

    /// The reason of an `ErrorCode`.
    pub fn of_code(code: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == code)
            .unwrap_or(Self::Other)
    }

    /// The label: the X-Ray `ErrorCode` itself.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSegment => "InvalidSegment",
            Self::DocumentTooLarge => "DocumentTooLarge",
            Self::InternalFailure => "InternalFailure",
            Self::TraceTooLarge => "TraceTooLarge",
            Self::Other => "other",
        }
    }
}

/// Why a whole request was refused, from its status and X-Ray error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefusal {
    /// `InvalidRequestException`: a malformed body or invalid parameters (400).
    InvalidRequest,
    /// The body is over the limit (413).
    TooLarge,
    /// No signature (`MissingAuthenticationTokenException`).
    Unsigned,
    /// An access key the collector does not know (`UnrecognizedClientException`).
    UnknownKey,
    /// A malformed, wrong, stale or replayed signature.
    BadSignature,
    /// The caller's policies do not allow it (`AccessDeniedException`, a forbidden page).
    AccessDenied,
    /// Over a rate limit (429 `ThrottledException`).
    Throttled,
    /// The replay cache is full (503 `ThrottlingException`).
    Busy,
    /// No operation at that path (`UnknownOperationException`).
    UnknownOperation,
    /// Any other client error (a missing resource, the sampling rule limit, ...).
    Other,
}

impl RequestRefusal {
    /// Every reason, in the order they are reported.
    pub const ALL: [Self; 10] = [
        Self::InvalidRequest,
        Self::TooLarge,
        Self::Unsigned,
        Self::UnknownKey,
        Self::BadSignature,
        Self::AccessDenied,
        Self::Throttled,
        Self::Busy,
        Self::UnknownOperation,
        Self::Other,
    ];

    /// The refusal an answer stands for (`None` for a success, a redirect or a server failure).
    pub fn of_answer(status: u16, error_type: Option<&str>) -> Option<Self> {
        Some(match (status, error_type) {
            (413, _) => Self::TooLarge,
            (429, _) => Self::Throttled,
            (_, Some("InvalidRequestException")) => Self::InvalidRequest,
            (_, Some("MissingAuthenticationTokenException")) => Self::Unsigned,
            (_, Some("UnrecognizedClientException")) => Self::UnknownKey,
            (_, Some("IncompleteSignatureException" | "InvalidSignatureException")) => {
                Self::BadSignature
            }
            (_, Some("ThrottlingException")) => Self::Busy,
            (_, Some("UnknownOperationException")) => Self::UnknownOperation,
            (403, _) => Self::AccessDenied,
            (400..=499, _) => Self::Other,
            _ => return None,
        })
    }

    /// The refusal a gRPC status stands for (`None` for `OK` and server failures).
    pub fn of_grpc(code: tonic::Code) -> Option<Self> {
        use tonic::Code;
        Some(match code {
            Code::InvalidArgument => Self::InvalidRequest,
            Code::ResourceExhausted | Code::OutOfRange => Self::TooLarge,
            Code::Unauthenticated => Self::Unsigned,
            Code::PermissionDenied => Self::AccessDenied,
            Code::Unavailable => Self::Busy,
            Code::Unimplemented => Self::UnknownOperation,
            Code::Ok | Code::Internal | Code::Unknown | Code::DataLoss => return None,
            _ => Self::Other,
        })
    }

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::TooLarge => "too_large",
            Self::Unsigned => "unsigned",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::AccessDenied => "access_denied",
            Self::Throttled => "throttled",
            Self::Busy => "busy",
            Self::UnknownOperation => "unknown_operation",
            Self::Other => "other",
        }
    }
}

/// Counters an operator asks "how many?" about: the one place they live.
pub struct Counters {
    /// Documents stored.
    pub documents_accepted: AtomicU64,
    /// Documents the scrubber rewrote something in.
    pub documents_scrubbed: AtomicU64,
    documents_refused: [AtomicU64; DocumentRefusal::ALL.len()],
    requests_refused: [AtomicU64; RequestRefusal::ALL.len()],
    /// Requests answered with a 5xx other than `Busy`.
    pub requests_failed: AtomicU64,
    /// Alarm rounds this collector ran (it held the lease).
    pub alarm_rounds: AtomicU64,
    /// Alarm state changes it recorded.
    pub alarm_transitions: AtomicU64,
    /// Alarm rules in its last round.
    pub alarm_rules: AtomicU64,
    /// How long its last round took, microseconds.
    pub alarm_round_micros: AtomicU64,
    /// Notifications delivered (a 2xx answer).
    pub alarm_notifications_sent: AtomicU64,
    /// Failed attempts (each retried later).
    pub alarm_notification_failures: AtomicU64,
    /// Notifications given up (24 hours of failures, or the rule or webhook gone).
    pub alarm_notifications_abandoned: AtomicU64,
    /// Insights opened.
    pub insights_opened: AtomicU64,
    /// Insights closed.
    pub insights_closed: AtomicU64,
    /// Bytes of `PutTraceSegments` and OTLP request bodies received.
    pub ingest_bytes: AtomicU64,
    /// OTLP spans received (`/v1/traces`), stored or refused.
    pub otlp_spans: AtomicU64,
    /// Requests being served now.
    pub requests_in_flight: AtomicU64,
    /// `put_documents` calls under way now.
    pub batches_in_flight: AtomicU64,
    /// Documents in `put_documents` calls under way now.
    pub documents_in_flight: AtomicU64,
    /// How long `put_documents` took.
    pub store_write: Histogram,
    operations: RwLock<BTreeMap<String, Arc<Histogram>>>,
    started: Instant,
    started_at: SystemTime,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            documents_accepted: AtomicU64::new(0),
            documents_scrubbed: AtomicU64::new(0),
            documents_refused: Default::default(),
            requests_refused: Default::default(),
            requests_failed: AtomicU64::new(0),
            alarm_rounds: AtomicU64::new(0),
            alarm_transitions: AtomicU64::new(0),
            alarm_rules: AtomicU64::new(0),
            alarm_round_micros: AtomicU64::new(0),
            alarm_notifications_sent: AtomicU64::new(0),
            alarm_notification_failures: AtomicU64::new(0),
            alarm_notifications_abandoned: AtomicU64::new(0),
            insights_opened: AtomicU64::new(0),
            insights_closed: AtomicU64::new(0),
            ingest_bytes: AtomicU64::new(0),
            otlp_spans: AtomicU64::new(0),
            requests_in_flight: AtomicU64::new(0),
            batches_in_flight: AtomicU64::new(0),
            documents_in_flight: AtomicU64::new(0),
            store_write: Histogram::default(),
            operations: RwLock::new(BTreeMap::new()),
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }
}

fn index_of<T: PartialEq>(all: &[T], item: T) -> usize {
    all.iter().position(|x| *x == item).unwrap_or(0)
}

impl Counters {
    /// Counts the documents of an `UnprocessedTraceSegments` list by their `ErrorCode`.
    pub fn refuse_documents(&self, unprocessed: &[serde_json::Value]) {
        for entry in unprocessed {
            let code = entry
                .get("ErrorCode")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let reason = DocumentRefusal::of_code(code);
            self.documents_refused[index_of(&DocumentRefusal::ALL, reason)]
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refused documents for one reason.
    pub fn documents_refused(&self, reason: DocumentRefusal) -> u64 {
        self.documents_refused[index_of(&DocumentRefusal::ALL, reason)].load(Ordering::Relaxed)
    }

    /// Counts one refused request.
    pub fn refuse_request(&self, reason: RequestRefusal) {
        self.requests_refused[index_of(&RequestRefusal::ALL, reason)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Refused requests for one reason.
    pub fn requests_refused(&self, reason: RequestRefusal) -> u64 {
        self.requests_refused[index_of(&RequestRefusal::ALL, reason)].load(Ordering::Relaxed)
    }

    /// The latency histogram of one operation (created on its first request; names come from
    /// the router's routes, so there are only so many).
    pub fn operation(&self, name: &str) -> Arc<Histogram> {
        if let Ok(map) = self.operations.read()
            && let Some(h) = map.get(name)
        {
            return h.clone();
        }
        match self.operations.write() {
            Ok(mut map) => map.entry(name.to_owned()).or_default().clone(),
            Err(_) => Arc::new(Histogram::default()),
        }
    }

    /// Every operation's histogram so far, by name.
    pub fn operations(&self) -> Vec<(String, Arc<Histogram>)> {
        self.operations
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Marks a `put_documents` call of `documents` documents under way until the guard drops,
    /// which records its time.
    pub fn store_write(&self, documents: usize) -> StoreWrite<'_> {
        let documents = documents as u64;
        self.batches_in_flight.fetch_add(1, Ordering::Relaxed);
        self.documents_in_flight
            .fetch_add(documents, Ordering::Relaxed);
        StoreWrite {
            counters: self,
            documents,
            started: Instant::now(),
        }
    }

    /// Seconds since the collector started.
    pub fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// When the collector started, seconds since the Unix epoch.
    pub fn start_time_seconds(&self) -> f64 {
        self.started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// A `put_documents` call under way (see [`Counters::store_write`]).
pub struct StoreWrite<'a> {
    counters: &'a Counters,
    documents: u64,
    started: Instant,
}

impl Drop for StoreWrite<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.store_write.observe(self.started.elapsed());
        c.batches_in_flight.fetch_sub(1, Ordering::Relaxed);
        c.documents_in_flight
            .fetch_sub(self.documents, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_refusals() {
        use RequestRefusal as R;
        let of = R::of_answer;
        assert_eq!(of(200, None), None);
        assert_eq!(of(303, None), None);
        assert_eq!(of(500, Some("InternalFailure")), None);
        assert_eq!(
            of(400, Some("InvalidRequestException")),
            Some(R::InvalidRequest)
        );
        assert_eq!(of(413, None), Some(R::TooLarge));
        assert_eq!(of(413, Some("RequestEntityTooLarge")), Some(R::TooLarge));
        assert_eq!(
            of(403, Some("MissingAuthenticationTokenException")),
            Some(R::Unsigned)
        );
        assert_eq!(
            of(403, Some("UnrecognizedClientException")),
            Some(R::UnknownKey)
        );
        assert_eq!(
            of(403, Some("InvalidSignatureException")),
            Some(R::BadSignature)
        );
        assert_eq!(
            of(403, Some("AccessDeniedException")),
            Some(R::AccessDenied)
        );
        assert_eq!(of(403, None), Some(R::AccessDenied));
        assert_eq!(of(429, Some("ThrottledException")), Some(R::Throttled));
        assert_eq!(of(503, Some("ThrottlingException")), Some(R::Busy));
        assert_eq!(
            of(404, Some("UnknownOperationException")),
            Some(R::UnknownOperation)
        );
        assert_eq!(of(404, Some("ResourceNotFoundException")), Some(R::Other));
    }

    #[test]
    fn documents_are_counted_by_error_code() {
        let c = Counters::default();
        let entry = |code: &str| serde_json::json!({ "Id": "1", "ErrorCode": code });
        c.refuse_documents(&[
            entry("InvalidSegment"),
            entry("InvalidSegment"),
            entry("DocumentTooLarge"),
            entry("SomethingNew"),
        ]);
        assert_eq!(c.documents_refused(DocumentRefusal::InvalidSegment), 2);
        assert_eq!(c.documents_refused(DocumentRefusal::DocumentTooLarge), 1);
        assert_eq!(c.documents_refused(DocumentRefusal::Other), 1);
        assert_eq!(c.documents_refused(DocumentRefusal::InternalFailure), 0);
    }

    #[test]
    fn a_store_write_is_in_flight_until_it_ends() {
        let c = Counters::default();
        let write = c.store_write(50);
        assert_eq!(c.batches_in_flight.load(Ordering::Relaxed), 1);
        assert_eq!(c.documents_in_flight.load(Ordering::Relaxed), 50);
        drop(write);
        assert_eq!(c.batches_in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(c.documents_in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(c.store_write.snapshot().count, 1);
    }
}
