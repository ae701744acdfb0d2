//! The X-Ray REST-JSON API: one axum route per operation, at the paths of the X-Ray API model,
//! with epoch-second times and X-Ray error bodies. Requests are accepted unsigned, and a SigV4
//! `Authorization` header is ignored rather than refused.

mod alarms;
mod analytics;
mod error;
mod graph;
mod groups;
mod insights;
pub mod otlp;
pub mod otlp_grpc;
mod sampling;
pub mod scope;
mod traces;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use roentgen_sdk::scrub::Scrubber;
use serde::de::DeserializeOwned;

pub use error::ApiError;
pub use traces::{PreparedDocument, prepare_document, prepare_segment};

/// The collector's counters (they live in [`crate::metrics`]).
pub use crate::metrics::Counters;

use crate::sampling::Targets;
use crate::store::Store;

/// Largest request body accepted (a full daemon batch of 64 KiB documents fits).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Bounds on the work one query may ask for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryLimits {
    /// Longest `StartTime`..`EndTime` window of `GetServiceGraph` and
    /// `GetTimeSeriesServiceStatistics`, in seconds.
    pub max_window_secs: f64,
    /// Most candidate traces the dashboard's traces page examines for one view; past it the
    /// page shows what it found and says the search stopped, so a selective filter over a
    /// long window cannot make one GET scan the whole store.
    pub list_scan_budget: usize,
}

impl QueryLimits {
    /// The default window bound: 24 hours.
    pub const DEFAULT_WINDOW_HOURS: u64 = 24;
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_window_secs: (Self::DEFAULT_WINDOW_HOURS * 3600) as f64,
            list_scan_budget: 100_000,
        }
    }
}

/// What every handler shares: the store, the optional server-side scrubber, the sampling
/// targets' client table, the counters and the query limits.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Scrubs `PutTraceSegments` documents when set.
    pub scrubber: Option<Scrubber>,
    /// Which clients report to which sampling rule.
    pub targets: Arc<Mutex<Targets>>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Bounds on one query's work.
    pub limits: QueryLimits,
    /// How OTLP spans become documents (`/v1/traces`).
    pub otlp: otlp::OtlpIngest,
}

impl AppState {
    /// State over a store, with scrubbing when `scrubber` is set.
    pub fn new(store: Arc<dyn Store>, scrubber: Option<Scrubber>) -> Self {
        Self {
            store,
            scrubber,
            targets: Arc::new(Mutex::new(Targets::default())),
            counters: Arc::new(Counters::default()),
            limits: QueryLimits::default(),
            otlp: otlp::OtlpIngest::default(),
        }
    }
}

/// The API's routes over `state`; merge more routes (the dashboard's) into the result.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/TraceSegments", post(traces::put_trace_segments))
        .route("/v1/traces", post(otlp::export_traces))
        .route("/TraceSummaries", post(traces::get_trace_summaries))
        .route("/Traces", post(traces::batch_get_traces))
        .route("/TraceGraph", post(graph::get_trace_graph))
        .route("/ServiceGraph", post(graph::get_service_graph))
        .route(
            "/TimeSeriesServiceStatistics",
            post(graph::get_time_series_service_statistics),
        )
        .route("/GetSamplingRules", post(sampling::get_sampling_rules))
        .route("/SamplingTargets", post(sampling::get_sampling_targets))
        .route(
            "/SamplingStatisticSummaries",
            post(sampling::get_sampling_statistic_summaries),
        )
        .route("/CreateSamplingRule", post(sampling::create_sampling_rule))
        .route("/UpdateSamplingRule", post(sampling::update_sampling_rule))
        .route("/DeleteSamplingRule", post(sampling::delete_sampling_rule))
        .route("/TelemetryRecords", post(sampling::put_telemetry_records))
        .route("/CreateGroup", post(groups::create_group))
        .route("/Groups", post(groups::get_groups))
        .route("/GetGroup", post(groups::get_group))
        .route("/UpdateGroup", post(groups::update_group))
        .route("/DeleteGroup", post(groups::delete_group))
        .route("/TraceAnalytics", post(analytics::get_trace_analytics))
        .route("/InsightSummaries", post(insights::get_insight_summaries))
        .route("/Insight", post(insights::get_insight))
        .route("/InsightEvents", post(insights::get_insight_events))
        .route(
            "/InsightImpactGraph",
            post(insights::get_insight_impact_graph),
        )
        .route("/CreateAlarmRule", post(alarms::create_alarm_rule))
        .route("/UpdateAlarmRule", post(alarms::update_alarm_rule))
        .route("/DeleteAlarmRule", post(alarms::delete_alarm_rule))
        .route("/GetAlarmRules", post(alarms::get_alarm_rules))
        .route("/GetAlarmHistory", post(alarms::get_alarm_history))
        .fallback(unknown_operation)
        .layer(axum::middleware::from_fn(scope::attach))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// Any other path: X-Ray's JSON error for an operation it does not have (the AWS CLI prints
