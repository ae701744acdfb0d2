//! Replaying the spool: oldest files first, one at a time while the collector is down (a
//! probe), up to `senders` at a time once it accepts again. File reads, writes and renames run
//! on the blocking pool, never on the runtime's workers.
//!
//! A file is removed only once the collector took it. A damaged file is quarantined and
//! counted; a file the collector says is too large is split into two new files; documents left
//! unprocessed but retryable are spooled again as a new file. Only when no file of a round got
//! through does the next round wait (back-off), so one refused file does not slow the others.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Forwarder, backoff};
use crate::batcher::Batch;
use crate::spool::{Entry, Spool, SpoolError};
use crate::telemetry::DropReason;

/// How replaying one file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replayed {
    /// Delivered, split, or quarantined: the file is gone from the spool.
    Done,
    /// Some of it was delivered; the rest went back to the spool.
    Partly,
    /// The file stays; try again later.
    Failed,
}

/// Runs blocking spool work on the blocking pool.
async fn blocking<T: Send + 'static>(
    spool: &Arc<Spool>,
    work: impl FnOnce(&Spool) -> T + Send + 'static,
) -> Option<T> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || work(&spool)).await.ok()
}

impl Forwarder {
    /// Replays the spool until `stop` turns true.
    pub async fn run_replay(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let width = if self.collector_up() {
                self.settings.senders.max(1)
            } else {
                1
            };
            let claimed = spool.claim_oldest(width);
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.spooled.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
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
            let mut round = JoinSet::new();
            for entry in claimed {
                let me = self.clone();
                let spool = spool.clone();
                let stop = stop.clone();
                round.spawn(async move { me.replay_one(&spool, entry, stop).await });
            }
            let (mut progressed, mut partial) = (false, false);
            while let Some(outcome) = round.join_next().await {
                match outcome {
                    Ok(Replayed::Done) => progressed = true,
                    Ok(Replayed::Partly) => partial = true,
                    Ok(Replayed::Failed) | Err(_) => {}
                }
            }
            attempt = if progressed && !partial {
                0
            } else {
                attempt + 1
            };
            self.counters
                .spool_bytes
                .store(spool.used_bytes(), Ordering::Relaxed);
        }
    }

    async fn replay_one(
        &self,
        spool: &Arc<Spool>,
        entry: Entry,
        mut stop: watch::Receiver<bool>,
    ) -> Replayed {
        let body = match blocking(spool, move |s| s.read(&entry)).await {
            Some(Ok(body)) => body,
            Some(Err(SpoolError::Corrupt { file, reason })) => {
                tracing::error!(
                    file = %file.display(),
                    %reason,
                    documents = entry.documents,
                    "damaged spool file moved to quarantine/ (not deleted)"
                );
                return self.quarantine(spool, entry).await;
            }
            Some(Err(SpoolError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::error!(
                    seq = entry.seq,
                    documents = entry.documents,
                    "a spool file was removed outside the daemon; its documents are lost"
                );
                self.counters
                    .drop_documents(DropReason::SpoolFileMissing, entry.documents);
                let _ = blocking(spool, move |s| s.remove(&entry)).await;
                return Replayed::Done;
            }
            Some(Err(error)) => {
                tracing::error!(%error, seq = entry.seq, "cannot read a spool file; will retry");
                spool.release(&entry);
                return Replayed::Failed;
            }
            None => {
                spool.release(&entry);
                return Replayed::Failed;
            }
        };
        let result = tokio::select! {
            r = self.post(body.clone()) => r,
            _ = stop.wait_for(|s| *s) => {
                spool.release(&entry);
                return Replayed::Failed;
            }
        };
        match result {
            Ok(unprocessed) => {
                self.set_up(true);
                self.counters.collector_answered(None);
                let mut outcome = Replayed::Done;
                let mut replayed = entry.documents;
                if !unprocessed.is_empty() {
                    let retry = self.sort_unprocessed(&unprocessed);
                    replayed = replayed.saturating_sub(unprocessed.len() as u64);
                    if !retry.is_empty() {
                        let keep = |_: usize, d: &crate::batcher::DocEntry| retry.contains(&d.id);
                        if !self.respool(spool, &body, keep, "unprocessed").await {
                            // The whole file is sent again later: a duplicate replaces itself
                            // in the store, a lost document would not come back.
                            spool.release(&entry);
                            return Replayed::Failed;
                        }
                        outcome = Replayed::Partly;
                    }
                }
                self.counters
                    .replayed
                    .fetch_add(replayed, Ordering::Relaxed);
                self.remove(spool, entry).await;
                outcome
            }
            Err(error) if error.too_large() && entry.documents > 1 => {
                self.note_failure(&error, entry.documents, 1);
                let half = usize::try_from(entry.documents / 2).unwrap_or(usize::MAX);
                let first = self
                    .respool(spool, &body, |i, _| i < half, "first half")
                    .await;
                let second = self
                    .respool(spool, &body, |i, _| i >= half, "second half")
                    .await;
                if first && second {
                    self.remove(spool, entry).await;
                    Replayed::Done
                } else {
                    spool.release(&entry);
                    Replayed::Failed
                }
            }
            Err(error) => {
                self.set_up(false);
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                self.note_failure(&error, entry.documents, 1);
                spool.release(&entry);
                Replayed::Failed
            }
        }
    }

    /// Spools again the documents of `body` that `keep` accepts; true when written (or none).
    async fn respool(
        &self,
        spool: &Arc<Spool>,
        body: &[u8],
        keep: impl FnMut(usize, &crate::batcher::DocEntry) -> bool,
        what: &'static str,
    ) -> bool {
        let Ok(batch) = Batch::from_body(body, Instant::now()) else {
            return false;
        };
        let part = batch.subset(keep);
        if part.is_empty() {
            return true;
        }
        let documents = part.len() as u64;
        let part_body = part.body();
        match blocking(spool, move |s| s.write(&part_body, documents)).await {
            Some(Ok(_)) => true,
            Some(Err(error)) => {
                tracing::error!(%error, documents, what, "cannot spool part of a replayed file; the file stays");
                false
            }
            None => false,
        }
    }

    async fn remove(&self, spool: &Arc<Spool>, entry: Entry) {
        if let Some(Err(error)) = blocking(spool, move |s| s.remove(&entry)).await {
            tracing::error!(%error, "cannot remove a replayed spool file");
        }
    }

    async fn quarantine(&self, spool: &Arc<Spool>, entry: Entry) -> Replayed {
        match blocking(spool, move |s| s.quarantine(&entry)).await {
            Some(Ok(moved)) => {
                self.counters.quarantined.add(moved);
                Replayed::Done
            }
            Some(Err(error)) => {
                tracing::error!(%error, "cannot move a damaged spool file to quarantine/; it stays");
                spool.release(&entry);
                Replayed::Failed
            }
            None => {
                spool.release(&entry);
                Replayed::Failed
            }
        }
    }
}
