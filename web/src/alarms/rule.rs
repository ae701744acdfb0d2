//! An alarm rule as users write it (API, config file, dashboard) and the checks it must pass.

use serde::{Deserialize, Serialize};

use super::metric::Metric;
use crate::graph::Entity;

/// Longest rule name.
pub const MAX_NAME: usize = 128;
/// Most periods a rule looks back over.
pub const MAX_PERIODS: u32 = 60;
/// Longest period, seconds.
pub const MAX_PERIOD: u32 = 3600;
/// Most webhooks per rule.
pub const MAX_WEBHOOKS: usize = 8;
/// Longest span of minutes a threshold rule looks at (`Period` × `EvaluationPeriods`).
pub const MAX_WINDOW_MINUTES: u32 = 180;
/// Minutes before its periods that a band rule learns its band from.
pub const BAND_HISTORY_MINUTES: u32 = 120;
/// Longest period of a band rule: its history must hold enough periods to learn from.
pub const MAX_BAND_PERIOD: u32 = 600;
/// Longest webhook URL, description or secret.
const MAX_TEXT: usize = 2048;

/// How a period's value is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// Value > `Threshold`.
    GreaterThanThreshold,
    /// Value >= `Threshold`.
    GreaterThanOrEqualToThreshold,
    /// Value < `Threshold`.
    LessThanThreshold,
    /// Value <= `Threshold`.
    LessThanOrEqualToThreshold,
    /// Value outside the anomaly band learned from the metric's history.
    OutsideBand,
    /// Value above the band.
    GreaterThanUpperBand,
    /// Value below the band.
    LessThanLowerBand,
}

impl Comparison {
    /// Whether the comparison is against the anomaly band rather than a threshold.
    pub fn uses_band(self) -> bool {
        matches!(
            self,
            Comparison::OutsideBand
                | Comparison::GreaterThanUpperBand
                | Comparison::LessThanLowerBand
        )
    }
}

/// How a period without a value (no requests, or fewer than `MinRequests`) counts, as in
/// CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MissingData {
    /// Neither breaching nor not: all periods missing is `INSUFFICIENT_DATA`.
    #[default]
    Missing,
    /// As a period within the threshold.
    NotBreaching,
    /// As a breaching period.
    Breaching,
    /// All periods missing keeps the current state.
    Ignore,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WebhookFormat {
    /// Roentgen's JSON notification (docs/alarms.md).
    #[default]
    Json,
    /// A Slack incoming-webhook body (`{"text": …}`).
    Slack,
}

/// Where an alarm's state changes are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Body format.
    #[serde(default)]
    pub format: WebhookFormat,
    /// HMAC-SHA256 key of the `X-Roentgen-Signature` header; never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn default_period() -> u32 {
    60
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_band_width() -> f64 {
    3.0
}

/// An alarm rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AlarmRule {
    /// Unique name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Free text shown with notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only the traces of this group count (its filter expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// `service("name")`, `id(name: …, type: …)` or `edge("a", "b")`; absent: every entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_selector_expression: Option<String>,
    /// What is measured each period.
    pub metric: Metric,
    /// How a period's value is judged.
    pub comparison: Comparison,
    /// For threshold comparisons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// For band comparisons: the band's half-width in robust standard deviations.
    #[serde(default = "default_band_width")]
    pub band_width: f64,
    /// Seconds per period, a multiple of 60.
    #[serde(default = "default_period")]
    pub period: u32,
    /// N: the periods looked at.
    #[serde(default = "one")]
    pub evaluation_periods: u32,
    /// M: breaching periods among the N that raise the alarm.
    #[serde(default = "one")]
    pub datapoints_to_alarm: u32,
    /// Periods with fewer requests have no value (rates and percentiles only).
    #[serde(default)]
    pub min_requests: u64,
    /// How periods without a value count.
    #[serde(default)]
    pub treat_missing_data: MissingData,
    /// Where state changes are sent.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Off: states are still evaluated and recorded, nothing is sent.
    #[serde(default = "yes")]
    pub actions_enabled: bool,
}

