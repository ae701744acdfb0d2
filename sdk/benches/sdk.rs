//! Criterion benchmarks for the SDK's hot paths, with OpenTelemetry baselines in the same run.
//!
//! A "request" is a segment with HTTP request/response, an annotation and metadata, and three
//! subsegments (a local step, a SQL call, an outgoing HTTP call), ended, scrubbed, serialized
//! and sent as a UDP datagram to a socket nobody reads. What the requests hold varies as a
//! shop's API traffic does, personal data included (`workload/requests.rs`); each bench cycles
//! through the same requests.
//!
//! - `app_thread`: CPU time of the app's thread up to the hand-off to the emitter;
//! - `total_cpu`: CPU time of the whole process (app thread + emitter thread) per request,
//!   measured with `CLOCK_PROCESS_CPUTIME_ID` across the requests and a final flush.
//!
//! Both wait for the emitter every [`PACE`] requests, as a service under its capacity does
//! (the sender keeps up); `total_cpu_burst` never waits, so a backlog of up to all of the
//! sample's documents builds in the queue and its fresh heap pages (page faults) are counted.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use roentgen_sdk::model::{HttpRequest, SegmentId, TraceId};
use roentgen_sdk::recorder::{Recorder, RecorderConfig};
use roentgen_sdk::sampling::centralized::CentralizedConfig;
use roentgen_sdk::sampling::{Rules, Sampler, SamplingRequest};
use serde_json::json;

#[path = "../tests/proxy/mod.rs"]
mod proxy;
#[path = "workload/requests.rs"]
mod requests;

use requests::Request;

fn process_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// CPU time of the calling thread: unlike wall time, it does not count time spent waiting for
/// a core, so it stays meaningful on a shared 2-core machine.
fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// A sink socket on loopback that is never read (the kernel drops what overflows its buffer).
fn sink() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("sink socket")
}

/// A recorder with centralized sampling on, as apps run it: its `Default` rule (sampling
/// `rate` of requests) comes from a proxy on loopback, fetched before the bench starts.
fn recorder(sink: &UdpSocket, rate: f64) -> Recorder {
    let address = sink.local_addr().expect("sink address");
    let mut config = RecorderConfig::new(address.to_string().parse().expect("address"));
    let server = proxy::Shared::default();
    server.lock().expect("proxy").rules = vec![proxy::rule("Default", 10000, "*", "*", 0, rate)];
    config.centralized_sampling = Some(CentralizedConfig::new(proxy::start(server)));
    config.emitter.queue_capacity = 1 << 18;
    let recorder = Recorder::new(config).expect("recorder");
    proxy::fetched(recorder.sampler());
    recorder
}

fn traced_request(recorder: &Recorder, r: &Request) {
    let segment = recorder.begin_segment("checkout-api", None);
    segment.set_http_request(HttpRequest {
        method: Some(r.method.into()),
        url: Some(r.url.clone()),
        user_agent: Some(r.user_agent.into()),
        client_ip: Some(r.client_ip.clone()),
        ..HttpRequest::default()
    });
    let _ = segment.put_annotation("order_id", r.order_id.as_str());
    let _ = segment.put_annotation("route", r.route);
    segment.put_metadata("cart", json!({"items": r.items, "total": r.total}));
    if let Some(customer) = &r.customer {
        segment.put_metadata("customer", json!(customer));
    }
    segment.begin_subsegment("validate-cart").end();
    let db = segment.begin_subsegment(r.db_name);
    db.set_sql(r.db_type, r.db_url, &r.query);
    db.end();
    let (call, header) = segment.begin_remote_call(r.remote, r.remote_method, &r.remote_url);
    black_box(header.encode());
    call.set_http_response(r.remote_status, Some(38));
    call.end();
    if r.status >= 500 {
        // Without a stack, whatever `RUST_BACKTRACE` says: one resolved stack costs more than
        // thousands of requests (`errors/` below measures it on its own).
        segment.add_error_with_backtrace(
            &std::io::Error::other("upstream failed"),
            &std::backtrace::Backtrace::disabled(),
        );
    }
    segment.set_http_response(r.status, Some(11));
    segment.end();
}

