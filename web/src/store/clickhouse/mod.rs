//! The scale-out store: ClickHouse over its HTTP interface, for many collectors in front of one
//! server or a cluster. Collectors keep nothing that matters: every write goes to the server,
//! every answer is read back from it, so any collector answers like any other.
//!
//! Documents are appended (bulk `RowBinary` inserts, grouped across concurrent requests by one
//! writer task per collector); after each insert the writer reads back all documents of the
//! traces it touched (or, for a trace whose stored rows are exactly the ones it just wrote,
//! counted from the key column, uses them from memory), folds them and appends the fold
//! (summary and samples) with a version that grows with the number of complete documents seen. Whichever collector read last saw every
//! acknowledged document, so the newest fold is the whole trace: the engine keeps it
//! (`ReplacingMergeTree`), and rollups add up the samples of each trace's newest fold only, so
//! folds arriving in any order or twice never double count. Sampling reports go to the store
//! too ([`Store::report_sampling`]), so reservoirs are split among every collector's clients.
//! See [`schema`] for the tables.

pub mod credentials;
pub mod rowbinary;
pub mod schema;
pub mod server;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::{
    BoxFuture, IngestDocument, Pushdown, RollupRow, SamplingClient, ScanQuery, Store, StoreError,
    StoredDocument, StoredGroup, StoredRule, StoredTrace, TelemetryRow, TraceRecord,
};
use crate::assembly::{AnnotationValue, DocFacts, TraceSummary, fold_trace, replaces};
use crate::graph::{Histogram, Stats};
use crate::sampling::{DEFAULT_RULE, SamplingRule};
pub use credentials::{Password, ServerUrl};
use rowbinary::RowBinary;
use schema::{Features, MINIMUM_VERSION};

/// Most documents grouped into one insert.
const MAX_BATCH_DOCUMENTS: usize = 20_000;
/// Depth of the writer's queue (requests); senders wait when it is full.
const WRITER_QUEUE: usize = 256;
/// The last day a ClickHouse `Date` holds (2105-12-31); later dates parse as zero.
const LAST_DAY: i64 = 49_672;
/// Trace ids per `IN (...)` list, to stay well under the server's 256 KiB query size limit.
const IDS_PER_QUERY: usize = 2_000;
/// Settings sent with every request: exact `FINAL`/`WHERE` semantics (no `PREWHERE` before the
/// replacing merge), numbers as JSON numbers, inserts into `Distributed` tables acknowledged
/// only once on their shard, and `IN` subqueries answered shard-locally (a trace lives whole
/// on one shard).
const SETTINGS: [(&str, &str); 4] = [
    ("optimize_move_to_prewhere", "0"),
    ("output_format_json_quote_64bit_integers", "0"),
    ("insert_distributed_sync", "1"),
    ("distributed_product_mode", "local"),
];

/// Where and how to reach ClickHouse.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickhouseConfig {
    /// HTTP URL of the server without credentials, e.g. `http://127.0.0.1:8123` (it is logged).
    pub url: String,
    /// Database (created if missing); letters, digits and `_`.
    pub database: String,
    /// User (sent as `X-ClickHouse-User`).
    pub user: String,
    /// Password (sent as `X-ClickHouse-Key`; empty for none; never printed).
    pub password: Password,
    /// Cluster name from the servers' `remote_servers`, for `Distributed` tables over
    /// `<table>_local` tables on each shard; `None` for a single server.
    pub cluster: Option<String>,
}

impl ClickhouseConfig {
    /// A single server at `url` with the `roentgen` database, as the user and password in the
    /// URL's `user:password@` (taken out of the URL), else the default user.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let split = ServerUrl::parse(&url).unwrap_or(ServerUrl {
            url,
            user: None,
            password: None,
        });
        Self {
            url: split.url,
            database: "roentgen".into(),
            user: split.user.unwrap_or_else(|| "default".into()),
            password: split.password.unwrap_or_default(),
            cluster: None,
        }
    }
}

