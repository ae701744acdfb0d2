//! The analytics page: a set of traces (the window, filter and group of every page) — its
//! response-time histogram whose bars narrow the set, its requests and outcomes over time,
//! and its breakdowns whose values refine the filter — or two sets compared side by side
//! (another filter, the same filter over another window, or a selection against the rest).

use super::*;
use crate::analytics::{self, Analysis, BUCKET_BOUNDS, Compared, Tally};

/// Query string of the analytics page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AnalyticsQuery {
    /// Set A: window, filter and group.
    #[serde(flatten)]
    pub scope: Scope,
    /// How set B is made: `filter` (its own filter, A's window), `window` (A's filter over its
    /// own window), `rest` (the traces of A matching `b_filter` against the others); empty for
    /// no comparison.
    #[serde(default)]
    pub compare: Option<String>,
    /// B's filter (`filter`), or the selection (`rest`).
    #[serde(default)]
    pub b_filter: Option<String>,
    /// B's window start (`window`).
    #[serde(default)]
    pub b_start: Option<String>,
    /// B's window end (`window`).
    #[serde(default)]
    pub b_end: Option<String>,
}

/// How B is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Filter,
    Window,
    Rest,
}

impl Mode {
    fn parse(text: Option<&str>) -> Option<Self> {
        match text? {
            "filter" => Some(Mode::Filter),
            "window" => Some(Mode::Window),
            "rest" => Some(Mode::Rest),
            _ => None,
        }
    }
}

/// A histogram bar (A's, with B's outline when comparing).
#[derive(Debug, Clone)]
struct HistoBar {
    href: String,
    x: f64,
    width: f64,
    a_y: f64,
    a_height: f64,
    b_y: f64,
    b_height: f64,
    title: String,
    /// The bucket's bounds, seconds, for a drag across bars (the last bucket's upper bound
    /// is a day).
    lo: String,
    hi: String,
}

/// One row of a breakdown table.
#[derive(Debug, Clone)]
struct Row {
    value: String,
    /// Refines A's filter with this value.
    refine: String,
    /// The traces list of A narrowed to this value.
    traces: String,
    a_count: u64,
    a_share: String,
    a_width: f64,
    b_count: u64,
    b_share: String,
    b_width: f64,
    difference: String,
    /// `more`, `less` or empty.
    trend: &'static str,
}

/// One breakdown table.
#[derive(Debug, Clone)]
struct Table {
    id: String,
    label: String,
    rows: Vec<Row>,
    others: u64,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    nav: Nav,
    problem: Option<FilterProblem>,
    b_problem: Option<FilterProblem>,
    comparing: bool,
    compare: String,
    b_filter: String,
    b_start: String,
    b_end: String,
    a_label: String,
    b_label: String,
    a_traces: u64,
    b_traces: u64,
    truncated: bool,
    bars: Vec<HistoBar>,
    /// The page's URL without its filter (a drag across bars adds one).
    histo_base: String,
    axis: Vec<(f64, String)>,
    series: Series,
    tables: Vec<Table>,
}

/// The time series as SVG polylines (600 × 100).
#[derive(Debug, Clone, Default)]
struct Series {
    requests: String,
    faults: String,
    errors: String,
    b_requests: String,
    max: u64,
    from: String,
    to: String,
}

/// Human label of a breakdown's dimension name.
fn label(dimension: &str) -> String {
    match dimension {
        "FaultRootCauseService" => "Fault root cause".to_owned(),
        "ErrorRootCauseService" => "Error root cause".to_owned(),
        "ResponseTimeRootCauseService" => "Response-time root cause".to_owned(),
        "FaultRootCauseException" => "Fault exceptions".to_owned(),
        "ErrorRootCauseException" => "Error exceptions".to_owned(),
        "Url" => "URL".to_owned(),
        "HttpMethod" => "HTTP method".to_owned(),
        "HttpStatus" => "HTTP status".to_owned(),
        "User" => "Users".to_owned(),
        "InstanceId" => "Instances".to_owned(),
        "AvailabilityZone" => "Availability zones".to_owned(),
        other => match other.strip_prefix("Annotation:") {
            Some(k) => format!("Annotation {k}"),
            None => other.to_owned(),
        },
    }
}

