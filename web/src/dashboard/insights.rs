//! The insights page (`GET /insights`): the insights of the window, open ones first, each
//! with its root cause, what it impacted, its events as a timeline, its evidence traces, and
//! links to the service map and the analytics of its window.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;

use super::{Nav, PageError, Scope, format_time, url_encode};
use crate::api::AppState;
use crate::insights::{Insight, InsightState};

/// Most insights listed.
const MAX_LISTED: usize = 200;

struct EventRow {
    time: String,
    summary: String,
}

struct InsightRow {
    id: String,
    open: bool,
    root: String,
    started: String,
    ended: String,
    categories: String,
    summary: String,
    affected: i64,
    client_faults: i64,
    client_total: i64,
    impacted: String,
    edges: String,
    traces: Vec<String>,
    events: Vec<EventRow>,
    map_link: String,
    analytics_link: String,
}

#[derive(Template)]
#[template(path = "insights.html")]
struct InsightsPage {
    nav: Nav,
    insights: Vec<InsightRow>,
}

fn row(i: &Insight) -> InsightRow {
    let end = i.end_time.unwrap_or(i.last_update_time);
    let window = format!(
        "window=custom&start={}&end={}",
        url_encode(&format_time(i.start_time - 300.0)),
        url_encode(&format_time(end + 300.0))
    );
    let filter = url_encode(&format!(
        "service({})",
        crate::filter::Literal::Str(i.root_cause.name.clone())
    ));
    InsightRow {
        id: i.insight_id.clone(),
        open: i.state == InsightState::Active,
        root: i.root_cause.name.clone(),
        started: format_time(i.start_time),
        ended: i.end_time.map(format_time).unwrap_or_default(),
        categories: i.categories.join(", "),
        summary: i.summary.clone(),
        affected: i.requests_affected.round() as i64,
        client_faults: i.client_request_impact_statistics.fault_count,
        client_total: i.client_request_impact_statistics.total_count,
        impacted: i
            .impacted_services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        edges: i
            .impacted_edges
            .iter()
            .map(|(a, b)| format!("{} → {}", a.name, b.name))
            .collect::<Vec<_>>()
            .join(", "),
        traces: i.top_traces.clone(),
        events: i
            .events
            .iter()
            .map(|e| EventRow {
                time: format_time(e.event_time),
                summary: e.summary.clone(),
            })
            .collect(),
        map_link: format!("/?{window}&insight={}", url_encode(&i.insight_id)),
        analytics_link: format!("/analytics?{window}&filter={filter}"),
    }
}

/// `GET /insights`.
pub async fn insights_page(
    State(state): State<AppState>,
    caller: Option<Extension<crate::auth::Caller>>,
    Query(mut scope): Query<Scope>,
) -> Result<Html<String>, PageError> {
    let (w, nav) = super::page_frame(&state, caller, &mut scope, "insights", "1d").await?;
    let mut found = state
        .store
        .insights(w.start, w.end, None, MAX_LISTED)
        .await
        .map_err(|e| PageError::Query(e.to_string()))?;
    found.sort_by(|a, b| {
        (b.state == InsightState::Active)
            .cmp(&(a.state == InsightState::Active))
            .then(b.start_time.total_cmp(&a.start_time))
    });
    let page = InsightsPage {
        nav,
        insights: found.iter().map(row).collect(),
    };
    Ok(Html(page.render()?))
}
