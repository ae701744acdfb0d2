//! The writer task: queued document batches grouped into one `RowBinary` insert, then each
//! touched trace folded (from memory when its stored rows are exactly the ones just written,
//! else from its documents read back) and the fold appended; also [`BulkRows`] (the same rows
//! encoded for a bulk load) and the day and fold-id helpers the rows carry.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::ClickhouseStore;
use super::connection::{Connection, IDS_PER_QUERY, id_list};
use super::rowbinary::RowBinary;
use crate::assembly::{AnnotationValue, DocFacts, fold_trace, replaces};
use crate::graph::Histogram;
use crate::store::{IngestDocument, StoreError, TelemetryRow};

/// Most documents grouped into one insert.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests); senders wait when it is full.
pub(super) const WRITER_QUEUE: usize = 256;
/// The last day a ClickHouse `Date` holds (2105-12-31); later dates parse as zero.
pub(super) const LAST_DAY: i64 = 49_672;

/// Day number (partition) of a trace: the epoch in its id, else `fallback` seconds.
pub(super) fn trace_day(trace_id: &str, fallback: f64) -> u16 {
    let secs = trace_id
        .get(2..10)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(|s| s as f64)
        .unwrap_or(fallback);
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

/// A fold id unique across collectors: clock, process and a counter, mixed.
fn fold_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x =
        now_nanos() ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;

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
) {
    while let Some((first, reply)) = rx.recv().await {
        let mut docs = first;
        let mut replies = vec![reply];
        while docs.len() < MAX_BATCH_DOCUMENTS {
            match rx.try_recv() {
                Ok((more, reply)) => {
                    docs.extend(more);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let result = write_documents(&conn, docs).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "ClickHouse write failed");
        }
        for reply in replies {
            let _ = reply.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Write(e.to_string())),
            });
        }
    }
    tracing::debug!("ClickHouse writer stopped");
}

