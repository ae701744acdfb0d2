//! Alarms: rules over the per-minute rollups (a metric of a service, an edge or a group's
//! entry points, against a threshold or a learned band, M out of N periods), evaluated by one
//! collector at a time, every state change recorded and sent to webhooks.
//!
//! - `rule`: the rule and its checks; `metric`: a period's value; `band`: the anomaly band;
//!   `evaluate`: the pure decision; `event`: recorded state changes (history and the durable
//!   queue of notifications); `series`: the rollups read once per round and summed per rule;
//!   `notify`: webhook bodies, signatures and delivery; `evaluator`: the background task.

pub mod band;
pub mod evaluate;
pub mod evaluator;
pub mod event;
pub mod metric;
pub mod notify;
pub mod rule;
pub mod series;

pub use evaluate::{AlarmState, Decision};
pub use event::{AlarmEvent, Delivery, EventQuery};
pub use metric::Metric;
pub use rule::AlarmRule;

use serde::{Deserialize, Serialize};

/// An alarm rule as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredAlarm {
    /// The rule.
    pub rule: AlarmRule,
    /// Creation time, epoch seconds.
    pub created_at: f64,
    /// Last change, epoch seconds.
    pub modified_at: f64,
}
