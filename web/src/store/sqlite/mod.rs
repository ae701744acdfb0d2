//! The embedded store: one SQLite file in WAL mode, written by one dedicated thread that groups
//! whatever is queued into one transaction (group commit) and answers each request only after
//! its transaction committed and was fsynced (by a thread of its own, `durable.rs`, so the
//! writer goes on with the next batch meanwhile); read by a bounded pool of connections on
//! the blocking thread pool (`read_pool`).
//!
//! Per trace it keeps the documents (`segments`), a summary row with the indexed columns
//! (`traces`), annotation and service index rows, and per-minute node/edge statistics
//! (`rollups`). A trace's documents are committed with a mark that its fold waits
//! (`unfolded.rs`); the fold (summary, index rows, rollups) is written up to a second later,
//! once for all the pieces that came meanwhile, and always before a read of traces, so such
//! a read sees every acknowledged document. A new trace whose pieces all came in one call is folded at
//! once.
//!
//! Ingest writes as little as it can per document: one `segments` row (the document as sent,
//! no derived copy), one summary row per trace folded, and only the index rows searches
//! start from. Index rows point at the summary's `rid`; a new trace's rows get a new, growing
//! `rid`, so a batch's index rows land at the end of each key's range (a few pages) instead of
//! at random places (a page per row). A trace written again keeps its row (updated in place)
//! and only the index rows whose keys changed are deleted (by exact key, from the previous
//! summary held in memory) or added, so no index by trace id is kept for them. A new trace with
//! several pieces in one call is folded on the caller's thread (`fold::prefold`); the others
//! are folded on the writer from the facts it holds in memory ([`super::live`]); only a late
//! one (below the live horizon) is read back.

mod alarms;
mod durable;
mod facets;
mod fold;
mod fold_rows;
mod read_pool;
mod reads;
mod retention;
mod schema;
mod settings;
mod unfolded;
mod writer;

pub use read_pool::ReadLimits;
use read_pool::ReadPool;

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::live::{LiveCounters, LiveTraces, MAX_SUSPECTS, TraceLimits, id_epoch};
use super::{
    AlarmEvent, BoxFuture, EventQuery, FacetQuery, FacetRow, IngestDocument, RollupRow, ScanQuery,
    Store, StoreError, StoredAlarm, StoredDocument, StoredGroup, StoredRule, StoredTrace,
    TelemetryRow, TraceRecord, Written,
};
use crate::sampling::DEFAULT_RULE;
use fold::prefold;
use reads::{row_stats, scan};
use schema::{FACETS_FORMAT, SCHEMA, STORE_FORMAT};
use settings::read_rules;
use unfolded::Unfolded;
use writer::{
    Helpers, PART_DOCUMENTS, Reply, WRITER_QUEUE, WriteCommand, WriterState, split_by_trace,
    writer_loop,
};

/// The SQLite store. Cheap to share behind an `Arc`; dropping it stops the writer after the
/// queued work is done and the waiting folds are written.
pub struct SqliteStore {
    writer: mpsc::Sender<WriteCommand>,
    readers: Arc<ReadPool>,
    live: Arc<LiveCounters>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .finish()
    }
}

pub use super::now_seconds;

