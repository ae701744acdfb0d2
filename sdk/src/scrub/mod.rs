//! The PII scrubber: rewrites personal data in segment documents before they leave a process.
//!
//! Placeholder until the scrubber issue lands: the SDK's export path already calls
//! [`Scrubber::scrub`] on every document, so nothing can be sent around it.

use serde_json::Value;

/// Counts of what a scrub pass rewrote, by detector name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// `(detector, count)` pairs.
    pub by_detector: Vec<(String, u64)>,
}

/// Scrubs segment documents.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {}

impl Scrubber {
    /// Scrubs one document in place.
    pub fn scrub(&self, _document: &mut Value) -> ScrubReport {
        ScrubReport::default()
    }
}
