//! The embedded store: one SQLite file in WAL mode, written by one dedicated thread that groups
//! whatever is queued into one transaction (group commit) and answers each request only after
//! its transaction committed; read by a bounded pool of connections on the blocking thread pool (`read_pool`).
//!
//! Per trace it keeps the documents (`segments`), a summary row with the indexed columns
//! (`traces`), annotation and service index rows, and per-minute node/edge statistics
//! (`rollups`), all updated in the same transaction as the documents.
//!
//! Ingest writes as little as it can per document: one `segments` row (the document as sent,
//! no derived copy), one summary row per trace of the batch, and only the index rows searches
//! start from. Index rows point at the summary's `rid`, which grows with every summary
//! written, so a batch's index rows land at the end of each key's range (a few pages) instead
//! of at random places (a page per row); they are removed by their exact keys, read from the
//! trace's previous summary, so no index by trace id is kept for them. A trace whose pieces
//! arrive in one call is folded on the caller's thread (`prefold`); a trace folded again
//! (pieces arriving in a later batch) re-reads its stored documents on the writer.

mod read_pool;

pub use read_pool::ReadLimits;
use read_pool::ReadPool;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    BoxFuture, IngestDocument, Pushdown, RollupRow, ScanQuery, Store, StoreError, StoredDocument,
    StoredGroup, StoredRule, StoredTrace, TelemetryRow, TraceRecord,
};
use crate::assembly::{DocFacts, Sample, TraceSummary, TraceView, fold_trace, minute_of, replaces};
use crate::graph::{Histogram, Stats};
use crate::sampling::{DEFAULT_RULE, SamplingRule};
use roentgen_sdk::model::Segment;

/// Layout version kept in `PRAGMA user_version`; a store of another version is refused.
const STORE_FORMAT: i64 = 2;
/// Most documents grouped into one write transaction.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests, not documents); senders wait when it is full.
const WRITER_QUEUE: usize = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS segments (
    trace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    subsegment INTEGER NOT NULL,
    start_time REAL NOT NULL,
    in_progress INTEGER NOT NULL,
    document TEXT NOT NULL
);
-- Documents are large: rows append in arrival order, the key lives in a small index.
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_key ON segments (trace_id, id);
-- `rid` is what the index tables point at; explicit so that VACUUM keeps it.
CREATE TABLE IF NOT EXISTS traces (
    rid INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL UNIQUE,
    start_time REAL NOT NULL,
    end_time REAL,
    duration REAL,
    response_time REAL,
    has_fault INTEGER NOT NULL,
    has_error INTEGER NOT NULL,
    has_throttle INTEGER NOT NULL,
    is_partial INTEGER NOT NULL,
    http_status INTEGER,
    summary TEXT NOT NULL,
    samples TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_time, trace_id);
