//! The scale-out store: ClickHouse over its HTTP interface, for many collectors in front of one
//! server or a cluster. Collectors keep nothing that matters: every write goes to the server,
//! every answer is read back from it, so any collector answers like any other.
//!
//! Documents are appended (bulk `RowBinary` inserts, grouped across concurrent requests by one
//! writer task per collector); the writer folds each trace it touched from the facts it holds
//! in memory, with no query to the store first, and appends the fold (summary and samples)
//! with a version that grows with the documents and complete documents it saw. A trace it
//! holds only part of, or that another collector may also be writing, is checked off the write
//! path by the reconciler (`reconcile`), which folds it again from the stored documents when
//! the store holds more than the newest fold saw; so the newest fold becomes the whole trace
//! within about a second of the last write. The engine keeps the newest fold
//! (`ReplacingMergeTree`), and rollups add up the samples of each trace's newest fold only, so
//! folds arriving in any order or twice never double count. Sampling reports go to the store
//! too ([`Store::report_sampling`]), so reservoirs are split among every collector's clients.
//! See [`schema`] for the tables.
//!
//! One concern per file, named like the SQLite store's where the concern is the same:
//! `connection` (HTTP, SQL literals), `writer` (the writer task, folding, [`BulkRows`]),
//! `reconcile` (folds checked against the store, off the write path),
//! `reads` (summaries, scans, documents), `facets` (analytics facets), `rollups` (the graph's per-minute rollups and the
//! task that settles them), `retention`, `settings` (sampling rules and
//! groups), `sampling` (the shared sampling reports); `schema`, `rowbinary`, `credentials`,
//! `server`. This file holds the configuration, [`ClickhouseStore::open`] and the [`Store`]
//! methods that call into them.

mod alarms;
mod connection;
pub mod credentials;
mod facets;
mod reads;
mod reconcile;
mod retention;
mod rollups;
pub mod rowbinary;
mod sampling;
pub mod schema;
pub mod server;
mod settings;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::live::{LiveCounters, LiveTraces, MAX_SUSPECTS, TraceLimits, id_epoch};
use super::{
    AlarmEvent, BoxFuture, EventQuery, FacetQuery, FacetRow, IngestDocument, RollupRow,
    SamplingClient, ScanQuery, Store, StoreError, StoredAlarm, StoredGroup, StoredRule,
    StoredTrace, TelemetryRow, TraceRecord, Written,
};
pub use connection::is_identifier;
use connection::{Connection, quote};
pub use credentials::{Password, ServerUrl};
use schema::{Features, MINIMUM_VERSION};
pub use writer::BulkRows;
use writer::{Reply, WRITER_QUEUE, writer_loop};

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
    /// Caps per trace and the writer's live-trace memory.
    pub trace_limits: TraceLimits,
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
            trace_limits: TraceLimits::default(),
        }
    }
}

