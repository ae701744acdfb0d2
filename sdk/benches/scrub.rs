//! Criterion benchmarks of the PII scrubber, with the naive baseline in the same run.
//!
//! Inputs: `clean_sdk` documents (the official SDKs' captured documents that hold no PII),
//! `clean_lookalike` documents (the corpus in `tests/data/pii/` full of look-alikes: the worst
//! case for the pre-filter, nothing to rewrite) and `pii` documents (3 to 7 planted values
//! each), plus a typical 2 KB segment of each corpus for per-document latency. Throughput is in
//! bytes of serialized JSON.
//!
//! - `scrubber/value`: [`Scrubber::scrub`] on `serde_json::Value` documents (daemon, collector);
//! - `scrubber/typed`: [`Scrubber::scrub_segment`] on typed documents (the SDK's hot path);
//! - `scrubber/text`: [`Scrubber::scrub_json_text`] on the documents' JSON text (the daemon's
//!   hot path: no `Value` is built), against `scrubber/value_from_text`, the same text parsed
//!   into a `Value`, scrubbed, and serialized again when something changed;
//! - `baseline/regex_one_by_one`: the same strings, every detector's regex run one after another
//!   with `replace_all` (no `RegexSet` pre-filter, no validators).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::borrow::Cow;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use regex::Regex;
use roentgen_sdk::model::{Segment, split_datagram};
use roentgen_sdk::scrub::{Scrubber, built_in_patterns};
use serde_json::Value;

fn corpus(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/pii")
        .join(file);
    std::fs::read_to_string(path)
        .expect("corpus")
        .lines()
        .map(|l| {
            let line: Value = serde_json::from_str(l).expect("line");
            line["doc"].clone()
        })
        .collect()
}

/// Documents from the official SDKs' captures that hold no PII (the streamed runs): what an
/// ordinary clean segment looks like.
fn clean_captures() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
    let scrubber = Scrubber::default();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).expect("captures") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("capture");
        for block in text.split("--- datagram ").skip(1) {
            let body = block.split_once("---\n").expect("marker").1.trim_end();
            let doc = split_datagram(body.as_bytes()).expect("framing");
            let mut value: Value = serde_json::from_slice(doc).expect("json");
            if scrubber.scrub(&mut value).is_clean() {
                docs.push(value);
            }
        }
    }
    docs
}

fn bytes(docs: &[Value]) -> u64 {
    docs.iter()
        .map(|d| serde_json::to_vec(d).expect("serialize").len() as u64)
        .sum()
}

/// The document of the corpus whose size is closest to 2 KiB.
fn typical(docs: &[Value]) -> Value {
    docs.iter()
        .min_by_key(|d| (serde_json::to_vec(d).expect("serialize").len() as i64 - 2048).abs())
        .expect("documents")
        .clone()
}

/// The naive scrubber: every detector's regex, one after another, over every string.
struct Baseline {
    detectors: Vec<(Regex, String)>,
}

impl Baseline {
    fn new() -> Self {
        Self {
            detectors: built_in_patterns()
                .map(|(name, pattern)| {
                    (Regex::new(&pattern).expect("pattern"), format!("[{name}]"))
                })
                .collect(),
        }
    }

    fn scrub(&self, value: &mut Value) -> u64 {
        match value {
            Value::String(s) => {
                let mut n = 0;
                for (regex, placeholder) in &self.detectors {
                    if let Cow::Owned(new) = regex.replace_all(s, placeholder.as_str()) {
                        *s = new;
                        n += 1;
                    }
                }
                n
            }
            Value::Array(items) => items.iter_mut().map(|v| self.scrub(v)).sum(),
            Value::Object(map) => map
                .iter_mut()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "id" | "trace_id" | "parent_id" | "name" | "type" | "namespace"
                    )
                })
                .map(|(_, v)| self.scrub(v))
                .sum(),
            _ => 0,
        }
    }
}

fn bench_set(c: &mut Criterion, group_name: &str, docs: &[Value]) {
    let scrubber = Scrubber::default();
    let baseline = Baseline::new();
    let typed: Vec<Segment> = docs
        .iter()
        .map(|d| serde_json::from_value(d.clone()).expect("typed"))
        .collect();
    let mut group = c.benchmark_group(group_name);
    eprintln!(
        "{group_name}: {} documents, {} bytes of JSON",
        docs.len(),
        bytes(docs)
    );
    group.throughput(Throughput::Bytes(bytes(docs)));
    group.bench_function("scrubber/value", |b| {
        b.iter_batched_ref(
            || docs.to_vec(),
            |docs| {
                for d in docs.iter_mut() {
                    black_box(scrubber.scrub(d));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("scrubber/typed", |b| {
        b.iter_batched_ref(
            || typed.clone(),
            |docs| {
                for d in docs.iter_mut() {
                    black_box(scrubber.scrub_segment(d));
                }
            },
            BatchSize::LargeInput,
        )
    });
    let texts: Vec<String> = docs.iter().map(Value::to_string).collect();
    let mut out = String::new();
    group.bench_function("scrubber/text", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(scrubber.scrub_json_text(black_box(t), &mut out));
            }
        })
    });
    group.bench_function("scrubber/value_from_text", |b| {
        b.iter(|| {
            for t in &texts {
                let mut value: Value = serde_json::from_str(black_box(t)).expect("json");
                if !scrubber.scrub(&mut value).is_clean() {
                    black_box(serde_json::to_string(&value).expect("serialize"));
                }
            }
        })
    });
    group.bench_function("baseline/regex_one_by_one", |b| {
        b.iter_batched_ref(
            || docs.to_vec(),
            |docs| {
                for d in docs.iter_mut() {
                    black_box(baseline.scrub(d));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    bench_set(c, "scrub_clean_sdk_docs", &clean_captures());
    bench_set(c, "scrub_clean_lookalike_docs", &corpus("clean.jsonl"));
    bench_set(c, "scrub_pii_docs", &corpus("pii.jsonl"));
}

fn latency(c: &mut Criterion) {
    for (name, file) in [("clean", "clean.jsonl"), ("pii", "pii.jsonl")] {
        let doc = typical(&corpus(file));
        bench_set(
            c,
            &format!("scrub_2k_segment_{name}"),
            std::slice::from_ref(&doc),
        );
    }
}

criterion_group!(benches, throughput, latency);
criterion_main!(benches);
