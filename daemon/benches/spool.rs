//! The disk spool's cost per batch against the physical limit on the same disk: a raw
//! `fdatasync`ed append of the same bytes to one open file. A spool file is written to a
//! temporary name, `fdatasync`ed, renamed and its directory `fsync`ed (`Spool::write`), then
//! read back with its checksum checked and removed once replayed. Batches are 50 generated
//! documents (~620 bytes each, varied ids, a client IP in each), as the daemon sends them.

#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roentgen_daemon::batcher::Batch;
use roentgen_daemon::loadgen;
use roentgen_daemon::spool::Spool;
use roentgen_sdk::model::split_datagram;

const DOCUMENTS: u64 = 50;

fn batch_body(run: u32) -> Vec<u8> {
    let mut batch = Batch::with_capacity(64 * 1024);
    let mut datagram = Vec::new();
    for seq in 0..DOCUMENTS {
        loadgen::datagram(run, seq * 7919, &mut datagram);
        let document = split_datagram(&datagram).expect("generated datagram");
        let text = std::str::from_utf8(document).expect("utf-8");
        let id = roentgen_sdk::model::SegmentId::from_u64(seq + 1);
        batch.push(id, text, Instant::now());
    }
    batch.body()
}

fn spool(c: &mut Criterion) {
    let body = batch_body(7);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("spool_batch_of_50");
    group.throughput(Throughput::Elements(DOCUMENTS));
    group.sample_size(20);

    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("append.log"))
        .expect("open the append log");
    group.bench_function("baseline_fdatasync_append", |b| {
        b.iter(|| {
            log.write_all(black_box(&body)).expect("append");
            log.sync_data().expect("fdatasync");
        })
    });

    let spool = Spool::open(&dir.path().join("spool"), u64::MAX).expect("open the spool");
    group.bench_function("spool_write_then_remove", |b| {
        b.iter(|| {
            let entry = spool.write(black_box(&body), DOCUMENTS).expect("write");
            spool.remove(&entry).expect("remove");
        })
    });
    group.finish();

    // The forwarder's `senders` (default 4) deliveries spool concurrently: the journal
    // commits their syncs together.
    let mut group = c.benchmark_group("spool_4_writers_batch_of_50");
    group.throughput(Throughput::Elements(4 * DOCUMENTS));
    group.sample_size(20);
    group.bench_function("baseline_fdatasync_append_4_files", |b| {
        let mut logs: Vec<std::fs::File> = (0..4)
            .map(|i| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join(format!("append-{i}.log")))
                    .expect("open an append log")
            })
            .collect();
        b.iter(|| {
            std::thread::scope(|s| {
                for log in &mut logs {
                    let body = &body;
                    s.spawn(move || {
                        log.write_all(body).expect("append");
                        log.sync_data().expect("fdatasync");
                    });
                }
            })
        })
    });
    group.bench_function("spool_write_then_remove", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let entry = spool.write(&body, DOCUMENTS).expect("write");
                        spool.remove(&entry).expect("remove");
                    });
                }
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("spool_batch_of_50");
    group.throughput(Throughput::Elements(DOCUMENTS));
    let entry = spool.write(&body, DOCUMENTS).expect("write");
    group.bench_function("spool_read_and_check", |b| {
        b.iter(|| black_box(spool.read(&entry).expect("read")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = spool
}
criterion_main!(benches);
