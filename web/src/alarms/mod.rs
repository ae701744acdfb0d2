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

/// Why a rule was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The rule breaks a check; the text says which.
    #[error("invalid alarm rule: {0}")]
    Invalid(String),
    /// The store holds [`MAX_RULES`] rules already.
    #[error("at most {0} alarm rules: delete one first")]
    Limit(usize),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Most alarm rules a store holds: every round decides them all (BENCHMARKS.md measures
/// 10,000).
pub const MAX_RULES: usize = 20_000;

/// How [`save`] treats an existing rule of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Refuse if it exists.
    Create,
    /// Refuse if it does not.
    Update,
    /// Either (the config file).
    Upsert,
}

/// Checks and stores a rule, the one way rules are saved (API, config file, dashboard). A
/// webhook given without a secret keeps the secret of the rule's current webhook with the
/// same URL, since secrets are never shown back to be sent again.
pub async fn save(
    store: &dyn crate::store::Store,
    rule: AlarmRule,
    mode: SaveMode,
) -> Result<StoredAlarm, SaveError> {
    save_within(store, rule, mode, MAX_RULES).await
}

/// [`save`] with a limit of `max` rules.
async fn save_within(
    store: &dyn crate::store::Store,
    mut rule: AlarmRule,
    mode: SaveMode,
    max: usize,
) -> Result<StoredAlarm, SaveError> {
    rule.check().map_err(SaveError::Invalid)?;
    let all = store.alarm_rules().await?;
    let count = all.len();
    let existing = all.into_iter().find(|a| a.rule.name == rule.name);
    if existing.is_none() && mode != SaveMode::Update && count >= max {
        return Err(SaveError::Limit(max));
    }
    for hook in rule.webhooks.iter_mut().filter(|h| h.secret.is_none()) {
        hook.secret = existing.as_ref().and_then(|e| {
            e.rule
                .webhooks
                .iter()
                .find(|old| old.url == hook.url)
                .and_then(|old| old.secret.clone())
        });
    }
    let now = crate::store::now_seconds();
    let create = match mode {
        SaveMode::Create => true,
        SaveMode::Update => false,
        SaveMode::Upsert => existing.is_none(),
    };
    let stored = StoredAlarm {
        rule,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        modified_at: now,
    };
    store.put_alarm_rule(stored.clone(), create).await?;
    Ok(stored)
}

/// The rules of a config file: `{"AlarmRules": [rule, …]}`, the API's shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AlarmFile {
    /// The rules.
    pub alarm_rules: Vec<AlarmRule>,
}

impl AlarmFile {
    /// Reads and checks a file; errors name the file and the rule.
    pub fn read(path: &std::path::Path) -> Result<Vec<AlarmRule>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: AlarmFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut seen = std::collections::HashSet::new();
        for rule in &file.alarm_rules {
            rule.check()
                .map_err(|e| format!("{}: rule {:?}: {e}", path.display(), rule.name))?;
            if !seen.insert(rule.name.clone()) {
                return Err(format!(
                    "{}: rule {:?} is defined twice",
                    path.display(),
                    rule.name
                ));
            }
        }
        Ok(file.alarm_rules)
    }
}

#[cfg(test)]
mod tests;
