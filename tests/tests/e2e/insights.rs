//! Insights end to end: an hour of a three-service workload with a fault burst in one
//! downstream and, later, a latency regression on one edge is sent to a collector that does
//! not evaluate; a second collector over the same store finds both incidents in its first
//! round (it looks back over the last 30 minutes), each an insight naming the right root
//! cause, opened and closed; the AWS CLI lists and reads them. On ClickHouse, of two
//! evaluating collectors exactly one holds the alarm lease, and the other takes it over when
//! the first dies.

use roentgen_tests::web::{Collector, aws_xray};
use serde_json::Value;

use super::alarms::{now, request_at};

fn cli(collector: &Collector, args: &[&str]) -> Value {
    let (ok, out, err) = aws_xray(collector, None, "us-east-1", args);
    assert!(ok, "aws xray {args:?}: {err}");
    serde_json::from_str(&out).expect("CLI JSON")
}

/// Sends the last hour of the workload (15 requests a minute) with its two incidents through
/// `sender`; returns the hour's first minute, epoch seconds.
fn backfill(sender: &Collector) -> f64 {
    let this_minute = (now() / 60.0).floor() * 60.0;
    let first = this_minute - 60.0 * 60.0;
    let mut n = 0u64;
    for m in 0..60 {
        let minute = first + f64::from(m) * 60.0;
        // Minutes 36-39 (24-21 minutes ago): pay faults; minutes 46-49: inventory is slow.
        let faulty = (36..40).contains(&m);
        let slow = (46..50).contains(&m);
        let mut docs = Vec::new();
        for k in 0..15 {
            n += 1;
            docs.extend(request_at(n, minute + f64::from(k) * 4.0, faulty, slow));
        }
        let (status, body) = sender.post("/TraceSegments", &Collector::put_body(&docs));
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("\"Id\""), "nothing refused: {body}");
    }
    first
}

#[test]
fn insights_name_the_root_cause_of_a_burst_and_a_regression_and_the_cli_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let sender = Collector::start(&data, &["--alarm-evaluation", "off"]);
    let first = backfill(&sender);
    sender.kill9();
    let collector = Collector::start(&data, &[]);
    let (start, end) = (
        format!("{}", first as i64),
        format!("{}", now() as i64 + 60),
    );
    let by_start = summaries(&collector, first);
    assert_eq!(by_start.len(), 2, "{by_start:#?}");
    let (burst, slow) = (&by_start[0], &by_start[1]);
    assert_eq!(burst["RootCauseServiceId"]["Name"], "pay", "{burst:#}");
    assert_eq!(burst["State"], "CLOSED");
    assert_eq!(burst["Categories"][0], "FAULT");
    assert_eq!(burst["StartTime"].as_f64(), Some(first + 36.0 * 60.0));
    assert_eq!(burst["EndTime"].as_f64(), Some(first + 40.0 * 60.0));
    assert!(
        burst["ClientRequestImpactStatistics"]["FaultCount"]
            .as_i64()
            .expect("faults")
            >= 30
    );
    assert_eq!(slow["RootCauseServiceId"]["Name"], "inventory", "{slow:#}");
    assert_eq!(slow["State"], "CLOSED");
    assert_eq!(slow["Categories"], serde_json::json!(["LATENCY"]));
    assert_eq!(slow["StartTime"].as_f64(), Some(first + 46.0 * 60.0));

    let id = burst["InsightId"].as_str().expect("id");
    let insight = cli(&collector, &["get-insight", "--insight-id", id]);
    assert_eq!(insight["Insight"]["Summary"], burst["Summary"]);
    let events = cli(&collector, &["get-insight-events", "--insight-id", id]);
    let events = events["InsightEvents"].as_array().expect("events");
    assert!(
        events[0]["Summary"]
            .as_str()
            .expect("summary")
            .starts_with("Closed"),
        "{events:?}"
    );
    assert!(
        events.last().expect("first")["Summary"]
            .as_str()
            .expect("summary")
            .starts_with("Opened")
    );
    let graph = cli(
        &collector,
        &[
            "get-insight-impact-graph",
            "--insight-id",
            id,
            "--start-time",
            &start,
            "--end-time",
            &end,
        ],
    );
    let names: Vec<&str> = graph["Services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["Name"].as_str().expect("name"))
        .collect();
    assert!(
        names.contains(&"pay") && names.contains(&"front"),
        "{graph:#}"
    );
    let (status, body) = collector.post("/GetInsight", "{}");
    assert_eq!(status, 404, "{body}");
}

