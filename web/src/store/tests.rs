//! The store suite, run once per store: every test below runs against SQLite and against
//! ClickHouse (a local server started once per test binary, a fresh database per test).

use std::sync::Arc;

use super::*;
use crate::assembly::assemble_documents;
use crate::store::clickhouse::testing::{Backend, Place, for_each_store, store};
use crate::test_support::{capture_documents, prepared, scan_all, shuffled};

for_each_store!(
    pieces_in_any_order_with_duplicates_assemble_after_reopening,
    complete_replaces_in_progress_and_not_the_reverse,
    rollups_do_not_depend_on_arrival_order,
    scans_use_pushdown_and_pages_newest_first,
    delete_before_removes_old_traces_and_rollups,
    the_default_sampling_rule_exists_from_the_start,
    a_trace_folded_again_is_found_once_by_its_indexes,
    a_trace_in_pieces_in_any_order_and_batches_sums_up_as_when_sent_whole,
    w3c_ids_live_in_the_days_their_traces_happened_and_either_id_form_finds_them,
    every_filter_expression_selects_the_same_traces_through_the_store,
    read_back_traces_sum_up_as_when_sent_whole,
    a_future_trace_continued_after_a_restart_is_read_back,
    live_traces_take_later_pieces_without_reading_back,
    a_trace_folded_at_every_piece_is_found_by_a_scan_of_small_pages,
);

/// The filter's table of expressions (`filter::cases`), answered by the store: its pushdown
/// and scans must keep every trace the expression selects and the summaries it reads back
/// must hold what the expression looks at (root causes, accounts).
async fn every_filter_expression_selects_the_same_traces_through_the_store(backend: Backend) {
    use crate::filter::cases::{EXPRESSIONS, labelled_documents};
    let (_place, store) = store(backend).await;
    let mut labels = std::collections::HashMap::new();
    for (label, docs) in labelled_documents() {
        let prepared = prepared(&docs);
        labels.insert(prepared[0].trace_id.clone(), label);
        store.put_documents(prepared).await.unwrap();
    }
    for (text, expected) in EXPRESSIONS {
        let expr = crate::filter::parse(text).unwrap();
        let page = crate::query::trace_summaries(store.as_ref(), 0.0, 2e9, Some(&expr), None)
            .await
            .unwrap();
        let mut got: Vec<&str> = page.summaries.iter().map(|s| labels[&s.id]).collect();
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{text}");
    }
}

mod clickhouse_only {
    use super::*;
    use crate::store::clickhouse::testing::for_each_clickhouse;
    for_each_clickhouse!(
        pieces_through_two_collectors_sum_up_as_when_sent_whole,
        settled_minutes_read_the_same_and_late_pieces_unsettle_them,
    );
}

