//! Helpers shared by the collector and ClickHouse benches: the runtime, synthetic documents, and
//! the trace-search group, run the same way against either store.

#![allow(dead_code)] // each bench uses its own subset

/// The collector binary's allocator (`src/main.rs`), so the benches measure what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use roentgen_web::api::prepare_document;
use roentgen_web::store::{IngestDocument, Store};
use roentgen_web::{filter, query, synth};

/// Documents per ingest batch.
pub const BATCH_DOCUMENTS: usize = 2_000;
/// Start of the benchmarked hour, epoch seconds.
pub const HOUR_START: f64 = 1_800_000_000.0;

/// The runtime the server would use on this machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Validated documents, as `PutTraceSegments` hands them to the store.
pub fn prepare(docs: &[String]) -> Vec<IngestDocument> {
    docs.iter()
        .filter_map(|d| prepare_document(d, None).ok())
        .collect()
}

/// `count` documents of fresh shop traces numbered from `first` (two segments per trace).
pub fn shop_documents(first: u64, count: usize) -> Vec<String> {
    (first..)
        .flat_map(|n| synth::shop_trace(n, HOUR_START + (n % 3600) as f64))
        .take(count)
        .collect()
}

/// The next `count` batches of fresh shop documents, numbered on from `*next`.
pub fn next_batches(next: &mut u64, count: u64) -> Vec<Vec<String>> {
    (0..count)
        .map(|_| {
            let batch = shop_documents(*next, BATCH_DOCUMENTS);
            *next += BATCH_DOCUMENTS as u64;
            batch
        })
        .collect()
}

/// Stores `iters` batches of fresh, already validated documents one after another; returns
/// the time spent in `put_documents` only.
pub fn store_batches(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    next: &mut u64,
    iters: u64,
) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let docs = prepare(&shop_documents(*next, BATCH_DOCUMENTS));
        *next += BATCH_DOCUMENTS as u64;
        let t = Instant::now();
        rt.block_on(store.put_documents(docs)).expect("put");
        spent += t.elapsed();
    }
    spent
}

/// `GetServiceGraph` over the benchmarked hour, with no filter.
pub fn service_graph_of_the_hour(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
) -> Vec<roentgen_web::graph::Service> {
    service_graph_of_hours(rt, store, 1)
}

/// `GetServiceGraph` over the `hours` ending with the benchmarked hour, with no filter.
pub fn service_graph_of_hours(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    hours: u32,
) -> Vec<roentgen_web::graph::Service> {
    let end = HOUR_START + 3600.0;
    let graph = rt
        .block_on(query::service_graph(
            store,
            end - 3600.0 * f64::from(hours),
            end,
            None,
        ))
        .expect("graph");
    assert!(!graph.is_empty());
    graph
}

/// `GetTraceSummaries` with a selective filter over the hour, and its baseline: the same
/// predicate in a form no index answers (`BEGINSWITH`/`ENDSWITH`), one page of scanning.
pub fn trace_summaries_group<'s>(
    c: &mut Criterion,
    group_name: &str,
    rt: &tokio::runtime::Runtime,
    store: impl Fn() -> &'s dyn Store,
    traces: usize,
) {
    let end = HOUR_START + 3600.0;
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    let target = traces as u64 / 2;
    let selective = filter::parse(&format!(
        "annotation.order = \"ord-{target}\" AND service(\"frontend\")"
    ))
    .expect("filter");
    let page = |filter: &filter::Expr| {
        rt.block_on(query::trace_summaries(
            store(),
            HOUR_START,
            end,
            Some(filter),
            None,
        ))
        .expect("summaries")
    };
    group.bench_function(BenchmarkId::new("selective_pushdown", traces), |b| {
        b.iter(|| {
            let found = page(&selective);
            assert_eq!(found.summaries.len(), 1);
            found
        })
    });
    let faulty = filter::parse("service(\"frontend\") { fault }").expect("filter");
    group.bench_function(BenchmarkId::new("service_fault_first_page", traces), |b| {
        b.iter(|| {
            let found = page(&faulty);
            assert!(!found.summaries.is_empty());
            found
        })
    });
    let unindexed = filter::parse(&format!(
        "annotation.order BEGINSWITH \"ord-{target}\" AND annotation.order ENDSWITH \"{target}\""
    ))
    .expect("filter");
    group.bench_function(
        BenchmarkId::new("baseline_no_pushdown_one_page", traces),
        |b| b.iter(|| page(&unindexed)),
    );
    group.finish();
}

/// Posts `body` to `path` on a keep-alive HTTP/1.1 connection; the status and answer body.
pub fn http_post(
    stream: &mut std::net::TcpStream,
    path: &str,
    content_type: &str,
    body: &[u8],
    scratch: &mut Vec<u8>,
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: receiver\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send");
    scratch.clear();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).expect("answer");
        assert!(n > 0, "the receiver closed the connection");
        scratch.extend_from_slice(&buf[..n]);
        let Some(end) = scratch.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&scratch[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        if scratch.len() >= end + 4 + length {
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return (status, scratch[end + 4..end + 4 + length].to_vec());
        }
    }
}

