//! Folding for the SQLite writer: a trace's fold with its summary, rollup and facets
//! serialized as stored. A new trace whose pieces came in one call is folded on the caller's
//! thread (`prefold`); the traces a batch adds pieces to are folded by the writer and one
//! helper thread while the writer inserts the batch's documents (`fold_beside`), so the
//! writer's time per batch is its SQLite work plus about half the folds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn of<H>(trace_id: &str, trace: &LiveTrace<H>) -> Result<Self, StoreError> {
        Self::new(fold_refs(trace_id, &trace.facts()))
    }
}

/// Per trace id of a call: its fold from the call's pieces, or `None` when the writer folds
/// it (one piece in the call, or pieces from several calls merged into one transaction).
pub(super) type PreFolds = HashMap<String, Option<Folded>>;

/// Folds the traces of which one call holds several documents from those documents (with
/// the writer's replacement rule), so a trace whose pieces all arrive together costs the
/// writer no CPU beyond its inserts. Runs on the caller's thread. A trace with one document
/// in the call is left to the writer: it is usually one piece of a trace whose other pieces
/// come from other hosts' daemons, and its fold here would be thrown away (measured in
/// BENCHMARKS.md, "Fleet-shaped ingest").
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

/// Fewest folds worth starting a helper thread for.
const MIN_PARALLEL: usize = 4;

/// Runs `first` on this thread while a helper thread folds `traces`; this thread then folds
/// whatever is left. Each trace is folded once, by whichever thread claims it first. Answers
/// `first`'s result and one fold per trace, in the order of `traces`. Without a helper (few
/// traces, or no thread to be had) everything runs here.
pub(super) fn fold_beside<H: Sync, T>(
    traces: &[(&str, &LiveTrace<H>)],
    first: impl FnOnce() -> T,
) -> (T, Vec<Result<Folded, StoreError>>) {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((trace_id, trace)) = traces.get(i) else {
                return done;
            };
            done.push((i, Folded::of(trace_id, trace)));
        }
    };
    let (out, mut done) = if traces.len() < MIN_PARALLEL {
        (first(), work())
    } else {
        std::thread::scope(|s| {
            let helper = std::thread::Builder::new()
                .name("roentgen-store-fold".to_owned())
                .spawn_scoped(s, work);
            let out = first();
            let mut done = work();
            if let Ok(helper) = helper {
                match helper.join() {
                    Ok(theirs) => done.extend(theirs),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (out, done)
        })
    };
    done.sort_unstable_by_key(|(i, _)| *i);
    debug_assert!(done.iter().enumerate().all(|(k, (i, _))| k == *i));
    (out, done.into_iter().map(|(_, f)| f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::live::TraceLimits;
    use std::sync::Arc;

    /// Folded beside other work, each trace gets the fold it gets alone, in order, whether
    /// or not a helper thread takes part.
    #[test]
    fn folds_beside_other_work_equal_folds_alone_in_order() {
        let limits = TraceLimits::default();
        for count in [0, 1, MIN_PARALLEL - 1, MIN_PARALLEL, 37] {
            let traces: Vec<(String, LiveTrace<()>)> = (0..count as u64)
                .map(|n| {
                    let docs = crate::synth::fleet_trace(n, 1_800_000_000.0 + n as f64);
                    let mut trace = LiveTrace::default();
                    let mut trace_id = String::new();
                    for d in crate::test_support::prepared(&docs) {
                        trace.admit(&d.id, &Arc::clone(&d.facts), d.document.len(), &limits);
                        trace_id = d.trace_id.clone();
                    }
                    (trace_id, trace)
                })
                .collect();
            let refs: Vec<(&str, &LiveTrace<()>)> =
                traces.iter().map(|(id, t)| (id.as_str(), t)).collect();
            let (first, folds) = fold_beside(&refs, || 42);
            assert_eq!(first, 42);
            assert_eq!(folds.len(), count);
            for ((trace_id, trace), folded) in traces.iter().zip(folds) {
                let folded = folded.unwrap();
                let alone = Folded::of(trace_id, trace).unwrap();
                assert_eq!(folded.fold.summary.id, *trace_id);
                assert_eq!(folded.rollup, alone.rollup);
                assert_eq!(folded.facets, alone.facets);
                let (mut a, mut b) = (folded.fold.summary, alone.fold.summary);
                a.updated_at = None;
                b.updated_at = None;
                assert_eq!(a, b);
            }
        }
    }
}
