//! Collector benchmarks, each with a baseline measured in the same run:
//! - ingest: documents/s through validation + the SQLite store (summaries, indexes and
//!   rollups kept up to date), against plain batched SQLite inserts of the same rows;
//! - `GetServiceGraph` over one hour holding 1,000,000 segments, from the per-minute rollups,
//!   against folding the stored samples of every trace in the window;
//! - `GetTraceSummaries` with a selective filter over 1,000,000 traces, with the filter pushed
//!   into the store's indexes, against one page of the same filter evaluated without pushdown;
//! - `BatchGetTraces` of one 500-segment trace, against a plain `SELECT` of its rows.
//!
//! The data set is built once per run through the real ingest path (`ROENTGEN_BENCH_TRACES`
//! traces of one segment each, default 1,000,000, spread over one hour).
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{
    BATCH_DOCUMENTS, HOUR_START, next_batches, prepare, runtime, shop_documents, store_batches,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roentgen_web::store::Store;
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::{filter, query, synth};
use rusqlite::params;

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("store")).expect("store"));
    let baseline_path = dir.path().join("baseline.db");
    let baseline = rusqlite::Connection::open(&baseline_path).expect("baseline");
    baseline
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;
             CREATE TABLE segments (trace_id TEXT NOT NULL, id TEXT NOT NULL, parent_id TEXT,
                start_time REAL NOT NULL, document TEXT NOT NULL);
             CREATE UNIQUE INDEX segments_by_key ON segments (trace_id, id);",
        )
        .expect("baseline schema");
    let mut baseline = baseline;
    let mut next = 0u64;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BATCH_DOCUMENTS as u64));
    group.sample_size(20);
    // As the server runs it: validation of the next request overlaps the commit of the last.
    group.bench_function("validate_and_store_pipelined", |b| {
        b.iter_custom(|iters| {
            let raws = next_batches(&mut next, iters);
            let t = Instant::now();
            rt.block_on(async {
                let mut pending: Option<tokio::task::JoinHandle<()>> = None;
                for raw in &raws {
                    let docs = prepare(raw);
                    if let Some(p) = pending.take() {
                        p.await.expect("batch");
                    }
                    let store = store.clone();
                    pending = Some(tokio::spawn(async move {
                        store.put_documents(docs).await.expect("put");
                    }));
                }
                if let Some(p) = pending {
                    p.await.expect("batch");
                }
            });
            t.elapsed()
        })
    });
    // As a collector behind several daemons sees it: requests of 50 documents (the daemon's
    // batch), 40 in flight at once, each validated on the runtime and committed by the writer,
    // which groups whatever is queued into one transaction.
    group.bench_function("concurrent_requests_of_50", |b| {
        b.iter_custom(|iters| {
            let raws = next_batches(&mut next, iters);
            let t = Instant::now();
            rt.block_on(async {
                for raw in raws {
                    let requests: Vec<_> = raw
                        .chunks(50)
                        .map(|chunk| {
                            let chunk = chunk.to_vec();
                            let store = store.clone();
                            tokio::spawn(async move {
                                store.put_documents(prepare(&chunk)).await.expect("put");
                            })
                        })
                        .collect();
                    for r in requests {
                        r.await.expect("request");
                    }
                }
            });
            t.elapsed()
        })
    });
    group.bench_function("store_only", |b| {
        b.iter_custom(|iters| store_batches(&rt, store.as_ref(), &mut next, iters))
    });
    group.bench_function("baseline_plain_sqlite_inserts", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let docs = prepare(&shop_documents(next, BATCH_DOCUMENTS));
                next += BATCH_DOCUMENTS as u64;
                let t = Instant::now();
                let tx = baseline.transaction().expect("tx");
                {
                    let mut stmt = tx
                        .prepare_cached("INSERT OR REPLACE INTO segments (trace_id, id, parent_id, start_time, document) VALUES (?1, ?2, ?3, ?4, ?5)")
                        .expect("stmt");
                    for d in &docs {
                        stmt.execute(params![d.trace_id, d.id, d.parent_id, d.start_time, d.document])
                            .expect("insert");
                    }
                }
                tx.commit().expect("commit");
                spent += t.elapsed();
            }
            spent
        })
    });
    group.finish();
}

