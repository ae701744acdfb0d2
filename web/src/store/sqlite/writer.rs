//! The SQLite store's one writer thread: the commands the store queues, group commit of
//! document batches (a new trace folded on the caller's thread when several of its pieces came
//! together, the others here from the facts held in memory or, for a late trace, from what is
//! stored), index rows and rollup differences in the same transaction, and the helper threads
//! that sync, checkpoint and free memory off the writer.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::super::live::{Admit, Found, LiveTrace, LiveTraces};
use super::super::{
    BatchReply, GroupCommit, IngestDocument, LINGER, StoreError, StoredGroup, StoredRule,
    TelemetryRow, Written, batch_answers,
};
use crate::assembly::{DocFacts, TraceSummary};

use super::durable::{OnDurable, Syncer, reply_when_durable};
use super::fold::{PreFolds, fold_in_parallel};
use super::fold_rows::{FoldSink, LastWrite};
use super::unfolded::{self, FOLD_CHUNK, Unfolded};
use super::{retention::delete_before, settings};

/// Most documents grouped into one write transaction.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests, not documents); senders wait when it is full.
pub(super) const WRITER_QUEUE: usize = 256;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Stores a document (`trace_id, id, parent_id, subsegment, start_time, in_progress,
/// document`), replacing the one of the same id.
pub(super) const PUT_SEGMENT: &str =
    "INSERT INTO segments (trace_id, id, parent_id, subsegment, start_time, in_progress, document)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (trace_id, id) DO UPDATE SET
        parent_id = excluded.parent_id, subsegment = excluded.subsegment,
        start_time = excluded.start_time, in_progress = excluded.in_progress,
        document = excluded.document";

/// Runs [`PUT_SEGMENT`] for one document.
pub(super) fn put_segment(
    stmt: &mut rusqlite::Statement<'_>,
    d: &IngestDocument,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        d.trace_id,
        d.id,
        d.parent_id,
        d.subsegment,
        d.start_time,
        d.in_progress,
        d.document,
    ])
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
    /// Folds every trace whose fold waits (before a read).
    Fold(Reply<()>),
    /// Runs in a write transaction of its own and returns its answer, sent once durable
    /// (settings that need no more than that: alarm rules, alarm events, leases).
    Apply(Box<dyn FnOnce(&mut Connection) -> OnDurable + Send>),
}

/// A committed batch's memory and the live traces it evicted, freed off the writer thread.
type Garbage = (
    Vec<IngestDocument>,
    PreFolds,
    Vec<Box<LiveTrace<LastWrite>>>,
);

/// Work the writer hands off so that it can start on the next batch at once: the `fsync`
/// that makes its commits durable before they are answered (`durable.rs`), freeing a
/// committed batch's memory, and copying the WAL back into the database file (a passive
/// checkpoint, which never blocks the writer and does not touch durability: commits are
/// durable once in the WAL). Each falls back to the writer's own thread if its thread
/// could not start (without the sync thread, the writer commits with `synchronous = FULL`).
pub(super) struct Helpers {
    pub(super) sync: Option<Syncer>,
    garbage: Option<std::sync::mpsc::Sender<Garbage>>,
    pub(super) checkpoint: Option<std::sync::mpsc::SyncSender<()>>,
    /// Set by the checkpoint thread once it copied the WAL back, to the bytes of frames the
    /// WAL then held (at least 1); taken (reset to 0) by [`copy_the_tail`].
    copied: Arc<AtomicU64>,
}

