//! Reading a set of traces from a store into a [`Tally`]. When the set's filter is exactly
//! what the store's indexes answer ([`Expr::exact_pushdown`]: annotations, services, outcomes,
//! status, times, ids — what most analyses ask), the store returns each trace's stored
//! [`Facets`] and nothing is evaluated here; any other filter is evaluated on the summaries of
//! the candidates the store finds.

use super::{Facets, MAX_EXAMINED, MAX_TRACES, Tally};
use crate::filter::Expr;
use crate::store::{FacetQuery, FacetRow, ScanQuery, Store, StoreError};

/// Traces whose summaries are read at once when their facets are missing.
const SUMMARIES_PER_READ: usize = 1_000;

/// Folds the traces that started in `[start, end]` and match `filter` (newest first), at most
/// [`MAX_TRACES`] of them and [`MAX_EXAMINED`] candidates.
pub async fn collect(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: Option<&Expr>,
) -> Result<Tally, StoreError> {
    match filter.map_or(Some(Vec::new()), Expr::exact_pushdown) {
        Some(pushdown) => collect_facets(store, start, end, pushdown, MAX_TRACES).await,
        None => collect_newest(store, start, end, filter, MAX_TRACES).await,
    }
}

/// [`collect`] for a filter the store answers exactly (`pushdown`), with at most `limit`
/// traces: the store's parts ([`Store::facet_parts`]) read one after another, each folded in
/// two halves on blocking threads while the next is read (the store's read and the fold
/// overlap, and reads do not compete for the store's caches); when together they hold more
/// than `limit`, each part's newest `limit` again, and the newest `limit` of those.
pub(crate) async fn collect_facets(
    store: &dyn Store,
    start: f64,
    end: f64,
    pushdown: Vec<crate::store::Pushdown>,
    limit: usize,
) -> Result<Tally, StoreError> {
    let parts = store.facet_parts().max(1);
    let query = |part, limit, newest| FacetQuery {
        start,
        end,
        pushdown: pushdown.clone(),
        limit,
        newest,
        part,
        parts,
    };
    let fold =
        |rows: Vec<FacetRow>| tokio::task::spawn_blocking(move || fold_facets(start, end, &rows));
    let fold_halves = |mut rows: Vec<FacetRow>| {
        let older = rows.split_off(rows.len() / 2);
        [fold(rows), fold(older)]
    };
    let mut folds = Vec::new();
    let mut read = 0;
    for part in 0..parts {
        let rows = store
            .scan_facets(query(part, limit.saturating_add(1), false))
            .await?;
        read += rows.len();
        if read > limit {
            break;
        }
        folds.extend(fold_halves(rows));
    }
    let truncated = read > limit;
    if truncated {
        // Past the limit: the newest `limit` of the set, folded in two halves.
        folds.clear();
        let mut all = Vec::new();
        for part in 0..parts {
            all.extend(store.scan_facets(query(part, limit, true)).await?);
        }
        all.sort_unstable_by(|x, y| {
            y.start_time
                .total_cmp(&x.start_time)
                .then_with(|| y.trace_id.cmp(&x.trace_id))
        });
        all.truncate(limit);
        folds = fold_halves(all).into();
    }
    let mut tally = Tally::new(start, end);
    let mut missing = Vec::new();
    for f in folds {
        // A fold that panicked panics here (nothing cancels a blocking task).
        let (part, ids) = f
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        tally.merge(part);
        missing.extend(ids);
    }
    // Traces stored before their store kept facets: folded from their summaries.
    for ids in missing.chunks(SUMMARIES_PER_READ) {
        for record in store.get_traces(ids.to_vec()).await? {
            tally.add(&record.summary);
        }
    }
    if truncated {
        tally.mark_truncated();
    }
    Ok(tally)
}

/// Folds rows' facets into a tally of the window; returns it with the ids of the rows that
/// have none, or none this release can read (their summaries decide).
fn fold_facets(start: f64, end: f64, rows: &[FacetRow]) -> (Tally, Vec<String>) {
    let mut tally = Tally::new(start, end);
    let mut missing = Vec::new();
    let mut unreadable = 0;
    for row in rows {
        match row.facets.as_deref().map(Facets::decode) {
            Some(Ok(facets)) => tally.add_facets(&facets),
            Some(Err(_)) => {
                unreadable += 1;
                missing.push(row.trace_id.clone());
            }
            None => missing.push(row.trace_id.clone()),
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            traces = unreadable,
            "stored analytics facets could not be read; those traces were analysed from their summaries"
        );
    }
    (tally, missing)
}

/// [`collect`] with at most `limit` traces. The two halves of the window are read at once (a
/// store decodes each on a thread of its own); when together they hold more than `limit`,
/// the older half is read again for just the newest that fit.
pub(crate) async fn collect_newest(
    store: &dyn Store,
    start: f64,
    end: f64,
    filter: Option<&Expr>,
    limit: usize,
) -> Result<Tally, StoreError> {
    let mid = start + (end - start) / 2.0;
    let newer = Slice {
        start: mid,
        end,
        before: None,
    };
    // Strictly before `mid`: the cursor `(mid, "")` excludes every trace at `mid` itself.
    let older = Slice {
        start,
        end: mid,
        before: Some((mid, String::new())),
    };
    let window = (start, end);
    let (a, b) = tokio::join!(
        fold_slice(store, window, &newer, filter, limit),
        fold_slice(store, window, &older, filter, limit)
    );
    let (mut tally, rest) = (a?, b?);
    if tally.truncated {
        return Ok(tally);
    }
    if tally.traces + rest.traces <= limit as u64 {
        tally.merge(rest);
        return Ok(tally);
    }
    let room = limit - tally.traces as usize;
    let rest = fold_slice(store, window, &older, filter, room).await?;
    tally.merge(rest);
    tally.mark_truncated();
    Ok(tally)
}

/// Part of a window: `[start, end]`, strictly before `before` when set.
struct Slice {
    start: f64,
    end: f64,
    before: Option<(f64, String)>,
}

/// Folds the newest `limit` matches of a slice into a tally of the whole `window`.
async fn fold_slice(
    store: &dyn Store,
    window: (f64, f64),
    slice: &Slice,
    filter: Option<&Expr>,
    limit: usize,
) -> Result<Tally, StoreError> {
    // Large rounds: each is a query (ClickHouse: three), and their cost per round dominates.
    const BATCH: usize = 10_000;
    let mut tally = Tally::new(window.0, window.1);
    let pushdown = filter.map(Expr::pushdown).unwrap_or_default();
    let mut after = slice.before.clone();
    let mut examined = 0;
    loop {
        let batch = store
            .scan_traces(ScanQuery {
                start: slice.start,
                end: slice.end,
                pushdown: pushdown.clone(),
                after: after.clone(),
                limit: BATCH,
                with_samples: false,
            })
            .await?;
        let exhausted = batch.len() < BATCH;
        for record in batch {
            examined += 1;
            let s = &record.summary;
            if filter.is_none_or(|f| crate::filter::matches(f, s)) {
                if tally.traces() as usize >= limit {
                    tally.mark_truncated();
                    return Ok(tally);
                }
                tally.add(s);
            }
            after = Some((s.start_time, s.id.clone()));
        }
        if exhausted {
            return Ok(tally);
        }
        // Each of the two halves has half the budget.
        if examined >= MAX_EXAMINED / 2 {
            tally.mark_truncated();
            return Ok(tally);
        }
    }
}
