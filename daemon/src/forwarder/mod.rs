//! The forwarder: a few concurrent senders posting batches to the collector as
//! `PutTraceSegments`, retrying with exponential back-off and jitter, honouring
//! `UnprocessedTraceSegments`, spooling to disk while the collector is unreachable, and
//! replaying the spool in order when it is back.
//!
//! Policy when things go wrong:
//! - connection errors, timeouts, 429 and 5xx are retried; after `spool_after_attempts`
//!   failures the collector is deemed down and batches go to the spool (if configured) until a
//!   replay succeeds; without a spool they wait in memory, retried with back-off;
//! - other 4xx answers and non-retryable unprocessed entries are the collector's final word:
//!   counted as `dropped{reason="collector_refused"}` and logged;
//! - after the shutdown deadline, whatever is left is spooled, or dropped and counted.

pub mod client;
pub mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use roentgen_sdk::model::SegmentId;
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore, mpsc::UnboundedReceiver, watch};

use crate::batcher::Batch;
use crate::memory::MemoryBudget;
use crate::spool::{Spool, SpoolError};
use crate::telemetry::{BackendError, Counters, DropReason, RateLimit};

/// A failed exchange with the collector.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct SendError {
    /// The X-Ray backend error kind.
    pub kind: BackendError,
    /// Whether trying again may help.
    pub retryable: bool,
    /// What happened.
    pub message: String,
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PutResponse {
    unprocessed_trace_segments: Vec<Unprocessed>,
}

/// A back-off delay for the `attempt`-th retry (1-based): 100 ms doubling up to `max`, with
/// "equal jitter" (half fixed, half random) so senders do not retry in lockstep.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp =
        Duration::from_millis(100).saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1));
    let base = exp.min(max);
    let half = base / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

/// Settings of the forwarder, taken from the [`crate::Config`].
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    /// `POST` target for `PutTraceSegments`.
    pub segments_url: reqwest::Url,
    /// Cap of the back-off.
    pub retry_max_backoff: Duration,
    /// Failed attempts before the collector is deemed down and batches go to the spool.
    pub spool_after_attempts: u32,
    /// Concurrent deliveries.
    pub senders: usize,
    /// Signs each request with SigV4 when set.
    pub credentials: Option<sign::Credentials>,
}

/// The forwarder's shared state.
pub struct Forwarder {
    settings: ForwarderSettings,
    client: reqwest::Client,
    counters: Arc<Counters>,
    budget: Arc<MemoryBudget>,
    spool: Option<Arc<Spool>>,
    collector_up: AtomicBool,
    deadline: watch::Receiver<bool>,
    spooled: Notify,
    fail_log: RateLimit,
    refuse_log: RateLimit,
}

impl Forwarder {
    /// A forwarder; `deadline` turns true when the shutdown deadline has passed.
    pub fn new(
        settings: ForwarderSettings,
        client: reqwest::Client,
        counters: Arc<Counters>,
        budget: Arc<MemoryBudget>,
        spool: Option<Arc<Spool>>,
        deadline: watch::Receiver<bool>,
    ) -> Self {
        Self {
            settings,
            client,
            counters,
            budget,
            spool,
            collector_up: AtomicBool::new(true),
            deadline,
            spooled: Notify::new(),
            fail_log: RateLimit::new(Duration::from_secs(10)),
            refuse_log: RateLimit::new(Duration::from_secs(10)),
        }
    }

    /// Whether the last exchange with the collector succeeded.
    pub fn collector_up(&self) -> bool {
        self.collector_up.load(Ordering::Acquire)
    }

    fn set_up(&self, up: bool) {
        let was = self.collector_up.swap(up, Ordering::AcqRel);
        if was != up {
            if up {
                tracing::info!("collector reachable again");
            } else {
                tracing::warn!(
                    spool = self.spool.is_some(),
                    "collector unreachable; holding batches in the spool or in memory"
                );
            }
        }
    }

    /// Posts one `PutTraceSegments` body; returns the unprocessed entries.
    pub async fn post(&self, body: Vec<u8>) -> Result<Vec<Unprocessed>, SendError> {
        let classify = |e: reqwest::Error| SendError {
            kind: if e.is_timeout() {
                BackendError::Timeout
            } else if e.is_connect() {
                BackendError::ConnectionRefused
            } else {
                BackendError::Other
            },
            retryable: true,
            message: client::error_chain(&e),
        };
        let response = sign::post(
            &self.client,
            &self.settings.segments_url,
            self.settings.credentials.as_ref(),
            "application/json",
            body,
        )
        .send()
        .await
        .map_err(classify)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(classify)?;
        if status.is_success() {
            let parsed: PutResponse = serde_json::from_slice(&bytes).unwrap_or_default();
            return Ok(parsed.unprocessed_trace_segments);
        }
        let message = format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        if status.as_u16() == 429 {
            Err(SendError {
                kind: BackendError::Http4xx,
                retryable: true,
                message,
            })
        } else if status.is_server_error() {
            Err(SendError {
                kind: BackendError::Http5xx,
                retryable: true,
                message,
            })
        } else {
            Err(SendError {
                kind: BackendError::Http4xx,
                retryable: false,
                message,
            })
        }
    }

