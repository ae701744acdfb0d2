//! Ingest as a fleet sends it, through the real HTTP API: 8 keep-alive connections (one per
//! daemon) each posting `PutTraceSegments` bodies of 50 documents in a closed loop; traces of
//! five services (`synth::fleet_trace`: varied documents, personal data in a quarter of them)
//! whose five segments go through five different connections, so every trace arrives in pieces
//! over several requests. Targets and same-run baselines:
//! - `sqlite`: the collector over the embedded store (acknowledged once fsynced);
//! - `clickhouse26`: the collector over ClickHouse 26.9 (`chdb-core`) on the same machine;
//! - `baseline_parse_only`: the same bodies against a handler that parses the request and each
//!   document and answers without storing (the sender and HTTP limit);
//! - `baseline_fdatasync_append`: the same bodies appended to a file, one `fdatasync` per body
//!   (the physical limit of a durable acknowledgement per batch);
//! - `baseline_clickhouse_rowbinary`: the same rows (trace id, id, parent, start, document)
//!   inserted as `RowBinary` into one plain `MergeTree` table, one insert per iteration (the
//!   engine's own bulk insert).
//!
//! - `clickhouse26_two_collectors`: two collectors (stores and writers) on the same ClickHouse,
//!   the connections split between them, to show collectors scale out.
//!
//! Stage measurements beside them (our own code, to show where the time goes, not baselines):
//! `stage_prepare_only` (parse plus `prepare_document`: validation and facts, nothing stored),
//! and `stage_*_whole_traces` (each trace's five pieces in one request, so no trace is folded
//! again: what arriving in pieces costs).
//!
//! After each target it prints CPU per document (collector process without the client
//! threads; clickhouse-server) and, for the stores, bytes on disk and rows per document.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{HOUR_START, cpu_seconds, http_post, runtime, serve, thread_cpu_seconds};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roentgen_web::api::{self, AppState};
use roentgen_web::store::Store;
use roentgen_web::store::clickhouse::rowbinary::RowBinary;
use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
use roentgen_web::store::clickhouse::{ClickhouseConfig, ClickhouseStore};
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::synth::{FLEET_SERVICES, fleet_trace};

/// Concurrent connections (daemons).
const CONNECTIONS: usize = 8;
/// Documents per request body (the daemon's batch).
const DOCS_PER_REQUEST: usize = 50;
/// Requests each connection sends per iteration.
const REQUESTS_PER_CONNECTION: usize = 10;
/// Documents per iteration.
const DOCS_PER_ITERATION: usize = CONNECTIONS * REQUESTS_PER_CONNECTION * DOCS_PER_REQUEST;

/// New traces per second of trace time (their ids' epochs advance with it).
const TRACES_PER_SECOND: f64 = 1_000.0;

/// How a trace's pieces travel.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// As a fleet sends them: segment `k` of trace `n` through connection `(n + k) % 8`.
    Split,
    /// The whole trace in one request (a stage measurement: what pieces cost).
    Whole,
}

/// One iteration's documents, as `[connection][request] -> documents`, from fresh traces
/// numbered on from `*next`, spread over the connections as `shape` says.
fn fleet_documents(next: &mut u64, shape: Shape) -> Vec<Vec<Vec<String>>> {
    let services = FLEET_SERVICES.len();
    let traces = DOCS_PER_ITERATION / services;
    let mut per_connection: Vec<Vec<String>> = vec![Vec::new(); CONNECTIONS];
    for n in *next..*next + traces as u64 {
        // Trace ids carry their start second, and a fleet's ids advance with the clock: about
        // 1,000 new traces a second here (5,000 documents/s), spread through the minutes.
        let start = HOUR_START + n as f64 / TRACES_PER_SECOND;
        for (k, doc) in fleet_trace(n, start).into_iter().enumerate() {
            let spread = if shape == Shape::Split { k } else { 0 };
            per_connection[(n as usize + spread) % CONNECTIONS].push(doc);
        }
    }
    *next += traces as u64;
    per_connection
        .into_iter()
        .map(|docs| {
            docs.chunks(DOCS_PER_REQUEST)
                .map(<[String]>::to_vec)
                .collect()
        })
        .collect()
}

/// `PutTraceSegments` bodies of [`fleet_documents`].
fn bodies(docs: &[Vec<Vec<String>>]) -> Vec<Vec<Vec<u8>>> {
    docs.iter()
        .map(|requests| {
            requests
                .iter()
                .map(|d| {
                    serde_json::to_vec(&serde_json::json!({ "TraceSegmentDocuments": d }))
                        .expect("body")
                })
                .collect()
        })
        .collect()
}

