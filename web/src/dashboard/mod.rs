//! The dashboard: server-rendered pages (askama) over the same queries as the X-Ray API — the
//! service map (home), the traces list with the filter box, and the trace timeline, narrowed to
//! the groups a group-scoped reader may read ([`reach`]); the audit page ([`audit`]) — plus the
//! embedded CSS and JavaScript. Nothing is fetched from elsewhere: every asset is in the binary,
//! and the pages carry no inline code, so a strict Content-Security-Policy ([`headers`]) holds.
//!
//! Every page is a plain GET whose query string holds the whole state (window, filter, sort,
//! selected row), so links are deep links and the browser's back button works.

pub mod alarms;
mod analytics;
pub mod audit;
mod compare;
pub mod headers;
pub mod insights;
pub mod layout;
pub mod map;
pub mod reach;
pub mod timeline;
pub mod trace_diff;
mod traces;

pub use traces::{Bar, Column, ListQuery, TraceRow};

use std::fmt::Write;

use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use roentgen_sdk::model::calendar::{civil_from_days, days_from_civil};
use serde::Deserialize;
use serde_json::Value;

use crate::api::AppState;
use crate::assembly::TraceSummary;
use crate::auth::Caller;
use crate::filter::Expr;
use crate::query;
use reach::Reach;

/// The stylesheet, embedded.
pub const CSS: &str = include_str!("../../assets/app.css");
/// The script, embedded.
pub const JS: &str = include_str!("../../assets/app.js");
/// Traces gathered for the list and its histogram.
pub const LIST_LIMIT: usize = 1000;
/// Rows per page of the traces table.
pub const ROWS_PER_PAGE: usize = 50;

/// The dashboard's routes over `state`, each response with the [`headers`]; merge them with
/// [`crate::api::router`].
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(map_page))
        .route("/traces", get(traces::traces_page))
        .route("/analytics", get(analytics::analytics_page))
        .route("/compare", get(compare::compare_page))
        .route("/traces/{id}", get(trace_page))
        .route("/traces/{id}/rows/{row}", get(row_details))
        .route("/audit", get(audit::audit_page))
        .route("/alarms", get(alarms::alarms_page))
        .route("/insights", get(insights::insights_page))
        .route("/alarms/create", axum::routing::post(alarms::create_rule))
        .route("/alarms/delete", axum::routing::post(alarms::delete_rule))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state);
    headers::protect_pages(pages)
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A filter-language string literal.
pub fn filter_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The preset windows offered, `(value, label, seconds)`.
pub const WINDOWS: [(&str, &str, f64); 6] = [
    ("5m", "Last 5 minutes", 300.0),
    ("15m", "Last 15 minutes", 900.0),
    ("1h", "Last hour", 3600.0),
    ("6h", "Last 6 hours", 21_600.0),
    ("1d", "Last day", 86_400.0),
    ("custom", "Custom", 0.0),
];

/// Parses `YYYY-MM-DDTHH:MM[:SS]` (UTC, as a `datetime-local` input sends) or epoch seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Ok(v) = t.parse::<f64>() {
        return Some(v);
    }
    let (date, time) = t.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut tp = time.trim_end_matches('Z').splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let min: i64 = tp.next()?.parse().ok()?;
    let sec: f64 = tp.next().map(str::parse).transpose().ok()?.unwrap_or(0.0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Formats epoch seconds as `YYYY-MM-DDTHH:MM:SS` (UTC).
pub fn format_time(t: f64) -> String {
    let secs = t.floor() as i64;
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Formats an age (`12 s ago`, `4 min ago`, ...).
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.0} s ago")
    } else if s < 3600.0 {
        format!("{:.0} min ago", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h ago", s / 3600.0)
    } else {
        format!("{:.1} d ago", s / 86_400.0)
    }
}

