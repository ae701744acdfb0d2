//! The SQLite store's analytics facets: one narrow `trace_facets` row per trace (its facets
//! text and the columns the scan filters on, under the trace's `rid`), written with its
//! summary, filled in for every stored trace when a store of the previous format is opened,
//! and scanned by part for [`FacetQuery`].

use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::super::{FacetQuery, FacetRow, Pushdown, StoreError};
use super::reads::push_predicate;
use crate::analytics::Facets;
use crate::assembly::TraceSummary;

/// Writes (or replaces) a trace's facets row.
pub(super) const PUT: &str = "INSERT OR REPLACE INTO trace_facets (rid, trace_id, start_time,
    duration, response_time, has_fault, has_error, has_throttle, http_status, facets)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Rewrites a stored trace's facets row in place (its `rid` is `?1`, the rest as in [`PUT`]).
pub(super) const UPDATE: &str = "UPDATE trace_facets SET trace_id = ?2, start_time = ?3,
    duration = ?4, response_time = ?5, has_fault = ?6, has_error = ?7, has_throttle = ?8,
    http_status = ?9, facets = ?10 WHERE rid = ?1";

/// Writes the facets row of the trace `rid` with [`PUT`] or [`UPDATE`]: summary `s`, facets
/// text `facets`.
pub(super) fn put(
    stmt: &mut CachedStatement<'_>,
    rid: i64,
    s: &TraceSummary,
    facets: &str,
) -> Result<(), StoreError> {
    stmt.execute(params![
        rid,
        s.id,
        s.start_time,
        s.duration,
        s.response_time,
        s.has_fault,
        s.has_error,
        s.has_throttle,
        s.http.as_ref().and_then(|h| h.status),
        facets,
    ])?;
    Ok(())
}

/// Computes and writes the facets of every stored trace (a store of the format before
/// `trace_facets`), in transactions of a few thousand traces.
pub(super) fn backfill(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    const CHUNK: i64 = 5_000;
    let total: i64 = conn.query_row("SELECT count(*) FROM traces", [], |r| r.get(0))?;
    tracing::info!(
        traces = total,
        store = %path.display(),
        "upgrading the store: computing the analytics facets of every stored trace"
    );
    let started = std::time::Instant::now();
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String)> = conn
            .prepare_cached("SELECT rid, summary FROM traces WHERE rid > ?1 ORDER BY rid LIMIT ?2")?
            .query_map(params![after, CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = *last;
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(PUT)?;
            for (rid, summary) in &rows {
                let s: TraceSummary = serde_json::from_str(summary)?;
                put(&mut stmt, *rid, &s, &Facets::encode(&s))?;
            }
        }
        tx.commit()?;
    }
    tracing::info!(
        traces = total,
        seconds = started.elapsed().as_secs_f64(),
        "store upgraded"
    );
    Ok(())
}

/// The facets of part `q.part` of the traces `q` selects. A selective index drives: the
/// first annotation or service predicate (its index rows, then each trace's facets row by
/// `rid`); else the time index. Parts are ranges of `rid` (see [`part_bounds`]), so each
/// part reads its own pages.
pub(super) fn scan(conn: &Connection, q: &FacetQuery) -> Result<Vec<FacetRow>, StoreError> {
    if let Some(p) = q.pushdown.iter().find(|p| {
        matches!(
            p,
            Pushdown::AnnotationNumber(..) | Pushdown::AnnotationExists(..)
        )
    }) {
        return Err(StoreError::Unsupported(format!(
            "{p:?} is not answered by an index of this store"
        )));
    }
    let (low, high) = part_bounds(conn, q)?;
    let mut args: Vec<SqlValue> = Vec::new();
    let mut sql = String::from("SELECT t.trace_id, t.start_time, t.facets FROM ");
    // The time index gives the time-driven scan its order.
    let mut order = "t";
    let driver = q
        .pushdown
        .iter()
        .position(|p| matches!(p, Pushdown::AnnotationEquals(..) | Pushdown::Service(_)));
    match driver.map(|i| &q.pushdown[i]) {
        Some(Pushdown::AnnotationEquals(k, v)) => {
            sql.push_str(
                "trace_annotations d CROSS JOIN trace_facets t ON t.rid = d.trace_rowid
                 WHERE d.key = ? AND d.value_text = ? AND d.trace_rowid >= ? AND d.trace_rowid < ?
                 AND t.start_time >= ? AND t.start_time <= ?",
            );
            args.extend([k.clone().into(), v.clone().into()]);
        }
        Some(Pushdown::Service(name)) => {
            sql.push_str(
                "trace_services d CROSS JOIN trace_facets t ON t.rid = d.trace_rowid
                 WHERE d.name = ? AND d.trace_rowid >= ? AND d.trace_rowid < ?
                 AND t.start_time >= ? AND t.start_time <= ?",
            );
            args.push(name.clone().into());
        }
        _ => {
            sql.push_str(
                "traces w INDEXED BY traces_by_start CROSS JOIN trace_facets t ON t.rid = w.rid
                 WHERE w.rid >= ? AND w.rid < ? AND w.start_time >= ? AND w.start_time <= ?",
            );
            order = "w";
        }
    }
    args.extend([low.into(), high.into(), q.start.into(), q.end.into()]);
    for (_, p) in q
        .pushdown
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != driver)
    {
        push_predicate(p, &mut sql, &mut args);
    }
    if q.newest {
        sql.push_str(&format!(
            " ORDER BY {order}.start_time DESC, {order}.trace_id DESC"
        ));
    }
    sql.push_str(" LIMIT ?");
    args.push((q.limit as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(FacetRow {
            trace_id: r.get(0)?,
            start_time: r.get(1)?,
            facets: Some(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The `rid` range `[low, high)` of part `q.part`: the window's `rid`s (which grow with
/// arrival, so roughly with time) cut into `q.parts` equal ranges, the first and last open
/// ended. Every trace is in exactly one part whatever the estimate; only the balance depends
/// on it.
fn part_bounds(conn: &Connection, q: &FacetQuery) -> Result<(i64, i64), StoreError> {
    let parts = i64::from(q.parts.max(1));
    let part = i64::from(q.part).min(parts - 1);
    if parts == 1 {
        return Ok((i64::MIN, i64::MAX));
    }
    let edge = |sql: &str, at: f64| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row([at], |r| r.get(0))
            .optional()?)
    };
    let first = edge(
        "SELECT rid FROM traces WHERE start_time >= ?1 ORDER BY start_time, trace_id LIMIT 1",
        q.start,
    )?;
    let last = edge(
        "SELECT rid FROM traces WHERE start_time <= ?1 ORDER BY start_time DESC, trace_id DESC LIMIT 1",
        q.end,
    )?;
    let (lo, hi) = match (first, last) {
        (Some(a), Some(b)) => (a.min(b), a.max(b).saturating_add(1)),
        _ => (0, 1),
    };
    let cut = |k: i64| lo + ((hi - lo) as i128 * k as i128 / parts as i128) as i64;
    let low = if part == 0 { i64::MIN } else { cut(part) };
    let high = if part == parts - 1 {
        i64::MAX
    } else {
        cut(part + 1)
    };
    Ok((low, high))
}