/// Posts `body` on a keep-alive connection and reads the answer; panics unless every
/// document was accepted.
fn exchange(stream: &mut TcpStream, body: &[u8], scratch: &mut Vec<u8>) {
    let (status, answer) = http_post(stream, "/TraceSegments", "application/json", body, scratch);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(
        answer.starts_with(b"{\"UnprocessedTraceSegments\":[]"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Sends every connection's bodies in a closed loop, 8 connections at once; returns the wall
/// time and the client threads' CPU seconds.
fn send_all(addresses: &[String], bodies: &[Vec<Vec<u8>>]) -> (Duration, f64) {
    let started = Instant::now();
    let client_cpu: f64 = std::thread::scope(|s| {
        let workers: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, requests)| {
                // Connection i goes to collector i mod n (a load balancer's round robin).
                let address = addresses[i % addresses.len()].as_str();
                s.spawn(move || {
                    let before = thread_cpu_seconds();
                    let mut stream = TcpStream::connect(address).expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    let mut scratch = Vec::new();
                    for body in requests {
                        exchange(&mut stream, body, &mut scratch);
                    }
                    thread_cpu_seconds() - before
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("client")).sum()
    });
    (started.elapsed(), client_cpu)
}

/// The parse-only handler: the request and each document parsed, nothing stored.
async fn parse_only(body: Bytes) -> axum::Json<serde_json::Value> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Put {
        trace_segment_documents: Vec<String>,
    }
    let put: Put = serde_json::from_slice(&body).expect("request");
    for doc in &put.trace_segment_documents {
        let _: serde::de::IgnoredAny = serde_json::from_str(doc).expect("document");
    }
    axum::Json(serde_json::json!({ "UnprocessedTraceSegments": [] }))
}

/// A stage of the collector alone: the request parsed and every document validated and its
/// facts extracted (`prepare_document`), nothing stored.
async fn prepare_only(body: Bytes) -> axum::Json<serde_json::Value> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Put {
        trace_segment_documents: Vec<String>,
    }
    let put: Put = serde_json::from_slice(&body).expect("request");
    let prepared = put
        .trace_segment_documents
        .iter()
        .filter(|d| api::prepare_document(d, None).is_ok())
        .count();
    assert_eq!(prepared, put.trace_segment_documents.len());
    axum::Json(serde_json::json!({ "UnprocessedTraceSegments": [] }))
}

/// What one target did, for the figures printed after it.
struct Tally {
    docs: u64,
    process_cpu: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
    /// Rows the server inserted and rows its background merges read, over the target.
    server_rows: Option<(f64, f64)>,
}

/// The server's counts so far (`system.events`) of rows inserted and rows read by merges.
fn server_rows(server: &LocalServer) -> (f64, f64) {
    let text = common::clickhouse_query(
        server,
        "SELECT sumIf(value, event = 'InsertedRows'), sumIf(value, event = 'MergedRows') FROM system.events",
        b"",
    );
    let mut fields = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0))
}

impl Tally {
    fn print(&self, name: &str, extra: &str) {
        // A target the command line filtered out.
        if self.docs == 0 {
            return;
        }
        let per = |s: f64| s / self.docs as f64 * 1e6;
        let server = self
            .server_cpu
            .map(|s| format!(", clickhouse-server {:.1} µs", per(s)))
            .unwrap_or_default();
        let rows = self
            .server_rows
            .map(|(inserted, merged)| {
                format!(
                    "; rows inserted {:.2} and read by merges {:.2} per document",
                    inserted / self.docs as f64,
                    merged / self.docs as f64
                )
            })
            .unwrap_or_default();
        eprintln!(
            "fleet {name}: {} documents; CPU per document: collector {:.1} µs{server}, client {:.1} µs{rows}{extra}",
            self.docs,
            per(self.process_cpu - self.client_cpu),
            per(self.client_cpu)
        );
    }
}

/// Benchmarks the collector (or handler) at `address`: each iteration sends fresh traces.
fn http_target(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    addresses: &[String],
    next: &mut u64,
    shape: Shape,
    server: Option<&LocalServer>,
) -> Tally {
    let process_before = cpu_seconds("self");
    let server_before = server.and_then(|s| s.usage()).map(|u| u.0);
    let rows_before = server.map(server_rows);
    let first = *next;
    let mut client_cpu = 0.0;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // Making the bodies is the client's work too (untimed, but in the process).
                let made = thread_cpu_seconds();
                let batch = bodies(&fleet_documents(next, shape));
                client_cpu += thread_cpu_seconds() - made;
                let (wall, cpu) = send_all(addresses, &batch);
                spent += wall;
                client_cpu += cpu;
            }
            spent
        })
    });
    let docs = (*next - first) * FLEET_SERVICES.len() as u64;
    Tally {
        docs,
        process_cpu: cpu_seconds("self") - process_before,
        client_cpu,
        server_cpu: match (server_before, server.and_then(|s| s.usage())) {
            (Some(before), Some((after, _))) => Some(after - before),
            _ => None,
        },
        server_rows: rows_before
            .zip(server.map(server_rows))
            .map(|(b, a)| (a.0 - b.0, a.1 - b.1)),
    }
}

