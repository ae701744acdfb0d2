//! Trace analytics: what a set of traces (a filter over a window) looks like — its
//! response-time distribution, its requests and fault/error/throttle counts over time, and
//! ranked breakdowns (root causes, exceptions, annotations, URLs, methods, statuses, users,
//! instances, zones) whose every value carries the filter that narrows the set to it — and the
//! comparison of two sets ([`compare`]).
//!
//! A [`Tally`] folds traces one at a time in bounded memory, by their [`Facets`]; [`collect`]
//! feeds it the set's traces from a store.

mod collect;
mod compare;
mod dimension;
mod facets;

use serde::Serialize;

pub use collect::collect;
#[cfg(test)]
pub(crate) use collect::{collect_facets, collect_newest};
pub use compare::{Compared, ComparedBreakdown, ComparedEntry, compare};
pub use dimension::{Dimension, Value};
pub use facets::{Facets, Text};

use crate::assembly::TraceSummary;
use crate::filter::{Expr, Key, Literal, NumberKey, Op};
use crate::graph::FastMap;

/// Most traces one analysis folds (the newest of the set).
pub const MAX_TRACES: usize = 100_000;
/// Most candidates one analysis examines (a selective filter over a long window stops here).
pub const MAX_EXAMINED: usize = 1_000_000;
/// Values shown per breakdown.
pub const TOP_VALUES: usize = 10;
/// Distinct values counted per dimension; values past it are counted as `OtherValues`.
pub const MAX_VALUES: usize = 10_000;
/// Annotation keys broken down; keys past it are not.
pub const MAX_ANNOTATION_KEYS: usize = 64;
/// Most points of the time series.
pub const MAX_POINTS: usize = 60;

/// Upper bounds of the response-time buckets, seconds (1-2-5 steps from 1 ms to 100 s); a
/// last bucket takes what is slower. Fixed, so two sets' distributions overlay.
pub const BUCKET_BOUNDS: [f64; 16] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

/// A set of traces, analysed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Analysis {
    /// Traces folded.
    pub traces: u64,
    /// The set had more traces than [`MAX_TRACES`] (or the search stopped at
    /// [`MAX_EXAMINED`]): these are its newest.
    pub truncated: bool,
    /// Response-time buckets.
    pub histogram: Vec<Bucket>,
    /// Requests and outcomes over time.
    pub time_series: Vec<Point>,
    /// Breakdowns with at least one value.
    pub breakdowns: Vec<Breakdown>,
}

/// One response-time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bucket {
    /// Lower bound, seconds (inclusive).
    pub from: f64,
    /// Upper bound, seconds (exclusive); `None` for the last bucket.
    pub to: Option<f64>,
    /// Traces whose response time falls in it.
    pub count: u64,
    /// The filter narrowing a set to this bucket.
    pub filter: String,
}

/// Traces that started in one step of the window, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Point {
    /// Start of the step, epoch seconds.
    pub timestamp: f64,
    /// Traces.
    pub requests: u64,
    /// With a client error (4xx, throttles included, as the filter's `error`).
    pub error: u64,
    /// Throttled (429).
    pub throttle: u64,
    /// Faulted (5xx).
    pub fault: u64,
}

/// The values of one dimension, most frequent first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Breakdown {
    /// What is broken down ([`Dimension::name`]).
    pub dimension: String,
    /// The most frequent values (at most [`TOP_VALUES`]).
    pub values: Vec<Entry>,
    /// Distinct values not shown.
    pub other_values: u64,
}

/// One value of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Traces with it.
    pub count: u64,
    /// Their share of the set, 0 to 1.
    pub share: f64,
    /// The filter term selecting them (AND it with the set's filter to narrow the set).
    pub filter: String,
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Literal::Str(v) => s.serialize_str(v),
            Literal::Num(v) => s.serialize_f64(*v),
            Literal::Bool(v) => s.serialize_bool(*v),
        }
    }
}