fn otel_request<T: Tracer>(tracer: &T, r: &Request)
where
    T::Span: Send + Sync + 'static,
{
    let mut attributes = vec![
        KeyValue::new("http.request.method", r.method),
        KeyValue::new("url.full", r.url.clone()),
        KeyValue::new("http.route", r.route),
        KeyValue::new("user_agent.original", r.user_agent),
        KeyValue::new("client.address", r.client_ip.clone()),
        KeyValue::new("order_id", r.order_id.clone()),
        KeyValue::new(
            "cart",
            format!(r#"{{"items":{},"total":{}}}"#, r.items, r.total),
        ),
    ];
    if let Some(customer) = &r.customer {
        attributes.push(KeyValue::new("customer", customer.clone()));
    }
    let server = tracer
        .span_builder(format!("{} {}", r.method, r.route))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start(tracer);
    let cx = opentelemetry::Context::current_with_span(server);
    tracer.start_with_context("validate-cart", &cx).end();
    let mut db = tracer
        .span_builder(r.db_name)
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system.name", r.db_system),
            KeyValue::new("server.address", r.db_url),
            KeyValue::new("db.query.text", r.query.clone()),
        ])
        .start_with_context(tracer, &cx);
    db.end();
    let mut call = tracer
        .span_builder(r.remote)
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", r.remote_method),
            KeyValue::new("url.full", r.remote_url.clone()),
            KeyValue::new("http.response.status_code", i64::from(r.remote_status)),
        ])
        .start_with_context(tracer, &cx);
    call.end();
    let span = cx.span();
    if r.status >= 500 {
        span.record_error(&std::io::Error::other("upstream failed"));
    }
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(r.status),
    ));
    span.end();
}

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// Requests between waits for the emitter in the paced figures.
const PACE: u64 = 256;

/// Each call records the next of `requests`, round and round.
fn cycling<'a>(requests: &'a [Request]) -> impl FnMut() -> &'a Request {
    let mut next = requests.iter().cycle();
    move || next.next().expect("requests")
}

/// Records the next request and, every [`PACE`] calls, waits until the recorder has sent
/// everything.
fn paced<'a>(recorder: &'a Recorder, requests: &'a [Request]) -> impl FnMut() + 'a {
    let mut n = 0u64;
    let mut next = cycling(requests);
    move || {
        traced_request(recorder, next());
        n += 1;
        if n.is_multiple_of(PACE) {
            recorder.flush(Duration::from_secs(60));
        }
    }
}

/// Runs `iters` requests and returns the process CPU time they took, flush included.
fn cpu_of(iters: u64, mut request: impl FnMut(), flush: impl Fn()) -> Duration {
    let start = process_cpu();
    for _ in 0..iters {
        request();
    }
    flush();
    process_cpu().saturating_sub(start)
}

fn bench_request(c: &mut Criterion) {
    let requests = requests::requests();
    let sink = sink();
    let mut group = c.benchmark_group("request");

    let sampled = recorder(&sink, 1.0);
    group.bench_function("roentgen/app_thread", |b| {
        b.iter_custom(|iters| {
            let mut request = paced(&sampled, &requests);
            let start = thread_cpu();
            for _ in 0..iters {
                request();
            }
            let elapsed = thread_cpu().saturating_sub(start);
            sampled.flush(Duration::from_secs(60));
            elapsed
        })
    });
    group.bench_function("roentgen/total_cpu", |b| {
        b.iter_custom(|iters| {
            cpu_of(iters, paced(&sampled, &requests), || {
                sampled.flush(Duration::from_secs(60));
            })
        })
    });
    group.bench_function("roentgen/total_cpu_burst", |b| {
        b.iter_custom(|iters| {
            let mut next = cycling(&requests);
            cpu_of(
                iters,
                || traced_request(&sampled, next()),
                || {
                    sampled.flush(Duration::from_secs(60));
                },
            )
        })
    });
    let stats = sampled.stats();
    eprintln!(
        "roentgen emitter: submitted {} sent {} dropped(queue) {} send errors {}",
        stats.submitted, stats.sent, stats.dropped_queue_full, stats.send_errors
    );

    let unsampled = recorder(&sink, 0.0);
    group.bench_function("roentgen/unsampled", |b| {
        let mut next = cycling(&requests);
        b.iter(|| traced_request(&unsampled, next()))
    });

    let noop = SdkTracerProvider::builder()
        .with_simple_exporter(NoopExporter)
        .build();
    let noop_tracer = noop.tracer("bench");
    group.bench_function("baseline/otel_sdk_noop_exporter", |b| {
        let mut next = cycling(&requests);
        b.iter(|| otel_request(&noop_tracer, next()))
    });

    let address = sink.local_addr().expect("sink address");
    let client = opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient::new(address)
        .expect("x-ray daemon client");
    let aws = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_aws::xray_exporter::XrayExporter::new(client))
        .with_id_generator(roentgen_sdk::otel::XRayIdGenerator)
        .build();
    let aws_tracer = aws.tracer("bench");
    group.bench_function("baseline/otel_aws_xray_udp/total_cpu", |b| {
        b.iter_custom(|iters| {
            let mut next = cycling(&requests);
            cpu_of(iters, || otel_request(&aws_tracer, next()), || {})
        })
    });
    group.finish();
}