impl AlarmRule {
    /// Checks everything a rule must satisfy; the error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > MAX_NAME
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "Name must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_TEXT)
        {
            return Err(format!("Description is longer than {MAX_TEXT} bytes"));
        }
        if let Some(group) = &self.group_name {
            crate::group::GroupName::parse(group).map_err(|e| format!("GroupName: {e}"))?;
        }
        self.entity()
            .map_err(|m| format!("invalid EntitySelectorExpression: {m}"))?;
        match (self.comparison.uses_band(), self.threshold) {
            (false, None) => return Err(format!("{:?} needs a Threshold", self.comparison)),
            (false, Some(t)) if !t.is_finite() => {
                return Err("Threshold must be a finite number".to_owned());
            }
            (true, Some(_)) => {
                return Err(format!(
                    "{:?} compares with the anomaly band: give BandWidth, not Threshold",
                    self.comparison
                ));
            }
            _ => {}
        }
        if !(self.band_width.is_finite() && self.band_width > 0.0 && self.band_width <= 100.0) {
            return Err("BandWidth must be above 0 and at most 100".to_owned());
        }
        if self.period == 0 || !self.period.is_multiple_of(60) || self.period > MAX_PERIOD {
            return Err(format!(
                "Period must be a multiple of 60 seconds, at most {MAX_PERIOD}"
            ));
        }
        if self.evaluation_periods == 0 || self.evaluation_periods > MAX_PERIODS {
            return Err(format!("EvaluationPeriods must be 1 to {MAX_PERIODS}"));
        }
        if self.period / 60 * self.evaluation_periods > MAX_WINDOW_MINUTES {
            return Err(format!(
                "Period × EvaluationPeriods must be at most {MAX_WINDOW_MINUTES} minutes"
            ));
        }
        if self.comparison.uses_band() && self.period > MAX_BAND_PERIOD {
            return Err(format!(
                "anomaly bands are learned from the previous {BAND_HISTORY_MINUTES} minutes: Period must be at most {MAX_BAND_PERIOD} seconds"
            ));
        }
        if self.datapoints_to_alarm == 0 || self.datapoints_to_alarm > self.evaluation_periods {
            return Err("DatapointsToAlarm must be 1 to EvaluationPeriods".to_owned());
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(format!("at most {MAX_WEBHOOKS} Webhooks"));
        }
        for hook in &self.webhooks {
            let url = reqwest::Url::parse(&hook.url)
                .map_err(|e| format!("Webhook URL {:?}: {e}", hook.url))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!(
                    "Webhook URL {:?}: must be http:// or https:// with a host",
                    hook.url
                ));
            }
            if hook.url.len() > MAX_TEXT
                || hook
                    .secret
                    .as_ref()
                    .is_some_and(|s| s.len() > MAX_TEXT || s.is_empty())
            {
                return Err(format!(
                    "Webhook URL and Secret must be 1 to {MAX_TEXT} bytes"
                ));
            }
        }
        Ok(())
    }

    /// Minutes before the end of its last period that the rule reads (its periods, and the
    /// band's history).
    pub fn span_minutes(&self) -> i64 {
        let own = i64::from(self.period / 60 * self.evaluation_periods);
        if self.comparison.uses_band() {
            own + i64::from(BAND_HISTORY_MINUTES)
        } else {
            own
        }
    }

    /// The entity the rule watches.
    pub fn entity(&self) -> Result<Entity, String> {
        Entity::parse(self.entity_selector_expression.as_deref())
    }

    /// The entity (and group) in words, for reasons and notifications.
    pub fn entity_label(&self) -> String {
        let entity = self
            .entity_selector_expression
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or("entry points");
        match &self.group_name {
            Some(group) => format!("{entity} in group {group}"),
            None => entity.to_owned(),
        }
    }

    /// The rule as shown to readers: webhook secrets left out (`SecretSet` says one is set).
    pub fn redacted(&self) -> serde_json::Value {
        let mut shown = self.clone();
        for hook in &mut shown.webhooks {
            hook.secret = None;
        }
        let mut value = serde_json::to_value(&shown).unwrap_or_default();
        if let Some(hooks) = value.get_mut("Webhooks").and_then(|h| h.as_array_mut()) {
            for (shown, hook) in hooks.iter_mut().zip(&self.webhooks) {
                shown["SecretSet"] = serde_json::Value::Bool(hook.secret.is_some());
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<AlarmRule, String> {
        let rule: AlarmRule = serde_json::from_value(json).map_err(|e| e.to_string())?;
        rule.check().map(|()| rule)
    }

    #[test]
    fn a_minimal_rule_gets_cloudwatch_defaults() {
        let r = rule(serde_json::json!({
            "Name": "pay-faults", "Metric": "FaultRate",
            "Comparison": "GreaterThanThreshold", "Threshold": 0.1,
            "EntitySelectorExpression": "service(\"pay\")"
        }))
        .unwrap();
        assert_eq!(
            (r.period, r.evaluation_periods, r.datapoints_to_alarm),
            (60, 1, 1)
        );
        assert_eq!(r.treat_missing_data, MissingData::Missing);
        assert!(r.actions_enabled);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let base = serde_json::json!({
            "Name": "x", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold",
            "Threshold": 0.1
        });
        let with = |k: &str, v: serde_json::Value| {
            let mut j = base.clone();
            j[k] = v;
            rule(j).unwrap_err()
        };
        assert!(with("Name", "a b".into()).contains("Name must be"));
        assert!(with("Period", 90.into()).contains("multiple of 60"));
        let mut long = base.clone();
        long["Period"] = 3600.into();
        long["EvaluationPeriods"] = 4.into();
        assert!(rule(long).unwrap_err().contains("at most 180 minutes"));
        let band = serde_json::json!({
            "Name": "x", "Metric": "P99", "Comparison": "OutsideBand", "Period": 900
        });
        assert!(rule(band).unwrap_err().contains("at most 600 seconds"));
        assert!(with("EvaluationPeriods", 61.into()).contains("EvaluationPeriods"));
        assert!(with("DatapointsToAlarm", 2.into()).contains("DatapointsToAlarm"));
        assert!(with("Comparison", "OutsideBand".into()).contains("BandWidth, not Threshold"));
        assert!(with("EntitySelectorExpression", "fault".into()).contains("EntitySelector"));
        assert!(with("GroupName", "".into()).contains("GroupName"));
        assert!(with("Metric", "Latency".into()).contains("unknown variant"));
        assert!(with("Colour", "red".into()).contains("unknown field"));
        let hook = |url: &str| serde_json::json!([{ "Url": url }]);
        assert!(with("Webhooks", hook("ftp://x/")).contains("http://"));
        assert!(with("Webhooks", hook("not a url")).contains("Webhook URL"));
        let mut no_threshold = base.clone();
        no_threshold.as_object_mut().unwrap().remove("Threshold");
        assert!(
            rule(no_threshold)
                .unwrap_err()
                .contains("needs a Threshold")
        );
    }

    #[test]
    fn secrets_are_never_shown_back() {
        let r = rule(serde_json::json!({
            "Name": "x", "Metric": "P99", "Comparison": "OutsideBand",
            "Webhooks": [{ "Url": "http://127.0.0.1:9/hook", "Secret": "s3cret" },
                         { "Url": "http://127.0.0.1:9/slack", "Format": "Slack" }]
        }))
        .unwrap();
        let shown = r.redacted();
        assert!(!shown.to_string().contains("s3cret"));
        assert_eq!(shown["Webhooks"][0]["SecretSet"], true);
        assert_eq!(shown["Webhooks"][1]["SecretSet"], false);
        assert_eq!(shown["Webhooks"][1]["Format"], "Slack");
    }
}