/// The counts of one dimension's values, by [`Value::key`].
#[derive(Debug, Clone)]
struct Counts {
    dimension: Dimension,
    by_value: FastMap<String, u64>,
    /// Values not counted past [`MAX_VALUES`].
    overflow: u64,
}

impl Counts {
    /// Counts `n` traces with the value of key `key`.
    fn add(&mut self, key: &str, n: u64) {
        if let Some(m) = self.by_value.get_mut(key) {
            *m += n;
        } else if self.by_value.len() >= MAX_VALUES {
            self.overflow += n;
        } else {
            self.by_value.insert(key.to_owned(), n);
        }
    }

    /// Counts one trace with the value of key `key`.
    fn count(&mut self, key: &str) {
        self.add(key, 1);
    }
}

/// A set of traces being folded.
#[derive(Debug, Clone)]
pub struct Tally {
    start: f64,
    step: f64,
    traces: u64,
    truncated: bool,
    histogram: [u64; BUCKET_BOUNDS.len() + 1],
    points: Vec<Point>,
    /// By [`Dimension::code`].
    counts: FastMap<String, Counts>,
    annotation_keys: usize,
}

impl Tally {
    /// An empty tally for traces of the window `[start, end]`.
    pub fn new(start: f64, end: f64) -> Self {
        let span = (end - start).max(60.0);
        let step = ((span / MAX_POINTS as f64 / 60.0).ceil() * 60.0).max(60.0);
        let n = ((span / step).ceil() as usize).clamp(1, MAX_POINTS + 1);
        Self {
            start,
            step,
            traces: 0,
            truncated: false,
            histogram: [0; BUCKET_BOUNDS.len() + 1],
            points: (0..n)
                .map(|i| Point {
                    timestamp: start + step * i as f64,
                    ..Point::default()
                })
                .collect(),
            counts: FastMap::default(),
            annotation_keys: 0,
        }
    }

    /// Traces folded so far.
    pub fn traces(&self) -> u64 {
        self.traces
    }

    /// Folds one trace of the set.
    pub fn add(&mut self, t: &TraceSummary) {
        self.add_facets(&Facets::of(t));
    }

    /// Folds one trace of the set, by its facets.
    pub fn add_facets(&mut self, f: &Facets<'_>) {
        self.traces += 1;
        if let Some(rt) = f.response_time.filter(|r| r.is_finite()) {
            self.histogram[bucket_of(rt)] += 1;
        }
        let last = self.points.len() - 1;
        let i = ((f.start_time - self.start) / self.step).floor().max(0.0) as usize;
        if let Some(p) = self.points.get_mut(i.min(last)) {
            p.requests += 1;
            p.error += u64::from(f.has_error());
            p.throttle += u64::from(f.has_throttle());
            p.fault += u64::from(f.has_fault());
        }
        // Values come grouped by dimension: each group's counts are looked up once.
        for group in f.values.chunk_by(|a, b| a.0 == b.0) {
            if let Some(counts) = self.counts_of(&group[0].0.0) {
                for (_, key) in group {
                    counts.count(&key.0);
                }
            }
        }
    }

    /// The counts of the dimension of code `code`, made on first use (`None` for an unknown
    /// code or an annotation key past [`MAX_ANNOTATION_KEYS`]).
    fn counts_of(&mut self, code: &str) -> Option<&mut Counts> {
        if !self.counts.contains_key(code) {
            let dimension = Dimension::from_code(code)?;
            if matches!(dimension, Dimension::Annotation(_)) {
                if self.annotation_keys >= MAX_ANNOTATION_KEYS {
                    return None;
                }
                self.annotation_keys += 1;
            }
            let counts = Counts {
                dimension,
                by_value: FastMap::default(),
                overflow: 0,
            };
            self.counts.insert(code.to_owned(), counts);
        }
        self.counts.get_mut(code)
    }

    /// Marks the set as larger than what was folded.
    pub fn mark_truncated(&mut self) {
        self.truncated = true;
    }

