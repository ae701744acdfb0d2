//! Two sets of traces side by side (two filters, two windows, or a selection against the
//! rest): both analyses, and each breakdown with both shares and their difference, the values
//! and the breakdowns that tell B from A most first.

use serde::Serialize;

use super::{Analysis, Dimension, TOP_VALUES, Tally, Value};

/// Two sets compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Compared {
    /// Set A.
    pub a: Analysis,
    /// Set B.
    pub b: Analysis,
    /// Breakdowns of both, the one with the largest difference of shares first.
    pub breakdowns: Vec<ComparedBreakdown>,
}

/// One dimension in both sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComparedBreakdown {
    /// What is broken down.
    pub dimension: String,
    /// Values, the largest absolute difference of shares first.
    pub values: Vec<ComparedEntry>,
}

/// One value in both sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComparedEntry {
    /// The value.
    pub value: Value,
    /// Traces of A with it.
    pub count_a: u64,
    /// Their share of A.
    pub share_a: f64,
    /// Traces of B with it.
    pub count_b: u64,
    /// Their share of B.
    pub share_b: f64,
    /// `share_b - share_a`.
    pub difference: f64,
    /// The filter term selecting traces with this value.
    pub filter: String,
}

/// Compares set B with set A. The candidates of each breakdown are the most frequent values
/// of either set (at most [`TOP_VALUES`] from each); of those, the [`TOP_VALUES`] with the
/// largest absolute difference of shares are kept.
pub fn compare(a: &Tally, b: &Tally) -> Compared {
    let mut dims: Vec<&Dimension> = a.dimensions().into_iter().chain(b.dimensions()).collect();
    dims.sort();
    dims.dedup();
    let mut breakdowns: Vec<ComparedBreakdown> = dims
        .into_iter()
        .filter_map(|d| {
            let mut candidates: Vec<Value> = a
                .ranked(d)
                .into_iter()
                .chain(b.ranked(d))
                .map(|(v, _)| v)
                .collect();
            candidates.sort_by_key(|v| v.key());
            candidates.dedup_by(|x, y| x.key() == y.key());
            let mut values: Vec<ComparedEntry> = candidates
                .into_iter()
                .map(|v| {
                    let (count_a, count_b) = (a.count_of(d, &v), b.count_of(d, &v));
                    let (share_a, share_b) = (a.share(count_a), b.share(count_b));
                    ComparedEntry {
                        filter: d.filter(&v).to_string(),
                        value: v,
                        count_a,
                        share_a,
                        count_b,
                        share_b,
                        difference: share_b - share_a,
                    }
                })
                .collect();
            values.sort_by(|x, y| {
                y.difference
                    .abs()
                    .total_cmp(&x.difference.abs())
                    .then_with(|| x.value.key().cmp(&y.value.key()))
            });
            values.truncate(TOP_VALUES);
            (!values.is_empty()).then(|| ComparedBreakdown {
                dimension: d.name(),
                values,
            })
        })
        .collect();
    breakdowns.sort_by(|x, y| {
        let top = |b: &ComparedBreakdown| b.values.first().map_or(0.0, |e| e.difference.abs());
        top(y).total_cmp(&top(x))
    });
    Compared {
        a: a.finish(),
        b: b.finish(),
        breakdowns,
    }
}
