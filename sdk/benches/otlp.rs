//! Criterion benchmarks of OTLP ingest's conversion: request bodies (protobuf, as the SDKs'
//! exporters send them) decoded and mapped to X-Ray documents, then serialized — the CPU the
//! collector's `/v1/traces` and the daemon's OTLP listener spend per span before scrubbing and
//! storing — with the decode alone in the same run (the least any OTLP receiver does).
//!
//! The workload looks like production (`roentgen_sdk::otlp::workload`): 64 requests of 8
//! traces each, every trace crossing 3 to 6 services of a shop with databases, AWS calls,
//! exceptions and personal data.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roentgen_sdk::otlp::wire::{Encoding, decode_request};
use roentgen_sdk::otlp::workload::workload;
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};

fn bench(c: &mut Criterion) {
    let w = workload(7, 64, 8, 1_800_000_000_000_000_000);
    let (bodies, spans) = (w.bodies, w.spans);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    eprintln!(
        "otlp workload: {} requests, {spans} spans, {bytes} bytes",
        bodies.len()
    );
    let config = MappingConfig::default();
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("decode_map_serialize", |b| {
        b.iter(|| {
            let mut out = 0usize;
            for body in &bodies {
                let request =
                    decode_request(body, Encoding::Protobuf, None, 64 << 20).expect("decodes");
                let mapped = map_resource_spans(&request.resource_spans, &config);
                for doc in &mapped.segments {
                    out += serde_json::to_vec(doc).expect("serializes").len();
                }
            }
            black_box(out)
        })
    });
    group.bench_function("baseline/decode_only", |b| {
        b.iter(|| {
            let mut out = 0usize;
            for body in &bodies {
                let request =
                    decode_request(body, Encoding::Protobuf, None, 64 << 20).expect("decodes");
                out += request.resource_spans.len();
            }
            black_box(out)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
