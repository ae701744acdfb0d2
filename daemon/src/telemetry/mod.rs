//! Counters for everything an operator asks "how many?", their Prometheus rendering, the
//! receive-to-send latency histogram, and the periodic summary log and `PutTelemetryRecords`.
//!
//! Counters are plain atomics shared by every stage; the only lock guards the per-detector
//! scrub counts, taken only when a document actually had something scrubbed.

pub mod prometheus;
mod report;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{Exposition, Kind};
pub use report::{Report, run_telemetry};

/// Why a datagram was rejected before it reached the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No header line before the document.
    NoHeader,
    /// The header line is not `{"format":"json","version":1}`.
    BadHeader,
    /// Nothing after the header.
    Empty,
    /// Larger than the configured maximum document size.
    Oversize,
    /// The document is not a JSON object (or not UTF-8).
    NotJson,
    /// A required field (`name`, `id`, `trace_id`, `start_time`, `parent_id`) is absent.
    MissingField,
    /// `id`, `trace_id` or `parent_id` is malformed.
    BadId,
    /// A time is not positive epoch seconds, the end precedes the start, or neither
    /// `end_time` nor `in_progress` is set.
    BadTime,
    /// `name` is empty, too long or has characters X-Ray refuses.
    BadName,
}

impl RejectReason {
    /// Every reason, in the order they are reported.
    pub const ALL: [RejectReason; 9] = [
        Self::NoHeader,
        Self::BadHeader,
        Self::Empty,
        Self::Oversize,
        Self::NotJson,
        Self::MissingField,
        Self::BadId,
        Self::BadTime,
        Self::BadName,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHeader => "no_header",
            Self::BadHeader => "bad_header",
            Self::Empty => "empty",
            Self::Oversize => "oversize",
            Self::NotJson => "not_json",
            Self::MissingField => "missing_field",
            Self::BadId => "bad_id",
            Self::BadTime => "bad_time",
            Self::BadName => "bad_name",
        }
    }
}

/// Why documents that had been accepted were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The in-memory buffer was full (and the spool could not take more).
    BufferFull,
    /// The shutdown deadline passed and the spool could not take the rest.
    Shutdown,
    /// The collector refused the document for good (a non-retryable
    /// `UnprocessedTraceSegments` entry).
    CollectorRefused,
    /// Processing the datagram (it is not forwarded unscrubbed) or delivering its batch
    /// panicked: a bug.
    WorkerPanic,
    /// A spooled batch's file disappeared (removed outside the daemon).
    SpoolFileMissing,
}

impl DropReason {
    /// Every reason, in the order they are reported.
    pub const ALL: [DropReason; 5] = [
        Self::BufferFull,
        Self::Shutdown,
        Self::CollectorRefused,
        Self::WorkerPanic,
        Self::SpoolFileMissing,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BufferFull => "buffer_full",
            Self::Shutdown => "shutdown",
            Self::CollectorRefused => "collector_refused",
            Self::WorkerPanic => "worker_panic",
            Self::SpoolFileMissing => "spool_file_missing",
        }
    }
}

/// What went wrong talking to the collector (the X-Ray `BackendConnectionErrors` kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The request timed out.
    Timeout,
    /// The connection was refused or reset.
    ConnectionRefused,
    /// A 4xx answer.
    Http4xx,
    /// A 5xx answer.
    Http5xx,
    /// Anything else (unreadable answer, DNS, ...).
    Other,
}

impl BackendError {
    /// Every kind, in the order they are reported.
    pub const ALL: [BackendError; 5] = [
        Self::Timeout,
        Self::ConnectionRefused,
        Self::Http4xx,
        Self::Http5xx,
        Self::Other,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection_refused",
            Self::Http4xx => "http_4xx",
            Self::Http5xx => "http_5xx",
            Self::Other => "other",
        }
    }
}

/// Receive-to-send latency with 1 ms resolution up to 60 s (later values land in the last bucket).
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

const LATENCY_BUCKETS: usize = 60_001;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    /// Records `count` documents that took `latency` from receive to send.
    pub fn record(&self, latency: Duration, count: u64) {
        let ms = usize::try_from(latency.as_millis())
            .unwrap_or(usize::MAX)
            .min(LATENCY_BUCKETS - 1);
        self.buckets[ms].fetch_add(count, Ordering::Relaxed);
    }

    /// The latency under which `quantile` (0..=1) of the recorded documents fall, if any.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_millis(ms as u64 + 1));
            }
        }
        None
    }
}

