//! Retention in the SQLite store: old traces with their documents, facets and index rows, old
//! rollups, telemetry, alarm history and insights, deleted in bounded steps.

use rusqlite::{Transaction, params};

use super::super::StoreError;
use crate::assembly::minute_of;

use super::fold_rows::IndexRows;

pub(super) fn delete_before(
    tx: &Transaction<'_>,
    cutoff: f64,
    max: usize,
) -> Result<usize, StoreError> {
    let old: Vec<(i64, String, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT rowid, trace_id, summary FROM traces WHERE start_time < ?1 LIMIT ?2",
        )?;
        stmt.query_map(params![cutoff, max as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut index = IndexRows::new(tx)?;
    for (rowid, id, summary) in &old {
        index.delete(*rowid, &serde_json::from_str(summary)?)?;
        tx.execute("DELETE FROM segments WHERE trace_id = ?1", [id])?;
        tx.execute("DELETE FROM traces WHERE rowid = ?1", [rowid])?;
        tx.execute("DELETE FROM trace_facets WHERE rid = ?1", [rowid])?;
    }
    tx.execute("DELETE FROM rollups WHERE minute < ?1", [minute_of(cutoff)])?;
    tx.execute("DELETE FROM telemetry WHERE received_at < ?1", [cutoff])?;
    // Once a sweep, on its last step: the alarm history has no time index to make it cheap.
    if old.len() < max {
        super::alarms::delete_before(tx, cutoff)?;
    }
    Ok(old.len())
}
