//! The writer (a thread of its own, off the request runtime): queued document batches grouped
//! into one `RowBinary` insert, then each touched trace folded from the facts this writer
//! holds in memory ([`LiveTraces`]) and the fold appended, with no query to the store first.
//! A trace the writer holds only part of (late: begun before it started, or evicted) is
//! folded from what it holds and always checked by the reconciler, as are the traces another
//! collector may also write (see `reconcile.rs`). Also [`BulkRows`] (the same rows encoded
//! for a bulk load) and the day and fold-id helpers the rows carry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::ClickhouseStore;
use super::connection::Connection;
use super::reconcile::{Heartbeat, Pending};
use super::rollups::{Stamps, stamp};
use super::rowbinary::RowBinary;
use super::schema::annotation_pair;
use crate::assembly::{AnnotationValue, DocFacts, TraceRollup, fold_refs, replaces};
use crate::graph::Histogram;
use crate::store::live::{Admit, Found, LiveTrace, LiveTraces};
use crate::store::{GroupCommit, IngestDocument, LINGER, StoreError, TelemetryRow, answer_batch};

/// Most documents grouped into one insert.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests); senders wait when it is full.
pub(super) const WRITER_QUEUE: usize = 256;
/// The last day a ClickHouse `Date` holds (2105-12-31); later dates parse as zero.
pub(super) const LAST_DAY: i64 = 49_672;

/// Most seconds a piece may start before its trace id's epoch (clocks of different hosts).
const ID_EPOCH_AHEAD: f64 = 3_600.0;
/// Most seconds a piece may start after its trace id's epoch and the id still say its day.
const ID_EPOCH_BEHIND: f64 = 86_400.0;

/// Day number (partition) of a trace's piece that starts at `start` seconds: the epoch in the
/// trace id when that is plausible for the piece (X-Ray ids are minted when the trace starts:
/// at most a day before, an hour after), else the day of `start` itself. OpenTelemetry's W3C
/// ids keep their 128 bits as `1-xxxxxxxx-…`, and their first 32 bits are random: such a
/// trace is kept in the days it happened, not in a random year. An empty id gives the day of
/// `start`.
pub(super) fn trace_day(trace_id: &str, start: f64) -> u16 {
    let epoch = trace_id
        .get(2..10)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(|s| s as f64)
        .filter(|e| (start - ID_EPOCH_BEHIND..=start + ID_EPOCH_AHEAD).contains(e));
    let secs = epoch.unwrap_or(start);
    (secs.max(0.0) / 86_400.0).floor().min(f64::from(u16::MAX)) as u16
}

pub(super) fn day_text(day: u16) -> String {
    let (y, m, d) = roentgen_sdk::model::calendar::civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

pub(super) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A fold (or rollup computation) id unique across collectors: clock, process and a counter, mixed.
pub(super) fn fold_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x =
        now_nanos() ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

pub(super) type Reply = oneshot::Sender<Result<crate::store::Written, StoreError>>;

/// What the writer knows of a trace it holds: the whole of it, or only part (its folds are
/// checked by the reconciler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    Whole,
    Partial,
}

/// The writer's live traces (folds are appended, never updated in place).
pub(super) type Live = LiveTraces<Held>;

impl ClickhouseStore {
    /// Appends telemetry records (`PutTelemetryRecords`), partitioned by the day they arrived.
    pub(super) async fn write_telemetry(&self, rows: Vec<TelemetryRow>) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        for r in &rows {
            w.u16(trace_day("", r.received_at))
                .f64(r.received_at)
                .opt_string(r.hostname.as_deref())
                .opt_string(r.instance_id.as_deref())
                .string(&r.record);
        }
        self.conn.insert("telemetry", w).await
    }
}

