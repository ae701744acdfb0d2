//! Anomalies of one minute: for every node and edge, its fault, error and throttle rates and
//! its p90 response time against the band learned from its own previous two hours (the alarm's
//! median ± MAD band). Only rises count: a service getting better is not an incident.

use std::collections::BTreeMap;

use crate::alarms::band::Band;
use crate::alarms::metric::Metric;
use crate::alarms::series::Key;
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

/// The anomalies of minute `minute` among `series` (statistics by minute of each key).
pub fn anomalies_at<'a>(
    series: impl Iterator<Item = (&'a Key, &'a BTreeMap<i64, Stats>)>,
    minute: i64,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, minutes) in series {
        let Some(now) = minutes.get(&minute).filter(|s| s.total() >= MIN_REQUESTS) else {
            continue;
        };
        let history: Vec<&Stats> = minutes
            .range(minute - HISTORY_MINUTES..minute)
            .map(|(_, s)| s)
            .filter(|s| s.total() >= MIN_REQUESTS)
            .collect();
        for metric in METRICS {
            let Some(value) = metric.value(now, 60, 0) else {
                continue;
            };
            let past: Vec<f64> = history
                .iter()
                .filter_map(|s| metric.value(s, 60, 0))
                .collect();
            let Some(band) = Band::learn(&past, WIDTH, |median| metric.noise_floor(median, 60))
            else {
                continue;
            };
            if value > band.upper {
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
    }
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.metric.cmp(&b.metric)));
    out
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
