//! OpenTelemetry SDKs exporting OTLP straight to the collector's `/v1/traces`: the official
//! Python SDK with its OTLP/HTTP exporter (protobuf, gzip) and the JS SDK with its (JSON) each
//! trace a request across three services with a database call and an exception; the trace
//! lands on the same map as X-Ray SDK traffic, scrubbed, with the query sanitized and the
//! exception's frames. The local daemon takes OTLP too: scrubbed there, spooled through an
//! outage.

use std::process::Command;
use std::time::Duration;

use roentgen_tests::web::Collector;
use roentgen_tests::{data, eventually};
use serde_json::Value;

pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs the Python OTLP/HTTP client against `endpoint`; returns its trace id (32 hex digits).
fn python_client(endpoint: &str) -> String {
    python_client_with(endpoint, "http", &[])
}

/// Runs the Python OTLP client with `transport` (`http` or `grpc`) and extra environment
/// against `endpoint`; returns its trace id (32 hex digits).
pub(crate) fn python_client_with(endpoint: &str, transport: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(roentgen_tests::daemon::python())
        .arg(data("../python/otlp_three_services.py"))
        .args([endpoint, transport])
        .envs(env.iter().copied())
        .output()
        .expect("run the Python OpenTelemetry client");
    trace_id_printed(&out)
}

/// The standard output of a client that must have succeeded.
pub(crate) fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `TRACE <32 hex>` line of a client that must have succeeded.
fn trace_id_printed(out: &std::process::Output) -> String {
    succeeded(out)
        .lines()
        .find_map(|l| l.strip_prefix("TRACE "))
        .expect("the trace id")
        .trim()
        .to_owned()
}

/// Now, in epoch seconds.
pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The collector's service graph of the last ten minutes, as JSON text.
pub(crate) fn map_text(collector: &Collector, now: u64) -> String {
    let window = format!("{{\"StartTime\":{},\"EndTime\":{}}}", now - 600, now + 60);
    collector.post("/ServiceGraph", &window).1
}

/// A collector, a daemon forwarding to it, and the OTLP/HTTP endpoints of both (collector
/// first).
fn collector_and_daemon(
    dir: &std::path::Path,
) -> (Collector, roentgen_tests::daemon::Daemon, [String; 2]) {
    let collector = Collector::start(dir, &[]);
    let daemon = roentgen_tests::daemon::Daemon::start(
        &collector.endpoint_url(),
        &["--flush-interval-ms", "100"],
    );
    let endpoints = [
        format!("{}/v1/traces", collector.endpoint_url()),
        format!("http://{}/v1/traces", daemon.otlp_http),
    ];
    (collector, daemon, endpoints)
}

/// Whether the graph has an edge from service `from` to service `to`.
pub(crate) fn calls(graph: &str, from: &str, to: &str) -> bool {
    let graph = json(graph);
    let services = graph["Services"].as_array().cloned().unwrap_or_default();
    let Some(to_id) = services
        .iter()
        .find(|s| s["Name"] == to)
        .map(|s| s["ReferenceId"].clone())
    else {
        return false;
    };
    services
        .iter()
        .find(|s| s["Name"] == from)
        .and_then(|s| s["Edges"].as_array())
        .is_some_and(|edges| edges.iter().any(|e| e["ReferenceId"] == to_id))
}

/// The trace's segments once the collector holds `count` of them, each with its subsegments
/// in it (a span that is a subsegment can arrive before its segment, batched apart by the
/// daemon, and is shown on its own until then). The W3C id, 32 hex digits, is asked for in its
/// X-Ray form.
pub(crate) fn segments_of(collector: &Collector, w3c: &str, count: usize) -> Vec<Value> {
    let body = format!("{{\"TraceIds\":[\"1-{}-{}\"]}}", &w3c[..8], &w3c[8..]);
    eventually(Duration::from_secs(30), || {
        let (_, text) = collector.post("/Traces", &body);
        let docs: Vec<Value> = json(&text)["Traces"][0]["Segments"]
            .as_array()?
            .iter()
            .map(|s| json(s["Document"].as_str().unwrap_or("{}")))
            .collect();
        let whole = docs.iter().all(|d| d["type"] != "subsegment");
        (docs.len() == count && whole).then_some(docs)
    })
    .unwrap_or_else(|| panic!("{count} segments of trace {w3c}"))
}

