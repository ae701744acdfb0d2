//! The tracker over minutes of rollups: a fault burst in a downstream and a latency regression
//! on an edge each open one insight naming the right root cause, and close.

use super::tracker::Tracker;
use super::{InsightState, insight_id};
use crate::alarms::series::RollupWindow;
use crate::assembly::{NodeKey, Outcome};
use crate::graph::Stats;
use crate::store::RollupRow;

fn key(name: &str) -> String {
    if name == "client" {
        NodeKey::client().encode()
    } else {
        NodeKey {
            name: name.to_owned(),
            kind: String::new(),
        }
        .encode()
    }
}

fn stats(requests: i64, faults: i64, seconds: f64, jitter: i64) -> Stats {
    let mut s = Stats::default();
    s.add(
        Outcome::Ok,
        seconds * (1.0 + 0.05 * jitter as f64),
        requests - faults,
    );
    if faults > 0 {
        s.add(Outcome::Fault, seconds, faults);
    }
    s
}

/// Minutes `0..n` of a shop: clients call `front`, which calls `pay` and `inventory`; `pay`
/// faults on 12 of 20 requests in `burst`, calls into `inventory` take 0.5 s in `slow`.
fn shop(n: i64, burst: std::ops::Range<i64>, slow: std::ops::Range<i64>) -> Vec<RollupRow> {
    let mut rows = Vec::new();
    for m in 0..n {
        let j = m % 3;
        let faults = if burst.contains(&m) {
            12
        } else {
            i64::from(m % 17 == 5)
        };
        let latency = if slow.contains(&m) { 0.5 } else { 0.02 };
        let mut row = |src: &str, dst: &str, s: Stats| {
            rows.push(RollupRow {
                minute: m,
                src: key(src),
                dst: if dst.is_empty() {
                    String::new()
                } else {
                    key(dst)
                },
                stats: s,
            });
        };
        row("client", "front", stats(20, faults, 0.05 + latency, j));
        row("front", "", stats(20, faults, 0.05 + latency, j));
        row("front", "pay", stats(20, faults, 0.01, j));
        row("pay", "", stats(20, faults, 0.008, j));
        row("front", "inventory", stats(20, 0, latency, j));
        row("inventory", "", stats(20, 0, latency * 0.9, j));
    }
    rows
}

#[test]
fn a_burst_and_a_regression_each_open_and_close_one_insight_with_their_root_cause() {
    let mut window = RollupWindow::default();
    window.replace(0, 0, 200, shop(200, 130..135, 160..166));
    let mut tracker = Tracker::default();
    let mut all = std::collections::BTreeMap::new();
    for m in 121..200 {
        tracker.step(&window, &[], m);
        for i in tracker.take_changed() {
            all.insert(i.insight_id.clone(), i);
        }
    }
    let insights: Vec<_> = all.into_values().collect();
    assert_eq!(insights.len(), 2, "{insights:#?}");
    let mut by_start = insights.clone();
    by_start.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let (burst, slow) = (&by_start[0], &by_start[1]);
    assert_eq!(burst.root_cause.name, "pay");
    assert_eq!(burst.start_time, 130.0 * 60.0);
    assert_eq!(burst.end_time, Some(135.0 * 60.0));
    assert_eq!(burst.state, InsightState::Closed);
    assert!(burst.categories.contains(&"FAULT".to_owned()));
    assert!(burst.impacted_services.iter().any(|s| s.name == "front"));
    assert!(
        burst.requests_affected >= 5.0 * 11.0,
        "{}",
        burst.requests_affected
    );
    assert!(
        burst
            .summary
            .starts_with("pay FaultRate 60.0% (usual 0.0%)"),
        "{}",
        burst.summary
    );
    assert!(
        burst.summary.contains("impacting front"),
        "{}",
        burst.summary
    );
    assert_eq!(
        burst
            .events
            .first()
            .map(|e| e.summary.starts_with("Opened")),
        Some(true)
    );
    assert_eq!(
        burst.events.last().map(|e| e.summary.as_str()),
        Some("Closed: the anomalies ended")
    );
    assert_eq!(burst.client_request_impact_statistics.fault_count, 5 * 12);

    assert_eq!(slow.root_cause.name, "inventory");
    assert_eq!(slow.start_time, 160.0 * 60.0);
    assert_eq!(slow.end_time, Some(166.0 * 60.0));
    assert_eq!(slow.categories, ["LATENCY"]);
    assert!(
        slow.impacted_edges
            .iter()
            .any(|(a, b)| a.name == "front" && b.name == "inventory")
    );
}

#[test]
fn a_single_odd_minute_is_not_an_insight_and_ids_are_stable_uuids() {
    let mut window = RollupWindow::default();
    window.replace(0, 0, 200, shop(200, 150..151, 0..0));
    let mut tracker = Tracker::default();
    for m in 121..200 {
        tracker.step(&window, &[], m);
    }
    assert!(tracker.take_changed().is_empty());
    let id = insight_id("pay|130");
    assert_eq!(id, insight_id("pay|130"));
    assert_ne!(id, insight_id("pay|131"));
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(
        parts[2].starts_with('5') && "89ab".contains(&parts[3][..1]),
        "{id}"
    );
}

#[test]
fn a_rise_that_happens_every_day_at_that_hour_is_not_an_insight() {
    // Two days and a bit: every day from minute 600 to 660 `inventory` takes 0.5 s (a
    // nightly batch); on day 2 `pay` also faults from minute 620 (a real incident).
    let day = 1_440;
    let mut rows = Vec::new();
    for d in 0..3 {
        let base = d * day;
        let span = if d == 2 { 700 } else { day };
        let burst = if d == 2 { base + 620..base + 625 } else { 0..0 };
        for mut row in shop(span, burst.start - base..burst.end - base, 600..660) {
            row.minute += base;
            rows.push(row);
        }
    }
    let last = 2 * day + 699;
    let mut recent = RollupWindow::default();
    recent.replace(2 * day + 400, 2 * day + 400, last, rows.clone());
    let mut yesterday = RollupWindow::default();
    yesterday.replace(day + 400, day + 400, day + 699, rows.clone());
    let judge = |seasons: &[(i64, &RollupWindow)]| {
        let mut tracker = Tracker::default();
        let mut roots = std::collections::BTreeSet::new();
        for m in 2 * day + 560..=last {
            tracker.step(&recent, seasons, m);
            for i in tracker.take_changed() {
                roots.insert(i.root_cause.name);
            }
        }
        roots.into_iter().collect::<Vec<_>>()
    };
    assert_eq!(
        judge(&[]),
        ["inventory", "pay"],
        "without seasons the batch looks like an incident"
    );
    assert_eq!(
        judge(&[(day, &yesterday)]),
        ["pay"],
        "yesterday at this hour it was the same"
    );
}
