//! The traces list: the window's matching traces (a bounded search), their response-time
//! histogram whose bars narrow the filter, and the sortable, paged table.

use super::*;

/// Query string of the traces list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Window and filter.
    #[serde(flatten)]
    pub scope: Scope,
    /// Sort column.
    #[serde(default)]
    pub sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(default)]
    pub order: Option<String>,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
}

/// One row of the traces table.
#[derive(Debug, Clone)]
pub struct TraceRow {
    /// Trace id.
    pub id: String,
    /// Entry point service.
    pub entry: String,
    /// HTTP method.
    pub method: String,
    /// URL.
    pub url: String,
    /// HTTP status.
    pub status: String,
    /// `ok`, `error`, `throttle`, `fault`.
    pub outcome: &'static str,
    /// Response time text.
    pub response: String,
    /// Duration text.
    pub duration: String,
    /// Age text.
    pub age: String,
    /// Partial trace.
    pub partial: bool,
}

/// A bar of the response-time histogram of the matches.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Link that narrows the filter to this bar's range.
    pub href: String,
    /// Left, px.
    pub x: f64,
    /// Top, px.
    pub y: f64,
    /// Width, px.
    pub width: f64,
    /// Height, px.
    pub height: f64,
    /// Tooltip.
    pub title: String,
    /// Lower bound of its range, seconds.
    pub lo: String,
    /// Upper bound of its range, seconds.
    pub hi: String,
}

/// A sortable column header.
#[derive(Debug, Clone)]
pub struct Column {
    /// Label.
    pub label: &'static str,
    /// Link that sorts by it.
    pub href: String,
    /// `▲`/`▼` when active.
    pub arrow: &'static str,
}

#[derive(Template)]
#[template(path = "traces.html")]
struct TracesPage {
    base: String,
    nav: Nav,
    problem: Option<FilterProblem>,
    rows: Vec<TraceRow>,
    columns: Vec<Column>,
    bars: Vec<Bar>,
    axis: (String, String),
    matched: usize,
    truncated: bool,
    /// Candidates examined when the search stopped at the scan budget before the window's end.
    scan_stopped: Option<usize>,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

fn outcome_of(s: &TraceSummary) -> &'static str {
    if s.has_fault {
        "fault"
    } else if s.has_throttle {
        "throttle"
    } else if s.has_error {
        "error"
    } else {
        "ok"
    }
}

const SORTS: [(&str, &str); 8] = [
    ("id", "ID"),
    ("entry", "Entry point"),
    ("method", "Method"),
    ("url", "URL"),
    ("status", "Status"),
    ("response", "Response time"),
    ("duration", "Duration"),
    ("age", "Age"),
];

fn sort_summaries(list: &mut [TraceSummary], sort: &str, desc: bool) {
    let text = |s: &TraceSummary, k: &str| -> String {
        let h = s.http.as_ref();
        match k {
            "entry" => s
                .entry_point
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            "method" => h.and_then(|h| h.method.clone()).unwrap_or_default(),
            "url" => h.and_then(|h| h.url.clone()).unwrap_or_default(),
            _ => s.id.clone(),
        }
    };
    let num = |s: &TraceSummary, k: &str| -> f64 {
        match k {
            "status" => s
                .http
                .as_ref()
                .and_then(|h| h.status)
                .map_or(0.0, f64::from),
            "response" => s.response_time.unwrap_or(0.0),
            "duration" => s.duration.unwrap_or(0.0),
            _ => -s.start_time,
        }
    };
    match sort {
        "id" | "entry" | "method" | "url" => list.sort_by_key(|a| text(a, sort)),
        _ => list.sort_by(|a, b| num(a, sort).total_cmp(&num(b, sort))),
    }
    if desc {
        list.reverse();
    }
}

/// Bins of the response-time histogram (logarithmic between the fastest and slowest match).
const BINS: usize = 24;

