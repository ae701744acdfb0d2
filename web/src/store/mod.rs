//! The storage trait the API talks to, designed for an embedded store (SQLite, one writer
//! thread) and a remote column store (ClickHouse) alike: every call is asynchronous, writes come
//! in batches and are acknowledged only once durable, and queries take pushed-down predicates so
//! a store can use its indexes instead of scanning.

pub mod clickhouse;
pub mod live;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::assembly::{DocFacts, TraceRollup, TraceSummary};

pub use crate::assembly::StoredDocument;
pub use live::{LiveCounters, TraceLimits};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The writer thread is gone (the store is shutting down).
    #[error("the store's writer has stopped")]
    WriterGone,
    /// A named item already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// A named item does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A write transaction failed (the detail is logged).
    #[error("write failed: {0}")]
    Write(String),
    /// Opening the store failed.
    #[error("cannot open the store: {0}")]
    Open(String),
    /// A query asked for what this store cannot answer (a caller's mistake).
    #[error("the store cannot answer this: {0}")]
    Unsupported(String),
    /// No connection freed up in time (the store is overloaded); try again later.
    #[error("the store is busy: {0}")]
    Busy(String),
}

/// A validated document ready to store.
#[derive(Debug, Clone)]
pub struct IngestDocument {
    /// Trace id text.
    pub trace_id: String,
    /// Document id text.
    pub id: String,
    /// Parent id text.
    pub parent_id: Option<String>,
    /// Start time.
    pub start_time: f64,
    /// In progress (a later complete document replaces it).
    pub in_progress: bool,
    /// A subsegment sent on its own.
    pub subsegment: bool,
    /// The JSON text to keep.
    pub document: String,
    /// Facts for the trace fold (shared with the writer's live trace, not copied).
    pub facts: std::sync::Arc<DocFacts>,
}

/// What a store did not keep of a batch it acknowledged.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    /// Documents refused because their trace was at its cap ([`TraceLimits`]), by
    /// `(trace id, document id)`.
    pub over_trace_cap: Vec<(String, String)>,
}

impl Written {
    /// Adds another batch's refusals.
    pub fn merge(&mut self, other: Written) {
        self.over_trace_cap.extend(other.over_trace_cap);
    }
}

/// A request's reply and where its documents end in a group-committed batch.
pub(crate) type BatchReply = (BatchSender, usize);

/// Where a request of a group-committed batch is answered.
pub(crate) type BatchSender = tokio::sync::oneshot::Sender<Result<Written, StoreError>>;

/// Answers each request of a group-committed batch (see [`batch_answers`]).
pub(crate) fn answer_batch(
    docs: &[IngestDocument],
    result: &Result<Vec<usize>, StoreError>,
    replies: Vec<BatchReply>,
) {
    for (reply, answer) in batch_answers(docs, result, replies) {
        let _ = reply.send(answer);
    }
}

/// Each request's answer of a group-committed batch: its own documents' refusals (`refused`
/// holds indexes into `docs`), or the batch's error.
pub(crate) fn batch_answers(
    docs: &[IngestDocument],
    result: &Result<Vec<usize>, StoreError>,
    replies: Vec<BatchReply>,
) -> Vec<(BatchSender, Result<Written, StoreError>)> {
    let mut start = 0;
    let mut out = Vec::with_capacity(replies.len());
    for (reply, end) in replies {
        out.push((
            reply,
            match result {
                Ok(refused) => Ok(Written {
                    over_trace_cap: refused
                        .iter()
                        .filter(|i| (start..end).contains(*i))
                        .map(|i| (docs[*i].trace_id.clone(), docs[*i].id.clone()))
                        .collect(),
                }),
                Err(e) => Err(StoreError::Write(e.to_string())),
            },
        ));
        start = end;
    }
    out
}

