//! Anomalies of one minute: for every node and edge, its fault, error and throttle rates and
//! its p90 response time against the band learned from its own previous two hours (the alarm's
//! median ± MAD band). Only rises count: a service getting better is not an incident.

use crate::alarms::band::Band;
use crate::alarms::metric::Metric;
use crate::alarms::series::{Key, RollupWindow};
use crate::graph::Stats;

/// Minutes of history a minute is judged against.
pub const HISTORY_MINUTES: i64 = 120;
/// Fewest requests in a minute for it to be judged.
pub const MIN_REQUESTS: i64 = 10;
/// Band half-width, in robust standard deviations.
pub const WIDTH: f64 = 4.0;
/// The metrics watched.
pub const METRICS: [Metric; 4] = [
    Metric::FaultRate,
    Metric::ErrorRate,
    Metric::ThrottleRate,
    Metric::P90,
];

/// One node or edge whose metric left its band in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The node (`dst` absent) or edge.
    pub key: Key,
    /// The metric.
    pub metric: Metric,
    /// Its value that minute.
    pub value: f64,
    /// The usual range.
    pub band: Band,
    /// Requests that minute.
    pub requests: i64,
    /// Requests beyond the usual: faults (errors, throttles) above the usual rate, or requests
    /// slower than the band's top.
    pub excess: f64,
}

/// Earlier times a minute is also compared with, in minutes back: the same time yesterday and
/// a week ago (daily and weekly seasons).
pub const SEASONS: [i64; 2] = [1_440, 10_080];
/// Minutes either side of the same earlier time that a seasonal band learns from.
pub const SEASON_SPREAD: i64 = 15;

/// The minutes of an earlier season (`back` minutes before) that minute `minute` is compared
/// with.
fn season(minute: i64, back: i64) -> std::ops::RangeInclusive<i64> {
    let at = minute - back;
    at - SEASON_SPREAD..=at + SEASON_SPREAD
}

