//! Writing folds for the SQLite writer: a trace's summary row (updated in place once stored),
//! its facets, the index rows whose keys changed, and the rollup differences of a transaction,
//! applied once per key.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Transaction, params};

use super::super::StoreError;
use super::super::live::LiveTrace;
use super::fold::Folded;
use super::reads::row_stats;
use crate::assembly::{TraceRollup, TraceSummary};
use crate::graph::Stats;

/// What the writer keeps of a trace's last write: its summary's `rid`, the index keys and the
/// rollup it wrote (the next write rewrites only the index keys that changed and applies the
/// difference of the rollups).
pub(super) struct LastWrite {
    rid: i64,
    keys: IndexKeys,
    rollup: TraceRollup,
}

impl LastWrite {
    /// The last write of a stored trace, from its summary row.
    pub(super) fn new(rid: i64, summary: &TraceSummary, rollup: TraceRollup) -> Self {
        Self {
            rid,
            keys: IndexKeys::of(summary),
            rollup,
        }
    }
}

#[derive(Default)]
struct RollupDelta(HashMap<(i64, String, String), Stats>);

impl RollupDelta {
    fn add(&mut self, rollup: &TraceRollup, sign: i64) {
        for (k, n) in &rollup.0 {
            self.0
                .entry((k.minute, k.src.clone(), k.dst.clone()))
                .or_default()
                .add_counted(k.outcome, k.bucket, *n, sign);
        }
    }
}

/// Deletes a trace's annotation and service index rows by their exact keys, read from the
/// summary that produced them.
pub(super) struct IndexRows<'t> {
    annotation: rusqlite::CachedStatement<'t>,
    service: rusqlite::CachedStatement<'t>,
}

impl<'t> IndexRows<'t> {
    pub(super) fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            annotation: tx.prepare_cached(
                "DELETE FROM trace_annotations WHERE key = ?1 AND value_text = ?2 AND trace_rowid = ?3",
            )?,
            service: tx
                .prepare_cached("DELETE FROM trace_services WHERE name = ?1 AND trace_rowid = ?2")?,
        })
    }

    pub(super) fn delete(&mut self, rowid: i64, summary: &TraceSummary) -> Result<(), StoreError> {
        self.delete_keys(rowid, &IndexKeys::of(summary))
    }

    fn delete_keys(&mut self, rowid: i64, keys: &IndexKeys) -> Result<(), StoreError> {
        for (key, text) in keys.annotations.keys() {
            self.annotation.execute(params![key, text, rowid])?;
        }
        for name in &keys.services {
            self.service.execute(params![name, rowid])?;
        }
        Ok(())
    }
}

/// The index rows of one summary: annotations by `(key, value text)` with their number, and
/// service names.
#[derive(Default)]
struct IndexKeys {
    annotations: BTreeMap<(String, String), Option<f64>>,
    services: std::collections::BTreeSet<String>,
}

impl IndexKeys {
    fn of(summary: &TraceSummary) -> Self {
        let annotations = summary
            .annotations
            .iter()
            .map(|a| {
                let number = match a.value {
                    crate::assembly::AnnotationValue::Number(n) => Some(n),
                    _ => None,
                };
                ((a.key.clone(), a.value.index_text()), number)
            })
            .collect();
        let services = summary
            .services
            .iter()
            .map(|s| s.key.name.clone())
            .collect();
        Self {
            annotations,
            services,
        }
    }

    /// The keys of `self` that `other` lacks.
    fn minus(&self, other: &IndexKeys) -> IndexKeys {
        IndexKeys {
            annotations: self
                .annotations
                .iter()
                .filter(|(k, _)| !other.annotations.contains_key(*k))
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            services: self.services.difference(&other.services).cloned().collect(),
        }
    }
}

/// Writes folds in one transaction: each trace's summary row (updated in place when stored,
/// rewriting only the index keys that changed), its facets and index rows, and the rollup
/// differences, applied once per key at [`FoldSink::finish`].
pub(super) struct FoldSink<'t> {
    tx: &'t Transaction<'t>,
    delta: RollupDelta,
    put_trace: rusqlite::CachedStatement<'t>,
    update_trace: rusqlite::CachedStatement<'t>,
    put_facets: rusqlite::CachedStatement<'t>,
    update_facets: rusqlite::CachedStatement<'t>,
    index: IndexRows<'t>,
    annotation_rows: Vec<SqlValue>,
    service_rows: Vec<SqlValue>,
}