/// `(base) AND term`, or `term` alone.
fn narrowed(base: &str, term: &str) -> String {
    if base.is_empty() {
        term.to_owned()
    } else {
        format!("({base}) AND {term}")
    }
}

/// A set's filter as its label: the text, or "all traces" without one.
fn or_all(filter: &str) -> String {
    if filter.is_empty() {
        "all traces".to_owned()
    } else {
        filter.to_owned()
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn polyline(points: &[analytics::Point], value: fn(&analytics::Point) -> u64, max: u64) -> String {
    let n = points.len().max(2) - 1;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = i as f64 * 600.0 / n as f64;
            let y = 100.0 - value(p) as f64 / max.max(1) as f64 * 96.0;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn bars(a: &Analysis, b: Option<&Analysis>, href: impl Fn(&str) -> String) -> Vec<HistoBar> {
    // Heights are shares of each set, so sets of different sizes overlay.
    let share = |s: &Analysis, i: usize| {
        let total: u64 = s.histogram.iter().map(|b| b.count).sum();
        if total == 0 {
            0.0
        } else {
            s.histogram[i].count as f64 / total as f64
        }
    };
    let n = a.histogram.len();
    let top = (0..n)
        .map(|i| share(a, i).max(b.map_or(0.0, |b| share(b, i))))
        .fold(0.0, f64::max)
        .max(1e-9);
    let width = 600.0 / n as f64;
    (0..n)
        .map(|i| {
            let bucket = &a.histogram[i];
            let ha = share(a, i) / top * 80.0;
            let hb = b.map_or(0.0, |b| share(b, i) / top * 80.0);
            let range = match bucket.to {
                Some(to) => format!("{}–{}", map::latency(bucket.from), map::latency(to)),
                None => format!("≥ {}", map::latency(bucket.from)),
            };
            let counts = match b {
                Some(b) => format!("A {} · B {}", bucket.count, b.histogram[i].count),
                None => format!("{} traces", bucket.count),
            };
            HistoBar {
                href: href(&bucket.filter),
                x: i as f64 * width,
                width: width - 1.0,
                a_y: 80.0 - ha,
                a_height: ha,
                b_y: 80.0 - hb,
                b_height: hb,
                title: format!("{range}: {counts}"),
                lo: bucket.from.to_string(),
                hi: bucket.to.unwrap_or(86_400.0).to_string(),
            }
        })
        .collect()
}

impl Row {
    /// A row for `value` (whose filter term is `term`) with A's count and share, and B's with
    /// the difference when comparing.
    fn new(
        value: &analytics::Value,
        term: &str,
        link: &impl Fn(&str, &str) -> String,
        a: (u64, f64),
        b: Option<(u64, f64, f64)>,
    ) -> Self {
        let (b_count, b_share, difference) = b.unwrap_or((0, 0.0, 0.0));
        // Share bars are narrower when two stand side by side.
        let scale = if b.is_some() { 80.0 } else { 120.0 };
        Row {
            value: value.to_string(),
            refine: link("/analytics", term),
            traces: link("/traces", term),
            a_count: a.0,
            a_share: percent(a.1),
            a_width: a.1 * scale,
            b_count,
            b_share: b.map(|_| percent(b_share)).unwrap_or_default(),
            b_width: b_share * scale,
            difference: b
                .map(|_| format!("{:+.1} pts", difference * 100.0))
                .unwrap_or_default(),
            trend: match difference.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => "more",
                Some(std::cmp::Ordering::Less) => "less",
                _ => "",
            },
        }
    }
}

impl Table {
    /// The table of the breakdown of `dimension` (its API name).
    fn new(dimension: &str, rows: Vec<Row>, others: u64) -> Self {
        Table {
            id: dimension.replace(':', "-"),
            label: label(dimension),
            rows,
            others,
        }
    }
}

/// Rows of one analysis's breakdowns.
fn single_tables(a: &Analysis, link: &impl Fn(&str, &str) -> String) -> Vec<Table> {
    a.breakdowns
        .iter()
        .map(|b| {
            let rows = b.values.iter();
            let rows = rows.map(|e| Row::new(&e.value, &e.filter, link, (e.count, e.share), None));
            Table::new(&b.dimension, rows.collect(), b.other_values)
        })
        .collect()
}

/// Rows of a comparison's breakdowns, in its order (what differs most first).
fn compared_tables(c: &Compared, link: &impl Fn(&str, &str) -> String) -> Vec<Table> {
    c.breakdowns
        .iter()
        .map(|b| {
            let rows = b.values.iter().map(|e| {
                let a = (e.count_a, e.share_a);
                let b = (e.count_b, e.share_b, e.difference);
                Row::new(&e.value, &e.filter, link, a, Some(b))
            });
            Table::new(&b.dimension, rows.collect(), 0)
        })
        .collect()
}

fn series_of(a: &Analysis, b: Option<&Analysis>) -> Series {
    let max = a
        .time_series
        .iter()
        .chain(b.map(|b| b.time_series.as_slice()).unwrap_or_default())
        .map(|p| p.requests)
        .max()
        .unwrap_or(0);
    let from = a.time_series.first().map(|p| p.timestamp).unwrap_or(0.0);
    let to = a.time_series.last().map(|p| p.timestamp).unwrap_or(0.0);
    Series {
        requests: polyline(&a.time_series, |p| p.requests, max),
        faults: polyline(&a.time_series, |p| p.fault, max),
        errors: polyline(&a.time_series, |p| p.error, max),
        b_requests: b
            .map(|b| polyline(&b.time_series, |p| p.requests, max))
            .unwrap_or_default(),
        max,
        from: format_time(from).replace('T', " "),
        to: format_time(to).replace('T', " "),
    }
}

pub(super) async fn analytics_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(mut q): Query<AnalyticsQuery>,
) -> Result<Html<String>, PageError> {
    let (w, nav) = page_frame(&state, caller, &mut q.scope, "analytics", "1h").await?;
    let a_text = q.scope.filter_text();
    let b_text = q.b_filter.clone().unwrap_or_default().trim().to_owned();
    let mode = Mode::parse(q.compare.as_deref());
    let b_window = Window {
        preset: "custom".to_owned(),
        start: q
            .b_start
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(w.start - (w.end - w.start)),
        end: q.b_end.as_deref().and_then(parse_time).unwrap_or(w.start),
    };
    let store = state.store.as_ref();
    let mut b_problem = None;
    let (problem, a, b) = match scope_filter(&state, &q.scope).await {
        Err(p) => (Some(p), Tally::new(w.start, w.end), None),
        Ok(a_expr) => {
            // B's filter, within A's group, and the sets as `mode` makes them.
            let b_scope = Scope {
                filter: Some(match mode {
                    Some(Mode::Window) => a_text.clone(),
                    _ => b_text.clone(),
                }),
                ..q.scope.clone()
            };
            let b_expr = match mode {
                None => None,
                Some(_) => match scope_filter(&state, &b_scope).await {
                    Ok(e) => Some(e),
                    Err(p) => {
                        b_problem = Some(p);
                        None
                    }
                },
            };
            let sets = match (mode, b_expr) {
                (Some(Mode::Rest), Some(Some(sel))) => {
                    let with = |e: Expr| match &a_expr {
                        Some(f) => Expr::And(vec![f.clone(), e]),
                        None => e,
                    };
                    let rest = with(Expr::Not(Box::new(sel.clone())));
                    let selected = with(sel);
                    (
                        analytics::collect(store, w.start, w.end, Some(&rest)).await,
                        Some((w.start, w.end, Some(selected))),
                    )
                }
                (Some(Mode::Filter), Some(b)) => (
                    analytics::collect(store, w.start, w.end, a_expr.as_ref()).await,
                    Some((w.start, w.end, b)),
                ),
                (Some(Mode::Window), Some(_)) => (
                    analytics::collect(store, w.start, w.end, a_expr.as_ref()).await,
                    Some((b_window.start, b_window.end, a_expr.clone())),
                ),
                _ => (
                    analytics::collect(store, w.start, w.end, a_expr.as_ref()).await,
                    None,
                ),
            };
            let a = sets.0.map_err(query_err)?;
            let b = match sets.1 {
                Some((start, end, filter)) => Some(
                    analytics::collect(store, start, end, filter.as_ref())
                        .await
                        .map_err(query_err)?,
                ),
                None => None,
            };
            (None, a, b)
        }
    };
    // Links keep the window, the group and the comparison; they narrow A's filter.
    let keep = {
        let mut k = String::new();
        if let Some(m) = q.compare.as_deref().filter(|_| mode.is_some()) {
            let _ = write!(k, "&compare={}", url_encode(m));
            if !b_text.is_empty() {
                let _ = write!(k, "&b_filter={}", url_encode(&b_text));
            }
            if mode == Some(Mode::Window) {
                let _ = write!(
                    k,
                    "&b_start={}&b_end={}",
                    url_encode(&format_time(b_window.start)),
                    url_encode(&format_time(b_window.end))
                );
            }
        }
        k
    };
    let link = |page: &str, term: &str| {
        let extra = if page == "/analytics" {
            keep.as_str()
        } else {
            ""
        };
        format!(
            "{page}?{}&filter={}{extra}",
            nav.window_query,
            url_encode(&narrowed(&a_text, term))
        )
    };
    let a_done = a.finish();
    let (tables, b_done) = match &b {
        Some(b) => {
            let c = analytics::compare(&a, b);
            (compared_tables(&c, &link), Some(c.b))
        }
        None => (single_tables(&a_done, &link), None),
    };
    let (a_label, b_label) = match mode.filter(|_| b_done.is_some()) {
        Some(Mode::Rest) => (format!("not {b_text}"), b_text.clone()),
        Some(Mode::Window) => (
            format!(
                "{} – {}",
                nav.start.replace('T', " "),
                nav.end.replace('T', " ")
            ),
            format!(
                "{} – {}",
                format_time(b_window.start).replace('T', " "),
                format_time(b_window.end).replace('T', " ")
            ),
        ),
        Some(Mode::Filter) => (or_all(&a_text), or_all(&b_text)),
        None => (String::new(), String::new()),
    };
    let axis = BUCKET_BOUNDS
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 2)
        .map(|(i, b)| {
            (
                ((i + 1) as f64) * 600.0 / (BUCKET_BOUNDS.len() + 1) as f64,
                map::latency(*b),
            )
        })
        .collect();
    let page = AnalyticsPage {
        bars: bars(&a_done, b_done.as_ref(), |f| link("/analytics", f)),
        histo_base: format!("/analytics?{}{keep}", nav.window_query),
        series: series_of(&a_done, b_done.as_ref()),
        axis,
        tables,
        comparing: b_done.is_some(),
        compare: q.compare.clone().unwrap_or_default(),
        b_filter: b_text,
        b_start: format_time(b_window.start)[..16].to_owned(),
        b_end: format_time(b_window.end)[..16].to_owned(),
        a_label,
        b_label,
        a_traces: a_done.traces,
        b_traces: b_done.as_ref().map_or(0, |b| b.traces),
        truncated: a_done.truncated || b_done.as_ref().is_some_and(|b| b.truncated),
        nav,
        problem,
        b_problem,
    };
    Ok(Html(page.render()?))
}
