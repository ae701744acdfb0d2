//! The mapping's rules, one span shape at a time.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::json;

use super::*;

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Any::StringValue(value.to_owned()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Any::IntValue(value))
}

/// A W3C trace id whose first 32 bits are no time at all.
const TRACE: [u8; 16] = [
    0xf0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];

fn span(kind: SpanKind, name: &str, parent: Option<u8>, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
        parent_span_id: parent
            .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: 1_800_000_000_000_000_000,
        end_time_unix_nano: 1_800_000_000_250_000_000,
        attributes,
        ..Span::default()
    }
}

fn map_with(spans: Vec<Span>, resource: Vec<KeyValue>, config: &MappingConfig) -> Mapped {
    let request = [ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }];
    map_resource_spans(&request, config)
}

fn one(span: Span) -> Segment {
    let resource = vec![
        s("service.name", "checkout"),
        s("service.version", "1.4.2"),
        s("cloud.platform", "aws_ec2"),
        s("host.id", "i-0abc"),
        s("deployment.environment", "prod"),
    ];
    let mut mapped = map_with(vec![span], resource, &MappingConfig::default());
    assert!(mapped.rejected.is_empty(), "{:?}", mapped.rejected);
    let doc = mapped.segments.remove(0);
    doc.validate_for_ingest().expect("a valid document");
    doc
}

fn value(doc: &Segment) -> serde_json::Value {
    serde_json::to_value(doc).unwrap()
}

#[test]
fn a_server_span_is_a_segment_named_after_the_service_with_its_resource() {
    let doc = one(span(
        SpanKind::Server,
        "GET /orders/{id}",
        Some(7),
        vec![
            s("http.request.method", "GET"),
            s("url.scheme", "https"),
            s("server.address", "shop.example.com"),
            s("url.path", "/orders/42"),
            i("http.response.status_code", 200),
            s("http.route", "/orders/{id}"),
        ],
    ));
    let v = value(&doc);
    assert_eq!(doc.name, "checkout");
    assert_eq!(
        doc.trace_id.unwrap().to_string(),
        "1-f0010203-0405060708090a0b0c0d0e0f"
    );
    assert_eq!(doc.parent_id.unwrap().to_string(), "0000000000000007");
    assert!(!doc.is_subsegment());
    assert_eq!(
        v["http"]["request"]["url"],
        "https://shop.example.com/orders/42"
    );
    assert_eq!(v["origin"], "AWS::EC2::Instance");
    assert_eq!(v["service"]["version"], "1.4.2");
    assert_eq!(v["aws"]["ec2"]["instance_id"], "i-0abc");
    assert_eq!(v["metadata"]["default"]["http.route"], "/orders/{id}");
    assert_eq!(v["metadata"]["otel"]["span_name"], "GET /orders/{id}");
    assert_eq!(
        v["metadata"]["otel"]["resource"]["deployment.environment"],
        "prod"
    );
    let took = v["end_time"].as_f64().unwrap() - v["start_time"].as_f64().unwrap();
    assert!((took - 0.25).abs() < 1e-6, "{took}");
}

#[test]
fn client_calls_are_remote_subsegments_named_by_peer_service_then_server_address() {
    let by_peer = one(span(
        SpanKind::Client,
        "POST",
        Some(1),
        vec![
            s("peer.service", "payments"),
            s("server.address", "10.0.0.5"),
        ],
    ));
    assert_eq!(by_peer.name, "payments");
    assert_eq!(by_peer.namespace.as_deref(), Some("remote"));
    assert!(by_peer.is_subsegment());
    let by_address = one(span(
        SpanKind::Client,
        "GET",
        Some(1),
        vec![
            s("url.full", "https://user:pw@api.example.com:8443/x?y=1"),
            s("http.request.method", "GET"),
        ],
    ));
    assert_eq!(by_address.name, "api.example.com");
    let internal = one(span(SpanKind::Internal, "render cart", Some(1), vec![]));
    assert_eq!(
        (internal.name.as_str(), internal.namespace.as_deref()),
        ("render cart", None)
    );
}

#[test]
fn status_codes_say_error_throttle_or_fault() {
    let flags = |status: i64, error_status: bool| {
        let mut sp = span(
            SpanKind::Client,
            "GET",
            Some(1),
            vec![
                s("http.request.method", "GET"),
                i("http.response.status_code", status),
            ],
        );
        if error_status {
            sp.status = Some(Status {
                code: StatusCode::Error as i32,
                message: "failed".into(),
            });
        }
        let d = one(sp);
        (d.error, d.throttle, d.fault)
    };
    // An outgoing 404 is the caller's error, even with an error status.
    assert_eq!(flags(404, true), (Some(true), None, None));
    assert_eq!(flags(429, false), (Some(true), Some(true), None));
    assert_eq!(flags(503, false), (None, None, Some(true)));
    assert_eq!(flags(200, true), (None, None, Some(true)));
}

