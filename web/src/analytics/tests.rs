use super::*;
use crate::assembly::fold_trace;
use crate::filter::{matches, parse};
use crate::store::Store;
use crate::test_support::prepared;

fn fold(docs: &[String], id: &str) -> TraceSummary {
    let facts: Vec<_> = prepared(docs)
        .into_iter()
        .map(|d| (*d.facts).clone())
        .collect();
    fold_trace(id, &facts).summary
}

/// A SQLite store in `dir` holding fleet traces `0..count`, one a second from 1_800_000_000,
/// and their summaries folded in memory.
async fn fleet_store(
    dir: &std::path::Path,
    count: u64,
) -> (crate::store::sqlite::SqliteStore, Vec<TraceSummary>) {
    let store = crate::store::sqlite::SqliteStore::open(dir).unwrap();
    let mut summaries = Vec::new();
    let mut docs = Vec::new();
    for n in 0..count {
        let d = crate::synth::fleet_trace(n, 1_800_000_000.0 + n as f64);
        summaries.push(fold(&d, "x"));
        docs.extend(d);
    }
    store.put_documents(prepared(&docs)).await.unwrap();
    (store, summaries)
}

/// Opens the SQLite file of a store in `dir` beside it (its writer may still be closing its
/// connection: this one waits for the lock) and runs `sql`.
fn alter_sqlite(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("roentgen.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(sql).unwrap();
}

/// The filter's labelled traces and 300 fleet traces (five services, varied outcomes,
/// annotations, users, instances and zones) over ten minutes.
fn traces() -> Vec<TraceSummary> {
    let mut out: Vec<TraceSummary> = crate::filter::cases::labelled_documents()
        .iter()
        .map(|(label, docs)| fold(docs, label))
        .collect();
    for n in 0..300 {
        let docs = crate::synth::fleet_trace(n, 1_800_000_000.0 + n as f64 * 2.0);
        out.push(fold(&docs, &format!("fleet-{n}")));
    }
    out
}

fn tally_of(traces: &[&TraceSummary]) -> Tally {
    let mut t = Tally::new(1_795_000_000.0, 1_800_000_600.0);
    for s in traces {
        t.add(s);
    }
    t
}

fn selected<'a>(traces: &[&'a TraceSummary], filter: &str) -> Vec<&'a TraceSummary> {
    let expr = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    traces
        .iter()
        .copied()
        .filter(|t| matches(&expr, t))
        .collect()
}

