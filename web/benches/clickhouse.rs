//! Scale-out store benchmarks, ClickHouse next to SQLite in the same run:
//! - ingest: documents/s through each store's `put_documents` (summaries and rollup data
//!   kept up to date), the same batches of shop documents, validation done outside the timing;
//! - `GetServiceGraph` over one hour (and six) of `ROENTGEN_BENCH_CH_SEGMENTS` segment documents
//!   (default 10,000,000, in two-segment shop traces) on ClickHouse; the dataset is built once
//!   into a server directory kept between runs (`ROENTGEN_BENCH_CH_DIR`, default
//!   `target/clickhouse-bench`, `target/clickhouse26-bench` for 26.9) and reused while it
//!   holds the expected rows; `ROENTGEN_BENCH_CH_ENGINE=chdb` runs the queries on ClickHouse
//!   26.9 (`chdb-core`) instead of Debian's 18.16;
//! - `GetTraceSummaries` with a selective filter over the same data, pushed down into
//!   ClickHouse, against one page of the same filter in a form that cannot be pushed down.
//!
//! Each benchmark starts its own `clickhouse-server` (installed by `scripts/setup`) on
//! loopback ports.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{BATCH_DOCUMENTS, HOUR_START, cpu_seconds, prepare, runtime, store_batches};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roentgen_web::store::Store;
use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
use roentgen_web::store::clickhouse::{BulkRows, ClickhouseConfig, ClickhouseStore};
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::synth;

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let server = LocalServer::start().expect("clickhouse-server");
    let clickhouse = rt
        .block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
        .expect("clickhouse store");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path()).expect("sqlite store");
    let stores: [(&str, &dyn Store); 2] = [("clickhouse", &clickhouse), ("sqlite", &sqlite)];
    let mut next = 0u64;
    let mut group = c.benchmark_group("store_ingest");
    group.throughput(Throughput::Elements(BATCH_DOCUMENTS as u64));
    group.sample_size(20);
    for (name, store) in stores {
        let (docs_before, own_before) = (next, cpu_seconds("self"));
        let server_before = server.usage();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| store_batches(&rt, store, &mut next, iters))
        });
        // Resources per document of this store's ingest (warm-up included), for the
        // deployment guide's sizing.
        let docs = (next - docs_before) as f64;
        let own = cpu_seconds("self") - own_before;
        let server_cpu = match (server_before, server.usage()) {
            (Some((before, _)), Some((after, rss))) if name == "clickhouse" => format!(
                ", clickhouse-server {:.1} µs CPU/document ({:.0} MB resident)",
                (after - before) / docs * 1e6,
                rss as f64 / 1e6
            ),
            _ => String::new(),
        };
        eprintln!(
            "ingest into {name}: {docs} documents (incl. warm-up), bench process (collector side \
             and, for sqlite, the store) {:.1} µs CPU/document{server_cpu}",
            own / docs * 1e6
        );
    }
    group.finish();
}

