//! Sampling rules (`GetSamplingRules`, `Create/Update/DeleteSamplingRule`), targets
//! (`GetSamplingTargets`), what the SDKs reported (`GetSamplingStatisticSummaries`) and daemon
//! telemetry (`PutTelemetryRecords`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, parse_body};
use crate::sampling::{DEFAULT_RULE, SamplingRule, StatisticsDocument, rule_arn};
use crate::store::now_seconds;
use crate::store::{StoredRule, TelemetryRow};

/// Most rules a store holds, the `Default` rule included (X-Ray's limit is 25).
const MAX_RULES: usize = 25;

fn record(r: &StoredRule) -> Value {
    json!({
        "SamplingRule": r.rule,
        "CreatedAt": r.created_at,
        "ModifiedAt": r.modified_at,
    })
}

async fn sorted_rules(state: &AppState) -> Result<Vec<StoredRule>, ApiError> {
    let mut rules = state.store.sampling_rules().await?;
    rules.sort_by(|a, b| {
        (a.rule.priority, &a.rule.rule_name).cmp(&(b.rule.priority, &b.rule.rule_name))
    });
    Ok(rules)
}

/// `POST /GetSamplingRules`.
pub async fn get_sampling_rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rules = sorted_rules(&state).await?;
    Ok(Json(json!({
        "SamplingRuleRecords": rules.iter().map(record).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetsRequest {
    sampling_statistics_documents: Vec<StatisticsDocument>,
}

/// `POST /SamplingTargets`.
pub async fn get_sampling_targets(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: TargetsRequest = parse_body(&body)?;
    if req.sampling_statistics_documents.len() > 25 {
        return Err(ApiError::InvalidRequest(
            "at most 25 SamplingStatisticsDocuments per request".to_owned(),
        ));
    }
    let stored = sorted_rules(&state).await?;
    let rules: Vec<SamplingRule> = stored.iter().map(|r| r.rule.clone()).collect();
    let last_modified = stored.iter().map(|r| r.modified_at).fold(0.0, f64::max);
    let unprocessed: Vec<Value> = req
        .sampling_statistics_documents
        .iter()
        .filter(|d| !rules.iter().any(|r| r.rule_name == d.rule_name))
        .map(|d| {
            json!({
                "RuleName": d.rule_name,
                "ErrorCode": "400",
                "Message": format!("sampling rule {:?} does not exist", d.rule_name),
            })
        })
        .collect();
    let targets = crate::sampling::report(
        state.store.as_ref(),
        &state.targets,
        now_seconds(),
        &req.sampling_statistics_documents,
        &rules,
    )
    .await?;
    Ok(Json(json!({
        "SamplingTargetDocuments": targets,
        "LastRuleModification": last_modified.floor(),
        "UnprocessedStatistics": unprocessed,
    })))
}

/// `POST /SamplingStatisticSummaries`: every rule's reported counts per 10-second window of
/// the last hour (one page).
pub async fn get_sampling_statistic_summaries(
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let summaries = state
        .targets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .statistics
        .summaries();
    Ok(Json(json!({ "SamplingStatisticSummaries": summaries })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateRuleRequest {
    sampling_rule: SamplingRule,
}

/// `POST /CreateSamplingRule`.
pub async fn create_sampling_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut req: CreateRuleRequest = parse_body(&body)?;
    let rule = &mut req.sampling_rule;
    rule.rule_arn = rule_arn(&rule.rule_name);
    rule.check().map_err(ApiError::InvalidRequest)?;
    if state.store.sampling_rules().await?.len() >= MAX_RULES {
        return Err(ApiError::RuleLimitExceeded(format!(
            "at most {MAX_RULES} sampling rules"
        )));
    }
    let now = now_seconds().floor();
    let stored = StoredRule {
        rule: req.sampling_rule,
        created_at: now,
        modified_at: now,
    };
    state.store.put_sampling_rule(stored.clone(), true).await?;
    Ok(Json(json!({ "SamplingRuleRecord": record(&stored) })))
}

fn rule_name(name: Option<&Value>, arn: Option<&Value>) -> Result<String, ApiError> {
    name.and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            arn.and_then(Value::as_str)
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_owned)
        })
        .ok_or_else(|| ApiError::InvalidRequest("RuleName or RuleARN is required".to_owned()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateRuleRequest {
    sampling_rule_update: Map<String, Value>,
}

/// `POST /UpdateSamplingRule`.
pub async fn update_sampling_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateRuleRequest = parse_body(&body)?;
    let update = req.sampling_rule_update;
    let name = rule_name(update.get("RuleName"), update.get("RuleARN"))?;
    let current = state
        .store
        .sampling_rules()
        .await?
        .into_iter()
        .find(|r| r.rule.rule_name == name)
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!("sampling rule {name:?} does not exist"))
        })?;
    let mut merged =
        serde_json::to_value(&current.rule).map_err(|e| ApiError::Internal(e.to_string()))?;
    for (k, v) in update {
        if k != "RuleName" && k != "RuleARN" && !v.is_null() {
            merged[k] = v;
        }
    }
    let rule: SamplingRule = serde_json::from_value(merged)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed SamplingRuleUpdate: {e}")))?;
    rule.check().map_err(ApiError::InvalidRequest)?;
    let stored = StoredRule {
        rule,
        created_at: current.created_at,
        modified_at: now_seconds().floor(),
    };
    state.store.put_sampling_rule(stored.clone(), false).await?;
    Ok(Json(json!({ "SamplingRuleRecord": record(&stored) })))
}

/// `POST /DeleteSamplingRule`.
pub async fn delete_sampling_rule(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: Map<String, Value> = parse_body(&body)?;
    let name = rule_name(req.get("RuleName"), req.get("RuleARN"))?;
    if name == DEFAULT_RULE {
        return Err(ApiError::InvalidRequest(
            "the Default rule cannot be deleted".to_owned(),
        ));
    }
    let deleted = state.store.delete_sampling_rule(name).await?;
    Ok(Json(json!({ "SamplingRuleRecord": record(&deleted) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TelemetryRequest {
    telemetry_records: Vec<Value>,
    #[serde(default, rename = "EC2InstanceId")]
    ec2_instance_id: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
}

/// `POST /TelemetryRecords`.
pub async fn put_telemetry_records(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: TelemetryRequest = parse_body(&body)?;
    let now = now_seconds();
    let rows = req
        .telemetry_records
        .iter()
        .map(|r| {
            if r.get("Timestamp").and_then(Value::as_f64).is_none() {
                return Err(ApiError::InvalidRequest(
                    "each TelemetryRecord needs a Timestamp".to_owned(),
                ));
            }
            Ok(TelemetryRow {
                received_at: now,
                hostname: req.hostname.clone(),
                instance_id: req.ec2_instance_id.clone(),
                record: r.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !rows.is_empty() {
        state.store.put_telemetry(rows).await?;
    }
    Ok(Json(json!({})))
}
