//! What one scrub pass rewrote, counted per detector, for the metrics of the SDK, the daemon
//! and the collector.
//!
//! A clean pass allocates nothing: the counts vector is only sized on the first hit, and the
//! detector names are shared with the scrubber.

use std::sync::Arc;

/// Counts of what a scrub pass rewrote, by detector name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    names: Option<Arc<[Box<str>]>>,
    counts: Vec<u64>,
    growth: i64,
}

impl ScrubReport {
    pub(crate) fn new(names: &Arc<[Box<str>]>) -> Self {
        Self {
            names: Some(Arc::clone(names)),
            counts: Vec::new(),
            growth: 0,
        }
    }

    pub(crate) fn add(&mut self, detector: usize) {
        if self.counts.is_empty() {
            let len = self.names.as_ref().map_or(0, |n| n.len());
            self.counts = vec![0; len];
        }
        if let Some(c) = self.counts.get_mut(detector) {
            *c += 1;
        }
    }

    pub(crate) fn grow(&mut self, bytes: i64) {
        self.growth += bytes;
    }

    /// Total values rewritten (or fields dropped) in this pass.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.total() == 0
    }

    /// `(detector, count)` for every detector that found something.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let names = self.names.as_deref().unwrap_or(&[]);
        names
            .iter()
            .zip(&self.counts)
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| (&**name, *n))
    }

    /// Owned `(detector, count)` pairs, for callers that keep them.
    pub fn by_detector(&self) -> Vec<(String, u64)> {
        self.iter().map(|(n, c)| (n.to_owned(), c)).collect()
    }

    /// Count for one detector (0 if unknown or nothing found).
    pub fn count(&self, detector: &str) -> u64 {
        self.iter()
            .find(|(n, _)| *n == detector)
            .map_or(0, |(_, c)| c)
    }

    /// Net bytes the rewritten strings grew by (negative when they shrank; dropped fields not
    /// included). A document serialized before scrubbing at `n` bytes is at most
    /// `n + growth_bytes()` bytes after it.
    pub fn growth_bytes(&self) -> i64 {
        self.growth
    }

    /// Adds another report's counts (from the same scrubber) to this one.
    pub fn merge(&mut self, other: &ScrubReport) {
        if other.counts.is_empty() {
            return;
        }
        if self.names.is_none() {
            self.names.clone_from(&other.names);
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.growth += other.growth;
    }
}