/// Exported one span per request, and each service's spans in one request (stored one tree
/// per document): the same trace either way.
#[test]
fn the_python_sdks_otlp_http_exporter_lands_three_services_on_one_map() {
    for batch in ["0", "1"] {
        let dir = tempfile::tempdir().unwrap();
        let collector = Collector::start(dir.path(), &[]);
        let w3c = python_client_with(
            &format!("{}/v1/traces", collector.endpoint_url()),
            "http",
            &[("E2E_BATCH", batch)],
        );
        let docs = segments_of(&collector, &w3c, 3);
        let metrics =
            roentgen_tests::http::request(&collector.address, "GET", "/metrics", &[], "").body;
        // Six spans: alone, six documents; a service's spans together, one document each.
        let stored = if batch == "1" { 3 } else { 6 };
        assert_eq!(
            roentgen_tests::daemon::metric(&metrics, "roentgen_web_documents_accepted_total"),
            stored,
            "{metrics}"
        );
        let text = serde_json::to_string(&docs).unwrap();
        assert!(
            !text.contains("jane.doe@example.com"),
            "scrubbed by default: {text}"
        );
        assert!(
            !text.contains("4111111111111111"),
            "query sanitized: {text}"
        );
        let payments = docs
            .iter()
            .find(|d| d["name"] == "py-payments")
            .expect("py-payments");
        assert_eq!(payments["fault"], true);
        let exception = &payments["cause"]["exceptions"][0];
        assert_eq!(exception["type"], "ValueError", "{payments}");
        assert!(
            exception["stack"][0]["path"]
                .as_str()
                .unwrap()
                .ends_with("otlp_three_services.py")
        );
        let db = payments["subsegments"]
            .as_array()
            .and_then(|subs| subs.iter().find(|s| s["name"] == "ledger@ledger-db"))
            .expect("the database call");
        assert_eq!(
            db["sql"]["sanitized_query"],
            "SELECT * FROM cards WHERE number = ?"
        );

        // The map: frontend -> checkout -> payments -> the database.
        let now = now_seconds();
        let text = map_text(&collector, now);
        assert!(calls(&text, "py-frontend", "py-checkout"), "{text}");
        assert!(calls(&text, "py-checkout", "py-payments"), "{text}");
        assert!(calls(&text, "py-payments", "ledger@ledger-db"), "{text}");

        // The AWS CLI reads the same trace, its edges with their fault counts, and finds it.
        let aws = |args: &[&str]| {
            let (ok, out, err) = roentgen_tests::web::aws_xray(&collector, None, "us-east-1", args);
            assert!(ok, "aws xray {args:?}: {err}");
            json(&out)
        };
        let x_ray = format!("1-{}-{}", &w3c[..8], &w3c[8..]);
        let traces = aws(&["batch-get-traces", "--trace-ids", &x_ray]);
        assert_eq!(
            traces["Traces"][0]["Segments"].as_array().map(Vec::len),
            Some(3)
        );
        let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
        let graph = aws(&[
            "get-service-graph",
            "--start-time",
            &start,
            "--end-time",
            &end,
        ]);
        let checkout = graph["Services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Name"] == "py-checkout"))
            .expect("py-checkout");
        let faults =
            checkout["Edges"][0]["SummaryStatistics"]["FaultStatistics"]["TotalCount"].clone();
        assert_eq!(faults, 1, "the call to payments faulted: {checkout}");
        // Found by a filter, and by its own id in the W3C form the OpenTelemetry SDK made it in.
        for filter in [
            "service(\"py-payments\") { fault }".to_owned(),
            format!("id(\"{w3c}\")"),
        ] {
            let found = aws(&[
                "get-trace-summaries",
                "--start-time",
                &start,
                "--end-time",
                &end,
                "--filter-expression",
                &filter,
            ]);
            let ids: Vec<&str> = found["TraceSummaries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["Id"].as_str())
                .collect();
            assert_eq!(ids, [x_ray.as_str()], "{filter}");
        }
    }
}

