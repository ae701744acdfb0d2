//! The analytics facets of ClickHouse's traces: each fold row carries its trace's facets text
//! (`facets`, empty for rows written before the column existed). A [`FacetQuery`] is two
//! queries sent at once: the fold rows that satisfy it (window and predicates), and, for
//! every trace with a fold in the window and more than one fold, its newest; a row is kept
//! when it is its trace's newest fold. Every row of the first is a fold in the window, so
//! the second knows the newest fold of each of their traces, wherever that one starts.

use std::collections::HashMap;

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::number;
use super::rowbinary::{Malformed, RowReader};
use crate::store::{FacetQuery, FacetRow, StoreError};

impl ClickhouseStore {
    /// The facets of part `q.part` of the traces `q` selects (a trace's part is the hash of
    /// its id modulo `q.parts`).
    pub(super) async fn facets(&self, q: &FacetQuery) -> Result<Vec<FacetRow>, StoreError> {
        struct Row {
            trace_id: String,
            version: u64,
            fold: u64,
            start_time: f64,
            facets: String,
        }
        let rows_of = |bytes: Vec<u8>| -> Result<Vec<Row>, StoreError> {
            let mut r = RowReader::new(&bytes);
            let mut out = Vec::new();
            while !r.is_empty() {
                out.push(Row {
                    trace_id: r.string()?.to_owned(),
                    version: r.u64()?,
                    fold: r.u64()?,
                    start_time: r.f64()?,
                    facets: r.string()?.to_owned(),
                });
            }
            Ok(out)
        };
        #[derive(Deserialize)]
        struct Newest {
            trace_id: String,
            version: u64,
            fold: u64,
        }
        let mut window = format!(
            "start_time >= {} AND start_time <= {}",
            number(q.start),
            number(q.end)
        );
        if q.parts > 1 {
            window.push_str(&format!(
                " AND sipHash64(trace_id) % {} = {}",
                q.parts, q.part
            ));
        }
        let mut holds = window.clone();
        for p in &q.pushdown {
            holds.push_str(" AND ");
            holds.push_str(&self.predicate_sql(p));
        }
        let order = if q.newest {
            " ORDER BY start_time DESC, trace_id DESC"
        } else {
            ""
        };
        let newest_sql = format!(
            "SELECT trace_id, tupleElement(newest, 1) AS version, tupleElement(newest, 2) AS fold
             FROM (SELECT trace_id, max((version, fold)) AS newest FROM traces
                   PREWHERE trace_id IN (SELECT trace_id FROM traces PREWHERE {window})
                   GROUP BY trace_id HAVING count() > 1)"
        );
        // Stale folds take rows of the answer: ask for a few more, and more again in the rare
        // case that was not enough.
        let mut limit = q.limit.saturating_add(q.limit / 4).saturating_add(16);
        let rows_sql = |limit: usize| {
            format!(
                "SELECT trace_id, version, fold, start_time, facets FROM traces
                 PREWHERE {holds}{order} LIMIT {limit}"
            )
        };
        let first_sql = rows_sql(limit);
        let (first, newest) = tokio::try_join!(
            self.conn.select_binary(&first_sql),
            self.conn.select::<Newest>(&newest_sql)
        )?;
        let newest: HashMap<String, (u64, u64)> = newest
            .into_iter()
            .map(|n| (n.trace_id, (n.version, n.fold)))
            .collect();
        let mut rows = rows_of(first)?;
        loop {
            let complete = rows.len() < limit;
            let kept: Vec<FacetRow> = rows
                .into_iter()
                .filter(|r| {
                    newest
                        .get(&r.trace_id)
                        .is_none_or(|n| *n == (r.version, r.fold))
                })
                .take(q.limit)
                .map(|r| FacetRow {
                    trace_id: r.trace_id,
                    start_time: r.start_time,
                    facets: (!r.facets.is_empty()).then_some(r.facets),
                })
                .collect();
            if complete || kept.len() >= q.limit {
                return Ok(kept);
            }
            limit = limit.saturating_mul(4);
            rows = rows_of(self.conn.select_binary(&rows_sql(limit)).await?)?;
        }
    }
}

impl From<Malformed> for StoreError {
    fn from(e: Malformed) -> Self {
        StoreError::Write(format!("ClickHouse: {e}"))
    }
}
