//! Queries over a [`Store`] shared by the X-Ray API and the dashboard: trace summaries with a
//! filter and pagination, whole traces, and the service graph for a window (from per-minute
//! rollups, or from the matching traces' samples when a filter is given).

use std::collections::BTreeMap;

use crate::assembly::{TraceRollup, TraceSummary, assemble_documents, minute_of};
use crate::filter::{self, Expr};
use crate::graph::{GraphStats, Service, Stats};
use crate::store::{RollupRow, ScanQuery, Store, StoreError};

/// Summaries per page.
pub const PAGE_SIZE: usize = 100;
/// Candidates read from the store per round trip.
const SCAN_BATCH: usize = 1000;
/// Candidates examined per page before answering with what was found and a `NextToken`.
const SCAN_BUDGET: usize = 20_000;
/// Most traces a filtered service graph folds.
const GRAPH_TRACE_LIMIT: usize = 200_000;

/// One page of trace summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPage {
    /// Matching summaries, newest first.
    pub summaries: Vec<TraceSummary>,
    /// Candidates examined.
    pub scanned: usize,
    /// Where the next page starts, if there may be more.
    pub next_token: Option<String>,
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The `NextToken` is not one this server issued.
    #[error("invalid NextToken")]
    BadToken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn encode_token(start: f64, id: &str) -> String {
    format!("{start}/{id}")
}

fn decode_token(token: &str) -> Option<(f64, String)> {
    let (t, id) = token.split_once('/')?;
    Some((t.parse().ok()?, id.to_owned()))
}

/// Which time of a trace the window of a search applies to (X-Ray's `TimeRangeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeRangeType {
    /// The trace's start (the time in its id): the default.
    #[default]
    TraceId,
    /// When the trace was last updated (a piece of it stored).
    Event,
    /// When a segment of the trace ended (its last end).
    Service,
}

impl TimeRangeType {
    /// Parses the API's name of it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "TraceId" => Some(Self::TraceId),
            "Event" => Some(Self::Event),
            "Service" => Some(Self::Service),
            _ => None,
        }
    }

    /// The time of `summary` this type compares with the window.
    pub fn time_of(self, summary: &TraceSummary) -> f64 {
        match self {
            Self::TraceId => summary.start_time,
            Self::Event => summary
                .updated_at
                .or(summary.end_time)
                .unwrap_or(summary.start_time),
            Self::Service => summary.end_time.unwrap_or(summary.start_time),
        }
    }
}

/// A trace search: window, which time it applies to, filter, sampling and page.
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryQuery<'a> {
    /// Window start, epoch seconds.
    pub start: f64,
    /// Window end.
    pub end: f64,
    /// What time of a trace the window applies to.
    pub time_range: TimeRangeType,
    /// Filter expression.
    pub filter: Option<&'a Expr>,
    /// Keep only this fraction of the matches (chosen by trace id, so stable across pages).
    pub sample_rate: Option<f64>,
    /// `NextToken` of the previous page.
    pub next_token: Option<&'a str>,
}

/// Whether a trace id falls in the sampled fraction `rate` (FNV-1a of the id, so a trace is
/// in or out the same way on every page and every call).
pub fn sampled(trace_id: &str, rate: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64 <= rate
}

/// Trace summaries that started in `[start, end]` and match `filter`, newest first, one page
/// at a time (`next_token` from the previous page).
pub async fn trace_summaries(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: Option<&Expr>,
    next_token: Option<&str>,
) -> Result<SummaryPage, QueryError> {
    search(
        store,
        &SummaryQuery {
            start,
            end,
            filter,
            next_token,
            ..SummaryQuery::default()
        },
    )
    .await
}

