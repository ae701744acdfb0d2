//! The anomaly band: the range a metric usually stays in, learned from its own history with
//! statistics that the anomalies themselves barely move (median and median absolute deviation).

use serde::{Deserialize, Serialize};

/// Fewest history values a band is learned from.
pub const MIN_HISTORY: usize = 10;

/// Scale that makes the median absolute deviation estimate a normal standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// A learned band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Band {
    /// Lower edge.
    pub lower: f64,
    /// Usual value.
    pub median: f64,
    /// Upper edge.
    pub upper: f64,
}

impl Band {
    /// The band `width` robust standard deviations either side of the history's median, never
    /// narrower than `floor` either side; `None` with fewer than [`MIN_HISTORY`] values.
    pub fn learn(history: &[f64], width: f64, floor: impl Fn(f64) -> f64) -> Option<Band> {
        let mut values: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
        if values.len() < MIN_HISTORY {
            return None;
        }
        let median = median(&mut values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let sigma = MAD_TO_SIGMA * self::median(&mut deviations);
        let half = (width * sigma).max(floor(median));
        Some(Band {
            lower: median - half,
            median,
            upper: median + half,
        })
    }
}

/// Median of a non-empty slice (reorders it).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_anomalies_in_the_history_barely_move_the_band() {
        let mut history: Vec<f64> = (0..60).map(|i| 0.10 + 0.01 * f64::from(i % 5)).collect();
        let clean = Band::learn(&history, 3.0, |_| 0.0).unwrap();
        history.extend([5.0, 7.0, 9.0, 11.0]);
        let dirty = Band::learn(&history, 3.0, |_| 0.0).unwrap();
        assert!((clean.median - 0.12).abs() < 1e-9, "{clean:?}");
        assert!(
            (dirty.upper - clean.upper).abs() < 0.02,
            "{clean:?} {dirty:?}"
        );
        assert!(dirty.upper < 0.2);
    }

    #[test]
    fn a_flat_history_gets_the_floor_and_a_short_one_no_band() {
        let flat = vec![0.0; 30];
        let band = Band::learn(&flat, 3.0, |_| 0.02).unwrap();
        assert_eq!((band.lower, band.upper), (-0.02, 0.02));
        assert!(Band::learn(&flat[..MIN_HISTORY - 1], 3.0, |_| 0.02).is_none());
    }
}
