//! Trace assembly: what each stored document contributes (its "facts", extracted once at
//! ingest), how the facts of a trace's documents fold into its summary and its service-graph
//! samples, and how streamed subsegments are put back into their segments for `BatchGetTraces`.
//!
//! The fold is pure and order-independent: the writer re-folds a trace whenever one of its
//! documents arrives, so pieces may come in any order, in-progress documents may be replaced,
//! and duplicates change nothing.

mod causes;
mod documents;
mod facts;
mod rollup;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use causes::Causes;
pub use documents::{StoredDocument, assemble_documents};
pub use facts::{
    AnnotationValue, CallFacts, CausePath, DocFacts, ExceptionFacts, HttpFacts, PathEntity,
    PathStep, ResourceFacts,
};
pub use rollup::{RollupCount, RollupKey, TraceRollup};

/// Whether a document replaces the one stored under the same id: a complete document replaces
/// an in-progress one; an in-progress one never replaces a complete one; equal states are
/// duplicates (idempotent). The one home of the rule (the stores' writers apply it through
/// [`crate::store::live::LiveTrace::admit`]).
pub fn replaces(stored_in_progress: bool, new_in_progress: bool) -> bool {
    stored_in_progress || !new_in_progress
}

/// A service-graph node: a service name and its type (`origin`, `client`, `remote`,
/// `AWS::DynamoDB`, ... or empty when the segment has no origin). Stored as its
/// [`NodeKey::encode`] text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// Service name.
    pub name: String,
    /// Service type; empty when unknown.
    pub kind: String,
}

impl NodeKey {
    /// The node standing for the callers of root services.
    pub fn client() -> Self {
        Self {
            name: "client".to_owned(),
            kind: "client".to_owned(),
        }
    }

    /// Compact text form used as a store key: `type|name` (`|` is not allowed in names).
    pub fn encode(&self) -> String {
        format!("{}|{}", self.kind, self.name)
    }

    /// Inverse of [`NodeKey::encode`].
    pub fn decode(text: &str) -> Self {
        match text.split_once('|') {
            Some((kind, name)) => Self {
                name: name.to_owned(),
                kind: kind.to_owned(),
            },
            None => Self {
                name: text.to_owned(),
                kind: String::new(),
            },
        }
    }
}

/// Outcome of one request as the service graph counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Outcome {
    /// No error, throttle or fault.
    Ok,
    /// A client error other than throttling (4xx).
    Error,
    /// Throttled (429); also counted as an error.
    Throttle,
    /// A server error (5xx or exception).
    Fault,
}

impl Outcome {
    /// Classifies flags, fault first.
    pub fn from_flags(error: bool, throttle: bool, fault: bool) -> Self {
        if fault {
            Self::Fault
        } else if throttle {
            Self::Throttle
        } else if error {
            Self::Error
        } else {
            Self::Ok
        }
    }
}

/// One request's contribution to a node (`dst` empty) or an edge, in one minute. Stored as
/// the array `[src, dst, minute, outcome, response_time]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Node, or the edge's caller, encoded with [`NodeKey::encode`].
    pub src: String,
    /// The edge's callee, or empty for a node sample.
    pub dst: String,
    /// Epoch minute of the request's start.
    pub minute: i64,
    /// Outcome.
    pub outcome: Outcome,
    /// Response time in seconds.
    pub response_time: f64,
}

/// Per-service view of a trace, used by `service(...) { }` filters and summaries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceFacts {
    /// Node.
    pub key: NodeKey,
    /// Some request of this service faulted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// Some request of this service had a client error.
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Some request of this service was throttled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Longest response time seen for this service in the trace.
    #[serde(default)]
    pub response_time: f64,
    /// HTTP facts of its first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
    /// Called by the client (a root service).
    #[serde(default, skip_serializing_if = "is_false")]
    pub root: bool,
    /// Inferred from a `remote`/`aws` subsegment.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inferred: bool,
    /// Calls other services.
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_downstream: bool,
    /// The `aws.account_id` of its first segment that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// Per-edge view of a trace, used by `edge(a, b) { }` filters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EdgeFacts {
    /// Caller.
    pub src: NodeKey,
    /// Callee.
    pub dst: NodeKey,
    /// Some call faulted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// Some call had a client error.
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Some call was throttled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Longest response time of a call on this edge.
    #[serde(default)]
    pub response_time: f64,
}

