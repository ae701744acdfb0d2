//! OTLP ingest end to end, in spans per second: OpenTelemetry SDKs' OTLP/HTTP requests
//! (protobuf, `roentgen_sdk::otlp::workload`: shop traces across 3 to 6 services with
//! databases, AWS calls, exceptions and personal data, random W3C ids) posted by 8 keep-alive
//! connections (`ROENTGEN_BENCH_CONNECTIONS`) in a closed loop, 4 requests of 8 traces (about 190 spans) each per iteration;
//! every answer must be a 200 with no span refused, and 503s ("retry later") are sent again as
//! OTLP exporters do. Targets and same-run baselines:
//! - `baseline_decode_only`: the same requests against a handler that decodes them and answers
//!   (the least any OTLP receiver does, through the same HTTP server);
//! - `baseline_fdatasync_append`: the same bodies appended to a file, one `fdatasync` each
//!   (the physical limit of a durable acknowledgement per request);
//! - `collector_sqlite`, `collector_clickhouse26`: the collector's `/v1/traces` (scrubbing on,
//!   as by default) over the embedded store and over ClickHouse 26.9 (`chdb-core`);
//! - `daemon`: the daemon's OTLP/HTTP listener (in this process, scrubbing on), forwarding to
//!   a minimal collector, 4 times the iterations; counted until every accepted span was
//!   delivered (zero loss is checked).
//!
//! Stage measurement beside them (our own code, to show where the time goes, not a baseline):
//! `stage_prepare_only`, the collector's work before the store (decode, map, scrub, validate,
//! facts), nothing stored.
//!
//! Plain `main` (not criterion): each target first runs `ROENTGEN_BENCH_WARMUP` iterations
//! (default 4) that are not counted, as a collector that has been up for a while has its heap
//! grown, its regex caches built and its store's files in place; then
//! `ROENTGEN_BENCH_ITERATIONS` iterations (default 8), and prints spans, spans/s and CPU per
//! span (process CPU minus the client threads'; for ClickHouse also the server's; for the
//! daemon the minimal collector's CPU is inside the process figure). `ROENTGEN_BENCH_TARGETS` (comma-separated names) picks targets.
#![allow(missing_docs)]

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{cpu_seconds, http_post, runtime, serve, thread_cpu_seconds};
use roentgen_daemon::loadgen::collector::{CollectorOptions, MiniCollector};
use roentgen_sdk::otlp::wire;
use roentgen_sdk::otlp::workload::workload;
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};
use roentgen_web::api::otlp::OtlpIngest;
use roentgen_web::api::{self, AppState};
use roentgen_web::store::Store;
use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
use roentgen_web::store::clickhouse::{ClickhouseConfig, ClickhouseStore};
use roentgen_web::store::sqlite::SqliteStore;