/// Whether a name is a plain identifier (databases and clusters go into DDL unquoted).
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A string literal for ClickHouse SQL.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A float literal for ClickHouse SQL.
fn number(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

fn id_list(ids: &[String]) -> String {
    ids.iter().map(|i| quote(i)).collect::<Vec<_>>().join(",")
}

/// Day number (partition) of a trace: the epoch in its id, else `fallback` seconds.
fn trace_day(trace_id: &str, fallback: f64) -> u16 {
    let secs = trace_id
        .get(2..10)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(|s| s as f64)
        .unwrap_or(fallback);
    (secs.max(0.0) / 86_400.0).floor().min(f64::from(u16::MAX)) as u16
}

fn day_text(day: u16) -> String {
    let (y, m, d) = roentgen_sdk::model::calendar::civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

fn now_nanos() -> u64 {
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

/// The HTTP connection to one server.
#[derive(Debug, Clone)]
struct Connection {
    http: reqwest::Client,
    config: ClickhouseConfig,
}

impl Connection {
    fn error(&self, e: reqwest::Error) -> StoreError {
        // The request URL carries the query (and the credentials are in headers): keep it out.
        let e = e.without_url();
        if e.is_connect() || e.is_timeout() {
            StoreError::Open(format!(
                "cannot reach ClickHouse at {}: {e}",
                self.config.url
            ))
        } else {
            StoreError::Write(format!("ClickHouse at {}: {e}", self.config.url))
        }
    }

    /// Sends `body` with `query` in the URL (for inserts) or as the body (for everything else).
    async fn send(
        &self,
        database: Option<&str>,
        query: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let mut params: Vec<(&str, &str)> = SETTINGS.to_vec();
        if let Some(db) = database {
            params.push(("database", db));
        }
        if let Some(q) = query {
            params.push(("query", q));
        }
        let response = self
            .request(&params)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.error(e))?;
        if !status.is_success() {
            let detail = text.trim().chars().take(1000).collect::<String>();
            tracing::warn!(%status, detail, "ClickHouse refused a request");
            return Err(StoreError::Write(format!("ClickHouse: {detail}")));
        }
        Ok(text)
    }

    /// A POST with `params` in the query string and the credentials in headers, never in the URL.
    fn request(&self, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.config.url)
            .query(params)
            .header("X-ClickHouse-User", &self.config.user);
        let password = self.config.password.expose();
        if !password.is_empty() {
            // A password that is not a valid header value fails the request, without echoing it.
            request = match reqwest::header::HeaderValue::from_str(password) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header("X-ClickHouse-Key", value)
                }
                Err(_) => request.header("X-ClickHouse-Key", password),
            };
        }
        request
    }

    async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.send(Some(&self.config.database), None, sql.as_bytes().to_vec())
            .await
            .map(drop)
    }

    async fn insert(&self, table: &str, rows: RowBinary) -> Result<(), StoreError> {
        if rows.0.is_empty() {
            return Ok(());
        }
        let query = format!("INSERT INTO {table} FORMAT RowBinary");
        self.send(Some(&self.config.database), Some(&query), rows.0)
            .await
            .map(drop)
    }

    async fn select<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let body = format!("{sql} FORMAT JSONEachRow");
        let text = self
            .send(Some(&self.config.database), None, body.into_bytes())
            .await?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).map_err(StoreError::from))
            .collect()
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The ClickHouse store.
#[derive(Debug)]
pub struct ClickhouseStore {
    conn: Connection,
    writer: mpsc::Sender<(Vec<IngestDocument>, Reply)>,
    version: String,
}