CREATE TABLE IF NOT EXISTS trace_annotations (
    key TEXT NOT NULL,
    value_text TEXT NOT NULL,
    value_number REAL,
    trace_rowid INTEGER NOT NULL,
    PRIMARY KEY (key, value_text, trace_rowid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_services (
    name TEXT NOT NULL,
    trace_rowid INTEGER NOT NULL,
    PRIMARY KEY (name, trace_rowid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    minute INTEGER NOT NULL,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_other INTEGER NOT NULL,
    throttle INTEGER NOT NULL,
    fault INTEGER NOT NULL,
    total_response_time REAL NOT NULL,
    histogram TEXT NOT NULL,
    PRIMARY KEY (minute, src, dst)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sampling_rules (
    name TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    created_at REAL NOT NULL,
    modified_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry (
    received_at REAL NOT NULL,
    hostname TEXT,
    instance_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (received_at);
";

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A trace folded from the pieces of one `put_documents` call, before it reaches the writer.
struct Folded {
    view: TraceView,
    summary: String,
    samples: String,
}

/// Per trace id: its fold from one call's pieces, or `None` when pieces of that trace came in
/// several calls merged into one transaction (the writer folds those itself).
type PreFolds = HashMap<String, Option<Folded>>;

/// Folds the traces of one call from its own pieces (with the writer's replacement rule), so
/// the common case, a trace whose pieces all arrive together, costs the writer no CPU beyond
/// its inserts. Runs on the caller's thread.
impl Folded {
    fn new(mut view: TraceView) -> Result<Self, StoreError> {
        view.summary.updated_at = Some(now_seconds());
        Ok(Self {
            summary: serde_json::to_string(&view.summary)?,
            samples: serde_json::to_string(&view.samples)?,
            view,
        })
    }
}

/// Documents per part of a large `put_documents` call.
const PART_DOCUMENTS: usize = 500;

/// Splits documents into parts of about `size`, never between two neighbours of one trace
/// (pieces of a trace that are not neighbours may land in different parts; the writer then
/// folds that trace from what is stored, which gives the same result).
fn split_by_trace(mut docs: Vec<IngestDocument>, size: usize) -> Vec<Vec<IngestDocument>> {
    let mut parts = Vec::new();
    while docs.len() > size {
        let mut cut = size;
        while cut < docs.len() && docs[cut].trace_id == docs[cut - 1].trace_id {
            cut += 1;
        }
        let rest = docs.split_off(cut);
        parts.push(std::mem::replace(&mut docs, rest));
    }
    parts.push(docs);
    parts
}

fn prefold(docs: &[IngestDocument]) -> Result<PreFolds, StoreError> {
    let mut pieces: HashMap<&str, BTreeMap<&str, (&DocFacts, bool)>> = HashMap::new();
    for d in docs {
        let entry = pieces.entry(&d.trace_id).or_default();
        match entry.get(d.id.as_str()) {
            Some((_, stored)) if !replaces(*stored, d.in_progress) => {}
            _ => {
                entry.insert(&d.id, (&d.facts, d.in_progress));
            }
        }
    }
    let mut out = HashMap::with_capacity(pieces.len());
    for (trace_id, pieces) in pieces {
        let facts: Vec<DocFacts> = pieces.values().map(|(f, _)| (*f).clone()).collect();
        out.insert(
            trace_id.to_owned(),
            Some(Folded::new(fold_trace(trace_id, &facts))?),
        );
    }
    Ok(out)
}

enum WriteCommand {
    Documents(Vec<IngestDocument>, PreFolds, Reply<()>),
    PutRule(StoredRule, bool, Reply<()>),
    DeleteRule(String, Reply<StoredRule>),
    PutGroup(StoredGroup, bool, Reply<()>),
    DeleteGroup(String, Reply<()>),
    Telemetry(Vec<TelemetryRow>, Reply<()>),
    DeleteBefore(f64, usize, Reply<usize>),
    /// Takes the write lock and lets it go (for [`Store::ready`]).
    Ready(Reply<()>),
}

/// The SQLite store. Cheap to share behind an `Arc`; dropping it stops the writer after the
/// queued work is done.
pub struct SqliteStore {
    writer: mpsc::Sender<WriteCommand>,
    readers: Arc<ReadPool>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .finish()
    }
}

/// Current time, epoch seconds.
pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl SqliteStore {
    /// Opens (creating if needed) `roentgen.db` in `data_dir` and starts the writer thread,
    /// with the default [`ReadLimits`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, ReadLimits::default())
    }

    /// [`SqliteStore::open`] with these read limits.
    pub fn open_with(data_dir: &Path, read_limits: ReadLimits) -> Result<Self, StoreError> {
        crate::data_dir::create(data_dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join("roentgen.db");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every commit is fsynced before the request that waits on it is answered.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A 64 MiB page cache keeps the index pages random inserts touch in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints run on their own thread after each commit (see `Helpers`); the writer
        // checkpoints itself only if the WAL still reaches 256 MiB (64 MiB without that thread).
        let helpers = Helpers::start(&path);
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
        if existing > 0 && format != STORE_FORMAT {
            return Err(StoreError::Open(format!(
                "{} holds store format {format}, this build writes format {STORE_FORMAT}; \
                 start with a fresh --data-dir",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
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
                    serde_json::to_string(&SamplingRule::default_rule())?,
                    now
                ],
            )?;
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        std::thread::Builder::new()
            .name("roentgen-store-writer".to_owned())
            .spawn(move || writer_loop(conn, rx, &helpers))
            .map_err(|e| StoreError::Open(format!("writer thread: {e}")))?;
        Ok(Self {
            writer: tx,
            readers: Arc::new(ReadPool::new(path, read_limits)),
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

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(self.readers.clone().read(f))
    }
}

/// A committed batch's memory, freed off the writer thread.
type Garbage = (Vec<IngestDocument>, PreFolds);

/// Work the writer hands off so that it can start on the next batch at once: freeing a
/// committed batch's memory, and copying the WAL back into the database file (a passive
/// checkpoint, which never blocks the writer and does not touch durability: commits are
/// durable once in the WAL). Either falls back to the writer's own thread if its thread
/// could not start.
struct Helpers {
    garbage: Option<std::sync::mpsc::Sender<Garbage>>,
    checkpoint: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Helpers {
    fn start(path: &Path) -> Self {
        let (garbage_tx, garbage_rx) = std::sync::mpsc::channel::<Garbage>();
        let garbage = std::thread::Builder::new()
            .name("roentgen-store-free".to_owned())
            .spawn(move || garbage_rx.into_iter().for_each(drop))
            .ok()
            .map(|_| garbage_tx);
        let checkpoint = match Connection::open(path) {
            Ok(conn) => {
                // At most one request pending: commits during a checkpoint coalesce.
                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                std::thread::Builder::new()
                    .name("roentgen-store-checkpoint".to_owned())
                    .spawn(move || {
                        for () in rx {
                            if let Err(e) =
                                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                            {
                                tracing::warn!(error = %e, "background checkpoint failed");
                            }
                        }
                    })
                    .ok()
                    .map(|_| tx)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the checkpoint connection");
                None
            }
        };
        if checkpoint.is_none() {
            tracing::warn!("background checkpoints unavailable; the writer checkpoints itself");
        }
        Self {
            garbage,
            checkpoint,
        }
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<WriteCommand>, helpers: &Helpers) {
    while let Some(first) = rx.blocking_recv() {
        let mut docs: Vec<IngestDocument> = Vec::new();
        let mut folds: PreFolds = HashMap::new();
        let mut replies: Vec<Reply<()>> = Vec::new();
        let mut others: Vec<WriteCommand> = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                WriteCommand::Documents(d, f, reply) => {
                    docs.extend(d);
                    for (trace_id, fold) in f {
                        match folds.entry(trace_id) {
                            std::collections::hash_map::Entry::Occupied(mut e) => {
                                e.insert(None);
                            }
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(fold);
                            }
                        }
                    }
                    replies.push(reply);
                }
                other => others.push(other),
            }
            if docs.len() < MAX_BATCH_DOCUMENTS && others.len() < 64 {
                next = rx.try_recv().ok();
            }
        }
        if !replies.is_empty() {
            let result = write_transaction(&mut conn, |tx| write_documents(tx, &docs, &mut folds));
            if let Err(e) = &result {
                tracing::error!(error = %e, documents = docs.len(), "write transaction failed");
            }
            for reply in replies {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::Write(e.to_string())),
                });
            }
        }
        if let Some(c) = &helpers.checkpoint {
            let _ = c.try_send(());
        }
        if let Some(g) = &helpers.garbage {
            // A closed channel hands the batch back; it is then freed here.
            let _ = g.send((docs, folds));
        }
        for cmd in others {
            run_other(&mut conn, cmd);
        }
    }
    tracing::debug!("store writer stopped");
}

fn write_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.transaction()?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn run_other(conn: &mut Connection, cmd: WriteCommand) {
    match cmd {
        WriteCommand::Documents(..) => {}
        WriteCommand::Ready(reply) => {
            // BEGIN IMMEDIATE takes the database's write lock; the rollback writes nothing.
            let _ = reply.send(
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map(drop)
                    .map_err(StoreError::from),
            );
        }
        WriteCommand::PutRule(rule, create, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                let exists: Option<f64> = tx
                    .query_row(
                        "SELECT created_at FROM sampling_rules WHERE name = ?1",
                        [&rule.rule.rule_name],
                        |r| r.get(0),
                    )
                    .optional()?;
                match (exists, create) {
                    (Some(_), true) => return Err(StoreError::Exists(rule.rule.rule_name)),
                    (None, false) => return Err(StoreError::NotFound(rule.rule.rule_name)),
                    _ => {}
                }
                tx.execute(
                    "INSERT OR REPLACE INTO sampling_rules (name, rule, created_at, modified_at) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        rule.rule.rule_name,
                        serde_json::to_string(&rule.rule)?,
                        exists.unwrap_or(rule.created_at),
                        rule.modified_at
                    ],
                )?;
                Ok(())
            }));
        }
        WriteCommand::DeleteRule(name, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                let rule = read_rules(tx)?
                    .into_iter()
                    .find(|r| r.rule.rule_name == name)
                    .ok_or_else(|| StoreError::NotFound(name.clone()))?;
                tx.execute("DELETE FROM sampling_rules WHERE name = ?1", [&name])?;
                Ok(rule)
            }));
        }
        WriteCommand::PutGroup(group, create, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                let exists: Option<String> = tx
                    .query_row(
                        "SELECT name FROM groups WHERE name = ?1",
                        [&group.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                match (exists.is_some(), create) {
                    (true, true) => return Err(StoreError::Exists(group.name)),
                    (false, false) => return Err(StoreError::NotFound(group.name)),
                    _ => {}
                }
                tx.execute(
                    "INSERT OR REPLACE INTO groups (name, body) VALUES (?1, ?2)",
                    params![group.name, serde_json::to_string(&group)?],
                )?;
                Ok(())
            }));
        }
        WriteCommand::DeleteGroup(name, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                let n = tx.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
                if n == 0 {
                    return Err(StoreError::NotFound(name));
                }
                Ok(())
            }));
        }
        WriteCommand::Telemetry(rows, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO telemetry (received_at, hostname, instance_id, record) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in rows {
                    stmt.execute(params![r.received_at, r.hostname, r.instance_id, r.record])?;
                }
                Ok(())
            }));
        }
        WriteCommand::DeleteBefore(cutoff, max, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| delete_before(tx, cutoff, max)));
        }
    }
}