#[test]
fn database_calls_carry_a_sanitized_query_and_are_named_db_at_host() {
    let doc = one(span(
        SpanKind::Client,
        "SELECT orders",
        Some(1),
        vec![
            s("db.system.name", "postgresql"),
            s("db.namespace", "orders"),
            s("server.address", "db.internal"),
            i("server.port", 5432),
            s(
                "db.query.text",
                "SELECT * FROM orders WHERE email = 'jane@example.com' AND id = 42",
            ),
        ],
    ));
    assert_eq!(doc.name, "orders@db.internal");
    let sql = doc.sql.unwrap();
    assert_eq!(sql.url.as_deref(), Some("db.internal:5432/orders"));
    assert_eq!(
        sql.sanitized_query.as_deref(),
        Some("SELECT * FROM orders WHERE email = ? AND id = ?")
    );
    assert_eq!(sql.database_type.as_deref(), Some("postgresql"));
}

#[test]
fn aws_sdk_calls_fill_the_aws_block() {
    let doc = one(span(
        SpanKind::Client,
        "DynamoDB.GetItem",
        Some(1),
        vec![
            s("rpc.system", "aws-api"),
            s("rpc.service", "DynamoDB"),
            s("rpc.method", "GetItem"),
            s("aws.request_id", "R1"),
            kv(
                "aws.dynamodb.table_names",
                Any::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Any::StringValue("carts".into())),
                    }],
                }),
            ),
        ],
    ));
    let v = value(&doc);
    assert_eq!(
        (doc.name.as_str(), doc.namespace.as_deref()),
        ("DynamoDB", Some("aws"))
    );
    assert_eq!(
        v["aws"],
        json!({"operation": "GetItem", "request_id": "R1", "table_name": "carts"})
    );
}

#[test]
fn exception_events_become_causes_with_frames() {
    let mut sp = span(SpanKind::Server, "POST /pay", None, vec![]);
    sp.events = vec![Event {
        name: "exception".into(),
        attributes: vec![
            s("exception.type", "ValueError"),
            s("exception.message", "card declined"),
            s(
                "exception.stacktrace",
                "Traceback (most recent call last):\n  File \"/app/pay.py\", line 10, in pay\n    charge()\nValueError: card declined",
            ),
        ],
        ..Event::default()
    }];
    let doc = one(sp);
    assert_eq!(doc.fault, Some(true));
    let v = value(&doc);
    let exception = &v["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "ValueError");
    assert_eq!(exception["message"], "card declined");
    assert_eq!(
        exception["stack"][0],
        json!({"path": "/app/pay.py", "line": 10, "label": "pay"})
    );
}

#[test]
fn annotations_only_for_keys_asked_for_and_collisions_go_to_metadata() {
    let attributes = vec![
        s("customer.tier", "gold"),
        s("customer_tier", "silver"),
        i("cart.items", 3),
        s("aws.xray.annotations", "cart.items"),
        s("note", "kept as metadata"),
    ];
    let config = MappingConfig {
        annotation_keys: vec!["customer.tier".into(), "customer_tier".into()],
        ..MappingConfig::default()
    };
    let mapped = map_with(
        vec![span(SpanKind::Server, "x", None, attributes)],
        vec![],
        &config,
    );
    let v = value(&mapped.segments[0]);
    assert_eq!(
        v["annotations"],
        json!({"customer_tier": "gold", "cart_items": 3})
    );
    assert_eq!(v["metadata"]["default"]["customer_tier"], "silver");
    assert_eq!(v["metadata"]["default"]["note"], "kept as metadata");
    assert!(
        v["metadata"]["default"]
            .get("aws.xray.annotations")
            .is_none()
    );
}

#[test]
fn invalid_names_are_made_valid_and_the_original_kept() {
    let doc = one(span(SpanKind::Internal, "render <cart> ✓", Some(1), vec![]));
    assert_eq!(doc.name, "render _cart_ _");
    assert_eq!(
        value(&doc)["metadata"]["otel"]["span_name"],
        "render <cart> ✓"
    );
}

#[test]
fn local_roots_and_consumers_are_segments() {
    assert!(!one(span(SpanKind::Internal, "job", None, vec![])).is_subsegment());
    assert!(!one(span(SpanKind::Consumer, "orders process", Some(3), vec![])).is_subsegment());
    assert!(one(span(SpanKind::Producer, "orders publish", Some(3), vec![])).is_subsegment());
}

#[test]
fn spans_with_bad_ids_are_rejected_alone() {
    let mut bad = span(SpanKind::Server, "x", None, vec![]);
    bad.trace_id = vec![0; 16];
    let mut short = span(SpanKind::Server, "y", None, vec![]);
    short.span_id = vec![1, 2, 3];
    let good = span(SpanKind::Server, "z", None, vec![]);
    let mapped = map_with(vec![bad, short, good], vec![], &MappingConfig::default());
    assert_eq!(mapped.segments.len(), 1);
    let errors: Vec<_> = mapped.rejected.iter().map(|r| r.error.clone()).collect();
    assert_eq!(errors, [SpanError::TraceId, SpanError::SpanId]);
    assert_eq!(mapped.rejected[1].span_id, "010203");
}