/// A predicate a store can answer from an index; every one is a necessary condition of the
/// filter it came from, so the store may return a superset and the caller filters exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushdown {
    /// Trace has a fault.
    HasFault(bool),
    /// Trace has an error.
    HasError(bool),
    /// Trace was throttled.
    HasThrottle(bool),
    /// Entry point HTTP status equals.
    HttpStatus(u16),
    /// Response time comparison: operator (`<`, `<=`, `>`, `>=`, `=`) and value.
    ResponseTime(&'static str, f64),
    /// Duration comparison.
    Duration(&'static str, f64),
    /// Annotation equals (by canonical text).
    AnnotationEquals(String, String),
    /// Annotation number comparison.
    AnnotationNumber(String, &'static str, f64),
    /// Annotation key is present.
    AnnotationExists(String),
    /// Some service of this name took part.
    Service(String),
    /// The trace with this id (X-Ray form).
    TraceId(String),
}

/// A scan over trace summaries, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanQuery {
    /// Window start, epoch seconds (inclusive).
    pub start: f64,
    /// Window end (inclusive).
    pub end: f64,
    /// Index predicates.
    pub pushdown: Vec<Pushdown>,
    /// Continue after this `(start_time, trace_id)` (exclusive), in descending order.
    pub after: Option<(f64, String)>,
    /// Maximum rows.
    pub limit: usize,
    /// Also return graph samples.
    pub with_samples: bool,
}

/// A read of the analytics facets of the traces in a window that satisfy every predicate of
/// `pushdown` (all of them applied exactly; see [`crate::filter::Expr::exact_pushdown`]),
/// one part of them ([`Store::facet_parts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FacetQuery {
    /// Window start, epoch seconds (inclusive).
    pub start: f64,
    /// Window end (inclusive).
    pub end: f64,
    /// Predicates, every one applied.
    pub pushdown: Vec<Pushdown>,
    /// Maximum rows.
    pub limit: usize,
    /// Newest first (`start_time`, then trace id, descending); in any order otherwise.
    pub newest: bool,
    /// Which part of the traces, `part` of `parts` (each trace belongs to exactly one).
    pub part: u32,
    /// How many parts the traces are split into (at least 1).
    pub parts: u32,
}

/// One trace of a [`FacetQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct FacetRow {
    /// Trace id.
    pub trace_id: String,
    /// Start, epoch seconds.
    pub start_time: f64,
    /// Its stored facets ([`crate::analytics::Facets`]), `None` for a trace stored before the
    /// store kept them.
    pub facets: Option<String>,
}

/// A trace summary as stored, optionally with what it adds to the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRecord {
    /// Summary.
    pub summary: TraceSummary,
    /// Its graph samples added up (when asked for; empty otherwise).
    pub rollup: TraceRollup,
}

/// All stored documents of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrace {
    /// Trace id.
    pub id: String,
    /// Duration from the summary.
    pub duration: Option<f64>,
    /// Documents.
    pub documents: Vec<StoredDocument>,
}

/// Per-minute statistics of one node (`dst` empty) or edge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollupRow {
    /// Epoch minute.
    pub minute: i64,
    /// Node or caller (encoded node key).
    pub src: String,
    /// Callee (encoded), empty for nodes.
    pub dst: String,
    /// Statistics.
    pub stats: crate::graph::Stats,
}

impl RollupRow {
    /// Rows from statistics keyed by `(minute, src, dst)`, in key order.
    pub fn from_keyed(
        keyed: std::collections::BTreeMap<(i64, String, String), crate::graph::Stats>,
    ) -> Vec<RollupRow> {
        keyed
            .into_iter()
            .map(|((minute, src, dst), stats)| RollupRow {
                minute,
                src,
                dst,
                stats,
            })
            .collect()
    }
}

/// A sampling rule and its timestamps, stored as the API shapes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRule {
    /// The rule (API shape, PascalCase fields).
    pub rule: crate::sampling::SamplingRule,
    /// Creation time.
    pub created_at: f64,
    /// Last modification.
    pub modified_at: f64,
}

