//! The SQLite store's one writer thread: the commands the store queues, group commit of
//! document batches (a trace folded on the caller's thread when its pieces came together, else
//! here from what is stored), index rows and rollup differences in the same transaction, and
//! the helper threads that checkpoint and free memory off the writer.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::super::{IngestDocument, StoreError, StoredGroup, StoredRule, TelemetryRow};
use crate::assembly::{DocFacts, Sample, TraceSummary, TraceView, fold_trace, replaces};
use crate::graph::Stats;

use roentgen_sdk::model::Segment;

use super::{now_seconds, reads::row_stats, retention::delete_before, settings};

/// Most documents grouped into one write transaction.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests, not documents); senders wait when it is full.
pub(super) const WRITER_QUEUE: usize = 256;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A trace folded from the pieces of one `put_documents` call, before it reaches the writer.
pub(super) struct Folded {
    view: TraceView,
    summary: String,
    samples: String,
}

/// Per trace id: its fold from one call's pieces, or `None` when pieces of that trace came in
/// several calls merged into one transaction (the writer folds those itself).
pub(super) type PreFolds = HashMap<String, Option<Folded>>;

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

pub(super) fn prefold(docs: &[IngestDocument]) -> Result<PreFolds, StoreError> {
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

pub(super) enum WriteCommand {
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

/// A committed batch's memory, freed off the writer thread.
type Garbage = (Vec<IngestDocument>, PreFolds);

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

pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<WriteCommand>,
    helpers: &Helpers,
) {
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

pub(super) fn write_transaction<T>(
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
            let _ = reply.send(write_transaction(conn, |tx| delete_before(tx, cutoff, max)));
        }
    }
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
