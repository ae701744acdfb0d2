//! The end-of-run report, the once-a-minute summary log line, and `PutTelemetryRecords`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::watch;

use super::{BackendError, Counters, DropReason};
use crate::forwarder::client::error_chain;
use crate::forwarder::sign::{Credentials, post};
use crate::memory::MemoryBudget;

/// A snapshot of the daemon's main counters (documents unless said otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams rejected as malformed.
    pub rejected: u64,
    /// Documents accepted into the buffer.
    pub accepted: u64,
    /// Documents delivered directly.
    pub sent: u64,
    /// Documents written to the spool.
    pub spooled: u64,
    /// Documents replayed from the spool.
    pub replayed: u64,
    /// Documents dropped (all reasons).
    pub dropped: u64,
    /// Requests retried.
    pub retried: u64,
    /// Failed exchanges with the collector.
    pub backend_errors: u64,
    /// Documents the collector listed as unprocessed.
    pub unprocessed: u64,
    /// Documents still held in memory.
    pub buffered: u64,
}

impl Report {
    /// Takes a snapshot of `counters`.
    pub fn from_counters(counters: &Counters) -> Self {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Self {
            received: load(&counters.received),
            rejected: counters.rejected_total(),
            accepted: load(&counters.accepted),
            sent: load(&counters.sent),
            spooled: load(&counters.spooled),
            replayed: load(&counters.replayed),
            dropped: counters.dropped_total(),
            retried: load(&counters.retried),
            backend_errors: BackendError::ALL
                .iter()
                .map(|k| counters.backend_errors(*k))
                .sum(),
            unprocessed: load(&counters.unprocessed),
            buffered: load(&counters.buffered_documents),
        }
    }

    /// The report as `key=value` fields, as printed in the daemon's last stdout line.
    pub fn fields(&self) -> String {
        format!(
            "received={} rejected={} accepted={} sent={} spooled={} replayed={} dropped={} \
             retried={} backend_errors={} unprocessed={} buffered={}",
            self.received,
            self.rejected,
            self.accepted,
            self.sent,
            self.spooled,
            self.replayed,
            self.dropped,
            self.retried,
            self.backend_errors,
            self.unprocessed,
            self.buffered
        )
    }
}

fn delta(now: u64, before: u64) -> u64 {
    now.saturating_sub(before)
}

/// Logs a summary every `interval` and sends the interval's counts to the collector as a
/// `PutTelemetryRecords` request (signed like the data path when `credentials` are given),
/// until `stop` turns true.
pub async fn run_telemetry(
    counters: Arc<Counters>,
    budget: Arc<MemoryBudget>,
    client: reqwest::Client,
    endpoint: reqwest::Url,
    credentials: Option<Credentials>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut previous = Report::default();
    let mut previous_errors = [0u64; BackendError::ALL.len()];
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = Report::from_counters(&counters);
        tracing::info!(
            received = now.received,
            rejected = now.rejected,
            sent = now.sent,
            spooled = now.spooled,
            replayed = now.replayed,
            dropped = now.dropped,
            dropped_buffer_full = counters.dropped(DropReason::BufferFull),
            retried = now.retried,
            backend_errors = now.backend_errors,
            buffered_documents = now.buffered,
            buffered_bytes = budget.used(),
            spool_bytes = counters.spool_bytes.load(Ordering::Relaxed),
            "summary"
        );
        let errors: Vec<u64> = BackendError::ALL
            .iter()
            .map(|k| counters.backend_errors(*k))
            .collect();
        let e = |i: usize| delta(errors[i], previous_errors[i]);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let body = json!({
            "TelemetryRecords": [{
                "Timestamp": timestamp,
                "SegmentsReceivedCount": delta(now.received, previous.received),
                "SegmentsSentCount": delta(now.sent + now.replayed, previous.sent + previous.replayed),
                "SegmentsSpilloverCount": delta(now.spooled + now.dropped, previous.spooled + previous.dropped),
                "SegmentsRejectedCount": delta(now.rejected, previous.rejected),
                "BackendConnectionErrors": {
                    "TimeoutCount": e(0),
                    "ConnectionRefusedCount": e(1),
                    "HTTPCode4XXCount": e(2),
                    "HTTPCode5XXCount": e(3),
                    "UnknownHostCount": 0,
                    "OtherCount": e(4),
                }
            }],
            "Hostname": hostname,
        });
        previous = now;
        for (slot, value) in previous_errors.iter_mut().zip(errors) {
            *slot = value;
        }
        let url = endpoint
            .join("TelemetryRecords")
            .unwrap_or_else(|_| endpoint.clone());
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let request = post(
            &client,
            &url,
            credentials.as_ref(),
            "application/json",
            body,
        );
        match request.send().await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::warn!(status = %resp.status(), "telemetry record refused"),
            Err(error) => {
                tracing::debug!(error = %error_chain(&error), "telemetry record not sent");
            }
        }
    }
}
