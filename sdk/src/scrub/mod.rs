//! The PII scrubber: rewrites personal data in segment documents before they leave a process.
//!
//! Placeholder with the final API shape until the scrubber issue lands: the SDK's export path,
//! the daemon and the collector already call it, so nothing can be sent around it.

use serde::Deserialize;
use serde_json::Value;

use crate::model::Segment;

/// Why a scrubber configuration was refused; names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration is not valid TOML or has an unknown or mistyped key.
    #[error("scrubber configuration: {0}")]
    Invalid(String),
}

/// Scrubber configuration, read from TOML (a standalone file, or a `[scrub]` table).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {}

impl ScrubConfig {
    /// Parses a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// Counts of what a scrub pass rewrote, by detector name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// `(detector, count)` pairs.
    pub by_detector: Vec<(String, u64)>,
}

impl ScrubReport {
    /// Total rewrites in this pass.
    pub fn total(&self) -> u64 {
        self.by_detector.iter().map(|(_, n)| n).sum()
    }
}

/// Scrubs segment documents. Cheap to clone (shares its compiled detectors).
#[derive(Debug, Clone, Default)]
pub struct Scrubber {}

impl Scrubber {
    /// Compiles a scrubber from its configuration.
    pub fn new(_config: &ScrubConfig) -> Result<Self, ConfigError> {
        Ok(Self {})
    }

    /// Scrubs one document held as JSON, in place.
    pub fn scrub(&self, _document: &mut Value) -> ScrubReport {
        ScrubReport::default()
    }

    /// Scrubs one typed document in place (same rules as [`Scrubber::scrub`]).
    pub fn scrub_segment(&self, _segment: &mut Segment) -> ScrubReport {
        ScrubReport::default()
    }
}