fn delete_before(tx: &Transaction<'_>, cutoff: f64, max: usize) -> Result<usize, StoreError> {
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
    }
    tx.execute("DELETE FROM rollups WHERE minute < ?1", [minute_of(cutoff)])?;
    tx.execute("DELETE FROM telemetry WHERE received_at < ?1", [cutoff])?;
    Ok(old.len())
}

#[derive(Default)]
struct RollupDelta(HashMap<(i64, String, String), Stats>);

impl RollupDelta {
    fn add(&mut self, samples: &[Sample], sign: i64) {
        for s in samples {
            self.0
                .entry((s.minute, s.src.clone(), s.dst.clone()))
                .or_default()
                .add(s.outcome, s.response_time, sign);
        }
    }
}

/// Deletes a trace's annotation and service index rows by their exact keys, read from the
/// summary that produced them.
struct IndexRows<'t> {
    annotation: rusqlite::CachedStatement<'t>,
    service: rusqlite::CachedStatement<'t>,
}

impl<'t> IndexRows<'t> {
    fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            annotation: tx.prepare_cached(
                "DELETE FROM trace_annotations WHERE key = ?1 AND value_text = ?2 AND trace_rowid = ?3",
            )?,
            service: tx
                .prepare_cached("DELETE FROM trace_services WHERE name = ?1 AND trace_rowid = ?2")?,
        })
    }

    fn delete(&mut self, rowid: i64, summary: &TraceSummary) -> Result<(), StoreError> {
        for a in &summary.annotations {
            self.annotation
                .execute(params![a.key, a.value.index_text(), rowid])?;
        }
        for s in &summary.services {
            self.service.execute(params![s.key.name, rowid])?;
        }
        Ok(())
    }
}

