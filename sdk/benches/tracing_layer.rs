//! The `tracing` layer's cost per span beside `tracing-opentelemetry`, in the same run.
//!
//! One span is what an instrumented function costs: created with two fields (one recorded
//! later), entered, a field recorded, exited and closed. Spans come 50 to a request: for
//! Roentgen, inside a sampled segment in the task's scope (so each span is a subsegment,
//! scrubbed, serialized and sent with its segment as UDP datagrams to a socket nobody reads);
//! for the baseline, `tracing-opentelemetry` over an `opentelemetry_sdk` tracer under a parent
//! `request` span, exported by the simple processor to an exporter that discards (the cheapest
//! a peer can be: nothing is serialized or sent).
//!
//! - `total_cpu`: CPU time of the whole process per span (`CLOCK_PROCESS_CPUTIME_ID`: the app
//!   thread and, for Roentgen, the emitter thread), the requests' own cost spread over their
//!   spans; Roentgen waits for its emitter every 256 requests, as a service under capacity;
//! - `app_thread`: CPU time of the thread that runs the spans (`CLOCK_THREAD_CPUTIME_ID`).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use roentgen_sdk::recorder::{Recorder, RecorderConfig, scope};
use roentgen_sdk::sampling::Rules;
use roentgen_sdk::tracing_layer::XRayTracingLayer;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// Spans per request (segment, or parent span for the baseline).
const SPANS_PER_REQUEST: u64 = 50;
/// Requests between waits for Roentgen's emitter.
const PACE: u64 = 256;

fn cpu(clock: ClockId) -> Duration {
    clock_gettime(clock).map(Duration::from).unwrap_or_default()
}

/// The measured unit: one span's life.
fn one_span(i: u64) {
    let span = tracing::info_span!("db_query", table = "orders", rows = tracing::field::Empty);
    let entered = span.enter();
    span.record("rows", i);
    drop(entered);
}

/// Runs `iters` spans, `SPANS_PER_REQUEST` to a request made by `request`, and returns the
/// CPU time of `clock` they took (`finish` included: the wait for what is still queued).
fn measure(
    clock: ClockId,
    iters: u64,
    mut request: impl FnMut(u64, u64),
    finish: impl FnOnce(),
) -> Duration {
    let start = cpu(clock);
    let mut done = 0;
    let mut requests = 0;
    while done < iters {
        let spans = (iters - done).min(SPANS_PER_REQUEST);
        request(requests, spans);
        done += spans;
        requests += 1;
    }
    finish();
    cpu(clock).saturating_sub(start)
}

#[derive(Debug)]
struct DiscardingExporter;

impl SpanExporter for DiscardingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn bench_per_span(c: &mut Criterion) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink socket");
    let mut config = RecorderConfig::new(
        sink.local_addr()
            .expect("sink address")
            .to_string()
            .parse()
            .expect("address"),
    );
    config.rules =
        Rules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#).expect("rules");
    config.emitter.queue_capacity = 1 << 18;
    let recorder = Recorder::new(config).expect("recorder");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ours = Dispatch::new(tracing_subscriber::registry().with(XRayTracingLayer::new()));
    let roentgen_request = |n: u64, spans: u64| {
        let segment = recorder.begin_segment("bench", None);
        runtime.block_on(scope(segment.clone(), async {
            for i in 0..spans {
                one_span(i);
            }
        }));
        segment.end();
        if (n + 1).is_multiple_of(PACE) {
            recorder.flush(Duration::from_secs(60));
        }
    };

    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(DiscardingExporter)
        .build();
    let theirs = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );
    let otel_request = |_: u64, spans: u64| {
        let _request = tracing::info_span!("request").entered();
        for i in 0..spans {
            one_span(i);
        }
    };

    let mut group = c.benchmark_group("tracing_span");
    for (name, clock) in [
        ("total_cpu", ClockId::CLOCK_PROCESS_CPUTIME_ID),
        ("app_thread", ClockId::CLOCK_THREAD_CPUTIME_ID),
    ] {
        group.bench_function(format!("roentgen_layer/{name}"), |b| {
            b.iter_custom(|iters| {
                tracing::dispatcher::with_default(&ours, || {
                    measure(clock, iters, roentgen_request, || {
                        recorder.flush(Duration::from_secs(60));
                    })
                })
            })
        });
        group.bench_function(format!("baseline/tracing_opentelemetry/{name}"), |b| {
            b.iter_custom(|iters| {
                tracing::dispatcher::with_default(&theirs, || {
                    measure(clock, iters, otel_request, || {
                        let _ = provider.force_flush();
                    })
                })
            })
        });
    }
    group.finish();
    let stats = recorder.stats();
    eprintln!(
        "roentgen emitter: submitted {} sent {} dropped(queue) {} send errors {}",
        stats.submitted, stats.sent, stats.dropped_queue_full, stats.send_errors
    );
}

criterion_group!(benches, bench_per_span);
criterion_main!(benches);
