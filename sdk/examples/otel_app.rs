//! An app traced with the OpenTelemetry SDK and exported through Roentgen: `XRayExporter`
//! (spans -> X-Ray documents, scrubbed and sent over UDP), `XRayIdGenerator` (trace ids X-Ray
//! accepts) and `XRayPropagator` (`X-Amzn-Trace-Id` in and out). It continues a load
//! balancer's `Root`-only header, records a server span with a database span under it, prints
//! the header an outgoing call would carry, and exits.
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p roentgen-sdk --example otel_app
//! ```

use std::collections::HashMap;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use roentgen_sdk::model::TraceId;
use roentgen_sdk::otel::{XRayExporter, XRayIdGenerator, XRayPropagator};
use roentgen_sdk::recorder::Recorder;

fn main() -> anyhow::Result<()> {
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(XRayExporter::new(recorder.clone(), "orders-api"))
        .with_id_generator(XRayIdGenerator)
        .build();
    let tracer = provider.tracer("otel_app");
    let propagator = XRayPropagator::default();

    // What an application load balancer sends: a `Root` and the decision, no `Parent`.
    let mut incoming = HashMap::new();
    let root = TraceId::generate();
    incoming.insert(
        "x-amzn-trace-id".to_owned(),
        format!("Root={root};Sampled=1"),
    );
    let parent = propagator.extract(&incoming);

    let request = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("url.full", "http://shop.example.com/orders/42"),
        KeyValue::new("http.response.status_code", 200),
    ];
    let server = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes(request)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(server);
    // Sanitized on export: `... WHERE id = ?`.
    let statement = [
        KeyValue::new("db.system.name", "postgresql"),
        KeyValue::new("db.query.text", "SELECT * FROM orders WHERE id = 42"),
    ];
    let builder = tracer.span_builder("orders@db").with_kind(SpanKind::Client);
    let mut query = builder
        .with_attributes(statement)
        .start_with_context(&tracer, &cx);
    query.end();

    let mut outgoing = HashMap::new();
    propagator.inject_context(&cx, &mut outgoing);
    println!(
        "trace {root}; an outgoing call carries {:?}",
        outgoing.get("x-amzn-trace-id")
    );
    cx.span().end();
    drop(cx);

    provider.shutdown().context("flushing the spans")?;
    recorder.flush(std::time::Duration::from_secs(2));
    println!("{:?}", recorder.stats());
    Ok(())
}
