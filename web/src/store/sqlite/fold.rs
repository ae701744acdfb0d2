//! Folding for the SQLite writer: a trace's fold with its summary, rollup and facets
//! serialized as stored, and which traces the caller folds before the writer gets them.

use std::collections::{BTreeMap, HashMap};

use super::super::live::LiveTrace;
use super::super::{IngestDocument, StoreError};
use crate::assembly::{DocFacts, TraceFold, TraceView, fold_refs, replaces};

use super::now_seconds;

/// A trace folded, with its summary and rollup serialized as stored.
pub(super) struct Folded {
    pub(super) fold: TraceFold,
    pub(super) summary: String,
    pub(super) rollup: String,
    pub(super) facets: String,
}

impl Folded {
    fn new(view: TraceView) -> Result<Self, StoreError> {
        let mut fold = TraceFold::from(view);
        fold.summary.updated_at = Some(now_seconds());
        Ok(Self {
            summary: serde_json::to_string(&fold.summary)?,
            rollup: serde_json::to_string(&fold.rollup)?,
            facets: crate::analytics::Facets::encode(&fold.summary),
            fold,
        })
    }

    /// Folds a trace from the documents it holds.
    pub(super) fn of<H>(trace_id: &str, trace: &LiveTrace<H>) -> Result<Self, StoreError> {
        Self::new(fold_refs(trace_id, &trace.facts()))
    }
}

/// Fewest traces worth a second thread (below, one thread folds them all).
const PARALLEL_FOLDS: usize = 64;

/// Folds `traces` (in order) on up to [`std::thread::available_parallelism`] threads: the
/// CPU of a fold (assembly, JSON, facets) leaves the writer thread's critical path, which
/// then only writes the rows.
pub(super) fn fold_in_parallel<H: Sync>(
    traces: &[(String, Box<LiveTrace<H>>)],
) -> Result<Vec<Folded>, StoreError> {
    let fold = |part: &[(String, Box<LiveTrace<H>>)]| -> Result<Vec<Folded>, StoreError> {
        part.iter().map(|(id, t)| Folded::of(id, t)).collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || traces.len() < PARALLEL_FOLDS {
        return fold(traces);
    }
    let size = traces.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut parts = traces.chunks(size);
        let first = parts.next().unwrap_or_default();
        let helpers: Vec<_> = parts.map(|p| s.spawn(move || fold(p))).collect();
        let mut out = fold(first)?;
        for h in helpers {
            let part = h
                .join()
                .map_err(|_| StoreError::Write("a fold thread panicked".to_owned()))?;
            out.extend(part?);
        }
        Ok(out)
    })
}

/// Per trace id of a call: its fold from the call's pieces, or `None` when the writer folds
/// it (one piece in the call, or pieces from several calls merged into one transaction).
pub(super) type PreFolds = HashMap<String, Option<Folded>>;

/// Folds the traces of which one call holds several documents from those documents (with
/// the writer's replacement rule), so a trace whose pieces all arrive together costs the
/// writer no CPU beyond its inserts. Runs before the writer, on the blocking pool. A trace
/// with one document in the call is left to the writer: it is usually one piece of a trace
/// whose other pieces come from other hosts' daemons, and its fold here would be thrown away
/// (measured in BENCHMARKS.md, "Fleet-shaped ingest").
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
        // Every trace of the call is listed, so that the writer knows which traces got
        // pieces from several calls.
        let folded = match pieces.len() {
            1 => None,
            _ => {
                let facts: Vec<&DocFacts> = pieces.values().map(|(f, _)| *f).collect();
                Some(Folded::new(fold_refs(trace_id, &facts))?)
            }
        };
        out.insert(trace_id.to_owned(), folded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::clickhouse::testing::{Backend, store};
    use crate::store::tests::settled;
    use crate::test_support::{prepared, shuffled};

    /// Folds split over threads come back in order, each equal to the trace's fold on one.
    #[test]
    fn parallel_folds_keep_their_order_and_equal_one_threads() {
        let traces: Vec<(String, Box<LiveTrace<()>>)> = (0..(PARALLEL_FOLDS as u64 * 3))
            .map(|n| {
                let docs = prepared(&crate::synth::fleet_trace(n, 1_800_000_000.0 + n as f64));
                let id = docs[0].trace_id.clone();
                let stored = docs
                    .iter()
                    .map(|d| (d.id.clone(), (*d.facts).clone(), d.document.len()))
                    .collect();
                (id, Box::new(LiveTrace::from_stored(stored, None)))
            })
            .collect();
        let parallel = fold_in_parallel(&traces).unwrap();
        assert_eq!(parallel.len(), traces.len());
        for ((id, trace), got) in traces.iter().zip(parallel) {
            let one = Folded::of(id, trace).unwrap();
            assert_eq!(&got.fold.summary.id, id);
            assert_eq!(got.rollup, one.rollup);
            assert_eq!(got.facets, one.facets);
        }
    }

    /// Calls queued together are written by the SQLite writer in one transaction. A trace with
    /// pieces in three such calls, three in one (folded by the caller) and one in each of the
    /// others (left to the writer), is folded again from all of them and sums up as when sent
    /// whole. A large call ahead of them keeps the writer busy so that they queue up.
    #[tokio::test]
    async fn calls_written_in_one_transaction_sum_up_as_when_sent_whole() {
        let (_whole_place, whole) = store(Backend::Sqlite).await;
        let (_place, pieces) = store(Backend::Sqlite).await;
        for seed in 0..8u64 {
            let docs = prepared(&crate::synth::fleet_trace(
                seed,
                1_800_000_000.0 + seed as f64,
            ));
            assert_eq!(docs.len(), 5);
            let id = docs[0].trace_id.clone();
            whole.put_documents(docs.clone()).await.unwrap();
            let order = shuffled(docs.len(), seed);
            let call = |range: std::ops::Range<usize>| -> Vec<IngestDocument> {
                order[range].iter().map(|i| docs[*i].clone()).collect()
            };
            let busy: Vec<IngestDocument> = (0..400)
                .flat_map(|n| {
                    let n = 10_000 + seed * 1_000 + n;
                    prepared(&crate::synth::shop_trace(n, 1_800_000_000.0 + n as f64))
                })
                .collect();
            let (a, b, c, d) = tokio::join!(
                pieces.put_documents(busy),
                pieces.put_documents(call(0..3)),
                pieces.put_documents(call(3..4)),
                pieces.put_documents(call(4..5)),
            );
            for written in [a, b, c, d] {
                written.unwrap();
            }
            assert_eq!(
                settled(pieces.as_ref(), &id).await,
                settled(whole.as_ref(), &id).await,
                "seed {seed}"
            );
        }
    }
}