impl ClickhouseStore {
    /// Connects, checks the server version, creates or migrates the schema (idempotent) and the
    /// default sampling rule, and starts the writer task (call within a Tokio runtime).
    pub async fn open(config: ClickhouseConfig) -> Result<Self, StoreError> {
        if !is_identifier(&config.database) {
            return Err(StoreError::Open(format!(
                "ClickHouse database name {:?} must be letters, digits and _",
                config.database
            )));
        }
        if let Some(c) = &config.cluster
            && !is_identifier(c)
        {
            return Err(StoreError::Open(format!(
                "ClickHouse cluster name {c:?} must be letters, digits and _"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| StoreError::Open(format!("HTTP client: {e}")))?;
        let conn = Connection { http, config };
        let version = conn
            .send(None, None, b"SELECT version()".to_vec())
            .await
            .map_err(|e| match e {
                StoreError::Write(d) => StoreError::Open(d),
                e => e,
            })?
            .trim()
            .to_owned();
        let parsed = schema::parse_version(&version).ok_or_else(|| {
            StoreError::Open(format!("ClickHouse answered an odd version {version:?}"))
        })?;
        if parsed < MINIMUM_VERSION {
            return Err(StoreError::Open(format!(
                "ClickHouse {version} at {} is too old; Roentgen needs {}.{} or newer",
                conn.config.url, MINIMUM_VERSION.0, MINIMUM_VERSION.1
            )));
        }
        for ddl in schema::statements(
            &conn.config.database,
            conn.config.cluster.as_deref(),
            Features::of(parsed),
        ) {
            conn.send(None, None, ddl.into_bytes())
                .await
                .map_err(|e| StoreError::Open(format!("creating the schema: {e}")))?;
        }
        let store_conn = conn.clone();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        tokio::spawn(writer_loop(store_conn, rx));
        let store = Self {
            conn,
            writer: tx,
            version,
        };
        if !store.default_rule_exists().await? {
            let now = super::sqlite::now_seconds();
            // Version 1: any later edit (versioned by the clock) wins over a default inserted
            // by another collector starting at the same time.
            store
                .write_rule(
                    &StoredRule {
                        rule: SamplingRule::default_rule(),
                        created_at: now,
                        modified_at: now,
                    },
                    false,
                    1,
                )
                .await?;
        }
        tracing::info!(version = %store.version, url = %store.conn.config.url, database = %store.conn.config.database, "ClickHouse store ready");
        Ok(store)
    }

    /// Whether the default sampling rule exists. In a cluster the shared tables answer only
    /// once every shard has its local tables (each shard's first collector creates them), so
    /// this waits for that, bounded, telling the operator what it waits for.
    async fn default_rule_exists(&self) -> Result<bool, StoreError> {
        let mut attempts = 0;
        loop {
            match self.read_rules().await {
                Ok(rules) => return Ok(rules.iter().any(|r| r.rule.rule_name == DEFAULT_RULE)),
                Err(e) if self.conn.config.cluster.is_some() && attempts < 120 => {
                    attempts += 1;
                    if attempts % 10 == 1 {
                        tracing::warn!(error = %e, cluster = ?self.conn.config.cluster, "waiting for every shard of the cluster to have the schema (start a collector against each shard)");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(StoreError::Open(format!("reading the sampling rules: {e}")));
                }
            }
        }
    }

    /// The server's version text.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Inserts rows made by [`BulkRows::encode`] (samples before summaries, as the writer
    /// does), bypassing the writer task and its read-back.
    pub async fn bulk_insert(&self, rows: BulkRows) -> Result<(), StoreError> {
        self.conn.insert("segments", rows.segments).await?;
        self.conn.insert("samples", rows.samples).await?;
        self.conn.insert("traces", rows.traces).await
    }

    /// Rows in the `segments` table (every document arrival, before merges dedupe them).
    pub async fn segment_rows(&self) -> Result<u64, StoreError> {
        self.count("SELECT count() AS n FROM segments").await
    }

    /// Merges the server is running on this database's tables right now.
    pub async fn running_merges(&self) -> Result<u64, StoreError> {
        self.count(&format!(
            "SELECT count() AS n FROM system.merges WHERE database = {}",
            quote(&self.conn.config.database)
        ))
        .await
    }

    async fn count(&self, sql: &str) -> Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct Count {
            n: u64,
        }
        let rows: Vec<Count> = self.conn.select(sql).await?;
        Ok(rows.first().map(|c| c.n).unwrap_or(0))
    }

    /// Drops this store's database (and everything in it) on the server it talks to.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.conn
            .send(
                None,
                None,
                format!("DROP DATABASE IF EXISTS {}", self.conn.config.database).into_bytes(),
            )
            .await
            .map(drop)
    }

    async fn read_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            rule: String,
            created_at: f64,
            modified_at: f64,
            deleted: u8,
        }
        let rows: Vec<Row> = self
            .conn
            .select(
                "SELECT name, argMax(rule, version) AS rule, argMax(created_at, version) AS created_at,
                        argMax(modified_at, version) AS modified_at, argMax(deleted, version) AS deleted
                 FROM sampling_rules GROUP BY name ORDER BY name",
            )
            .await?;
        rows.into_iter()
            .filter(|r| r.deleted == 0)
            .map(|r| {
                Ok(StoredRule {
                    rule: serde_json::from_str(&r.rule)?,
                    created_at: r.created_at,
                    modified_at: r.modified_at,
                })
            })
            .collect()
    }

    async fn write_rule(
        &self,
        rule: &StoredRule,
        deleted: bool,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        w.string(&rule.rule.rule_name)
            .string(&serde_json::to_string(&rule.rule)?)
            .f64(rule.created_at)
            .f64(rule.modified_at)
            .u8(u8::from(deleted))
            .u64(version);
        self.conn.insert("sampling_rules", w).await
    }