/// The facts of every stored document of a trace: those of this batch as extracted by the
/// request handler, the others re-extracted from their stored text.
fn stored_facts(
    stmt: &mut rusqlite::CachedStatement<'_>,
    trace_id: &str,
    in_batch: &BTreeMap<&str, (&DocFacts, bool)>,
) -> Result<Vec<DocFacts>, StoreError> {
    let rows = stmt.query_map([trace_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, document) = row?;
        match in_batch.get(id.as_str()) {
            Some((facts, _)) => out.push((*facts).clone()),
            None => {
                let segment: Segment = serde_json::from_str(&document)?;
                out.push(DocFacts::extract(&segment));
            }
        }
    }
    Ok(out)
}

fn write_documents(
    tx: &Transaction<'_>,
    docs: &[IngestDocument],
    folds: &mut PreFolds,
) -> Result<(), StoreError> {
    // The documents of this batch that were stored (new, or replacing an in-progress one),
    // per trace.
    let mut batch: BTreeMap<&str, BTreeMap<&str, (&DocFacts, bool)>> = BTreeMap::new();
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO segments (trace_id, id, parent_id, subsegment, start_time, in_progress, document)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (trace_id, id) DO UPDATE SET
                parent_id = excluded.parent_id, subsegment = excluded.subsegment,
                start_time = excluded.start_time, in_progress = excluded.in_progress,
                document = excluded.document
             WHERE segments.in_progress = 1 OR excluded.in_progress = 0",
        )?;
        for d in docs {
            let changed = upsert.execute(params![
                d.trace_id,
                d.id,
                d.parent_id,
                d.subsegment,
                d.start_time,
                d.in_progress,
                d.document,
            ])?;
            if changed > 0 {
                let entry = batch.entry(&d.trace_id).or_default();
                match entry.get(d.id.as_str()) {
                    Some((_, stored)) if !replaces(*stored, d.in_progress) => {}
                    _ => {
                        entry.insert(&d.id, (&d.facts, d.in_progress));
                    }
                }
            }
        }
    }
    let mut delta = RollupDelta::default();
    let mut old_row =
        tx.prepare_cached("SELECT rowid, summary, samples FROM traces WHERE trace_id = ?1")?;
    let mut documents =
        tx.prepare_cached("SELECT id, document FROM segments WHERE trace_id = ?1")?;
    let mut put_trace = tx.prepare_cached(
        "INSERT OR REPLACE INTO traces (trace_id, start_time, end_time, duration, response_time,
            has_fault, has_error, has_throttle, is_partial, http_status, summary, samples)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut index = IndexRows::new(tx)?;
    let mut annotation_rows: Vec<SqlValue> = Vec::new();
    let mut service_rows: Vec<SqlValue> = Vec::new();
    for (trace_id, pieces) in &batch {
        let old: Option<(i64, String, String)> = old_row
            .query_row([trace_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let folded = match &old {
            None => match folds.remove(*trace_id).flatten() {
                Some(folded) => folded,
                None => {
                    let facts: Vec<DocFacts> = pieces.values().map(|(f, _)| (*f).clone()).collect();
                    Folded::new(fold_trace(trace_id, &facts))?
                }
            },
            Some((rowid, summary, samples)) => {
                let old: Vec<Sample> = serde_json::from_str(samples)?;
                delta.add(&old, -1);
                index.delete(*rowid, &serde_json::from_str(summary)?)?;
                Folded::new(fold_trace(
                    trace_id,
                    &stored_facts(&mut documents, trace_id, pieces)?,
                ))?
            }
        };
        let view = &folded.view;
        delta.add(&view.samples, 1);
        let s = &view.summary;
        put_trace.execute(params![
            trace_id,
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
            folded.samples,
        ])?;
        // The summary row just written (a replaced row gets a new rowid).
        let rowid = tx.last_insert_rowid();
        for a in &s.annotations {
            let number = match a.value {
                crate::assembly::AnnotationValue::Number(n) => Some(n),
                _ => None,
            };
            annotation_rows.extend([
                a.key.clone().into(),
                a.value.index_text().into(),
                number.into(),
                rowid.into(),
            ]);
        }
        for svc in &s.services {
            service_rows.extend([svc.key.name.clone().into(), rowid.into()]);
        }
    }
    insert_rows(
        tx,
        "INSERT OR IGNORE INTO trace_annotations (key, value_text, value_number, trace_rowid)",
        4,
        annotation_rows,
    )?;
    insert_rows(
        tx,
        "INSERT OR IGNORE INTO trace_services (name, trace_rowid)",
        2,
        service_rows,
    )?;
    apply_rollups(tx, delta)
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

fn row_stats(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Stats, StoreError>> {
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

fn read_rules(conn: &Connection) -> Result<Vec<StoredRule>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT rule, created_at, modified_at FROM sampling_rules ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rule, created_at, modified_at) = row?;
        out.push(StoredRule {
            rule: serde_json::from_str(&rule)?,
            created_at,
            modified_at,
        });
    }
    Ok(out)
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

fn scan(conn: &Connection, q: &ScanQuery) -> Result<Vec<TraceRecord>, StoreError> {
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
    for (i, p) in q.pushdown.iter().enumerate() {
        if Some(i) == driver {
            continue;
        }
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
                sql.push_str(&format!(" AND t.response_time {} ?", super::op_sql(op)));
                args.push((*v).into());
            }
            Pushdown::Duration(op, v) => {
                sql.push_str(&format!(" AND t.duration {} ?", super::op_sql(op)));
                args.push((*v).into());
            }
            Pushdown::AnnotationEquals(k, v) => {
                sql.push_str(" AND EXISTS (SELECT 1 FROM trace_annotations a WHERE a.key = ? AND a.value_text = ? AND a.trace_rowid = t.rowid)");
                args.push(k.clone().into());
                args.push(v.clone().into());
            }
            // No index by trace answers these (the annotation index is keyed by value): the
            // caller evaluates them on the summaries, which it does for every predicate anyway.
            Pushdown::AnnotationNumber(..) | Pushdown::AnnotationExists(..) => {}
            Pushdown::Service(name) => {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM trace_services s WHERE s.name = ? AND s.trace_rowid = t.rowid)",
                );
                args.push(name.clone().into());
            }
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
            samples: match samples {
                Some(s) => serde_json::from_str(&s)?,
                None => Vec::new(),
            },
        });
    }
    Ok(out)
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

    fn put_documents(&self, docs: Vec<IngestDocument>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // A large call goes to the writer in parts, each sent as soon as it is folded, so
            // the writer starts on the first while the next are folded; the call is answered
            // once every part is durable (queued parts share one transaction).
            let mut pending = Vec::new();
            for part in split_by_trace(docs, PART_DOCUMENTS) {
                let folds = prefold(&part)?;
                let (tx, rx) = oneshot::channel();
                self.writer
                    .send(WriteCommand::Documents(part, folds, tx))
                    .await
                    .map_err(|_| StoreError::WriterGone)?;
                pending.push(rx);
            }
            for rx in pending {
                rx.await.map_err(|_| StoreError::WriterGone)??;
            }
            Ok(())
        })
    }

    fn scan_traces(&self, query: ScanQuery) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        self.read(move |conn| scan(conn, &query))
    }

    fn get_traces(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        self.read(move |conn| {
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
                        samples: serde_json::from_str(&samples)?,
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
        self.read(move |conn| {
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
        self.read(move |conn| {
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