impl Helpers {
    pub(super) fn start(path: &Path) -> Self {
        let sync = Syncer::start(path);
        let (garbage_tx, garbage_rx) = std::sync::mpsc::channel::<Garbage>();
        let garbage = std::thread::Builder::new()
            .name("roentgen-store-free".to_owned())
            .spawn(move || garbage_rx.into_iter().for_each(drop))
            .ok()
            .map(|_| garbage_tx);
        let copied = Arc::new(AtomicU64::new(0));
        let checkpoint = match Connection::open(path) {
            Ok(conn) => {
                // At most one request pending: commits during a checkpoint coalesce.
                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                let done = copied.clone();
                std::thread::Builder::new()
                    .name("roentgen-store-checkpoint".to_owned())
                    .spawn(move || {
                        let page: u64 = conn
                            .query_row("PRAGMA page_size", [], |r| r.get(0))
                            .unwrap_or(4096);
                        for () in rx {
                            // (busy, frames in the WAL, frames copied back)
                            match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                                r.get::<_, i64>(1)
                            }) {
                                Ok(frames) => {
                                    let frames = u64::try_from(frames).unwrap_or(0);
                                    done.store((frames * page).max(1), Ordering::Release);
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "background checkpoint failed")
                                }
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
            sync,
            garbage,
            checkpoint,
            copied,
        }
    }

    /// After the checkpoint thread copied the WAL back, copies back what was committed
    /// meanwhile, on the writer's thread between two batches: the WAL is then wholly in the
    /// database file, so the next commit writes it over from its start. Without this the
    /// WAL only grows while ingest goes on (the thread never catches up with a writer that
    /// keeps appending), and every commit writes to new blocks of the file.
    ///
    /// Only once the WAL holds [`TAIL_COPY_AT_BYTES`]: the copy fsyncs the WAL and the
    /// database file on the writer's thread, which holds up every request waiting for the
    /// writer. Done after every background checkpoint, it cost OTLP ingest about a tenth of
    /// its rate.
    fn copy_the_tail(&self, conn: &Connection) {
        if self.copied.swap(0, Ordering::AcqRel) < TAIL_COPY_AT_BYTES {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "copying the WAL's tail back failed; it grows until the next");
        }
    }

    /// Sends `answer` once the writer's commits so far are durable.
    fn when_durable(&self, answer: OnDurable) {
        match &self.sync {
            Some(sync) => sync.after_commit(answer),
            // Committed with `synchronous = FULL`: durable already.
            None => answer(Ok(())),
        }
    }
}

/// Document bytes committed before the WAL is copied back: a page written by many commits in
/// between (index, summary and rollup pages) is copied once, and the database file is fsynced
/// once, instead of after every commit.
pub(super) const CHECKPOINT_AFTER_BYTES: usize = 16 << 20;

/// WAL size from which the writer copies the WAL's tail back itself (see
/// [`Helpers::copy_the_tail`]): the WAL stays below about this and what one background
/// checkpoint's worth of commits adds.
pub(super) const TAIL_COPY_AT_BYTES: u64 = 128 << 20;

/// The writer's live traces.
pub(super) type Live = LiveTraces<LastWrite>;

/// The writer's state beside its connection: the traces it holds and those whose fold waits.
pub(super) struct WriterState {
    pub(super) live: Live,
    pub(super) unfolded: Unfolded,
}

pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<WriteCommand>,
    helpers: &Helpers,
    mut state: WriterState,
) {
    let mut since_checkpoint = 0;
    // Only to wait for more requests with a timeout (see `LINGER`, `FOLD_AFTER`).
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
    let mut group = GroupCommit::default();
    loop {
        let first = match (state.unfolded.deadline(), &timer) {
            (Some(due), Some(timer)) => {
                let due = tokio::time::Instant::from_std(due);
                match timer.block_on(async { tokio::time::timeout_at(due, rx.recv()).await }) {
                    Ok(cmd) => cmd,
                    Err(_) => {
                        fold_waiting(&mut conn, &mut state);
                        continue;
                    }
                }
            }
            _ => rx.blocking_recv(),
        };
        let Some(first) = first else {
            break;
        };
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
            answer(&mut conn, &docs, &mut folds, &mut state, replies, helpers);
            if state.unfolded.due(std::time::Instant::now()) {
                fold_waiting(&mut conn, &mut state);
            }
        }
        if let Some(c) = &helpers.checkpoint {
            since_checkpoint += docs.iter().map(|d| d.document.len()).sum::<usize>();
            if since_checkpoint >= CHECKPOINT_AFTER_BYTES && c.try_send(()).is_ok() {
                since_checkpoint = 0;
            }
            helpers.copy_the_tail(&conn);
        }
        if let Some(g) = &helpers.garbage {
            // A closed channel hands the batch back; it is then freed here.
            let _ = g.send((docs, folds, state.live.take_evicted()));
        }
        for cmd in others {
            match cmd {
                WriteCommand::Fold(reply) => {
                    let _ = reply.send(fold_all(&mut conn, &mut state));
                }
                cmd @ WriteCommand::DeleteBefore(..) => {
                    // Retention sees every committed document's trace folded.
                    let _ = fold_all(&mut conn, &mut state);
                    run_other(&mut conn, cmd, &mut state.live, helpers);
                }
                cmd => run_other(&mut conn, cmd, &mut state.live, helpers),
            }
        }
    }
    if let Err(e) = fold_all(&mut conn, &mut state) {
        tracing::error!(error = %e, "folding the waiting traces at stop failed; they are folded at the next start");
    }
    tracing::debug!("store writer stopped");
}

/// Folds every waiting trace, [`FOLD_CHUNK`] per transaction. A chunk that fails on a stored
/// document that cannot be read is folded again a trace at a time, so that such a trace
/// (logged; its mark stays, and it is tried again at the next start) holds back no other.
/// Any other failure keeps the traces waiting, to retry.
fn fold_all(conn: &mut Connection, state: &mut WriterState) -> Result<(), StoreError> {
    loop {
        let ids = state.unfolded.take(FOLD_CHUNK);
        if ids.is_empty() {
            return Ok(());
        }
        let result = fold_chunk(conn, state, &ids);
        state.unfolded.finished(ids.len());
        result?;
    }
}