/// its type and message rather than an HTML page).
async fn unknown_operation(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::UnknownOperation(format!("no operation at {method} {}", uri.path()))
}

/// Parses a JSON request body (an empty body reads as `{}`).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed request: {e}")))
}

/// Checks a time window.
pub(crate) fn check_window(start: f64, end: f64) -> Result<(), ApiError> {
    if !start.is_finite() || !end.is_finite() || start > end {
        return Err(ApiError::InvalidRequest(
            "StartTime must not be after EndTime".to_owned(),
        ));
    }
    Ok(())
}

/// The filter a request is answered with: its own expression (groups resolved) AND, when the
/// request is confined to a group, that group's expression.
pub(crate) async fn scoped_filter(
    state: &AppState,
    scope: &scope::GroupScope,
    text: Option<&str>,
) -> Result<Option<crate::filter::Expr>, ApiError> {
    use crate::filter::{Expr, Literal};
    let own = parse_filter(state, text).await?;
    let Some(group) = scope.group().filter(|g| !g.is_default()) else {
        return Ok(own);
    };
    let text = format!("group.name = {}", Literal::Str(group.as_str().to_owned()));
    let confining = parse_filter(state, Some(&text)).await?;
    Ok(match (own, confining) {
        (Some(a), Some(b)) => Some(Expr::And(vec![a, b])),
        (a, b) => a.or(b),
    })
}

/// Checks a graph or time-series window: well-formed and no longer than the limit (these
/// answers are built from every minute of the window).
pub(crate) fn check_graph_window(state: &AppState, start: f64, end: f64) -> Result<(), ApiError> {
    check_window(start, end)?;
    let max = state.limits.max_window_secs;
    if end - start > max {
        return Err(ApiError::InvalidRequest(format!(
            "the window from StartTime to EndTime is {:.0} hours; at most {:.0} hours are allowed (--max-query-window-hours)",
            ((end - start) / 3600.0).ceil(),
            max / 3600.0
        )));
    }
    Ok(())
}

/// Parses a filter expression and resolves the groups it names.
pub(crate) async fn parse_filter(
    state: &AppState,
    text: Option<&str>,
) -> Result<Option<crate::filter::Expr>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let expr = crate::filter::parse(text)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid filter expression: {e}")))?;
    let groups = if text.to_ascii_lowercase().contains("group.") {
        state.store.groups().await?
    } else {
        Vec::new()
    };
    let lookup = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.filter_expression.clone())
    };
    expr.resolve_groups(&lookup)
        .map(Some)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid filter expression: {e}")))
}

#[cfg(test)]
mod alarms_tests;
#[cfg(test)]
mod analytics_tests;
#[cfg(test)]
mod otlp_nest_tests;
#[cfg(test)]
mod otlp_tests;
#[cfg(test)]
mod tests;
