//! The scrubber's configuration as operators write it (TOML), and the errors that name bad keys.
//!
//! The same table is read standalone (`scrub.toml`) and as a `[scrub]` table inside the daemon's
//! and the collector's config files, so it deserializes from a plain TOML table. Actions stay
//! strings here and are checked when a [`super::Scrubber`] is built, so that an error can name
//! the exact key (`detectors.card.action: unknown action "foo"`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a scrubber configuration was refused; names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML, or has an unknown or mistyped key.
    #[error("scrubber configuration: {0}")]
    Parse(String),
    /// A key has a value the scrubber cannot use.
    #[error("scrubber configuration: {key}: {reason}")]
    Key {
        /// Dotted path of the offending key, e.g. `detectors.card.action`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file could not be read.
    #[error("scrubber configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Key {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// What happens to a value a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace the match with a typed placeholder such as `[email]`.
    Redact,
    /// Replace the match with `[email#<hex>]`, a truncated HMAC-SHA256 of the value under the
    /// configured key: equal values stay correlatable without being readable.
    Hash,
    /// Remove the whole field (the object entry or array element) holding the match.
    Drop,
    /// Leave the match as it is (an exemption).
    Keep,
}

impl Action {
    /// Parses an action name; `key` names the configuration key for the error.
    pub(crate) fn parse(text: &str, key: &str) -> Result<Self, ConfigError> {
        match text {
            "redact" => Ok(Self::Redact),
            "hash" => Ok(Self::Hash),
            "drop" => Ok(Self::Drop),
            "keep" => Ok(Self::Keep),
            other => Err(ConfigError::key(
                key,
                format!("unknown action \"{other}\" (expected redact, hash, drop or keep)"),
            )),
        }
    }
}

/// A secret read from configuration; never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct HashKey(pub String);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// Scrubber configuration (a standalone TOML file, or a `[scrub]` table in another file).
///
/// `Default` is what runs when nothing is configured: every built-in detector on, matches
/// redacted to typed placeholders, key names honoured. See `docs/scrub.example.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// Action for every detector without its own: `redact` (default), `hash`, `drop`, `keep`.
    pub action: String,
    /// HMAC key for the `hash` action.
    pub hash_key: Option<HashKey>,
    /// Environment variable holding the HMAC key (used when `hash_key` is not set).
    pub hash_key_env: Option<String>,
    /// Hex digits of the HMAC kept in hashed placeholders (8 to 64; default 16).
    pub hash_length: usize,
    /// Treat values under keys that say what they hold (`password`, `email`, `card_number`,
    /// `cvv`, `phone`, ...) as that kind of data whatever they look like (default true).
    pub key_names: bool,
    /// Field paths never scrubbed, e.g. `http.request.client_ip` (same as `action = "keep"`).
    pub exempt_fields: Vec<String>,
    /// Per built-in detector settings, by detector name.
    pub detectors: BTreeMap<String, DetectorConfig>,
    /// Operator-defined detectors.
    pub custom: Vec<CustomDetectorConfig>,
    /// Per field path rules; the deepest rule matching a value applies.
    pub fields: BTreeMap<String, FieldRuleConfig>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            action: "redact".to_owned(),
            hash_key: None,
            hash_key_env: None,
            hash_length: 16,
            key_names: true,
            exempt_fields: Vec::new(),
            detectors: BTreeMap::new(),
            custom: Vec::new(),
            fields: BTreeMap::new(),
        }
    }
}

/// Settings of one built-in detector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Whether the detector runs (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Action for its matches (default: the top-level `action`).
    #[serde(default)]
    pub action: Option<String>,
}

/// An operator-defined detector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    /// Name used in placeholders and metrics: lowercase letters, digits and `_`.
    pub name: String,
    /// Regular expression (Rust `regex` syntax); a group named `v` narrows what is rewritten.
    pub pattern: String,
    /// Whether the detector runs (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Action for its matches (default: the top-level `action`).
    #[serde(default)]
    pub action: Option<String>,
}

/// What happens to values under one field path.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRuleConfig {
    /// Action for every detector's matches under this path (`keep` exempts the field).
    #[serde(default)]
    pub action: Option<String>,
    /// Actions per detector under this path, overriding `action`.
    #[serde(default)]
    pub detectors: BTreeMap<String, String>,
    /// Treat every non-empty string under this path as a match of the `field` detector (e.g. to
    /// hash `user` whatever it holds).
    #[serde(default)]
    pub whole_value: bool,
}

fn yes() -> bool {
    true
}

impl ScrubConfig {
    /// Parses a configuration from TOML text and checks it (same checks as [`super::Scrubber::new`]).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        super::Scrubber::new(&config)?;
        Ok(config)
    }

    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}
