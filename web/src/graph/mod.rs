//! The service graph: statistics and histograms per node and edge, and the pure function that
//! turns aggregated statistics (from per-minute rollups, or from the samples of chosen traces)
//! into X-Ray's `Services` list through a petgraph graph.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::assembly::{NodeKey, Outcome, Sample};

pub mod entity;

pub use entity::{Entity, EntityStats, Side};

/// A map hashed with a fast, randomly seeded hasher, for maps on hot paths (analytics hashes
/// every value of every trace; alarm rounds look up every rule's nodes and edges).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Response-time histogram: logarithmic buckets (20 per decade) to counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Histogram(pub BTreeMap<i32, i64>);

impl Histogram {
    /// Bucket index of a response time in seconds.
    pub fn bucket(seconds: f64) -> i32 {
        let v = if seconds.is_finite() {
            seconds.max(1e-4)
        } else {
            1e-4
        };
        (v.log10() * 20.0).ceil() as i32
    }

    /// Upper bound of a bucket, in seconds, rounded to 4 significant digits.
    pub fn bucket_value(bucket: i32) -> f64 {
        let v = 10f64.powf(f64::from(bucket) / 20.0);
        let scale = 10f64.powi(3 - v.log10().floor() as i32);
        (v * scale).round() / scale
    }

    /// Adds `count` (possibly negative) observations of `seconds`.
    pub fn add(&mut self, seconds: f64, count: i64) {
        let e = self.0.entry(Self::bucket(seconds)).or_insert(0);
        *e += count;
        if *e == 0 {
            self.0.remove(&Self::bucket(seconds));
        }
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, c) in &other.0 {
            let e = self.0.entry(*b).or_insert(0);
            *e += c;
            if *e == 0 {
                self.0.remove(b);
            }
        }
    }

    /// X-Ray histogram entries (`Value`, `Count`), positive counts only.
    pub fn entries(&self) -> Vec<HistogramEntry> {
        self.0
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(b, c)| HistogramEntry {
                value: Self::bucket_value(*b),
                count: *c,
            })
            .collect()
    }
}

/// Request counts by outcome, total response time and the response-time histogram.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests without error, throttle or fault.
    pub ok: i64,
    /// Client errors other than throttling.
    pub error_other: i64,
    /// Throttled requests.
    pub throttle: i64,
    /// Faults.
    pub fault: i64,
    /// Sum of response times, seconds.
    pub total_response_time: f64,
    /// Response times.
    pub histogram: Histogram,
}

impl Stats {
    /// Total requests.
    pub fn total(&self) -> i64 {
        self.ok + self.error_other + self.throttle + self.fault
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) one request.
    pub fn add(&mut self, outcome: Outcome, response_time: f64, sign: i64) {
        match outcome {
            Outcome::Ok => self.ok += sign,
            Outcome::Error => self.error_other += sign,
            Outcome::Throttle => self.throttle += sign,
            Outcome::Fault => self.fault += sign,
        }
        self.total_response_time += response_time * sign as f64;
        self.histogram.add(response_time, sign);
    }

    /// Adds `sign` times the requests of one rollup entry: `count` requests with `outcome`,
    /// in response-time `bucket`, whose times sum to `response_time`.
    pub fn add_counted(
        &mut self,
        outcome: Outcome,
        bucket: i32,
        n: crate::assembly::RollupCount,
        sign: i64,
    ) {
        let count = n.count * sign;
        match outcome {
            Outcome::Ok => self.ok += count,
            Outcome::Error => self.error_other += count,
            Outcome::Throttle => self.throttle += count,
            Outcome::Fault => self.fault += count,
        }
        self.total_response_time += n.response_time * sign as f64;
        let e = self.histogram.0.entry(bucket).or_insert(0);
        *e += count;
        if *e == 0 {
            self.histogram.0.remove(&bucket);
        }
    }

