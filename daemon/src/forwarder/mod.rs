//! The forwarder: a few concurrent senders posting batches to the collector as
//! `PutTraceSegments`, retrying with exponential back-off and jitter, honouring
//! `UnprocessedTraceSegments`, spooling to disk while the collector is unreachable or refusing,
//! and replaying the spool, several files at a time, when it is back.
//!
//! Policy when things go wrong (what an answer means is [`answer`]'s one rule):
//! - every whole-request failure keeps the batch: connection errors, timeouts, 5xx, a 2xx
//!   that is not an X-Ray answer, and every 4xx. After `spool_after_attempts` failures the
//!   collector is deemed down and batches go to the spool (if configured) until a replay
//!   succeeds; without a spool they wait in memory (the memory bound applies), retried with
//!   back-off;
//! - a 4xx but 429 is a refusal the operator must fix: logged at error level once a minute
//!   with a hint, and shown as `collector_refusals_total{status}` and
//!   `collector_refusing_status`; a 413 splits the batch and retries the halves;
//! - documents the collector leaves unprocessed but retryable are retried with the same
//!   bound, then spooled; only a non-retryable entry is final, counted as
//!   `dropped{reason="collector_refused"}` and logged;
//! - after the shutdown deadline, whatever is left is spooled, or dropped and counted.

pub mod answer;
pub mod client;
mod replay;
pub mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use roentgen_sdk::model::SegmentId;
use roentgen_sdk::scrub::log_safe;
use tokio::sync::{Notify, Semaphore, mpsc::UnboundedReceiver, watch};

pub use answer::{SendError, Unprocessed, refusal_hint};