/// ClickHouse's graph rollups settled per minute (see `clickhouse/rollups.rs`): what a
/// settled minute reads equals what the samples say, a late piece of a trace makes its minutes
/// dirty (read exactly from the samples until settled again), and a minute settled twice
/// reads like one settled once.
async fn settled_minutes_read_the_same_and_late_pieces_unsettle_them(backend: Backend) {
    let (place, whole) = (Place::new(backend), Place::new(backend));
    let (store, whole) = (place.clickhouse().await, whole.clickhouse().await);
    let start = now_seconds() - 3_600.0;
    let (mut early, mut late, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..40 {
        let docs = crate::synth::fleet_trace(n, start + n as f64 * 7.0);
        all.extend(docs.iter().cloned());
        if n % 4 == 0 {
            early.extend(docs[..2].iter().cloned());
            late.extend(docs[2..].iter().cloned());
        } else {
            early.extend(docs);
        }
    }
    store.put_documents(prepared(&early)).await.unwrap();
    whole.put_documents(prepared(&all)).await.unwrap();
    let unsettled = rollups_of(&store).await;
    assert!(
        store.settle_rollups_now().await.unwrap() >= 4,
        "minutes settled"
    );
    assert_eq!(store.settle_rollups_now().await.unwrap(), 0, "all clean");
    assert_eq!(rollups_of(&store).await, unsettled);
    let recomputed = store.unsettled_rollup_rows(0, i64::MAX).await.unwrap();
    assert_eq!(rounded(recomputed), unsettled);

    store.put_documents(prepared(&late)).await.unwrap();
    let expected = rollups_of(&whole).await;
    assert_ne!(expected, unsettled, "the late pieces add to the graph");
    assert_eq!(
        rollups_of(&store).await,
        expected,
        "dirty minutes read exactly"
    );
    assert!(store.settle_rollups_now().await.unwrap() >= 1);
    assert_eq!(rollups_of(&store).await, expected, "settled again");
    whole.settle_rollups_now().await.unwrap();
    assert_eq!(rollups_of(&whole).await, expected);
}

async fn rollups_of(store: &dyn Store) -> Vec<String> {
    rounded(store.rollups(0, i64::MAX).await.unwrap())
}

/// Rollup rows as text, response-time sums rounded (a store adds floats in any order).
fn rounded(rows: Vec<RollupRow>) -> Vec<String> {
    let mut rows: Vec<String> = rows
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} {:?} {:.4}",
                r.minute,
                r.src,
                r.dst,
                (
                    r.stats.ok,
                    r.stats.error_other,
                    r.stats.throttle,
                    r.stats.fault,
                    &r.stats.histogram
                ),
                r.stats.total_response_time
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn pieces_in_any_order_with_duplicates_assemble_after_reopening(backend: Backend) {
    let raw = capture_documents("node-sdk-3.12-streamed-105.txt");
    let docs = prepared(&raw);
    let place = Place::new(backend);
    {
        let store = place.open().await;
        let order = shuffled(docs.len(), 7);
        let mut batch = Vec::new();
        for (k, i) in order.iter().enumerate() {
            batch.push(docs[*i].clone());
            if k % 2 == 0 {
                batch.push(docs[*i].clone()); // duplicate
            }
            if batch.len() >= 2 {
                store
                    .put_documents(std::mem::take(&mut batch))
                    .await
                    .unwrap();
            }
        }
        store.put_documents(batch).await.unwrap();
    }
    let store = place.open().await;
    let trace_id = docs[0].trace_id.clone();
    let traces = store.trace_documents(vec![trace_id.clone()]).await.unwrap();
    assert_eq!(traces.len(), 1);
    assert_eq!(
        traces[0].documents.len(),
        docs.len(),
        "duplicates are stored once"
    );
    let whole = assemble_documents(traces[0].documents.clone());
    assert_eq!(whole.len(), 1);
    let seg: roentgen_sdk::model::Segment = serde_json::from_str(&whole[0].1).unwrap();
    assert_eq!(seg.subsegment_count(), 105);
    let rec = store.get_traces(vec![trace_id]).await.unwrap();
    assert!(!rec[0].summary.is_partial);
    assert_eq!(rec[0].summary.document_count, docs.len());
}

async fn complete_replaces_in_progress_and_not_the_reverse(backend: Backend) {
    let (_place, store) = store(backend).await;
    let complete = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"end_time":1478293361.449,"http":{"response":{"status":500}}}"#;
    let open = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"in_progress":true}"#;
    let id = "1-581cf771-a006649127e371903a2de979".to_owned();
    store
        .put_documents(prepared(&[open.to_owned()]))
        .await
        .unwrap();
    let rec = store.get_traces(vec![id.clone()]).await.unwrap();
    assert!(rec[0].summary.is_partial);
    assert!(rec[0].rollup.is_empty());
    store
        .put_documents(prepared(&[complete.to_owned()]))
        .await
        .unwrap();
    store
        .put_documents(prepared(&[open.to_owned()]))
        .await
        .unwrap();
    let rec = store.get_traces(vec![id.clone()]).await.unwrap();
    assert!(!rec[0].summary.is_partial);
    assert!(rec[0].summary.has_fault);
    let docs = store.trace_documents(vec![id]).await.unwrap();
    assert_eq!(docs[0].documents[0].document, complete);
    // Counted once in the rollups despite three arrivals.
    let nodes: i64 = store
        .rollups(0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.dst.is_empty())
        .map(|r| r.stats.total())
        .sum();
    assert_eq!(nodes, 1);
}

