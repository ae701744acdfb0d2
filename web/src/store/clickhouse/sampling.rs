//! The shared sampling reports: every collector records its clients' reports in
//! `sampling_clients` and reads back the active clients of the same rules, so reservoirs are
//! split among every collector's clients.

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::{id_list, number, quote};
use super::rowbinary::RowBinary;
use super::writer::{day_text, trace_day};
use crate::store::{SamplingClient, StoreError};

impl ClickhouseStore {
    pub(super) async fn record_sampling(
        &self,
        now: f64,
        docs: &[crate::sampling::StatisticsDocument],
    ) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        for d in docs {
            w.u16(trace_day("", now))
                .string(&d.rule_name)
                .string(&d.client_id)
                .f64(now)
                .i64(d.request_count);
        }
        self.conn.insert("sampling_clients", w).await
    }

    /// Clients seen since `since` on the rules of `docs`, each with its latest report.
    pub(super) async fn active_clients(
        &self,
        docs: &[crate::sampling::StatisticsDocument],
        since: f64,
    ) -> Result<Vec<SamplingClient>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            rule: String,
            client_id: String,
            last_seen: f64,
            requests: i64,
        }
        let mut rules: Vec<String> = docs.iter().map(|d| d.rule_name.clone()).collect();
        rules.sort();
        rules.dedup();
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT rule, client_id, max(seen) AS last_seen,
                        argMax(request_count, seen) AS requests
                 FROM sampling_clients
                 WHERE day >= toDate({}) AND seen >= {} AND rule IN ({})
                 GROUP BY rule, client_id",
                quote(&day_text(trace_day("", since))),
                number(since),
                id_list(&rules)
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SamplingClient {
                rule_name: r.rule,
                client_id: r.client_id,
                seen: r.last_seen,
                request_count: r.requests,
            })
            .collect())
    }
}