/// The time window and filter every page takes from its query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Scope {
    /// Preset (`5m`, `1h`, ...) or `custom`.
    #[serde(default)]
    pub window: Option<String>,
    /// Custom start.
    #[serde(default)]
    pub start: Option<String>,
    /// Custom end.
    #[serde(default)]
    pub end: Option<String>,
    /// Filter expression.
    #[serde(default)]
    pub filter: Option<String>,
    /// Group whose filter applies.
    #[serde(default)]
    pub group: Option<String>,
}

/// A resolved window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Preset chosen.
    pub preset: String,
    /// Start, epoch seconds.
    pub start: f64,
    /// End.
    pub end: f64,
}

impl Scope {
    /// The window this scope names (default: the last 5 minutes, or the last hour for lists).
    pub fn window(&self, default: &str, now: f64) -> Window {
        let preset = self.window.clone().unwrap_or_else(|| default.to_owned());
        if preset == "custom" {
            let end = self.end.as_deref().and_then(parse_time).unwrap_or(now);
            let start = self
                .start
                .as_deref()
                .and_then(parse_time)
                .unwrap_or(end - 3600.0)
                .min(end);
            return Window { preset, start, end };
        }
        let seconds = WINDOWS
            .iter()
            .find(|w| w.0 == preset && w.2 > 0.0)
            .map_or(300.0, |w| w.2);
        let preset = if WINDOWS.iter().any(|w| w.0 == preset) {
            preset
        } else {
            default.to_owned()
        };
        Window {
            preset,
            start: now - seconds,
            end: now,
        }
    }

    /// The filter text (empty if none).
    pub fn filter_text(&self) -> String {
        self.filter.clone().unwrap_or_default().trim().to_owned()
    }

    /// Query-string pairs that keep the window (for links between pages).
    pub fn window_query(&self, w: &Window) -> String {
        let mut q = format!("window={}", url_encode(&w.preset));
        if w.preset == "custom" {
            let _ = write!(
                q,
                "&start={}&end={}",
                url_encode(&format_time(w.start)),
                url_encode(&format_time(w.end))
            );
        }
        if let Some(g) = self.group.as_deref().filter(|g| !g.is_empty()) {
            let _ = write!(q, "&group={}", url_encode(g));
        }
        q
    }
}

/// A filter that did not parse: the message, the column, and the text with a caret line.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterProblem {
    /// `column N: message`.
    pub message: String,
    /// 1-based column.
    pub column: usize,
    /// Spaces then `^` under the column.
    pub caret: String,
}

/// Parses the scope's filter (and group), returning the expression or the problem to show.
async fn scope_filter(state: &AppState, scope: &Scope) -> Result<Option<Expr>, FilterProblem> {
    let mut text = scope.filter_text();
    if let Some(g) = scope.group.as_deref().filter(|g| !g.is_empty()) {
        let group = format!("group.name = {}", filter_quote(g));
        text = if text.is_empty() {
            group
        } else {
            format!("({text}) AND {group}")
        };
    }
    if text.is_empty() {
        return Ok(None);
    }
    if let Err(e) = crate::filter::parse(&scope.filter_text()).map(|_| ())
        && !scope.filter_text().is_empty()
    {
        return Err(FilterProblem {
            message: e.to_string(),
            column: e.column,
            caret: format!("{}^", " ".repeat(e.column.saturating_sub(1))),
        });
    }
    crate::api::parse_filter(state, Some(&text))
        .await
        .map_err(|e| FilterProblem {
            message: e.to_string(),
            column: 0,
            caret: String::new(),
        })
}

/// A page failure: logged, shown as a short page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A query failed.
    #[error("query failed: {0}")]
    Query(String),
    /// A template failed.
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    /// Nothing with that id.
    #[error("{0} not found")]
    NotFound(String),
    /// The visitor may not read this.
    #[error("{0}")]
    Forbidden(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => {
                tracing::warn!(error = %self, "dashboard page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = format!(
            "<!doctype html><meta charset=utf-8><link rel=stylesheet href=/assets/app.css><main class=\"page\"><h1>{}</h1><p><a href=\"/\">Service map</a></p></main>",
            esc(&self.to_string())
        );
        (status, Html(body)).into_response()
    }
}