    fn log_failure(&self, error: &SendError, documents: usize, attempt: u32) {
        if let Some(suppressed) = self.fail_log.check() {
            tracing::warn!(
                %error,
                documents,
                attempt,
                suppressed_since_last = suppressed,
                "sending to the collector failed; will retry"
            );
        }
    }

    fn log_refused(&self, what: &dyn std::fmt::Display, documents: u64) {
        if let Some(suppressed) = self.refuse_log.check() {
            tracing::error!(
                detail = %what,
                documents,
                suppressed_since_last = suppressed,
                "collector refused documents; dropped"
            );
        }
    }

    /// Splits unprocessed entries into retryable ids, counting and logging the rest as refused.
    fn sort_unprocessed(&self, unprocessed: &[Unprocessed]) -> Vec<SegmentId> {
        self.counters
            .unprocessed
            .fetch_add(unprocessed.len() as u64, Ordering::Relaxed);
        let mut retry = Vec::new();
        for u in unprocessed {
            if u.retryable() {
                if let Some(id) = u.id.as_deref().and_then(|s| s.parse().ok()) {
                    retry.push(id);
                }
            } else {
                self.counters
                    .drop_documents(DropReason::CollectorRefused, 1);
                self.log_refused(
                    &format_args!(
                        "id={} code={} message={}",
                        u.id.as_deref().unwrap_or("?"),
                        u.error_code.as_deref().unwrap_or("?"),
                        u.message.as_deref().unwrap_or("")
                    ),
                    1,
                );
            }
        }
        retry
    }

    /// Writes a batch to the spool; false if there is no spool or it cannot take the batch.
    fn try_spool(&self, batch: &Batch) -> bool {
        let Some(spool) = &self.spool else {
            return false;
        };
        match spool.write(&batch.body(), batch.len() as u64) {
            Ok(_) => {
                self.counters
                    .spooled
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.counters
                    .spool_bytes
                    .store(spool.used_bytes(), Ordering::Relaxed);
                self.spooled.notify_one();
                true
            }
            Err(error @ SpoolError::Full { .. }) => {
                if let Some(suppressed) = self.fail_log.check() {
                    tracing::warn!(%error, suppressed_since_last = suppressed, "spool full; batch stays in memory");
                }
                false
            }
            Err(error) => {
                tracing::error!(%error, "cannot write to the spool; batch stays in memory");
                false
            }
        }
    }