/// Groups queued document batches into one insert and fold, then answers each request.
pub(super) async fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<(Vec<IngestDocument>, Reply)>,
    mut live: Live,
    pending: Arc<Pending>,
) {
    let mut stamps = Stamps::default();
    let mut heartbeat = Heartbeat::new(pending.writer());
    let mut group = GroupCommit::default();
    while let Some((first, reply)) = rx.recv().await {
        let linger_until = tokio::time::Instant::now() + LINGER;
        let mut docs = first;
        // Each request's reply and where its documents end in `docs`.
        let mut replies = vec![(reply, docs.len())];
        while docs.len() < MAX_BATCH_DOCUMENTS {
            let next = match rx.try_recv() {
                Ok(next) => Some(next),
                Err(mpsc::error::TryRecvError::Empty)
                    if group.lingers(replies.len(), docs.len()) =>
                {
                    tokio::time::timeout_at(linger_until, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some((more, reply)) = next else {
                break;
            };
            docs.extend(more);
            replies.push((reply, docs.len()));
        }
        group.took(replies.len());
        let mut writer = Writer {
            conn: &conn,
            live: &mut live,
            stamps: &mut stamps,
            heartbeat: &mut heartbeat,
            pending: &pending,
        };
        let result = writer.write(&docs).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "ClickHouse write failed");
        }
        answer_batch(&docs, &result, replies);
    }
    tracing::debug!("ClickHouse writer stopped");
}

/// The version of a fold that saw `counts` (documents, complete documents): more documents,
/// then more complete ones, so the fold that saw everything wins.
pub(super) fn fold_version(counts: (u64, u64)) -> u64 {
    (counts.0 << 32) | counts.1.min(u64::from(u32::MAX))
}

/// Folds one trace's documents (`facts`, one per document id) and appends its `traces` row
/// and `samples` rows; `counts` is `(documents, complete documents)`, which orders folds.
pub(super) fn encode_fold(
    trace_id: &str,
    facts: &[&DocFacts],
    counts: (u64, u64),
    rows: &mut FoldRows,
) -> Result<(), StoreError> {
    let FoldRows {
        summaries,
        samples,
        minutes,
    } = rows;
    let view = fold_refs(trace_id, facts);
    // The day of the trace's first piece known (see `trace_day`): every fold of a trace
    // shares it while no earlier piece turns up.
    let day = trace_day(trace_id, view.summary.start_time);
    let version = fold_version(counts);
    let fold = fold_id();
    let s = &view.summary;
    let numbers = s.annotations.iter().map(|a| match a.value {
        AnnotationValue::Number(n) => n,
        _ => f64::NAN,
    });
    summaries
        .u16(day)
        .string(trace_id)
        .u64(version)
        .u64(fold)
        .f64(s.start_time)
        .opt_f64(s.end_time)
        .opt_f64(s.duration)
        .opt_f64(s.response_time)
        .u8(u8::from(s.has_fault))
        .u8(u8::from(s.has_error))
        .u8(u8::from(s.has_throttle))
        .u8(u8::from(s.is_partial))
        .opt_u16(s.http.as_ref().and_then(|h| h.status))
        .strings(s.services.iter().map(|v| v.key.name.as_str()))
        .strings(s.annotations.iter().map(|a| a.key.as_str()))
        .strings(
            s.annotations
                .iter()
                .map(|a| a.value.index_text())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
        .f64s(numbers)
        .string(&serde_json::to_string(s)?)
        .string(&serde_json::to_string(&TraceRollup::of(&view.samples))?)
        .strings(
            s.annotations
                .iter()
                .map(|a| annotation_pair(&a.key, &a.value.index_text()))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
        .string(&crate::analytics::Facets::encode(s));
    for sample in &view.samples {
        minutes.insert(sample.minute);
        samples
            .u16(day)
            .string(trace_id)
            .u64(version)
            .u64(fold)
            .i64(sample.minute)
            .string(&sample.src)
            .string(&sample.dst)
            .u8(match sample.outcome {
                crate::assembly::Outcome::Ok => 0,
                crate::assembly::Outcome::Error => 1,
                crate::assembly::Outcome::Throttle => 2,
                crate::assembly::Outcome::Fault => 3,
            })
            .f64(sample.response_time)
            .i32(Histogram::bucket(sample.response_time));
    }
    Ok(())
}

/// The rows of folds: summaries (`traces`), their samples, and the minutes those touch.
#[derive(Debug, Default)]
pub(super) struct FoldRows {
    summaries: RowBinary,
    samples: RowBinary,
    minutes: BTreeSet<i64>,
}

/// Appends the `segments` rows of `docs`, each in its day (see [`trace_day`]).
fn encode_documents<'a>(
    docs: impl IntoIterator<Item = &'a IngestDocument>,
    w: &mut RowBinary,
) -> Result<(), StoreError> {
    for d in docs {
        w.u16(trace_day(&d.trace_id, d.start_time))
            .string(&d.trace_id)
            .string(&d.id)
            .opt_string(d.parent_id.as_deref())
            .u8(u8::from(d.subsegment))
            .f64(d.start_time)
            .u8(u8::from(d.in_progress))
            .u8(u8::from(!d.in_progress))
            .string(&d.document);
    }
    Ok(())
}

/// Documents per trace and document id, the complete version of a document when there is one.
fn pieces_by_trace(docs: &[IngestDocument]) -> BTreeMap<&str, BTreeMap<&str, &IngestDocument>> {
    let mut by_trace: BTreeMap<&str, BTreeMap<&str, &IngestDocument>> = BTreeMap::new();
    for d in docs {
        let slot = by_trace.entry(&d.trace_id).or_default();
        match slot.get(d.id.as_str()) {
            Some(kept) if !replaces(kept.in_progress, d.in_progress) => {}
            _ => {
                slot.insert(&d.id, d);
            }
        }
    }
    by_trace
}

/// Folds one trace from documents held in memory (see [`pieces_by_trace`]).
fn fold_pieces(
    trace_id: &str,
    pieces: &BTreeMap<&str, &IngestDocument>,
    rows: &mut FoldRows,
) -> Result<(), StoreError> {
    let complete = pieces.values().filter(|d| !d.in_progress).count() as u64;
    let total = pieces.len() as u64;
    let facts: Vec<&DocFacts> = pieces.values().map(|d| d.facts.as_ref()).collect();
    encode_fold(trace_id, &facts, (total, complete), rows)
}

/// Rows for a bulk load, encoded off the async runtime (see [`BulkRows::encode`]).
#[derive(Debug, Default)]
pub struct BulkRows {
    pub(super) segments: RowBinary,
    pub(super) folds: FoldRows,
    documents: usize,
}

impl BulkRows {
    /// Encodes documents of traces that are whole in `docs` (no document of these traces is
    /// stored yet or arrives later), folded in memory instead of read back: the rows
    /// [`ClickhouseStore::put_documents`] would end up with, for loading a dataset fast.
    pub fn encode(docs: &[IngestDocument]) -> Result<Self, StoreError> {
        let mut out = Self {
            documents: docs.len(),
            ..Self::default()
        };
        encode_documents(docs, &mut out.segments)?;
        for (trace_id, pieces) in pieces_by_trace(docs) {
            fold_pieces(trace_id, &pieces, &mut out.folds)?;
        }
        Ok(out)
    }

    /// Documents encoded.
    pub fn documents(&self) -> usize {
        self.documents
    }

    /// Inserts the rows (stamps and samples before summaries, as the writer does).
    pub(super) async fn insert(self, conn: &Connection) -> Result<(), StoreError> {
        conn.insert("segments", self.segments).await?;
        self.folds.insert(conn, None).await
    }
}

impl FoldRows {
    /// Stamps the minutes (through the writer's `stamps` when given), then inserts samples
    /// and then summaries: a fold is visible (its `traces` row) only once its samples are
    /// stored, and its minutes carry a stamp before its samples do.
    pub(super) async fn insert(
        self,
        conn: &Connection,
        stamps: Option<&mut Stamps>,
    ) -> Result<(), StoreError> {
        match stamps {
            Some(stamps) => {
                stamps.before_write(conn, &self.minutes).await?;
                conn.insert("samples", self.samples).await?;
                stamps.after_write(conn, &self.minutes).await?;
            }
            None => {
                stamp(conn, &self.minutes.iter().copied().collect::<Vec<_>>()).await?;
                conn.insert("samples", self.samples).await?;
            }
        }
        conn.insert("traces", self.summaries).await
    }
}

/// What one batch's write works with.
struct Writer<'a> {
    conn: &'a Connection,
    live: &'a mut Live,
    stamps: &'a mut Stamps,
    heartbeat: &'a mut Heartbeat,
    pending: &'a Pending,
}

impl Writer<'_> {
    /// Writes a batch: the documents the replacement rule and their trace's cap let in, then
    /// a fold of every changed trace as held; every changed trace is then queued for the
    /// reconciler. Returns the indexes of the documents refused for their trace's cap. The
    /// traces go back among the live ones once everything is inserted; after a failure they
    /// become suspects (their next piece is late) and are queued all the same.
    async fn write(&mut self, docs: &[IngestDocument]) -> Result<Vec<usize>, StoreError> {
        let limits = *self.live.limits();
        let mut by_trace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, d) in docs.iter().enumerate() {
            by_trace.entry(&d.trace_id).or_default().push(i);
        }
        let mut refused = Vec::new();
        let mut admitted: Vec<&IngestDocument> = Vec::new();
        // Traces this batch changed, as this writer knows them.
        let mut changed: BTreeMap<&str, Box<LiveTrace<Held>>> = BTreeMap::new();
        let mut unchanged: Vec<(&str, Box<LiveTrace<Held>>)> = Vec::new();
        for (trace_id, idxs) in by_trace {
            let mut trace = match self.live.take(trace_id) {
                Found::Live(t) => t,
                Found::New => Box::default(),
                Found::Late => {
                    let mut t = Box::<LiveTrace<Held>>::default();
                    t.written = Some(Held::Partial);
                    t
                }
            };
            let before = admitted.len();
            for i in idxs {
                let d = &docs[i];
                match trace.admit(&d.id, &d.facts, d.document.len(), &limits) {
                    Admit::Changed => admitted.push(d),
                    Admit::Unchanged => {}
                    Admit::OverCap => refused.push(i),
                }
            }
            if admitted.len() > before {
                changed.insert(trace_id, trace);
            } else if !trace.is_empty() {
                unchanged.push((trace_id, trace));
            }
        }
        let result = if admitted.is_empty() {
            Ok(())
        } else {
            self.insert(&admitted, &mut changed).await
        };
        // After a failure the store may hold documents no fold saw: always checked.
        let failed = result.is_err();
        self.pending.add(
            changed
                .iter()
                .map(|(id, t)| (*id, failed || t.written != Some(Held::Whole))),
        );
        match &result {
            Ok(()) => {
                for (trace_id, trace) in changed.into_iter().chain(unchanged) {
                    self.live.put(trace_id.to_owned(), trace);
                }
            }
            Err(_) => {
                for trace_id in changed.into_keys() {
                    self.live.suspect(trace_id.to_owned());
                }
                for (trace_id, trace) in unchanged {
                    self.live.put(trace_id.to_owned(), trace);
                }
            }
        }
        self.live.note_over_cap(refused.len());
        drop(self.live.take_evicted());
        result.map(|()| refused)
    }

    /// Inserts the admitted documents, then the folds of the changed traces: whole, or (for
    /// a trace held in part) what the writer holds, which the reconciler checks.
    async fn insert(
        &mut self,
        admitted: &[&IngestDocument],
        changed: &mut BTreeMap<&str, Box<LiveTrace<Held>>>,
    ) -> Result<(), StoreError> {
        self.heartbeat.beat(self.conn).await?;
        let mut w = RowBinary::default();
        encode_documents(admitted.iter().copied(), &mut w)?;
        self.conn.insert("segments", w).await?;
        let mut rows = FoldRows::default();
        for (trace_id, trace) in changed.iter() {
            let counts = (trace.len() as u64, trace.complete() as u64);
            encode_fold(trace_id, &trace.facts(), counts, &mut rows)?;
        }
        rows.insert(self.conn, Some(self.stamps)).await?;
        for trace in changed.values_mut() {
            trace.written.get_or_insert(Held::Whole);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(18_262), "2020-01-01");
        assert_eq!(day_text(LAST_DAY as u16), "2105-12-31");
        // 2020-01-01T00:00:00Z in the id, pieces starting that day or within an hour before.
        let id = "1-5e0be100-000000000000000000000000";
        assert_eq!(trace_day(id, 1_577_836_800.0 + 5_000.0), 18_262);
        assert_eq!(trace_day(id, 1_577_836_800.0 - 600.0), 18_262);
        assert_eq!(trace_day("bad", 86_400.0 * 3.5), 3);
        assert_eq!(trace_day("", 86_400.0 * 3.5), 3);
        // A W3C id whose first bits say 2091 (or 1990), for a piece of 2026-12-06: that day.
        let started = 1_796_515_200.0 + 3_600.0;
        assert_eq!(
            trace_day("1-f0000000-000000000000000000000000", started),
            20_793
        );
        assert_eq!(
            trace_day("1-26000000-000000000000000000000000", started),
            20_793
        );
    }
}
