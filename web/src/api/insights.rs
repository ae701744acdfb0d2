//! X-Ray's Insights API over the insights the collector detects (`crate::insights`):
//! `GetInsightSummaries`, `GetInsight`, `GetInsightEvents`, `GetInsightImpactGraph`.
//! Insights are found on all traffic, which X-Ray calls the `Default` group.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::GroupScope;
use super::{ApiError, AppState, check_window, parse_body};
use crate::assembly::NodeKey;
use crate::insights::{Insight, InsightState};

/// Most insights one `GetInsightSummaries` page holds.
const MAX_SUMMARIES: usize = 100;
/// Most events one `GetInsightEvents` page holds.
const MAX_EVENTS: usize = 50;
/// Insights a summaries call looks through.
const MAX_INSIGHTS: usize = 10_000;

fn service_id(key: &NodeKey) -> Value {
    let mut v = json!({ "Name": key.name, "Names": [key.name] });
    if !key.kind.is_empty() {
        v["Type"] = json!(key.kind);
    }
    v
}

fn summary_json(i: &Insight, with_update: bool) -> Value {
    let mut v = json!({
        "InsightId": i.insight_id,
        "GroupARN": crate::group::arn_of("Default"),
        "GroupName": "Default",
        "RootCauseServiceId": service_id(&i.root_cause),
        "Categories": i.categories,
        "State": i.state,
        "StartTime": i.start_time,
        "Summary": i.summary,
        "ClientRequestImpactStatistics": i.client_request_impact_statistics,
        "RootCauseServiceRequestImpactStatistics": i.root_cause_service_request_impact_statistics,
        "TopAnomalousServices": i.impacted_services.iter().map(|s| json!({ "ServiceId": service_id(s) })).collect::<Vec<_>>(),
    });
    if let Some(end) = i.end_time {
        v["EndTime"] = json!(end);
    }
    if with_update {
        v["LastUpdateTime"] = json!(i.last_update_time);
    }
    v
}

/// Only the `Default` group (all traffic) has insights.
fn check_group(scope: &GroupScope) -> Result<(), ApiError> {
    match scope.group() {
        Some(g) if !g.is_default() => Err(ApiError::InvalidRequest(format!(
            "insights are found on all traffic, the Default group; group {} has none",
            g.as_str()
        ))),
        _ => Ok(()),
    }
}

fn page_token(token: Option<&str>) -> Result<usize, ApiError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::InvalidRequest("invalid NextToken".to_owned())),
    }
}

fn limit(max: Option<usize>, most: usize) -> Result<usize, ApiError> {
    match max {
        None => Ok(most),
        Some(n) if (1..=most).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::InvalidRequest(format!(
            "MaxResults must be 1 to {most}"
        ))),
    }
}

async fn find(state: &AppState, id: &str) -> Result<Insight, ApiError> {
    state
        .store
        .insights(f64::MIN, f64::MAX, Some(id.to_owned()), 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::InvalidRequest(format!("insight {id} does not exist")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummariesRequest {
    start_time: f64,
    end_time: f64,
    #[serde(default)]
    states: Option<Vec<InsightState>>,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

/// `POST /InsightSummaries`.
pub async fn get_insight_summaries(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: SummariesRequest = parse_body(&body)?;
    check_window(req.start_time, req.end_time)?;
    check_group(&scope)?;
    let max = limit(req.max_results, MAX_SUMMARIES)?;
    let skip = page_token(req.next_token.as_deref())?;
    let found: Vec<Insight> = state
        .store
        .insights(req.start_time, req.end_time, None, MAX_INSIGHTS)
        .await?
        .into_iter()
        .filter(|i| req.states.as_ref().is_none_or(|s| s.contains(&i.state)))
        .collect();
    let page: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(max)
        .map(|i| summary_json(i, true))
        .collect();
    let mut out = json!({ "InsightSummaries": page });
    if found.len() > skip + max {
        out["NextToken"] = json!((skip + max).to_string());
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InsightRequest {
    insight_id: String,
    #[serde(default)]
    max_results: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    start_time: Option<f64>,
    #[serde(default)]
    end_time: Option<f64>,
}

/// `POST /Insight`.
pub async fn get_insight(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: InsightRequest = parse_body(&body)?;
    let insight = find(&state, &req.insight_id).await?;
    Ok(Json(json!({ "Insight": summary_json(&insight, false) })))
}

/// `POST /InsightEvents`: newest first.
pub async fn get_insight_events(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: InsightRequest = parse_body(&body)?;
    let max = limit(req.max_results, MAX_EVENTS)?;
    let skip = page_token(req.next_token.as_deref())?;
    let insight = find(&state, &req.insight_id).await?;
    let events: Vec<Value> = insight
        .events
        .iter()
        .rev()
        .skip(skip)
        .take(max)
        .map(|e| {
            json!({
                "Summary": e.summary,
                "EventTime": e.event_time,
                "ClientRequestImpactStatistics": e.client_request_impact_statistics,
                "RootCauseServiceRequestImpactStatistics": e.root_cause_service_request_impact_statistics,
                "TopAnomalousServices": e.top_anomalous_services.iter().map(|s| json!({ "ServiceId": service_id(s) })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({ "InsightEvents": events });
    if insight.events.len() > skip + max {
        out["NextToken"] = json!((skip + max).to_string());
    }
    Ok(Json(out))
}

/// `POST /InsightImpactGraph`: the impacted services and the anomalous calls between them.
pub async fn get_insight_impact_graph(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: InsightRequest = parse_body(&body)?;
    let (Some(start), Some(end)) = (req.start_time, req.end_time) else {
        return Err(ApiError::InvalidRequest(
            "StartTime and EndTime are required".to_owned(),
        ));
    };
    check_window(start, end)?;
    let insight = find(&state, &req.insight_id).await?;
    let mut nodes: Vec<&NodeKey> = insight.impacted_services.iter().collect();
    for (a, b) in &insight.impacted_edges {
        for n in [a, b] {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
    }
    nodes.sort();
    let reference = |k: &NodeKey| nodes.iter().position(|n| *n == k).unwrap_or(0);
    let services: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let edges: Vec<Value> = insight
                .impacted_edges
                .iter()
                .filter(|(a, _)| a == *n)
                .map(|(_, b)| json!({ "ReferenceId": reference(b) }))
                .collect();
            let mut v = service_id(n);
            v["ReferenceId"] = json!(i);
            v["Edges"] = json!(edges);
            v
        })
        .collect();
    Ok(Json(json!({
        "InsightId": insight.insight_id,
        "StartTime": start,
        "EndTime": end,
        "ServiceGraphStartTime": insight.start_time,
        "ServiceGraphEndTime": insight.end_time.unwrap_or(insight.last_update_time),
        "Services": services,
    })))
}
