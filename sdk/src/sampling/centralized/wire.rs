//! The centralized-sampling calls as the daemon's TCP proxy serves them (X-Ray's
//! `GetSamplingRules` and `SamplingTargets`): the request and answer envelopes around the
//! documents of [`crate::model::sampling`].

use serde::{Deserialize, Serialize};

pub(crate) use crate::model::sampling::{
    SamplingRule as WireRule, StatisticsDocument, TargetDocument,
};

/// `POST /GetSamplingRules` request.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RulesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `POST /GetSamplingRules` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RulesAnswer {
    #[serde(default)]
    pub sampling_rule_records: Vec<RuleRecord>,
    #[serde(default)]
    pub next_token: Option<String>,
}

/// One `SamplingRuleRecord`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RuleRecord {
    pub sampling_rule: WireRule,
}

/// `POST /SamplingTargets` request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetsRequest {
    pub sampling_statistics_documents: Vec<StatisticsDocument>,
}

/// `POST /SamplingTargets` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetsAnswer {
    #[serde(default)]
    pub sampling_target_documents: Vec<TargetDocument>,
    #[serde(default)]
    pub last_rule_modification: Option<f64>,
    #[serde(default)]
    pub unprocessed_statistics: Vec<Unprocessed>,
}

/// A report the server did not take.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Unprocessed {
    #[serde(default)]
    pub rule_name: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}