/// The anomalies of minute `minute` in `window`. A minute is anomalous when it is above the
/// band of its previous two hours, beyond chance, and, where earlier days or weeks are known
/// (`seasons`: each window with how many minutes back it lies), above the band of the same time
/// then too: a rise that happens every day at this hour is not an incident.
pub fn anomalies_at(
    window: &RollupWindow,
    seasons: &[(i64, &RollupWindow)],
    minute: i64,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, minutes) in window.series() {
        let Some(now) = minutes.get(&minute).filter(|s| s.total() >= MIN_REQUESTS) else {
            continue;
        };
        let history: Vec<&Stats> = minutes
            .range(minute - HISTORY_MINUTES..minute)
            .map(|(_, s)| s)
            .filter(|s| s.total() >= MIN_REQUESTS)
            .collect();
        let seasonal: Vec<&Stats> = seasons
            .iter()
            .filter_map(|(back, w)| w.series_of(key).map(|m| (*back, m)))
            .flat_map(|(back, m)| m.range(season(minute, back)).map(|(_, s)| s))
            .filter(|s| s.total() >= MIN_REQUESTS)
            .collect();
        for metric in METRICS {
            let Some(value) = metric.value(now, 60, 0) else {
                continue;
            };
            let floor = |median: f64| metric.noise_floor(median, 60);
            let values = |list: &[&Stats]| -> Vec<f64> {
                list.iter().filter_map(|s| metric.value(s, 60, 0)).collect()
            };
            // p90s come from the window's memo (a percentile walks a whole histogram).
            let past = if metric == Metric::P90 {
                window
                    .p90s(key, minute - HISTORY_MINUTES..minute, MIN_REQUESTS)
                    .collect()
            } else {
                values(&history)
            };
            let Some(band) = Band::learn(&past, WIDTH, floor) else {
                continue;
            };
            // The usual rate: the mean of the ordinary minutes (for rare events the median is
            // 0, which would make any single fault look significant).
            let ordinary: Vec<f64> = past.iter().copied().filter(|v| *v <= band.upper).collect();
            let usual = if ordinary.is_empty() {
                band.median
            } else {
                ordinary.iter().sum::<f64>() / ordinary.len() as f64
            };
            if value <= band.upper || !significant(metric, now, &band, usual) {
                continue;
            }
            let then = if metric == Metric::P90 {
                seasons
                    .iter()
                    .flat_map(|(back, w)| w.p90s(key, season(minute, *back), MIN_REQUESTS))
                    .collect()
            } else {
                values(&seasonal)
            };
            if let Some(then) = Band::learn(&then, WIDTH, floor)
                && value <= then.upper
            {
                continue;
            }
            out.push(Anomaly {
                key: key.clone(),
                metric,
                value,
                band,
                requests: now.total(),
                excess: excess(metric, now, &band),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.metric.cmp(&b.metric)));
    out
}

/// Chance of a minute as bad as this one when nothing is wrong, below which it is anomalous.
pub const SIGNIFICANCE: f64 = 1e-3;

/// Whether the minute's count is beyond what chance gives: its faults (errors, throttles)
/// against the usual rate, or its requests slower than the band's top against the tenth of
/// requests a p90 leaves above it, under a Poisson tail.
fn significant(metric: Metric, now: &Stats, band: &Band, usual: f64) -> bool {
    let total = now.total().max(0) as f64;
    let (count, expected) = match metric {
        Metric::FaultRate => (now.fault, usual * total),
        Metric::ErrorRate => (now.error_other + now.throttle, usual * total),
        Metric::ThrottleRate => (now.throttle, usual * total),
        _ => (slower_than(now, band.upper), 0.1 * total),
    };
    poisson_tail(count.max(0) as u64, expected.max(0.05)) < SIGNIFICANCE
}

/// Requests slower than `seconds` (whole histogram buckets above it).
fn slower_than(now: &Stats, seconds: f64) -> i64 {
    now.histogram
        .0
        .iter()
        .filter(|(b, _)| crate::graph::Histogram::bucket_value(**b - 1) >= seconds)
        .map(|(_, c)| *c)
        .sum()
}

/// P(X ≥ k) for X ~ Poisson(λ).
pub fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    // 1 − P(X < k), summing the terms in log space.
    let mut term = (-lambda).exp();
    let mut below = term;
    for i in 1..k {
        term *= lambda / i as f64;
        below += term;
        if term < 1e-300 && i as f64 > lambda {
            break;
        }
    }
    (1.0 - below).max(0.0)
}

fn excess(metric: Metric, now: &Stats, band: &Band) -> f64 {
    let total = now.total() as f64;
    match metric {
        Metric::FaultRate => now.fault as f64 - band.median.max(0.0) * total,
        Metric::ErrorRate => (now.error_other + now.throttle) as f64 - band.median.max(0.0) * total,
        Metric::ThrottleRate => now.throttle as f64 - band.median.max(0.0) * total,
        _ => now
            .histogram
            .0
            .iter()
            .filter(|(b, _)| crate::graph::Histogram::bucket_value(**b) > band.upper)
            .map(|(_, c)| *c as f64)
            .sum(),
    }
    .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::poisson_tail;

    #[test]
    fn poisson_tails_match_known_values() {
        // Computed independently (Python): P(X >= 3 | 0.18), P(X >= 15 | 6).
        assert!((poisson_tail(1, 1.0) - 0.632_120_6).abs() < 1e-6);
        assert!(
            (poisson_tail(3, 0.18) - 8.4977e-4).abs() < 1e-7,
            "{}",
            poisson_tail(3, 0.18)
        );
        assert!(
            (poisson_tail(15, 6.0) - 1.40035e-3).abs() < 1e-7,
            "{}",
            poisson_tail(15, 6.0)
        );
        assert_eq!(poisson_tail(0, 3.0), 1.0);
    }
}
