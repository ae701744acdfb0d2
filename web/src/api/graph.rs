//! `GetServiceGraph`, `GetTraceGraph` and `GetTimeSeriesServiceStatistics`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::GroupScope;
use super::traces::MAX_TRACE_IDS;
use super::{ApiError, AppState, check_graph_window, parse_body, scoped_filter};
use crate::assembly::NodeKey;
use crate::graph::{Entity, EntityStats};
use crate::query;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WindowRequest {
    start_time: f64,
    end_time: f64,
    #[serde(default)]
    entity_selector_expression: Option<String>,
    #[serde(default)]
    period: Option<i64>,
}

/// `POST /ServiceGraph`.
pub async fn get_service_graph(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: WindowRequest = parse_body(&body)?;
    check_graph_window(&state, req.start_time, req.end_time)?;
    let filter = scoped_filter(&state, &scope, None).await?;
    let services = query::service_graph(
        state.store.as_ref(),
        req.start_time,
        req.end_time,
        filter.as_ref(),
    )
    .await?;
    Ok(Json(json!({
        "StartTime": req.start_time,
        "EndTime": req.end_time,
        "Services": services,
        "ContainsOldGroupVersions": false,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TraceGraphRequest {
    trace_ids: Vec<String>,
}

/// `POST /TraceGraph`.
pub async fn get_trace_graph(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: TraceGraphRequest = parse_body(&body)?;
    if req.trace_ids.len() > MAX_TRACE_IDS {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_TRACE_IDS} TraceIds per request"
        )));
    }
    let services = query::trace_graph(state.store.as_ref(), req.trace_ids).await?;
    Ok(Json(json!({ "Services": services })))
}

/// What an entity selector picks: services, or one edge.
pub async fn get_time_series_service_statistics(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: WindowRequest = parse_body(&body)?;
    check_graph_window(&state, req.start_time, req.end_time)?;
    let period = req.period.unwrap_or(60);
    if period < 60 || period % 60 != 0 {
        return Err(ApiError::InvalidRequest(
            "Period must be a multiple of 60 seconds".to_owned(),
        ));
    }
    let selected = Entity::parse(req.entity_selector_expression.as_deref())
        .map_err(|m| ApiError::InvalidRequest(format!("invalid EntitySelectorExpression: {m}")))?;
    let first = crate::assembly::minute_of(req.start_time);
    let last = crate::assembly::minute_of(req.end_time);
    let group = scoped_filter(&state, &scope, None).await?;
    let rows = match &group {
        // A group's statistics come from its matching traces, not from the all-traffic rollups.
        Some(f) => {
            query::filtered_rollups(state.store.as_ref(), req.start_time, req.end_time, f).await?
        }
        None => state.store.rollups(first, last).await?,
    };
    let per = period / 60;
    let mut buckets: BTreeMap<i64, EntityStats> = BTreeMap::new();
    for row in rows {
        let src = NodeKey::decode(&row.src);
        let dst = (!row.dst.is_empty()).then(|| NodeKey::decode(&row.dst));
        if let Some(side) = selected.side(&src, dst.as_ref()) {
            let bucket = (row.minute - first).div_euclid(per) * per + first;
            buckets.entry(bucket).or_default().add(side, &row.stats);
        }
    }
    let series: Vec<Value> = buckets
        .into_iter()
        .map(|(minute, stats)| {
            json!({
                "Timestamp": minute * 60,
                "EdgeSummaryStatistics": stats.edge.to_api(),
                "ServiceSummaryStatistics": stats.service.to_api(),
                "ResponseTimeHistogram": stats.requests().histogram.entries(),
            })
        })
        .collect();
    Ok(Json(json!({
        "TimeSeriesServiceStatistics": series,
        "ContainsOldGroupVersions": false,
    })))
}
