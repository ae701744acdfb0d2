//! The SDK end to end: the example axum app, driven over real HTTP, sends its documents to a
//! real UDP socket; we check structure, header propagation, sampling and scrubbing.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use roentgen_sdk::model::{Segment, split_datagram};
use roentgen_tests::http::request;
use roentgen_tests::{Process, example};

struct App {
    _process: Process,
    address: String,
    udp: UdpSocket,
}

fn start_app(rules: Option<&str>) -> App {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let mut command = Command::new(example("axum_app"));
    command
        .env("LISTEN", "127.0.0.1:0")
        .env("SERVICE_NAME", "shop")
        .env(
            "AWS_XRAY_DAEMON_ADDRESS",
            udp.local_addr().expect("udp address").to_string(),
        );
    if let Some(rules) = rules {
        let path = std::env::temp_dir().join(format!("roentgen-rules-{}.json", std::process::id()));
        std::fs::write(&path, rules).expect("rules file");
        command.env("ROENTGEN_SAMPLING_RULES", path);
    }
    let process = Process::start(command);
    let line = process.wait_for_line("listening", Duration::from_secs(60));
    App {
        address: Process::field(&line, "http"),
        _process: process,
        udp,
    }
}

/// Receives datagrams until `count` arrived; returns the raw texts and the parsed documents.
fn receive(udp: &UdpSocket, count: usize) -> (Vec<String>, Vec<Segment>) {
    udp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    let mut raw = Vec::new();
    let mut docs = Vec::new();
    for _ in 0..count {
        let n = udp.recv(&mut buf).expect("a datagram from the app");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let doc: Segment =
            serde_json::from_slice(split_datagram(&buf[..n]).expect("X-Ray framing"))
                .expect("JSON");
        doc.validate().expect("a valid document");
        raw.push(text);
        docs.push(doc);
    }
    (raw, docs)
}

fn silence(udp: &UdpSocket) -> bool {
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    udp.recv(&mut buf).is_err()
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

#[test]
fn traced_request_continues_the_callers_trace_and_propagates_downstream() {
    let app = start_app(None);
    let header = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1");
    let response = request(
        &app.address,
        "POST",
        "/api/checkout?email=jane.doe@example.com&items=3",
        &[("X-Amzn-Trace-Id", &header), ("User-Agent", "e2e/1.0")],
        "",
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("x-amzn-trace-id"),
        Some(format!("Root={ROOT}").as_str())
    );

    let (raw, docs) = receive(&app.udp, 2);
    for text in &raw {
        assert!(
            text.starts_with("{\"format\":\"json\",\"version\":1}\n"),
            "{text}"
        );
        assert!(
            !text.contains("jane.doe@example.com"),
            "PII left the process: {text}"
        );
    }
    let checkout = docs
        .iter()
        .find(|d| d.parent_id.map(|p| p.to_string()).as_deref() == Some("53995c3f42cd8ad8"))
        .expect("the checkout segment continues the caller's trace");
    assert_eq!(checkout.name, "shop");
    assert_eq!(checkout.trace_id.expect("trace id").to_string(), ROOT);
    let http = checkout.http.as_ref().expect("http");
    let req = http.request.as_ref().expect("request");
    assert_eq!(req.method.as_deref(), Some("POST"));
    assert_eq!(req.user_agent.as_deref(), Some("e2e/1.0"));
    assert_eq!(http.response.as_ref().and_then(|r| r.status), Some(200));
    let subs = checkout.subsegments.as_ref().expect("subsegments");
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["validate-cart", "orders@db.example.com", "inventory"]
    );
    let sql = subs[1].sql.as_ref().expect("sql");
    assert_eq!(
        sql.sanitized_query.as_deref(),
        Some("INSERT INTO orders (email, items) VALUES (?, ?)")
    );
    assert_eq!(subs[2].namespace.as_deref(), Some("remote"));

    // The downstream segment's parent is the remote subsegment that made the call.
    let inventory = docs
        .iter()
        .find(|d| d.id != checkout.id)
        .expect("downstream segment");
    assert_eq!(inventory.trace_id, checkout.trace_id);
    assert_eq!(inventory.parent_id, Some(subs[2].id));
}

