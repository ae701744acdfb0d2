//! Analytics of a set of about 100,000 traces out of 1M segments on the embedded store
//! (SQLite): `analytics::collect` + `finish` (the server time of `POST /TraceAnalytics` and
//! the analytics page, less rendering), beside SQLite itself reading the same traces'
//! summaries. ClickHouse's figure (10M segments) is in the `clickhouse` bench.
//!
//! The store is built once into `target/sqlite-analytics-bench` (about a minute) and reused
//! while it holds the expected number of traces.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{BATCH_DOCUMENTS, HOUR_START, prepare, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use roentgen_web::store::Store;
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::synth;

fn segments() -> usize {
    std::env::var("ROENTGEN_BENCH_SQLITE_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn dataset_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sqlite-analytics-bench")
}

fn count_traces(dir: &std::path::Path) -> usize {
    rusqlite::Connection::open(dir.join("roentgen.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM traces", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
}

/// A SQLite store of `segments()` shop-trace documents (two per trace) spread over the hour.
fn big_store(rt: &tokio::runtime::Runtime) -> SqliteStore {
    let traces = segments() / 2;
    let dir = dataset_dir();
    if count_traces(&dir) != traces {
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).expect("store");
        let t = Instant::now();
        let per_batch = BATCH_DOCUMENTS / 2;
        for first in (0..traces).step_by(per_batch) {
            let raw: Vec<String> = (first..(first + per_batch).min(traces))
                .flat_map(|k| {
                    let start = HOUR_START + k as f64 * 3600.0 / traces as f64;
                    synth::shop_trace(k as u64, start)
                })
                .collect();
            rt.block_on(store.put_documents(prepare(&raw)))
                .expect("put");
        }
        eprintln!(
            "built {traces} traces in SQLite in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        drop(store);
    } else {
        eprintln!("reusing {traces} traces in {}", dir.display());
    }
    SqliteStore::open(&dir).expect("store")
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let store = big_store(&rt);
    let reader = rusqlite::Connection::open_with_flags(
        dataset_dir().join("roentgen.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("reader");
    let engine_read = |start: f64, end: f64| -> u64 {
        let mut stmt = reader
            .prepare_cached(
                "SELECT count(*), sum(length(t.summary)) FROM traces t \
                 WHERE t.start_time BETWEEN ?1 AND ?2 AND EXISTS (SELECT 1 FROM trace_annotations a \
                 WHERE a.key = 'tier' AND a.value_text = 'gold' AND a.trace_rowid = t.rowid)",
            )
            .expect("sql");
        stmt.query_row(rusqlite::params![start, end], |r| r.get::<_, i64>(0))
            .expect("read") as u64
    };
    common::analytics_group(
        c,
        "sqlite_analytics",
        &rt,
        || &store as &dyn Store,
        segments() / 2,
        engine_read,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
