//! The one memory bound (`--buffer-memory-mb`) shared by every in-memory queue of the daemon.
//!
//! The listener charges each datagram before handing it on; the charge follows the document
//! through the batcher and the forwarder and is released when the document is delivered,
//! spooled or dropped. When the budget is exhausted the listener drops (and counts) instead of
//! growing: that is the written policy for every queue between the socket and the collector.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a datagram of `len` bytes is charged when admitted: its size plus a quarter, because a
/// document grows when it is escaped into the request body (every `"` becomes `\"`). The
/// worker corrects the charge to the real size once the document is in its batch.
pub fn admission_charge(len: usize) -> usize {
    len + len / 4
}

/// A byte budget with a hard limit for new work and a recorded peak.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit,
        }
    }

    /// Charges `bytes` if they fit under the limit; returns whether they did.
    pub fn try_acquire(&self, bytes: usize) -> bool {
        let result = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let next = used.checked_add(bytes)?;
                (next <= self.limit).then_some(next)
            });
        match result {
            Ok(previous) => {
                self.peak.fetch_max(previous + bytes, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Charges `bytes` even over the limit (for a document that grew while being scrubbed:
    /// it was already admitted, and the next admission will see the overshoot).
    pub fn force_acquire(&self, bytes: usize) {
        let previous = self.used.fetch_add(bytes, Ordering::AcqRel);
        self.peak.fetch_max(previous + bytes, Ordering::Relaxed);
    }

    /// Returns `bytes` to the budget.
    pub fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes ever charged at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_admits_past_the_limit() {
        let b = MemoryBudget::new(100);
        assert!(b.try_acquire(60));
        assert!(!b.try_acquire(41));
        assert!(b.try_acquire(40));
        assert_eq!(b.used(), 100);
        b.release(70);
        assert_eq!(b.used(), 30);
        b.force_acquire(90);
        assert_eq!(b.used(), 120);
        assert!(!b.try_acquire(1));
        assert_eq!(b.peak(), 120);
        b.release(500);
        assert_eq!(b.used(), 0);
    }
}