fn segments() -> usize {
    std::env::var("ROENTGEN_BENCH_CH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

/// Traces in the query dataset: shop traces of two segment documents each.
fn traces() -> usize {
    segments().div_ceil(2)
}

/// The engine of the query dataset's server: `ROENTGEN_BENCH_CH_ENGINE=chdb` for ClickHouse
/// 26.9 from `chdb-core` (needs `ROENTGEN_PYTHON` or the workspace's `.venv`), else Debian's
/// `clickhouse-server` (18.16).
fn engine() -> Engine {
    match std::env::var("ROENTGEN_BENCH_CH_ENGINE").as_deref() {
        Ok("chdb") => Engine::chdb(),
        _ => Engine::Server,
    }
}

/// Where the query dataset's server keeps its data between runs (one directory per engine).
fn dataset_dir() -> std::path::PathBuf {
    let name = match engine() {
        Engine::Server => "clickhouse-bench",
        _ => "clickhouse26-bench",
    };
    std::env::var_os("ROENTGEN_BENCH_CH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(name)
        })
}

/// Shop traces (two segments each, several services, inferred nodes, errors, throttles,
/// faults, annotations) numbered `first..first + count`, spread evenly over the hour.
fn encoded(first: usize, count: usize, total: usize) -> BulkRows {
    let raw: Vec<String> = (first..first + count)
        .flat_map(|k| {
            let start = HOUR_START + (k as f64 * 3600.0 / total as f64);
            synth::shop_trace(k as u64, start)
        })
        .collect();
    BulkRows::encode(&prepare(&raw)).expect("encode")
}

/// A ClickHouse store holding `segments()` documents over one hour, in a database of its
/// own on a server whose data outlives the run: built once with bulk `RowBinary` inserts
/// straight into the store's tables (the rows the store would write, folded in memory by
/// two generator threads), reused while it holds the expected number of rows.
fn big_store(rt: &tokio::runtime::Runtime) -> (LocalServer, Arc<ClickhouseStore>) {
    let traces = traces();
    let server =
        LocalServer::start_engine_in(&engine(), &dataset_dir()).expect("clickhouse-server");
    let mut config = ClickhouseConfig::new(server.url());
    config.database = format!("bench_{traces}_shop_traces");
    let store = Arc::new(
        rt.block_on(ClickhouseStore::open(config.clone()))
            .expect("store"),
    );
    let expected = (traces * 2) as u64;
    let held = rt.block_on(store.segment_rows()).expect("count");
    if held == expected {
        eprintln!(
            "reusing {held} segments ({traces} traces) in {}",
            config.database
        );
    } else {
        let t = Instant::now();
        rt.block_on(store.drop_database()).expect("drop");
        let store = rt.block_on(ClickhouseStore::open(config)).expect("store");
        const CHUNK: usize = 10_000;
        let (tx, rx) = std::sync::mpsc::sync_channel::<BulkRows>(2);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (tx, next) = (tx.clone(), next.clone());
                std::thread::spawn(move || {
                    loop {
                        let first = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
                        if first >= traces {
                            break;
                        }
                        let rows = encoded(first, CHUNK.min(traces - first), traces);
                        if tx.send(rows).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut written = 0;
        for rows in rx {
            written += rows.documents();
            rt.block_on(store.bulk_insert(rows)).expect("insert");
            if written % 1_000_000 < CHUNK * 2 {
                eprintln!("{written} segments in {:.0} s", t.elapsed().as_secs_f64());
            }
        }
        for w in workers {
            w.join().expect("generator");
        }
        eprintln!(
            "built {written} segments ({traces} traces) over one hour in ClickHouse in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    // Measure a settled server: wait (bounded) for background merges to finish.
    for _ in 0..3_600 {
        if rt.block_on(store.running_merges()).expect("merges") == 0 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Settle the graph's per-minute rollups, as the collector's background task does once a
    // minute is quiet; its cost is what a dirty minute costs a read.
    let (t, before) = (Instant::now(), server.usage());
    let minutes = rt.block_on(store.settle_rollups_now()).expect("settle");
    let server_cpu = match (before, server.usage()) {
        (Some((b, _)), Some((a, _))) => format!(", clickhouse-server {:.1} s CPU", a - b),
        _ => String::new(),
    };
    eprintln!(
        "settled {minutes} minutes of rollups in {:.1} s (wall, including a wait of a few \
         seconds for the last write to age){server_cpu}",
        t.elapsed().as_secs_f64()
    );
    (server, store)
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    let big = std::cell::OnceCell::new();
    let get = || big.get_or_init(|| big_store(&rt));
    let traces = traces();

    let mut group = c.benchmark_group("clickhouse_service_graph_1h");
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::new("settled_rollups_segments", segments()),
        |b| b.iter(|| common::service_graph_of_the_hour(&rt, get().1.as_ref())),
    );
    let hour = (common::HOUR_START / 60.0) as i64;
    group.bench_function(
        BenchmarkId::new("stage_unsettled_minutes_segments", segments()),
        |b| {
            b.iter(|| {
                let rows = rt.block_on(get().1.unsettled_rollup_rows(hour, hour + 59));
                assert!(!rows.expect("rollups").is_empty());
            })
        },
    );
    group.finish();
    let mut group = c.benchmark_group("clickhouse_service_graph_6h");
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::new("settled_rollups_segments", segments()),
        |b| b.iter(|| common::service_graph_of_hours(&rt, get().1.as_ref(), 6)),
    );
    group.finish();

    common::trace_summaries_group(
        c,
        "clickhouse_trace_summaries",
        &rt,
        || get().1.as_ref(),
        traces,
    );

    // The engine reading the set's summaries: the same window and annotation, one version per
    // trace (the dataset is bulk-built, so there is one).
    let database = format!("bench_{traces}_shop_traces");
    let engine_read = |start: f64, end: f64| -> u64 {
        let sql = format!(
            "SELECT count(), sum(length(summary)) FROM {database}.traces \
             WHERE start_time >= {start} AND start_time <= {end} AND has(ann_pairs, 'tier=gold') \
             FORMAT TSV"
        );
        let answer = common::clickhouse_query(&get().0, &sql, b"");
        answer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("count")
    };
    common::analytics_group(
        c,
        "clickhouse_analytics",
        &rt,
        || get().1.as_ref(),
        traces,
        engine_read,
    );
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
