//! The collector observed from outside, end to end: `/metrics` counts exactly what was sent
//! (documents accepted and refused by code, refused requests, bytes, store writes, requests per
//! operation), `/healthz` and `/readyz` answer a load balancer (unsigned even with
//! `--auth-keys`), `/readyz` says 503 while the store cannot take writes, and `/metrics` under
//! `--auth-keys` needs `xray:GetMetrics` (or `--metrics-on-loopback`).

use std::time::Duration;

use roentgen_tests::daemon::metric;
use roentgen_tests::eventually;
use roentgen_tests::http::{Response, request};
use roentgen_tests::web::Collector;

use crate::security::{create_key, now, signed_request, start_collector};

fn get(collector: &Collector, path: &str) -> Response {
    request(&collector.address, "GET", path, &[], "")
}

/// A valid segment document of its own trace, `n` apart from the others.
fn segment(n: u32) -> String {
    let t = now();
    format!(
        "{{\"name\":\"observed\",\"id\":\"{n:016x}\",\"trace_id\":\"1-{:08x}-{n:024x}\",\"start_time\":{t},\"end_time\":{}}}",
        t as u64,
        t + 0.25
    )
}

#[test]
fn observe_metrics_count_exactly_what_was_sent() {
    let root = tempfile::tempdir().expect("test setup");
    let data = root.path().join("roentgen-data");
    let collector = Collector::start(&data, &[]);
    let ignore = std::fs::read_to_string(data.join(".gitignore")).expect("a .gitignore");
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");

    let health = get(&collector, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(&collector, "/readyz").status, 200);

    let too_large = format!(
        "{{\"name\":\"big\",\"id\":\"00000000000000ff\",\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let first = Collector::put_body(&[segment(1), segment(2), "{\"name\":".to_owned()]);
    let second = Collector::put_body(&[segment(3), too_large, "{\"id\":\"nope\"}".to_owned()]);
    let malformed = "{\"TraceSegmentDocuments\": 5}";
    let mut bytes = 0;
    for body in [first.as_str(), second.as_str(), malformed] {
        let (status, answer) = collector.post("/TraceSegments", body);
        assert_eq!(
            status,
            if body == malformed { 400 } else { 200 },
            "{answer}"
        );
        bytes += body.len();
    }
    let window = format!(
        "{{\"StartTime\":{},\"EndTime\":{}}}",
        now() - 600.0,
        now() + 60.0
    );
    for _ in 0..2 {
        assert_eq!(collector.post("/TraceSummaries", &window).0, 200);
    }
    assert_eq!(collector.post("/ServiceGraph", &window).0, 200);
    assert_eq!(collector.post("/NoSuchOperation", "{}").0, 404);
    assert_eq!(get(&collector, "/traces").status, 200);

    let text = get(&collector, "/metrics").body;
    let m = |name: &str| metric(&text, &format!("roentgen_web_{name}"));
    assert_eq!(m("documents_accepted_total"), 3, "{text}");
    assert_eq!(m("documents_refused_total{code=\"InvalidSegment\"}"), 2);
    assert_eq!(m("documents_refused_total{code=\"DocumentTooLarge\"}"), 1);
    assert_eq!(m("documents_refused_total{code=\"other\"}"), 0);
    assert_eq!(m("ingest_bytes_total"), bytes as u64);
    assert_eq!(m("requests_refused_total{reason=\"invalid_request\"}"), 1);
    assert_eq!(m("requests_refused_total{reason=\"unknown_operation\"}"), 1);
    assert_eq!(m("requests_refused_total{reason=\"too_large\"}"), 0);
    assert_eq!(m("requests_failed_total"), 0);
    assert_eq!(m("store_write_seconds_count"), 2);
    assert_eq!(m("store_write_seconds_bucket{le=\"+Inf\"}"), 2);
    assert_eq!(m("store_batches_in_flight"), 0);
    assert_eq!(m("store_documents_in_flight"), 0);
    assert_eq!(m("requests_in_flight"), 1, "the /metrics request itself");
    let count = |operation: &str| {
        m(&format!(
            "request_duration_seconds_count{{operation=\"{operation}\"}}"
        ))
    };
    assert_eq!(count("PutTraceSegments"), 3);
    assert_eq!(count("GetTraceSummaries"), 2);
    assert_eq!(count("GetServiceGraph"), 1);
    assert_eq!(count("/traces"), 1);
    assert_eq!(
        count("readyz"),
        0,
        "health answers are named by their route"
    );
    assert_eq!(count("/readyz"), 1);
    assert!(text.contains("# TYPE roentgen_web_store_write_seconds histogram"));
    assert!(text.contains("roentgen_web_uptime_seconds "));
}

#[test]
fn observe_health_is_open_and_metrics_need_get_metrics_with_auth_keys() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let ops = create_key(&keys, "ops", "xray:GetMetrics");
    let reader = create_key(&keys, "reader", "xray:Get*Trace*");
    let (collector, _) = start_collector(dir.path());

    for path in ["/healthz", "/readyz"] {
        let answer = get(&collector, path);
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ok\n"),
            "{path}"
        );
    }
    let unsigned = get(&collector, "/metrics");
    assert_eq!(unsigned.status, 403, "{}", unsigned.body);
    assert!(
        unsigned
            .body
            .contains("MissingAuthenticationTokenException")
    );
    let denied = signed_request(&collector.address, &reader, "GET", "/metrics", "", 1);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("xray:GetMetrics"), "{}", denied.body);

    let allowed = signed_request(&collector.address, &ops, "GET", "/metrics", "", 2);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let m = |name: &str| metric(&allowed.body, &format!("roentgen_web_{name}"));
    assert_eq!(m("requests_refused_total{reason=\"unsigned\"}"), 1);
    assert_eq!(m("requests_refused_total{reason=\"access_denied\"}"), 1);
    // Health checks pass the auth layer without touching the refusal counters.
    assert_eq!(
        m("request_duration_seconds_count{operation=\"/healthz\"}"),
        1
    );

    let open = Collector::start(
        &dir.path().join("data2"),
        &[
            "--auth-keys",
            keys.to_str().expect("test setup"),
            "--metrics-on-loopback",
        ],
    );
    let local = get(&open, "/metrics");
    assert_eq!(local.status, 200, "{}", local.body);
    assert_eq!(
        get(&open, "/TraceSummaries").status,
        403,
        "only /metrics opens"
    );
}

#[test]
fn observe_readyz_is_503_while_the_store_cannot_take_writes() {
    let dir = tempfile::tempdir().expect("test setup");
    let collector = Collector::start(dir.path(), &[]);
    assert_eq!(get(&collector, "/readyz").status, 200);
    // Another process holds SQLite's write lock: the store cannot commit anything.
    let other = rusqlite::Connection::open(dir.path().join("roentgen.db")).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let locked = get(&collector, "/readyz");
    assert_eq!(
        (locked.status, locked.body.as_str()),
        (503, "store not responding\n")
    );
    assert_eq!(get(&collector, "/healthz").status, 200, "the process is up");
    other.execute_batch("ROLLBACK").expect("release");
    let ready = eventually(Duration::from_secs(30), || {
        (get(&collector, "/readyz").status == 200).then_some(())
    });
    assert!(ready.is_some(), "ready again once the lock is free");
}