/// The OpenTelemetry JS SDK's OTLP/HTTP exporter (JSON bodies): three services and a database,
/// the outgoing 404 an error on its edge (not a fault), the database's failure a fault with its
/// cause, personal data scrubbed; sent to the collector directly and through the daemon.
#[test]
fn the_node_sdks_otlp_http_exporter_lands_on_the_map_with_errors_where_they_belong() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, _daemon, endpoints) = collector_and_daemon(dir.path());
    for endpoint in endpoints {
        node_trace_lands_on_the_map(&collector, &endpoint);
    }
}

/// Runs the Node client against `endpoint` and checks its trace on `collector`.
fn node_trace_lands_on_the_map(collector: &Collector, endpoint: &str) {
    let out = Command::new("node")
        .arg(data("../node/otlp_http.js"))
        .arg(endpoint)
        .env("NODE_PATH", roentgen_tests::daemon::node_modules())
        .output()
        .expect("run the Node OpenTelemetry client");
    let w3c = trace_id_printed(&out);
    let docs = segments_of(collector, &w3c, 3);
    let text = serde_json::to_string(&docs).expect("the trace as sent");
    assert!(!text.contains("555 0132"), "scrubbed: {text}");
    assert!(!text.contains("ana@example.org"), "sanitized: {text}");
    let frontend = docs
        .iter()
        .find(|d| d["name"] == "node-frontend")
        .unwrap_or_else(|| panic!("{text}"));
    let call = &frontend["subsegments"][0];
    assert_eq!(call["name"], "node-checkout");
    assert_eq!(
        (call["error"].clone(), call["fault"].clone()),
        (Value::Bool(true), Value::Null)
    );
    let payments = docs
        .iter()
        .find(|d| d["name"] == "node-payments")
        .expect("the trace as sent");
    let db = &payments["subsegments"][0];
    assert_eq!(db["name"], "wallets@wallet-db");
    assert_eq!(db["fault"], true);
    assert_eq!(db["cause"]["exceptions"][0]["message"], "deadlock found");
    assert_eq!(db["sql"]["database_type"], "mysql");
}

/// A Rust app traced with `opentelemetry` and exported with `opentelemetry-otlp` (HTTP,
/// protobuf): three services calling each other and a database; sent to the collector
/// directly and through the daemon.
#[test]
fn a_rust_app_exporting_with_opentelemetry_otlp_lands_on_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, _daemon, endpoints) = collector_and_daemon(dir.path());
    for endpoint in endpoints {
        rust_trace_lands_on_the_map(&collector, endpoint);
    }
}

/// Traces three services with `opentelemetry`, exports to `endpoint`, and checks the trace on
/// `collector`.
fn rust_trace_lands_on_the_map(collector: &Collector, endpoint: String) {
    use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    let provider = |service: &'static str| {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.clone())
            .build()
            .expect("an OTLP exporter");
        SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service).build())
            .with_simple_exporter(exporter)
            .build()
    };
    let providers = [
        provider("rs-gateway"),
        provider("rs-orders"),
        provider("rs-stock"),
    ];
    let tracers: Vec<_> = providers.iter().map(|p| p.tracer("e2e")).collect();
    let span =
        |tracer: usize, name: &str, kind: SpanKind, parent: &Context, attributes: Vec<KeyValue>| {
            tracers[tracer]
                .span_builder(name.to_owned())
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(&tracers[tracer], parent)
        };
    let http = |status: i64| {
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", status),
        ]
    };
    // Each span's context holds it (and its ancestors' contexts stay alive below it).
    let mut stack = vec![Context::new()];
    let mut open = |tracer: usize, name: &str, kind: SpanKind, attributes: Vec<KeyValue>| {
        let parent = stack.last().cloned().unwrap_or_default();
        let child = span(tracer, name, kind, &parent, attributes);
        stack.push(parent.with_span(child));
    };
    open(0, "GET /orders", SpanKind::Server, http(200));
    let mut to_orders = http(200);
    to_orders.push(KeyValue::new("peer.service", "rs-orders"));
    open(0, "GET", SpanKind::Client, to_orders);
    open(1, "GET /orders", SpanKind::Server, http(200));
    let mut to_stock = http(503);
    to_stock.push(KeyValue::new("peer.service", "rs-stock"));
    open(1, "GET", SpanKind::Client, to_stock);
    open(2, "GET /stock", SpanKind::Server, http(503));
    open(
        2,
        "SELECT",
        SpanKind::Client,
        vec![
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.namespace", "stock"),
            KeyValue::new("server.address", "stock-db"),
            KeyValue::new(
                "db.query.text",
                "SELECT qty FROM stock WHERE sku = 'tea-42'",
            ),
        ],
    );
    let trace_id = stack[1].span().span_context().trace_id().to_string();
    while let Some(cx) = stack.pop() {
        cx.span().end();
    }
    for p in &providers {
        p.force_flush().expect("flush");
    }

    let docs = segments_of(collector, &trace_id, 3);
    let stock = docs
        .iter()
        .find(|d| d["name"] == "rs-stock")
        .expect("rs-stock");
    assert_eq!(stock["fault"], true, "{stock}");
    assert_eq!(
        stock["subsegments"][0]["sql"]["sanitized_query"],
        "SELECT qty FROM stock WHERE sku = ?"
    );
    let orders = docs
        .iter()
        .find(|d| d["name"] == "rs-orders")
        .expect("rs-orders");
    let gateway = docs
        .iter()
        .find(|d| d["name"] == "rs-gateway")
        .expect("rs-gateway");
    assert_eq!(
        orders["parent_id"], gateway["subsegments"][0]["id"],
        "{gateway}"
    );
}