/// The ClickHouse store.
#[derive(Debug)]
pub struct ClickhouseStore {
    conn: Connection,
    writer: mpsc::Sender<(Vec<IngestDocument>, Reply)>,
    version: String,
    /// What the server supports beyond 18.16 (some reads use it).
    features: Features,
    live: Arc<LiveCounters>,
    /// The writer's traces waiting for the reconciler.
    pending: Arc<reconcile::Pending>,
    /// Dropped with the store: stops the tasks that settle rollups and reconcile traces.
    _stop_settling: oneshot::Sender<()>,
    _stop_reconciling: oneshot::Sender<()>,
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
        let conn = Connection {
            http: http_client()?,
            config,
        };
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
        let opening = |e: StoreError| StoreError::Open(format!("reading the schema: {e}"));
        let had_samples = conn.has_table("samples").await.map_err(opening)?;
        let had_writes = conn.has_table("rollup_writes").await.map_err(opening)?;
        let features = Features::of(parsed);
        for ddl in schema::statements(
            &conn.config.database,
            conn.config.cluster.as_deref(),
            features,
        ) {
            conn.send(None, None, ddl.into_bytes())
                .await
                .map_err(|e| StoreError::Open(format!("creating the schema: {e}")))?;
        }
        migrate(&conn, features)
            .await
            .map_err(|e| StoreError::Open(format!("updating the schema: {e}")))?;
        if had_samples && !had_writes {
            tracing::info!("stamping the minutes already stored, to settle their rollups");
            let sql = schema::backfill_rollup_writes(
                &conn.config.database,
                conn.config.cluster.as_deref(),
            );
            conn.send(None, None, sql.into_bytes())
                .await
                .map_err(|e| StoreError::Open(format!("stamping stored minutes: {e}")))?;
        }
        // The writer encodes and folds (CPU work): it runs on a thread of its own, with its
        // own runtime and HTTP client, off the runtime that serves requests.
        let store_conn = Connection {
            http: http_client()?,
            config: conn.config.clone(),
        };
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let live = Arc::new(LiveCounters::default());
        let (stop_settling, stop) = oneshot::channel();
        tokio::spawn(rollups::settle_loop(conn.clone(), stop, live.clone()));
        let traces = live_traces(&conn, live.clone())
            .await
            .map_err(|e| StoreError::Open(format!("reading the newest trace ids: {e}")))?;
        let pending = Arc::new(reconcile::Pending::new(writer::fold_id(), live.clone()));
        let (stop_reconciling, stop) = oneshot::channel();
        tokio::spawn(reconcile::reconcile_loop(
            conn.clone(),
            pending.clone(),
            stop,
        ));
        let writer_pending = pending.clone();
        std::thread::Builder::new()
            .name("roentgen-ch-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(writer_loop(store_conn, rx, traces, writer_pending))
                    }
                    // Its queue closes with it: every write is refused as `WriterGone`.
                    Err(e) => tracing::error!(error = %e, "cannot start the ClickHouse writer"),
                }
            })
            .map_err(|e| StoreError::Open(format!("starting the writer thread: {e}")))?;
        let store = Self {
            conn,
            writer: tx,
            version,
            features,
            live,
            pending,
            _stop_settling: stop_settling,
            _stop_reconciling: stop_reconciling,
        };
        store.ensure_default_rule().await?;
        tracing::info!(version = %store.version, url = %store.conn.config.url, database = %store.conn.config.database, "ClickHouse store ready");
        Ok(store)
    }

    /// Runs a round of the reconciler now over the traces queued so far (as its task does
    /// every second); returns how many were folded again. For tests and benchmarks.
    pub async fn reconcile_now(&self) -> Result<usize, StoreError> {
        reconcile::round(&self.conn, &self.pending).await
    }

    /// The server's version text.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Inserts rows made by [`BulkRows::encode`] (as the writer does: minutes stamped,
    /// samples before summaries), bypassing the writer task.
    pub async fn bulk_insert(&self, rows: BulkRows) -> Result<(), StoreError> {
        rows.insert(&self.conn).await
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
}

/// The writer's live traces at start: every stored trace is below the horizon (now) or a
/// suspect, so its next piece goes to the reconciler; a stored trace whose id-epoch is ahead
/// of the clock is named, and past [`MAX_SUSPECTS`] of them the horizon moves past the newest
/// instead (as the SQLite store does).
async fn live_traces(
    conn: &Connection,
    counters: Arc<LiveCounters>,
) -> Result<LiveTraces<writer::Held>, StoreError> {
    #[derive(Deserialize)]
    struct Id {
        trace_id: String,
    }
    let now = super::now_seconds() as u32;
    let ahead: Vec<Id> = conn
        .select(&format!(
            "SELECT DISTINCT trace_id FROM traces WHERE trace_id >= {} LIMIT {}",
            quote(&format!("1-{now:08x}")),
            MAX_SUSPECTS + 1
        ))
        .await?;
    let horizon = if ahead.len() > MAX_SUSPECTS {
        let newest: Vec<Id> = conn
            .select("SELECT max(trace_id) AS trace_id FROM traces")
            .await?;
        newest
            .first()
            .map_or(now, |n| id_epoch(&n.trace_id).saturating_add(1).max(now))
    } else {
        now
    };
    let mut live = LiveTraces::new(horizon, conn.config.trace_limits, counters);
    if horizon == now {
        for id in ahead {
            live.suspect(id.trace_id);
        }
    }
    Ok(live)
}