/// Every counter of the daemon. Shared by all stages through an `Arc`.
#[derive(Default)]
pub struct Counters {
    /// Datagrams received on the UDP socket.
    pub received: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Documents in which the scrubber rewrote something.
    pub scrubbed_documents: AtomicU64,
    /// Documents the scrubber's text pass handed to the `Value` walk.
    pub scrub_fallbacks: AtomicU64,
    scrubbed: Mutex<BTreeMap<String, u64>>,
    /// Documents accepted into the buffer.
    pub accepted: AtomicU64,
    /// Documents currently held in memory.
    pub buffered_documents: AtomicU64,
    /// Documents the collector accepted on the first delivery.
    pub sent: AtomicU64,
    /// Batches the collector accepted.
    pub batches_sent: AtomicU64,
    /// Requests retried after a failure.
    pub retried: AtomicU64,
    /// Documents written to the disk spool.
    pub spooled: AtomicU64,
    /// Documents replayed from the spool to the collector.
    pub replayed: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    backend_errors: [AtomicU64; BackendError::ALL.len()],
    /// Documents the collector listed in `UnprocessedTraceSegments`.
    pub unprocessed: AtomicU64,
    /// Bytes currently in the spool.
    pub spool_bytes: AtomicU64,
    /// Spool files moved to quarantine (unreadable or cut short), and what they held.
    pub quarantined: Quarantine,
    /// Whole requests the collector refused (4xx but 429), by HTTP status.
    refusals: Mutex<BTreeMap<u16, u64>>,
    /// The status of the collector's last answer if it was a refusal, 0 once it accepts.
    pub refusing_status: AtomicU64,
    /// Panics caught in processing workers.
    pub worker_panics: AtomicU64,
    /// OTLP spans received (`/v1/traces`).
    pub otlp_spans: AtomicU64,
    /// OTLP spans that could not become documents (bad ids, no start time).
    pub otlp_spans_rejected: AtomicU64,
    /// OTLP spans of requests refused whole (unreadable, or the buffer full: the sender
    /// retries those).
    pub otlp_spans_refused: AtomicU64,
    /// OTLP requests answered with an error (unreadable body, wrong content type or
    /// encoding, too large, buffer full).
    pub otlp_requests_refused: AtomicU64,
    /// Receive-to-send latency of delivered documents.
    pub latency: LatencyHistogram,
}

/// Spool files moved to quarantine, and the documents and bytes they held.
#[derive(Default)]
pub struct Quarantine {
    /// Files.
    pub files: AtomicU64,
    /// Documents (as the files' names say).
    pub documents: AtomicU64,
    /// Bytes.
    pub bytes: AtomicU64,
}

impl Quarantine {
    /// Adds what one move to quarantine took.
    pub fn add(&self, moved: crate::spool::Quarantined) {
        self.files.fetch_add(moved.files, Ordering::Relaxed);
        self.documents.fetch_add(moved.documents, Ordering::Relaxed);
        self.bytes.fetch_add(moved.bytes, Ordering::Relaxed);
    }
}

fn index_of<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