fn query_err(e: impl std::fmt::Display) -> PageError {
    PageError::Query(e.to_string())
}

/// What every page over a window starts from: the visitor's reach applied to `scope` (a
/// group-scoped visitor is confined to one of its groups), the window (`default_window` when
/// the query names none), and the header for page `active`.
async fn page_frame(
    state: &AppState,
    caller: Option<Extension<Caller>>,
    scope: &mut Scope,
    active: &'static str,
    default_window: &str,
) -> Result<(Window, Nav), PageError> {
    let caller = caller.map(|c| c.0);
    let reach = Reach::of(state, caller.as_ref()).await?;
    reach.restrict(scope)?;
    let w = scope.window(default_window, now());
    let nav = Nav::new(active, scope, &w)
        .for_caller(caller.as_ref())
        .with_groups(state, &reach)
        .await;
    Ok((w, nav))
}

/// The newest matches of a window, gathered page by page for a dashboard view.
#[derive(Debug, Default)]
struct Gathered {
    /// At most [`LIST_LIMIT`] matches, newest first.
    matched: Vec<TraceSummary>,
    /// More matched than [`LIST_LIMIT`].
    truncated: bool,
    /// Candidates examined when the search stopped at the scan budget.
    scan_stopped: Option<usize>,
}

/// Gathers the matches of `filter` in `w`: at most [`LIST_LIMIT`], examining at most the
/// collector's `list_scan_budget` candidates.
async fn gather(
    state: &AppState,
    w: &Window,
    filter: Option<&Expr>,
) -> Result<Gathered, PageError> {
    let mut out = Gathered::default();
    let mut scanned = 0;
    let mut token: Option<String> = None;
    loop {
        let page = query::trace_summaries(
            state.store.as_ref(),
            w.start,
            w.end,
            filter,
            token.as_deref(),
        )
        .await
        .map_err(query_err)?;
        out.matched.extend(page.summaries);
        scanned += page.scanned;
        token = page.next_token;
        if token.is_none() {
            break;
        }
        if out.matched.len() >= LIST_LIMIT {
            out.truncated = true;
            break;
        }
        if scanned >= state.limits.list_scan_budget {
            out.scan_stopped = Some(scanned);
            break;
        }
    }
    out.matched.truncate(LIST_LIMIT);
    Ok(out)
}

/// Template context shared by every page's header (navigation and window picker).
#[derive(Debug, Clone)]
pub struct Nav {
    /// Which page is active: `map`, `traces`, `analytics`, `trace`.
    pub active: &'static str,
    /// Window presets: `(value, label, selected)`.
    pub windows: Vec<(String, String, bool)>,
    /// Custom start, for the inputs.
    pub start: String,
    /// Custom end.
    pub end: String,
    /// Custom window chosen.
    pub custom: bool,
    /// The filter text.
    pub filter: String,
    /// Query string carrying window and group.
    pub window_query: String,
    /// The group, if one is chosen.
    pub group: String,
    /// Stored groups the visitor may read: `(name, selected)`.
    pub groups: Vec<(String, bool)>,
    /// Whether "All traces" is offered (the visitor is not limited to groups).
    pub all_groups: bool,
    /// Whether the visitor may open the audit page (a link is shown).
    pub audit: bool,
}

impl Nav {
    fn new(active: &'static str, scope: &Scope, w: &Window) -> Self {
        Self {
            active,
            windows: WINDOWS
                .iter()
                .map(|(v, l, _)| ((*v).to_owned(), (*l).to_owned(), *v == w.preset))
                .collect(),
            start: format_time(w.start)[..16].to_owned(),
            end: format_time(w.end)[..16].to_owned(),
            custom: w.preset == "custom",
            filter: scope.filter_text(),
            window_query: scope.window_query(w),
            group: scope.group.clone().unwrap_or_default(),
            groups: Vec::new(),
            all_groups: true,
            audit: false,
        }
    }

