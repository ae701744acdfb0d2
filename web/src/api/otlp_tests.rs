//! `/v1/traces` over the real router and each store: OTLP JSON, protobuf and gzip bodies land
//! as X-Ray documents on the map, scrubbed, with refused spans in the partial success.

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prost::Message;
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::tests::api_with;
use crate::store::clickhouse::testing::{Backend, for_each_store};

for_each_store!(otlp_spans_of_two_services_meet_on_one_map_scrubbed);

/// A trace id whose first 32 bits are the trace's start second, as the X-Ray id generators of
/// the OpenTelemetry SDKs make them. (The ClickHouse store partitions traces by those bits, so
/// ids whose first bits are random land in the wrong day: a known gap, docs/otlp.md.)
const TRACE: &str = "6b49d20098038103d269b633813fc60c";

fn attr(key: &str, value: Value) -> Value {
    let value = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Number(n) => json!({ "intValue": n.to_string() }),
        other => other,
    };
    json!({ "key": key, "value": value })
}

fn span(
    id: &str,
    parent: &str,
    kind: i64,
    name: &str,
    start_ms: u64,
    attributes: Vec<Value>,
) -> Value {
    let ns = |ms: u64| (1_800_000_000_000u64 + ms).to_string() + "000000";
    json!({ "traceId": TRACE, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
            "startTimeUnixNano": ns(start_ms), "endTimeUnixNano": ns(start_ms + 50),
            "attributes": attributes })
}

fn service(name: &str, spans: Vec<Value>) -> Value {
    json!({ "resource": { "attributes": [attr("service.name", json!(name))] },
            "scopeSpans": [{ "spans": spans }] })
}

/// checkout (server) calls payments (client span, then payments' server span), which queries
/// its database; one more span has a trace id of the wrong length.
fn request() -> Value {
    json!({ "resourceSpans": [
        service("checkout", vec![
            span("aaaaaaaaaaaaaaa1", "", 2, "POST /checkout", 0, vec![
                attr("http.request.method", json!("POST")),
                attr("http.response.status_code", json!(502)),
                attr("customer.email", json!("jane.doe@example.com")),
            ]),
            span("aaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaa1", 3, "POST", 5, vec![
                attr("peer.service", json!("payments")),
                attr("http.request.method", json!("POST")),
                attr("http.response.status_code", json!(503)),
            ]),
        ]),
        service("payments", vec![
            span("bbbbbbbbbbbbbbb1", "aaaaaaaaaaaaaaa2", 2, "POST /pay", 10, vec![
                attr("http.request.method", json!("POST")),
                attr("http.response.status_code", json!(503)),
            ]),
            span("bbbbbbbbbbbbbbb2", "bbbbbbbbbbbbbbb1", 3, "SELECT", 12, vec![
                attr("db.system", json!("postgresql")),
                attr("db.name", json!("ledger")),
                attr("server.address", json!("ledger-db")),
                attr("db.statement", json!("SELECT * FROM cards WHERE number = '4111111111111111'")),
            ]),
            json!({ "traceId": "abcd", "spanId": "ccccccccccccccc1", "name": "bad",
                    "startTimeUnixNano": "1800000000000000000" }),
        ]),
    ]})
}

async fn post(
    app: &axum::Router,
    body: Vec<u8>,
    content_type: &str,
    gzip: bool,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::post("/v1/traces").header("content-type", content_type);
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        gz.finish().unwrap()
    } else {
        body
    };
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

async fn otlp_spans_of_two_services_meet_on_one_map_scrubbed(backend: Backend) {
    // Scrubbing on, as the collector's configuration has it by default.
    let api = api_with(backend, |state| {
        state.otlp.scrubber =
            Some(roentgen_sdk::scrub::Scrubber::new(&Default::default()).unwrap());
    })
    .await;
    let (status, body) = post(
        &api.app,
        request().to_string().into_bytes(),
        "application/json",
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], 1, "{answer}");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace id")
    );

    let x_ray_id = "1-6b49d200-98038103d269b633813fc60c";
    let (status, traces, _) = api.call("/Traces", json!({ "TraceIds": [x_ray_id] })).await;
    assert_eq!(status, StatusCode::OK, "{traces}");
    let docs: Vec<Value> = traces["Traces"][0]["Segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(s["Document"].as_str().unwrap()).unwrap())
        .collect();
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("jane.doe@example.com"), "scrubbed: {text}");
    assert!(!text.contains("4111111111111111"), "sanitized: {text}");
    let names: Vec<&str> = docs.iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(
        names.contains(&"checkout") && names.contains(&"payments"),
        "{names:?}"
    );

    let window = json!({ "StartTime": 1_799_999_000, "EndTime": 1_800_001_000 });
    let (_, graph, _) = api.call("/ServiceGraph", window).await;
    let services = graph["Services"].as_array().unwrap();
    let checkout = services
        .iter()
        .find(|s| s["Name"] == "checkout")
        .expect("checkout");
    let payments = services
        .iter()
        .find(|s| s["Name"] == "payments")
        .expect("payments");
    let edge_to_payments = checkout["Edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ReferenceId"] == payments["ReferenceId"]);
    assert!(edge_to_payments, "{graph}");

    // The same request as protobuf, gzip'd, is taken the same way.
    let parsed: ExportTraceServiceRequest = serde_json::from_value(request()).unwrap();
    let (status, body) = post(
        &api.app,
        parsed.encode_to_vec(),
        "application/x-protobuf",
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer = roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success.map(|p| p.rejected_spans), Some(1));

    // What cannot be read is refused whole, in the request's encoding.
    let (status, _) = post(&api.app, b"{}".to_vec(), "text/plain", false).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = post(
        &api.app,
        b"{\"resourceSpans\": 7}".to_vec(),
        "application/json",
        false,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], 3, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("ExportTraceServiceRequest")
    );
}
