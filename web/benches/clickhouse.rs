//! Scale-out store benchmarks, ClickHouse next to SQLite in the same run:
//! - ingest: documents/s through each store's `put_documents` (summaries and rollup data
//!   kept up to date), the same batches of shop documents, validation done outside the timing;
//! - `GetServiceGraph` over one hour of `ROENTGEN_BENCH_CH_SEGMENTS` one-segment traces
//!   (default 1,000,000) on ClickHouse (the SQLite figures at the same size are the collector
//!   bench's);
//! - `GetTraceSummaries` with a selective filter over the same data, pushed down into
//!   ClickHouse, against one page of the same filter in a form that cannot be pushed down.
//!
//! Each benchmark starts its own `clickhouse-server` (installed by `scripts/setup`) on
//! loopback ports.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{BATCH_DOCUMENTS, HOUR_START, prepare, runtime, shop_documents};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roentgen_web::store::Store;
use roentgen_web::store::clickhouse::server::LocalServer;
use roentgen_web::store::clickhouse::{ClickhouseConfig, ClickhouseStore};
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::{query, synth};

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
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let docs = prepare(&shop_documents(next, BATCH_DOCUMENTS));
                    next += BATCH_DOCUMENTS as u64;
                    let t = Instant::now();
                    rt.block_on(store.put_documents(docs)).expect("put");
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

fn segments() -> usize {
    std::env::var("ROENTGEN_BENCH_CH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Builds a ClickHouse store holding `segments()` one-segment traces over one hour.
fn big_store(rt: &tokio::runtime::Runtime) -> (LocalServer, Arc<ClickhouseStore>) {
    let traces = segments();
    let server = LocalServer::start().expect("clickhouse-server");
    let store = Arc::new(
        rt.block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
            .expect("clickhouse store"),
    );
    let t = Instant::now();
    let mut n = 0u64;
    rt.block_on(async {
        // Two batches in flight: one being prepared while the other is written.
        let mut pending: Option<tokio::task::JoinHandle<()>> = None;
        while (n as usize) < traces {
            let count = 10_000.min(traces - n as usize);
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
        "built {traces} traces ({traces} segments) over one hour in ClickHouse in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    (server, store)
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    let big = std::cell::OnceCell::new();
    let get = || big.get_or_init(|| big_store(&rt));
    let traces = segments();
    let end = HOUR_START + 3600.0;

    let mut group = c.benchmark_group("clickhouse_service_graph_1h");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("sample_rollups", traces), |b| {
        b.iter(|| {
            rt.block_on(query::service_graph(
                get().1.as_ref(),
                HOUR_START,
                end,
                None,
            ))
            .expect("graph")
        })
    });
    group.finish();

    common::trace_summaries_group(
        c,
        "clickhouse_trace_summaries",
        &rt,
        || get().1.as_ref(),
        traces,
    );
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
