//! A recorded state change of an alarm: what was decided, and which of its webhooks still wait
//! for the notification. The store keeps these; they are both the history and the durable
//! queue of notifications.

use serde::{Deserialize, Serialize};

use super::evaluate::{AlarmState, Decision};

/// How one webhook's delivery of an event ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delivery {
    /// Index of the webhook in the rule.
    pub webhook: u32,
    /// When it ended, epoch seconds.
    pub at: f64,
    /// Attempts made.
    pub attempts: u32,
    /// Delivered (a 2xx answer), or given up on.
    pub delivered: bool,
    /// The last answer or error.
    pub detail: String,
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmEvent {
    /// The alarm's name.
    pub alarm: String,
    /// 1, 2, … per alarm: a notification's identity (`X-Roentgen-Delivery: name/seq`).
    pub seq: u64,
    /// When it was decided, epoch seconds.
    pub time: f64,
    /// The state before.
    pub old_state: AlarmState,
    /// The state after.
    pub new_state: AlarmState,
    /// The decision, with its datapoints.
    pub decision: Decision,
    /// Start of the periods looked at.
    pub window_start: f64,
    /// End of the periods looked at.
    pub window_end: f64,
    /// Webhooks (indices into the rule's list) still to be notified.
    #[serde(default)]
    pub pending: Vec<u32>,
    /// Finished deliveries.
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

impl AlarmEvent {
    /// `name/seq`: the same on every attempt, so receivers can drop a repeat.
    pub fn delivery_id(&self) -> String {
        format!("{}/{}", self.alarm, self.seq)
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only this alarm's.
    pub alarm: Option<String>,
    /// Only those with webhooks still to notify.
    pub pending_only: bool,
    /// Only the newest of each alarm (its current state).
    pub latest_only: bool,
    /// At most this many, newest first.
    pub limit: usize,
}