    /// Adds other statistics.
    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.error_other += other.error_other;
        self.throttle += other.throttle;
        self.fault += other.fault;
        self.total_response_time += other.total_response_time;
        self.histogram.merge(&other.histogram);
    }

    /// The X-Ray statistics shape.
    pub fn to_api(&self) -> SummaryStatistics {
        let clamp = |v: i64| v.max(0);
        SummaryStatistics {
            ok_count: clamp(self.ok),
            error_statistics: ErrorStatistics {
                throttle_count: clamp(self.throttle),
                other_count: clamp(self.error_other),
                total_count: clamp(self.throttle) + clamp(self.error_other),
            },
            fault_statistics: FaultStatistics {
                other_count: clamp(self.fault),
                total_count: clamp(self.fault),
            },
            total_count: clamp(self.total()),
            total_response_time: (self.total_response_time.max(0.0) * 1e6).round() / 1e6,
        }
    }
}

/// X-Ray `HistogramEntry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistogramEntry {
    /// Bucket value, seconds.
    pub value: f64,
    /// Count.
    pub count: i64,
}

/// X-Ray `ErrorStatistics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorStatistics {
    /// Throttled (429).
    pub throttle_count: i64,
    /// Other client errors.
    pub other_count: i64,
    /// All client errors.
    pub total_count: i64,
}

/// X-Ray `FaultStatistics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FaultStatistics {
    /// Faults.
    pub other_count: i64,
    /// Faults.
    pub total_count: i64,
}

/// X-Ray `EdgeStatistics` / `ServiceStatistics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryStatistics {
    /// Ok requests.
    pub ok_count: i64,
    /// Client errors.
    pub error_statistics: ErrorStatistics,
    /// Server errors.
    pub fault_statistics: FaultStatistics,
    /// All requests.
    pub total_count: i64,
    /// Sum of response times.
    pub total_response_time: f64,
}

/// X-Ray `Edge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Edge {
    /// Callee's reference id.
    pub reference_id: usize,
    /// Window start.
    pub start_time: f64,
    /// Window end.
    pub end_time: f64,
    /// Statistics of the calls.
    pub summary_statistics: SummaryStatistics,
    /// Response times.
    pub response_time_histogram: Vec<HistogramEntry>,
    /// Aliases (unused, always empty).
    pub aliases: Vec<serde_json::Value>,
}

/// X-Ray `Service` (a node of the graph).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    /// Reference id, used by edges.
    pub reference_id: usize,
    /// Name.
    pub name: String,
    /// Names (the name).
    pub names: Vec<String>,
    /// Called by the client.
    pub root: bool,
    /// Type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// `active`, or `unknown` for inferred nodes.
    pub state: String,
    /// Window start.
    pub start_time: f64,
    /// Window end.
    pub end_time: f64,
    /// Outgoing edges.
    pub edges: Vec<Edge>,
    /// Statistics of its requests (absent for the client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_statistics: Option<SummaryStatistics>,
    /// Durations of its requests.
    pub duration_histogram: Vec<HistogramEntry>,
    /// Response times of its requests.
    pub response_time_histogram: Vec<HistogramEntry>,
}

/// Whether a node type is one given to nodes inferred from subsegments: `remote`, or
/// `AWS::<service>` (origins such as `AWS::EC2::Instance` have a resource part too).
pub fn is_inferred_type(kind: &str) -> bool {
    kind == "remote"
        || kind
            .strip_prefix("AWS::")
            .is_some_and(|rest| !rest.contains("::"))
}

/// Aggregated statistics per node and edge, before they become a graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphStats {
    /// Per node.
    pub nodes: BTreeMap<NodeKey, Stats>,
    /// Per edge.
    pub edges: BTreeMap<(NodeKey, NodeKey), Stats>,
}

impl GraphStats {
    /// Adds one sample.
    pub fn add_sample(&mut self, s: &Sample) {
        let src = NodeKey::decode(&s.src);
        if s.dst.is_empty() {
            self.nodes
                .entry(src)
                .or_default()
                .add(s.outcome, s.response_time, 1);
        } else {
            self.edges
                .entry((src, NodeKey::decode(&s.dst)))
                .or_default()
                .add(s.outcome, s.response_time, 1);
        }
    }

    /// Adds one rollup row.
    /// Adds what one trace contributes to the window's minutes (`first..=last`).
    pub fn add_trace(&mut self, rollup: &crate::assembly::TraceRollup, first: i64, last: i64) {
        for (k, n) in rollup
            .0
            .iter()
            .filter(|(k, _)| (first..=last).contains(&k.minute))
        {
            let src = NodeKey::decode(&k.src);
            let stats = if k.dst.is_empty() {
                self.nodes.entry(src).or_default()
            } else {
                self.edges
                    .entry((src, NodeKey::decode(&k.dst)))
                    .or_default()
            };
            stats.add_counted(k.outcome, k.bucket, *n, 1);
        }
    }