/// Size of the files under `dir`, in bytes.
fn disk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn fleet_ingest(c: &mut Criterion) {
    let rt = runtime();
    let mut next = 0u64;
    let mut group = c.benchmark_group("fleet_ingest");
    group.throughput(Throughput::Elements(DOCS_PER_ITERATION as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(20));

    // Baseline: parse only.
    let parse = serve(&rt, Router::new().route("/TraceSegments", post(parse_only)));
    http_target(
        &mut group,
        "baseline_parse_only",
        std::slice::from_ref(&parse),
        &mut next,
        Shape::Split,
        None,
    )
    .print("baseline_parse_only", "");
    let prepare = serve(
        &rt,
        Router::new().route("/TraceSegments", post(prepare_only)),
    );
    http_target(
        &mut group,
        "stage_prepare_only",
        std::slice::from_ref(&prepare),
        &mut next,
        Shape::Split,
        None,
    )
    .print("stage_prepare_only", "");

    // Baseline: the bodies appended to a file, fdatasync per body.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("append.log")).expect("file");
    group.bench_function("baseline_fdatasync_append", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let batch = bodies(&fleet_documents(&mut next, Shape::Split));
                let t = Instant::now();
                for body in batch.iter().flatten() {
                    file.write_all(body).expect("append");
                    file.sync_data().expect("fdatasync");
                }
                spent += t.elapsed();
            }
            spent
        })
    });

    // The collector on SQLite.
    let sqlite_dir = dir.path().join("sqlite");
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&sqlite_dir).expect("sqlite"));
    let address = serve(&rt, api::router(AppState::new(sqlite, None)));
    let tally = http_target(
        &mut group,
        "sqlite",
        std::slice::from_ref(&address),
        &mut next,
        Shape::Split,
        None,
    );
    let bytes = disk_bytes(&sqlite_dir) as f64 / tally.docs as f64;
    tally.print(
        "sqlite",
        &format!("; {bytes:.0} bytes on disk per document"),
    );
    http_target(
        &mut group,
        "stage_sqlite_whole_traces",
        std::slice::from_ref(&address),
        &mut next,
        Shape::Whole,
        None,
    )
    .print("stage_sqlite_whole_traces", "");

    // The collector on ClickHouse 26.9, and the engine's own bulk insert.
    let server = LocalServer::start_engine(&Engine::chdb()).expect("ClickHouse 26.9 (chdb-core)");
    let clickhouse: Arc<dyn Store> = Arc::new(
        rt.block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
            .expect("clickhouse store"),
    );
    let address = serve(&rt, api::router(AppState::new(clickhouse, None)));
    let tally = http_target(
        &mut group,
        "clickhouse26",
        std::slice::from_ref(&address),
        &mut next,
        Shape::Split,
        Some(&server),
    );
    let parts = common::clickhouse_query(
        &server,
        "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')",
        b"",
    );
    let mut fields = parts
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    let (rows, bytes) = (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0));
    tally.print(
        "clickhouse26",
        &format!(
            "; {:.2} rows and {:.0} bytes on disk per document (active parts)",
            rows / tally.docs as f64,
            bytes / tally.docs as f64
        ),
    );

    http_target(
        &mut group,
        "stage_clickhouse26_whole_traces",
        std::slice::from_ref(&address),
        &mut next,
        Shape::Whole,
        Some(&server),
    )
    .print("stage_clickhouse26_whole_traces", "");

    // Two collectors on the same ClickHouse (each its own store and writer, as two processes
    // behind a load balancer would have), the eight connections split between them.
    let second: Arc<dyn Store> = Arc::new(
        rt.block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
            .expect("second clickhouse store"),
    );
    let other = serve(&rt, api::router(AppState::new(second, None)));
    http_target(
        &mut group,
        "clickhouse26_two_collectors",
        &[address.clone(), other],
        &mut next,
        Shape::Split,
        Some(&server),
    )
    .print("clickhouse26_two_collectors", "");

    common::clickhouse_query(
        &server,
        "CREATE TABLE baseline (trace_id String, id String, parent_id String, start_time Float64, document String) ENGINE = MergeTree ORDER BY (trace_id, id)",
        b"",
    );
    let server_before = server.usage().map(|u| u.0);
    let mut inserted = 0u64;
    group.bench_function("baseline_clickhouse_rowbinary", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let docs = fleet_documents(&mut next, Shape::Split);
                let mut rows = RowBinary(Vec::new());
                for doc in docs.iter().flatten().flatten() {
                    let v: serde_json::Value = serde_json::from_str(doc).expect("doc");
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                    rows.string(&text("trace_id"))
                        .string(&text("id"))
                        .string(&text("parent_id"))
                        .f64(v["start_time"].as_f64().unwrap_or(0.0))
                        .string(doc);
                    inserted += 1;
                }
                let t = Instant::now();
                common::clickhouse_query(&server, "INSERT INTO baseline FORMAT RowBinary", &rows.0);
                spent += t.elapsed();
            }
            spent
        })
    });
    // Nothing inserted: the command line filtered this target out.
    if inserted > 0
        && let (Some(before), Some((after, _))) = (server_before, server.usage())
    {
        eprintln!(
            "fleet baseline_clickhouse_rowbinary: {inserted} documents; clickhouse-server {:.1} µs CPU per document",
            (after - before) / inserted as f64 * 1e6
        );
    }
    group.finish();
}

criterion_group!(benches, fleet_ingest);
criterion_main!(benches);
