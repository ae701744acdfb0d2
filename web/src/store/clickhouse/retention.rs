//! Retention: whole days dropped by partition, the samples of superseded folds deleted from
//! settled days, and the old alarm history and insights deleted by key.

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::{number, quote};
use super::schema;
use super::writer::day_text;
use crate::store::StoreError;

/// Keys of old alarm events (and of closed insights) deleted per sweep at most; the next
/// sweep takes the rest.
const MAX_KEYS: usize = 20_000;
/// The length of the key list in one mutation's text, at most.
const MUTATION_TEXT: usize = 100_000;

impl ClickhouseStore {
    /// Drops whole days older than the cutoff's day from the daily tables on the server this
    /// collector talks to (each shard's collectors drop their own shard's days), days before
    /// yesterday from the sampling clients, and the samples of superseded folds from settled
    /// days (see [`Self::clean_stale_samples`]).
    pub(super) async fn drop_days_before(&self, cutoff: f64) -> Result<usize, StoreError> {
        let day_of = |t: f64| day_text((t.max(0.0) / 86_400.0).floor().min(65_535.0) as u16);
        let cutoff_day = day_of(cutoff);
        let now = crate::store::now_seconds();
        let yesterday = day_of(now - 86_400.0);
        let suffix = if self.conn.config.cluster.is_some() {
            "_local"
        } else {
            ""
        };
        let gone = self
            .count(&format!(
                "SELECT uniqExact(trace_id) AS n FROM traces{suffix} WHERE day < toDate({})",
                quote(&cutoff_day)
            ))
            .await?;
        #[derive(Deserialize)]
        struct Part {
            table: String,
            partition: String,
        }
        let tables = schema::DAILY_TABLES
            .iter()
            .chain(schema::SHORT_LIVED_TABLES.iter())
            .map(|t| quote(&format!("{t}{suffix}")))
            .collect::<Vec<_>>()
            .join(",");
        let parts: Vec<Part> = self
            .conn
            .select(&format!(
                "SELECT DISTINCT table, partition FROM system.parts
                 WHERE database = {} AND table IN ({tables}) AND active",
                quote(&self.conn.config.database)
            ))
            .await?;
        let mut sample_days = Vec::new();
        for p in parts {
            let day = p.partition.trim_matches('\'');
            let short_lived = schema::SHORT_LIVED_TABLES
                .iter()
                .any(|t| p.table == format!("{t}{suffix}"));
            let before = if short_lived {
                cutoff_day.as_str().max(yesterday.as_str())
            } else {
                cutoff_day.as_str()
            };
            if day < before {
                self.conn
                    .execute(&format!(
                        "ALTER TABLE {} DROP PARTITION {}",
                        p.table,
                        quote(day)
                    ))
                    .await?;
            } else if p.table == format!("samples{suffix}") && day < yesterday.as_str() {
                sample_days.push(day.to_owned());
            }
        }
        for day in sample_days {
            self.clean_stale_samples(suffix, &day).await?;
        }
        self.forget_alarm_history(suffix, cutoff).await?;
        Ok(gone as usize)
    }

    /// Deletes the alarm events and insights that [`crate::store::Store::delete_before`]
    /// lets go. Their rows are versions of a key, so the keys are read first and the
    /// mutation names them: every version of a key goes at once, whatever part it is in (a
    /// condition on the newest version alone would leave older ones, an event still pending
    /// among them, to take its place). Skipped while an earlier such mutation is running.
    async fn forget_alarm_history(&self, suffix: &str, cutoff: f64) -> Result<(), StoreError> {
        let (events, insights) = (format!("alarm_events{suffix}"), format!("insights{suffix}"));
        let running = self
            .count(&format!(
                "SELECT count() AS n FROM system.mutations
                 WHERE database = {} AND table IN ({}, {}) AND NOT is_done",
                quote(&self.conn.config.database),
                quote(&events),
                quote(&insights)
            ))
            .await?;
        if running > 0 {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Event {
            alarm: String,
            seq: u64,
        }
        let old: Vec<Event> = self
            .conn
            .select(&format!(
                "SELECT alarm, seq FROM (
                     SELECT alarm, seq, argMax(pending, version) AS p, argMax(time, version) AS t
                     FROM {events} GROUP BY alarm, seq)
                 WHERE p = 0 AND t < {c}
                   AND (alarm, seq) NOT IN (SELECT alarm, max(seq) FROM {events} GROUP BY alarm)
                 LIMIT {MAX_KEYS}",
                c = number(cutoff)
            ))
            .await?;
        let keys: Vec<String> = old
            .iter()
            .map(|e| format!("({}, {})", quote(&e.alarm), e.seq))
            .collect();
        self.delete_keys(&events, "(alarm, seq)", keys).await?;
        #[derive(Deserialize)]
        struct Closed {
            id: String,
        }
        let closed: Vec<Closed> = self
            .conn
            .select(&format!(
                "SELECT id FROM (SELECT id, argMax(end_time, version) AS e FROM {insights} GROUP BY id)
                 WHERE e >= 0 AND e < {c} LIMIT {MAX_KEYS}",
                c = number(cutoff)
            ))
            .await?;
        let ids = closed.iter().map(|i| quote(&i.id)).collect();
        self.delete_keys(&insights, "id", ids).await
    }

