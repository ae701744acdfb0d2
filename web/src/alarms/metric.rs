//! What an alarm measures in one period, from the period's statistics.

use serde::{Deserialize, Serialize};

use crate::graph::{Histogram, Stats};

/// A measured quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Faults / requests.
    FaultRate,
    /// Client errors (throttles included, as X-Ray counts them) / requests.
    ErrorRate,
    /// Throttles / requests.
    ThrottleRate,
    /// Requests per second over the period.
    RequestRate,
    /// Median response time, seconds.
    P50,
    /// 90th percentile response time, seconds.
    P90,
    /// 99th percentile response time, seconds.
    P99,
}

impl Metric {
    /// Every metric, in the order pages list them.
    pub const ALL: [Metric; 7] = [
        Metric::FaultRate,
        Metric::ErrorRate,
        Metric::ThrottleRate,
        Metric::RequestRate,
        Metric::P50,
        Metric::P90,
        Metric::P99,
    ];

    /// The value over statistics of `period` seconds; `None` when there is nothing to measure
    /// (no requests, or fewer than `min_requests`, for everything but the request rate).
    pub fn value(self, stats: &Stats, period: u32, min_requests: u64) -> Option<f64> {
        let total = stats.total().max(0);
        let share = |n: i64| Some(n.max(0) as f64 / total as f64);
        match self {
            Metric::RequestRate => Some(total as f64 / f64::from(period.max(1))),
            _ if total == 0 || (total as u64) < min_requests => None,
            Metric::FaultRate => share(stats.fault),
            Metric::ErrorRate => share(stats.error_other + stats.throttle),
            Metric::ThrottleRate => share(stats.throttle),
            Metric::P50 => percentile(&stats.histogram, 0.50),
            Metric::P90 => percentile(&stats.histogram, 0.90),
            Metric::P99 => percentile(&stats.histogram, 0.99),
        }
    }

    /// Whether the value needs the response-time histogram (percentiles).
    pub fn needs_histogram(self) -> bool {
        matches!(self, Metric::P50 | Metric::P90 | Metric::P99)
    }

    /// The smallest half-width an anomaly band may have around `median`: what ordinary noise
    /// of this metric looks like even when its history is flat (a fault rate of exactly 0 every
    /// minute must not make one fault an anomaly).
    pub fn noise_floor(self, median: f64, period: u32) -> f64 {
        match self {
            Metric::FaultRate | Metric::ErrorRate | Metric::ThrottleRate => 0.02,
            // Poisson noise of the request count, as a rate.
            Metric::RequestRate => {
                let p = f64::from(period.max(1));
                (median * p).max(1.0).sqrt() / p
            }
            // One histogram bucket is about 12%; a quarter of the median plus 5 ms.
            Metric::P50 | Metric::P90 | Metric::P99 => 0.25 * median.abs() + 0.005,
        }
    }

    /// How a value reads: percentages, requests per second or milliseconds.
    pub fn display(self, value: f64) -> String {
        match self {
            Metric::FaultRate | Metric::ErrorRate | Metric::ThrottleRate => {
                format!("{:.1}%", value * 100.0)
            }
            Metric::RequestRate => format!("{value:.2}/s"),
            Metric::P50 | Metric::P90 | Metric::P99 => format!("{:.0} ms", value * 1000.0),
        }
    }
}

/// The response time below which a share `q` of the histogram's requests fall (the upper bound
/// of the bucket holding that rank).
pub fn percentile(histogram: &Histogram, q: f64) -> Option<f64> {
    let total: i64 = histogram.0.values().filter(|c| **c > 0).sum();
    if total <= 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bucket, count) in histogram.0.iter().filter(|(_, c)| **c > 0) {
        seen += count;
        if seen >= rank {
            return Some(Histogram::bucket_value(*bucket));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembly::Outcome;

    fn stats(outcomes: &[(Outcome, f64, i64)]) -> Stats {
        let mut s = Stats::default();
        for (o, t, n) in outcomes {
            s.add(*o, *t, *n);
        }
        s
    }

    #[test]
    fn rates_share_the_periods_requests() {
        let s = stats(&[
            (Outcome::Ok, 0.01, 6),
            (Outcome::Fault, 0.5, 2),
            (Outcome::Error, 0.02, 1),
            (Outcome::Throttle, 0.02, 1),
        ]);
        assert_eq!(Metric::FaultRate.value(&s, 60, 0), Some(0.2));
        assert_eq!(Metric::ErrorRate.value(&s, 60, 0), Some(0.2));
        assert_eq!(Metric::ThrottleRate.value(&s, 60, 0), Some(0.1));
        assert_eq!(Metric::RequestRate.value(&s, 120, 0), Some(10.0 / 120.0));
        assert_eq!(Metric::FaultRate.value(&s, 60, 11), None);
        let empty = Stats::default();
        assert_eq!(Metric::FaultRate.value(&empty, 60, 0), None);
        assert_eq!(Metric::RequestRate.value(&empty, 60, 0), Some(0.0));
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut s = stats(&[(Outcome::Ok, 0.010, 98)]);
        s.add(Outcome::Ok, 2.0, 2);
        let p50 = Metric::P50.value(&s, 60, 0).unwrap();
        let p99 = Metric::P99.value(&s, 60, 0).unwrap();
        assert!((0.010..0.0125).contains(&p50), "{p50}");
        assert!((2.0..2.3).contains(&p99), "{p99}");
        assert_eq!(Metric::P90.value(&s, 60, 0), Some(p50));
    }
}
