//! OTLP over gRPC, and OTLP under authentication: the official Python SDK's OTLP/gRPC exporter
//! sending to the collector's `--otlp-grpc` port and to the local daemon's (loopback 4317);
//! calls that cannot be read answered with OTLP's status codes while both servers go on
//! serving; with `--auth-keys`, gRPC calls carry a key as `authorization: Basic` metadata
//! (from `OTEL_EXPORTER_OTLP_HEADERS`) and OTLP/HTTP requests are SigV4-signed by botocore,
//! each allowed only with `xray:PutTraceSegments` and audited.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use roentgen_tests::daemon::{Daemon, metric, python};
use roentgen_tests::web::{Collector, aws_xray};
use roentgen_tests::{data, eventually};
use serde_json::Value;

use super::otlp::{calls, json, map_text, now_seconds, python_client_with, segments_of, succeeded};
use super::security::create_key;

/// Raw calls (`garbage`, `oversize`, `empty`) to the `Export` method at `target`, with
/// `authorization` metadata if given; the status code name of each.
fn raw_calls(target: &str, kinds: &[&str], authorization: Option<&str>) -> Vec<String> {
    let mut command = Command::new(python());
    command
        .arg(data("../python/otlp_grpc_raw.py"))
        .arg(target)
        .args(kinds);
    if let Some(value) = authorization {
        command.env("ROENTGEN_GRPC_AUTHORIZATION", value);
    }
    let out = command.output().expect("run the raw gRPC client");
    succeeded(&out)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, code)| code.to_owned()))
        .collect()
}

fn basic(id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {encoded}")
}

#[test]
fn the_python_sdks_otlp_grpc_exporter_lands_on_the_map_directly_and_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--otlp-grpc", "127.0.0.1:0"]);
    let grpc = collector
        .otlp_grpc
        .clone()
        .expect("the collector's gRPC port");
    let w3c = python_client_with(&grpc, "grpc", &[]);
    let docs = segments_of(&collector, &w3c, 3);
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("jane.doe@example.com"), "scrubbed: {text}");
    assert!(!text.contains("4111111111111111"), "sanitized: {text}");
    let payments = docs
        .iter()
        .find(|d| d["name"] == "py-payments")
        .expect("py-payments");
    assert_eq!(payments["fault"], true);
    assert_eq!(payments["cause"]["exceptions"][0]["type"], "ValueError");
    let map = map_text(&collector, now_seconds());
    assert!(calls(&map, "py-frontend", "py-checkout"), "{map}");
    assert!(calls(&map, "py-payments", "ledger@ledger-db"), "{map}");
    let metrics =
        roentgen_tests::http::request(&collector.address, "GET", "/metrics", &[], "").body;
    assert!(
        metric(&metrics, "roentgen_web_ingest_bytes_total") > 1_000,
        "the gRPC calls' bytes are counted: {metrics}"
    );

    // The same exporter pointed at the daemon on its server: scrubbed there, forwarded.
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "100"]);
    let w3c = python_client_with(&daemon.otlp_grpc, "grpc", &[]);
    let docs = segments_of(&collector, &w3c, 3);
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("jane.doe@example.com"), "scrubbed: {text}");
    assert_eq!(
        metric(&daemon.metrics(), "roentgen_daemon_otlp_spans_total"),
        6
    );
}