/// Every count an analysis gives is the number of the set's traces that its filter selects:
/// breakdown values, histogram buckets, and the time series' outcomes.
#[test]
fn every_count_is_what_its_filter_selects() {
    let all = traces();
    let set: Vec<&TraceSummary> = all.iter().collect();
    let a = tally_of(&set).finish();
    assert_eq!(a.traces, set.len() as u64);
    assert!(!a.truncated);
    let mut checked = 0;
    for b in &a.breakdowns {
        assert!(!b.values.is_empty(), "{}", b.dimension);
        for e in &b.values {
            let n = selected(&set, &e.filter).len() as u64;
            assert_eq!(e.count, n, "{} {}: {}", b.dimension, e.value, e.filter);
            assert!((e.share - n as f64 / set.len() as f64).abs() < 1e-12);
            checked += 1;
        }
        let counts: Vec<u64> = b.values.iter().map(|e| e.count).collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{}", b.dimension);
    }
    assert!(checked > 60, "{checked} values checked");
    for bucket in &a.histogram {
        let n = selected(&set, &bucket.filter).len() as u64;
        assert_eq!(bucket.count, n, "{}", bucket.filter);
    }
    let sum = |f: fn(&Point) -> u64| a.time_series.iter().map(f).sum::<u64>();
    assert_eq!(sum(|p| p.requests), set.len() as u64);
    assert_eq!(sum(|p| p.fault), selected(&set, "fault").len() as u64);
    assert_eq!(sum(|p| p.error), selected(&set, "error").len() as u64);
    assert_eq!(sum(|p| p.throttle), selected(&set, "throttle").len() as u64);
    // Every kind of breakdown is there.
    let names: Vec<&str> = a.breakdowns.iter().map(|b| b.dimension.as_str()).collect();
    for want in [
        "FaultRootCauseService",
        "ErrorRootCauseService",
        "ResponseTimeRootCauseService",
        "FaultRootCauseException",
        "Annotation:tier",
        "Url",
        "HttpMethod",
        "HttpStatus",
        "User",
        "InstanceId",
        "AvailabilityZone",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
}

#[test]
fn the_labelled_traces_break_down_as_known() {
    let all = traces();
    let set: Vec<&TraceSummary> = all.iter().take(7).collect();
    let a = tally_of(&set).finish();
    let values = |dim: &str| -> Vec<(String, u64)> {
        a.breakdowns
            .iter()
            .find(|b| b.dimension == dim)
            .map(|b| {
                b.values
                    .iter()
                    .map(|e| (e.value.to_string(), e.count))
                    .collect()
            })
            .unwrap_or_default()
    };
    let v = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
        list.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    };
    assert_eq!(
        values("FaultRootCauseService"),
        v(&[("payments.example.com", 2), ("orders", 1)])
    );
    assert_eq!(
        values("FaultRootCauseException"),
        v(&[("PaymentGatewayError", 2)])
    );
    assert_eq!(
        values("ErrorRootCauseService"),
        v(&[("frontend", 2), ("payments.example.com", 1)])
    );
    assert_eq!(
        values("HttpStatus"),
        v(&[("200", 2), ("502", 2), ("404", 1), ("429", 1), ("500", 1)])
    );
    assert_eq!(
        values("Annotation:tier"),
        v(&[("bronze", 2), ("silver", 2), ("gold", 1)])
    );
}

/// Faulty traces against healthy ones: the root cause that faulted leads, with its share.
#[test]
fn comparing_puts_what_tells_the_sets_apart_first() {
    let all = traces();
    let set: Vec<&TraceSummary> = all.iter().collect();
    let healthy = tally_of(&selected(&set, "!fault"));
    let faulty = tally_of(&selected(&set, "fault"));
    let c = compare(&healthy, &faulty);
    assert_eq!(c.a.traces + c.b.traces, set.len() as u64);
    let top = |b: &ComparedBreakdown| b.values[0].difference.abs();
    assert!(
        c.breakdowns.windows(2).all(|w| top(&w[0]) >= top(&w[1])),
        "breakdowns by their largest difference"
    );
    let cause = c
        .breakdowns
        .iter()
        .find(|b| b.dimension == "FaultRootCauseService")
        .unwrap();
    let first = &cause.values[0];
    assert_eq!(first.count_a, 0);
    assert!(first.count_b > 0);
    assert!((first.difference - first.count_b as f64 / c.b.traces as f64).abs() < 1e-12);
    assert!(
        cause
            .values
            .windows(2)
            .all(|w| w[0].difference.abs() >= w[1].difference.abs())
    );
    // Nothing faulty is healthy: every fault root cause is only in B.
    assert!(
        cause
            .values
            .iter()
            .all(|e| e.count_a == 0 && e.difference > 0.0)
    );
}

#[test]
fn buckets_cover_every_response_time_once() {
    for (rt, bucket) in [
        (0.0, 0),
        (0.0009, 0),
        (0.001, 1),
        (0.0049, 2),
        (99.9, 15),
        (100.0, 16),
    ] {
        assert_eq!(bucket_of(rt), bucket, "{rt}");
        let (from, to) = bucket_range(bucket);
        assert!(
            from <= rt && to.is_none_or(|t| rt < t),
            "{rt} in {from}..{to:?}"
        );
    }
}