/// The insights of the backfilled hour as the CLI lists them through `collector`, once both
/// are found: `(root cause, state)` in start order.
fn found(collector: &Collector, first: f64) -> Vec<(String, String)> {
    summaries(collector, first)
        .iter()
        .map(root_and_state)
        .collect()
}

/// An insight summary's root-cause service and state.
pub(crate) fn root_and_state(summary: &Value) -> (String, String) {
    (
        summary["RootCauseServiceId"]["Name"]
            .as_str()
            .expect("root")
            .to_owned(),
        summary["State"].as_str().expect("state").to_owned(),
    )
}

/// The insight summaries of the backfilled hour through `collector`, once at least two are
/// found, in start order.
fn summaries(collector: &Collector, first: f64) -> Vec<Value> {
    let (start, end) = (
        format!("{}", first as i64),
        format!("{}", now() as i64 + 60),
    );
    let mut list = roentgen_tests::eventually(std::time::Duration::from_secs(60), || {
        let v = cli(
            collector,
            &[
                "get-insight-summaries",
                "--start-time",
                &start,
                "--end-time",
                &end,
            ],
        );
        let list = v["InsightSummaries"].as_array().expect("list").clone();
        (list.len() >= 2).then_some(list)
    })
    .expect("two insights found");
    list.sort_by(|a, b| {
        let time = |v: &Value| v["StartTime"].as_f64().expect("start");
        time(a).total_cmp(&time(b))
    });
    list
}

fn rounds(collector: &Collector) -> u64 {
    let text = roentgen_tests::http::request(&collector.address, "GET", "/metrics", &[], "").body;
    roentgen_tests::daemon::metric(&text, "roentgen_web_alarm_rounds_total")
}

/// Three collectors on one ClickHouse 26.9: one only receives; of the two others exactly one
/// holds the alarm lease and finds the insights (readable through any collector); when it dies
/// the other takes the lease over.
#[test]
fn on_clickhouse_one_collector_evaluates_and_another_takes_over_when_it_dies() {
    use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
    let server = LocalServer::start_engine(&Engine::chdb()).expect("ClickHouse 26.9 (chdb)");
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = [
        "--store",
        "clickhouse",
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        "roentgen",
    ];
    let with = |more: &[&'static str]| -> Vec<&str> {
        store.iter().copied().chain(more.iter().copied()).collect()
    };
    let sender = Collector::start(&dir.path().join("s"), &with(&["--alarm-evaluation", "off"]));
    let first = backfill(&sender);
    let mut evaluating = vec![
        Collector::start(&dir.path().join("a"), &with(&["--alarm-lease-secs", "3"])),
        Collector::start(&dir.path().join("b"), &with(&["--alarm-lease-secs", "3"])),
    ];
    assert_eq!(
        found(&sender, first),
        [
            ("pay".to_owned(), "CLOSED".to_owned()),
            ("inventory".to_owned(), "CLOSED".to_owned())
        ]
    );
    let holder = roentgen_tests::eventually(std::time::Duration::from_secs(30), || {
        match (rounds(&evaluating[0]), rounds(&evaluating[1])) {
            (a, 0) if a > 0 => Some(0),
            (0, b) if b > 0 => Some(1),
            _ => None,
        }
    })
    .expect("exactly one collector evaluates");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        rounds(&evaluating[1 - holder]),
        0,
        "the other waits while the lease is renewed"
    );
    evaluating.remove(holder).kill9();
    let took_over = roentgen_tests::eventually(std::time::Duration::from_secs(30), || {
        (rounds(&evaluating[0]) > 0).then_some(())
    });
    assert!(
        took_over.is_some(),
        "the other collector took the lease over"
    );
    assert_eq!(
        found(&evaluating[0], first).len(),
        2,
        "the same insights, not found twice"
    );
}