#[test]
fn bad_otlp_grpc_calls_get_otlps_status_codes_and_both_servers_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--otlp-grpc", "127.0.0.1:0"]);
    let daemon = Daemon::start(&collector.endpoint_url(), &[]);
    let refused = |text: &str, reason: &str| {
        metric(
            text,
            &format!("roentgen_web_requests_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    let metrics_at = collector.address.clone();
    let collector_metrics =
        || roentgen_tests::http::request(&metrics_at, "GET", "/metrics", &[], "").body;
    let before = collector_metrics();
    for target in [
        collector.otlp_grpc.clone().expect("gRPC port"),
        daemon.otlp_grpc.clone(),
    ] {
        let codes = raw_calls(&target, &["garbage", "oversize", "empty"], None);
        assert_eq!(codes[0], "INVALID_ARGUMENT", "{target}: {codes:?}");
        assert!(
            matches!(codes[1].as_str(), "OUT_OF_RANGE" | "RESOURCE_EXHAUSTED"),
            "{target}: {codes:?}"
        );
        assert_eq!(codes[2], "OK", "{target}: the next call is served");
    }
    let after = collector_metrics();
    assert_eq!(
        refused(&after, "invalid_request") - refused(&before, "invalid_request"),
        1,
        "{after}"
    );
    assert_eq!(
        refused(&after, "too_large") - refused(&before, "too_large"),
        1,
        "{after}"
    );
    assert_eq!(
        metric(
            &daemon.metrics(),
            "roentgen_daemon_otlp_requests_refused_total"
        ),
        2
    );
}

/// Reads a trace through the AWS CLI signed with a reader key: its segments' names, sorted.
fn names_read_by(collector: &Collector, key: (&str, &str), w3c: &str) -> Option<Vec<String>> {
    let id = format!("1-{}-{}", &w3c[..8], &w3c[8..]);
    let (ok, out, _) = aws_xray(
        collector,
        Some(key),
        "us-east-1",
        &["batch-get-traces", "--trace-ids", &id],
    );
    if !ok {
        return None;
    }
    let mut names: Vec<String> = json(&out)["Traces"][0]["Segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json(s["Document"].as_str().unwrap_or("{}"))["name"].to_string())
        .collect();
    names.sort();
    Some(names)
}

#[test]
fn under_auth_keys_otlp_needs_a_key_allowed_to_put_traces_over_grpc_and_signed_http() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let audit = dir.path().join("audit.jsonl");
    let writer = create_key(&keys, "otel-writer", "xray:PutTraceSegments");
    let reader = create_key(&keys, "reader", "xray:Get*,xray:BatchGet*");
    let collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--auth-keys",
            keys.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--otlp-grpc",
            "127.0.0.1:0",
        ],
    );
    let grpc = collector.otlp_grpc.clone().expect("gRPC port");
    let read_key = (reader.id.as_str(), reader.secret.as_str());

    // gRPC: the key as metadata, the way users configure every OpenTelemetry SDK.
    let header = format!(
        "authorization={}",
        basic(&writer.id, &writer.secret).replace(' ', "%20")
    );
    let w3c = python_client_with(&grpc, "grpc", &[("OTEL_EXPORTER_OTLP_HEADERS", &header)]);
    let names = eventually(Duration::from_secs(30), || {
        names_read_by(&collector, read_key, &w3c).filter(|n| n.len() == 3)
    })
    .expect("the gRPC trace, read with the reader key");
    assert_eq!(
        names,
        ["\"py-checkout\"", "\"py-frontend\"", "\"py-payments\""]
    );
    // No key, a wrong secret, a key not allowed to put: refused, nothing stored.
    let codes = |authorization: Option<&str>| raw_calls(&grpc, &["empty"], authorization);
    assert_eq!(codes(None), ["UNAUTHENTICATED"]);
    assert_eq!(
        codes(Some(&basic(&writer.id, "not-the-secret"))),
        ["UNAUTHENTICATED"]
    );
    assert_eq!(
        codes(Some(&basic(&reader.id, &reader.secret))),
        ["PERMISSION_DENIED"]
    );

    // HTTP: SigV4-signed by botocore for service xray, as AWS's OTLP endpoint asks.
    let endpoint = format!("{}/v1/traces", collector.endpoint_url());
    let signed_by = |key: &super::security::Key| {
        python_client_with(
            &endpoint,
            "http",
            &[
                ("AWS_ACCESS_KEY_ID", key.id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", key.secret.as_str()),
            ],
        )
    };
    let signed = signed_by(&writer);
    let names = eventually(Duration::from_secs(30), || {
        names_read_by(&collector, read_key, &signed).filter(|n| n.len() == 3)
    })
    .expect("the signed OTLP/HTTP trace");
    assert_eq!(names.len(), 3);
    let denied = signed_by(&reader);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        names_read_by(&collector, read_key, &denied).map(|n| n.len()),
        Some(0),
        "a reader's spans are refused"
    );

    // Every call audited: the gRPC ones at the Export path, allowed or not.
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    let export = |allowed: bool, principal: Option<&str>| {
        lines
            .iter()
            .filter(|l| {
                l["path"] == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                    && l["action"] == "xray:PutTraceSegments"
                    && l["allowed"] == allowed
                    && principal.is_none_or(|p| l["principal"] == p)
            })
            .count()
    };
    assert!(
        export(true, Some("otel-writer")) >= 6,
        "six spans, one call each"
    );
    assert_eq!(export(false, None), 3, "{lines:?}");
    assert_eq!(export(false, Some("reader")), 1);
    let http_denied = lines
        .iter()
        .filter(|l| l["path"] == "/v1/traces" && l["allowed"] == false)
        .count();
    assert!(http_denied >= 1, "{lines:?}");
}

#[test]
fn with_tls_the_grpc_port_speaks_h2_over_the_collectors_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = super::tls::make_pki(dir.path());
    let keys = dir.path().join("keys.json");
    let writer = create_key(&keys, "otel-writer", "xray:PutTraceSegments");
    let reader = create_key(&keys, "reader", "xray:BatchGet*");
    let mut collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--auth-keys",
            keys.to_str().unwrap(),
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
            "--otlp-grpc",
            "127.0.0.1:0",
        ],
    );
    collector.ca_bundle = Some(pki.ca.clone());
    let grpc = format!(
        "https://{}",
        collector.otlp_grpc.clone().expect("gRPC port")
    );
    let header = format!(
        "authorization={}",
        basic(&writer.id, &writer.secret).replace(' ', "%20")
    );
    let w3c = python_client_with(
        &grpc,
        "grpc",
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", &header),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca.to_str().unwrap()),
        ],
    );
    let read_key = (reader.id.as_str(), reader.secret.as_str());
    let names = eventually(Duration::from_secs(30), || {
        names_read_by(&collector, read_key, &w3c).filter(|n| n.len() == 3)
    })
    .expect("the trace sent over TLS");
    assert_eq!(names.len(), 3);
}
