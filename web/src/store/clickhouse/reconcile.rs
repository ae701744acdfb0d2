//! The reconciler: what keeps a trace's newest fold whole without a read on the write path.
//!
//! A writer folds each trace it touched from the documents it holds in memory, and queues the
//! trace here. Its fold is the whole trace unless the store holds pieces the writer never
//! saw: pieces written by another collector, or before this one started, or evicted from its
//! memory. The writer knows about the last two (its live traces call them late, and every
//! fold of such a trace is checked); for the first, every writer stamps `writers` (at most every
//! few seconds while it writes), and a trace is checked only while another writer has stamped
//! within [`SKEW_SECS`] of the trace's id-epoch. A collector alone on its store checks nothing.
//!
//! A check compares the newest fold's version (documents and complete documents it saw) with
//! the store's count of the trace's documents, in two queries per 2,000 traces; a trace whose
//! newest fold saw fewer is read back (at most [`READ_BYTES`] of documents at a time), folded
//! again and its fold appended, with a version that wins. Rounds run every [`RECONCILE_EVERY`], off the writer and the request runtime; a round
//! that fails keeps its traces for the next. Why this converges: a writer stamps before it
//! inserts and queues a trace after its fold is in, and a round reads the stamps after that,
//! so of two writers of a trace, the one whose round comes last sees the other's stamp and
//! finds every document of both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::connection::{Connection, IDS_PER_QUERY, id_list};
use super::writer::{FoldRows, encode_fold, fold_version};
use crate::assembly::{DocFacts, replaces};
use crate::store::live::{LiveCounters, LiveTrace, id_epoch};
use crate::store::{StoreError, now_seconds};

/// How often queued traces are reconciled.
pub(super) const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// A writer stamps again once its last stamp is this old.
const BEAT_EVERY: Duration = Duration::from_millis(2_500);
/// How far apart another writer's stamp and a trace's id-epoch may be and the other writer
/// still hold pieces of it: an hour of clock skew between the client that minted the id and
/// the collectors (a piece may start that long before its id's epoch), plus a margin for a
/// slow insert after the last stamp.
const SKEW_SECS: u32 = 3_600 + 300;

/// Most traces queued for the reconciler (about 100 bytes each).
const MAX_PENDING: usize = 1_000_000;
/// Most stored document bytes read back at once (a trace larger than this, up to the
/// per-trace cap, is read alone): what bounds the reconciler's memory.
const READ_BYTES: u64 = 64 << 20;

/// A writer's identity and its stamps in `writers`.
#[derive(Debug)]
pub(super) struct Heartbeat {
    writer: u64,
    last: Option<Instant>,
}

impl Heartbeat {
    pub(super) fn new(writer: u64) -> Self {
        Self { writer, last: None }
    }

    /// Stamps `writers` with the server's clock unless the last stamp is younger than
    /// [`BEAT_EVERY`]; call before inserting documents.
    pub(super) async fn beat(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.last.is_some_and(|at| at.elapsed() < BEAT_EVERY) {
            return Ok(());
        }
        conn.execute(&format!(
            "INSERT INTO writers VALUES ({}, toUInt32(now()))",
            self.writer
        ))
        .await?;
        self.last = Some(Instant::now());
        Ok(())
    }
}

/// Traces queued for the reconciler: `true` for a trace whose writer holds only part of it
/// (checked whatever the stamps say), `false` for one to check only while another writer is
/// about.
#[derive(Debug)]
pub(super) struct Pending {
    writer: u64,
    state: Mutex<Queue>,
    /// Held through a round: one round at a time, so a round asked for ends after the
    /// one running.
    rounds: tokio::sync::Mutex<()>,
    counters: std::sync::Arc<LiveCounters>,
}

#[derive(Debug, Default)]
struct Queue {
    queued: HashMap<String, bool>,
    in_round: usize,
}

impl Pending {
    pub(super) fn new(writer: u64, counters: std::sync::Arc<LiveCounters>) -> Self {
        Self {
            writer,
            state: Mutex::new(Queue::default()),
            rounds: tokio::sync::Mutex::new(()),
            counters,
        }
    }

    /// The writer whose traces these are.
    pub(super) fn writer(&self) -> u64 {
        self.writer
    }

    /// Queues traces (`partial`: the writer holds only part of it). Past [`MAX_PENDING`]
    /// traces (a store that has refused rounds for long) further ones are dropped and logged;
    /// a later piece of such a trace queues it again.
    pub(super) fn add<'a>(&self, traces: impl IntoIterator<Item = (&'a str, bool)>) {
        let mut q = self.lock();
        let mut dropped = 0usize;
        for (id, partial) in traces {
            let full = q.queued.len() >= MAX_PENDING;
            match q.queued.get_mut(id) {
                Some(p) => *p |= partial,
                None if full => dropped += 1,
                None => {
                    q.queued.insert(id.to_owned(), partial);
                }
            }
        }
        self.publish(&q);
        drop(q);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max = MAX_PENDING,
                "traces not queued for the reconciler: its queue is full"
            );
        }
    }

    fn take(&self) -> HashMap<String, bool> {
        let mut q = self.lock();
        let taken = std::mem::take(&mut q.queued);
        q.in_round = taken.len();
        self.publish(&q);
        taken
    }

    /// Ends a round; a failed one gives its traces back.
    fn end_round(&self, failed: Option<HashMap<String, bool>>) {
        let mut q = self.lock();
        q.in_round = 0;
        for (id, partial) in failed.into_iter().flatten() {
            *q.queued.entry(id).or_default() |= partial;
        }
        self.publish(&q);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding it leaves a queue that is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, q: &Queue) {
        self.counters
            .reconcile_pending
            .store((q.queued.len() + q.in_round) as u64, Ordering::Relaxed);
    }
}

