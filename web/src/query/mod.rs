//! Queries over a [`Store`] shared by the X-Ray API and the dashboard: trace summaries with a
//! filter and pagination, whole traces, and the service graph for a window (from per-minute
//! rollups, or from the matching traces' samples when a filter is given).

use crate::assembly::{TraceSummary, assemble_documents, minute_of};
use crate::filter::{self, Expr};
use crate::graph::{GraphStats, Service};
use crate::store::{ScanQuery, Store, StoreError};

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

/// Trace summaries that started in `[start, end]` and match `filter`, newest first, one page
/// at a time (`next_token` from the previous page).
pub async fn trace_summaries(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: Option<&Expr>,
    next_token: Option<&str>,
) -> Result<SummaryPage, QueryError> {
    let mut after = match next_token {
        Some(t) => Some(decode_token(t).ok_or(QueryError::BadToken)?),
        None => None,
    };
    let pushdown = filter.map(Expr::pushdown).unwrap_or_default();
    let mut page = SummaryPage {
        summaries: Vec::new(),
        scanned: 0,
        next_token: None,
    };
    loop {
        let batch = store
            .scan_traces(ScanQuery {
                start,
                end,
                pushdown: pushdown.clone(),
                after: after.clone(),
                limit: SCAN_BATCH,
                with_samples: false,
            })
            .await?;
        let exhausted = batch.len() < SCAN_BATCH;
        let mut consumed_all = true;
        let total = batch.len();
        for (i, record) in batch.into_iter().enumerate() {
            page.scanned += 1;
            after = Some((record.summary.start_time, record.summary.id.clone()));
            if filter.is_none_or(|f| filter::matches(f, &record.summary)) {
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
            let pushdown = f.pushdown();
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
                    if filter::matches(f, &record.summary) {
                        for s in record
                            .samples
                            .iter()
                            .filter(|s| (first..=last).contains(&s.minute))
                        {
                            stats.add_sample(s);
                        }
                    }
                }
                if n < SCAN_BATCH || seen >= GRAPH_TRACE_LIMIT {
                    break;
                }
            }
        }
    }
    Ok(stats.to_services(start, end))
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
        for s in &r.samples {
            stats.add_sample(s);
        }
    }
    if records.is_empty() {
        return Ok(Vec::new());
    }
    Ok(stats.to_services(start, end))
}