/// Folds one chunk taken from the waiting traces (see [`fold_all`]); what must be retried
/// is given back to them.
fn fold_chunk(
    conn: &mut Connection,
    state: &mut WriterState,
    ids: &[String],
) -> Result<(), StoreError> {
    match fold_traces(conn, state, ids) {
        Ok(()) => Ok(()),
        Err(StoreError::Corrupt(_)) => {
            for (n, id) in ids.iter().enumerate() {
                match fold_traces(conn, state, std::slice::from_ref(id)) {
                    Ok(()) => {}
                    Err(e @ StoreError::Corrupt(_)) => tracing::error!(
                        trace_id = %id,
                        error = %e,
                        "cannot fold a trace: a stored document cannot be read; its \
                         documents are kept and it is tried again at the next start"
                    ),
                    Err(e) => {
                        state.unfolded.add(ids[n..].iter().cloned());
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            state.unfolded.add(ids.iter().cloned());
            Err(e)
        }
    }
}

/// Folds the waiting traces when due (logged, not returned: they are kept to retry).
fn fold_waiting(conn: &mut Connection, state: &mut WriterState) {
    if let Err(e) = fold_all(conn, state) {
        tracing::error!(error = %e, "folding waiting traces failed; retrying");
    }
}

/// Folds `ids` in one transaction; on failure they are left to be read back.
fn fold_traces(
    conn: &mut Connection,
    state: &mut WriterState,
    ids: &[String],
) -> Result<(), StoreError> {
    let mut taken = Vec::new();
    match write_transaction(conn, |tx| {
        fold_unfolded(tx, ids, &mut state.live, &mut taken)
    }) {
        Ok(()) => {
            for (trace_id, trace) in taken {
                state.live.put(trace_id, trace);
            }
            Ok(())
        }
        Err(e) => {
            // The traces taken out are dropped: read back next time.
            drop(taken);
            for id in ids {
                state.live.suspect(id.clone());
            }
            Err(e)
        }
    }
}

/// Writes one group-committed batch and answers each request with its own refusals, once
/// the batch is durable.
fn answer(
    conn: &mut Connection,
    docs: &[IngestDocument],
    folds: &mut PreFolds,
    state: &mut WriterState,
    replies: Vec<BatchReply>,
    helpers: &Helpers,
) {
    let (mut taken, mut marked) = (Vec::new(), Vec::new());
    let live = &mut state.live;
    let result = write_transaction(conn, |tx| {
        write_documents(tx, docs, folds, live, &mut taken, &mut marked)
    });
    let refused = match result {
        Ok(refused) => {
            for (trace_id, trace) in taken {
                live.put(trace_id, trace);
            }
            live.note_over_cap(refused.len());
            state.unfolded.add(marked);
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
    for (reply, answer) in batch_answers(docs, &refused, replies) {
        helpers.when_durable(reply_when_durable(reply, answer));
    }
}

pub(super) fn write_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // IMMEDIATE: the write lock is taken first (waiting for another process's writer, such
    // as a store being closed on the same file while it folds), so what `f` reads is what
    // it then writes over.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Runs `f` in a write transaction; its answer, for `reply` once durable.
fn in_transaction<T: Send + 'static>(
    conn: &mut Connection,
    reply: Reply<T>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> OnDurable {
    reply_when_durable(reply, write_transaction(conn, f))
}

fn run_other(conn: &mut Connection, cmd: WriteCommand, live: &mut Live, helpers: &Helpers) {
    let answer = match cmd {
        WriteCommand::Documents(..) | WriteCommand::Fold(..) => return,
        WriteCommand::Apply(f) => f(conn),
        WriteCommand::Ready(reply) => {
            // BEGIN IMMEDIATE takes the database's write lock; the rollback writes nothing.
            let _ = reply.send(
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map(drop)
                    .map_err(StoreError::from),
            );
            return;
        }
        WriteCommand::PutRule(rule, create, reply) => {
            in_transaction(conn, reply, |tx| settings::put_rule(tx, rule, create))
        }
        WriteCommand::DeleteRule(name, reply) => {
            in_transaction(conn, reply, |tx| settings::delete_rule(tx, name))
        }
        WriteCommand::PutGroup(group, create, reply) => {
            in_transaction(conn, reply, |tx| settings::put_group(tx, group, create))
        }
        WriteCommand::DeleteGroup(name, reply) => {
            in_transaction(conn, reply, |tx| settings::delete_group(tx, name))
        }
        WriteCommand::Telemetry(rows, reply) => {
            in_transaction(conn, reply, |tx| settings::put_telemetry(tx, rows))
        }
        WriteCommand::DeleteBefore(cutoff, max, reply) => {
            let deleted = write_transaction(conn, |tx| delete_before(tx, cutoff, max));
            if matches!(deleted, Ok(n) if n > 0) {
                live.forget_before(cutoff);
            }
            reply_when_durable(reply, deleted)
        }
    };
    helpers.when_durable(answer);
}

/// A late piece's trace as stored: its documents' facts (re-extracted from their text), its
/// summary and samples, and the summary's `rid` (if it was folded yet); `None` when nothing
/// of it is stored.
fn read_back(
    tx: &Transaction<'_>,
    trace_id: &str,
) -> Result<Option<Box<LiveTrace<LastWrite>>>, StoreError> {
    let old: Option<(i64, String, String)> = tx
        .prepare_cached("SELECT rid, summary, samples FROM traces WHERE trace_id = ?1")?
        .query_row([trace_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let mut stmt = tx.prepare_cached("SELECT id, document FROM segments WHERE trace_id = ?1")?;
    let rows = stmt.query_map([trace_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut docs = Vec::new();
    for row in rows {
        let (id, document) = row?;
        docs.push((id, DocFacts::of_stored(&document)?, document.len()));
    }
    // Documents whose fold waits have no summary yet.
    let Some((rid, summary, samples)) = old else {
        return Ok((!docs.is_empty()).then(|| Box::new(LiveTrace::from_stored(docs, None))));
    };
    let summary: TraceSummary = serde_json::from_str(&summary)?;
    let written = LastWrite::new(rid, &summary, serde_json::from_str(&samples)?);
    let mut trace = LiveTrace::from_stored(docs, Some(written));
    trace.start_time = Some(summary.start_time);
    Ok(Some(Box::new(trace)))
}

/// Writes a batch: each document the replacement rule and its trace's cap let in, marking
/// each touched trace unfolded (its fold waits, see `unfolded.rs`), except a new trace whose
/// every piece came in this call, folded by the caller and written now. The traces it touched
/// go to `taken`, to be put back among the live ones once the transaction commits, and the
/// ones marked to `marked`. Returns the indexes of the documents refused for their trace's cap.
fn write_documents(
    tx: &Transaction<'_>,
    docs: &[IngestDocument],
    folds: &mut PreFolds,
    live: &mut Live,
    taken: &mut Vec<(String, Box<LiveTrace<LastWrite>>)>,
    marked: &mut Vec<String>,
) -> Result<Vec<usize>, StoreError> {
    let mut by_trace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        by_trace.entry(&d.trace_id).or_default().push(i);
    }
    let limits = *live.limits();
    let mut refused = Vec::new();
    let mut upsert = tx.prepare_cached(PUT_SEGMENT)?;
    let mut mark = tx.prepare_cached(unfolded::MARK)?;
    let mut sink = FoldSink::new(tx)?;
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
                    put_segment(&mut upsert, d)?;
                    changed += 1;
                }
                Admit::Unchanged => {}
                Admit::OverCap => refused.push(*i),
            }
        }
        if changed > 0 {
            // A new trace whose every piece came in one call was folded by the caller.
            match folds.remove(trace_id).flatten() {
                Some(folded) if new && changed == idxs.len() => {
                    sink.write(trace_id, &mut trace, folded)?;
                }
                _ => {
                    mark.execute([trace_id])?;
                    marked.push(trace_id.to_owned());
                }
            }
        }
        if !trace.is_empty() {
            taken.push((trace_id.to_owned(), trace));
        }
    }
    sink.finish()?;
    Ok(refused)
}

/// Folds the traces `ids` (their documents committed, their folds waiting) from what the
/// writer holds, or from what is stored for those it no longer holds, writes each fold and
/// clears its mark. The traces go to `taken` as in [`write_documents`].
fn fold_unfolded(
    tx: &Transaction<'_>,
    ids: &[String],
    live: &mut Live,
    taken: &mut Vec<(String, Box<LiveTrace<LastWrite>>)>,
) -> Result<(), StoreError> {
    let mut clear = tx.prepare_cached(unfolded::CLEAR)?;
    for trace_id in ids {
        let trace = match live.take(trace_id) {
            Found::Live(t) => Some(t),
            Found::New | Found::Late => read_back(tx, trace_id)?,
        };
        clear.execute([trace_id])?;
        // Nothing stored: deleted by retention since.
        if let Some(trace) = trace {
            taken.push((trace_id.clone(), trace));
        }
    }
    let folds = fold_in_parallel(taken)?;
    let mut sink = FoldSink::new(tx)?;
    for ((trace_id, trace), folded) in taken.iter_mut().zip(folds) {
        sink.write(trace_id, trace, folded)?;
    }
    sink.finish()
}