async fn rollups_do_not_depend_on_arrival_order(backend: Backend) {
    let mut docs = Vec::new();
    for n in 0..40 {
        docs.extend(crate::synth::shop_trace(
            n,
            1_800_000_000.0 + n as f64 * 7.0,
        ));
    }
    let docs = prepared(&docs);
    let (_a, forward) = store(backend).await;
    let (_b, mixed) = store(backend).await;
    for chunk in docs.chunks(9) {
        forward.put_documents(chunk.to_vec()).await.unwrap();
    }
    let order = shuffled(docs.len(), 3);
    for chunk in order.chunks(5) {
        mixed
            .put_documents(chunk.iter().map(|i| docs[*i].clone()).collect())
            .await
            .unwrap();
    }
    let a = rollups_of(forward.as_ref()).await;
    assert!(!a.is_empty());
    assert_eq!(a, rollups_of(mixed.as_ref()).await);
}

async fn scans_use_pushdown_and_pages_newest_first(backend: Backend) {
    let (_place, store) = store(backend).await;
    let mut docs = Vec::new();
    for n in 0..30 {
        docs.extend(crate::synth::shop_trace(n, 1_800_000_000.0 + n as f64));
    }
    store.put_documents(prepared(&docs)).await.unwrap();
    let all = store
        .scan_traces(scan_all(0.0, 2e9, vec![], 10, false))
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
    assert!(all[0].summary.start_time > all[9].summary.start_time);
    let one = store
        .scan_traces(scan_all(
            0.0,
            2e9,
            vec![Pushdown::AnnotationEquals("order".into(), "ord-17".into())],
            10,
            true,
        ))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(!one[0].rollup.is_empty());
    let faults = store
        .scan_traces(scan_all(
            0.0,
            2e9,
            vec![Pushdown::HasFault(true), Pushdown::Service("orders".into())],
            100,
            false,
        ))
        .await
        .unwrap();
    assert!(!faults.is_empty());
    assert!(faults.iter().all(|r| r.summary.has_fault));
}

/// A trace folded again at every piece has many fold rows with the same start: a scan that
/// reads a few rows at a time (a page may end among them) still finds it, once, as its
/// newest fold.
async fn a_trace_folded_at_every_piece_is_found_by_a_scan_of_small_pages(backend: Backend) {
    let place = Place::new(backend);
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => place.open().await,
        _ => {
            // Every fold row stays (merges would keep only the newest).
            let store = place.clickhouse().await;
            store.stop_merges("traces").await;
            Arc::new(store)
        }
    };
    let docs = prepared(&crate::synth::streamed_trace(1, 1_800_000_000.0, 60));
    for d in &docs {
        store.put_documents(vec![d.clone()]).await.unwrap();
    }
    let (whole, _) = settled(store.as_ref(), &docs[0].trace_id).await;
    let mut found = store
        .scan_traces(scan_all(0.0, 2e9, vec![], 1, false))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    found[0].summary.updated_at = None;
    assert_eq!(found[0].summary, whole);
}

async fn delete_before_removes_old_traces_and_rollups(backend: Backend) {
    let (_place, store) = store(backend).await;
    let mut docs = crate::synth::shop_trace(1, 1_000_000_000.0);
    docs.extend(crate::synth::shop_trace(2, 1_800_000_000.0));
    store.put_documents(prepared(&docs)).await.unwrap();
    let gone = store.delete_before(1_500_000_000.0, 10).await.unwrap();
    assert_eq!(gone, 1);
    let left = store
        .scan_traces(scan_all(0.0, 2e9, vec![], 10, false))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        store
            .rollups(0, i64::MAX)
            .await
            .unwrap()
            .iter()
            .all(|r| r.minute >= 1_500_000_000 / 60)
    );
}