use crate::batcher::Batch;
use crate::memory::MemoryBudget;
use crate::spool::{Spool, SpoolError};
use crate::telemetry::{BackendError, Counters, DropReason, RateLimit};

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
    refusal_log: RateLimit,
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
            refusal_log: RateLimit::new(Duration::from_secs(60)),
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
                tracing::info!("collector accepting batches again");
            } else {
                tracing::warn!(
                    spool = self.spool.is_some(),
                    "collector unreachable or refusing; holding batches in the spool or in memory"
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
            refused: None,
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
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(classify)?;
        answer::read(status, &bytes)
    }

    /// Counts a failed exchange, and logs it: a refusal loudly once a minute, anything else
    /// as a retry every 10 s.
    fn note_failure(&self, error: &SendError, documents: u64, attempt: u32) {
        self.counters.backend_error(error.kind);
        self.counters.collector_answered(error.refused);
        if let Some(status) = error.refused {
            if let Some(suppressed) = self.refusal_log.check() {
                tracing::error!(
                    status,
                    %error,
                    hint = refusal_hint(status),
                    documents,
                    attempt,
                    suppressed_since_last = suppressed,
                    "the collector refuses the request; the batch is kept (retried, then spooled), nothing is dropped"
                );
            }
        } else if let Some(suppressed) = self.fail_log.check() {
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
                detail = %log_safe(what),
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

    /// Writes a batch to the spool on the blocking pool; false if there is no spool or it
    /// cannot take the batch.
    async fn try_spool(&self, batch: &Batch) -> bool {
        let Some(spool) = self.spool.clone() else {
            return false;
        };
        let body = batch.body();
        let documents = batch.len() as u64;
        let written =
            tokio::task::spawn_blocking(move || spool.write(&body, documents).map(|_| spool)).await;
        match written {
            Ok(Ok(spool)) => {
                self.counters
                    .spooled
                    .fetch_add(documents, Ordering::Relaxed);
                self.counters
                    .spool_bytes
                    .store(spool.used_bytes(), Ordering::Relaxed);
                self.spooled.notify_one();
                true
            }
            Ok(Err(error @ SpoolError::Full { .. })) => {
                if let Some(suppressed) = self.fail_log.check() {
                    tracing::warn!(%error, suppressed_since_last = suppressed, "spool full; batch stays in memory");
                }
                false
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot write to the spool; batch stays in memory");
                false
            }
            Err(error) => {
                tracing::error!(%error, "spool write did not finish; batch stays in memory");
                false
            }
        }
    }

    /// Delivers one batch: sends, retries, splits, spools or (only past the shutdown
    /// deadline, or on the collector's per-document refusal) drops; then releases its memory.
    pub async fn deliver(&self, batch: Batch) {
        let documents = batch.len() as u64;
        let charged = batch.charged;
        // A 413 splits a batch: the halves wait here, first half on top.
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            if let Some([first, second]) = self.deliver_one(batch).await {
                pending.push(second);
                pending.push(first);
            }
        }
        self.budget.release(charged);
        self.counters
            .buffered_documents
            .fetch_sub(documents, Ordering::Relaxed);
    }

    /// Sends one batch until it is delivered, spooled or dropped; or returns its two halves
    /// when the collector says it is too large.
    async fn deliver_one(&self, mut batch: Batch) -> Option<[Batch; 2]> {
        let mut attempt = 0u32;
        let mut deadline = self.deadline.clone();
        loop {
            let past_deadline = *deadline.borrow();
            if (past_deadline || (!self.collector_up() && self.spool.is_some()))
                && self.try_spool(&batch).await
            {
                return None;
            }
            if past_deadline {
                self.counters
                    .drop_documents(DropReason::Shutdown, batch.len() as u64);
                tracing::error!(
                    documents = batch.len(),
                    "shutdown deadline passed and the spool cannot take the batch; dropped"
                );
                return None;
            }
            let result = tokio::select! {
                r = self.post(batch.body()) => r,
                _ = deadline.wait_for(|d| *d) => continue,
            };
            match result {
                Ok(unprocessed) => {
                    self.set_up(true);
                    self.counters.collector_answered(None);
                    self.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                    let retry = self.count_delivered(&batch, &unprocessed);
                    if retry.is_empty() {
                        return None;
                    }
                    batch = batch.subset(|_, d| retry.contains(&d.id));
                    if batch.is_empty() {
                        return None;
                    }
                    attempt += 1;
                    if attempt >= self.settings.spool_after_attempts && self.try_spool(&batch).await
                    {
                        tracing::warn!(
                            documents = batch.len(),
                            attempt,
                            "documents still unprocessed after retries; spooled"
                        );
                        return None;
                    }
                }
                Err(error) if error.too_large() && batch.len() > 1 => {
                    self.note_failure(&error, batch.len() as u64, attempt);
                    let half = batch.len() / 2;
                    return Some([
                        batch.subset(|i, _| i < half),
                        batch.subset(|i, _| i >= half),
                    ]);
                }
                Err(error) => {
                    attempt += 1;
                    self.note_failure(&error, batch.len() as u64, attempt);
                    if attempt >= self.settings.spool_after_attempts {
                        self.set_up(false);
                        if self.try_spool(&batch).await {
                            return None;
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
    }

    /// Counts the documents of `batch` the collector took (and their latency); returns the
    /// ids to send again.
    fn count_delivered(&self, batch: &Batch, unprocessed: &[Unprocessed]) -> Vec<SegmentId> {
        let retry = if unprocessed.is_empty() {
            Vec::new()
        } else {
            self.sort_unprocessed(unprocessed)
        };
        let failed: Vec<&str> = unprocessed.iter().filter_map(|u| u.id.as_deref()).collect();
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
        retry
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
                let (documents, charged) = (batch.len() as u64, batch.charged);
                let delivery = tokio::spawn({
                    let me = me.clone();
                    async move { me.deliver(batch).await }
                });
                if let Err(error) = delivery.await
                    && error.is_panic()
                {
                    // A bug in delivery: the batch is gone, so say so and give its memory back.
                    me.counters.worker_panics.fetch_add(1, Ordering::Relaxed);
                    me.counters
                        .drop_documents(DropReason::WorkerPanic, documents);
                    me.budget.release(charged);
                    me.counters
                        .buffered_documents
                        .fetch_sub(documents, Ordering::Relaxed);
                    tracing::error!(
                        documents,
                        "delivering a batch panicked; its documents are lost"
                    );
                }
                drop(permit);
            });
        }
        let _ = permits
            .acquire_many(u32::try_from(senders).unwrap_or(u32::MAX))
            .await;
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
}
