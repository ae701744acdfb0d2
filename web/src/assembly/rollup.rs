//! What one trace adds to the graph rollups, as stores keep it with its summary.

use std::collections::{BTreeMap, HashMap};

use super::{Outcome, Sample};

/// What a trace adds to the graph rollups: its samples counted by minute, node or edge,
/// outcome and response-time bucket, with the sum of their response times. Its size is bounded
/// by minutes × nodes and edges × buckets however many documents the trace has, so storing it
/// with every fold of a long trace costs the same at its 500th piece as at its first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceRollup(pub BTreeMap<RollupKey, RollupCount>);

/// Key of a [`TraceRollup`] entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey {
    /// Epoch minute.
    pub minute: i64,
    /// Node, or the edge's caller (encoded node key).
    pub src: String,
    /// The edge's callee, empty for a node.
    pub dst: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Response-time bucket ([`crate::graph::Histogram::bucket`]).
    pub bucket: i32,
}

/// Requests and their summed response time under one [`RollupKey`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RollupCount {
    /// Requests.
    pub count: i64,
    /// Sum of their response times, seconds.
    pub response_time: f64,
}

impl TraceRollup {
    /// The samples added up (keys borrowed while counting: a long trace's many samples share
    /// a few keys, which are copied once each).
    pub fn of(samples: &[Sample]) -> Self {
        let mut counted: HashMap<(i64, &str, &str, Outcome, i32), RollupCount> = HashMap::new();
        for s in samples {
            let bucket = crate::graph::Histogram::bucket(s.response_time);
            let e = counted
                .entry((s.minute, &s.src, &s.dst, s.outcome, bucket))
                .or_default();
            e.count += 1;
            e.response_time += s.response_time;
        }
        let mut out = Self::default();
        for ((minute, src, dst, outcome, bucket), n) in counted {
            out.add(
                RollupKey {
                    minute,
                    src: src.to_owned(),
                    dst: dst.to_owned(),
                    outcome,
                    bucket,
                },
                n,
            );
        }
        out
    }

    /// Adds requests under a key.
    pub fn add(&mut self, key: RollupKey, n: RollupCount) {
        let e = self.0.entry(key).or_default();
        e.count += n.count;
        e.response_time += n.response_time;
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
