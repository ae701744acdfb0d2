//! The decision over an alarm's last N periods: CloudWatch's "M out of N" with its treatments of
//! missing data. Pure: the evaluator gives it the values, it gives the state and why.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::band::Band;
use super::rule::{AlarmRule, Comparison, MissingData};

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    /// Within its threshold or band.
    #[serde(rename = "OK")]
    Ok,
    /// Breaching.
    #[serde(rename = "ALARM")]
    Alarm,
    /// Not enough data to decide.
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    /// The state's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One period's value and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Datapoint {
    /// Period start, epoch seconds.
    pub start: f64,
    /// The metric's value, if the period had one.
    pub value: Option<f64>,
    /// Whether it counted as breaching (missing data as its treatment says).
    pub breaching: bool,
}

/// What an evaluation decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Decision {
    /// The new state.
    pub state: AlarmState,
    /// Why, in a sentence.
    pub reason: String,
    /// The N periods, oldest first.
    pub datapoints: Vec<Datapoint>,
    /// The threshold compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The band compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
}

/// Decides the state from the N periods' values (oldest first, each with its start) and, for
/// band comparisons, the band learned from the periods before them.
pub fn decide(
    rule: &AlarmRule,
    current: AlarmState,
    values: &[(f64, Option<f64>)],
    band: Option<Band>,
) -> Decision {
    let threshold = rule.threshold.filter(|_| !rule.comparison.uses_band());
    let band = band.filter(|_| rule.comparison.uses_band());
    if rule.comparison.uses_band() && band.is_none() {
        return Decision {
            state: AlarmState::InsufficientData,
            reason: format!(
                "not enough history to learn the band (needs {} earlier periods with data)",
                super::band::MIN_HISTORY
            ),
            datapoints: values
                .iter()
                .map(|(start, value)| Datapoint {
                    start: *start,
                    value: *value,
                    breaching: false,
                })
                .collect(),
            threshold,
            band,
        };
    }
    let breaches = |v: f64| match (rule.comparison, threshold, band) {
        (Comparison::GreaterThanThreshold, Some(t), _) => v > t,
        (Comparison::GreaterThanOrEqualToThreshold, Some(t), _) => v >= t,
        (Comparison::LessThanThreshold, Some(t), _) => v < t,
        (Comparison::LessThanOrEqualToThreshold, Some(t), _) => v <= t,
        (Comparison::OutsideBand, _, Some(b)) => v < b.lower || v > b.upper,
        (Comparison::GreaterThanUpperBand, _, Some(b)) => v > b.upper,
        (Comparison::LessThanLowerBand, _, Some(b)) => v < b.lower,
        _ => false,
    };
    let datapoints: Vec<Datapoint> = values
        .iter()
        .map(|(start, value)| Datapoint {
            start: *start,
            value: *value,
            breaching: match value {
                Some(v) => breaches(*v),
                None => rule.treat_missing_data == MissingData::Breaching,
            },
        })
        .collect();
    let n = datapoints.len();
    let breaching = datapoints.iter().filter(|d| d.breaching).count();
    let present = datapoints.iter().filter(|d| d.value.is_some()).count();
    let m = rule.datapoints_to_alarm as usize;
    let bound = match (threshold, band) {
        (Some(t), _) => format!("the threshold ({})", rule.metric.display(t)),
        (None, Some(b)) => format!(
            "the band ({} to {})",
            rule.metric.display(b.lower),
            rule.metric.display(b.upper)
        ),
        (None, None) => "nothing".to_owned(),
    };
    let relation = match rule.comparison {
        Comparison::GreaterThanThreshold => "greater than",
        Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
        Comparison::LessThanThreshold => "less than",
        Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        Comparison::OutsideBand => "outside",
        Comparison::GreaterThanUpperBand => "above",
        Comparison::LessThanLowerBand => "below",
    };
    let mut listed = String::new();
    for d in datapoints.iter().filter(|d| d.breaching) {
        if !listed.is_empty() {
            listed.push_str(", ");
        }
        match d.value {
            Some(v) => {
                let _ = write!(listed, "{} at {}", rule.metric.display(v), clock(d.start));
            }
            None => {
                let _ = write!(listed, "missing at {}", clock(d.start));
            }
        }
    }
    let (state, reason) = if breaching >= m {
        (
            AlarmState::Alarm,
            format!(
                "{} {:?}: {breaching} of the last {n} periods [{listed}] {relation} {bound}",
                rule.entity_label(),
                rule.metric
            ),
        )
    } else if present == 0 && rule.treat_missing_data == MissingData::Missing {
        (
            AlarmState::InsufficientData,
            format!(
                "{}: no requests in the last {n} periods",
                rule.entity_label()
            ),
        )
    } else if present == 0 && rule.treat_missing_data == MissingData::Ignore {
        (
            current,
            format!(
                "{}: no requests in the last {n} periods (ignored, state kept)",
                rule.entity_label()
            ),
        )
    } else {
        (
            AlarmState::Ok,
            format!(
                "{} {:?}: {breaching} of the last {n} periods {relation} {bound} (alarms at {m})",
                rule.entity_label(),
                rule.metric
            ),
        )
    };
    Decision {
        state,
        reason,
        datapoints,
        threshold,
        band,
    }
}

