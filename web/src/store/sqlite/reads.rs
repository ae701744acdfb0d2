//! Reads of the SQLite store: the trace scan with pushed-down predicates (and which index
//! drives it), and stored rollup statistics decoded.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};

use super::super::{Pushdown, ScanQuery, StoreError, TraceRecord};
use crate::assembly::TraceSummary;
use crate::graph::{Histogram, Stats};

pub(super) fn row_stats(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Stats, StoreError>> {
    let hist: String = r.get(5)?;
    Ok(serde_json::from_str::<Histogram>(&hist)
        .map_err(StoreError::from)
        .map(|histogram| Stats {
            ok: r.get(0).unwrap_or(0),
            error_other: r.get(1).unwrap_or(0),
            throttle: r.get(2).unwrap_or(0),
            fault: r.get(3).unwrap_or(0),
            total_response_time: r.get(4).unwrap_or(0.0),
            histogram,
        }))
}

/// Most rows an annotation value may index for the scan to start from that index rather than
/// from the time index (a selective predicate drives; a common one is checked per row).
const DRIVING_ANNOTATION_ROWS: i64 = 5_000;

fn annotation_rows(conn: &Connection, key: &str, value: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM trace_annotations WHERE key = ?1 AND value_text = ?2 LIMIT ?3)",
        )?
        .query_row(params![key, value, DRIVING_ANNOTATION_ROWS], |r| r.get(0))?)
}

pub(super) fn scan(conn: &Connection, q: &ScanQuery) -> Result<Vec<TraceRecord>, StoreError> {
    let mut args: Vec<SqlValue> = Vec::new();
    let mut sql = String::from("SELECT t.summary");
    sql.push_str(if q.with_samples {
        ", t.samples"
    } else {
        ", NULL"
    });
    // A selective annotation drives the scan: CROSS JOIN keeps SQLite from starting elsewhere.
    let mut driver = None;
    for (i, p) in q.pushdown.iter().enumerate() {
        if let Pushdown::AnnotationEquals(k, v) = p
            && annotation_rows(conn, k, v)? < DRIVING_ANNOTATION_ROWS
        {
            driver = Some(i);
            break;
        }
    }
    match driver.map(|i| &q.pushdown[i]) {
        Some(Pushdown::AnnotationEquals(k, v)) => {
            sql.push_str(
                " FROM trace_annotations d CROSS JOIN traces t ON t.rowid = d.trace_rowid
                  WHERE d.key = ? AND d.value_text = ? AND",
            );
            args.push(k.clone().into());
            args.push(v.clone().into());
        }
        _ => sql.push_str(" FROM traces t WHERE"),
    }
    sql.push_str(" t.start_time >= ? AND t.start_time <= ?");
    args.push(q.start.into());
    args.push(q.end.into());
    if let Some((t, id)) = &q.after {
        sql.push_str(" AND (t.start_time < ? OR (t.start_time = ? AND t.trace_id < ?))");
        args.push((*t).into());
        args.push((*t).into());
        args.push(id.clone().into());
    }
    for (_, p) in q
        .pushdown
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != driver)
    {
        // No index by trace answers these (the annotation index is keyed by value): the
        // caller evaluates them on the summaries, which it does for every predicate anyway.
        if !matches!(
            p,
            Pushdown::AnnotationNumber(..) | Pushdown::AnnotationExists(..)
        ) {
            push_predicate(p, &mut sql, &mut args);
        }
    }
    sql.push_str(" ORDER BY t.start_time DESC, t.trace_id DESC LIMIT ?");
    args.push((q.limit as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (summary, samples) = row?;
        out.push(TraceRecord {
            summary: serde_json::from_str::<TraceSummary>(&summary)?,
            rollup: match samples {
                Some(s) => serde_json::from_str(&s)?,
                None => Default::default(),
            },
        });
    }
    Ok(out)
}

/// Appends ` AND` and the SQL of predicate `p` over the row `t` (`traces` or `trace_facets`,
/// which share these columns and the `rid`). `AnnotationNumber` and `AnnotationExists` have
/// no index by trace here and must not be asked for.
pub(super) fn push_predicate(p: &Pushdown, sql: &mut String, args: &mut Vec<SqlValue>) {
    match p {
        Pushdown::HasFault(b) => {
            sql.push_str(" AND t.has_fault = ?");
            args.push((*b as i64).into());
        }
        Pushdown::HasError(b) => {
            sql.push_str(" AND t.has_error = ?");
            args.push((*b as i64).into());
        }
        Pushdown::HasThrottle(b) => {
            sql.push_str(" AND t.has_throttle = ?");
            args.push((*b as i64).into());
        }
        Pushdown::HttpStatus(s) => {
            sql.push_str(" AND t.http_status = ?");
            args.push(i64::from(*s).into());
        }
        Pushdown::ResponseTime(op, v) => {
            sql.push_str(&format!(
                " AND t.response_time {} ?",
                super::super::op_sql(op)
            ));
            args.push((*v).into());
        }
        Pushdown::Duration(op, v) => {
            sql.push_str(&format!(" AND t.duration {} ?", super::super::op_sql(op)));
            args.push((*v).into());
        }
        Pushdown::AnnotationEquals(k, v) => {
            sql.push_str(" AND EXISTS (SELECT 1 FROM trace_annotations a WHERE a.key = ? AND a.value_text = ? AND a.trace_rowid = t.rowid)");
            args.push(k.clone().into());
            args.push(v.clone().into());
        }
        Pushdown::Service(name) => {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM trace_services s WHERE s.name = ? AND s.trace_rowid = t.rowid)",
            );
            args.push(name.clone().into());
        }
        Pushdown::TraceId(id) => {
            sql.push_str(" AND t.trace_id = ?");
            args.push(id.clone().into());
        }
        Pushdown::AnnotationNumber(..) | Pushdown::AnnotationExists(..) => {}
    }
}