/// A group: a named filter expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// Name.
    pub name: String,
    /// Filter expression, if any.
    pub filter_expression: Option<String>,
    /// Insights configuration as sent (kept, not acted on).
    pub insights: Option<serde_json::Value>,
}

/// One daemon telemetry record as received.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryRow {
    /// When it arrived.
    pub received_at: f64,
    /// Reporting host.
    pub hostname: Option<String>,
    /// Reporting instance.
    pub instance_id: Option<String>,
    /// The record's JSON.
    pub record: String,
}

/// One client's latest sampling report for one rule, as a shared store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingClient {
    /// Rule reported on.
    pub rule_name: String,
    /// Client id.
    pub client_id: String,
    /// When the report arrived, epoch seconds.
    pub seen: f64,
    /// Requests the client matched in its last interval.
    pub request_count: i64,
}

/// The store behind the collector.
pub trait Store: Send + Sync + 'static {
    /// Stores a batch of documents and re-folds the traces they belong to; resolves once the
    /// batch is durable, with the documents it refused (a trace over its cap).
    fn put_documents(
        &self,
        docs: Vec<IngestDocument>,
    ) -> BoxFuture<'_, Result<Written, StoreError>>;

    /// What the writer's live traces did (hits, late pieces, evictions, refusals), when the
    /// store keeps them.
    fn live_counters(&self) -> Option<std::sync::Arc<LiveCounters>> {
        None
    }

    /// Folds whole, now, the traces written so far whose newest fold may have missed pieces
    /// (ClickHouse: a round of its reconciler, which otherwise runs every second; other
    /// stores fold whole as they write). Returns the traces folded again.
    fn reconcile_now(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async { Ok(0) })
    }

    /// Whether the store can take writes now: a cheap real check (a trivial read, and the
    /// writer alive and able to write), for `/readyz`.
    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Candidate trace summaries for a window and index predicates, newest first.
    fn scan_traces(&self, query: ScanQuery) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>>;

    /// Into how many parts a facets read is best split, the parts read one after another
    /// ([`FacetQuery::parts`]).
    fn facet_parts(&self) -> u32 {
        1
    }

    /// The analytics facets of one part of the traces a query selects.
    fn scan_facets(&self, query: FacetQuery) -> BoxFuture<'_, Result<Vec<FacetRow>, StoreError>>;

    /// Summaries and samples of the given traces (missing ids are left out).
    fn get_traces(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>>;

    /// Stored documents of the given traces (missing ids are left out).
    fn trace_documents(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, StoreError>>;

    /// Node and edge rollups for epoch minutes in `[first, last]`.
    fn rollups(&self, first: i64, last: i64) -> BoxFuture<'_, Result<Vec<RollupRow>, StoreError>>;

    /// All sampling rules.
    fn sampling_rules(&self) -> BoxFuture<'_, Result<Vec<StoredRule>, StoreError>>;

    /// Creates (`create`) or replaces a sampling rule.
    fn put_sampling_rule(
        &self,
        rule: StoredRule,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes a sampling rule, returning it.
    fn delete_sampling_rule(&self, name: String) -> BoxFuture<'_, Result<StoredRule, StoreError>>;

    /// All groups.
    fn groups(&self) -> BoxFuture<'_, Result<Vec<StoredGroup>, StoreError>>;

    /// Creates (`create`) or replaces a group.
    fn put_group(&self, group: StoredGroup, create: bool) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes a group.
    fn delete_group(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Stores daemon telemetry.
    fn put_telemetry(&self, rows: Vec<TelemetryRow>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records sampling reports (`docs`) received at `now`, then returns every client seen
    /// since `active_since` on the rules reported, by whichever collector received them: how
    /// collectors sharing a store split each rule's reservoir among all its clients. `None`
    /// (the default) when the store is not shared, so the collector's own table is the whole
    /// picture.
    fn report_sampling(
        &self,
        now: f64,
        docs: Vec<crate::sampling::StatisticsDocument>,
        active_since: f64,
    ) -> BoxFuture<'_, Result<Option<Vec<SamplingClient>>, StoreError>> {
        let _ = (now, docs, active_since);
        Box::pin(async { Ok(None) })
    }

    /// All alarm rules, by name.
    fn alarm_rules(&self) -> BoxFuture<'_, Result<Vec<StoredAlarm>, StoreError>>;

    /// Creates (`create`: `Exists` if the name is taken) or replaces (`NotFound` if it is not)
    /// an alarm rule, keeping its creation time.
    fn put_alarm_rule(
        &self,
        alarm: StoredAlarm,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes an alarm rule (its history stays).
    fn delete_alarm_rule(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records alarm events, replacing any stored with the same alarm and sequence number.
    fn put_alarm_events(&self, events: Vec<AlarmEvent>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Alarm events, newest first.
    fn alarm_events(&self, query: EventQuery)
    -> BoxFuture<'_, Result<Vec<AlarmEvent>, StoreError>>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl` seconds: true when
    /// `holder` has it (it was free, expired or already its own), false when another holder's
    /// lease is still running. Collectors sharing a store use it so one does a job at a time.
    fn take_lease(
        &self,
        name: String,
        holder: String,
        now: f64,
        ttl: f64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Records insights, replacing any stored with the same id.
    fn put_insights(
        &self,
        insights: Vec<crate::insights::Insight>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Insights going on at some time in `[start, end]` (open ones are going on), the newest
    /// first, at most `limit`; with `id`, only that one.
    fn insights(
        &self,
        start: f64,
        end: f64,
        id: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::insights::Insight>, StoreError>>;

    /// Deletes up to `max_traces` traces that started before `cutoff` (and rollups and
    /// telemetry older than it); returns how many traces went. Called repeatedly by retention.
    ///
    /// The alarm history and insights older than `cutoff` go too: an alarm event once no
    /// webhook waits for it, except each alarm's newest (its state, and the sequence number
    /// that keeps delivery ids unique even after its rule is deleted and made again); an
    /// insight once it has closed.
    fn delete_before(
        &self,
        cutoff: f64,
        max_traces: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>>;
}

pub use crate::alarms::{AlarmEvent, EventQuery, StoredAlarm};

/// Group commit: how long a store writer waits, after a batch's first request, for the
/// requests its recent batches took (see [`GroupCommit`]).
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Documents past which a batch does not wait for more (see [`LINGER`]).
pub(crate) const LINGER_DOCUMENTS: usize = 2_000;

/// Batches whose sizes set how many requests a batch waits for.
const GROUP_COMMIT_WINDOW: usize = 16;

/// A writer's group commit: a batch holding fewer requests than the most any of the last
/// [`GROUP_COMMIT_WINDOW`] batches took waits up to [`LINGER`] for more (but not past
/// [`LINGER_DOCUMENTS`]). Each insert (ClickHouse) or commit (SQLite) has a cost of its own,
/// and the pieces of a trace that several hosts' daemons send at about the same time are
/// folded once when they land in one batch; a lone client is never kept waiting.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    recent: std::collections::VecDeque<usize>,
}

impl GroupCommit {
    /// Whether a batch of `requests` holding `documents` waits for more.
    pub(crate) fn lingers(&self, requests: usize, documents: usize) -> bool {
        documents < LINGER_DOCUMENTS && self.recent.iter().any(|&r| r > requests)
    }

    /// Records a batch of `requests` requests.
    pub(crate) fn took(&mut self, requests: usize) {
        if self.recent.len() == GROUP_COMMIT_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(requests);
    }
}

/// Current time, epoch seconds.
pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The SQL comparison operator of a pushed-down numeric comparison (`=` for anything else).
fn op_sql(op: &str) -> &'static str {
    match op {
        "<" => "<",
        "<=" => "<=",
        ">" => ">",
        ">=" => ">=",
        _ => "=",
    }
}

#[cfg(test)]
mod alarm_tests;
#[cfg(test)]
mod facets_tests;
#[cfg(test)]
mod ready_tests;
#[cfg(test)]
mod tests;
