//! `POST /TraceAnalytics`, an operation of Roentgen's own (X-Ray has none like it): the
//! analysis of a set of traces (a filter over a window, within the request's group), or the
//! comparison of two sets. Authorized as `xray:GetTraceAnalytics` and audited like every
//! operation; the window is bounded like `GetServiceGraph`'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::GroupScope;
use super::{ApiError, AppState, check_graph_window, parse_body, scoped_filter};
use crate::analytics;
use crate::filter::Expr;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AnalyticsRequest {
    start_time: f64,
    end_time: f64,
    #[serde(default)]
    filter_expression: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default, rename = "GroupARN")]
    group_arn: Option<String>,
    #[serde(default)]
    comparison: Option<ComparisonRequest>,
}

/// Set B: its own filter and window (each defaulting to A's), or a selection within A
/// compared with the rest of A.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ComparisonRequest {
    #[serde(default)]
    start_time: Option<f64>,
    #[serde(default)]
    end_time: Option<f64>,
    #[serde(default)]
    filter_expression: Option<String>,
    #[serde(default)]
    selection: Option<String>,
}

/// A set: its window and filter.
struct Set {
    start: f64,
    end: f64,
    filter: Option<Expr>,
}

/// `POST /TraceAnalytics`.
pub async fn get_trace_analytics(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: AnalyticsRequest = parse_body(&body)?;
    // Read by the scope layer; named here so that they are accepted.
    let _ = (&req.group_name, &req.group_arn);
    check_graph_window(&state, req.start_time, req.end_time)?;
    let a = Set {
        start: req.start_time,
        end: req.end_time,
        filter: scoped_filter(&state, &scope, req.filter_expression.as_deref()).await?,
    };
    let Some(cmp) = req.comparison else {
        let tally = fold(&state, &a).await?;
        return Ok(Json(json!({ "Analysis": tally.finish() })));
    };
    let (a, b) = match cmp.selection {
        Some(selection) => {
            if cmp.filter_expression.is_some() || cmp.start_time.is_some() || cmp.end_time.is_some()
            {
                return Err(ApiError::InvalidRequest(
                    "Comparison takes a Selection (compared with the rest of the set) or its own \
                     FilterExpression/StartTime/EndTime, not both"
                        .to_owned(),
                ));
            }
            let selection = own_filter(&state, &scope, "Comparison.Selection", &selection)
                .await?
                .ok_or_else(|| {
                    ApiError::InvalidRequest("Comparison.Selection is empty".to_owned())
                })?;
            let with = |e: Expr| match &a.filter {
                Some(f) => Expr::And(vec![f.clone(), e]),
                None => e,
            };
            let rest = Set {
                filter: Some(with(Expr::Not(Box::new(selection.clone())))),
                ..a
            };
            let selected = Set {
                filter: Some(with(selection)),
                ..rest
            };
            (rest, selected)
        }
        None => {
            let (start, end) = (
                cmp.start_time.unwrap_or(a.start),
                cmp.end_time.unwrap_or(a.end),
            );
            check_graph_window(&state, start, end)?;
            let filter = match cmp.filter_expression {
                Some(text) => {
                    own_filter(&state, &scope, "Comparison.FilterExpression", &text).await?
                }
                None => a.filter.clone(),
            };
            (a, Set { start, end, filter })
        }
    };
    let (ta, tb) = (fold(&state, &a).await?, fold(&state, &b).await?);
    Ok(Json(json!({ "Comparison": analytics::compare(&ta, &tb) })))
}

/// The second filter of a comparison, answered within the request's group. It may name no
/// group but the request's own: what a caller may read was decided from the request's
/// `GroupName`, `GroupARN` and `FilterExpression`.
async fn own_filter(
    state: &AppState,
    scope: &GroupScope,
    field: &str,
    text: &str,
) -> Result<Option<Expr>, ApiError> {
    let refs = crate::filter::parse(text)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid {field}: {e}")))?
        .group_refs();
    if let Some(other) = refs
        .all
        .iter()
        .find(|g| scope.group().is_none_or(|s| s.as_str() != g.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "{field} names group {other:?}: name it in GroupName, or not at all"
        )));
    }
    scoped_filter(state, scope, Some(text)).await
}

async fn fold(state: &AppState, set: &Set) -> Result<analytics::Tally, ApiError> {
    Ok(analytics::collect(
        state.store.as_ref(),
        set.start,
        set.end,
        set.filter.as_ref(),
    )
    .await?)
}