/// The Python client exporting to the daemon on its server (OTLP/HTTP on loopback): the spans
/// are scrubbed there (the collector does not scrub `PutTraceSegments`), batched and forwarded
/// with the X-Ray SDKs' documents, and counted in the daemon's metrics.
#[test]
fn opentelemetry_sdks_export_to_the_local_daemon_which_scrubs_and_forwards() {
    use roentgen_tests::daemon::{Daemon, metric};
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "100"]);
    // Each service's spans in one request: the daemon forwards them one tree per service.
    let w3c = python_client_with(
        &format!("http://{}/v1/traces", daemon.otlp_http),
        "http",
        &[("E2E_BATCH", "1")],
    );
    let docs = segments_of(&collector, &w3c, 3);
    let text = serde_json::to_string(&docs).unwrap();
    assert!(
        !text.contains("jane.doe@example.com"),
        "scrubbed by the daemon: {text}"
    );
    let metrics = daemon.metrics();
    assert_eq!(metric(&metrics, "roentgen_daemon_otlp_spans_total"), 6);
    assert_eq!(
        metric(&metrics, "roentgen_daemon_accepted_total"),
        3,
        "{metrics}"
    );
}

/// A collector outage: the daemon spools the OTLP spans with everything else and delivers
/// each once when the collector is back.
#[test]
fn otlp_spans_survive_a_collector_outage_in_the_daemons_spool() {
    use roentgen_tests::collector_stub::{self, Fault};
    use roentgen_tests::daemon::{Daemon, metric};
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let collector = collector_stub::recording();
    collector.set_fault(Fault::Status(503));
    let daemon = Daemon::start(
        &collector.url(),
        &[
            "--flush-interval-ms",
            "100",
            "--spool-dir",
            spool.to_str().unwrap(),
            "--spool-after-attempts",
            "1",
            "--retry-max-backoff-ms",
            "200",
        ],
    );
    python_client(&format!("http://{}/v1/traces", daemon.otlp_http));
    eventually(Duration::from_secs(30), || {
        (metric(&daemon.metrics(), "roentgen_daemon_spooled_total") == 6).then_some(())
    })
    .expect("the six spans spooled while the collector refuses");
    collector.set_fault(Fault::None);
    let delivered = eventually(Duration::from_secs(60), || {
        (collector.documents().len() >= 6).then(|| collector.documents())
    })
    .expect("delivered once the collector is back");
    assert_eq!(delivered.len(), 6, "each span once");
    let m = daemon.metrics();
    assert_eq!(metric(&m, "roentgen_daemon_replayed_total"), 6, "{m}");
}