/// Trace summaries matching `q`, newest start first, one page at a time. With a time range
/// other than the trace id's, the store is scanned back to the oldest trace (a trace updated
/// or ended in the window may have started any time before it), and each candidate's time is
/// checked exactly.
pub async fn search(store: &dyn Store, q: &SummaryQuery<'_>) -> Result<SummaryPage, QueryError> {
    let mut after = match q.next_token {
        Some(t) => Some(decode_token(t).ok_or(QueryError::BadToken)?),
        None => None,
    };
    let filter = q.filter;
    // Which start times can hold a match: a trace ends after it starts, but it may be stored
    // (updated) before its own start time when the sender's clock runs ahead.
    let (scan_start, scan_end) = match q.time_range {
        TimeRangeType::TraceId => (q.start, q.end),
        TimeRangeType::Service => (0.0, q.end),
        TimeRangeType::Event => (0.0, f64::MAX),
    };
    let wanted = |s: &TraceSummary| {
        (q.start..=q.end).contains(&q.time_range.time_of(s))
            && q.sample_rate.is_none_or(|r| sampled(&s.id, r))
            && filter.is_none_or(|f| filter::matches(f, s))
    };
    let pushdown = filter.map(Expr::pushdown).unwrap_or_default();
    let mut page = SummaryPage {
        summaries: Vec::new(),
        scanned: 0,
        next_token: None,
    };
    // A page's worth first (a pushed-down filter is often exact), then twice as many each
    // round while matches are sparse, up to `SCAN_BATCH`.
    let mut limit = PAGE_SIZE;
    loop {
        let batch = store
            .scan_traces(ScanQuery {
                start: scan_start,
                end: scan_end,
                pushdown: pushdown.clone(),
                after: after.clone(),
                limit,
                with_samples: false,
            })
            .await?;
        let exhausted = batch.len() < limit;
        limit = (limit * 2).min(SCAN_BATCH);
        let mut consumed_all = true;
        let total = batch.len();
        for (i, record) in batch.into_iter().enumerate() {
            page.scanned += 1;
            after = Some((record.summary.start_time, record.summary.id.clone()));
            if wanted(&record.summary) {
                page.summaries.push(record.summary);
                if page.summaries.len() >= PAGE_SIZE {
                    consumed_all = i + 1 == total;
                    break;
                }
            }
        }
        if exhausted && consumed_all {
            return Ok(page);
        }
        if page.summaries.len() >= PAGE_SIZE || page.scanned >= SCAN_BUDGET {
            page.next_token = after.map(|(t, id)| encode_token(t, &id));
            return Ok(page);
        }
    }
}

/// The stored documents of each trace, with streamed subsegments grafted into their segments:
/// `(trace id, duration, [(segment id, document)])`. Missing traces are left out.
pub async fn trace_segments(
    store: &dyn Store,
    ids: Vec<String>,
) -> Result<Vec<(String, Option<f64>, Vec<(String, String)>)>, StoreError> {
    let traces = store.trace_documents(ids).await?;
    Ok(traces
        .into_iter()
        .map(|t| (t.id, t.duration, assemble_documents(t.documents)))
        .collect())
}

/// The service graph of requests that started in `[start, end]`: from the per-minute rollups,
/// or, with a filter, from the samples of the matching traces.
pub async fn service_graph(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: Option<&Expr>,
) -> Result<Vec<Service>, StoreError> {
    let first = minute_of(start);
    let last = minute_of(end);
    let mut stats = GraphStats::default();
    match filter {
        None => {
            for row in store.rollups(first, last).await? {
                stats.add_rollup(&row);
            }
        }
        Some(f) => {
            matching_traces(store, start, end, f, |r| stats.add_trace(r, first, last)).await?;
        }
    }
    Ok(stats.to_services(start, end))
}