async fn the_default_sampling_rule_exists_from_the_start(backend: Backend) {
    let (_place, store) = store(backend).await;
    let rules = store.sampling_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].rule.rule_name, "Default");
    assert_eq!(rules[0].rule.fixed_rate, 0.05);
    assert_eq!(rules[0].rule.reservoir_size, 1);
}

async fn a_trace_folded_again_is_found_once_by_its_indexes(backend: Backend) {
    let (_place, store) = store(backend).await;
    let docs = prepared(&crate::synth::shop_trace(3, 1_800_000_000.0));
    // The downstream segment first, then its caller, then the caller again (a duplicate).
    for d in [&docs[1], &docs[0], &docs[0]] {
        store.put_documents(vec![d.clone()]).await.unwrap();
    }
    let pushdowns = [
        Pushdown::AnnotationEquals("order".into(), "ord-3".into()),
        Pushdown::AnnotationEquals("warehouse".into(), "wh-3".into()),
        Pushdown::Service("frontend".into()),
        Pushdown::Service("orders".into()),
    ];
    for p in &pushdowns {
        let found = store
            .scan_traces(scan_all(0.0, 2e9, vec![p.clone()], 10, true))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{p:?}");
        assert_eq!(found[0].summary.document_count, 2, "{p:?}");
        assert!(!found[0].summary.is_partial, "{p:?}");
    }
    assert_eq!(store.delete_before(2e9, 10).await.unwrap(), 1);
    for p in &pushdowns {
        let found = store
            .scan_traces(scan_all(0.0, 2e9, vec![p.clone()], 10, false))
            .await
            .unwrap();
        assert!(found.is_empty(), "{p:?}");
    }
}

/// What a store says of a trace, without when its pieces arrived.
pub(super) async fn settled(store: &dyn Store, id: &str) -> (TraceSummary, Vec<String>) {
    store.reconcile_now().await.unwrap();
    let mut records = store.get_traces(vec![id.to_owned()]).await.unwrap();
    assert_eq!(records.len(), 1, "{id} not found");
    let mut record = records.remove(0);
    record.summary.updated_at = None;
    // Sums of response times to 1 ns: the order they were added in may differ.
    let samples: Vec<String> = record
        .rollup
        .0
        .iter()
        .map(|(k, n)| format!("{k:?} {} {:.9}", n.count, n.response_time))
        .collect();
    (record.summary, samples)
}

/// Property, over seeded cases: a trace whose pieces (five services' segments, or a streamed
/// capture's subsegments) arrive in any order, spread over any number of batches with other
/// traces' documents between them, has the summary and graph samples it has when sent whole.
async fn a_trace_in_pieces_in_any_order_and_batches_sums_up_as_when_sent_whole(backend: Backend) {
    let (_whole_place, whole) = store(backend).await;
    let (_pieces_place, pieces) = store(backend).await;
    sums_up_as_when_sent_whole(whole.as_ref(), pieces.as_ref()).await;
}