    /// Shows the audit link when the caller may open it.
    fn for_caller(mut self, caller: Option<&Caller>) -> Self {
        self.audit = reach::may_audit(caller);
        self
    }

    /// Adds the stored groups the visitor may read to the picker (a store failure just leaves
    /// it empty).
    async fn with_groups(mut self, state: &AppState, reach: &Reach) -> Self {
        let names = state.store.groups().await.unwrap_or_default();
        self.all_groups = *reach == Reach::All;
        self.groups = names
            .into_iter()
            .filter(|g| reach.allows(&g.name))
            .map(|g| {
                let selected = g.name == self.group;
                (g.name, selected)
            })
            .collect();
        self
    }
}

#[derive(Template)]
#[template(path = "map.html")]
struct MapPage {
    nav: Nav,
    map: map::MapView,
    problem: Option<FilterProblem>,
    traces_base: String,
}

/// Renders the map page for a service list over the last `minutes` (for the handler and benches).
pub fn render_map_page(services: &[crate::graph::Service], minutes: f64) -> String {
    let scope = Scope::default();
    let w = scope.window("5m", now());
    let nav = Nav::new("map", &scope, &w);
    MapPage {
        traces_base: format!("/traces?{}", nav.window_query),
        nav,
        map: map::render(services, minutes),
        problem: None,
    }
    .render()
    .unwrap_or_default()
}

/// The map page's own query parameter besides the scope.
#[derive(Debug, Default, Deserialize)]
pub struct MapQuery {
    /// An insight whose impacted services and calls are outlined.
    #[serde(default)]
    pub insight: Option<String>,
}

async fn map_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(mut scope): Query<Scope>,
    Query(extra): Query<MapQuery>,
) -> Result<Html<String>, PageError> {
    let (w, nav) = page_frame(&state, caller, &mut scope, "map", "5m").await?;
    let highlight = match extra.insight.filter(|id| !id.is_empty()) {
        None => None,
        Some(id) => {
            let found = state
                .store
                .insights(f64::MIN, f64::MAX, Some(id.clone()), 1)
                .await
                .map_err(query_err)?;
            let insight = found
                .into_iter()
                .next()
                .ok_or_else(|| PageError::NotFound(format!("insight {id}")))?;
            Some(map::Highlight {
                services: insight
                    .impacted_services
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
                edges: insight
                    .impacted_edges
                    .iter()
                    .map(|(a, b)| (a.name.clone(), b.name.clone()))
                    .collect(),
                root: insight.root_cause.name,
            })
        }
    };
    let (services, problem) = match scope_filter(&state, &scope).await {
        Ok(expr) => (
            query::service_graph(state.store.as_ref(), w.start, w.end, expr.as_ref())
                .await
                .map_err(query_err)?,
            None,
        ),
        Err(p) => (Vec::new(), Some(p)),
    };
    let view = map::render_highlighted(&services, (w.end - w.start) / 60.0, highlight.as_ref());
    let page = MapPage {
        traces_base: format!("/traces?{}", nav.window_query),
        nav,
        map: view,
        problem,
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    nav: Nav,
    id: String,
    timeline: timeline::Timeline,
    /// Labels at 0, 25, 50, 75 and 100% of the trace (placed by the stylesheet).
    ticks: Vec<String>,
    small_map: String,
    levels: Vec<usize>,
    summary: Option<TraceSummary>,
}

async fn load_documents(state: &AppState, id: &str) -> Result<Vec<Value>, PageError> {
    let traces = query::trace_segments(state.store.as_ref(), vec![id.to_owned()])
        .await
        .map_err(query_err)?;
    let Some((_, _, docs)) = traces.into_iter().next() else {
        return Err(PageError::NotFound(format!("trace {id}")));
    };
    Ok(docs
        .iter()
        .filter_map(|(_, text)| serde_json::from_str(text).ok())
        .collect())
}

/// Query string of the timeline page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TraceQuery {
    /// Window and filter (kept for the navigation links).
    #[serde(flatten)]
    pub scope: Scope,
}

