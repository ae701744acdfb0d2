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
use crate::filter::{self, Expr, ServiceSelector};
use crate::graph::Stats;
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
enum Entity {
    All,
    Services(ServiceSelector),
    Edge(ServiceSelector, ServiceSelector),
}

fn selects(sel: &ServiceSelector, key: &NodeKey) -> bool {
    sel.name.as_ref().is_none_or(|n| *n == key.name)
        && sel.kind.as_ref().is_none_or(|k| *k == key.kind)
}

fn entity(text: Option<&str>) -> Result<Entity, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Entity::All);
    };
    let bad =
        |m: String| ApiError::InvalidRequest(format!("invalid EntitySelectorExpression: {m}"));
    match filter::parse(text).map_err(|e| bad(e.to_string()))? {
        Expr::Service(sel, None) | Expr::Id(sel) => Ok(Entity::Services(sel)),
        Expr::Edge(a, b, None) => Ok(Entity::Edge(a, b)),
        _ => Err(bad(
            "expected service(\"name\"), id(name: ..., type: ...) or edge(\"a\", \"b\")".to_owned(),
        )),
    }
}

/// `POST /TimeSeriesServiceStatistics`.
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
    let selected = entity(req.entity_selector_expression.as_deref())?;
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
    let mut buckets: BTreeMap<i64, (Stats, Stats)> = BTreeMap::new();
    for row in rows {
        let src = NodeKey::decode(&row.src);
        let bucket = (row.minute - first).div_euclid(per) * per + first;
        let (service, edge) = buckets.entry(bucket).or_default();
        if row.dst.is_empty() {
            let take = match &selected {
                Entity::All => true,
                Entity::Services(sel) => selects(sel, &src),
                Entity::Edge(..) => false,
            };
            if take {
                service.merge(&row.stats);
            }
        } else {
            let dst = NodeKey::decode(&row.dst);
            let take = match &selected {
                Entity::All => src == NodeKey::client(),
                Entity::Services(sel) => selects(sel, &dst),
                Entity::Edge(a, b) => selects(a, &src) && selects(b, &dst),
            };
            if take {
                edge.merge(&row.stats);
            }
        }
    }
    let series: Vec<Value> = buckets
        .into_iter()
        .map(|(minute, (service, edge))| {
            let hist = if service.total() > 0 {
                service.histogram.entries()
            } else {
                edge.histogram.entries()
            };
            json!({
                "Timestamp": minute * 60,
                "EdgeSummaryStatistics": edge.to_api(),
                "ServiceSummaryStatistics": service.to_api(),
                "ResponseTimeHistogram": hist,
            })
        })
        .collect();
    Ok(Json(json!({
        "TimeSeriesServiceStatistics": series,
        "ContainsOldGroupVersions": false,
    })))
}