    /// Delivers one batch: sends, retries, spools or (only past the shutdown deadline, or on
    /// the collector's refusal) drops; then releases its memory.
    pub async fn deliver(&self, batch: Batch) {
        let documents = batch.len() as u64;
        let charged = batch.charged;
        let mut batch = batch;
        let mut attempt = 0u32;
        let mut deadline = self.deadline.clone();
        loop {
            let past_deadline = *deadline.borrow();
            if (past_deadline || (!self.collector_up() && self.spool.is_some()))
                && self.try_spool(&batch)
            {
                break;
            }
            if past_deadline {
                self.counters
                    .drop_documents(DropReason::Shutdown, batch.len() as u64);
                tracing::error!(
                    documents = batch.len(),
                    "shutdown deadline passed and the spool cannot take the batch; dropped"
                );
                break;
            }
            let result = tokio::select! {
                r = self.post(batch.body()) => r,
                _ = deadline.wait_for(|d| *d) => continue,
            };
            match result {
                Ok(unprocessed) => {
                    self.set_up(true);
                    self.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                    let retry = if unprocessed.is_empty() {
                        Vec::new()
                    } else {
                        self.sort_unprocessed(&unprocessed)
                    };
                    let failed: Vec<&str> =
                        unprocessed.iter().filter_map(|u| u.id.as_deref()).collect();
                    let now = Instant::now();
                    let mut delivered = 0u64;
                    for d in batch.docs() {
                        if !failed.is_empty() && failed.contains(&d.id.to_string().as_str()) {
                            continue;
                        }
                        delivered += 1;
                        self.counters
                            .latency
                            .record(now.duration_since(d.received_at), 1);
                    }
                    self.counters.sent.fetch_add(delivered, Ordering::Relaxed);
                    if retry.is_empty() {
                        break;
                    }
                    batch = batch.subset(|_, d| retry.contains(&d.id));
                    if batch.is_empty() {
                        break;
                    }
                    attempt += 1;
                }
                Err(error) if !error.retryable => {
                    self.counters.backend_error(error.kind);
                    self.counters
                        .drop_documents(DropReason::CollectorRefused, batch.len() as u64);
                    self.log_refused(&error, batch.len() as u64);
                    break;
                }
                Err(error) => {
                    self.counters.backend_error(error.kind);
                    attempt += 1;
                    self.log_failure(&error, batch.len(), attempt);
                    if attempt >= self.settings.spool_after_attempts {
                        self.set_up(false);
                        if self.try_spool(&batch) {
                            break;
                        }
                    }
                }
            }
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            let pause = backoff(attempt, self.settings.retry_max_backoff);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = deadline.wait_for(|d| *d) => {}
            }
        }
        self.budget.release(charged);
        self.counters
            .buffered_documents
            .fetch_sub(documents, Ordering::Relaxed);
    }

    /// Takes closed batches and delivers them with at most `senders` in flight; returns when
    /// the input is closed and every delivery is finished.
    pub async fn run_dispatcher(self: Arc<Self>, mut input: UnboundedReceiver<Batch>) {
        let senders = self.settings.senders;
        let permits = Arc::new(Semaphore::new(senders));
        while let Some(batch) = input.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.deliver(batch).await;
                drop(permit);
            });
        }
        let _ = permits
            .acquire_many(u32::try_from(senders).unwrap_or(u32::MAX))
            .await;
    }

    /// Replays the spool, oldest batch first, until `stop` turns true. A batch is removed only
    /// once the collector accepted it.
    pub async fn run_replay(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let Some(entry) = spool.oldest() else {
                tokio::select! {
                    _ = self.spooled.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            };
            if attempt == 0 && !self.collector_up() {
                // Newly spooled because the collector is down: wait a moment before probing.
                attempt = 1;
            }
            if attempt > 0 {
                let pause = backoff(attempt, self.settings.retry_max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            let body = match spool.read(&entry) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, seq = entry.seq, "unreadable spool file skipped");
                    let _ = spool.remove(&entry);
                    continue;
                }
            };
            let result = tokio::select! {
                r = self.post(body.clone()) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match result {
                Ok(unprocessed) => {
                    self.set_up(true);
                    attempt = 0;
                    let mut replayed = entry.documents;
                    if !unprocessed.is_empty() {
                        let retry = self.sort_unprocessed(&unprocessed);
                        replayed = replayed.saturating_sub(unprocessed.len() as u64);
                        if !retry.is_empty()
                            && let Ok(batch) = Batch::from_body(&body, Instant::now())
                        {
                            let again = batch.subset(|_, d| retry.contains(&d.id));
                            if let Err(error) = spool.write(&again.body(), again.len() as u64) {
                                tracing::error!(%error, documents = again.len(), "cannot re-spool unprocessed documents; dropped");
                                self.counters.drop_documents(
                                    DropReason::CollectorRefused,
                                    again.len() as u64,
                                );
                            }
                        }
                    }
                    self.counters
                        .replayed
                        .fetch_add(replayed, Ordering::Relaxed);
                    if let Err(error) = spool.remove(&entry) {
                        tracing::error!(%error, "cannot remove a replayed spool file");
                    }
                }
                Err(error) if !error.retryable => {
                    self.counters.backend_error(error.kind);
                    self.counters
                        .drop_documents(DropReason::CollectorRefused, entry.documents);
                    self.log_refused(&error, entry.documents);
                    let _ = spool.remove(&entry);
                }
                Err(error) => {
                    self.counters.backend_error(error.kind);
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    self.set_up(false);
                    attempt += 1;
                    self.log_failure(
                        &error,
                        usize::try_from(entry.documents).unwrap_or(0),
                        attempt,
                    );
                }
            }
            self.counters
                .spool_bytes
                .store(spool.used_bytes(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let max = Duration::from_secs(2);
        for attempt in 1..30 {
            let d = backoff(attempt, max);
            let base = Duration::from_millis(100)
                .saturating_mul(1 << (attempt.min(20) - 1))
                .min(max);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }

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
        let parsed: PutResponse = serde_json::from_str(
            r#"{"UnprocessedTraceSegments":[{"Id":"a","ErrorCode":"X","Message":"m"}]}"#,
        )
        .unwrap();
        assert_eq!(parsed.unprocessed_trace_segments.len(), 1);
    }
}
