//! A long trace streamed in pieces (issue #11): `synth::streamed_trace` (an in-progress segment,
//! 498 subsegments sent on their own, the complete segment last) written to the store in 50
//! batches of 10 documents, a fresh trace per iteration, with other traces' documents between
//! the batches as a busy collector sees them. Criterion times the whole trace; after each store
//! the bench prints the time and CPU per piece for the first and the last ten batches, which
//! should be equal: a piece costs the same whatever its number (no read-back, no O(pieces²)).
//!
//! Stores: SQLite (acknowledged once fsynced) and ClickHouse 26.9 (`chdb-core`, same machine;
//! its server's CPU counted too). The comparison that matters is within the run: the last
//! batches against the first.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{HOUR_START, cpu_seconds, prepare, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use roentgen_web::store::Store;
use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
use roentgen_web::store::clickhouse::{ClickhouseConfig, ClickhouseStore};
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::synth::{shop_trace, streamed_trace};

/// Documents of the streamed trace.
const PIECES: usize = 500;
/// Batches it arrives in.
const BATCHES: usize = 50;

/// Per batch number: wall time and CPU (this process plus the server), summed over iterations.
#[derive(Default)]
struct PerBatch {
    wall: Vec<Duration>,
    cpu: Vec<f64>,
    traces: u64,
}

impl PerBatch {
    fn add(&mut self, k: usize, wall: Duration, cpu: f64) {
        if self.wall.len() < BATCHES {
            self.wall.resize(BATCHES, Duration::ZERO);
            self.cpu.resize(BATCHES, 0.0);
        }
        self.wall[k] += wall;
        self.cpu[k] += cpu;
    }

    /// Microseconds of wall time and of CPU per piece over batches `range`.
    fn per_piece(&self, range: std::ops::Range<usize>) -> (f64, f64) {
        let pieces = (range.len() * PIECES / BATCHES) as f64 * self.traces as f64;
        let wall: Duration = self.wall[range.clone()].iter().sum();
        let cpu: f64 = self.cpu[range].iter().sum();
        (wall.as_secs_f64() * 1e6 / pieces, cpu * 1e6 / pieces)
    }

    fn print(&self, name: &str) {
        if self.traces == 0 {
            return; // filtered out
        }
        let (w0, c0) = self.per_piece(0..10);
        let (w1, c1) = self.per_piece(BATCHES - 10..BATCHES);
        eprintln!(
            "stream {name}: {} traces of {PIECES} pieces; per piece, batches 1-10: {w0:.1} µs wall, {c0:.1} µs CPU; batches 41-50: {w1:.1} µs wall, {c1:.1} µs CPU",
            self.traces
        );
    }
}

/// Streams trace after trace into `store`, timing each batch.
fn stream_target(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &dyn Store,
    server: Option<&LocalServer>,
    next: &mut u64,
) {
    let cpu = || cpu_seconds("self") + server.and_then(|s| s.usage()).map_or(0.0, |u| u.0);
    let mut per_batch = PerBatch::default();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                *next += 1;
                let n = *next;
                let start = HOUR_START + n as f64;
                let docs = prepare(&streamed_trace(n, start, PIECES));
                let mut docs = docs.into_iter();
                for k in 0..BATCHES {
                    let batch: Vec<_> = docs.by_ref().take(PIECES / BATCHES).collect();
                    // Another trace's documents between two pieces, untimed.
                    let noise = prepare(&shop_trace(n * BATCHES as u64 + k as u64, start));
                    rt.block_on(store.put_documents(noise)).expect("noise");
                    let (t, before) = (Instant::now(), cpu());
                    rt.block_on(store.put_documents(batch)).expect("piece");
                    let wall = t.elapsed();
                    per_batch.add(k, wall, cpu() - before);
                    spent += wall;
                }
                per_batch.traces += 1;
            }
            spent
        })
    });
    per_batch.print(name);
}

fn streamed(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stream_500_pieces");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let mut next = 0u64;

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(SqliteStore::open(dir.path()).expect("sqlite"));
    stream_target(&mut group, &rt, "sqlite", sqlite.as_ref(), None, &mut next);

    let server = LocalServer::start_engine(&Engine::chdb()).expect("ClickHouse 26.9 (chdb-core)");
    let clickhouse = rt
        .block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
        .expect("clickhouse store");
    stream_target(
        &mut group,
        &rt,
        "clickhouse26",
        &clickhouse,
        Some(&server),
        &mut next,
    );
    group.finish();
}

criterion_group!(benches, streamed);
criterion_main!(benches);