/// The HTTP client a connection to ClickHouse uses.
fn http_client() -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| StoreError::Open(format!("HTTP client: {e}")))
}

/// Brings tables made by an older release to what [`schema::migrations`] lists; in a
/// cluster, the local table and, for a column, the `Distributed` one.
async fn migrate(conn: &Connection, features: Features) -> Result<(), StoreError> {
    #[derive(Deserialize)]
    struct Created {
        create_table_query: String,
    }
    let database = &conn.config.database;
    for m in schema::migrations(features) {
        let (table, name, clause) = (m.table, m.name, &m.clause);
        let mut targets = Vec::new();
        match conn.config.cluster {
            Some(_) => {
                targets.push(format!("{table}_local"));
                if clause.contains("COLUMN") {
                    targets.push(table.to_owned());
                }
            }
            None => targets.push(table.to_owned()),
        }
        for target in targets {
            let created: Vec<Created> = conn
                .select(&format!(
                    "SELECT create_table_query FROM system.tables
                     WHERE database = {} AND name = {}",
                    quote(database),
                    quote(&target)
                ))
                .await?;
            // Newer servers quote names in backticks.
            let has = |c: &Created| {
                c.create_table_query
                    .replace('`', "")
                    .contains(&format!(" {name} "))
            };
            if created.iter().any(|c| has(c) != m.wanted) {
                tracing::info!(table = %target, name, "adding to a table made by an older release");
                conn.execute(&format!("ALTER TABLE {database}.{target} {clause}"))
                    .await?;
            }
        }
    }
    Ok(())
}