    /// Adds what `other` folded (a tally of the same window, other traces).
    fn merge(&mut self, other: Tally) {
        self.traces += other.traces;
        self.truncated |= other.truncated;
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
        for (mine, theirs) in self.points.iter_mut().zip(other.points) {
            mine.requests += theirs.requests;
            mine.error += theirs.error;
            mine.throttle += theirs.throttle;
            mine.fault += theirs.fault;
        }
        for (code, theirs) in other.counts {
            if let Some(mine) = self.counts_of(&code) {
                mine.overflow += theirs.overflow;
                for (key, n) in &theirs.by_value {
                    mine.add(key, *n);
                }
            }
        }
    }

    /// Traces with `value` in dimension `d`.
    fn count_of(&self, d: &Dimension, value: &Value) -> u64 {
        self.counts
            .get(&d.code())
            .and_then(|c| c.by_value.get(&value.key()))
            .copied()
            .unwrap_or(0)
    }

    /// The [`TOP_VALUES`] most frequent values of `d`, most frequent first (ties by key).
    fn ranked(&self, d: &Dimension) -> Vec<(Value, u64)> {
        let Some(c) = self.counts.get(&d.code()) else {
            return Vec::new();
        };
        let mut all: Vec<(&str, u64)> = c.by_value.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.into_iter()
            .filter_map(|(k, n)| Some((Value::from_key(k)?, n)))
            .take(TOP_VALUES)
            .collect()
    }

    fn share(&self, n: u64) -> f64 {
        if self.traces == 0 {
            0.0
        } else {
            n as f64 / self.traces as f64
        }
    }

    /// The dimensions counted, in the order a page shows them.
    fn dimensions(&self) -> Vec<&Dimension> {
        let mut dims: Vec<&Dimension> = self.counts.values().map(|c| &c.dimension).collect();
        dims.sort();
        dims
    }

    /// The analysis of what was folded.
    pub fn finish(&self) -> Analysis {
        let breakdowns = self
            .dimensions()
            .into_iter()
            .filter_map(|d| Some((d, self.counts.get(&d.code())?)))
            .filter(|(_, c)| !c.by_value.is_empty())
            .map(|(d, c)| {
                let ranked = self.ranked(d);
                let shown = ranked.len();
                Breakdown {
                    dimension: d.name(),
                    values: ranked
                        .into_iter()
                        .map(|(v, n)| entry(d, &v, n, self.share(n)))
                        .collect(),
                    other_values: (c.by_value.len() - shown) as u64 + c.overflow,
                }
            })
            .collect();
        Analysis {
            traces: self.traces,
            truncated: self.truncated,
            histogram: self
                .histogram
                .iter()
                .enumerate()
                .map(|(i, &count)| {
                    let (from, to) = bucket_range(i);
                    Bucket {
                        from,
                        to,
                        count,
                        filter: range_filter(from, to).to_string(),
                    }
                })
                .collect(),
            time_series: self.points.clone(),
            breakdowns,
        }
    }
}

fn entry(d: &Dimension, v: &Value, count: u64, share: f64) -> Entry {
    Entry {
        value: v.clone(),
        count,
        share,
        filter: d.filter(v).to_string(),
    }
}

/// The bucket a response time falls in.
pub fn bucket_of(seconds: f64) -> usize {
    BUCKET_BOUNDS
        .iter()
        .position(|b| seconds < *b)
        .unwrap_or(BUCKET_BOUNDS.len())
}

/// `[from, to)` of bucket `i`.
pub fn bucket_range(i: usize) -> (f64, Option<f64>) {
    let from = if i == 0 { 0.0 } else { BUCKET_BOUNDS[i - 1] };
    (from, BUCKET_BOUNDS.get(i).copied())
}

/// The filter selecting response times in `[from, to)`.
pub fn range_filter(from: f64, to: Option<f64>) -> Expr {
    let rt = |op, v| Expr::Compare(Key::Number(NumberKey::ResponseTime), op, Literal::Num(v));
    match to {
        Some(to) => Expr::And(vec![rt(Op::Ge, from), rt(Op::Lt, to)]),
        None => rt(Op::Ge, from),
    }
}

#[cfg(test)]
mod tests;
