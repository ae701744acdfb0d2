//! Live traces: the facts of recently written traces and what their last write left, kept in a store
//! writer's memory so that a piece of a trace already stored is folded without reading
//! anything back (the way Tempo's ingesters hold live traces).
//!
//! The rule that makes "not in memory" mean "new" without asking the store: every trace whose
//! id-epoch (the first part of an X-Ray trace id, its start second) is at or after the
//! `horizon` and that the store holds is in memory, whole, unless it is named a *suspect*.
//! Memory is bounded by evicting the oldest id-epochs first and raising the horizon past them; a
//! piece of a trace below the horizon (late, or begun before the collector started) or of a
//! suspect is the only one whose trace is read back, and it is counted. Suspects are traces
//! whose id-epoch lies in the future (a client clock ahead, an id that is not an epoch), when
//! they are evicted or found stored at start, and the traces of a write that failed: naming
//! them keeps the horizon from jumping ahead of every new trace. Past
//! [`MAX_SUSPECTS`] the horizon is raised instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::assembly::{DocFacts, replaces};

/// Bounds on one trace and on the memory of live traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLimits {
    /// Most documents kept per trace; later ones are refused (counted and logged).
    pub max_documents: usize,
    /// Most bytes of documents kept per trace.
    pub max_bytes: usize,
    /// Most documents held in live traces before the oldest are evicted.
    pub live_documents: usize,
}

impl TraceLimits {
    /// Default most documents per trace.
    pub const DEFAULT_MAX_DOCUMENTS: usize = 10_000;
    /// Default most bytes per trace (MiB).
    pub const DEFAULT_MAX_MIB: usize = 64;
    /// Default documents held in live traces (about 2.5 KB each: facts, maps and what the
    /// last write left; about 250 MB at this default).
    pub const DEFAULT_LIVE_DOCUMENTS: usize = 100_000;
}

impl Default for TraceLimits {
    fn default() -> Self {
        Self {
            max_documents: Self::DEFAULT_MAX_DOCUMENTS,
            max_bytes: Self::DEFAULT_MAX_MIB << 20,
            live_documents: Self::DEFAULT_LIVE_DOCUMENTS,
        }
    }
}

/// What live traces did, for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Pieces of traces found in memory (folded without a read).
    pub hits: AtomicU64,
    /// Pieces of traces below the horizon, read back from the store.
    pub late: AtomicU64,
    /// Traces evicted to stay within the memory bound.
    pub evicted: AtomicU64,
    /// Documents refused because their trace was over its cap.
    pub over_cap: AtomicU64,
    /// Traces held now.
    pub traces: AtomicU64,
    /// Documents held now.
    pub documents: AtomicU64,
    /// Minutes of graph rollups settled by this collector (ClickHouse).
    pub rollup_minutes_settled: AtomicU64,
    /// Rounds of settling rollups that failed (ClickHouse; retried on the next round).
    pub rollup_settle_failures: AtomicU64,
    /// Traces the reconciler compared with what the store holds (ClickHouse).
    pub reconcile_checked: AtomicU64,
    /// Traces the reconciler folded again from their stored documents (ClickHouse).
    pub reconciled: AtomicU64,
    /// Rounds of reconciling that failed (ClickHouse; retried on the next round).
    pub reconcile_failures: AtomicU64,
    /// Traces waiting for the reconciler now (ClickHouse).
    pub reconcile_pending: AtomicU64,
    /// Traces whose documents are stored and whose fold waits now (SQLite).
    pub fold_pending: AtomicU64,
}

/// One trace as its writer knows it: the facts of each stored document (after the
/// replacement rule) and what the store keeps of its last write.
#[derive(Debug)]
pub struct LiveTrace<H> {
    /// Facts and size of each document held.
    docs: HashMap<String, (Arc<DocFacts>, usize)>,
    bytes: usize,
    /// Listed in `by_epoch` (once per trace, however often it is put back).
    listed: bool,
    /// Start of the trace as last written (for retention).
    pub start_time: Option<f64>,
    /// What the store needs of its last write to write the next (SQLite: the summary's
    /// `rid`, index keys and rollup); `None` until the first write.
    pub written: Option<H>,
}