impl<'t> FoldSink<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>) -> Result<Self, StoreError> {
        Ok(Self {
            tx,
            delta: RollupDelta::default(),
            put_trace: tx.prepare_cached(
                "INSERT OR REPLACE INTO traces (trace_id, start_time, end_time, duration, response_time,
                    has_fault, has_error, has_throttle, is_partial, http_status, summary, samples)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            update_trace: tx.prepare_cached(
                "UPDATE traces SET start_time = ?1, end_time = ?2, duration = ?3, response_time = ?4,
                    has_fault = ?5, has_error = ?6, has_throttle = ?7, is_partial = ?8, http_status = ?9,
                    summary = ?10, samples = ?11
                 WHERE rid = ?12",
            )?,
            put_facets: tx.prepare_cached(super::facets::PUT)?,
            update_facets: tx.prepare_cached(super::facets::UPDATE)?,
            index: IndexRows::new(tx)?,
            annotation_rows: Vec::new(),
            service_rows: Vec::new(),
        })
    }

    /// Writes `trace`'s new fold and records it as the trace's last write.
    pub(super) fn write(
        &mut self,
        trace_id: &str,
        trace: &mut LiveTrace<LastWrite>,
        folded: Folded,
    ) -> Result<(), StoreError> {
        self.delta.add(&folded.fold.rollup, 1);
        let s = &folded.fold.summary;
        let columns = params![
            s.start_time,
            s.end_time,
            s.duration,
            s.response_time,
            s.has_fault,
            s.has_error,
            s.has_throttle,
            s.is_partial,
            s.http.as_ref().and_then(|h| h.status),
            folded.summary,
            folded.rollup,
        ];
        let keys = IndexKeys::of(s);
        let (rowid, added) = match &trace.written {
            // A trace already stored: its row is updated in place, and only the index rows
            // whose keys changed are deleted or added.
            Some(old) => {
                self.delta.add(&old.rollup, -1);
                let rowid = old.rid;
                let mut values: Vec<&dyn rusqlite::ToSql> = columns.to_vec();
                values.push(&rowid);
                self.update_trace.execute(values.as_slice())?;
                self.index.delete_keys(rowid, &old.keys.minus(&keys))?;
                (rowid, keys.minus(&old.keys))
            }
            None => {
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&trace_id];
                values.extend_from_slice(columns);
                self.put_trace.execute(values.as_slice())?;
                (
                    self.tx.last_insert_rowid(),
                    keys.minus(&IndexKeys::default()),
                )
            }
        };
        let facets_row = match trace.written {
            Some(_) => &mut self.update_facets,
            None => &mut self.put_facets,
        };
        super::facets::put(facets_row, rowid, s, &folded.facets)?;
        for ((key, text), number) in added.annotations {
            self.annotation_rows
                .extend([key.into(), text.into(), number.into(), rowid.into()]);
        }
        for name in added.services {
            self.service_rows.extend([name.into(), rowid.into()]);
        }
        trace.start_time = Some(s.start_time);
        trace.written = Some(LastWrite {
            rid: rowid,
            keys,
            rollup: folded.fold.rollup,
        });
        Ok(())
    }

    /// Adds the index rows and applies the rollup differences of every fold written.
    pub(super) fn finish(self) -> Result<(), StoreError> {
        insert_rows(
            self.tx,
            "INSERT OR IGNORE INTO trace_annotations (key, value_text, value_number, trace_rowid)",
            4,
            self.annotation_rows,
        )?;
        insert_rows(
            self.tx,
            "INSERT OR IGNORE INTO trace_services (name, trace_rowid)",
            2,
            self.service_rows,
        )?;
        apply_rollups(self.tx, self.delta)
    }
}

/// Inserts rows of `columns` values each with multi-row statements (fewer statement
/// executions than one `INSERT` per row).
fn insert_rows(
    tx: &Transaction<'_>,
    insert: &str,
    columns: usize,
    values: Vec<SqlValue>,
) -> Result<(), StoreError> {
    const ROWS_PER_STATEMENT: usize = 128;
    let one = format!("({})", vec!["?"; columns].join(", "));
    for chunk in values.chunks(columns * ROWS_PER_STATEMENT) {
        let rows = chunk.len() / columns;
        let sql = format!("{insert} VALUES {}", vec![one.as_str(); rows].join(", "));
        let params = rusqlite::params_from_iter(chunk.iter());
        // Only the full-size statement is worth caching; remainders vary from batch to batch.
        if rows == ROWS_PER_STATEMENT {
            tx.prepare_cached(&sql)?.execute(params)?;
        } else {
            tx.prepare(&sql)?.execute(params)?;
        }
    }
    Ok(())
}

fn apply_rollups(tx: &Transaction<'_>, delta: RollupDelta) -> Result<(), StoreError> {
    let mut get = tx.prepare_cached(
        "SELECT ok, error_other, throttle, fault, total_response_time, histogram FROM rollups
         WHERE minute = ?1 AND src = ?2 AND dst = ?3",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (minute, src, dst, ok, error_other, throttle, fault, total_response_time, histogram)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut del =
        tx.prepare_cached("DELETE FROM rollups WHERE minute = ?1 AND src = ?2 AND dst = ?3")?;
    for ((minute, src, dst), d) in delta.0 {
        if d.ok == 0
            && d.error_other == 0
            && d.throttle == 0
            && d.fault == 0
            && d.histogram.0.is_empty()
        {
            continue;
        }
        let mut stats = get
            .query_row(params![minute, src, dst], row_stats)
            .optional()?
            .transpose()?
            .unwrap_or_default();
        stats.merge(&d);
        if stats.total() == 0 && stats.histogram.0.is_empty() {
            del.execute(params![minute, src, dst])?;
            continue;
        }
        put.execute(params![
            minute,
            src,
            dst,
            stats.ok,
            stats.error_other,
            stats.throttle,
            stats.fault,
            stats.total_response_time,
            serde_json::to_string(&stats.histogram)?
        ])?;
    }
    Ok(())
}