impl Store for ClickhouseStore {
    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.writer.is_closed() {
                return Err(StoreError::WriterGone);
            }
            self.conn.check_writable().await
        })
    }

    fn put_documents(
        &self,
        docs: Vec<IngestDocument>,
    ) -> BoxFuture<'_, Result<Written, StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.writer
                .send((docs, tx))
                .await
                .map_err(|_| StoreError::WriterGone)?;
            rx.await.map_err(|_| StoreError::WriterGone)?
        })
    }

    fn live_counters(&self) -> Option<Arc<LiveCounters>> {
        Some(self.live.clone())
    }

    fn reconcile_now(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(ClickhouseStore::reconcile_now(self))
    }

    fn scan_traces(&self, query: ScanQuery) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        Box::pin(async move { self.scan(&query).await })
    }

    /// One query: each part would scan the window's rows again.
    fn facet_parts(&self) -> u32 {
        1
    }

    fn scan_facets(&self, query: FacetQuery) -> BoxFuture<'_, Result<Vec<FacetRow>, StoreError>> {
        Box::pin(async move { self.facets(&query).await })
    }

    fn get_traces(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<TraceRecord>, StoreError>> {
        Box::pin(self.traces_by_id(ids))
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
        Box::pin(self.save_rule(rule, create))
    }

    fn delete_sampling_rule(&self, name: String) -> BoxFuture<'_, Result<StoredRule, StoreError>> {
        Box::pin(self.remove_rule(name))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<StoredGroup>, StoreError>> {
        Box::pin(self.read_groups())
    }

    fn put_group(&self, group: StoredGroup, create: bool) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.save_group(group, create))
    }

    fn delete_group(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.remove_group(name))
    }

    fn put_telemetry(&self, rows: Vec<TelemetryRow>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write_telemetry(rows))
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

    fn alarm_rules(&self) -> BoxFuture<'_, Result<Vec<StoredAlarm>, StoreError>> {
        Box::pin(self.read_alarm_rules())
    }

    fn put_alarm_rule(
        &self,
        alarm: StoredAlarm,
        create: bool,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.save_alarm_rule(alarm, create))
    }

    fn delete_alarm_rule(&self, name: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.remove_alarm_rule(name))
    }

    fn put_alarm_events(&self, events: Vec<AlarmEvent>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write_alarm_events(events))
    }

    fn alarm_events(
        &self,
        query: EventQuery,
    ) -> BoxFuture<'_, Result<Vec<AlarmEvent>, StoreError>> {
        Box::pin(self.read_alarm_events(query))
    }

    fn take_lease(
        &self,
        name: String,
        holder: String,
        now: f64,
        ttl: f64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { self.claim_lease(&name, &holder, now, ttl).await })
    }

    fn put_insights(
        &self,
        insights: Vec<crate::insights::Insight>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write_insights(insights))
    }

    fn insights(
        &self,
        start: f64,
        end: f64,
        id: Option<String>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::insights::Insight>, StoreError>> {
        Box::pin(self.read_insights(start, end, id, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Backend, Place};
    use super::*;
    use crate::test_support::prepared;

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

    /// Rows with response-time sums rounded (the server adds floats in any order).
    async fn graph(store: &ClickhouseStore) -> Vec<String> {
        let rows = store.rollups(0, i64::MAX).await.unwrap();
        rows.into_iter()
            .map(|r| {
                let t = r.stats.total_response_time;
                let mut s = r.stats;
                s.total_response_time = 0.0;
                format!("{} {} {} {s:?} {t:.4}", r.minute, r.src, r.dst)
            })
            .collect()
    }

    /// A store made before `rollup_writes`, `ann_pairs` and `facets` existed: opening it
    /// stamps the minutes stored and adds the columns in their order (`ann_pairs`' default
    /// computed for the rows stored), so minutes read (and settle), annotations are found as
    /// before, and new folds are written.
    #[tokio::test]
    async fn a_store_from_an_older_release_is_brought_up_to_date_when_opened() {
        let place = Place::new(Backend::Clickhouse26);
        let store = place.clickhouse().await;
        let start = crate::store::now_seconds() - 7_200.0;
        let docs: Vec<String> = (0..10)
            .flat_map(|n| crate::synth::fleet_trace(n, start + n as f64 * 20.0))
            .collect();
        store.put_documents(prepared(&docs)).await.unwrap();
        let before = graph(&store).await;
        assert!(!before.is_empty());
        let search = || {
            let by_order = crate::store::Pushdown::AnnotationEquals("order".into(), "ord-7".into());
            crate::test_support::scan_all(start - 60.0, start + 600.0, vec![by_order], 10, false)
        };
        assert_eq!(store.scan_traces(search()).await.unwrap().len(), 1);
        // As a release before the rollup stamps, `ann_pairs` and `facets` left it.
        for ddl in [
            "DROP TABLE rollup_writes",
            "ALTER TABLE traces DROP INDEX by_annotation",
            "ALTER TABLE traces DROP COLUMN facets",
            "ALTER TABLE traces DROP COLUMN ann_pairs",
            "ALTER TABLE segments ADD COLUMN facts String",
        ] {
            store.conn.execute(ddl).await.unwrap();
        }
        drop(store);
        let store = place.clickhouse().await;
        assert_eq!(store.scan_traces(search()).await.unwrap().len(), 1);
        assert_eq!(graph(&store).await, before);
        assert!(store.settle_rollups_now().await.unwrap() >= 3);
        assert_eq!(graph(&store).await, before);
        let more = crate::synth::fleet_trace(99, start + 300.0);
        store.put_documents(prepared(&more)).await.unwrap();
        assert_eq!(
            store.segment_rows().await.unwrap(),
            (docs.len() + more.len()) as u64
        );
    }
}
