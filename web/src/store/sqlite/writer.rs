//! The SQLite store's one writer thread: the commands the store queues, group commit of
//! document batches (a new trace folded on the caller's thread when several of its pieces came
//! together, the others here from the facts held in memory or, for a late trace, from what is
//! stored), index rows and rollup differences in the same transaction, and the helper threads
//! that checkpoint and free memory off the writer.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::super::live::{Admit, Found, LiveTrace, LiveTraces};
use super::super::{
    BatchReply, GroupCommit, IngestDocument, LINGER, StoreError, StoredGroup, StoredRule,
    TelemetryRow, Written, answer_batch,
};
use crate::assembly::{DocFacts, TraceRollup, TraceSummary};
use crate::graph::Stats;

use super::fold::{Folded, PreFolds};
use super::{reads::row_stats, retention::delete_before, settings};

/// Most documents grouped into one write transaction.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests, not documents); senders wait when it is full.
pub(super) const WRITER_QUEUE: usize = 256;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Documents per part of a large `put_documents` call.
pub(super) const PART_DOCUMENTS: usize = 500;

/// Splits documents into parts of about `size`, never between two neighbours of one trace
/// (pieces of a trace that are not neighbours may land in different parts; the writer then
/// folds that trace from what is stored, which gives the same result).
pub(super) fn split_by_trace(
    mut docs: Vec<IngestDocument>,
    size: usize,
) -> Vec<Vec<IngestDocument>> {
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

pub(super) enum WriteCommand {
    Documents(Vec<IngestDocument>, PreFolds, Reply<Written>),
    PutRule(StoredRule, bool, Reply<()>),
    DeleteRule(String, Reply<StoredRule>),
    PutGroup(StoredGroup, bool, Reply<()>),
    DeleteGroup(String, Reply<()>),
    Telemetry(Vec<TelemetryRow>, Reply<()>),
    DeleteBefore(f64, usize, Reply<usize>),
    /// Takes the write lock and lets it go (for [`Store::ready`]).
    Ready(Reply<()>),
    /// Runs in a write transaction of its own and sends its own answer (settings that need
    /// no more than that: alarm rules, alarm events, leases).
    Apply(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// A committed batch's memory and the live traces it evicted, freed off the writer thread.
type Garbage = (
    Vec<IngestDocument>,
    PreFolds,
    Vec<Box<LiveTrace<LastWrite>>>,
);

/// Work the writer hands off so that it can start on the next batch at once: freeing a
/// committed batch's memory, and copying the WAL back into the database file (a passive
/// checkpoint, which never blocks the writer and does not touch durability: commits are
/// durable once in the WAL). Either falls back to the writer's own thread if its thread
/// could not start.
pub(super) struct Helpers {
    garbage: Option<std::sync::mpsc::Sender<Garbage>>,
    pub(super) checkpoint: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Helpers {
    pub(super) fn start(path: &Path) -> Self {
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

/// What the writer keeps of a trace's last write: its summary's `rid`, the index keys and the
/// rollup it wrote (the next write rewrites only the index keys that changed and applies the
/// difference of the rollups).
pub(super) struct LastWrite {
    rid: i64,
    keys: IndexKeys,
    rollup: TraceRollup,
}

/// Document bytes committed before the WAL is copied back: a page written by many commits in
/// between (index, summary and rollup pages) is copied once, and the database file is fsynced
/// once, instead of after every commit.
const CHECKPOINT_AFTER_BYTES: usize = 16 << 20;

/// The writer's live traces.
pub(super) type Live = LiveTraces<LastWrite>;

pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<WriteCommand>,
    helpers: &Helpers,
    mut live: Live,
) {
    let mut since_checkpoint = 0;
    // Only to wait for more requests with a timeout (see `LINGER`).
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
    let mut group = GroupCommit::default();
    while let Some(first) = rx.blocking_recv() {
        let linger_until = tokio::time::Instant::now() + LINGER;
        let mut docs: Vec<IngestDocument> = Vec::new();
        let mut folds: PreFolds = HashMap::new();
        // Each request's reply and where its documents end in `docs`.
        let mut replies: Vec<BatchReply> = Vec::new();
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
                    replies.push((reply, docs.len()));
                }
                other => others.push(other),
            }
            if docs.len() < MAX_BATCH_DOCUMENTS && others.len() < 64 {
                next = match (rx.try_recv(), &timer) {
                    (Ok(cmd), _) => Some(cmd),
                    (Err(mpsc::error::TryRecvError::Empty), Some(timer))
                        if !replies.is_empty() && group.lingers(replies.len(), docs.len()) =>
                    {
                        // The timeout is made inside the runtime it needs.
                        timer
                            .block_on(async {
                                tokio::time::timeout_at(linger_until, rx.recv()).await
                            })
                            .ok()
                            .flatten()
                    }
                    (Err(_), _) => None,
                };
            }
        }
        if !replies.is_empty() {
            group.took(replies.len());
            answer(&mut conn, &docs, &mut folds, &mut live, replies);
        }
        if let Some(c) = &helpers.checkpoint {
            since_checkpoint += docs.iter().map(|d| d.document.len()).sum::<usize>();
            if since_checkpoint >= CHECKPOINT_AFTER_BYTES && c.try_send(()).is_ok() {
                since_checkpoint = 0;
            }
        }
        if let Some(g) = &helpers.garbage {
            // A closed channel hands the batch back; it is then freed here.
            let _ = g.send((docs, folds, live.take_evicted()));
        }
        for cmd in others {
            run_other(&mut conn, cmd, &mut live);
        }
    }
    tracing::debug!("store writer stopped");
}

/// Writes one group-committed batch and answers each request with its own refusals.
fn answer(
    conn: &mut Connection,
    docs: &[IngestDocument],
    folds: &mut PreFolds,
    live: &mut Live,
    replies: Vec<BatchReply>,
) {
    let mut taken = Vec::new();
    let result = write_transaction(conn, |tx| {
        write_documents(tx, docs, folds, live, &mut taken)
    });
    let refused = match result {
        Ok(refused) => {
            for (trace_id, trace) in taken {
                live.put(trace_id, trace);
            }
            live.note_over_cap(refused.len());
            Ok(refused)
        }
        Err(e) => {
            // What the failed transaction left is unknown (the traces it took out are dropped):
            // every trace of the batch is read back next time.
            drop(taken);
            for d in docs {
                live.suspect(d.trace_id.clone());
            }
            tracing::error!(error = %e, documents = docs.len(), "write transaction failed");
            Err(e)
        }
    };
    answer_batch(docs, &refused, replies);
}

pub(super) fn write_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.transaction()?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn run_other(conn: &mut Connection, cmd: WriteCommand, live: &mut Live) {
    match cmd {
        WriteCommand::Documents(..) => {}
        WriteCommand::Apply(f) => f(conn),
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
                settings::put_rule(tx, rule, create)
            }));
        }
        WriteCommand::DeleteRule(name, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                settings::delete_rule(tx, name)
            }));
        }
        WriteCommand::PutGroup(group, create, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                settings::put_group(tx, group, create)
            }));
        }
        WriteCommand::DeleteGroup(name, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                settings::delete_group(tx, name)
            }));
        }
        WriteCommand::Telemetry(rows, reply) => {
            let _ = reply.send(write_transaction(conn, |tx| {
                settings::put_telemetry(tx, rows)
            }));
        }
        WriteCommand::DeleteBefore(cutoff, max, reply) => {
            let deleted = write_transaction(conn, |tx| delete_before(tx, cutoff, max));
            if matches!(deleted, Ok(n) if n > 0) {
                live.forget_before(cutoff);
            }
            let _ = reply.send(deleted);
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

/// A late piece's trace as stored: its documents' facts (re-extracted from their text), its
/// summary and samples, and the summary's `rid`; `None` when nothing of it is stored.
fn read_back(
    tx: &Transaction<'_>,
    trace_id: &str,
) -> Result<Option<Box<LiveTrace<LastWrite>>>, StoreError> {
    let old: Option<(i64, String, String)> = tx
        .prepare_cached("SELECT rid, summary, samples FROM traces WHERE trace_id = ?1")?
        .query_row([trace_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((rid, summary, samples)) = old else {
        return Ok(None);
    };
    let mut stmt = tx.prepare_cached("SELECT id, document FROM segments WHERE trace_id = ?1")?;
    let rows = stmt.query_map([trace_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut docs = Vec::new();
    for row in rows {
        let (id, document) = row?;
        docs.push((id, DocFacts::of_stored(&document)?, document.len()));
    }
    let summary: TraceSummary = serde_json::from_str(&summary)?;
    let written = LastWrite {
        rid,
        keys: IndexKeys::of(&summary),
        rollup: serde_json::from_str(&samples)?,
    };
    let mut trace = LiveTrace::from_stored(docs, Some(written));
    trace.start_time = Some(summary.start_time);
    Ok(Some(Box::new(trace)))
}

/// Writes a batch: each document the replacement rule and its trace's cap let in, then per
/// touched trace its new fold (summary, index rows, rollup difference). The traces it
/// touched go to `taken`, to be put back among the live ones once the transaction commits.
/// Returns the indexes of the documents refused for their trace's cap.
fn write_documents(
    tx: &Transaction<'_>,
    docs: &[IngestDocument],
    folds: &mut PreFolds,
    live: &mut Live,
    taken: &mut Vec<(String, Box<LiveTrace<LastWrite>>)>,
) -> Result<Vec<usize>, StoreError> {
    let mut by_trace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        by_trace.entry(&d.trace_id).or_default().push(i);
    }
    let limits = *live.limits();
    let mut refused = Vec::new();
    let mut upsert = tx.prepare_cached(
        "INSERT INTO segments (trace_id, id, parent_id, subsegment, start_time, in_progress, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (trace_id, id) DO UPDATE SET
            parent_id = excluded.parent_id, subsegment = excluded.subsegment,
            start_time = excluded.start_time, in_progress = excluded.in_progress,
            document = excluded.document",
    )?;
    let mut delta = RollupDelta::default();
    let mut put_trace = tx.prepare_cached(
        "INSERT OR REPLACE INTO traces (trace_id, start_time, end_time, duration, response_time,
            has_fault, has_error, has_throttle, is_partial, http_status, summary, samples)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut update_trace = tx.prepare_cached(
        "UPDATE traces SET start_time = ?1, end_time = ?2, duration = ?3, response_time = ?4,
            has_fault = ?5, has_error = ?6, has_throttle = ?7, is_partial = ?8, http_status = ?9,
            summary = ?10, samples = ?11
         WHERE rid = ?12",
    )?;
    let mut put_facets = tx.prepare_cached(super::facets::PUT)?;
    let mut update_facets = tx.prepare_cached(super::facets::UPDATE)?;
    let mut index = IndexRows::new(tx)?;
    let mut annotation_rows: Vec<SqlValue> = Vec::new();
    let mut service_rows: Vec<SqlValue> = Vec::new();
    for (trace_id, idxs) in by_trace {
        let (mut trace, new) = match live.take(trace_id) {
            Found::Live(t) => (t, false),
            Found::New => (Box::default(), true),
            Found::Late => match read_back(tx, trace_id)? {
                Some(t) => (t, false),
                None => (Box::default(), true),
            },
        };
        let mut changed = 0;
        for i in &idxs {
            let d = &docs[*i];
            match trace.admit(&d.id, &d.facts, d.document.len(), &limits) {
                Admit::Changed => {
                    upsert.execute(params![
                        d.trace_id,
                        d.id,
                        d.parent_id,
                        d.subsegment,
                        d.start_time,
                        d.in_progress,
                        d.document,
                    ])?;
                    changed += 1;
                }
                Admit::Unchanged => {}
                Admit::OverCap => refused.push(*i),
            }
        }
        if changed == 0 {
            if !trace.is_empty() {
                taken.push((trace_id.to_owned(), trace));
            }
            continue;
        }
        // A new trace whose every piece came in one call was folded by the caller.
        let prefolded = folds.remove(trace_id).flatten();
        let folded = match prefolded {
            Some(f) if new && changed == idxs.len() => f,
            _ => Folded::of(trace_id, &trace)?,
        };
        delta.add(&folded.fold.rollup, 1);
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
                delta.add(&old.rollup, -1);
                let rowid = old.rid;
                let mut values: Vec<&dyn rusqlite::ToSql> = columns.to_vec();
                values.push(&rowid);
                update_trace.execute(values.as_slice())?;
                index.delete_keys(rowid, &old.keys.minus(&keys))?;
                (rowid, keys.minus(&old.keys))
            }
            None => {
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&trace_id];
                values.extend_from_slice(columns);
                put_trace.execute(values.as_slice())?;
                (tx.last_insert_rowid(), keys.minus(&IndexKeys::default()))
            }
        };
        let facets_row = match trace.written {
            Some(_) => &mut update_facets,
            None => &mut put_facets,
        };
        super::facets::put(facets_row, rowid, s, &folded.facets)?;
        for ((key, text), number) in added.annotations {
            annotation_rows.extend([key.into(), text.into(), number.into(), rowid.into()]);
        }
        for name in added.services {
            service_rows.extend([name.into(), rowid.into()]);
        }
        trace.start_time = Some(s.start_time);
        trace.written = Some(LastWrite {
            rid: rowid,
            keys,
            rollup: folded.fold.rollup,
        });
        taken.push((trace_id.to_owned(), trace));
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
    apply_rollups(tx, delta)?;
    Ok(refused)
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
