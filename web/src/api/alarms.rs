//! Alarm rules and their history (operations of our own; docs/alarms.md): `CreateAlarmRule`,
//! `UpdateAlarmRule`, `DeleteAlarmRule`, `GetAlarmRules`, `GetAlarmHistory`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, parse_body};
use crate::alarms::{self, AlarmRule, EventQuery, SaveError, SaveMode, StoredAlarm};

/// Most events one `GetAlarmHistory` call returns.
pub const MAX_HISTORY: usize = 1000;

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Invalid(m) => ApiError::InvalidRequest(format!("invalid alarm rule: {m}")),
            SaveError::Limit(_) => ApiError::RuleLimitExceeded(e.to_string()),
            SaveError::Store(s) => s.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleRequest {
    alarm_rule: AlarmRule,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct NameRequest {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct HistoryRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    max_results: Option<usize>,
}

fn rule_json(stored: &StoredAlarm) -> Value {
    json!({
        "AlarmRule": stored.rule.redacted(),
        "CreatedAt": stored.created_at,
        "ModifiedAt": stored.modified_at,
    })
}

/// `POST /CreateAlarmRule`.
pub async fn create_alarm_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: RuleRequest = parse_body(&body)?;
    let stored = alarms::save(state.store.as_ref(), req.alarm_rule, SaveMode::Create).await?;
    Ok(Json(rule_json(&stored)))
}

/// `POST /UpdateAlarmRule`: replaces the rule of that name.
pub async fn update_alarm_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: RuleRequest = parse_body(&body)?;
    let stored = alarms::save(state.store.as_ref(), req.alarm_rule, SaveMode::Update).await?;
    Ok(Json(rule_json(&stored)))
}

/// `POST /DeleteAlarmRule`.
pub async fn delete_alarm_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: NameRequest = parse_body(&body)?;
    state.store.delete_alarm_rule(req.name).await?;
    Ok(Json(json!({})))
}

/// `POST /GetAlarmRules`: every rule with its current state.
pub async fn get_alarm_rules(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: std::collections::BTreeMap<String, Value> = parse_body(&body)?;
    }
    let rules = state.store.alarm_rules().await?;
    let latest = state
        .store
        .alarm_events(EventQuery {
            latest_only: true,
            limit: usize::MAX >> 1,
            ..EventQuery::default()
        })
        .await?;
    let listed: Vec<Value> = rules
        .iter()
        .map(|stored| {
            let mut v = rule_json(stored);
            match latest.iter().find(|e| e.alarm == stored.rule.name) {
                Some(e) => {
                    v["State"] = json!(e.new_state);
                    v["StateReason"] = json!(e.decision.reason);
                    v["StateUpdatedAt"] = json!(e.time);
                }
                None => {
                    v["State"] = json!(alarms::AlarmState::InsufficientData);
                    v["StateReason"] = json!("not evaluated yet");
                }
            }
            v
        })
        .collect();
    Ok(Json(json!({ "AlarmRules": listed })))
}

/// `POST /GetAlarmHistory`: state changes, newest first, with their deliveries.
pub async fn get_alarm_history(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: HistoryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HistoryRequest::default()
    } else {
        parse_body(&body)?
    };
    let limit = req.max_results.unwrap_or(100);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::InvalidRequest(format!(
            "MaxResults must be 1 to {MAX_HISTORY}"
        )));
    }
    let events = state
        .store
        .alarm_events(EventQuery {
            alarm: req.name,
            limit,
            ..EventQuery::default()
        })
        .await?;
    Ok(Json(json!({ "AlarmEvents": events })))
}
