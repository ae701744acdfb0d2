//! Retention: a background task that deletes traces older than the window in small
//! transactions, so ingest batches interleave with it instead of waiting behind one big delete.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;
use crate::store::sqlite::now_seconds;

/// Traces deleted per transaction.
pub const TRACES_PER_STEP: usize = 2_000;

/// Deletes everything older than `retention` now, step by step; returns the traces deleted.
pub async fn sweep(store: &dyn Store, retention: Duration) -> usize {
    let cutoff = now_seconds() - retention.as_secs_f64();
    let mut total = 0;
    loop {
        match store.delete_before(cutoff, TRACES_PER_STEP).await {
            Ok(n) => {
                total += n;
                if n < TRACES_PER_STEP {
                    break;
                }
                // Let queued ingest batches in between steps.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention sweep failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted_traces = total, cutoff, "retention sweep");
    }
    total
}

/// Runs [`sweep`] now and then every `every`, forever.
pub async fn run(store: Arc<dyn Store>, retention: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        sweep(store.as_ref(), retention).await;
    }
}