fn bench_sampling_and_ids(c: &mut Criterion) {
    let sampler = Sampler::default();
    let request = SamplingRequest {
        host: "shop.example.com",
        method: "GET",
        url_path: "/api/orders/42",
        ..SamplingRequest::default()
    };
    c.bench_function("sampling/default_rule_decision", |b| {
        b.iter(|| sampler.should_sample(black_box(&request)))
    });
    let rules = Rules::from_json(
        r#"{"version":2,"rules":[
            {"host":"*","http_method":"GET","url_path":"/health*","fixed_target":0,"rate":0},
            {"host":"admin.*","http_method":"*","url_path":"*","fixed_target":1,"rate":1},
            {"host":"*","http_method":"POST","url_path":"/api/checkout","fixed_target":5,"rate":0.5}
        ],"default":{"fixed_target":1,"rate":0.05}}"#,
    )
    .expect("rules");
    let sampler = Sampler::new(rules);
    c.bench_function("sampling/three_rules_then_default", |b| {
        b.iter(|| sampler.should_sample(black_box(&request)))
    });
    // The same three rules and default served by a proxy, with quotas from its targets.
    let server = proxy::Shared::default();
    server.lock().expect("proxy").rules = vec![
        proxy::rule("health", 1, "*", "/health*", 0, 0.0),
        proxy::rule("admin", 2, "admin", "*", 1, 1.0),
        proxy::rule("checkout", 3, "*", "/api/checkout", 5, 0.5),
        proxy::rule("Default", 10000, "*", "*", 1, 0.05),
    ];
    let mut config = CentralizedConfig::new(proxy::start(server));
    config.targets_interval = Duration::from_millis(500);
    let sampler = Sampler::centralized(Rules::default(), config).expect("sampler");
    proxy::fetched(&sampler);
    let request = SamplingRequest {
        service_name: "shop",
        ..request
    };
    c.bench_function("sampling/centralized_three_rules_then_default", |b| {
        b.iter(|| sampler.should_sample(black_box(&request)))
    });
    c.bench_function("ids/trace_id_generate", |b| b.iter(TraceId::generate));
    c.bench_function("ids/segment_id_generate", |b| b.iter(SegmentId::generate));
    c.bench_function("ids/trace_id_generate_and_format", |b| {
        b.iter(|| TraceId::generate().to_string())
    });
}

/// The cost of recording an error with the stack it was raised at (captured and resolved to
/// names, files and lines, as `RUST_BACKTRACE=1` makes `Entity::add_error` do).
fn bench_errors(c: &mut Criterion) {
    let sink = sink();
    let recorder = recorder(&sink, 1.0);
    let segment = recorder.begin_segment("checkout-api", None);
    let error = std::io::Error::other("upstream failed");
    let mut group = c.benchmark_group("errors");
    group.sample_size(10);
    group.bench_function("add_error_with_captured_backtrace", |b| {
        b.iter(|| {
            let call = segment.begin_subsegment("payments");
            call.add_error_with_backtrace(&error, &std::backtrace::Backtrace::force_capture());
            call.end();
        })
    });
    group.bench_function("add_error_without_backtrace", |b| {
        b.iter(|| {
            let call = segment.begin_subsegment("payments");
            call.add_error_with_backtrace(&error, &std::backtrace::Backtrace::disabled());
            call.end();
        })
    });
    group.finish();
}

/// Where the emitter's time goes for one request's document: scrubbing, serializing, sending.
fn bench_breakdown(c: &mut Criterion) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let recorder = recorder(&socket, 1.0);
    // The first of the workload's requests.
    let requests = requests::requests();
    traced_request(&recorder, &requests[0]);
    recorder.flush(Duration::from_secs(10));
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).expect("the request's datagram");
    let datagram = buf[..n].to_vec();
    let document: roentgen_sdk::model::Segment =
        serde_json::from_slice(roentgen_sdk::model::split_datagram(&datagram).expect("framing"))
            .expect("document");
    let scrubber = roentgen_sdk::scrub::Scrubber::default();
    let mut group = c.benchmark_group("breakdown");
    group.bench_function("clone_document", |b| b.iter(|| black_box(document.clone())));
    group.bench_function("scrub_segment_incl_clone", |b| {
        b.iter(|| {
            let mut doc = document.clone();
            black_box(scrubber.scrub_segment(&mut doc));
            doc
        })
    });
    group.bench_function("serialize", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&document)).expect("serialize");
        })
    });
    group.bench_function("serialize_emitter_writer", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            roentgen_sdk::emitter::write_segment_json(&mut out, black_box(&document))
                .expect("serialize");
        })
    });
    let target = sink();
    let address = target.local_addr().expect("address");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    group.bench_function("udp_send_to_one_datagram", |b| {
        b.iter(|| sender.send_to(black_box(&datagram), address))
    });
    let connected = UdpSocket::bind("127.0.0.1:0").expect("sender");
    connected.connect(address).expect("connect");
    group.bench_function("udp_send_connected_one_datagram", |b| {
        b.iter(|| connected.send(black_box(&datagram)))
    });
    group.finish();
    eprintln!("document: {} bytes", datagram.len());
}

criterion_group!(
    benches,
    bench_request,
    bench_sampling_and_ids,
    bench_errors,
    bench_breakdown
);
criterion_main!(benches);
