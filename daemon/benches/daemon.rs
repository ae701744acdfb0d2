//! Benchmarks of the daemon's per-document work: validation with `DocumentHead` against a full
//! typed parse (the baseline), with the server-side scrubber on top (the text pass, against the
//! `Value` and typed paths), and appending to a batch, on the ~620-byte documents the load
//! generator sends.

#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roentgen_daemon::batcher::Batch;
use roentgen_daemon::loadgen;
use roentgen_daemon::processor::{check, check_and_scrub, scrub};
use roentgen_daemon::telemetry::Counters;
use roentgen_sdk::model::{Segment, split_datagram};
use roentgen_sdk::scrub::Scrubber;
use std::hint::black_box;
use std::time::Instant;

fn per_document(c: &mut Criterion) {
    let mut datagram = Vec::new();
    loadgen::datagram(1, 42, &mut datagram);
    let scrubber = Scrubber::default();
    let counters = Counters::default();
    let mut group = c.benchmark_group("per_document");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline_typed_parse_and_validate", |b| {
        b.iter(|| {
            let doc = split_datagram(black_box(&datagram)).ok();
            let seg: Option<Segment> = doc.and_then(|d| serde_json::from_slice(d).ok());
            black_box(seg.map(|s| s.validate_for_ingest().is_ok()))
        })
    });
    group.bench_function("check_document_head", |b| {
        b.iter(|| black_box(check(black_box(&datagram), 65536).is_ok()))
    });
    let text = std::str::from_utf8(split_datagram(&datagram).unwrap_or_default())
        .unwrap_or_default()
        .to_owned();
    group.bench_function("value_parse", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&text)).is_ok()))
    });
    group.bench_function("value_parse_and_serialize", |b| {
        b.iter(|| {
            let v: Option<serde_json::Value> = serde_json::from_str(black_box(&text)).ok();
            black_box(v.map(|v| serde_json::to_string(&v).map(|s| s.len())))
        })
    });
    group.bench_function("check_and_scrub", |b| {
        b.iter(|| {
            let accepted = check(black_box(&datagram), 65536).ok();
            black_box(accepted.map(|a| scrub(&scrubber, a.document, &counters).is_ok()))
        })
    });
    group.bench_function("check_and_scrub_text_fast_path", |b| {
        b.iter(|| {
            black_box(
                check_and_scrub(black_box(&datagram), 65536, Some(&scrubber), &counters)
                    .map(|(_, s)| s.map(|s| s.len())),
            )
        })
    });
    // The previous session's path, kept as a same-run reference: one typed parse that
    // validates, the typed walk, and serialization when something changed.
    group.bench_function("typed_parse_scrub_serialize", |b| {
        b.iter(|| {
            let doc = split_datagram(black_box(&datagram)).ok();
            let seg: Option<Segment> = doc.and_then(|d| serde_json::from_slice(d).ok());
            black_box(seg.and_then(|mut s| {
                s.validate_for_ingest().ok()?;
                let report = scrubber.scrub_segment(&mut s);
                (!report.is_clean()).then(|| serde_json::to_string(&s).map(|t| t.len()))
            }))
        })
    });
    group.bench_function("batch_push", |b| {
        let mut batch = Batch::with_capacity(64 * 1024);
        let id = check(&datagram, 65536).map(|a| a.id).ok();
        b.iter(|| {
            if batch.len() >= 50 {
                batch = Batch::with_capacity(64 * 1024);
            }
            if let Some(id) = id {
                black_box(batch.push(id, black_box(&text), Instant::now()));
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = per_document
}
criterion_main!(benches);
