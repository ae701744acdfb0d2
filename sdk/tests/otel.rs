//! The OpenTelemetry bridge end to end: spans recorded with `opentelemetry_sdk` arrive at a real
//! UDP socket as scrubbed X-Ray documents.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures

use std::net::UdpSocket;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use roentgen_sdk::model::{Segment, split_datagram};
use roentgen_sdk::otel::{XRayExporter, XRayIdGenerator, XRayPropagator};
use roentgen_sdk::recorder::{Recorder, RecorderConfig};

fn receive(socket: &UdpSocket, count: usize) -> Vec<Segment> {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    (0..count)
        .map(|_| {
            let n = socket.recv(&mut buf).expect("a datagram");
            serde_json::from_slice(split_datagram(&buf[..n]).unwrap()).unwrap()
        })
        .collect()
}

/// A socket, a recorder sending to it, and a tracer provider exporting through the recorder.
fn exporting() -> (UdpSocket, Recorder, SdkTracerProvider) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let recorder = Recorder::new(RecorderConfig::new(address.parse().unwrap())).unwrap();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            XRayExporter::new(recorder.clone(), "orders-api").with_annotation_keys(["tenant"]),
        )
        .with_id_generator(XRayIdGenerator)
        .build();
    (socket, recorder, provider)
}

/// The next two documents, the segment first.
fn segment_and_subsegment(socket: &UdpSocket) -> (Segment, Segment) {
    let mut docs = receive(socket, 2);
    docs.sort_by_key(|d| d.is_subsegment());
    let sub = docs.pop().unwrap();
    let segment = docs.pop().unwrap();
    segment.validate().unwrap();
    sub.validate().unwrap();
    (segment, sub)
}

#[test]
fn spans_become_segments_and_subsegments() {
    let (socket, recorder, provider) = exporting();
    let tracer = provider.tracer("test");
    let server = tracer
        .span_builder("POST /orders")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.full", "http://shop.example.com/orders"),
            KeyValue::new("http.response.status_code", 503),
            KeyValue::new("tenant", "acme"),
            KeyValue::new("region.zone", "b"),
        ])
        .start(&tracer);
    let cx = opentelemetry::Context::current_with_span(server);
    {
        let mut db = tracer
            .span_builder("orders@db")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.query.text", "SELECT * FROM orders WHERE id = 42"),
            ])
            .start_with_context(&tracer, &cx);
        opentelemetry::trace::Span::set_status(&mut db, Status::error("timeout"));
        opentelemetry::trace::Span::end(&mut db);
    }
    cx.span().end();
    recorder.flush(Duration::from_secs(5));

    let (segment, sub) = segment_and_subsegment(&socket);
    assert_eq!(segment.name, "orders-api");
    assert_eq!(segment.fault, Some(true));
    let http = segment.http.as_ref().unwrap();
    assert_eq!(
        http.request.as_ref().unwrap().method.as_deref(),
        Some("POST")
    );
    assert_eq!(http.response.as_ref().unwrap().status, Some(503));
    assert_eq!(
        segment.annotations.as_ref().unwrap().get("tenant"),
        Some(&serde_json::json!("acme"))
    );
    // Attributes not asked for as annotations are metadata, under their own keys.
    let metadata = segment.metadata.as_ref().unwrap();
    assert_eq!(metadata["default"]["region.zone"], "b");
    assert_eq!(metadata["otel"]["span_name"], "POST /orders");
    assert!(sub.is_subsegment());
    assert_eq!(sub.namespace.as_deref(), Some("remote"));
    assert_eq!(sub.parent_id, Some(segment.id));
    assert_eq!(sub.trace_id, segment.trace_id);
    let sql = sub.sql.as_ref().unwrap();
    assert_eq!(
        sql.sanitized_query.as_deref(),
        Some("SELECT * FROM orders WHERE id = ?")
    );
    assert_eq!(sub.fault, Some(true));
    // The trace id carries the current epoch second, as X-Ray requires.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let epoch = segment.trace_id.unwrap().epoch_seconds();
    assert!(now.abs_diff(epoch) < 60, "{epoch} vs {now}");
}

#[test]
fn a_load_balancers_root_only_header_makes_a_root_segment_of_its_trace() {
    let (socket, recorder, provider) = exporting();
    let tracer = provider.tracer("test");
    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let mut carrier = std::collections::HashMap::new();
    carrier.insert(
        "x-amzn-trace-id".to_owned(),
        format!("Root={root};Sampled=1"),
    );
    let incoming = XRayPropagator::default().extract(&carrier);
    let server = tracer
        .span_builder("GET /orders")
        .with_kind(SpanKind::Server)
        .start_with_context(&tracer, &incoming);
    let cx = incoming.with_span(server);
    opentelemetry::trace::Span::end(&mut tracer.start_with_context("load", &cx));
    cx.span().end();
    recorder.flush(Duration::from_secs(5));

    let (segment, sub) = segment_and_subsegment(&socket);
    assert_eq!(segment.trace_id.unwrap().to_string(), root);
    assert!(!segment.is_subsegment());
    assert_eq!(segment.parent_id, None, "a root segment: {segment:#?}");
    assert_eq!(sub.trace_id, segment.trace_id);
    assert_eq!(sub.parent_id, Some(segment.id), "local parents are kept");
}
