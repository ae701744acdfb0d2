//! Test fixtures for running one test suite against every store: a [`Backend`] names the
//! store, a [`Place`] holds one test's data (a directory for SQLite, a fresh database on a
//! local ClickHouse server started once per test binary), and [`for_each_store!`] (or
//! [`for_each_clickhouse!`]) turns
//! `async fn name(backend: Backend)` tests into one `#[tokio::test]` per store.

use super::server::{Engine, LocalServer};
use super::{ClickhouseConfig, ClickhouseStore};
use crate::store::Store;
use crate::store::TraceLimits;
use crate::store::sqlite::{ReadLimits, SqliteStore};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    /// The embedded SQLite store.
    Sqlite,
    /// ClickHouse 18.16 (`clickhouse-server`).
    Clickhouse,
    /// ClickHouse 26.9 (`chdb-core`).
    Clickhouse26,
}

/// Where one test's data lives; [`Place::open`] opens (or reopens) a store on it.
pub(crate) struct Place {
    backend: Backend,
    dir: tempfile::TempDir,
    database: String,
}

pub(crate) fn clickhouse_url(modern: bool) -> String {
    // Stopped when the test binary exits (the server's guard sees its pipe close).
    static SERVER: std::sync::OnceLock<LocalServer> = std::sync::OnceLock::new();
    static MODERN: std::sync::OnceLock<LocalServer> = std::sync::OnceLock::new();
    if modern {
        MODERN
            .get_or_init(|| LocalServer::start_engine(&Engine::chdb()).unwrap())
            .url()
    } else {
        SERVER.get_or_init(|| LocalServer::start().unwrap()).url()
    }
}

impl Place {
    /// A fresh, empty place for `backend`.
    pub(crate) fn new(backend: Backend) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            backend,
            dir: tempfile::tempdir().unwrap(),
            database: format!("t{}_{n}", std::process::id()),
        }
    }

    /// Opens a ClickHouse store over this place's data (for ClickHouse-only tests).
    pub(crate) async fn clickhouse(&self) -> ClickhouseStore {
        self.clickhouse_with(TraceLimits::default()).await
    }

    async fn clickhouse_with(&self, limits: TraceLimits) -> ClickhouseStore {
        let modern = matches!(self.backend, Backend::Clickhouse26);
        let mut config = ClickhouseConfig::new(clickhouse_url(modern));
        config.database = self.database.clone();
        config.trace_limits = limits;
        ClickhouseStore::open(config).await.unwrap()
    }

    /// Opens a store over this place's data.
    pub(crate) async fn open(&self) -> std::sync::Arc<dyn Store> {
        self.open_with(TraceLimits::default()).await
    }

    /// Opens a store over this place's data with these trace limits.
    pub(crate) async fn open_with(&self, limits: TraceLimits) -> std::sync::Arc<dyn Store> {
        match self.backend {
            Backend::Sqlite => std::sync::Arc::new(
                SqliteStore::open_with(self.dir.path(), ReadLimits::default(), limits).unwrap(),
            ),
            Backend::Clickhouse | Backend::Clickhouse26 => {
                std::sync::Arc::new(self.clickhouse_with(limits).await)
            }
        }
    }
}

impl ClickhouseStore {
    /// Stops the server's background merges of one of this store's tables (so a test sees
    /// every row each insert made).
    pub(crate) async fn stop_merges(&self, table: &str) {
        self.conn
            .execute(&format!("SYSTEM STOP MERGES {table}"))
            .await
            .unwrap();
    }
}

/// A fresh place and a store open on it.
pub(crate) async fn store(backend: Backend) -> (Place, std::sync::Arc<dyn Store>) {
    let place = Place::new(backend);
    let store = place.open().await;
    (place, store)
}

/// Runs each named test (an `async fn(Backend)` in the calling module) once per store, as
/// `sqlite_store::NAME`, `clickhouse_store::NAME` (18.16) and `clickhouse26_store::NAME`.
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::store::clickhouse::testing::Backend::Sqlite).await
            })*
        }
        $crate::store::clickhouse::testing::for_each_clickhouse!($($name),*);
    };
}
/// Runs each named test (an `async fn(Backend)` in the calling module) once per ClickHouse
/// server, as `clickhouse_store::NAME` (18.16) and `clickhouse26_store::NAME`.
macro_rules! for_each_clickhouse {
    ($($name:ident),* $(,)?) => {
        mod clickhouse_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::store::clickhouse::testing::Backend::Clickhouse).await
            })*
        }
        mod clickhouse26_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::store::clickhouse::testing::Backend::Clickhouse26).await
            })*
        }
    };
}
pub(crate) use for_each_clickhouse;
pub(crate) use for_each_store;

impl ClickhouseStore {
    /// Runs a statement on the store's database (for tests that shape stored rows as an
    /// older release left them).
    pub(crate) async fn run_for_test(&self, sql: &str) {
        self.conn.execute(sql).await.unwrap();
    }
}