/// `collect` over a store folds the same traces as the filter selects in memory.
#[tokio::test]
async fn collect_reads_the_set_from_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, summaries) = fleet_store(dir.path(), 120).await;
    let filter =
        parse("service(\"payments\") { fault OR error } OR annotation.tier = \"gold\"").unwrap();
    let tally = collect(&store, 1_799_999_000.0, 1_800_001_000.0, Some(&filter))
        .await
        .unwrap();
    let expected: Vec<&TraceSummary> = summaries.iter().filter(|s| matches(&filter, s)).collect();
    assert!(expected.len() > 10);
    let mut want = Tally::new(1_799_999_000.0, 1_800_001_000.0);
    expected.iter().for_each(|s| want.add(s));
    assert_eq!(tally.finish(), want.finish());
}

/// Past its limit, a set is folded from its newest traces: both halves of the window read at
/// once, then the older half again for what fits.
#[tokio::test]
async fn a_set_past_the_limit_folds_its_newest_traces() {
    let dir = tempfile::tempdir().unwrap();
    let (store, summaries) = fleet_store(dir.path(), 90).await;
    let (start, end) = (1_800_000_000.0, 1_800_000_089.0);
    let newest = |k: usize| {
        let mut t = Tally::new(start, end);
        summaries.iter().rev().take(k).for_each(|s| t.add(s));
        t.finish()
    };
    // 30 fit in the newer half; 60 take 45 from it and 15 from the older one; 90 are all.
    for (limit, truncated) in [(30, true), (60, true), (90, false), (200, false)] {
        let got = collect_newest(&store, start, end, None, limit)
            .await
            .unwrap()
            .finish();
        let mut want = newest(limit.min(90));
        want.truncated = truncated;
        assert_eq!(got, want, "limit {limit}");
    }
    // A trace starting exactly at the middle of the window is folded once.
    let got = collect_newest(&store, start, start + 88.0, None, 200)
        .await
        .unwrap();
    assert_eq!(got.traces(), 89, "traces 0 to 88, trace 44 at the middle");
}

/// A store of the format before facets gets the facets of every stored trace when opened,
/// and analyses read them; traces whose facets cannot be read are analysed from their
/// summaries.
#[tokio::test]
async fn a_store_of_the_previous_format_gets_its_facets_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let summaries = fleet_store(dir.path(), 40).await.1;
    // As the previous release left it: no facets table, format 3.
    alter_sqlite(
        dir.path(),
        "DROP TABLE trace_facets; PRAGMA user_version = 3;",
    );
    let store = crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    let (start, end) = (1_800_000_000.0, 1_800_000_100.0);
    let got = collect(&store, start, end, None).await.unwrap().finish();
    let mut want = Tally::new(start, end);
    summaries.iter().for_each(|s| want.add(s));
    let want = want.finish();
    assert_eq!(got, want);
    assert_eq!(got.traces, 40);
    // Facets this release cannot read: those traces are analysed from their summaries.
    alter_sqlite(
        dir.path(),
        "UPDATE trace_facets SET facets = '{\"t\":' WHERE rid % 3 = 0",
    );
    let got = collect(&store, start, end, None).await.unwrap().finish();
    assert_eq!(got, want);
}

/// A filter the store answers exactly is read from facets, past its limit too: the newest
/// traces of the set, as the summary path picks them.
#[tokio::test]
async fn a_set_read_from_facets_past_its_limit_folds_its_newest_traces() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = fleet_store(dir.path(), 90).await;
    let (start, end) = (1_800_000_000.0, 1_800_000_089.0);
    for filter in ["service(\"web\")", "annotation.tier = \"gold\"", "!fault"] {
        let expr = parse(filter).unwrap();
        let pushdown = expr.exact_pushdown().unwrap();
        for limit in [1, 7, 30, 89, 200] {
            let got = collect_facets(&store, start, end, pushdown.clone(), limit)
                .await
                .unwrap()
                .finish();
            let want = collect_newest(&store, start, end, Some(&expr), limit)
                .await
                .unwrap()
                .finish();
            assert_eq!(got, want, "{filter}, limit {limit}");
        }
    }
}