#[test]
fn errors_throttles_and_faults_are_flagged() {
    let app = start_app(None);
    let header = format!("Root={ROOT};Sampled=1");
    let response = request(
        &app.address,
        "POST",
        "/api/checkout?items=10",
        &[("X-Amzn-Trace-Id", &header)],
        "",
    );
    assert_eq!(response.status, 502);
    let (_, docs) = receive(&app.udp, 2);
    let checkout = docs
        .iter()
        .find(|d| d.subsegments.is_some())
        .expect("checkout segment");
    assert_eq!(checkout.fault, Some(true));
    assert!(checkout.cause.is_some(), "the error is recorded as cause");
    let inventory = docs
        .iter()
        .find(|d| d.subsegments.is_none())
        .expect("inventory");
    assert_eq!(inventory.error, Some(true));
    assert_eq!(inventory.throttle, Some(true));
}

#[test]
fn unsampled_requests_send_nothing_and_answer_the_decision() {
    let app = start_app(Some(
        r#"{"version":2,"default":{"fixed_target":0,"rate":0}}"#,
    ));
    let response = request(&app.address, "GET", "/api/hello", &[], "");
    assert_eq!(response.status, 200);
    assert!(response.header("x-amzn-trace-id").is_some());
    let asked = format!("Root={ROOT};Sampled=?");
    let response = request(
        &app.address,
        "GET",
        "/api/hello",
        &[("X-Amzn-Trace-Id", &asked)],
        "",
    );
    assert_eq!(
        response.header("x-amzn-trace-id"),
        Some(format!("Root={ROOT};Sampled=0").as_str())
    );
    assert!(silence(&app.udp), "an unsampled request sent a document");
}

/// The `tracing_layer` example (an axum app instrumented only with `tracing`, calling its
/// stock service through `reqwest-middleware`) through the real daemon and collector: its
/// calls are edges on the map and its `#[instrument]` fields searchable annotations.
#[test]
fn an_app_instrumented_only_with_tracing_shows_its_remote_calls_on_the_map() {
    use roentgen_tests::daemon::Daemon;
    use roentgen_tests::web::Collector;
    let dir = tempfile::tempdir().expect("data dir");
    let collector = Collector::start(dir.path(), &[]);
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "100"]);
    let rules = dir.path().join("always.json");
    std::fs::write(
        &rules,
        r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#,
    )
    .expect("rules file");
    let out = Command::new(example("tracing_layer"))
        .env(
            "AWS_XRAY_DAEMON_ADDRESS",
            format!("tcp:{} udp:{}", daemon.tcp, daemon.udp),
        )
        .env("ROENTGEN_SAMPLING", "local")
        .env("ROENTGEN_SAMPLING_RULES", &rules)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("sent: 4"), "{stdout}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let window = format!("{{\"StartTime\":{},\"EndTime\":{}}}", now - 600, now + 60);
    // Two quotes, each calling the stock service (the same app): the edge quotes -> quotes
    // carries both calls, one of them a 404.
    let edge = roentgen_tests::eventually(Duration::from_secs(30), || {
        let (_, text) = collector.post("/ServiceGraph", &window);
        let graph: serde_json::Value = serde_json::from_str(&text).ok()?;
        let quotes = graph["Services"]
            .as_array()?
            .iter()
            .find(|s| s["Name"] == "quotes")?
            .clone();
        let edge = quotes["Edges"]
            .as_array()?
            .iter()
            .find(|e| e["ReferenceId"] == quotes["ReferenceId"])?
            .clone();
        (edge["SummaryStatistics"]["TotalCount"] == 2).then_some(edge)
    });
    let edge = edge.expect("the quotes -> quotes edge with both calls");
    assert_eq!(
        edge["SummaryStatistics"]["ErrorStatistics"]["TotalCount"], 1,
        "{edge}"
    );
    let (status, text) = collector.post(
        "/TraceSummaries",
        &format!(
            "{{\"StartTime\":{},\"EndTime\":{},\"FilterExpression\":\"annotation.sku = \\\"tea-42\\\"\"}}",
            now - 600,
            now + 60
        ),
    );
    assert_eq!(status, 200, "{text}");
    let summaries: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        summaries["TraceSummaries"].as_array().map(Vec::len),
        Some(1),
        "{text}"
    );
}
