//! Centralized sampling's documents (X-Ray `SamplingRule`, `SamplingStatisticsDocument`,
//! `SamplingTargetDocument`): one definition for the SDK that polls for them and the collector
//! that serves them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the rule every account has.
pub const DEFAULT_RULE: &str = "Default";

/// X-Ray `SamplingRule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRule {
    /// Name (1 to 32 characters).
    #[serde(default)]
    pub rule_name: String,
    /// ARN (derived from the name).
    #[serde(default, rename = "RuleARN")]
    pub rule_arn: String,
    /// Resource ARN to match.
    #[serde(default = "star", rename = "ResourceARN")]
    pub resource_arn: String,
    /// Priority: lower first.
    pub priority: i64,
    /// Rate after the reservoir.
    pub fixed_rate: f64,
    /// Requests per second sampled before the rate applies.
    pub reservoir_size: i64,
    /// Service name to match.
    #[serde(default = "star")]
    pub service_name: String,
    /// Service type to match.
    #[serde(default = "star")]
    pub service_type: String,
    /// Host to match.
    #[serde(default = "star")]
    pub host: String,
    /// Method to match.
    #[serde(default = "star", rename = "HTTPMethod")]
    pub http_method: String,
    /// Path to match.
    #[serde(default = "star", rename = "URLPath")]
    pub url_path: String,
    /// Rule format version (1).
    #[serde(default = "one")]
    pub version: i64,
    /// Attributes to match.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

fn star() -> String {
    "*".to_owned()
}

fn one() -> i64 {
    1
}

impl SamplingRule {
    /// The `Default` rule X-Ray starts every account with: 1 request per second, then 5%.
    pub fn default_rule(rule_arn: String) -> Self {
        Self {
            rule_name: DEFAULT_RULE.to_owned(),
            rule_arn,
            resource_arn: star(),
            priority: 10000,
            fixed_rate: 0.05,
            reservoir_size: 1,
            service_name: star(),
            service_type: star(),
            host: star(),
            http_method: star(),
            url_path: star(),
            version: 1,
            attributes: BTreeMap::new(),
        }
    }

    /// Checks the limits of the API model; returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.rule_name.is_empty() || self.rule_name.chars().count() > 32 {
            return Err("RuleName must be 1 to 32 characters".to_owned());
        }
        if !(0.0..=1.0).contains(&self.fixed_rate) {
            return Err("FixedRate must be between 0 and 1".to_owned());
        }
        if self.reservoir_size < 0 {
            return Err("ReservoirSize must not be negative".to_owned());
        }
        if self.rule_name != DEFAULT_RULE && !(1..=9999).contains(&self.priority) {
            return Err("Priority must be between 1 and 9999".to_owned());
        }
        if self.version != 1 {
            return Err("Version must be 1".to_owned());
        }
        Ok(())
    }
}

/// A client's counts for one rule since its previous report (X-Ray
/// `SamplingStatisticsDocument`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticsDocument {
    /// Rule.
    pub rule_name: String,
    /// Client id, 24 hex digits.
    #[serde(rename = "ClientID")]
    pub client_id: String,
    /// Report time, epoch seconds.
    pub timestamp: f64,
    /// Requests matched.
    pub request_count: i64,
    /// Requests sampled.
    pub sampled_count: i64,
    /// Requests sampled by borrowing.
    #[serde(default)]
    pub borrow_count: i64,
}

/// What the server asks of one client for one rule (X-Ray `SamplingTargetDocument`); every
/// field but the name may be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDocument {
    /// Rule.
    pub rule_name: String,
    /// Rate after the quota.
    #[serde(default)]
    pub fixed_rate: Option<f64>,
    /// Requests per second this client may sample.
    #[serde(default)]
    pub reservoir_quota: Option<i64>,
    /// When the quota expires, epoch seconds.
    #[serde(default, rename = "ReservoirQuotaTTL")]
    pub reservoir_quota_ttl: Option<f64>,
    /// Seconds until the next report.
    #[serde(default)]
    pub interval: Option<i64>,
}