/// Folds one trace's documents (`facts`, one per document id) and appends its `traces` row
/// and `samples` rows; `counts` is `(documents, complete documents)`, which orders folds.
fn encode_fold(
    trace_id: &str,
    day: Option<u16>,
    facts: &[DocFacts],
    counts: (u64, u64),
    summaries: &mut RowBinary,
    samples: &mut RowBinary,
) -> Result<(), StoreError> {
    let view = fold_trace(trace_id, facts);
    let day = day.unwrap_or_else(|| trace_day(trace_id, view.summary.start_time));
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
        .string(&serde_json::to_string(&view.samples)?);
    for sample in &view.samples {
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

/// Appends the `segments` rows of `docs`; returns each trace's day.
fn encode_documents(
    docs: &[IngestDocument],
    w: &mut RowBinary,
) -> Result<BTreeMap<String, u16>, StoreError> {
    let mut traces: BTreeMap<String, u16> = BTreeMap::new();
    for d in docs {
        let day = trace_day(&d.trace_id, d.start_time);
        traces.entry(d.trace_id.clone()).or_insert(day);
        w.u16(day)
            .string(&d.trace_id)
            .string(&d.id)
            .opt_string(d.parent_id.as_deref())
            .u8(u8::from(d.subsegment))
            .f64(d.start_time)
            .u8(u8::from(d.in_progress))
            .u8(u8::from(!d.in_progress))
            .string(&d.document)
            .string(&serde_json::to_string(&d.facts)?);
    }
    Ok(traces)
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
    day: Option<u16>,
    pieces: &BTreeMap<&str, &IngestDocument>,
    summaries: &mut RowBinary,
    samples: &mut RowBinary,
) -> Result<(), StoreError> {
    let complete = pieces.values().filter(|d| !d.in_progress).count() as u64;
    let total = pieces.len() as u64;
    let facts: Vec<DocFacts> = pieces.values().map(|d| d.facts.clone()).collect();
    encode_fold(trace_id, day, &facts, (total, complete), summaries, samples)
}

/// Rows for a bulk load, encoded off the async runtime (see [`BulkRows::encode`]).
#[derive(Debug, Default)]
pub struct BulkRows {
    pub(super) segments: RowBinary,
    pub(super) traces: RowBinary,
    pub(super) samples: RowBinary,
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
        let days = encode_documents(docs, &mut out.segments)?;
        for (trace_id, pieces) in pieces_by_trace(docs) {
            fold_pieces(
                trace_id,
                days.get(trace_id).copied(),
                &pieces,
                &mut out.traces,
                &mut out.samples,
            )?;
        }
        Ok(out)
    }

    /// Documents encoded.
    pub fn documents(&self) -> usize {
        self.documents
    }
}

async fn write_documents(conn: &Connection, docs: Vec<IngestDocument>) -> Result<(), StoreError> {
    if docs.is_empty() {
        return Ok(());
    }
    let mut w = RowBinary::default();
    let traces = encode_documents(&docs, &mut w)?;
    conn.insert("segments", w).await?;
    let ours = pieces_by_trace(&docs);
    let mut rows_ours: HashMap<&str, u64> = HashMap::new();
    for d in &docs {
        *rows_ours.entry(d.trace_id.as_str()).or_default() += 1;
    }
    let mut summaries = RowBinary::default();
    let mut samples = RowBinary::default();
    // Traces whose stored rows are exactly the ones just inserted (counted after the insert,
    // from the key column only) fold from memory; the others read their documents back.
    // Either way the fold saw everything stored when it looked, which is what makes the last
    // fold of a trace the whole trace.
    let mut read_back: Vec<String> = Vec::new();
    let ids: Vec<String> = traces.keys().cloned().collect();
    #[derive(Deserialize)]
    struct Stored {
        trace_id: String,
        n: u64,
    }
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let stored: Vec<Stored> = conn
            .select(&format!(
                "SELECT trace_id, count() AS n FROM segments WHERE trace_id IN ({})
                 GROUP BY trace_id",
                id_list(chunk)
            ))
            .await?;
        let stored: HashMap<String, u64> = stored.into_iter().map(|s| (s.trace_id, s.n)).collect();
        for id in chunk {
            let alone = stored
                .get(id)
                .is_some_and(|n| rows_ours.get(id.as_str()) == Some(n));
            match ours.get(id.as_str()) {
                Some(pieces) if alone => fold_pieces(
                    id,
                    traces.get(id).copied(),
                    pieces,
                    &mut summaries,
                    &mut samples,
                )?,
                _ => read_back.push(id.clone()),
            }
        }
    }
    drop(ours);
    drop(docs);
    #[derive(Deserialize)]
    struct Row {
        trace_id: String,
        id: String,
        in_progress: u8,
        facts: String,
    }
    for chunk in read_back.chunks(IDS_PER_QUERY) {
        let rows: Vec<Row> = conn
            .select(&format!(
                "SELECT trace_id, id, in_progress, facts FROM segments WHERE trace_id IN ({})",
                id_list(chunk)
            ))
            .await?;
        // Per trace and document id, the complete version if there is one.
        let mut by_trace: BTreeMap<String, BTreeMap<String, (u8, String)>> = BTreeMap::new();
        for r in rows {
            let slot = by_trace.entry(r.trace_id).or_default();
            let keep = match slot.get(&r.id) {
                Some((in_progress, _)) => replaces(*in_progress == 1, r.in_progress == 1),
                None => true,
            };
            if keep {
                slot.insert(r.id, (r.in_progress, r.facts));
            }
        }
        for (trace_id, pieces) in by_trace {
            let complete = pieces.values().filter(|(p, _)| *p == 0).count() as u64;
            let total = pieces.len() as u64;
            let facts: Vec<DocFacts> = pieces
                .into_values()
                .map(|(_, f)| serde_json::from_str(&f))
                .collect::<Result<_, _>>()?;
            let day = traces.get(&trace_id).copied();
            encode_fold(
                &trace_id,
                day,
                &facts,
                (total, complete),
                &mut summaries,
                &mut samples,
            )?;
        }
    }
    // Samples first: a fold is visible (its `traces` row) only once its samples are stored.
    conn.insert("samples", samples).await?;
    conn.insert("traces", summaries).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(18_262), "2020-01-01");
        assert_eq!(day_text(LAST_DAY as u16), "2105-12-31");
        assert_eq!(
            trace_day("1-5e0be100-000000000000000000000000", 0.0),
            18_262
        );
        assert_eq!(trace_day("bad", 86_400.0 * 3.5), 3);
    }
}