    async fn read_groups(&self) -> Result<Vec<StoredGroup>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            body: String,
            deleted: u8,
        }
        let rows: Vec<Row> = self
            .conn
            .select(
                "SELECT name, argMax(body, version) AS body, argMax(deleted, version) AS deleted
                 FROM groups GROUP BY name ORDER BY name",
            )
            .await?;
        rows.into_iter()
            .filter(|r| r.deleted == 0)
            .map(|r| Ok(serde_json::from_str(&r.body)?))
            .collect()
    }

    async fn write_group(&self, group: &StoredGroup, deleted: bool) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        w.string(&group.name)
            .string(&serde_json::to_string(group)?)
            .u8(u8::from(deleted))
            .u64(now_nanos());
        self.conn.insert("groups", w).await
    }

    async fn summaries(&self, where_sql: &str) -> Result<Vec<TraceRecord>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            summary: String,
            samples: String,
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT summary, samples FROM traces FINAL WHERE {where_sql}"
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TraceRecord {
                    summary: serde_json::from_str::<TraceSummary>(&r.summary)?,
                    samples: if r.samples.is_empty() {
                        Vec::new()
                    } else {
                        serde_json::from_str(&r.samples)?
                    },
                })
            })
            .collect()
    }

    /// Candidate summaries newest first. Fold rows are read without `FINAL` (which merges
    /// every row of the window first): a page of candidate keys is checked against the newest
    /// fold of its traces (stale folds are skipped, so the answer is the same), and only then
    /// are the chosen summaries read, by key.
    async fn scan(&self, q: &ScanQuery) -> Result<Vec<TraceRecord>, StoreError> {
        let mut filters = String::new();
        for p in &q.pushdown {
            let clause = match p {
                Pushdown::HasFault(b) => format!("has_fault = {}", u8::from(*b)),
                Pushdown::HasError(b) => format!("has_error = {}", u8::from(*b)),
                Pushdown::HasThrottle(b) => format!("has_throttle = {}", u8::from(*b)),
                Pushdown::HttpStatus(s) => format!("http_status = {s}"),
                Pushdown::ResponseTime(op, v) => {
                    format!("response_time {} {}", crate::store::op_sql(op), number(*v))
                }
                Pushdown::Duration(op, v) => {
                    format!("duration {} {}", crate::store::op_sql(op), number(*v))
                }
                Pushdown::AnnotationEquals(k, v) => format!(
                    "arrayExists((k, v) -> k = {} AND v = {}, ann_keys, ann_text)",
                    quote(k),
                    quote(v)
                ),
                Pushdown::AnnotationNumber(k, op, v) => format!(
                    "arrayExists((k, n) -> k = {} AND n {} {}, ann_keys, ann_number)",
                    quote(k),
                    crate::store::op_sql(op),
                    number(*v)
                ),
                Pushdown::AnnotationExists(k) => format!("has(ann_keys, {})", quote(k)),
                Pushdown::Service(name) => format!("has(services, {})", quote(name)),
            };
            filters.push_str(" AND ");
            filters.push_str(&clause);
        }
        #[derive(Deserialize)]
        struct Row {
            trace_id: String,
            version: u64,
            fold: u64,
            start_time: f64,
        }
        #[derive(Deserialize)]
        struct Body {
            trace_id: String,
            fold: u64,
            summary: String,
            samples: String,
        }
        #[derive(Deserialize)]
        struct Newest {
            trace_id: String,
            newest_version: u64,
            newest_fold: u64,
        }
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let fetch = q.limit.saturating_mul(2).saturating_add(16);
        let mut after = q.after.clone();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Bounded: each round moves the cursor past `fetch` rows.
        for _ in 0..1_000 {
            // PREWHERE: the filter columns are read first, the rest only where they match.
            let mut sql = format!(
                "SELECT trace_id, version, fold, start_time FROM traces
                 PREWHERE start_time >= {} AND start_time <= {}{filters}",
                number(q.start),
                number(q.end)
            );
            if let Some((t, id)) = &after {
                sql.push_str(&format!(
                    " AND (start_time < {t} OR (start_time = {t} AND trace_id < {}))",
                    quote(id),
                    t = number(*t)
                ));
            }
            sql.push_str(&format!(
                " ORDER BY start_time DESC, trace_id DESC LIMIT {fetch}"
            ));
            let rows: Vec<Row> = self.conn.select(&sql).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some((last.start_time, last.trace_id.clone()));
            let ids: Vec<String> = rows.iter().map(|r| r.trace_id.clone()).collect();
            let mut newest: HashMap<String, (u64, u64)> = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let found: Vec<Newest> = self
                    .conn
                    .select(&format!(
                        "SELECT trace_id, max(version) AS newest_version, argMax(fold, version) AS newest_fold
                         FROM traces WHERE trace_id IN ({}) GROUP BY trace_id",
                        id_list(chunk)
                    ))
                    .await?;
                newest.extend(
                    found
                        .into_iter()
                        .map(|n| (n.trace_id, (n.newest_version, n.newest_fold))),
                );
            }
            let complete_page = rows.len() == fetch;
            let mut chosen: Vec<(String, u64)> = Vec::new();
            for r in rows {
                if out.len() + chosen.len() >= q.limit {
                    break;
                }
                if newest.get(&r.trace_id) == Some(&(r.version, r.fold))
                    && seen.insert(r.trace_id.clone())
                {
                    chosen.push((r.trace_id, r.fold));
                }
            }
            let mut bodies: HashMap<(String, u64), Body> = HashMap::new();
            for chunk in chosen.chunks(IDS_PER_QUERY) {
                let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
                let folds: Vec<String> = chunk.iter().map(|(_, f)| f.to_string()).collect();
                let found: Vec<Body> = self
                    .conn
                    .select(&format!(
                        "SELECT trace_id, fold, summary, {} AS samples FROM traces
                         PREWHERE trace_id IN ({}) AND fold IN ({})",
                        if q.with_samples { "samples" } else { "''" },
                        id_list(&ids),
                        folds.join(",")
                    ))
                    .await?;
                bodies.extend(found.into_iter().map(|b| ((b.trace_id.clone(), b.fold), b)));
            }
            for key in chosen {
                let Some(b) = bodies.remove(&key) else {
                    continue;
                };
                out.push(TraceRecord {
                    summary: serde_json::from_str(&b.summary)?,
                    samples: if b.samples.is_empty() {
                        Vec::new()
                    } else {
                        serde_json::from_str(&b.samples)?
                    },
                });
            }
            if out.len() >= q.limit || !complete_page {
                break;
            }
        }
        Ok(out)
    }

    async fn documents(&self, ids: Vec<String>) -> Result<Vec<StoredTrace>, StoreError> {
        #[derive(Deserialize)]
        struct Head {
            trace_id: String,
            duration: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Doc {
            trace_id: String,
            id: String,
            parent_id: Option<String>,
            subsegment: u8,
            start_time: f64,
            in_progress: u8,
            document: String,
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = id_list(chunk);
            let heads: Vec<Head> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, duration FROM traces FINAL WHERE trace_id IN ({list})"
                ))
                .await?;
            let docs: Vec<Doc> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, id, parent_id, subsegment, start_time, in_progress, document
                     FROM segments WHERE trace_id IN ({list})"
                ))
                .await?;
            let mut by_trace: HashMap<String, BTreeMap<String, (u8, StoredDocument)>> =
                HashMap::new();
            for d in docs {
                let slot = by_trace.entry(d.trace_id).or_default();
                let keep = match slot.get(&d.id) {
                    Some((in_progress, _)) => replaces(*in_progress == 1, d.in_progress == 1),
                    None => true,
                };
                if keep {
                    slot.insert(
                        d.id.clone(),
                        (
                            d.in_progress,
                            StoredDocument {
                                id: d.id,
                                parent_id: d.parent_id,
                                subsegment: d.subsegment != 0,
                                start_time: d.start_time,
                                document: d.document,
                            },
                        ),
                    );
                }
            }
            let heads: HashMap<String, Option<f64>> = heads
                .into_iter()
                .map(|h| (h.trace_id, h.duration))
                .collect();
            for id in chunk {
                let Some(duration) = heads.get(id) else {
                    continue;
                };
                let documents = by_trace
                    .remove(id)
                    .map(|m| m.into_values().map(|(_, d)| d).collect())
                    .unwrap_or_default();
                out.push(StoredTrace {
                    id: id.clone(),
                    duration: *duration,
                    documents,
                });
            }
        }
        Ok(out)
    }

    async fn rollup_rows(&self, first: i64, last: i64) -> Result<Vec<RollupRow>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            minute: i64,
            src: String,
            dst: String,
            outcome: u8,
            bucket: i32,
            n: i64,
            rt: f64,
        }
        // The newest fold of every trace that can have samples in the window: `FINAL` keeps
        // each trace's newest fold row (a streaming merge of the sorted parts, 3x cheaper
        // than a hash `GROUP BY trace_id` over millions of traces), then the span filter
        // applies (`WHERE`, not `PREWHERE`: see `SETTINGS`); a newer fold saw more documents,
        // so its span covers every older fold's. Partitions: a trace's day comes from its id,
        // at most a day before its samples, and all its fold rows share it.
        let (from, to) = (
            first.saturating_mul(60),
            last.saturating_add(1).saturating_mul(60),
        );
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT minute, src, dst, outcome, bucket, toInt64(count()) AS n, sum(response_time) AS rt
                 FROM samples
                 WHERE minute >= {first} AND minute <= {last} AND fold IN (
                     SELECT fold FROM traces FINAL
                     WHERE day >= toDate({day_from}) AND day <= toDate({day_to})
                       AND start_time < {to} AND (end_time >= {from} OR isNull(end_time)))
                 GROUP BY minute, src, dst, outcome, bucket",
                day_from = quote(&day_text((from / 86_400 - 1).clamp(0, LAST_DAY) as u16)),
                day_to = quote(&day_text((to / 86_400).clamp(0, LAST_DAY) as u16)),
            ))
            .await?;
        let mut folded: BTreeMap<(i64, String, String), Stats> = BTreeMap::new();
        for r in rows {
            let s = folded.entry((r.minute, r.src, r.dst)).or_default();
            match r.outcome {
                0 => s.ok += r.n,
                1 => s.error_other += r.n,
                2 => s.throttle += r.n,
                _ => s.fault += r.n,
            }
            s.total_response_time += r.rt;
            *s.histogram.0.entry(r.bucket).or_insert(0) += r.n;
        }
        Ok(RollupRow::from_keyed(folded))
    }

    async fn record_sampling(
        &self,
        now: f64,
        docs: &[crate::sampling::StatisticsDocument],
    ) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        for d in docs {
            w.u16(trace_day("", now))
                .string(&d.rule_name)
                .string(&d.client_id)
                .f64(now)
                .i64(d.request_count);
        }
        self.conn.insert("sampling_clients", w).await
    }

    /// Clients seen since `since` on the rules of `docs`, each with its latest report.
    async fn active_clients(
        &self,
        docs: &[crate::sampling::StatisticsDocument],
        since: f64,
    ) -> Result<Vec<SamplingClient>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            rule: String,
            client_id: String,
            last_seen: f64,
            requests: i64,
        }
        let mut rules: Vec<String> = docs.iter().map(|d| d.rule_name.clone()).collect();
        rules.sort();
        rules.dedup();
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT rule, client_id, max(seen) AS last_seen,
                        argMax(request_count, seen) AS requests
                 FROM sampling_clients
                 WHERE day >= toDate({}) AND seen >= {} AND rule IN ({})
                 GROUP BY rule, client_id",
                quote(&day_text(trace_day("", since))),
                number(since),
                id_list(&rules)
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SamplingClient {
                rule_name: r.rule,
                client_id: r.client_id,
                seen: r.last_seen,
                request_count: r.requests,
            })
            .collect())
    }

    /// Drops whole days older than the cutoff's day from the daily tables on the server this
    /// collector talks to (each shard's collectors drop their own shard's days), days before
    /// yesterday from the sampling clients, and the samples of superseded folds from settled
    /// days (see [`Self::clean_stale_samples`]).
    async fn drop_days_before(&self, cutoff: f64) -> Result<usize, StoreError> {
        let day_of = |t: f64| day_text((t.max(0.0) / 86_400.0).floor().min(65_535.0) as u16);
        let cutoff_day = day_of(cutoff);
        let now = super::sqlite::now_seconds();
        let yesterday = day_of(now - 86_400.0);
        let suffix = if self.conn.config.cluster.is_some() {
            "_local"
        } else {
            ""
        };
        let gone = self
            .count(&format!(
                "SELECT uniqExact(trace_id) AS n FROM traces{suffix} WHERE day < toDate({})",
                quote(&cutoff_day)
            ))
            .await?;
        #[derive(Deserialize)]
        struct Part {
            table: String,
            partition: String,
        }
        let tables = schema::DAILY_TABLES
            .iter()
            .chain(schema::SHORT_LIVED_TABLES.iter())
            .map(|t| quote(&format!("{t}{suffix}")))
            .collect::<Vec<_>>()
            .join(",");
        let parts: Vec<Part> = self
            .conn
            .select(&format!(
                "SELECT DISTINCT table, partition FROM system.parts
                 WHERE database = {} AND table IN ({tables}) AND active",
                quote(&self.conn.config.database)
            ))
            .await?;
        let mut sample_days = Vec::new();
        for p in parts {
            let day = p.partition.trim_matches('\'');
            let short_lived = schema::SHORT_LIVED_TABLES
                .iter()
                .any(|t| p.table == format!("{t}{suffix}"));
            let before = if short_lived {
                cutoff_day.as_str().max(yesterday.as_str())
            } else {
                cutoff_day.as_str()
            };
            if day < before {
                self.conn
                    .execute(&format!(
                        "ALTER TABLE {} DROP PARTITION {}",
                        p.table,
                        quote(day)
                    ))
                    .await?;
            } else if p.table == format!("samples{suffix}") && day < yesterday.as_str() {
                sample_days.push(day.to_owned());
            }
        }
        for day in sample_days {
            self.clean_stale_samples(suffix, &day).await?;
        }
        Ok(gone as usize)
    }

    /// Deletes the samples of superseded folds of one settled `day` (before yesterday, so no
    /// fold of its traces is being written), once per day: a trace's folds each append their
    /// samples and rollups read only the newest, so the others are dead weight until the
    /// day's partition is dropped. One mutation (`ALTER TABLE ... DELETE`, 18.16 has it) per
    /// day and shard; a mutation already listed for the day means it was done.
    async fn clean_stale_samples(&self, suffix: &str, day: &str) -> Result<(), StoreError> {
        let table = format!("samples{suffix}");
        let done = self
            .count(&format!(
                "SELECT count() AS n FROM system.mutations
                 WHERE database = {} AND table = {} AND position(command, {}) > 0",
                quote(&self.conn.config.database),
                quote(&table),
                quote(day)
            ))
            .await?;
        if done > 0 {
            return Ok(());
        }
        tracing::info!(day, table, "deleting the samples of superseded folds");
        self.conn
            .execute(&format!(
                "ALTER TABLE {table} DELETE WHERE day = toDate({d}) AND fold NOT IN (
                     SELECT argMax(fold, version) FROM traces{suffix}
                     WHERE day = toDate({d}) GROUP BY trace_id)",
                d = quote(day)
            ))
            .await
    }
}