/// Concurrent connections (SDKs or daemons sending): 8, or `ROENTGEN_BENCH_CONNECTIONS`.
fn connections() -> usize {
    std::env::var("ROENTGEN_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(8)
}
/// Requests each connection sends per iteration.
const REQUESTS_PER_CONNECTION: usize = 4;
/// Traces per request (an SDK's batch).
const TRACES_PER_REQUEST: usize = 8;
/// Start of the traces, Unix nanoseconds (2027-01-15).
const START_NANOS: u64 = 1_800_000_000_000_000_000;

/// One iteration's request bodies, `[connection][request]`, and the spans in them.
struct Batch {
    bodies: Vec<Vec<Vec<u8>>>,
    spans: u64,
}

/// Fresh requests (new trace ids), numbered on from `*seed`.
fn batch(seed: &mut u64) -> Batch {
    let connections = connections();
    let requests = connections * REQUESTS_PER_CONNECTION;
    let start = START_NANOS + *seed * (requests * TRACES_PER_REQUEST) as u64 * 1_000_000_000;
    let w = workload(*seed, requests, TRACES_PER_REQUEST, start);
    *seed += 1;
    let mut bodies = vec![Vec::new(); connections];
    for (i, body) in w.bodies.into_iter().enumerate() {
        bodies[i % connections].push(body);
    }
    Batch {
        bodies,
        spans: w.spans,
    }
}

/// What sending a batch cost: wall time, the client threads' CPU, and 503s sent again.
struct Sent {
    wall: Duration,
    client_cpu: f64,
    retries: u64,
}

/// Sends every connection's bodies to `address`, 8 connections at once; every answer must be
/// a 200 without a partial success (503s are sent again after 5 ms).
fn send_all(address: &str, bodies: &[Vec<Vec<u8>>]) -> Sent {
    let started = Instant::now();
    let (client_cpu, retries) = std::thread::scope(|s| {
        let workers: Vec<_> = bodies
            .iter()
            .map(|requests| {
                s.spawn(move || {
                    let before = thread_cpu_seconds();
                    let mut stream = TcpStream::connect(address).expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    let mut scratch = Vec::new();
                    let mut retries = 0u64;
                    for body in requests {
                        loop {
                            match http_post(
                                &mut stream,
                                "/v1/traces",
                                "application/x-protobuf",
                                body,
                                &mut scratch,
                            ) {
                                (200, answer) => {
                                    assert!(answer.is_empty(), "spans refused: {answer:?}");
                                    break;
                                }
                                (503, _) => {
                                    retries += 1;
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                (status, answer) => {
                                    panic!("{status}: {}", String::from_utf8_lossy(&answer))
                                }
                            }
                        }
                    }
                    (thread_cpu_seconds() - before, retries)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client"))
            .fold((0.0, 0), |(c, r), (c2, r2)| (c + c2, r + r2))
    });
    Sent {
        wall: started.elapsed(),
        client_cpu,
        retries,
    }
}

/// The decode-only handler: the request decoded, nothing else.
async fn decode_only(headers: HeaderMap, body: Bytes) -> &'static str {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    wire::decode_http(text("content-type"), text("content-encoding"), &body).expect("decodes");
    ""
}

/// A stage of the collector alone: the request decoded, its spans mapped, scrubbed, validated
/// and their facts extracted (`api::otlp::prepare`), nothing stored.
async fn prepare_only(
    State(ingest): State<Arc<OtlpIngest>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (_, request) =
        wire::decode_http(text("content-type"), text("content-encoding"), &body).expect("decodes");
    let (docs, refused, _) = api::otlp::prepare(&request, &ingest);
    assert!(refused.is_empty(), "{refused:?}");
    std::hint::black_box(docs);
    ""
}

/// One target's figures.
struct Tally {
    spans: u64,
    seconds: f64,
    process_cpu: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
    retries: u64,
    /// Spans sent in the warm-up, before the counted ones.
    warm_up_spans: u64,
}

impl Tally {
    fn print(&self, name: &str) {
        let per = |s: f64| s / self.spans.max(1) as f64 * 1e6;
        let server = self
            .server_cpu
            .map(|s| format!(" + clickhouse-server {:.1} µs", per(s)))
            .unwrap_or_default();
        println!(
            "{name:<26} {:>8} spans {:>9.0} spans/s  CPU per span: {:.1} µs{server} (client {:.1} µs)  503s sent again: {}",
            self.spans,
            self.spans as f64 / self.seconds,
            per(self.process_cpu - self.client_cpu),
            per(self.client_cpu),
            self.retries
        );
    }
}

/// Iterations run before measuring, not counted: 4, or `ROENTGEN_BENCH_WARMUP`.
fn warm_up_iterations() -> u64 {
    std::env::var("ROENTGEN_BENCH_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Runs the warm-up iterations (uncounted), then `iterations` fresh batches against
/// `address`; then `settle` waits until every span is delivered (the daemon: its batches leave
/// when full or after its 1 s flush interval) and returns how long that took, counted in the
/// time. `settle` is also called after the warm-up, with the warm-up's spans.
fn http_target(
    address: &str,
    iterations: u64,
    seed: &mut u64,
    server: Option<&LocalServer>,
    mut settle: impl FnMut(u64) -> Duration,
) -> Tally {
    let warm_up = run(address, warm_up_iterations(), seed, None, 0, &mut settle);
    let mut tally = run(
        address,
        iterations,
        seed,
        server,
        warm_up.spans,
        &mut settle,
    );
    tally.warm_up_spans = warm_up.spans;
    tally
}

/// Runs `iterations` fresh batches; `settle` is given the spans sent so far, `earlier` of them
/// before this run.
fn run(
    address: &str,
    iterations: u64,
    seed: &mut u64,
    server: Option<&LocalServer>,
    earlier: u64,
    settle: &mut impl FnMut(u64) -> Duration,
) -> Tally {
    let process_before = cpu_seconds("self");
    let server_before = server.and_then(|s| s.usage()).map(|u| u.0);
    let mut tally = Tally {
        spans: 0,
        seconds: 0.0,
        process_cpu: 0.0,
        client_cpu: 0.0,
        server_cpu: None,
        retries: 0,
        warm_up_spans: 0,
    };
    for _ in 0..iterations {
        // Making the bodies is the client's work too (untimed, but in the process).
        let made = thread_cpu_seconds();
        let b = batch(seed);
        tally.client_cpu += thread_cpu_seconds() - made;
        let sent = send_all(address, &b.bodies);
        tally.spans += b.spans;
        tally.seconds += sent.wall.as_secs_f64();
        tally.client_cpu += sent.client_cpu;
        tally.retries += sent.retries;
    }
    tally.seconds += settle(earlier + tally.spans).as_secs_f64();
    tally.process_cpu = cpu_seconds("self") - process_before;
    tally.server_cpu = match (server_before, server.and_then(|s| s.usage())) {
        (Some(before), Some((after, _))) => Some(after - before),
        _ => None,
    };
    tally
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let iterations: u64 = std::env::var("ROENTGEN_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let targets = std::env::var("ROENTGEN_BENCH_TARGETS").unwrap_or_default();
    let wanted = |name: &str| targets.is_empty() || targets.split(',').any(|t| t.trim() == name);
    let rt = runtime();
    let mut seed = 0u64;
    let scrubber = Scrubber::new(&ScrubConfig::default()).expect("the built-in scrubber");
    println!(
        "OTLP/HTTP ingest: {} connections x {REQUESTS_PER_CONNECTION} requests x {TRACES_PER_REQUEST} traces per iteration, {iterations} iterations per target after {} uncounted",
        connections(),
        warm_up_iterations()
    );

    if wanted("baseline_decode_only") {
        let address = serve(&rt, Router::new().route("/v1/traces", post(decode_only)));
        http_target(&address, iterations, &mut seed, None, |_| Duration::ZERO)
            .print("baseline_decode_only");
    }
    if wanted("stage_prepare_only") {
        let ingest = Arc::new(OtlpIngest {
            scrubber: Some(scrubber.clone()),
            ..OtlpIngest::default()
        });
        let app = Router::new()
            .route("/v1/traces", post(prepare_only))
            .with_state(ingest);
        let address = serve(&rt, app);
        http_target(&address, iterations, &mut seed, None, |_| Duration::ZERO)
            .print("stage_prepare_only");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    if wanted("baseline_fdatasync_append") {
        let mut file = std::fs::File::create(dir.path().join("append.log")).expect("file");
        let (mut spans, mut spent) = (0u64, Duration::ZERO);
        for _ in 0..iterations {
            let b = batch(&mut seed);
            let t = Instant::now();
            for body in b.bodies.iter().flatten() {
                file.write_all(body).expect("append");
                file.sync_data().expect("fdatasync");
            }
            spent += t.elapsed();
            spans += b.spans;
        }
        println!(
            "{:<26} {spans:>8} spans {:>9.0} spans/s",
            "baseline_fdatasync_append",
            spans as f64 / spent.as_secs_f64()
        );
    }
    let collector = |store: Arc<dyn Store>| {
        let mut state = AppState::new(store, None);
        state.otlp.scrubber = Some(scrubber.clone());
        api::router(state)
    };
    if wanted("collector_sqlite") {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("sqlite")).expect("sqlite"));
        let address = serve(&rt, collector(store));
        http_target(&address, iterations, &mut seed, None, |_| Duration::ZERO)
            .print("collector_sqlite");
    }
    if wanted("collector_clickhouse26") {
        let server =
            LocalServer::start_engine(&Engine::chdb()).expect("ClickHouse 26.9 (chdb-core)");
        let store: Arc<dyn Store> = Arc::new(
            rt.block_on(ClickhouseStore::open(ClickhouseConfig::new(server.url())))
                .expect("clickhouse store"),
        );
        let address = serve(&rt, collector(store));
        http_target(&address, iterations, &mut seed, Some(&server), |_| {
            Duration::ZERO
        })
        .print("collector_clickhouse26");
    }
    if wanted("daemon") {
        let sink = MiniCollector::start(CollectorOptions::default()).expect("minimal collector");
        let config = roentgen_daemon::config::Config::local(&sink.url()).expect("config");
        let bound = rt
            .block_on(roentgen_daemon::Daemon::bind(config))
            .expect("daemon");
        let address = bound.otlp_http_addr().expect("OTLP/HTTP").to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = rt.spawn(bound.run(async {
            let _ = stopped.await;
        }));
        // More iterations: the last batch's wait for the flush interval is spread thinner.
        let tally = http_target(&address, iterations * 4, &mut seed, None, |spans| {
            // Counted once every span accepted so far is delivered (bounded: 60 s).
            let t = Instant::now();
            while sink.document_count() < spans && t.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(2));
            }
            t.elapsed()
        });
        tally.print("daemon");
        println!(
            "daemon: {} spans accepted, {} delivered (lost: {})",
            tally.spans,
            sink.document_count().saturating_sub(tally.warm_up_spans),
            (tally.warm_up_spans + tally.spans).saturating_sub(sink.document_count())
        );
        let _ = stop.send(());
        let _ = rt.block_on(daemon);
    }
}