/// Runs a round every [`RECONCILE_EVERY`] until `stop` is dropped.
pub(super) async fn reconcile_loop(
    conn: Connection,
    pending: std::sync::Arc<Pending>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
        if let Err(e) = round(&conn, &pending).await {
            tracing::warn!(error = %e, "reconciling traces failed; retrying on the next round");
        }
    }
    tracing::debug!("ClickHouse reconciler stopped");
}

/// One round over the traces queued so far: returns how many were folded again.
pub(super) async fn round(conn: &Connection, pending: &Pending) -> Result<usize, StoreError> {
    let _round = pending.rounds.lock().await;
    let queued = pending.take();
    if queued.is_empty() {
        pending.end_round(None);
        return Ok(0);
    }
    match reconcile(conn, pending, &queued).await {
        Ok(n) => {
            pending.end_round(None);
            Ok(n)
        }
        Err(e) => {
            pending
                .counters
                .reconcile_failures
                .fetch_add(1, Ordering::Relaxed);
            pending.end_round(Some(queued));
            Err(e)
        }
    }
}

async fn reconcile(
    conn: &Connection,
    pending: &Pending,
    queued: &HashMap<String, bool>,
) -> Result<usize, StoreError> {
    let others = newest_other_stamp(conn, pending.writer).await?;
    let now = now_seconds() as u32;
    let check: Vec<String> = queued
        .iter()
        .filter(|(id, partial)| **partial || others.is_some_and(|at| shared(id, at, now)))
        .map(|(id, _)| id.clone())
        .collect();
    pending
        .counters
        .reconcile_checked
        .fetch_add(check.len() as u64, Ordering::Relaxed);
    let mut refolded = 0;
    for chunk in check.chunks(IDS_PER_QUERY) {
        let stale = stale(conn, chunk).await?;
        if stale.is_empty() {
            continue;
        }
        for group in by_bytes(&stale, READ_BYTES) {
            let ids: Vec<String> = group.iter().map(|(id, _)| id.clone()).collect();
            let mut rows = FoldRows::default();
            for (trace_id, trace) in read_traces(conn, &ids).await? {
                let counts = (trace.len() as u64, trace.complete() as u64);
                encode_fold(&trace_id, &trace.facts(), counts, &mut rows)?;
                refolded += 1;
            }
            rows.insert(conn, None).await?;
        }
    }
    pending
        .counters
        .reconciled
        .fetch_add(refolded as u64, Ordering::Relaxed);
    if refolded > 0 {
        tracing::debug!(
            checked = check.len(),
            refolded,
            "traces folded again from the store"
        );
    }
    Ok(refolded)
}

/// Whether another writer that stamped at `stamp` may hold pieces of `trace_id` (see
/// [`SKEW_SECS`]); an id-epoch ahead of the clock (an id that is no epoch) counts as now.
fn shared(trace_id: &str, stamp: u32, now: u32) -> bool {
    stamp.saturating_add(SKEW_SECS) >= id_epoch(trace_id).min(now)
}

/// The newest stamp of a writer other than `me`, if any.
async fn newest_other_stamp(conn: &Connection, me: u64) -> Result<Option<u32>, StoreError> {
    #[derive(Deserialize)]
    struct Newest {
        at: u32,
        n: u64,
    }
    let rows: Vec<Newest> = conn
        .select(&format!(
            "SELECT max(at) AS at, count() AS n FROM writers WHERE writer != {me}"
        ))
        .await?;
    Ok(rows.first().filter(|r| r.n > 0).map(|r| r.at))
}

/// Of `ids`, the traces whose newest fold saw fewer documents (or fewer complete ones) than
/// the store holds, with the bytes of their stored documents.
async fn stale(conn: &Connection, ids: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
    #[derive(Deserialize)]
    struct Stored {
        trace_id: String,
        n: u64,
        complete: u64,
        bytes: u64,
    }
    #[derive(Deserialize)]
    struct Folded {
        trace_id: String,
        version: u64,
    }
    let list = id_list(ids);
    let stored: Vec<Stored> = conn
        .select(&format!(
            "SELECT trace_id, uniqExact(id) AS n, uniqExactIf(id, in_progress = 0) AS complete,
                    sum(length(document)) AS bytes
             FROM segments WHERE trace_id IN ({list}) GROUP BY trace_id"
        ))
        .await?;
    let folded: HashMap<String, u64> = conn
        .select::<Folded>(&format!(
            "SELECT trace_id, max(version) AS version FROM traces
             WHERE trace_id IN ({list}) GROUP BY trace_id"
        ))
        .await?
        .into_iter()
        .map(|f| (f.trace_id, f.version))
        .collect();
    Ok(stored
        .into_iter()
        .filter(|s| folded.get(&s.trace_id) != Some(&fold_version((s.n, s.complete))))
        .map(|s| (s.trace_id, s.bytes))
        .collect())
}

