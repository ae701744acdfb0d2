//! Retention: a background task that deletes traces older than the window in small
//! transactions, so ingest batches interleave with it instead of waiting behind one big delete.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;
use crate::store::now_seconds;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::test_support::{prepared, scan_all};

    #[tokio::test]
    async fn sweep_deletes_only_traces_older_than_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let now = now_seconds();
        let mut docs = Vec::new();
        // 2,500 old traces (more than one step) and 3 recent ones.
        for n in 0..2_500 {
            docs.extend(crate::synth::shop_trace(
                n,
                now - 40.0 * 86_400.0 + n as f64,
            ));
        }
        for n in 10_000..10_003 {
            docs.extend(crate::synth::shop_trace(n, now - 3600.0));
        }
        store.put_documents(prepared(&docs)).await.unwrap();
        let deleted = sweep(&store, Duration::from_secs(30 * 86_400)).await;
        assert_eq!(deleted, 2_500);
        let left = store
            .scan_traces(scan_all(0.0, now + 1.0, vec![], 100, false))
            .await
            .unwrap();
        assert_eq!(left.len(), 3);
        assert_eq!(sweep(&store, Duration::from_secs(30 * 86_400)).await, 0);
    }
}