    /// `ALTER TABLE table DELETE WHERE key IN (...)` over `keys` (SQL literals), in
    /// mutations of bounded text (servers refuse queries over 256 KiB by default).
    async fn delete_keys(
        &self,
        table: &str,
        key: &str,
        mut keys: Vec<String>,
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        tracing::info!(
            table,
            keys = keys.len(),
            "retention: deleting old rows by key"
        );
        while !keys.is_empty() {
            let mut len = 0;
            let take = keys
                .iter()
                .take_while(|k| {
                    len += k.len() + 1;
                    len < MUTATION_TEXT
                })
                .count()
                .max(1);
            let mut chunk: Vec<String> = keys.drain(..take).collect();
            // `IN ((a, 1))` would read as `IN (a, 1)`: a list of one tuple is given twice.
            if chunk.len() == 1 {
                chunk.push(chunk[0].clone());
            }
            self.conn
                .execute(&format!(
                    "ALTER TABLE {table} DELETE WHERE {key} IN ({})",
                    chunk.join(",")
                ))
                .await?;
        }
        Ok(())
    }

    /// Deletes the samples of superseded folds of one settled `day` (before yesterday, so no
    /// fold of its traces is being written), once per day: a trace's folds each append their
    /// samples and rollups read only the newest, so the others are dead weight until the
    /// day's partition is dropped. One mutation (`ALTER TABLE ... DELETE`, 18.16 has it) per
    /// day and shard; a mutation already listed for the day means it was done.
    async fn clean_stale_samples(&self, suffix: &str, day: &str) -> Result<(), StoreError> {
        let table = format!("samples{suffix}");
        let done = self
            .count(&format!(
                "SELECT count() AS n FROM system.mutations
                 WHERE database = {} AND table = {} AND position(command, {}) > 0",
                quote(&self.conn.config.database),
                quote(&table),
                quote(day)
            ))
            .await?;
        if done > 0 {
            return Ok(());
        }
        tracing::info!(day, table, "deleting the samples of superseded folds");
        self.conn
            .execute(&format!(
                "ALTER TABLE {table} DELETE WHERE day = toDate({d}) AND fold NOT IN (
                     SELECT argMax(fold, version) FROM traces{suffix}
                     WHERE day = toDate({d}) GROUP BY trace_id)",
                d = quote(day)
            ))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing;
    use super::*;
    use crate::sampling::DEFAULT_RULE;
    use crate::store::Store;
    use crate::test_support::prepared;

    /// Polls `count` (bounded) until it returns `want`; returns the last value.
    async fn settles_at(store: &ClickhouseStore, sql: &str, want: u64) -> u64 {
        let mut last = u64::MAX;
        // Mutations run in the background: up to two minutes on a loaded machine.
        for _ in 0..1_200 {
            last = store.count(sql).await.unwrap();
            if last == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }

    #[tokio::test]
    async fn settled_days_lose_superseded_fold_samples_and_old_sampling_clients() {
        let place = testing::Place::new(testing::Backend::Clickhouse);
        let store = place.clickhouse().await;
        let now = crate::store::now_seconds();
        let old = now - 5.0 * 86_400.0;
        // Two folds of one old trace: its first document alone, then both.
        let docs = crate::synth::shop_trace(7, old);
        store.put_documents(prepared(&docs[..1])).await.unwrap();
        store.put_documents(prepared(&docs)).await.unwrap();
        let newest = "SELECT count() AS n FROM samples WHERE fold IN (
                          SELECT argMax(fold, version) FROM traces GROUP BY trace_id)";
        let all = "SELECT count() AS n FROM samples";
        let (kept, before) = (
            store.count(newest).await.unwrap(),
            store.count(all).await.unwrap(),
        );
        assert!(kept > 0 && before > kept, "{kept} of {before}");
        let minute = (old / 60.0).floor() as i64;
        let rollups = store.rollups(minute - 2, minute + 2).await.unwrap();
        assert!(!rollups.is_empty());
        let report = |client: &str| crate::sampling::StatisticsDocument {
            rule_name: DEFAULT_RULE.into(),
            client_id: client.into(),
            timestamp: 0.0,
            request_count: 1,
            sampled_count: 0,
            borrow_count: 0,
        };
        store
            .report_sampling(old, vec![report("old")], old - 30.0)
            .await
            .unwrap();
        let seen = store
            .report_sampling(now, vec![report("new")], now - 30.0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.len(), 1, "the old report is not active: {seen:?}");

        // Retention far older than the trace: nothing is dropped but the dead weight.
        for _ in 0..2 {
            assert_eq!(
                store
                    .delete_before(old - 30.0 * 86_400.0, 10)
                    .await
                    .unwrap(),
                0
            );
        }
        assert_eq!(settles_at(&store, all, kept).await, kept);
        assert_eq!(
            store.rollups(minute - 2, minute + 2).await.unwrap(),
            rollups
        );
        let clients = "SELECT count() AS n FROM sampling_clients";
        assert_eq!(store.count(clients).await.unwrap(), 1);
        let mutations = format!(
            "SELECT count() AS n FROM system.mutations WHERE database = {} AND table = 'samples'",
            quote(&store.conn.config.database)
        );
        assert_eq!(
            store.count(&mutations).await.unwrap(),
            1,
            "one mutation per day"
        );
    }
}
