//! Insights: incidents found without rules. Every minute, each node's and edge's fault, error
//! and throttle rates and p90 response time are judged against the band learned from its own
//! recent history (`detect`); anomalies that last are grouped by the service graph into one
//! insight per incident, which names its root-cause service (the deepest anomalous service:
//! none of its own calls is anomalous), the services and edges it impacts, the requests it
//! affected and the traces that show it, and closes when the anomalies end (`tracker`).
//! Served as X-Ray's Insights API (`api/insights.rs`) and the dashboard's `/insights`.

pub mod detect;
pub mod tracker;

use serde::{Deserialize, Serialize};

use crate::assembly::NodeKey;

/// `ACTIVE` or `CLOSED`, as X-Ray writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsightState {
    /// Still going on.
    #[serde(rename = "ACTIVE")]
    Active,
    /// Over.
    #[serde(rename = "CLOSED")]
    Closed,
}

/// Requests of a service (or the clients) over an insight's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Impact {
    /// Faults.
    pub fault_count: i64,
    /// Requests without error, throttle or fault.
    pub ok_count: i64,
    /// All requests.
    pub total_count: i64,
}

impl Impact {
    /// From statistics.
    pub fn of(stats: &crate::graph::Stats) -> Self {
        Self {
            fault_count: stats.fault.max(0),
            ok_count: stats.ok.max(0),
            total_count: stats.total().max(0),
        }
    }
}

/// One anomalous metric of a node (`to` absent) or edge, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AnomalyRecord {
    /// The node, or the edge's caller.
    pub service: NodeKey,
    /// The edge's callee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NodeKey>,
    /// The metric.
    pub metric: crate::alarms::Metric,
    /// Its value.
    pub value: f64,
    /// Usual value.
    pub usual: f64,
    /// Top of the usual range.
    pub upper: f64,
    /// The minute it was last out of range, epoch seconds.
    pub at: f64,
}

/// Something that happened to an insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InsightEvent {
    /// What.
    pub summary: String,
    /// When (the minute it describes), epoch seconds.
    pub event_time: f64,
    /// The clients' requests in that minute.
    pub client_request_impact_statistics: Impact,
    /// The root-cause service's requests in that minute.
    pub root_cause_service_request_impact_statistics: Impact,
    /// The anomalous services.
    pub top_anomalous_services: Vec<NodeKey>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Insight {
    /// A UUID derived from the root cause and the first minute, so finding it again (after a
    /// restart) gives the same id.
    pub insight_id: String,
    /// Active or closed.
    pub state: InsightState,
    /// The first anomalous minute, epoch seconds.
    pub start_time: f64,
    /// The end of the last anomalous minute, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// The last minute looked at.
    pub last_update_time: f64,
    /// The service whose own behaviour explains the rest.
    pub root_cause: NodeKey,
    /// `FAULT`, `ERROR`, `THROTTLE`, `LATENCY`.
    pub categories: Vec<String>,
    /// One sentence.
    pub summary: String,
    /// Anomalous services.
    pub impacted_services: Vec<NodeKey>,
    /// Anomalous edges.
    pub impacted_edges: Vec<(NodeKey, NodeKey)>,
    /// The anomalies, latest per node or edge and metric.
    pub anomalies: Vec<AnomalyRecord>,
    /// Requests beyond the usual (faults above the usual rate, requests slower than usual).
    pub requests_affected: f64,
    /// The clients' requests over the insight.
    pub client_request_impact_statistics: Impact,
    /// The root cause's requests over the insight.
    pub root_cause_service_request_impact_statistics: Impact,
    /// Traces that show it (the root cause's faulty or slow requests).
    pub top_traces: Vec<String>,
    /// Opened, changed, closed.
    pub events: Vec<InsightEvent>,
}

#[cfg(test)]
impl Insight {
    /// A fault insight of the client for tests, closed when it has an end.
    pub(crate) fn for_test(id: &str, start: f64, end: Option<f64>) -> Self {
        Self {
            insight_id: id.to_owned(),
            state: if end.is_some() {
                InsightState::Closed
            } else {
                InsightState::Active
            },
            start_time: start,
            end_time: end,
            last_update_time: start + 60.0,
            root_cause: NodeKey::client(),
            categories: vec!["FAULT".to_owned()],
            summary: id.to_owned(),
            impacted_services: Vec::new(),
            impacted_edges: Vec::new(),
            anomalies: Vec::new(),
            requests_affected: 1.0,
            client_request_impact_statistics: Impact::default(),
            root_cause_service_request_impact_statistics: Impact::default(),
            top_traces: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// Most events kept per insight (the first and the newest are kept).
pub const MAX_EVENTS: usize = 200;

/// A UUID (version 5 layout) from a name.
pub fn insight_id(name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    let h = crate::auth::sigv4::hex(&d[..16]);
    format!(
        "{}-{}-5{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 + (u8::from_str_radix(&h[16..17], 16).unwrap_or(0) & 3),
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod quality;
#[cfg(test)]
mod tests;