impl SqliteStore {
    /// Opens (creating if needed) `roentgen.db` in `data_dir` and starts the writer thread,
    /// with the default [`ReadLimits`] and [`TraceLimits`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, ReadLimits::default(), TraceLimits::default())
    }

    /// [`SqliteStore::open`] with these read and trace limits.
    pub fn open_with(
        data_dir: &Path,
        read_limits: ReadLimits,
        trace_limits: TraceLimits,
    ) -> Result<Self, StoreError> {
        crate::data_dir::create(data_dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join("roentgen.db");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let helpers = Helpers::start(&path);
        // Every commit is fsynced before the request that waits on it is answered: by the
        // sync thread, one `fdatasync` for the commits made while the last one ran (NORMAL:
        // a commit does not sync; see `durable.rs`), or at the commit itself (FULL).
        let synchronous = if helpers.sync.is_some() {
            "NORMAL"
        } else {
            "FULL"
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A 64 MiB page cache keeps the index pages random inserts touch in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints run on their own thread after each commit (see `Helpers`); the writer
        // checkpoints itself only if the WAL still reaches 256 MiB (64 MiB without that thread).
        let autocheckpoint = if helpers.checkpoint.is_some() {
            65_536
        } else {
            16_384
        };
        conn.pragma_update(None, "wal_autocheckpoint", autocheckpoint)?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
        let existing: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'segments'",
            [],
            |r| r.get(0),
        )?;
        let format: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let upgrade = existing > 0 && format == FACETS_FORMAT - 1;
        if existing > 0 && format != STORE_FORMAT && !upgrade {
            return Err(StoreError::Open(format!(
                "{} holds store format {format}, this build writes format {STORE_FORMAT}; \
                 start with a fresh --data-dir",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
        if upgrade {
            facets::backfill(&conn, &path)?;
        }
        conn.pragma_update(None, "user_version", STORE_FORMAT)?;
        let exists: Option<String> = conn
            .query_row(
                "SELECT name FROM sampling_rules WHERE name = ?1",
                [DEFAULT_RULE],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            let now = now_seconds();
            conn.execute(
                "INSERT INTO sampling_rules (name, rule, created_at, modified_at) VALUES (?1, ?2, ?3, ?3)",
                params![
                    DEFAULT_RULE,
                    serde_json::to_string(&crate::sampling::default_rule())?,
                    now
                ],
            )?;
        }
        // Every stored trace is below the live horizon (now) or a suspect: a stored trace
        // whose id-epoch is ahead of the clock is read back when its next piece comes; past
        // `MAX_SUSPECTS` of them, the horizon moves past the newest instead.
        let now = now_seconds() as u32;
        let ahead: Vec<String> = conn
            .prepare("SELECT trace_id FROM traces WHERE trace_id >= ?1 ORDER BY trace_id LIMIT ?2")?
            .query_map(
                params![format!("1-{now:08x}"), (MAX_SUSPECTS + 1) as i64],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let counters = Arc::new(LiveCounters::default());
        let horizon = if ahead.len() > MAX_SUSPECTS {
            let newest: String = conn.query_row(
                "SELECT trace_id FROM traces ORDER BY trace_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )?;
            id_epoch(&newest).saturating_add(1).max(now)
        } else {
            now
        };
        let mut live = LiveTraces::new(horizon, trace_limits, counters.clone());
        if horizon == now {
            for id in ahead {
                live.suspect(id);
            }
        }
        // Traces whose fold was still waiting when the last run stopped: folded from what is
        // stored before the first read.
        let waiting: Vec<String> = conn
            .prepare("SELECT trace_id FROM unfolded")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !waiting.is_empty() {
            tracing::info!(
                traces = waiting.len(),
                "folding traces the last run left unfolded"
            );
        }
        for id in &waiting {
            live.suspect(id.clone());
        }
        let mut unfolded = Unfolded::new(counters.clone());
        unfolded.add(waiting);
        let state = WriterState { live, unfolded };
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        std::thread::Builder::new()
            .name("roentgen-store-writer".to_owned())
            .spawn(move || writer_loop(conn, rx, &helpers, state))
            .map_err(|e| StoreError::Open(format!("writer thread: {e}")))?;
        Ok(Self {
            writer: tx,
            readers: Arc::new(ReadPool::new(path, read_limits)),
            live: counters,
        })
    }

    fn write<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> WriteCommand + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.writer
                .send(make(tx))
                .await
                .map_err(|_| StoreError::WriterGone)?;
            rx.await.map_err(|_| StoreError::WriterGone)?
        })
    }

    /// Runs `f` in a write transaction of its own on the writer thread.
    fn apply<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.write(move |reply| {
            WriteCommand::Apply(Box::new(move |conn| {
                durable::reply_when_durable(reply, writer::write_transaction(conn, f))
            }))
        })
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(self.readers.clone().read(f))
    }

    /// [`Self::read`] of trace data (summaries, documents, facets, rollups), once every
    /// trace whose fold waited is folded: it sees every document acknowledged before it. If
    /// folding fails (logged; the writer retries), the read answers from the folds written.
    fn read_traces<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let waiting = self
                .live
                .fold_pending
                .load(std::sync::atomic::Ordering::Relaxed);
            if waiting > 0
                && let Err(e) = self.write(WriteCommand::Fold).await
            {
                tracing::warn!(error = %e, "reading traces before their waiting folds are written");
            }
            self.readers.clone().read(f).await
        })
    }
}

