//! Collector benchmarks (filled in below).
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{Criterion, criterion_group, criterion_main};

fn fold(c: &mut Criterion) {
    let docs = roentgen_web::synth::shop_trace(1, 1_800_000_000.0);
    c.bench_function("prepare_shop_trace", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| roentgen_web::api::prepare_document(d, None).is_ok())
                .count()
        })
    });
}

criterion_group!(benches, fold);
criterion_main!(benches);