/// The same property with no live traces: every later piece is late, so its trace is read
/// back from the store (SQLite: by the writer; ClickHouse: by the reconciler).
async fn read_back_traces_sum_up_as_when_sent_whole(backend: Backend) {
    let (_whole_place, whole) = store(backend).await;
    let limits = TraceLimits {
        live_documents: 0,
        ..TraceLimits::default()
    };
    let place = Place::new(backend);
    let pieces = place.open_with(limits).await;
    sums_up_as_when_sent_whole(whole.as_ref(), pieces.as_ref()).await;
    let live = pieces.live_counters().unwrap();
    assert!(live.late.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(live.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    if !matches!(backend, Backend::Sqlite) {
        assert!(live.reconciled.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
}

/// A trace whose id-epoch is ahead of the clock, half stored before a restart: after it, the
/// trace is a suspect, its next piece reads it back, and it sums up as when sent whole.
async fn a_future_trace_continued_after_a_restart_is_read_back(backend: Backend) {
    let (_whole_place, whole) = store(backend).await;
    let docs = prepared(&crate::synth::fleet_trace(7, 1_900_000_000.0));
    let id = docs[0].trace_id.clone();
    whole.put_documents(docs.clone()).await.unwrap();
    let place = Place::new(backend);
    let (first, rest) = docs.split_at(2);
    place
        .open()
        .await
        .put_documents(first.to_vec())
        .await
        .unwrap();
    let reopened = place.open().await;
    reopened.put_documents(rest.to_vec()).await.unwrap();
    let live = reopened.live_counters().unwrap();
    assert_eq!(live.late.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        settled(reopened.as_ref(), &id).await,
        settled(whole.as_ref(), &id).await
    );
    // A new trace of the same (future) second is still new: the horizon did not jump.
    let other = prepared(&crate::synth::fleet_trace(8, 1_900_000_000.0));
    reopened.put_documents(other).await.unwrap();
    assert_eq!(live.late.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Pieces of traces are folded from memory: when nothing was evicted, the only late piece is
/// the first one of the captured trace, which began (by its id) before the store opened.
/// On ClickHouse the reconciler checks that trace (the writer cannot know it is whole).
async fn live_traces_take_later_pieces_without_reading_back(backend: Backend) {
    let (_place, pieces) = store(backend).await;
    let (_whole_place, whole) = store(backend).await;
    sums_up_as_when_sent_whole(whole.as_ref(), pieces.as_ref()).await;
    let live = pieces.live_counters().unwrap();
    assert_eq!(live.late.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(live.hits.load(std::sync::atomic::Ordering::Relaxed) > 0);
    if !matches!(backend, Backend::Sqlite) {
        assert!(
            live.reconcile_checked
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
}

/// Two collectors on one ClickHouse, a trace's pieces alternating between them: each writer
/// folds the pieces it holds, and each reconciler, seeing the other's stamps, finds that the
/// store holds more and folds the trace again from it, so the newest fold is the whole trace.
async fn pieces_through_two_collectors_sum_up_as_when_sent_whole(backend: Backend) {
    let (_whole_place, whole) = store(backend).await;
    let place = Place::new(backend);
    let (a, b) = (place.open().await, place.open().await);
    for seed in 0..4u64 {
        let docs = prepared(&crate::synth::fleet_trace(
            seed,
            1_800_000_000.0 + seed as f64,
        ));
        let id = docs[0].trace_id.clone();
        whole.put_documents(docs.clone()).await.unwrap();
        for (k, i) in shuffled(docs.len(), seed).into_iter().enumerate() {
            let to = if k % 2 == 0 { &a } else { &b };
            to.put_documents(vec![docs[i].clone()]).await.unwrap();
        }
        b.reconcile_now().await.unwrap();
        let expected = settled(whole.as_ref(), &id).await;
        assert_eq!(settled(a.as_ref(), &id).await, expected, "seed {seed}");
    }
    let count = |s: &Arc<dyn Store>, c: fn(&LiveCounters) -> &std::sync::atomic::AtomicU64| {
        c(&s.live_counters().unwrap()).load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(count(&a, |c| &c.reconciled) + count(&b, |c| &c.reconciled) > 0);
    assert_eq!(
        count(&whole, |c| &c.reconcile_checked),
        0,
        "alone: nothing checked"
    );
}

async fn sums_up_as_when_sent_whole(whole: &dyn Store, pieces: &dyn Store) {
    let streamed = capture_documents("python-sdk-2.15-streamed-40.txt");
    for seed in 0..12u64 {
        let raw = if seed == 3 {
            streamed.clone()
        } else {
            crate::synth::fleet_trace(seed, 1_800_000_000.0 + seed as f64)
        };
        let docs = prepared(&raw);
        let id = docs[0].trace_id.clone();
        whole.put_documents(docs.clone()).await.unwrap();
        // Pieces in a seeded order, in batches of 1 to 3, other traces' documents between.
        let order = shuffled(docs.len(), seed);
        let mut k = 0;
        let mut other = 1_000 + seed * 100;
        while k < order.len() {
            let size = 1 + ((seed as usize + k) % 3);
            let batch: Vec<_> = order[k..(k + size).min(order.len())]
                .iter()
                .map(|i| docs[*i].clone())
                .collect();
            k += size;
            pieces.put_documents(batch).await.unwrap();
            for _ in 0..(seed + k as u64) % 3 {
                other += 1;
                let noise = crate::synth::shop_trace(other, 1_800_000_000.0 + other as f64);
                pieces.put_documents(prepared(&noise)).await.unwrap();
            }
        }
        let expected = settled(whole, &id).await;
        let got = settled(pieces, &id).await;
        assert_eq!(got, expected, "seed {seed}: trace {id}");
        // Its index rows are those of its final summary: found once by each of its
        // annotations and services.
        let summary = &expected.0;
        let mut probes: Vec<Pushdown> = summary
            .annotations
            .iter()
            .map(|a| Pushdown::AnnotationEquals(a.key.clone(), a.value.index_text()))
            .collect();
        probes.extend(
            summary
                .services
                .iter()
                .map(|s| Pushdown::Service(s.key.name.clone())),
        );
        for p in probes {
            let found = pieces
                .scan_traces(scan_all(0.0, 2e9, vec![p.clone()], 10_000, false))
                .await
                .unwrap();
            let hits = found.iter().filter(|r| r.summary.id == id).count();
            assert_eq!(hits, 1, "seed {seed}: {p:?}");
        }
    }
}

/// OpenTelemetry's W3C ids keep their 128 bits as `1-xxxxxxxx-…`, and their first 32 bits are
/// random (here they would say 1978): such a trace must still be in its window's service
/// graph, kept by retention as its own time says, and found by `id("…")` in either form.
async fn w3c_ids_live_in_the_days_their_traces_happened_and_either_id_form_finds_them(
    backend: Backend,
) {
    let (_place, store) = store(backend).await;
    let start = 1_800_000_000.0;
    let docs = crate::synth::shop_trace(4, start);
    let first: serde_json::Value = serde_json::from_str(&docs[0]).unwrap();
    let xray_id = first["trace_id"].as_str().unwrap().to_owned();
    let w3c = "10000000aaaabbbbccccddddeeeeffff";
    let moved: Vec<String> = docs
        .iter()
        .map(|d| d.replace(&xray_id, "1-10000000-aaaabbbbccccddddeeeeffff"))
        .collect();
    store.put_documents(prepared(&moved)).await.unwrap();
    // Retention of everything older than a day before it keeps it.
    assert_eq!(store.delete_before(start - 86_400.0, 10).await.unwrap(), 0);
    let minute = (start / 60.0) as i64;
    let rollups = store.rollups(minute - 5, minute + 5).await.unwrap();
    assert!(!rollups.is_empty(), "the trace's edges are in its window");
    for text in [
        format!("id(\"{w3c}\")"),
        format!("id(\"{}\")", w3c.to_uppercase()),
        "id(\"1-10000000-aaaabbbbccccddddeeeeffff\")".to_owned(),
    ] {
        let pushdown = crate::filter::parse(&text).unwrap().pushdown();
        let found = store
            .scan_traces(scan_all(start - 60.0, start + 60.0, pushdown, 10, false))
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|r| r.summary.id.as_str()).collect();
        assert_eq!(ids, ["1-10000000-aaaabbbbccccddddeeeeffff"], "{text}");
    }
}

/// Group commit waits only for as many requests as recent batches took: a lone client never
/// waits, eight concurrent ones wait for each other, and the wait fades once they are gone.
#[test]
fn group_commit_waits_for_the_requests_recent_batches_took() {
    let mut group = GroupCommit::default();
    assert!(!group.lingers(1, 50), "nothing seen yet");
    for _ in 0..100 {
        group.took(1);
    }
    assert!(!group.lingers(1, 50), "a lone client");
    group.took(8);
    assert!(group.lingers(1, 50) && group.lingers(7, 350));
    assert!(!group.lingers(8, 400), "every recent request is in");
    assert!(
        !group.lingers(3, LINGER_DOCUMENTS),
        "the batch is large enough"
    );
    for _ in 0..16 {
        group.took(2);
    }
    assert!(!group.lingers(2, 100), "the eight are gone");
    assert!(group.lingers(1, 50));
}