/// Bodies nobody can read get a clear 4xx from the collector and from the daemon, which go on
/// serving, and count them in `/metrics`.
#[test]
fn bad_otlp_bodies_get_a_clear_4xx_and_both_servers_keep_serving() {
    use roentgen_tests::daemon::{Daemon, metric};
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let daemon = Daemon::start(&collector.endpoint_url(), &[]);
    let http = reqwest::blocking::Client::new();
    let send = |url: &str, body: Vec<u8>, content_type: &str| {
        http.post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("an answer")
            .status()
            .as_u16()
    };
    let sum_of = |metrics: &str, name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let collector_metrics = || {
        http.get(format!("{}/metrics", collector.endpoint_url()))
            .send()
            .and_then(|r| r.text())
            .expect("collector metrics")
    };
    let refused_before = sum_of(&collector_metrics(), "roentgen_web_requests_refused_total");
    for url in [
        format!("{}/v1/traces", collector.endpoint_url()),
        format!("http://{}/v1/traces", daemon.otlp_http),
    ] {
        // Garbage, then a field whose length runs past the body's end.
        assert_eq!(
            send(&url, vec![0xff; 16], "application/x-protobuf"),
            400,
            "{url}"
        );
        assert_eq!(
            send(&url, vec![0x0a, 0x64, 1, 2, 3], "application/x-protobuf"),
            400
        );
        assert_eq!(
            send(&url, b"{\"resourceSpans\":7}".to_vec(), "application/json"),
            400
        );
        assert_eq!(send(&url, b"{}".to_vec(), "text/plain"), 415);
        // One byte past the 16 MiB bound: read whole, then refused.
        assert_eq!(
            send(&url, vec![0; (16 << 20) + 1], "application/x-protobuf"),
            413
        );
        // And the next good request is taken.
        assert_eq!(
            send(&url, b"{\"resourceSpans\":[]}".to_vec(), "application/json"),
            200
        );
    }
    assert_eq!(
        metric(
            &daemon.metrics(),
            "roentgen_daemon_otlp_requests_refused_total"
        ),
        5
    );
    let refused = sum_of(&collector_metrics(), "roentgen_web_requests_refused_total");
    assert_eq!(refused - refused_before, 5, "{}", collector_metrics());
}

/// A mixed trace: an edge service on an X-Ray SDK (the Roentgen recorder, UDP to the daemon)
/// calls a core service on OpenTelemetry (OTLP to the same daemon), the `X-Amzn-Trace-Id`
/// header read by the X-Ray propagator. One trace, one edge between them on the map.
#[test]
fn an_xray_sdk_service_calling_an_opentelemetry_service_is_one_trace_on_one_map() {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanKind, Tracer, TracerProvider};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use roentgen_sdk::otel::XRayPropagator;
    use roentgen_sdk::recorder::{Recorder, RecorderConfig};
    use roentgen_sdk::sampling::Rules;
    use roentgen_tests::daemon::Daemon;

    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "100"]);

    // The edge service: X-Ray SDK.
    let mut config = RecorderConfig::new(daemon.udp.parse().unwrap());
    config.rules =
        Rules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#).unwrap();
    config.centralized_sampling = None;
    let recorder = Recorder::new(config).unwrap();
    let segment = recorder.begin_segment("xray-edge", None);
    let trace_id = segment.trace_id().to_string();
    let (call, header) = segment.begin_remote_call("otel-core", "GET", "http://otel-core/api");

    // The core service: OpenTelemetry, continuing the header it received.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("http://{}/v1/traces", daemon.otlp_http))
        .build()
        .expect("an OTLP exporter");
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("otel-core").build())
        .with_simple_exporter(exporter)
        .build();
    let tracer = provider.tracer("e2e");
    let carrier =
        std::collections::HashMap::from([("x-amzn-trace-id".to_owned(), header.to_string())]);
    let parent = XRayPropagator::default().extract_with_context(&Context::new(), &carrier);
    let mut served = tracer
        .span_builder("GET /api")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200),
        ])
        .start_with_context(&tracer, &parent);
    opentelemetry::trace::Span::end(&mut served);
    provider.force_flush().expect("flush");
    call.set_http_response(200, Some(2));
    call.end();
    segment.end();
    recorder.flush(Duration::from_secs(10));

    let w3c: String = trace_id[2..].replace('-', "");
    let docs = segments_of(&collector, &w3c, 2);
    let core = docs
        .iter()
        .find(|d| d["name"] == "otel-core")
        .expect("otel-core");
    let edge = docs
        .iter()
        .find(|d| d["name"] == "xray-edge")
        .expect("xray-edge");
    assert_eq!(core["trace_id"], trace_id.as_str());
    assert_eq!(core["parent_id"], edge["subsegments"][0]["id"], "{edge}");
    let text = map_text(&collector, now_seconds());
    assert!(calls(&text, "xray-edge", "otel-core"), "{text}");
}