/// CPU seconds (user + system) of `/proc/<path>/stat` (Linux; 0 elsewhere): `"self"` for this
/// process, `"thread-self"` for the calling thread.
pub fn cpu_seconds(path: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{path}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            // utime and stime: fields 14 and 15; `fields` starts at field 3.
            Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU seconds the calling thread has run, to the nanosecond (`/proc/thread-self/schedstat`;
/// `/proc`'s `stat` counts 10 ms ticks, which a short-lived thread never reaches). Falls back
/// to the ticks where the kernel keeps no schedstat.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .unwrap_or_else(|| cpu_seconds("thread-self"))
}

/// Serves `app` on a loopback port from the runtime, as the collector does; returns its address.
pub fn serve(rt: &tokio::runtime::Runtime, app: axum::Router) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    rt.spawn(roentgen_web::server::serve(
        listener,
        app,
        None,
        roentgen_web::server::Limits::default(),
        roentgen_web::server::Protocol::Http1,
    ));
    address
}

/// Runs one ClickHouse query over HTTP and returns its text answer.
pub fn clickhouse_query(
    server: &roentgen_web::store::clickhouse::server::LocalServer,
    sql: &str,
    body: &[u8],
) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", server.http_port)).expect("clickhouse");
    let query: String = sql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'*' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let head = format!(
        "POST /?query={query} HTTP/1.0\r\nHost: clickhouse\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (status, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(status.contains(" 200 "), "{sql}: {answer}");
    rest.to_owned()
}

/// Analytics of a set of about 100,000 traces (`annotation.tier = "gold"`, a third of the
/// shop traces, over the part of the hour holding 297,000 of the store's `traces`), and the
/// baseline: the engine itself reading the same traces' summaries (`baseline_sql`, run by
/// `engine_read`, which returns how many rows it read).
pub fn analytics_group<'s>(
    c: &mut Criterion,
    group_name: &str,
    rt: &tokio::runtime::Runtime,
    store: impl Fn() -> &'s dyn Store,
    traces: usize,
    engine_read: impl Fn(f64, f64) -> u64,
) {
    let (start, end) = analytics_window(traces);
    let set = filter::parse("annotation.tier = \"gold\"").expect("filter");
    let fold = || {
        let tally = rt
            .block_on(roentgen_web::analytics::collect(
                store(),
                start,
                end,
                Some(&set),
            ))
            .expect("analytics");
        tally.finish()
    };
    let once = fold();
    let read = engine_read(start, end);
    // Where the time goes, once: the store's read of the set's facets (its parts one after
    // the other), then decoding and folding them on one thread.
    let pushdown = set
        .exact_pushdown()
        .expect("the set's filter is answered exactly");
    let parts = store().facet_parts();
    let t = Instant::now();
    let mut rows = Vec::new();
    for part in 0..parts {
        rows.extend(
            rt.block_on(store().scan_facets(roentgen_web::store::FacetQuery {
                start,
                end,
                pushdown: pushdown.clone(),
                limit: roentgen_web::analytics::MAX_TRACES + 1,
                newest: false,
                part,
                parts,
            }))
            .expect("facets"),
        );
    }
    let read_time = t.elapsed();
    let t = Instant::now();
    let mut tally = roentgen_web::analytics::Tally::new(start, end);
    let mut bytes = 0;
    for row in &rows {
        let text = row.facets.as_deref().expect("facets stored");
        bytes += text.len();
        tally.add_facets(&roentgen_web::analytics::Facets::decode(text).expect("facets"));
    }
    let _ = tally.finish();
    eprintln!(
        "{group_name} stages: store read of {} traces' facets ({:.0} bytes each) {:.3} s, \
         decode and fold {:.3} s",
        rows.len(),
        bytes as f64 / rows.len().max(1) as f64,
        read_time.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    eprintln!(
        "{group_name}: a set of {} traces ({} breakdowns) out of {traces}; the engine reads {read} rows",
        once.traces,
        once.breakdowns.len()
    );
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("analysis_of_the_set", once.traces), |b| {
        b.iter(fold)
    });
    group.bench_function(
        BenchmarkId::new("baseline_engine_reads_the_summaries", read),
        |b| b.iter(|| engine_read(start, end)),
    );
    group.finish();
}

/// The window of [`analytics_group`]: the part of the benchmarked hour holding 297,000 of
/// `traces` spread evenly over it (a third of them, the set, just under 100,000).
pub fn analytics_window(traces: usize) -> (f64, f64) {
    let span = (3600.0 * 297_000.0 / traces as f64).min(3600.0);
    (HOUR_START, HOUR_START + span)
}