    /// Adds one stored rollup row.
    pub fn add_rollup(&mut self, row: &crate::store::RollupRow) {
        let src = NodeKey::decode(&row.src);
        if row.dst.is_empty() {
            self.nodes.entry(src).or_default().merge(&row.stats);
        } else {
            self.edges
                .entry((src, NodeKey::decode(&row.dst)))
                .or_default()
                .merge(&row.stats);
        }
    }

    /// Builds the graph and returns X-Ray's service list; reference ids follow the sorted order
    /// of node keys, so the output is deterministic.
    pub fn to_services(&self, start: f64, end: f64) -> Vec<Service> {
        let mut graph: DiGraph<NodeKey, ()> = DiGraph::new();
        let mut index: BTreeMap<NodeKey, NodeIndex> = BTreeMap::new();
        let mut keys: Vec<&NodeKey> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.total() > 0)
            .map(|(k, _)| k)
            .collect();
        for ((a, b), s) in &self.edges {
            if s.total() > 0 {
                keys.push(a);
                keys.push(b);
            }
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            index.insert(k.clone(), graph.add_node(k.clone()));
        }
        for ((a, b), s) in &self.edges {
            if s.total() > 0
                && let (Some(ia), Some(ib)) = (index.get(a), index.get(b))
            {
                graph.add_edge(*ia, *ib, ());
            }
        }
        let client = NodeKey::client();
        graph
            .node_indices()
            .map(|i| {
                let key = &graph[i];
                let mut edges: Vec<Edge> = graph
                    .neighbors_directed(i, petgraph::Direction::Outgoing)
                    .map(|j| {
                        let stats = self
                            .edges
                            .get(&(key.clone(), graph[j].clone()))
                            .cloned()
                            .unwrap_or_default();
                        Edge {
                            reference_id: j.index(),
                            start_time: start,
                            end_time: end,
                            summary_statistics: stats.to_api(),
                            response_time_histogram: stats.histogram.entries(),
                            aliases: Vec::new(),
                        }
                    })
                    .collect();
                edges.sort_by_key(|e| e.reference_id);
                let root = graph
                    .neighbors_directed(i, petgraph::Direction::Incoming)
                    .any(|j| graph[j] == client);
                let stats = self.nodes.get(key);
                let inferred = is_inferred_type(&key.kind);
                Service {
                    reference_id: i.index(),
                    name: key.name.clone(),
                    names: vec![key.name.clone()],
                    root,
                    r#type: (!key.kind.is_empty()).then(|| key.kind.clone()),
                    state: if inferred { "unknown" } else { "active" }.to_owned(),
                    start_time: start,
                    end_time: end,
                    edges,
                    summary_statistics: if *key == client {
                        None
                    } else {
                        Some(stats.map(Stats::to_api).unwrap_or_default())
                    },
                    duration_histogram: stats.map(|s| s.histogram.entries()).unwrap_or_default(),
                    response_time_histogram: stats
                        .map(|s| s.histogram.entries())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_monotonic_and_cancel() {
        let mut h = Histogram::default();
        h.add(0.05, 1);
        h.add(0.2, 2);
        h.add(0.05, -1);
        let e = h.entries();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].count, 2);
        assert!(e[0].value >= 0.2 && e[0].value < 0.23, "{}", e[0].value);
        assert!(Histogram::bucket(0.01) < Histogram::bucket(0.011));
    }

    #[test]
    fn stats_split_errors_and_faults() {
        let mut s = Stats::default();
        s.add(Outcome::Ok, 0.1, 1);
        s.add(Outcome::Error, 0.1, 1);
        s.add(Outcome::Throttle, 0.1, 1);
        s.add(Outcome::Fault, 0.2, 1);
        let api = s.to_api();
        assert_eq!(api.total_count, 4);
        assert_eq!(api.error_statistics.total_count, 2);
        assert_eq!(api.error_statistics.throttle_count, 1);
        assert_eq!(api.fault_statistics.total_count, 1);
        assert!((api.total_response_time - 0.5).abs() < 1e-9);
    }
}