/// One annotation value of a trace and the services that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationEntry {
    /// Key.
    pub key: String,
    /// Value.
    pub value: AnnotationValue,
    /// Services that recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<NodeKey>,
}

/// A trace's summary, kept up to date at ingest; everything searches and lists need.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TraceSummary {
    /// Trace id text.
    pub id: String,
    /// Earliest start of its documents, epoch seconds.
    pub start_time: f64,
    /// Latest end of its documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// `end_time - start_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Response time of the entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
    /// Some fault anywhere in the trace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_fault: bool,
    /// Some error anywhere in the trace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_error: bool,
    /// Some throttle anywhere in the trace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_throttle: bool,
    /// Pieces are missing or still in progress.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_partial: bool,
    /// HTTP facts of the entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
    /// The root service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<NodeKey>,
    /// Users and the services that reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<(String, Vec<NodeKey>)>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<AnnotationEntry>,
    /// Services (real and inferred).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceFacts>,
    /// Edges between services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeFacts>,
    /// Exception messages (bounded) and where the trace ran.
    #[serde(default, skip_serializing_if = "ResourceFacts::is_empty")]
    pub resources: ResourceFacts,
    /// Number of stored documents.
    pub document_count: usize,
    /// Where its faults started: per root cause, the services on the way to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_root_causes: Vec<RootCause>,
    /// Where its errors (and throttles) started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_root_causes: Vec<RootCause>,
    /// Where its response time went: the entry point's slowest path, through the services it
    /// called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_time_root_causes: Vec<RootCause>,
    /// When a piece of the trace was last stored, epoch seconds (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<f64>,
}

/// One service on a root-cause path and the entities within it on that path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCauseService {
    /// Service.
    pub key: NodeKey,
    /// Inferred from a call rather than from the service's own segment.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inferred: bool,
    /// Entities from the service's segment down.
    pub entity_path: Vec<PathEntity>,
}

/// A root cause: the services from the one that saw it first (the entry point, or the service
/// where it was recorded) down to the one where it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// Services, the one where it started last.
    pub services: Vec<RootCauseService>,
    /// The trace's client saw it (the entry point's own response carries it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub client_impacting: bool,
}

/// Most root causes of each kind kept per trace.
const MAX_ROOT_CAUSES: usize = 10;

/// The fold of a trace's documents: its summary and its graph samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceView {
    /// Summary.
    pub summary: TraceSummary,
    /// Node and edge samples.
    pub samples: Vec<Sample>,
}

/// A fold as stores keep it: the summary and the samples added up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceFold {
    /// Summary.
    pub summary: TraceSummary,
    /// Samples added up.
    pub rollup: TraceRollup,
}

impl From<TraceView> for TraceFold {
    fn from(view: TraceView) -> Self {
        Self {
            rollup: TraceRollup::of(&view.samples),
            summary: view.summary,
        }
    }
}

/// Epoch minute of a time in seconds.
pub fn minute_of(seconds: f64) -> i64 {
    (seconds / 60.0).floor() as i64
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, value: T) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Folds the facts of all stored documents of one trace into its summary and samples.
pub fn fold_trace(trace_id: &str, docs: &[DocFacts]) -> TraceView {
    fold_refs(trace_id, &docs.iter().collect::<Vec<_>>())
}