/// Groups queued document batches into one insert and fold, then answers each request.
async fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<(Vec<IngestDocument>, Reply)>) {
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
    segments: RowBinary,
    traces: RowBinary,
    samples: RowBinary,
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

impl Store for ClickhouseStore {
    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.writer.is_closed() {
                return Err(StoreError::WriterGone);
            }
            // Reaches the server and the store's database, and checks that this user may
            // write (`readonly` is 0).
            #[derive(serde::Deserialize)]
            struct Setting {
                value: String,
            }
            let rows: Vec<Setting> = self
                .conn
                .select("SELECT value FROM system.settings WHERE name = 'readonly'")
                .await?;
            match rows.first().map(|r| r.value.as_str()) {
                Some("0") | None => Ok(()),
                Some(_) => Err(StoreError::Write(
                    "the ClickHouse user is read-only".to_owned(),
                )),
            }
        })
    }

    fn put_documents(&self, docs: Vec<IngestDocument>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.writer
                .send((docs, tx))
                .await
                .map_err(|_| StoreError::WriterGone)?;
            rx.await.map_err(|_| StoreError::WriterGone)?
        })
    }

    fn scan_traces(&self, query: ScanQuery) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        Box::pin(async move { self.scan(&query).await })
    }

    fn get_traces(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        Box::pin(async move {
            let mut found: HashMap<String, TraceRecord> = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                for r in self
                    .summaries(&format!("trace_id IN ({})", id_list(chunk)))
                    .await?
                {
                    found.insert(r.summary.id.clone(), r);
                }
            }
            Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
        })
    }

    fn trace_documents(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, StoreError>> {
        Box::pin(self.documents(ids))
    }

    fn rollups(&self, first: i64, last: i64) -> BoxFuture<'_, Result<Vec<RollupRow>, StoreError>> {
        Box::pin(self.rollup_rows(first, last))
    }

    fn sampling_rules(&self) -> BoxFuture<'_, Result<Vec<StoredRule>, StoreError>> {
        Box::pin(self.read_rules())
    }

    fn put_sampling_rule(
        &self,
        rule: StoredRule,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let existing = self
                .read_rules()
                .await?
                .into_iter()
                .find(|r| r.rule.rule_name == rule.rule.rule_name);
            match (&existing, create) {
                (Some(_), true) => return Err(StoreError::Exists(rule.rule.rule_name)),
                (None, false) => return Err(StoreError::NotFound(rule.rule.rule_name)),
                _ => {}
            }
            let stored = StoredRule {
                created_at: existing.map(|e| e.created_at).unwrap_or(rule.created_at),
                ..rule
            };
            self.write_rule(&stored, false, now_nanos()).await
        })
    }

    fn delete_sampling_rule(&self, name: String) -> BoxFuture<'_, Result<StoredRule, StoreError>> {
        Box::pin(async move {
            let rule = self
                .read_rules()
                .await?
                .into_iter()
                .find(|r| r.rule.rule_name == name)
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            self.write_rule(&rule, true, now_nanos()).await?;
            Ok(rule)
        })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<StoredGroup>, StoreError>> {
        Box::pin(self.read_groups())
    }

    fn put_group(&self, group: StoredGroup, create: bool) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let exists = self
                .read_groups()
                .await?
                .iter()
                .any(|g| g.name == group.name);
            match (exists, create) {
                (true, true) => return Err(StoreError::Exists(group.name)),
                (false, false) => return Err(StoreError::NotFound(group.name)),
                _ => {}
            }
            self.write_group(&group, false).await
        })
    }

    fn delete_group(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let group = self
                .read_groups()
                .await?
                .into_iter()
                .find(|g| g.name == name)
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            self.write_group(&group, true).await
        })
    }

    fn put_telemetry(&self, rows: Vec<TelemetryRow>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut w = RowBinary::default();
            for r in &rows {
                w.u16(trace_day("", r.received_at))
                    .f64(r.received_at)
                    .opt_string(r.hostname.as_deref())
                    .opt_string(r.instance_id.as_deref())
                    .string(&r.record);
            }
            self.conn.insert("telemetry", w).await
        })
    }

    fn report_sampling(
        &self,
        now: f64,
        docs: Vec<crate::sampling::StatisticsDocument>,
        active_since: f64,
    ) -> BoxFuture<'_, Result<Option<Vec<SamplingClient>>, StoreError>> {
        Box::pin(async move {
            self.record_sampling(now, &docs).await?;
            self.active_clients(&docs, active_since).await.map(Some)
        })
    }

    fn delete_before(
        &self,
        cutoff: f64,
        _max_traces: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.drop_days_before(cutoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::prepared;

    /// Polls `count` (bounded) until it returns `want`; returns the last value.
    async fn settles_at(store: &ClickhouseStore, sql: &str, want: u64) -> u64 {
        let mut last = u64::MAX;
        // Mutations run in the background: up to two minutes on a loaded machine.
        for _ in 0..1_200 {
            last = store.count(sql).await.unwrap();
            if last == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }

    #[test]
    fn credentials_travel_in_headers_not_in_the_url() {
        let config = ClickhouseConfig::new("http://writer:hunter2@ch.internal:8123");
        assert_eq!(config.url, "http://ch.internal:8123");
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let conn = Connection {
            http: reqwest::Client::new(),
            config,
        };
        let request = conn.request(&[("query", "SELECT 1")]).build().unwrap();
        assert!(
            !request.url().as_str().contains("hunter2"),
            "{}",
            request.url()
        );
        assert!(
            !request.url().as_str().contains("writer"),
            "{}",
            request.url()
        );
        assert_eq!(request.headers()["X-ClickHouse-User"], "writer");
        assert_eq!(request.headers()["X-ClickHouse-Key"], "hunter2");
        assert!(request.headers()["X-ClickHouse-Key"].is_sensitive());
    }

    #[tokio::test]
    async fn a_password_user_connects_and_a_wrong_password_is_refused_unechoed() {
        let (user, password) = server::PASSWORD_USER;
        let base = testing::clickhouse_url(false);
        let url = base.replacen("http://", &format!("http://{user}:{password}@"), 1);
        let mut config = ClickhouseConfig::new(url);
        config.database = format!("pw{}", std::process::id());
        let store = ClickhouseStore::open(config.clone()).await.unwrap();
        assert_eq!(store.conn.config.user, user);
        config.password = Password::new("wrong-hunter2");
        let e = ClickhouseStore::open(config).await.unwrap_err().to_string();
        assert!(!e.contains("hunter2") && !e.contains(password), "{e}");
        assert!(e.contains("roentgen_pw") || e.contains("assword"), "{e}");
    }

    #[tokio::test]
    async fn settled_days_lose_superseded_fold_samples_and_old_sampling_clients() {
        let place = testing::Place::new(testing::Backend::Clickhouse);
        let store = place.clickhouse().await;
        let now = crate::store::sqlite::now_seconds();
        let old = now - 5.0 * 86_400.0;
        // Two folds of one old trace: its first document alone, then both.
        let docs = crate::synth::shop_trace(7, old);
        store.put_documents(prepared(&docs[..1])).await.unwrap();
        store.put_documents(prepared(&docs)).await.unwrap();
        let newest = "SELECT count() AS n FROM samples WHERE fold IN (
                          SELECT argMax(fold, version) FROM traces GROUP BY trace_id)";
        let all = "SELECT count() AS n FROM samples";
        let (kept, before) = (
            store.count(newest).await.unwrap(),
            store.count(all).await.unwrap(),
        );
        assert!(kept > 0 && before > kept, "{kept} of {before}");
        let minute = (old / 60.0).floor() as i64;
        let rollups = store.rollups(minute - 2, minute + 2).await.unwrap();
        assert!(!rollups.is_empty());
        let report = |client: &str| crate::sampling::StatisticsDocument {
            rule_name: DEFAULT_RULE.into(),
            client_id: client.into(),
            timestamp: 0.0,
            request_count: 1,
            sampled_count: 0,
            borrow_count: 0,
        };
        store
            .report_sampling(old, vec![report("old")], old - 30.0)
            .await
            .unwrap();
        let seen = store
            .report_sampling(now, vec![report("new")], now - 30.0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.len(), 1, "the old report is not active: {seen:?}");

        // Retention far older than the trace: nothing is dropped but the dead weight.
        for _ in 0..2 {
            assert_eq!(
                store
                    .delete_before(old - 30.0 * 86_400.0, 10)
                    .await
                    .unwrap(),
                0
            );
        }
        assert_eq!(settles_at(&store, all, kept).await, kept);
        assert_eq!(
            store.rollups(minute - 2, minute + 2).await.unwrap(),
            rollups
        );
        let clients = "SELECT count() AS n FROM sampling_clients";
        assert_eq!(store.count(clients).await.unwrap(), 1);
        let mutations = format!(
            "SELECT count() AS n FROM system.mutations WHERE database = {} AND table = 'samples'",
            quote(&store.conn.config.database)
        );
        assert_eq!(
            store.count(&mutations).await.unwrap(),
            1,
            "one mutation per day"
        );
    }

    #[test]
    fn days_and_literals() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(18_262), "2020-01-01");
        assert_eq!(day_text(LAST_DAY as u16), "2105-12-31");
        assert_eq!(
            trace_day("1-5e0be100-000000000000000000000000", 0.0),
            18_262
        );
        assert_eq!(trace_day("bad", 86_400.0 * 3.5), 3);
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(1.5), "1.5");
        assert!(is_identifier("roentgen_2"));
        assert!(!is_identifier("x; DROP"));
    }
}