/// `traces` (id and bytes) in consecutive groups of at most `budget` bytes each; a trace
/// larger than the budget makes a group of its own.
fn by_bytes(traces: &[(String, u64)], budget: u64) -> Vec<&[(String, u64)]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, (_, b)) in traces.iter().enumerate() {
        if i > start && bytes.saturating_add(*b) > budget {
            groups.push(&traces[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(*b);
    }
    if start < traces.len() {
        groups.push(&traces[start..]);
    }
    groups
}

/// Every stored document of these traces, rebuilt as live traces (per document id, the
/// complete version when there is one; facts extracted again from the text, as SQLite does:
/// storing them beside each document doubled what inserts and merges write).
async fn read_traces(
    conn: &Connection,
    ids: &[String],
) -> Result<Vec<(String, Box<LiveTrace<()>>)>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        trace_id: String,
        id: String,
        in_progress: u8,
        document: String,
    }
    let rows: Vec<Row> = conn
        .select(&format!(
            "SELECT trace_id, id, in_progress, document FROM segments WHERE trace_id IN ({})",
            id_list(ids)
        ))
        .await?;
    let mut by_trace: BTreeMap<String, BTreeMap<String, Row>> = BTreeMap::new();
    for r in rows {
        let slot = by_trace.entry(r.trace_id.clone()).or_default();
        let keep = match slot.get(&r.id) {
            Some(kept) => replaces(kept.in_progress == 1, r.in_progress == 1),
            None => true,
        };
        if keep {
            slot.insert(r.id.clone(), r);
        }
    }
    let mut out = Vec::with_capacity(by_trace.len());
    for (trace_id, rows) in by_trace {
        let docs = rows
            .into_values()
            .map(|r| {
                let bytes = r.document.len();
                Ok((r.id, DocFacts::of_stored(&r.document)?, bytes))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.push((trace_id, Box::new(LiveTrace::from_stored(docs, None))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_is_grouped_under_the_byte_budget() {
        let traces: Vec<(String, u64)> = [40, 30, 50, 200, 10, 10, 0]
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("t{i}"), *b))
            .collect();
        let sizes: Vec<Vec<u64>> = by_bytes(&traces, 100)
            .iter()
            .map(|g| g.iter().map(|(_, b)| *b).collect())
            .collect();
        assert_eq!(
            sizes,
            vec![vec![40, 30], vec![50], vec![200], vec![10, 10, 0]]
        );
        assert!(by_bytes(&[], 100).is_empty());
    }

    #[test]
    fn the_queue_is_bounded_and_keeps_what_it_holds() {
        let counters = std::sync::Arc::new(LiveCounters::default());
        let pending = Pending::new(1, counters.clone());
        let ids: Vec<String> = (0..MAX_PENDING + 10).map(|n| format!("t{n}")).collect();
        pending.add(ids.iter().map(|id| (id.as_str(), false)));
        // A trace already queued is still marked partial when the queue is full.
        pending.add([("t0", true), ("new", true)]);
        let taken = pending.take();
        assert_eq!(taken.len(), MAX_PENDING);
        assert_eq!(taken.get("t0"), Some(&true));
        assert!(!taken.contains_key("new"));
        assert_eq!(
            counters.reconcile_pending.load(Ordering::Relaxed),
            MAX_PENDING as u64,
            "in the round"
        );
        pending.end_round(Some(taken));
        assert_eq!(
            pending.take().len(),
            MAX_PENDING,
            "a failed round gives its traces back"
        );
    }

    #[test]
    fn a_trace_is_shared_while_another_writer_stamped_within_the_skew_of_its_epoch() {
        let now = 1_800_000_000;
        let id = |epoch: u32| format!("1-{epoch:08x}-000000000000000000000000");
        // Another writer stamped a minute ago: traces of the last hours are shared.
        assert!(shared(&id(now - 30), now - 60, now));
        assert!(shared(&id(now - 2 * 3_600), now - 60, now));
        // It stopped two hours ago: a trace begun since cannot hold its pieces...
        assert!(!shared(&id(now - 60), now - 2 * 3_600, now));
        // ...unless the trace's id says it began before (a trace that started long ago).
        assert!(shared(&id(now - 3 * 3_600), now - 2 * 3_600, now));
        // An id-epoch ahead of the clock (no epoch at all) counts as now.
        assert!(shared(&id(u32::MAX), now - 60, now));
        assert!(!shared(&id(u32::MAX), now - 2 * 3_600, now));
    }
}
