//! The trace comparison page: trace A against trace B, or against the typical trace of A's
//! entry point over the window (the one with the median response time), rows aligned by
//! [`trace_diff`], the rows whose own time differs most on top.

use super::trace_diff::{self, DiffRow};
use super::*;

/// Rows shown; the rest are counted.
pub const MAX_ROWS: usize = 300;

/// Query string of the comparison page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompareQuery {
    /// Window (for the typical trace) and group.
    #[serde(flatten)]
    pub scope: Scope,
    /// Trace A.
    pub a: String,
    /// Trace B; without it, A's entry point's typical trace over the window.
    #[serde(default)]
    pub b: Option<String>,
    /// `tree` for the traces' own order; otherwise by difference.
    #[serde(default)]
    pub order: Option<String>,
}

/// One trace's bar in a row's aligned timeline (an SVG 300 px wide).
#[derive(Debug, Clone)]
struct Bar {
    x: f64,
    width: f64,
    status: &'static str,
    critical: bool,
}

/// One displayed row.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    path: String,
    depth: usize,
    a: String,
    b: String,
    difference: String,
    own_difference: String,
    /// `slower`, `faster` or empty.
    trend: &'static str,
    /// `only-a`, `only-b` or empty.
    only: &'static str,
    a_bar: Option<Bar>,
    b_bar: Option<Bar>,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    nav: Nav,
    a_id: String,
    b_id: String,
    typical: Option<String>,
    a_duration: String,
    b_duration: String,
    difference: String,
    lines: Vec<Line>,
    hidden_rows: usize,
    tree_order: bool,
    base: String,
}

fn signed(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "−" } else { "+" };
    format!("{sign}{}", map::latency(seconds.abs()))
}

fn line(r: &DiffRow, scale: f64) -> Line {
    let bar = |s: &trace_diff::Side| Bar {
        x: s.offset / scale * 300.0,
        width: (s.duration / scale * 300.0).max(1.0),
        status: s.status,
        critical: s.critical,
    };
    let text = |s: &Option<trace_diff::Side>| {
        s.as_ref()
            .map(|s| map::latency(s.duration))
            .unwrap_or_else(|| "—".to_owned())
    };
    let own = r.own_difference();
    Line {
        name: r.path.last().cloned().unwrap_or_default(),
        path: r.path.join(" › "),
        depth: r.path.len().saturating_sub(1),
        a: text(&r.a),
        b: text(&r.b),
        difference: signed(r.difference()),
        own_difference: signed(own),
        trend: if own > 0.0005 {
            "slower"
        } else if own < -0.0005 {
            "faster"
        } else {
            ""
        },
        only: match (&r.a, &r.b) {
            (Some(_), None) => "only-a",
            (None, Some(_)) => "only-b",
            _ => "",
        },
        a_bar: r.a.as_ref().map(bar),
        b_bar: r.b.as_ref().map(bar),
    }
}

/// The trace of `a`'s entry point over the window whose response time is the median, `a`
/// itself left out.
async fn typical_of(
    state: &AppState,
    a: &TraceSummary,
    w: &Window,
) -> Result<Option<String>, PageError> {
    let Some(entry) = &a.entry_point else {
        return Ok(None);
    };
    let selector = crate::filter::ServiceSelector {
        name: Some(entry.name.clone()),
        kind: Some(entry.kind.clone()).filter(|k| !k.is_empty()),
        account: None,
    };
    let expr = Expr::Service(
        selector,
        Some(Box::new(Expr::Flag(crate::filter::Flag::Root))),
    );
    let mut found: Vec<(f64, String)> = gather(state, w, Some(&expr))
        .await?
        .matched
        .into_iter()
        .filter(|s| s.id != a.id)
        .filter_map(|s| s.response_time.map(|r| (r, s.id)))
        .collect();
    found.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
    Ok(found.get(found.len() / 2).map(|(_, id)| id.clone()))
}

pub(super) async fn compare_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(mut q): Query<CompareQuery>,
) -> Result<Html<String>, PageError> {
    let caller = caller.map(|c| c.0);
    let a_summary = visible_summary(&state, caller.as_ref(), &q.a)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("trace {}", q.a)))?;
    let (w, nav) = page_frame(
        &state,
        caller.clone().map(Extension),
        &mut q.scope,
        "trace",
        "1h",
    )
    .await?;
    let (b_id, typical) = match q.b.clone().filter(|b| !b.trim().is_empty()) {
        Some(b) => (b.trim().to_owned(), None),
        None => {
            let id = typical_of(&state, &a_summary, &w).await?.ok_or_else(|| {
                PageError::NotFound(format!(
                    "another trace entering at {} in this window",
                    a_summary
                        .entry_point
                        .as_ref()
                        .map_or("its entry point", |e| e.name.as_str())
                ))
            })?;
            let entry = a_summary
                .entry_point
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_default();
            (id, Some(entry))
        }
    };
    visible_summary(&state, caller.as_ref(), &b_id).await?;
    let (a_docs, b_docs) = (
        load_documents(&state, &q.a).await?,
        load_documents(&state, &b_id).await?,
    );
    let mut diff = trace_diff::compare(&a_docs, &b_docs);
    let tree_order = q.order.as_deref() == Some("tree");
    if tree_order {
        // A's rows in A's order, then what only B has, in B's.
        diff.rows.sort_by(|x, y| {
            let key = |r: &DiffRow| match (&r.a, &r.b) {
                (Some(a), _) => (0, a.offset),
                (None, Some(b)) => (1, b.offset),
                _ => (2, 0.0),
            };
            let (kx, ky) = (key(x), key(y));
            kx.0.cmp(&ky.0).then(kx.1.total_cmp(&ky.1))
        });
    }
    let scale = diff.a_duration.max(diff.b_duration).max(1e-9);
    let lines = diff
        .rows
        .iter()
        .take(MAX_ROWS)
        .map(|r| line(r, scale))
        .collect();
    let base = format!(
        "/compare?{}&a={}&b={}",
        nav.window_query,
        url_encode(&q.a),
        url_encode(&b_id)
    );
    let page = ComparePage {
        a_id: q.a.clone(),
        b_id,
        typical,
        a_duration: map::latency(diff.a_duration),
        b_duration: map::latency(diff.b_duration),
        difference: signed(diff.b_duration - diff.a_duration),
        hidden_rows: diff.rows.len().saturating_sub(MAX_ROWS),
        lines,
        tree_order,
        base,
        nav,
    };
    Ok(Html(page.render()?))
}
