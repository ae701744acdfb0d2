//! The analytics facets of ClickHouse's traces: each fold row carries its trace's facets text
//! (`facets`, empty for rows written before the column existed), and a [`FacetQuery`] is one
//! query that the engine answers whole — the candidate traces (window and predicates, on any
//! fold), then per trace its newest fold, kept when that fold still satisfies them.

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::number;
use crate::store::{FacetQuery, FacetRow, StoreError};

impl ClickhouseStore {
    /// The facets of part `q.part` of the traces `q` selects (a trace's part is the hash of
    /// its id modulo `q.parts`).
    pub(super) async fn facets(&self, q: &FacetQuery) -> Result<Vec<FacetRow>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            start_time: f64,
            facets: String,
        }
        let mut holds = format!(
            "start_time >= {} AND start_time <= {}",
            number(q.start),
            number(q.end)
        );
        for p in &q.pushdown {
            holds.push_str(" AND ");
            holds.push_str(&self.predicate_sql(p));
        }
        let parts = q.parts.max(1);
        let order = if q.newest {
            " ORDER BY newest_start DESC, trace_id DESC"
        } else {
            ""
        };
        // The newest fold of a trace is the one with the highest `(version, fold)`.
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT trace_id, newest_start AS start_time, newest_facets AS facets FROM (
                     SELECT trace_id,
                            argMax(start_time, (version, fold)) AS newest_start,
                            argMax(facets, (version, fold)) AS newest_facets,
                            argMax({holds}, (version, fold)) AS newest_holds
                     FROM traces
                     PREWHERE trace_id IN (
                         SELECT trace_id FROM traces
                         PREWHERE {holds} AND sipHash64(trace_id) % {parts} = {part})
                     GROUP BY trace_id)
                 WHERE newest_holds{order} LIMIT {limit}",
                part = q.part,
                limit = q.limit
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| FacetRow {
                trace_id: r.trace_id,
                start_time: r.start_time,
                facets: (!r.facets.is_empty()).then_some(r.facets),
            })
            .collect())
    }
}