impl Counters {
    /// Counts one rejected datagram.
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[index_of(&RejectReason::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Rejected datagrams for one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[index_of(&RejectReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    /// Rejected datagrams, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts `count` dropped documents.
    pub fn drop_documents(&self, reason: DropReason, count: u64) {
        self.dropped[index_of(&DropReason::ALL, &reason)].fetch_add(count, Ordering::Relaxed);
    }

    /// Dropped documents for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[index_of(&DropReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    /// Dropped documents, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Counts one failed exchange with the collector.
    pub fn backend_error(&self, kind: BackendError) {
        self.backend_errors[index_of(&BackendError::ALL, &kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed exchanges of one kind.
    pub fn backend_errors(&self, kind: BackendError) -> u64 {
        self.backend_errors[index_of(&BackendError::ALL, &kind)].load(Ordering::Relaxed)
    }

    /// Counts one whole request the collector refused with `status`, or (`None`) notes that it
    /// accepted one.
    pub fn collector_answered(&self, refused: Option<u16>) {
        self.refusing_status
            .store(refused.map_or(0, u64::from), Ordering::Relaxed);
        if let Some(status) = refused
            && let Ok(mut map) = self.refusals.lock()
        {
            *map.entry(status).or_default() += 1;
        }
    }

    /// Whole requests refused, by HTTP status.
    pub fn refusals(&self) -> Vec<(u16, u64)> {
        self.refusals
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Adds a scrub pass's per-detector counts.
    pub fn add_scrubbed<'a>(&self, by_detector: impl IntoIterator<Item = (&'a str, u64)>) {
        self.add_scrubbed_documents(1, by_detector);
    }

    /// Adds the per-detector counts of `documents` scrubbed documents at once.
    pub fn add_scrubbed_documents<'a>(
        &self,
        documents: u64,
        by_detector: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.scrubbed_documents
            .fetch_add(documents, Ordering::Relaxed);
        let Ok(mut map) = self.scrubbed.lock() else {
            return;
        };
        for (name, n) in by_detector {
            if let Some(v) = map.get_mut(name) {
                *v += n;
            } else {
                map.insert(name.to_owned(), n);
            }
        }
    }

    /// Per-detector scrub counts so far.
    pub fn scrubbed_by_detector(&self) -> Vec<(String, u64)> {
        self.scrubbed
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Renders every counter in the Prometheus text exposition format.
    pub fn render_prometheus(&self, buffered_bytes: u64, buffer_limit_bytes: u64) -> String {
        let mut out = Exposition::new("roentgen_daemon_");
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counter = Kind::Counter;
        let gauge = Kind::Gauge;
        out.single(
            "received_total",
            "Datagrams received on the UDP socket.",
            counter,
            load(&self.received),
        );
        out.family(
            "rejected_total",
            "Datagrams rejected as malformed, by reason.",
            counter,
        );
        for r in RejectReason::ALL {
            out.sample(
                "rejected_total",
                &[("reason", r.as_str())],
                self.rejected(r),
            );
        }
        out.single(
            "scrubbed_documents_total",
            "Documents in which the scrubber rewrote personal data.",
            counter,
            load(&self.scrubbed_documents),
        );
        out.single(
            "scrub_value_fallbacks_total",
            "Documents the text pass could not rewrite in place (a drop action, a map key to rewrite, not JSON), scrubbed as a parsed value instead.",
            counter,
            load(&self.scrub_fallbacks),
        );
        out.family(
            "scrubbed_total",
            "Values rewritten by the scrubber, by detector.",
            counter,
        );
        for (detector, n) in self.scrubbed_by_detector() {
            out.sample("scrubbed_total", &[("detector", &detector)], n);
        }
        out.single(
            "accepted_total",
            "Documents accepted into the buffer.",
            counter,
            load(&self.accepted),
        );
        out.single(
            "buffered_documents",
            "Documents held in memory now.",
            gauge,
            load(&self.buffered_documents),
        );
        out.single(
            "buffered_bytes",
            "Bytes of documents held in memory now.",
            gauge,
            buffered_bytes,
        );
        out.single(
            "buffer_limit_bytes",
            "The configured memory bound (--buffer-memory-mb).",
            gauge,
            buffer_limit_bytes,
        );
        out.single(
            "sent_total",
            "Documents delivered to the collector directly.",
            counter,
            load(&self.sent),
        );
        out.single(
            "batches_sent_total",
            "PutTraceSegments requests the collector accepted.",
            counter,
            load(&self.batches_sent),
        );
        out.single(
            "retried_total",
            "Requests to the collector retried after a failure.",
            counter,
            load(&self.retried),
        );
        out.single(
            "spooled_total",
            "Documents written to the disk spool.",
            counter,
            load(&self.spooled),
        );
        out.single(
            "spool_bytes",
            "Bytes in the disk spool now.",
            gauge,
            load(&self.spool_bytes),
        );
        out.single(
            "spool_quarantined_files_total",
            "Spool files moved to quarantine/ (damaged or cut short), never deleted.",
            counter,
            load(&self.quarantined.files),
        );
        out.single(
            "spool_quarantined_documents_total",
            "Documents in the spool files moved to quarantine/.",
            counter,
            load(&self.quarantined.documents),
        );
        out.single(
            "spool_quarantined_bytes_total",
            "Bytes of the spool files moved to quarantine/.",
            counter,
            load(&self.quarantined.bytes),
        );
        out.single(
            "replayed_total",
            "Documents replayed from the spool to the collector.",
            counter,
            load(&self.replayed),
        );
        out.family("dropped_total", "Documents dropped, by reason.", counter);
        for r in DropReason::ALL {
            out.sample("dropped_total", &[("reason", r.as_str())], self.dropped(r));
        }
        out.family(
            "backend_errors_total",
            "Failed exchanges with the collector, by kind.",
            counter,
        );
        for k in BackendError::ALL {
            out.sample(
                "backend_errors_total",
                &[("kind", k.as_str())],
                self.backend_errors(k),
            );
        }
        out.family(
            "collector_refusals_total",
            "Whole requests the collector refused (4xx but 429), by status; the batches are kept.",
            counter,
        );
        for (status, n) in self.refusals() {
            out.sample(
                "collector_refusals_total",
                &[("status", &status.to_string())],
                n,
            );
        }
        out.single(
            "collector_refusing_status",
            "HTTP status of the collector's last answer if it refused the request, else 0.",
            gauge,
            load(&self.refusing_status),
        );
        out.single(
            "worker_panics_total",
            "Panics caught in processing workers (the datagram is dropped, the worker goes on).",
            counter,
            load(&self.worker_panics),
        );
        out.single(
            "otlp_spans_total",
            "OTLP spans received on the OTLP/HTTP listener.",
            counter,
            load(&self.otlp_spans),
        );
        out.single(
            "otlp_spans_rejected_total",
            "OTLP spans that could not become X-Ray documents (bad ids, no start time).",
            counter,
            load(&self.otlp_spans_rejected),
        );
        out.single(
            "otlp_spans_refused_total",
            "OTLP spans of requests refused whole (unreadable, or the buffer full: retried by the sender).",
            counter,
            load(&self.otlp_spans_refused),
        );
        out.single(
            "otlp_requests_refused_total",
            "OTLP requests answered with an error (unreadable, wrong type or encoding, too large, buffer full).",
            counter,
            load(&self.otlp_requests_refused),
        );
        out.single(
            "unprocessed_total",
            "Documents the collector listed in UnprocessedTraceSegments.",
            counter,
            load(&self.unprocessed),
        );
        out.family(
            "receive_to_send_milliseconds",
            "Time from receiving a datagram to the collector accepting it (1 ms buckets).",
            Kind::Summary,
        );
        for q in [0.5, 0.99] {
            if let Some(d) = self.latency.quantile(q) {
                let label = q.to_string();
                out.sample(
                    "receive_to_send_milliseconds",
                    &[("quantile", &label)],
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                );
            }
        }
        out.finish()
    }
}

/// A log line that is written at most once per interval; the lines suppressed in between are
/// counted and reported with the next one.
pub struct RateLimit {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    /// A limiter allowing one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Returns `Some(suppressed)` when a line may be written now, with the number of lines
    /// suppressed since the last one.
    pub fn check(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.99), None);
        h.record(Duration::from_millis(3), 98);
        h.record(Duration::from_millis(500), 2);
        assert_eq!(h.quantile(0.5), Some(Duration::from_millis(4)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_millis(501)));
        h.record(Duration::from_secs(3600), 1);
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(60_001)));
    }

    #[test]
    fn prometheus_text_names_every_reason() {
        let c = Counters::default();
        c.reject(RejectReason::BadId);
        c.reject(RejectReason::BadId);
        c.drop_documents(DropReason::BufferFull, 7);
        c.add_scrubbed([("email", 2)]);
        let text = c.render_prometheus(10, 20);
        assert!(text.contains("roentgen_daemon_rejected_total{reason=\"bad_id\"} 2"));
        assert!(text.contains("roentgen_daemon_rejected_total{reason=\"oversize\"} 0"));
        assert!(text.contains("roentgen_daemon_dropped_total{reason=\"buffer_full\"} 7"));
        assert!(text.contains("roentgen_daemon_scrubbed_total{detector=\"email\"} 2"));
        assert!(text.contains("roentgen_daemon_buffered_bytes 10"));
        assert_eq!(c.rejected_total(), 2);

        c.collector_answered(Some(401));
        c.collector_answered(Some(401));
        c.collector_answered(Some(404));
        let text = c.render_prometheus(10, 20);
        assert!(text.contains("roentgen_daemon_collector_refusals_total{status=\"401\"} 2"));
        assert!(text.contains("roentgen_daemon_collector_refusing_status 404"));
        c.collector_answered(None);
        let text = c.render_prometheus(10, 20);
        assert!(text.contains("roentgen_daemon_collector_refusing_status 0"));
        assert!(text.contains("roentgen_daemon_collector_refusals_total{status=\"404\"} 1"));
    }

    #[test]
    fn rate_limit_counts_suppressed_lines() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r0 = RateLimit::new(Duration::ZERO);
        assert_eq!(r0.check(), Some(0));
        assert_eq!(r0.check(), Some(0));
    }
}
