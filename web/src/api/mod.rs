//! The X-Ray REST-JSON API: one axum route per operation, at the paths of the X-Ray API model,
//! with epoch-second times and X-Ray error bodies. Requests are accepted unsigned, and a SigV4
//! `Authorization` header is ignored rather than refused.

mod error;
mod graph;
mod groups;
mod sampling;
mod traces;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use roentgen_sdk::scrub::Scrubber;
use serde::de::DeserializeOwned;

pub use error::ApiError;
pub use traces::{PreparedDocument, prepare_document};

use crate::sampling::Targets;
use crate::store::Store;

/// Largest request body accepted (a full daemon batch of 64 KiB documents fits).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Counters an operator asks "how many?" about.
#[derive(Debug, Default)]
pub struct Counters {
    /// Documents stored.
    pub documents_accepted: AtomicU64,
    /// Documents returned as unprocessed.
    pub documents_rejected: AtomicU64,
    /// Documents the scrubber rewrote something in.
    pub documents_scrubbed: AtomicU64,
}

/// What every handler shares: the store, the optional server-side scrubber, the sampling
/// targets' client table and the counters.
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
}

impl AppState {
    /// State over a store, with scrubbing when `scrubber` is set.
    pub fn new(store: Arc<dyn Store>, scrubber: Option<Scrubber>) -> Self {
        Self {
            store,
            scrubber,
            targets: Arc::new(Mutex::new(Targets::default())),
            counters: Arc::new(Counters::default()),
        }
    }
}

/// The API's routes over `state`; merge more routes (the dashboard's) into the result.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/TraceSegments", post(traces::put_trace_segments))
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
        .route("/CreateSamplingRule", post(sampling::create_sampling_rule))
        .route("/UpdateSamplingRule", post(sampling::update_sampling_rule))
        .route("/DeleteSamplingRule", post(sampling::delete_sampling_rule))
        .route("/TelemetryRecords", post(sampling::put_telemetry_records))
        .route("/CreateGroup", post(groups::create_group))
        .route("/Groups", post(groups::get_groups))
        .route("/GetGroup", post(groups::get_group))
        .route("/UpdateGroup", post(groups::update_group))
        .route("/DeleteGroup", post(groups::delete_group))
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// Any other path: X-Ray's JSON error for an operation it does not have (the AWS CLI prints
/// its type and message rather than an HTML page).
async fn unknown_operation(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::UnknownOperation(format!("no operation at {method} {}", uri.path()))
}

/// Parses a JSON request body (an empty body reads as `{}`).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
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
mod tests;