/// [`fold_trace`] over borrowed facts (what the stores' writers hold).
pub fn fold_refs(trace_id: &str, docs: &[&DocFacts]) -> TraceView {
    // Which document holds each id (the document's own id and its nested subsegments).
    let mut holder: HashMap<u64, usize> = HashMap::new();
    for (i, d) in docs.iter().enumerate() {
        holder.entry(d.id.as_u64()).or_insert(i);
        for inner in &d.inner_ids {
            holder.entry(inner.as_u64()).or_insert(i);
        }
    }
    // The segment document that owns each document (subsegments follow their parents).
    let owner: Vec<Option<usize>> = (0..docs.len())
        .map(|i| {
            let mut at = i;
            for _ in 0..=docs.len() {
                let d = &docs[at];
                if !d.subsegment {
                    return Some(at);
                }
                let parent = d.parent_id.as_ref()?;
                at = *holder.get(&parent.as_u64())?;
            }
            None
        })
        .collect();

    let mut summary = TraceSummary {
        id: trace_id.to_owned(),
        start_time: f64::INFINITY,
        document_count: docs.len(),
        ..TraceSummary::default()
    };
    let mut samples = Vec::new();
    let mut services: BTreeMap<NodeKey, ServiceFacts> = BTreeMap::new();
    let mut edges: BTreeMap<(NodeKey, NodeKey), EdgeFacts> = BTreeMap::new();
    let mut resolved_calls: HashSet<u64> = HashSet::new();
    let mut end = f64::NEG_INFINITY;
    let mut entry: Option<(f64, usize)> = None;

    let node_of = |i: usize| NodeKey {
        name: docs[i].name.clone(),
        kind: docs[i].origin.clone().unwrap_or_default(),
    };

    for (i, d) in docs.iter().enumerate() {
        summary.start_time = summary.start_time.min(d.start);
        if let Some(e) = d.end.or(d.max_end) {
            end = end.max(e);
        }
        summary.has_fault |= d.any_fault;
        summary.has_error |= d.any_error;
        summary.has_throttle |= d.any_throttle;
        if d.in_progress || owner[i].is_none() {
            summary.is_partial = true;
        }
        summary.resources.merge(&d.resources, 20);
        let Some(o) = owner[i] else { continue };
        let node = node_of(o);
        if let Some(user) = &d.user {
            match summary.users.iter_mut().find(|(u, _)| u == user) {
                Some((_, svcs)) => push_unique(svcs, node.clone()),
                None => summary.users.push((user.clone(), vec![node.clone()])),
            }
        }
        for (key, value) in &d.annotations {
            if summary.annotations.len() >= 50 && !summary.annotations.iter().any(|a| &a.key == key)
            {
                continue;
            }
            match summary
                .annotations
                .iter_mut()
                .find(|a| &a.key == key && &a.value == value)
            {
                Some(a) => push_unique(&mut a.services, node.clone()),
                None => summary.annotations.push(AnnotationEntry {
                    key: key.clone(),
                    value: value.clone(),
                    services: vec![node.clone()],
                }),
            }
        }
    }

    // Segments: node samples, and the edge from their caller (or the client).
    for (i, d) in docs.iter().enumerate() {
        if d.subsegment || d.in_progress {
            continue;
        }
        let node = node_of(i);
        let rt = d.end.map(|e| e - d.start).unwrap_or(0.0).max(0.0);
        let minute = minute_of(d.start);
        let outcome = Outcome::from_flags(d.error, d.throttle, d.fault);
        let svc = services
            .entry(node.clone())
            .or_insert_with(|| ServiceFacts {
                key: node.clone(),
                ..ServiceFacts::default()
            });
        svc.fault |= d.fault;
        svc.error |= d.error;
        svc.throttle |= d.throttle;
        svc.response_time = svc.response_time.max(rt);
        if svc.http.is_none() {
            svc.http = d.http.clone();
        }
        if svc.account_id.is_none() {
            svc.account_id = d.resources.account_ids.first().cloned();
        }
        samples.push(Sample {
            src: node.encode(),
            dst: String::new(),
            minute,
            outcome,
            response_time: rt,
        });
        // The caller: the document holding our parent id, when it belongs to another segment.
        let caller = d.parent_id.as_ref().and_then(|p| {
            let h = *holder.get(&p.as_u64())?;
            let o = owner[h]?;
            (o != i).then_some((o, h, p.as_u64()))
        });
        let (src, call_outcome, call_rt) = match caller {
            Some((o, h, parent)) => {
                resolved_calls.insert(parent);
                let call = docs[h].calls.iter().find(|c| c.id.as_u64() == parent);
                match call {
                    Some(c) => (
                        node_of(o),
                        Outcome::from_flags(c.error, c.throttle, c.fault),
                        c.end.map(|e| e - c.start).unwrap_or(rt).max(0.0),
                    ),
                    None => (node_of(o), outcome, rt),
                }
            }
            None => {
                // No caller in the trace (none, untraced, or not arrived yet): the client.
                if let Some(s) = services.get_mut(&node) {
                    s.root = true;
                }
                if entry.is_none_or(|(t, _)| d.start < t) {
                    entry = Some((d.start, i));
                }
                (NodeKey::client(), outcome, rt)
            }
        };
        let (error, throttle, fault) = outcome_flags(call_outcome);
        let e = edges
            .entry((src.clone(), node.clone()))
            .or_insert_with(|| EdgeFacts {
                src: src.clone(),
                dst: node.clone(),
                ..EdgeFacts::default()
            });
        e.error |= error;
        e.throttle |= throttle;
        e.fault |= fault;
        e.response_time = e.response_time.max(call_rt);
        samples.push(Sample {
            src: src.encode(),
            dst: node.encode(),
            minute,
            outcome: call_outcome,
            response_time: call_rt,
        });
    }

    // Calls to downstreams that did not report their own segment: inferred nodes.
    for (i, d) in docs.iter().enumerate() {
        let Some(o) = owner[i] else { continue };
        let caller = node_of(o);
        for c in &d.calls {
            if resolved_calls.contains(&c.id.as_u64()) || c.in_progress {
                continue;
            }
            let node = NodeKey {
                name: c.name.clone(),
                kind: c.kind.clone(),
            };
            let rt = c.end.map(|e| e - c.start).unwrap_or(0.0).max(0.0);
            let outcome = Outcome::from_flags(c.error, c.throttle, c.fault);
            let minute = minute_of(c.start);
            let svc = services
                .entry(node.clone())
                .or_insert_with(|| ServiceFacts {
                    key: node.clone(),
                    inferred: true,
                    ..ServiceFacts::default()
                });
            svc.fault |= c.fault;
            svc.error |= c.error;
            svc.throttle |= c.throttle;
            svc.response_time = svc.response_time.max(rt);
            let e = edges
                .entry((caller.clone(), node.clone()))
                .or_insert_with(|| EdgeFacts {
                    src: caller.clone(),
                    dst: node.clone(),
                    ..EdgeFacts::default()
                });
            e.error |= c.error;
            e.throttle |= c.throttle;
            e.fault |= c.fault;
            e.response_time = e.response_time.max(rt);
            samples.push(Sample {
                src: node.encode(),
                dst: String::new(),
                minute,
                outcome,
                response_time: rt,
            });
            samples.push(Sample {
                src: caller.encode(),
                dst: node.encode(),
                minute,
                outcome,
                response_time: rt,
            });
        }
    }

    for (src, _) in edges.keys() {
        if let Some(s) = services.get_mut(src) {
            s.has_downstream = true;
        }
    }
    if summary.start_time.is_infinite() {
        summary.start_time = 0.0;
    }
    if end.is_finite() {
        summary.end_time = Some(end);
        summary.duration = Some((end - summary.start_time).max(0.0));
    }
    match entry {
        Some((_, i)) => {
            let d = &docs[i];
            summary.entry_point = Some(node_of(i));
            summary.response_time = d.end.map(|e| (e - d.start).max(0.0));
            summary.http = d.http.clone();
        }
        None => summary.is_partial = true,
    }
    summary.services = services.into_values().collect();
    summary.edges = edges.into_values().collect();
    let causes = Causes::new(docs, &owner, &node_of);
    let entry = entry.map(|(_, i)| i);
    summary.fault_root_causes = causes.flagged(
        |d| d.fault_path.as_ref(),
        entry.is_some_and(|i| docs[i].fault),
    );
    summary.error_root_causes = causes.flagged(
        |d| d.error_path.as_ref(),
        entry.is_some_and(|i| docs[i].error || docs[i].throttle),
    );
    summary.response_time_root_causes = entry.map(|i| causes.slowest(i)).into_iter().collect();
    TraceView { summary, samples }
}

fn outcome_flags(o: Outcome) -> (bool, bool, bool) {
    match o {
        Outcome::Ok => (false, false, false),
        Outcome::Error => (true, false, false),
        Outcome::Throttle => (true, true, false),
        Outcome::Fault => (false, false, true),
    }
}

#[cfg(test)]
mod tests;
