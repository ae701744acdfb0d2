//! The writer (a thread of its own, off the request runtime): queued document batches grouped
//! into one `RowBinary` insert, then each touched trace folded and the fold appended. A trace
//! is folded from the facts this writer holds in memory ([`LiveTraces`]) when the store holds
//! exactly those documents (one query of key columns per batch: another collector may have
//! written pieces of it), else from its facts read back. Also [`BulkRows`] (the same rows
//! encoded for a bulk load) and the day and fold-id helpers the rows carry.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::ClickhouseStore;
use super::connection::{Connection, IDS_PER_QUERY, id_list};
use super::rollups::{Stamps, stamp};
use super::rowbinary::RowBinary;
use super::schema::annotation_pair;
use crate::assembly::{AnnotationValue, DocFacts, TraceRollup, fold_refs, replaces};
use crate::graph::Histogram;
use crate::store::live::{Admit, Found, LiveTrace, LiveTraces};
use crate::store::{IngestDocument, StoreError, TelemetryRow, answer_batch};

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

/// The writer's live traces (no store handle: folds are appended, never updated in place).
pub(super) type Live = LiveTraces<()>;

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
) {
    let mut stamps = Stamps::default();
    while let Some((first, reply)) = rx.recv().await {
        let mut docs = first;
        // Each request's reply and where its documents end in `docs`.
        let mut replies = vec![(reply, docs.len())];
        while docs.len() < MAX_BATCH_DOCUMENTS {
            match rx.try_recv() {
                Ok((more, reply)) => {
                    docs.extend(more);
                    replies.push((reply, docs.len()));
                }
                Err(_) => break,
            }
        }
        let result = write_documents(&conn, &docs, &mut live, &mut stamps).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "ClickHouse write failed");
        }
        answer_batch(&docs, &result, replies);
    }
    tracing::debug!("ClickHouse writer stopped");
}

/// Folds one trace's documents (`facts`, one per document id) and appends its `traces` row
/// and `samples` rows; `counts` is `(documents, complete documents)`, which orders folds.
fn encode_fold(
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
    // More documents, then more complete ones: the fold that saw everything wins.
    let version = (counts.0 << 32) | counts.1.min(u64::from(u32::MAX));
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
    async fn insert(
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

/// Writes a batch: the documents the replacement rule and their trace's cap let in, then a
/// fold of every trace they changed. Returns the indexes of the documents refused for their
/// trace's cap; the traces go back among the live ones only once everything is inserted.
async fn write_documents(
    conn: &Connection,
    docs: &[IngestDocument],
    live: &mut Live,
    stamps: &mut Stamps,
) -> Result<Vec<usize>, StoreError> {
    let limits = *live.limits();
    let mut by_trace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        by_trace.entry(&d.trace_id).or_default().push(i);
    }
    let mut refused = Vec::new();
    let mut admitted: Vec<&IngestDocument> = Vec::new();
    // Traces this batch changed, as this writer knows them.
    let mut changed: BTreeMap<&str, Box<LiveTrace<()>>> = BTreeMap::new();
    let mut unchanged: Vec<(&str, Box<LiveTrace<()>>)> = Vec::new();
    for (trace_id, idxs) in by_trace {
        let mut trace = match live.take(trace_id) {
            Found::Live(t) => t,
            Found::New | Found::Late => Box::default(),
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
    if !admitted.is_empty() {
        let mut w = RowBinary::default();
        encode_documents(admitted.iter().copied(), &mut w)?;
        conn.insert("segments", w).await?;
        let mut rows = FoldRows::default();
        let read_back = fold_known(conn, &mut changed, &mut rows).await?;
        live.counters()
            .late
            .fetch_add(read_back.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for chunk in read_back.chunks(IDS_PER_QUERY) {
            for (trace_id, trace) in read_traces(conn, chunk).await? {
                let (total, complete) = (trace.len() as u64, trace.complete() as u64);
                encode_fold(&trace_id, &trace.facts(), (total, complete), &mut rows)?;
                if let Some(slot) = changed.get_mut(trace_id.as_str()) {
                    *slot = trace;
                }
            }
        }
        rows.insert(conn, Some(stamps)).await?;
    }
    for (trace_id, trace) in changed.into_iter().chain(unchanged) {
        live.put(trace_id.to_owned(), trace);
    }
    live.note_over_cap(refused.len());
    drop(live.take_evicted());
    Ok(refused)
}

/// Folds, from memory, each changed trace whose stored documents are exactly the ones this
/// writer holds (the same ids, as many complete); returns the others, to be read back.
async fn fold_known(
    conn: &Connection,
    changed: &mut BTreeMap<&str, Box<LiveTrace<()>>>,
    rows: &mut FoldRows,
) -> Result<Vec<String>, StoreError> {
    #[derive(Deserialize)]
    struct Stored {
        trace_id: String,
        n: u64,
        complete: u64,
    }
    let ids: Vec<String> = changed.keys().map(|id| (*id).to_owned()).collect();
    let mut read_back = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let stored: Vec<Stored> = conn
            .select(&format!(
                "SELECT trace_id, uniqExact(id) AS n, uniqExactIf(id, in_progress = 0) AS complete
                 FROM segments WHERE trace_id IN ({}) GROUP BY trace_id",
                id_list(chunk)
            ))
            .await?;
        let stored: HashMap<String, (u64, u64)> = stored
            .into_iter()
            .map(|s| (s.trace_id, (s.n, s.complete)))
            .collect();
        for id in chunk {
            let Some(trace) = changed.get(id.as_str()) else {
                continue;
            };
            let held = (trace.len() as u64, trace.complete() as u64);
            if stored.get(id) == Some(&held) {
                encode_fold(id, &trace.facts(), held, rows)?;
            } else {
                read_back.push(id.clone());
            }
        }
    }
    Ok(read_back)
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