fn histogram_bars(list: &[TraceSummary], base: &str, filter: &str) -> (Vec<Bar>, (String, String)) {
    let times: Vec<f64> = list
        .iter()
        .filter_map(|s| s.response_time)
        .filter(|t| t.is_finite())
        .collect();
    if times.is_empty() {
        return (Vec::new(), (String::new(), String::new()));
    }
    let lo = times
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-4);
    let hi = times.iter().copied().fold(0.0, f64::max).max(lo * 1.0001);
    let (llo, lhi) = (lo.ln(), hi.ln());
    let step = (lhi - llo) / BINS as f64;
    let mut counts = [0usize; BINS];
    for t in &times {
        let i = ((t.max(lo).ln() - llo) / step).floor() as usize;
        counts[i.min(BINS - 1)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (width, height) = (600.0 / BINS as f64, 80.0);
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let a = (llo + step * i as f64).exp();
            let b = (llo + step * (i + 1) as f64).exp();
            let range = format!("responsetime >= {a:.4} AND responsetime <= {b:.4}");
            let narrowed = if filter.is_empty() {
                range
            } else {
                format!("({filter}) AND {range}")
            };
            let h = if c == 0 {
                0.0
            } else {
                (c as f64 / max * height).max(2.0)
            };
            Bar {
                href: format!("{base}&filter={}", url_encode(&narrowed)),
                x: i as f64 * width,
                y: height - h,
                width: width - 1.0,
                height: h,
                title: format!("{}–{}: {c} traces", map::latency(a), map::latency(b)),
                lo: format!("{a:.4}"),
                hi: format!("{b:.4}"),
            }
        })
        .collect();
    (bars, (map::latency(lo), map::latency(hi)))
}

pub(super) async fn traces_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(mut q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let (w, nav) = page_frame(&state, caller, &mut q.scope, "traces", "1h").await?;
    let now = now();
    let filter = q.scope.filter_text();
    let (gathered, problem) = match scope_filter(&state, &q.scope).await {
        Ok(expr) => (gather(&state, &w, expr.as_ref()).await?, None),
        Err(p) => (Gathered::default(), Some(p)),
    };
    let Gathered {
        mut matched,
        truncated,
        scan_stopped,
    } = gathered;
    let base = format!("/traces?{}", nav.window_query);
    let with_filter = if filter.is_empty() {
        base.clone()
    } else {
        format!("{base}&filter={}", url_encode(&filter))
    };
    let (bars, axis) = histogram_bars(&matched, &base, &filter);
    let sort = q
        .sort
        .clone()
        .filter(|s| SORTS.iter().any(|(k, _)| k == s))
        .unwrap_or_else(|| "age".to_owned());
    let desc = q.order.as_deref() == Some("desc");
    sort_summaries(&mut matched, &sort, desc);
    let columns = SORTS
        .iter()
        .map(|(key, label)| {
            let active = *key == sort;
            let order = if active && !desc { "desc" } else { "asc" };
            Column {
                label,
                href: format!("{with_filter}&sort={key}&order={order}"),
                arrow: match (active, desc) {
                    (false, _) => "",
                    (true, false) => " ▲",
                    (true, true) => " ▼",
                },
            }
        })
        .collect();
    let pages = matched.len().div_ceil(ROWS_PER_PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let sorted = format!(
        "{with_filter}&sort={sort}&order={}",
        if desc { "desc" } else { "asc" }
    );
    let rows = matched
        .iter()
        .skip((page - 1) * ROWS_PER_PAGE)
        .take(ROWS_PER_PAGE)
        .map(|s| {
            let h = s.http.as_ref();
            TraceRow {
                id: s.id.clone(),
                entry: s
                    .entry_point
                    .as_ref()
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
                method: h.and_then(|h| h.method.clone()).unwrap_or_default(),
                url: h.and_then(|h| h.url.clone()).unwrap_or_default(),
                status: h
                    .and_then(|h| h.status)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                outcome: outcome_of(s),
                response: s.response_time.map(map::latency).unwrap_or_default(),
                duration: s.duration.map(map::latency).unwrap_or_default(),
                age: age(now - s.start_time),
                partial: s.is_partial,
            }
        })
        .collect();
    let page_html = TracesPage {
        base,
        nav,
        problem,
        rows,
        columns,
        bars,
        axis,
        matched: matched.len(),
        truncated,
        scan_stopped,
        page,
        pages,
        prev: (page > 1).then(|| format!("{sorted}&page={}", page - 1)),
        next: (page < pages).then(|| format!("{sorted}&page={}", page + 1)),
    };
    Ok(Html(page_html.render()?))
}