/// `HH:MM` UTC of an epoch time.
fn clock(seconds: f64) -> String {
    let minutes = (seconds / 60.0).floor() as i64;
    format!(
        "{:02}:{:02}",
        minutes.div_euclid(60).rem_euclid(24),
        minutes.rem_euclid(60)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::metric::Metric;

    fn rule(comparison: Comparison, m: u32, n: u32, missing: MissingData) -> AlarmRule {
        serde_json::from_value::<AlarmRule>(serde_json::json!({
            "Name": "r", "Metric": "FaultRate",
            "Comparison": comparison,
            "Threshold": if comparison.uses_band() { serde_json::Value::Null } else { 0.1.into() },
            "EntitySelectorExpression": "service(\"pay\")",
            "EvaluationPeriods": n, "DatapointsToAlarm": m, "TreatMissingData": missing
        }))
        .unwrap()
    }

    fn points(values: &[Option<f64>]) -> Vec<(f64, Option<f64>)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (1_800_000_000.0 + 60.0 * i as f64, *v))
            .collect()
    }

    #[test]
    fn m_of_n_breaching_periods_raise_the_alarm() {
        let r = rule(Comparison::GreaterThanThreshold, 2, 3, MissingData::Missing);
        let d = decide(
            &r,
            AlarmState::Ok,
            &points(&[Some(0.5), Some(0.0), Some(0.3)]),
            None,
        );
        assert_eq!(d.state, AlarmState::Alarm);
        assert!(d.reason.contains("2 of the last 3 periods"), "{}", d.reason);
        assert!(d.reason.contains("50.0% at"), "{}", d.reason);
        assert!(
            d.reason.contains("greater than the threshold (10.0%)"),
            "{}",
            d.reason
        );
        let d = decide(
            &r,
            AlarmState::Alarm,
            &points(&[Some(0.5), Some(0.0), Some(0.1)]),
            None,
        );
        assert_eq!(d.state, AlarmState::Ok, "0.1 is not greater than 0.1");
        assert_eq!(d.datapoints.iter().filter(|p| p.breaching).count(), 1);
    }

    #[test]
    fn missing_data_follows_its_treatment() {
        let none = points(&[None, None, None]);
        let one = points(&[None, Some(0.9), None]);
        let case = |missing, values: &[(f64, Option<f64>)], current| {
            decide(
                &rule(Comparison::GreaterThanThreshold, 2, 3, missing),
                current,
                values,
                None,
            )
            .state
        };
        use AlarmState::*;
        assert_eq!(case(MissingData::Missing, &none, Alarm), InsufficientData);
        assert_eq!(case(MissingData::Ignore, &none, Alarm), Alarm);
        assert_eq!(case(MissingData::NotBreaching, &none, Alarm), Ok);
        assert_eq!(case(MissingData::Breaching, &none, Ok), Alarm);
        assert_eq!(case(MissingData::Missing, &one, Alarm), Ok);
        assert_eq!(case(MissingData::Breaching, &one, Ok), Alarm);
    }

    #[test]
    fn band_comparisons_need_a_band_and_use_its_edges() {
        let r = rule(Comparison::GreaterThanUpperBand, 1, 1, MissingData::Missing);
        let d = decide(&r, AlarmState::Ok, &points(&[Some(0.5)]), None);
        assert_eq!(d.state, AlarmState::InsufficientData);
        assert!(d.reason.contains("history"), "{}", d.reason);
        let band = Band {
            lower: -0.02,
            median: 0.0,
            upper: 0.02,
        };
        let up = decide(&r, AlarmState::Ok, &points(&[Some(0.5)]), Some(band));
        assert_eq!(up.state, AlarmState::Alarm);
        assert!(
            up.reason.contains("above the band (-2.0% to 2.0%)"),
            "{}",
            up.reason
        );
        let within = decide(&r, AlarmState::Alarm, &points(&[Some(0.01)]), Some(band));
        assert_eq!(within.state, AlarmState::Ok);
        let low = rule(Comparison::LessThanLowerBand, 1, 1, MissingData::Missing);
        assert_eq!(
            decide(&low, AlarmState::Ok, &points(&[Some(-0.5)]), Some(band)).state,
            AlarmState::Alarm
        );
        assert_eq!(Metric::FaultRate.display(0.5), "50.0%");
    }
}