/// Renders the timeline page of a trace from its documents (for the handler and benches).
pub fn render_trace_page(id: &str, documents: &[Value], small_map: String) -> String {
    let scope = Scope::default();
    let w = scope.window("1h", now());
    render_trace(
        id,
        documents,
        small_map,
        Nav::new("trace", &scope, &w),
        None,
    )
    .unwrap_or_default()
}

fn render_trace(
    id: &str,
    documents: &[Value],
    small_map: String,
    nav: Nav,
    summary: Option<TraceSummary>,
) -> Result<String, askama::Error> {
    let timeline = timeline::build(documents);
    let ticks = (0..=4)
        .map(|i| map::latency(timeline.duration * f64::from(i) / 4.0))
        .collect();
    let levels = (1..=timeline.max_depth.min(6)).collect();
    TracePage {
        nav,
        id: id.to_owned(),
        timeline,
        ticks,
        small_map,
        levels,
        summary,
    }
    .render()
}

/// The summary of a trace, refused as "not found" when the visitor may not read it.
async fn visible_summary(
    state: &AppState,
    caller: Option<&Caller>,
    id: &str,
) -> Result<Option<TraceSummary>, PageError> {
    let summary = state
        .store
        .get_traces(vec![id.to_owned()])
        .await
        .map_err(query_err)?
        .into_iter()
        .next()
        .map(|r| r.summary);
    let reach = Reach::of(state, caller).await?;
    if reach.may_see(state, summary.as_ref()).await {
        Ok(summary)
    } else {
        Err(PageError::NotFound(format!("trace {id}")))
    }
}

async fn trace_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<TraceQuery>,
) -> Result<Html<String>, PageError> {
    let caller = caller.map(|c| c.0);
    let summary = visible_summary(&state, caller.as_ref(), &id).await?;
    let docs = load_documents(&state, &id).await?;
    let w = q.scope.window("1h", now());
    let nav = Nav::new("trace", &q.scope, &w).for_caller(caller.as_ref());
    let services = query::trace_graph(state.store.as_ref(), vec![id.clone()])
        .await
        .map_err(query_err)?;
    let small = map::render(&services, 1.0).svg;
    Ok(Html(render_trace(&id, &docs, small, nav, summary)?))
}

async fn row_details(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((id, row)): Path<(String, String)>,
) -> Result<Html<String>, PageError> {
    visible_summary(&state, caller.as_ref().map(|c| &c.0), &id).await?;
    let docs = load_documents(&state, &id).await?;
    let v = timeline::find(&docs, &row).ok_or_else(|| PageError::NotFound(format!("row {row}")))?;
    Ok(Html(timeline::details(v)))
}

fn asset(body: &'static str, kind: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
}

async fn css() -> impl IntoResponse {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> impl IntoResponse {
    asset(JS, "text/javascript; charset=utf-8")
}

#[cfg(test)]
mod page_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time("2026-11-29T01:02:03").unwrap();
        assert_eq!(format_time(t), "2026-11-29T01:02:03");
        assert_eq!(parse_time("1800000000"), Some(1_800_000_000.0));
        assert_eq!(format_time(0.0), "1970-01-01T00:00:00");
        assert!(parse_time("2026-13-01T00:00").is_none());
    }

    #[test]
    fn escaping_and_quoting() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(filter_quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(url_encode("service(\"a b\")"), "service%28%22a+b%22%29");
    }

    #[test]
    fn windows_default_and_custom() {
        let s = Scope::default();
        let w = s.window("5m", 1000.0);
        assert_eq!((w.preset.as_str(), w.start, w.end), ("5m", 700.0, 1000.0));
        let s = Scope {
            window: Some("custom".into()),
            start: Some("100".into()),
            end: Some("200".into()),
            ..Scope::default()
        };
        let w = s.window("5m", 1000.0);
        assert_eq!((w.start, w.end), (100.0, 200.0));
        assert!(s.window_query(&w).contains("start=1970-01-01T00%3A01%3A40"));
    }
}