impl Store for SqliteStore {
    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.read(|conn| {
                conn.query_row("SELECT count(*) FROM sampling_rules", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(StoreError::from)
            })
            .await?;
            self.write(WriteCommand::Ready).await
        })
    }

    fn live_counters(&self) -> Option<Arc<LiveCounters>> {
        Some(self.live.clone())
    }

    fn put_documents(
        &self,
        docs: Vec<IngestDocument>,
    ) -> BoxFuture<'_, Result<Written, StoreError>> {
        Box::pin(async move {
            // A large call goes to the writer in parts, each sent as soon as it is folded, so
            // the writer starts on the first while the next are folded; the call is answered
            // once every part is durable (queued parts share one transaction). Folding is CPU
            // work: it runs on the blocking pool, not on the runtime's workers.
            let mut pending = Vec::new();
            for part in split_by_trace(docs, PART_DOCUMENTS) {
                let (part, folds) =
                    tokio::task::spawn_blocking(move || prefold(&part).map(|f| (part, f)))
                        .await
                        .map_err(|e| {
                            StoreError::Write(format!("folding the call's traces: {e}"))
                        })??;
                let (tx, rx) = oneshot::channel();
                self.writer
                    .send(WriteCommand::Documents(part, folds, tx))
                    .await
                    .map_err(|_| StoreError::WriterGone)?;
                pending.push(rx);
            }
            let mut written = Written::default();
            for rx in pending {
                written.merge(rx.await.map_err(|_| StoreError::WriterGone)??);
            }
            Ok(written)
        })
    }

    fn scan_traces(&self, query: ScanQuery) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        self.read_traces(move |conn| scan(conn, &query))
    }

    /// Parts are `rid` ranges read one after another: each reads its own pages while the
    /// previous one is folded.
    fn facet_parts(&self) -> u32 {
        4
    }

    fn scan_facets(&self, query: FacetQuery) -> BoxFuture<'_, Result<Vec<FacetRow>, StoreError>> {
        self.read_traces(move |conn| facets::scan(conn, &query))
    }

    fn get_traces(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        self.read_traces(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT summary, samples FROM traces WHERE trace_id = ?1")?;
            let mut out = Vec::new();
            for id in ids {
                let row: Option<(String, String)> = stmt
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((summary, samples)) = row {
                    out.push(TraceRecord {
                        summary: serde_json::from_str(&summary)?,
                        rollup: serde_json::from_str(&samples)?,
                    });
                }
            }
            Ok(out)
        })
    }

    fn trace_documents(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, StoreError>> {
        self.read_traces(move |conn| {
            let mut head = conn.prepare_cached("SELECT duration FROM traces WHERE trace_id = ?1")?;
            let mut docs = conn.prepare_cached(
                "SELECT id, parent_id, subsegment, start_time, document FROM segments WHERE trace_id = ?1",
            )?;
            let mut out = Vec::new();
            for id in ids {
                let Some(duration) = head
                    .query_row([&id], |r| r.get::<_, Option<f64>>(0))
                    .optional()?
                else {
                    continue;
                };
                let documents = docs
                    .query_map([&id], |r| {
                        Ok(StoredDocument {
                            id: r.get(0)?,
                            parent_id: r.get(1)?,
                            subsegment: r.get(2)?,
                            start_time: r.get(3)?,
                            document: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(StoredTrace {
                    id,
                    duration,
                    documents,
                });
            }
            Ok(out)
        })
    }

    fn rollups(&self, first: i64, last: i64) -> BoxFuture<'_, Result<Vec<RollupRow>, StoreError>> {
        self.read_traces(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ok, error_other, throttle, fault, total_response_time, histogram, minute, src, dst
                 FROM rollups WHERE minute >= ?1 AND minute <= ?2",
            )?;
            let rows = stmt.query_map(params![first, last], |r| {
                Ok((row_stats(r)?, r.get(6)?, r.get(7)?, r.get(8)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (stats, minute, src, dst) = row?;
                out.push(RollupRow {
                    minute,
                    src,
                    dst,
                    stats: stats?,
                });
            }
            Ok(out)
        })
    }

    fn sampling_rules(&self) -> BoxFuture<'_, Result<Vec<StoredRule>, StoreError>> {
        self.read(read_rules)
    }

    fn put_sampling_rule(
        &self,
        rule: StoredRule,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |reply| WriteCommand::PutRule(rule, create, reply))
    }

    fn delete_sampling_rule(&self, name: String) -> BoxFuture<'_, Result<StoredRule, StoreError>> {
        self.write(move |reply| WriteCommand::DeleteRule(name, reply))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<StoredGroup>, StoreError>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM groups ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            Ok(out)
        })
    }

    fn put_group(&self, group: StoredGroup, create: bool) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |reply| WriteCommand::PutGroup(group, create, reply))
    }

    fn delete_group(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |reply| WriteCommand::DeleteGroup(name, reply))
    }

    fn put_telemetry(&self, rows: Vec<TelemetryRow>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |reply| WriteCommand::Telemetry(rows, reply))
    }

    fn delete_before(
        &self,
        cutoff: f64,
        max_traces: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |reply| WriteCommand::DeleteBefore(cutoff, max_traces, reply))
    }

    fn alarm_rules(&self) -> BoxFuture<'_, Result<Vec<StoredAlarm>, StoreError>> {
        self.read(alarms::read_rules)
    }

    fn put_alarm_rule(
        &self,
        alarm: StoredAlarm,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.apply(move |tx| alarms::put_rule(tx, alarm, create))
    }

    fn delete_alarm_rule(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.apply(move |tx| alarms::delete_rule(tx, name))
    }

    fn put_alarm_events(&self, events: Vec<AlarmEvent>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.apply(move |tx| alarms::put_events(tx, events))
    }

    fn alarm_events(
        &self,
        query: EventQuery,
    ) -> BoxFuture<'_, Result<Vec<AlarmEvent>, StoreError>> {
        self.read(move |conn| alarms::read_events(conn, &query))
    }

    fn take_lease(
        &self,
        name: String,
        holder: String,
        now: f64,
        ttl: f64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.apply(move |tx| alarms::take_lease(tx, &name, &holder, now, ttl))
    }

    fn put_insights(
        &self,
        insights: Vec<crate::insights::Insight>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.apply(move |tx| alarms::put_insights(tx, insights))
    }

    fn insights(
        &self,
        start: f64,
        end: f64,
        id: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::insights::Insight>, StoreError>> {
        self.read(move |conn| alarms::read_insights(conn, start, end, id.as_deref(), limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::prepared;

    #[test]
    fn parts_never_split_neighbours_of_one_trace() {
        let mut raw = Vec::new();
        for n in 0..7 {
            raw.extend(crate::synth::shop_trace(n, 1_800_000_000.0));
        }
        let parts = split_by_trace(prepared(&raw), 3);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        // Two documents per trace: a cut at 3 moves to 4.
        assert_eq!(sizes, [4, 4, 4, 2]);
        for pair in parts.windows(2) {
            assert_ne!(
                pair[0].last().map(|d| &d.trace_id),
                pair[1].first().map(|d| &d.trace_id)
            );
        }
        assert_eq!(split_by_trace(Vec::new(), 3).len(), 1);
    }

    /// Once copied back, the WAL is written over from its start, so it stays below the size
    /// at which the writer copies its tail (and what a few checkpoints' worth of commits
    /// add) instead of growing while ingest goes on.
    #[tokio::test]
    async fn the_wal_is_written_over_while_ingest_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let padding = "x".repeat(60_000);
        let (mut written, mut n) = (0, 0u64);
        while written < 2 * writer::TAIL_COPY_AT_BYTES as usize {
            let batch: Vec<String> = (0..16)
                .map(|_| {
                    n += 1;
                    format!(
                        r#"{{"trace_id":"1-6b3f0000-{n:024x}","id":"{n:016x}","name":"padded",
                        "start_time":1800000000.0,"end_time":1800000001.0,
                        "metadata":{{"default":{{"padding":"{padding}"}}}}}}"#
                    )
                })
                .collect();
            let docs = prepared(&batch);
            written += docs.iter().map(|d| d.document.len()).sum::<usize>();
            store.put_documents(docs).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("roentgen.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < writer::TAIL_COPY_AT_BYTES + 3 * writer::CHECKPOINT_AFTER_BYTES as u64,
            "the WAL holds {wal} bytes after {written} bytes of documents"
        );
    }

    /// A trace whose pieces come in separate calls waits for its fold; the next read folds
    /// it first and sees every piece.
    #[tokio::test]
    async fn a_read_sees_pieces_whose_fold_waited() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let docs = prepared(&crate::synth::fleet_trace(3, 1_800_000_000.0));
        let id = docs[0].trace_id.clone();
        for d in &docs {
            store.put_documents(vec![d.clone()]).await.unwrap();
        }
        let pending = || {
            store
                .live
                .fold_pending
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(pending(), 1, "one trace waits for its fold");
        let found = store.get_traces(vec![id.clone()]).await.unwrap();
        assert_eq!(pending(), 0);
        assert_eq!(found[0].summary.document_count, docs.len());
    }

    /// After a crash between a batch's commit and its trace's fold, the store holds the
    /// documents and the mark: the trace is folded from what is stored before the first read.
    #[tokio::test]
    async fn traces_left_unfolded_by_a_crash_are_folded_at_start() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let docs = prepared(&crate::synth::fleet_trace(4, 1_800_000_000.0));
        let id = docs[0].trace_id.clone();
        {
            // What a crash leaves: the committed documents and their mark, no fold.
            let mut conn = Connection::open(dir.path().join("roentgen.db")).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            let tx = conn.transaction().unwrap();
            let mut put = tx.prepare(writer::PUT_SEGMENT).unwrap();
            for d in &docs {
                writer::put_segment(&mut put, d).unwrap();
            }
            drop(put);
            tx.execute(unfolded::MARK, [&id]).unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let found = store.get_traces(vec![id.clone()]).await.unwrap();
        assert_eq!(found.len(), 1, "the trace is folded before the read");
        assert_eq!(found[0].summary.document_count, docs.len());
        // Its next piece continues from what is stored.
        let mut more = prepared(&crate::synth::fleet_trace(4, 1_800_000_000.0));
        more.truncate(1);
        store.put_documents(more).await.unwrap();
        let mut again = store.get_traces(vec![id]).await.unwrap().remove(0).summary;
        let mut first = found.into_iter().next().unwrap().summary;
        (again.updated_at, first.updated_at) = (None, None);
        assert_eq!(again, first);
    }

    /// A trace whose stored document cannot be read (written behind the store's back) is
    /// logged and left marked; the other traces waiting with it are folded and read.
    #[tokio::test]
    async fn a_trace_that_cannot_be_folded_holds_back_no_other() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let good = prepared(&crate::synth::fleet_trace(5, 1_800_000_000.0));
        let mut bad = prepared(&crate::synth::fleet_trace(6, 1_800_000_000.0));
        bad[0].document = "{not json".to_owned();
        let path = dir.path().join("roentgen.db");
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        {
            let mut put = conn.prepare(writer::PUT_SEGMENT).unwrap();
            for d in good.iter().chain(&bad) {
                writer::put_segment(&mut put, d).unwrap();
            }
        }
        for id in [&good[0].trace_id, &bad[0].trace_id] {
            conn.execute(unfolded::MARK, [id]).unwrap();
        }
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let found = store
            .get_traces(vec![good[0].trace_id.clone(), bad[0].trace_id.clone()])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].summary.id, good[0].trace_id);
        assert_eq!(
            store
                .live
                .fold_pending
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        let marked: Vec<String> = conn
            .prepare("SELECT trace_id FROM unfolded")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            marked,
            vec![bad[0].trace_id.clone()],
            "kept for the next start"
        );
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("roentgen.db")).unwrap();
        // The dropped store's threads may still be closing their connections.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 1"), "{err}");
        assert!(err.contains("fresh --data-dir"), "{err}");
    }
}
