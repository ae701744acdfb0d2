//! Deferred folds: the SQLite writer commits a batch's documents and marks their traces
//! unfolded (in the `unfolded` table, in the same transaction), and folds them later, together:
//! once the oldest has waited [`FOLD_AFTER`], when [`MAX_UNFOLDED`] are waiting, before any
//! read (so a read sees every acknowledged document), and before the writer stops. A trace
//! whose pieces arrive from several daemons within that time is folded once instead of once
//! per piece. After a crash the table names the traces to fold at start.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::store::live::LiveCounters;

/// Longest a trace's fold waits after its first unfolded piece.
pub(super) const FOLD_AFTER: Duration = Duration::from_secs(1);
/// Traces waiting past which they are folded at once (bounds a read's wait and memory).
pub(super) const MAX_UNFOLDED: usize = 50_000;
/// Most traces folded in one transaction.
pub(super) const FOLD_CHUNK: usize = 5_000;

/// Marks a trace unfolded (in the transaction that commits its documents).
pub(super) const MARK: &str = "INSERT OR IGNORE INTO unfolded (trace_id) VALUES (?1)";
/// Clears the mark (in the transaction that commits its fold).
pub(super) const CLEAR: &str = "DELETE FROM unfolded WHERE trace_id = ?1";

/// The traces whose documents are committed and whose fold waits.
pub(super) struct Unfolded {
    ids: BTreeSet<String>,
    /// Taken to be folded and not yet [`Unfolded::finished`]: still counted as waiting, so
    /// that a read does not pass a fold being written.
    folding: usize,
    since: Option<Instant>,
    counters: Arc<LiveCounters>,
}

impl Unfolded {
    pub(super) fn new(counters: Arc<LiveCounters>) -> Self {
        Self {
            ids: BTreeSet::new(),
            folding: 0,
            since: None,
            counters,
        }
    }

    /// Adds traces whose documents were just committed.
    pub(super) fn add(&mut self, ids: impl IntoIterator<Item = String>) {
        self.ids.extend(ids);
        if !self.ids.is_empty() && self.since.is_none() {
            self.since = Some(Instant::now());
        }
        self.publish();
    }

    /// When the waiting traces are due, if any wait.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + FOLD_AFTER)
    }

    /// Whether the waiting traces should be folded now.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.ids.len() >= MAX_UNFOLDED || self.deadline().is_some_and(|d| d <= now)
    }

    /// Takes up to `n` waiting traces to fold (the wait restarts for the rest); they count as
    /// waiting until [`Unfolded::finished`].
    pub(super) fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n.min(self.ids.len()));
        while out.len() < n {
            let Some(id) = self.ids.pop_first() else {
                break;
            };
            out.push(id);
        }
        if self.ids.is_empty() {
            self.since = None;
        }
        self.folding += out.len();
        self.publish();
        out
    }

    /// `n` traces taken are folded, or given back with [`Unfolded::add`].
    pub(super) fn finished(&mut self, n: usize) {
        self.folding = self.folding.saturating_sub(n);
        self.publish();
    }

    fn publish(&self) {
        self.counters
            .fold_pending
            .store((self.ids.len() + self.folding) as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_due_after_the_wait_or_past_the_cap() {
        let counters = Arc::new(LiveCounters::default());
        let mut u = Unfolded::new(counters.clone());
        assert!(u.deadline().is_none());
        assert!(!u.due(Instant::now() + FOLD_AFTER * 10));
        u.add(["b".to_owned(), "a".to_owned(), "b".to_owned()]);
        assert_eq!(counters.fold_pending.load(Ordering::Relaxed), 2);
        let start = u.deadline().unwrap() - FOLD_AFTER;
        assert!(!u.due(start));
        assert!(u.due(start + FOLD_AFTER));
        assert_eq!(u.take(1), vec!["a".to_owned()]);
        assert!(u.deadline().is_some(), "one still waits");
        assert_eq!(u.take(10), vec!["b".to_owned()]);
        assert!(u.deadline().is_none());
        // Taken, not yet folded: a read must still wait for them.
        assert_eq!(counters.fold_pending.load(Ordering::Relaxed), 2);
        u.finished(2);
        assert_eq!(counters.fold_pending.load(Ordering::Relaxed), 0);
        u.add((0..MAX_UNFOLDED).map(|n| n.to_string()));
        assert!(u.due(Instant::now()), "a full set is due at once");
    }
}
