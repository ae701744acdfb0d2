//! What the SDKs reported per rule, summed per 10-second window for
//! `GetSamplingStatisticSummaries`: in this collector's memory for the last hour (collectors
//! sharing a ClickHouse store each answer with the reports they received).

use std::collections::BTreeMap;

use serde::Serialize;

use super::StatisticsDocument;

/// The window X-Ray sums reports over.
pub const WINDOW_SECONDS: i64 = 10;

/// How long windows are kept.
pub const KEPT_SECONDS: i64 = 3600;

/// One rule's counts in one window (X-Ray `SamplingStatisticSummary`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    /// The rule.
    pub rule_name: String,
    /// The window's start, epoch seconds.
    pub timestamp: i64,
    /// Requests that matched the rule.
    pub request_count: i64,
    /// Requests sampled with borrowed quota.
    pub borrow_count: i64,
    /// Requests sampled.
    pub sampled_count: i64,
}

/// Reports summed per (window, rule).
#[derive(Debug, Default)]
pub struct Statistics {
    windows: BTreeMap<(i64, String), Summary>,
}

impl Statistics {
    /// Adds reports received at `now` (negative counts count as zero) and forgets windows
    /// older than an hour.
    pub fn record<'a>(&mut self, now: f64, docs: impl Iterator<Item = &'a StatisticsDocument>) {
        let window = (now.floor() as i64).div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS;
        for d in docs {
            let s = self
                .windows
                .entry((window, d.rule_name.clone()))
                .or_insert_with(|| Summary {
                    rule_name: d.rule_name.clone(),
                    timestamp: window,
                    ..Summary::default()
                });
            s.request_count = s.request_count.saturating_add(d.request_count.max(0));
            s.sampled_count = s.sampled_count.saturating_add(d.sampled_count.max(0));
            s.borrow_count = s.borrow_count.saturating_add(d.borrow_count.max(0));
        }
        let oldest = window - KEPT_SECONDS;
        self.windows = self.windows.split_off(&(oldest, String::new()));
    }

    /// Every kept window of every rule, oldest first.
    pub fn summaries(&self) -> Vec<Summary> {
        self.windows.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rule: &str, requests: i64, sampled: i64, borrowed: i64) -> StatisticsDocument {
        StatisticsDocument {
            rule_name: rule.to_owned(),
            client_id: "c".repeat(24),
            timestamp: 0.0,
            request_count: requests,
            sampled_count: sampled,
            borrow_count: borrowed,
        }
    }

    #[test]
    fn sums_per_window_and_rule_and_forgets_after_an_hour() {
        let mut s = Statistics::default();
        s.record(1003.0, [doc("a", 10, 2, 1), doc("b", 5, 5, 0)].iter());
        s.record(1009.9, [doc("a", 1, 1, 0)].iter());
        s.record(1010.0, [doc("a", -4, 0, 0)].iter());
        let out = s.summaries();
        assert_eq!(out.len(), 3);
        assert_eq!(
            (
                out[0].rule_name.as_str(),
                out[0].timestamp,
                out[0].request_count
            ),
            ("a", 1000, 11)
        );
        assert_eq!((out[0].sampled_count, out[0].borrow_count), (3, 1));
        assert_eq!((out[2].timestamp, out[2].request_count), (1010, 0));
        s.record(1010.0 + 3600.0, std::iter::empty());
        assert_eq!(s.summaries().len(), 1);
    }
}