/// Builds (once) a store holding `ROENTGEN_BENCH_TRACES` one-segment traces over one hour.
fn big_store(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<SqliteStore>, usize) {
    let traces: usize = std::env::var("ROENTGEN_BENCH_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let t = Instant::now();
    let mut n = 0u64;
    rt.block_on(async {
        // Two batches in flight: one being prepared while the writer commits the other.
        let mut pending: Option<tokio::task::JoinHandle<()>> = None;
        while (n as usize) < traces {
            let count = BATCH_DOCUMENTS.min(traces - n as usize);
            let raw: Vec<String> = (n..n + count as u64)
                .map(|k| {
                    let start = HOUR_START + (k as f64 * 3600.0 / traces as f64);
                    synth::shop_trace(k, start).swap_remove(0)
                })
                .collect();
            n += count as u64;
            let docs = prepare(&raw);
            if let Some(p) = pending.take() {
                p.await.expect("batch");
            }
            let store = store.clone();
            pending = Some(tokio::spawn(async move {
                store.put_documents(docs).await.expect("put");
            }));
        }
        if let Some(p) = pending {
            p.await.expect("batch");
        }
    });
    eprintln!(
        "built {traces} traces ({traces} segments) over one hour in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    (dir, store, traces)
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    // Built on first use only, so filtering these benchmarks out skips the setup.
    let big = std::cell::OnceCell::new();
    let get = || big.get_or_init(|| big_store(&rt));
    let traces = std::env::var("ROENTGEN_BENCH_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let end = HOUR_START + 3600.0;

    let mut group = c.benchmark_group("service_graph_1h");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("rollups", traces), |b| {
        b.iter(|| common::service_graph_of_the_hour(&rt, get().1.as_ref()))
    });
    let everything = filter::parse("ok OR !ok").expect("filter");
    group.measurement_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::new("baseline_fold_all_traces", traces), |b| {
        b.iter(|| {
            rt.block_on(query::service_graph(
                get().1.as_ref(),
                HOUR_START,
                end,
                Some(&everything),
            ))
            .expect("graph")
        })
    });
    group.finish();
    let mut group = c.benchmark_group("service_graph_6h");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("rollups", traces), |b| {
        b.iter(|| common::service_graph_of_hours(&rt, get().1.as_ref(), 6))
    });
    group.finish();

    common::trace_summaries_group(c, "trace_summaries", &rt, || get().1.as_ref(), traces);
}

fn batch_get(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("store");
    let raw = synth::chain_trace(7, HOUR_START, 500);
    let trace_id = prepare(&raw[..1])[0].trace_id.clone();
    rt.block_on(store.put_documents(prepare(&raw)))
        .expect("put");
    let path = dir.path().join("roentgen.db");
    let conn = rusqlite::Connection::open(&path).expect("conn");
    let mut group = c.benchmark_group("batch_get_traces_500_segments");
    group.bench_function("assembled", |b| {
        b.iter(|| {
            let t = rt
                .block_on(query::trace_segments(&store, vec![trace_id.clone()]))
                .expect("trace");
            assert_eq!(t[0].2.len(), 500);
            t
        })
    });
    group.bench_function("baseline_plain_select", |b| {
        b.iter(|| {
            let mut stmt = conn
                .prepare_cached("SELECT id, document FROM segments WHERE trace_id = ?1")
                .expect("stmt");
            let rows: Vec<(String, String)> = stmt
                .query_map([&trace_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(rows.len(), 500);
            rows
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, batch_get, queries);
criterion_main!(benches);