/// Visits what each trace that matches `filter` adds to the graph (at most
/// [`GRAPH_TRACE_LIMIT`] traces, started up to an hour before `start`).
async fn matching_traces(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: &Expr,
    mut visit: impl FnMut(&TraceRollup),
) -> Result<(), StoreError> {
    let pushdown = filter.pushdown();
    let mut after = None;
    let mut seen = 0;
    loop {
        let batch = store
            .scan_traces(ScanQuery {
                start: start - 3600.0,
                end,
                pushdown: pushdown.clone(),
                after: after.clone(),
                limit: SCAN_BATCH,
                with_samples: true,
            })
            .await?;
        let n = batch.len();
        for record in batch {
            seen += 1;
            after = Some((record.summary.start_time, record.summary.id.clone()));
            if filter::matches(filter, &record.summary) {
                visit(&record.rollup);
            }
        }
        if n < SCAN_BATCH || seen >= GRAPH_TRACE_LIMIT {
            return Ok(());
        }
    }
}

/// Per-minute node and edge statistics like [`Store::rollups`], of the traces that match
/// `filter` only (a group's time series).
pub async fn filtered_rollups(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: &Expr,
) -> Result<Vec<RollupRow>, StoreError> {
    let (first, last) = (minute_of(start), minute_of(end));
    let mut rows: BTreeMap<(i64, String, String), Stats> = BTreeMap::new();
    matching_traces(store, start, end, filter, |rollup| {
        for (k, n) in rollup
            .0
            .iter()
            .filter(|(k, _)| (first..=last).contains(&k.minute))
        {
            rows.entry((k.minute, k.src.clone(), k.dst.clone()))
                .or_default()
                .add_counted(k.outcome, k.bucket, *n, 1);
        }
    })
    .await?;
    Ok(RollupRow::from_keyed(rows))
}

/// The graph of the given traces only.
pub async fn trace_graph(store: &dyn Store, ids: Vec<String>) -> Result<Vec<Service>, StoreError> {
    let records = store.get_traces(ids).await?;
    let mut stats = GraphStats::default();
    let mut start = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for r in &records {
        start = start.min(r.summary.start_time);
        end = end.max(r.summary.end_time.unwrap_or(r.summary.start_time));
        stats.add_trace(&r.rollup, i64::MIN, i64::MAX);
    }
    if records.is_empty() {
        return Ok(Vec::new());
    }
    Ok(stats.to_services(start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::test_support::{capture_documents, prepared};

    /// Twenty shop traces (faults, a throttle, client errors, inferred DynamoDB and payments
    /// nodes, a real `orders` node replacing the inferred one) and the Python checkout capture.
    async fn scenario() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut docs = capture_documents("python-sdk-2.15-checkout.txt");
        for n in 0..20 {
            docs.extend(crate::synth::shop_trace(
                n,
                1_800_000_000.0 + n as f64 * 5.0,
            ));
        }
        // Reverse order: every downstream segment arrives before its caller.
        docs.reverse();
        store.put_documents(prepared(&docs)).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn service_graph_snapshot() {
        let (_dir, store) = scenario().await;
        let graph = service_graph(&store, 1_799_999_940.0, 1_800_000_180.0, None)
            .await
            .unwrap();
        insta::assert_json_snapshot!("shop_service_graph", graph);
        let capture = service_graph(&store, 1_795_905_000.0, 1_795_905_200.0, None)
            .await
            .unwrap();
        insta::assert_json_snapshot!("checkout_capture_service_graph", capture);
    }

    #[tokio::test]
    async fn filtered_graph_from_samples_equals_the_rollups_when_everything_matches() {
        let (_dir, store) = scenario().await;
        let everything = crate::filter::parse("ok OR !ok").unwrap();
        let a = service_graph(&store, 1_799_999_940.0, 1_800_000_180.0, None)
            .await
            .unwrap();
        let b = service_graph(&store, 1_799_999_940.0, 1_800_000_180.0, Some(&everything))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap()
        );
    }

    #[tokio::test]
    async fn trace_graph_of_one_trace() {
        let (_dir, store) = scenario().await;
        let graph = trace_graph(&store, vec!["1-6b0b563f-bd5f12f36c129ba2856caf10".into()])
            .await
            .unwrap();
        let names: Vec<&str> = graph.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "DynamoDB",
                "checkout-api",
                "client",
                "orders@db.example.com",
                "payments.example.com"
            ]
        );
    }
}