/// Whether a document may join its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Stored (new, or replacing an in-progress one).
    Changed,
    /// A duplicate, or an in-progress copy of a complete document: nothing changes.
    Unchanged,
    /// The trace is at its cap.
    OverCap,
}

impl<H> Default for LiveTrace<H> {
    fn default() -> Self {
        Self {
            docs: HashMap::new(),
            bytes: 0,
            listed: false,
            start_time: None,
            written: None,
        }
    }
}

impl<H> LiveTrace<H> {
    /// A trace rebuilt from what a store holds (read back): each document's id, facts and
    /// size, and what the store keeps of its last write when it updates in place.
    pub fn from_stored(docs: Vec<(String, DocFacts, usize)>, written: Option<H>) -> Self {
        let bytes = docs.iter().map(|(_, _, b)| b).sum();
        Self {
            docs: docs
                .into_iter()
                .map(|(id, f, b)| (id, (Arc::new(f), b)))
                .collect(),
            bytes,
            listed: false,
            start_time: None,
            written,
        }
    }

    /// Complete documents held.
    pub fn complete(&self) -> usize {
        self.docs.values().filter(|(f, _)| !f.in_progress).count()
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Applies the replacement rule and the cap to one document of `bytes` bytes; the caller
    /// stores it when the answer is [`Admit::Changed`].
    pub fn admit(
        &mut self,
        id: &str,
        facts: &Arc<DocFacts>,
        bytes: usize,
        limits: &TraceLimits,
    ) -> Admit {
        let full = self.docs.len() >= limits.max_documents || self.bytes + bytes > limits.max_bytes;
        match self.docs.get_mut(id) {
            Some((held, _)) if !replaces(held.in_progress, facts.in_progress) => Admit::Unchanged,
            Some(held) => {
                self.bytes = self.bytes - held.1 + bytes;
                *held = (Arc::clone(facts), bytes);
                Admit::Changed
            }
            None if full => Admit::OverCap,
            None => {
                self.docs.insert(id.to_owned(), (Arc::clone(facts), bytes));
                self.bytes += bytes;
                Admit::Changed
            }
        }
    }

    /// The facts of every document held, in id order (the fold does not depend on order;
    /// a fixed one keeps its output byte for byte the same).
    pub fn facts(&self) -> Vec<&DocFacts> {
        let mut held: Vec<(&String, &DocFacts)> = self
            .docs
            .iter()
            .map(|(id, (f, _))| (id, f.as_ref()))
            .collect();
        held.sort_unstable_by_key(|(id, _)| *id);
        held.into_iter().map(|(_, f)| f).collect()
    }
}

/// Where a trace stands before a batch touches it.
pub enum Found<H> {
    /// Held in memory: the whole trace, taken out until [`LiveTraces::put`].
    Live(Box<LiveTrace<H>>),
    /// At or after the horizon and not held: the store has none of it.
    New,
    /// Below the horizon: the store may hold pieces; read them back.
    Late,
}

/// Most suspects named one by one (see the module's documentation).
pub const MAX_SUSPECTS: usize = 100_000;

/// How far ahead of the clock an id-epoch may be and still raise the horizon when evicted.
const FUTURE_SLACK_SECONDS: u32 = 3_600;

/// The live traces of one writer.
pub struct LiveTraces<H> {
    traces: HashMap<String, (u32, Box<LiveTrace<H>>)>,
    /// Trace ids by id-epoch, oldest first (may name traces already gone).
    by_epoch: BTreeMap<u32, Vec<String>>,
    horizon: u32,
    /// Traces at or after the horizon that the store may hold without them being held here.
    suspects: HashSet<String>,
    documents: usize,
    limits: TraceLimits,
    counters: Arc<LiveCounters>,
    /// Traces evicted since [`LiveTraces::take_evicted`], for the writer to free elsewhere.
    evicted: Vec<Box<LiveTrace<H>>>,
}

/// The start second in an X-Ray trace id (`1-5f84c7a1-...`), or 0 when it has none.
pub fn id_epoch(trace_id: &str) -> u32 {
    trace_id
        .get(2..10)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

impl<H> LiveTraces<H> {
    /// Live traces whose store holds no trace with an id-epoch at or after `horizon`.
    pub fn new(horizon: u32, limits: TraceLimits, counters: Arc<LiveCounters>) -> Self {
        Self {
            traces: HashMap::new(),
            by_epoch: BTreeMap::new(),
            horizon,
            suspects: HashSet::new(),
            documents: 0,
            limits,
            counters,
            evicted: Vec::new(),
        }
    }

    /// The traces evicted since the last call (freeing them is left to the caller, which
    /// may do it off its own thread).
    pub fn take_evicted(&mut self) -> Vec<Box<LiveTrace<H>>> {
        std::mem::take(&mut self.evicted)
    }

    /// The limits in force.
    pub fn limits(&self) -> &TraceLimits {
        &self.limits
    }

    /// The counters.
    pub fn counters(&self) -> &LiveCounters {
        &self.counters
    }

    /// Takes a trace out to add a batch's pieces to it.
    pub fn take(&mut self, trace_id: &str) -> Found<H> {
        match self.traces.remove(trace_id) {
            Some((_, trace)) => {
                self.documents -= trace.docs.len();
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Found::Live(trace)
            }
            None if id_epoch(trace_id) >= self.horizon && !self.suspects.remove(trace_id) => {
                Found::New
            }
            None => {
                self.counters.late.fetch_add(1, Ordering::Relaxed);
                Found::Late
            }
        }
    }

    /// Puts a trace (back) once its batch is written, then evicts the oldest traces while
    /// over the memory bound.
    pub fn put(&mut self, trace_id: String, mut trace: Box<LiveTrace<H>>) {
        let epoch = id_epoch(&trace_id);
        self.documents += trace.docs.len();
        if !trace.listed {
            trace.listed = true;
            self.by_epoch
                .entry(epoch)
                .or_default()
                .push(trace_id.clone());
        }
        self.traces.insert(trace_id, (epoch, trace));
        while self.documents > self.limits.live_documents {
            let Some((epoch, ids)) = self.by_epoch.pop_first() else {
                break;
            };
            let future =
                epoch > (crate::store::now_seconds() as u32).saturating_add(FUTURE_SLACK_SECONDS);
            for id in ids {
                if let Some((_, t)) = self.traces.remove(&id) {
                    self.documents -= t.docs.len();
                    self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                    self.evicted.push(t);
                    if future {
                        self.suspect(id);
                    }
                }
            }
            if !future {
                self.raise_horizon(epoch.saturating_add(1));
            }
        }
        self.publish();
    }

    /// Names a trace whose later pieces must be read back (see the module's documentation).
    pub fn suspect(&mut self, trace_id: String) {
        if id_epoch(&trace_id) < self.horizon {
            return;
        }
        if self.suspects.len() < MAX_SUSPECTS {
            self.suspects.insert(trace_id);
        } else {
            self.raise_horizon(id_epoch(&trace_id).saturating_add(1));
        }
    }

    /// Makes every trace below `horizon` count as late.
    pub fn raise_horizon(&mut self, horizon: u32) {
        self.horizon = self.horizon.max(horizon);
    }

    /// Counts and logs documents refused for their trace's cap (once their batch is written).
    pub fn note_over_cap(&self, documents: usize) {
        if documents == 0 {
            return;
        }
        self.counters
            .over_cap
            .fetch_add(documents as u64, Ordering::Relaxed);
        tracing::warn!(
            documents,
            max_documents = self.limits.max_documents,
            max_bytes = self.limits.max_bytes,
            "documents refused: their trace is at its cap"
        );
    }

    /// Forgets traces whose fold starts before `cutoff` (retention deleted them).
    pub fn forget_before(&mut self, cutoff: f64) {
        let before = self.traces.len();
        self.traces
            .retain(|_, (_, t)| t.start_time.is_none_or(|start| start >= cutoff));
        if self.traces.len() != before {
            self.documents = self.traces.values().map(|(_, t)| t.docs.len()).sum();
            let held = &self.traces;
            self.by_epoch.retain(|_, ids| {
                ids.retain(|id| held.contains_key(id));
                !ids.is_empty()
            });
            self.publish();
        }
    }

    fn publish(&self) {
        self.counters
            .traces
            .store(self.traces.len() as u64, Ordering::Relaxed);
        self.counters
            .documents
            .store(self.documents as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::prepared;

    fn limits(live_documents: usize) -> TraceLimits {
        TraceLimits {
            max_documents: 3,
            max_bytes: 1 << 20,
            live_documents,
        }
    }

    fn trace(epoch: u32) -> String {
        format!("1-{epoch:08x}-000000000000000000000001")
    }

    /// A trace holding `docs`, 10 bytes each.
    fn holding(docs: &[crate::store::IngestDocument], limits: &TraceLimits) -> Box<LiveTrace<()>> {
        let mut t = LiveTrace::default();
        for d in docs {
            t.admit(&d.id, &d.facts, 10, limits);
        }
        Box::new(t)
    }

    #[test]
    fn the_horizon_decides_new_from_late_and_rises_past_evicted_traces() {
        let counters = Arc::new(LiveCounters::default());
        let mut live: LiveTraces<()> = LiveTraces::new(100, limits(2), counters.clone());
        assert!(matches!(live.take(&trace(99)), Found::Late));
        assert!(matches!(live.take(&trace(100)), Found::New));
        let docs = prepared(&crate::synth::shop_trace(1, 1_800_000_000.0));
        let mut t = LiveTrace::default();
        for d in &docs {
            assert_eq!(t.admit(&d.id, &d.facts, 10, live.limits()), Admit::Changed);
            // A complete document again replaces the one held (the rule of `replaces`);
            // an in-progress copy of it changes nothing.
            assert_eq!(t.admit(&d.id, &d.facts, 10, live.limits()), Admit::Changed);
            let mut open = (*d.facts).clone();
            open.in_progress = true;
            assert_eq!(
                t.admit(&d.id, &Arc::new(open), 10, live.limits()),
                Admit::Unchanged
            );
        }
        assert_eq!(t.bytes, 10 * docs.len());
        live.put(trace(100), Box::new(t));
        assert!(matches!(live.take(&trace(100)), Found::Live(_)));
        // Two documents fit; a second trace of two evicts the older epoch.
        let limits = *live.limits();
        live.put(trace(100), holding(&docs, &limits));
        live.put(trace(101), holding(&docs, &limits));
        assert!(matches!(live.take(&trace(100)), Found::Late));
        assert!(matches!(live.take(&trace(101)), Found::Live(_)));
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(counters.late.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn future_traces_and_failed_writes_are_suspects_not_a_jump_of_the_horizon() {
        let counters = Arc::new(LiveCounters::default());
        let now = crate::store::now_seconds() as u32;
        let mut live: LiveTraces<()> = LiveTraces::new(now, limits(0), counters);
        let docs = prepared(&crate::synth::shop_trace(1, 1_800_000_000.0));
        // A far-future trace, evicted at once (no memory): its next piece is read back, and
        // a new trace of today is still new.
        let far = trace(u32::MAX - 5);
        let mut t = LiveTrace::default();
        t.admit(&docs[0].id, &docs[0].facts, 10, live.limits());
        live.put(far.clone(), Box::new(t));
        assert!(matches!(live.take(&far), Found::Late));
        assert!(matches!(live.take(&trace(now + 1)), Found::New));
        // A trace of a failed write: read back once, then new rules apply again.
        live.suspect(trace(now + 2));
        assert!(matches!(live.take(&trace(now + 2)), Found::Late));
        assert!(matches!(live.take(&trace(now + 2)), Found::New));
    }

    #[test]
    fn a_trace_at_its_cap_refuses_new_documents_but_takes_replacements() {
        let raw = crate::synth::shop_trace(1, 1_800_000_000.0);
        let docs = prepared(&raw);
        let by_count = TraceLimits {
            max_documents: 1,
            ..limits(10)
        };
        let by_bytes = TraceLimits {
            max_bytes: 15,
            ..limits(10)
        };
        for limits in [by_count, by_bytes] {
            let mut t: LiveTrace<()> = LiveTrace::default();
            let admit =
                |t: &mut LiveTrace<()>, i: usize| t.admit(&docs[i].id, &docs[i].facts, 10, &limits);
            assert_eq!(admit(&mut t, 0), Admit::Changed);
            assert_eq!(admit(&mut t, 1), Admit::OverCap);
            // A replacement of a held document is not a new one: still taken.
            assert_eq!(admit(&mut t, 0), Admit::Changed);
        }
    }
}
