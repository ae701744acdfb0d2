//! The evaluator over a real SQLite store and a real webhook receiver on loopback, with the
//! clock given to each tick: rounds, transitions, deliveries, retries, restarts and the lease.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::evaluator::{AlarmConfig, Evaluator};
use super::{AlarmRule, AlarmState, EventQuery, SaveMode};
use crate::metrics::Counters;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// An epoch minute far from any real data.
const M0: i64 = 30_000_000;
const SECRET: &str = "hook-secret";

/// What the receiver got: headers and body of each request.
type Got = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

struct Receiver {
    url: String,
    got: Got,
    status: Arc<AtomicU16>,
}

async fn receiver() -> Receiver {
    let got: Got = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let (g, s) = (got.clone(), status.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                g.lock().unwrap().push((headers, body));
                StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got, status }
}

/// The notifications received, checked against their signatures: `(delivery id, body)`.
fn received(r: &Receiver) -> Vec<(String, Value)> {
    r.got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| !body.is_empty())
        .map(|(headers, body)| {
            let signature = headers["x-roentgen-signature"].to_str().unwrap();
            let t: u64 = signature
                .strip_prefix("t=")
                .and_then(|s| s.split(',').next())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(signature, super::notify::signature(SECRET, t, body));
            (
                headers["x-roentgen-delivery"].to_str().unwrap().to_owned(),
                serde_json::from_slice(body).unwrap(),
            )
        })
        .collect()
}

/// One request of `front` calling `pay` at `start`: a fault of `pay`, or its latency.
fn request(n: u64, start: f64, fault: bool, latency: f64) -> Vec<String> {
    let trace_id = format!("1-{:08x}-{:024x}", start as u64, n + 1);
    let id = |k: u64| format!("{:016x}", (n << 4 | k) + 0x1000_0000_0000);
    let front = json!({
        "name": "front", "id": id(1), "trace_id": trace_id, "start_time": start,
        "end_time": start + latency + 0.01, "fault": fault,
        "http": {"request": {"method": "GET", "url": "http://front/x"}, "response": {"status": if fault { 502 } else { 200 }}},
        "subsegments": [{"name": "pay", "id": id(2), "namespace": "remote",
            "start_time": start + 0.001, "end_time": start + latency + 0.005, "fault": fault,
            "http": {"request": {"method": "POST", "url": "http://pay/charge"}, "response": {"status": if fault { 500 } else { 200 }}}}]
    });
    let pay = json!({
        "name": "pay", "id": id(3), "trace_id": trace_id, "parent_id": id(2),
        "start_time": start + 0.002, "end_time": start + latency + 0.004, "fault": fault,
        "http": {"request": {"method": "POST", "url": "http://pay/charge"}, "response": {"status": if fault { 500 } else { 200 }}}
    });
    vec![front.to_string(), pay.to_string()]
}

/// Ten requests in epoch minute `minute`, `faults` of them faulty, `pay` taking `latency`.
async fn minute(store: &dyn Store, minute: i64, faults: u64, latency: f64) {
    let mut docs = Vec::new();
    for k in 0..10u64 {
        let n = (minute as u64) * 100 + k;
        docs.extend(request(
            n,
            minute as f64 * 60.0 + k as f64 * 5.0,
            k < faults,
            latency,
        ));
    }
    store
        .put_documents(crate::test_support::prepared(&docs))
        .await
        .unwrap();
}

fn rule(json: Value) -> AlarmRule {
    serde_json::from_value(json).unwrap()
}

fn evaluator(store: &Arc<SqliteStore>) -> (Evaluator, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let config = AlarmConfig::new("http://dash.example:4000".to_owned());
    (
        Evaluator::new(store.clone(), config, counters.clone()),
        counters,
    )
}

/// `now` for the round evaluating the minutes before `M0 + m` (past the settle time).
fn at(m: i64) -> f64 {
    (M0 + m) as f64 * 60.0 + 20.0
}

async fn states(store: &dyn Store, name: &str) -> Vec<(u64, AlarmState, AlarmState)> {
    let mut events = store
        .alarm_events(EventQuery {
            alarm: Some(name.to_owned()),
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    events.reverse();
    events
        .into_iter()
        .map(|e| (e.seq, e.old_state, e.new_state))
        .collect()
}

#[tokio::test]
async fn a_fault_burst_raises_the_alarm_and_recovery_clears_it_each_notified_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let hook = receiver().await;
    super::save(
        store.as_ref(),
        rule(json!({
            "Name": "pay-faults", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold",
            "Threshold": 0.2, "EntitySelectorExpression": "service(\"pay\")",
            "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
            "Webhooks": [{"Url": hook.url, "Secret": SECRET}]
        })),
        SaveMode::Create,
    )
    .await
    .unwrap();
    for m in 0..20 {
        let faults = if (10..13).contains(&m) { 6 } else { 0 };
        minute(store.as_ref(), M0 + m, faults, 0.02).await;
    }
    let (mut ev, counters) = evaluator(&store);
    for m in 1..=20 {
        ev.tick(at(m)).await.unwrap();
    }
    use AlarmState::*;
    assert_eq!(
        states(store.as_ref(), "pay-faults").await,
        [(1, InsufficientData, Ok), (2, Ok, Alarm), (3, Alarm, Ok)]
    );
    let history = store
        .alarm_events(EventQuery {
            alarm: Some("pay-faults".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let alarm = history.iter().find(|e| e.new_state == Alarm).unwrap();
    // Periods 10 and 11 were the first two faulty ones: decided in the round of minute 12.
    assert_eq!(alarm.time, at(12));
    assert_eq!(alarm.window_end, (M0 + 12) as f64 * 60.0);
    assert_eq!(
        alarm
            .decision
            .datapoints
            .iter()
            .map(|d| d.value)
            .collect::<Vec<_>>(),
        [Some(0.0), Some(0.6), Some(0.6)]
    );
    assert!(
        alarm.decision.reason.contains("2 of the last 3 periods"),
        "{}",
        alarm.decision.reason
    );
    let recovered = history.iter().find(|e| e.seq == 3).unwrap();
    assert_eq!(recovered.time, at(15));
    assert!(
        history
            .iter()
            .all(|e| e.pending.is_empty() && e.deliveries.len() == 1 && e.deliveries[0].delivered)
    );
    let got = received(&hook);
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["pay-faults/1", "pay-faults/2", "pay-faults/3"]);
    let (_, body) = &got[1];
    assert_eq!(body["NewState"], "ALARM");
    assert_eq!(body["OldState"], "OK");
    assert_eq!(body["Threshold"], 0.2);
    assert!(
        body["Link"]
            .as_str()
            .unwrap()
            .starts_with("http://dash.example:4000/analytics?window=custom")
    );
    assert_eq!(counters.alarm_notifications_sent.load(Ordering::Relaxed), 3);
    assert_eq!(counters.alarm_transitions.load(Ordering::Relaxed), 3);
    assert_eq!(counters.alarm_rounds.load(Ordering::Relaxed), 20);
}

#[tokio::test]
async fn undelivered_notifications_are_retried_and_survive_a_restart_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let hook = receiver().await;
    hook.status.store(503, Ordering::SeqCst);
    super::save(
        store.as_ref(),
        rule(json!({
            "Name": "pay-faults", "Metric": "FaultRate", "Comparison": "GreaterThanOrEqualToThreshold",
            "Threshold": 0.5, "EntitySelectorExpression": "service(\"pay\")",
            "TreatMissingData": "Ignore",
            "Webhooks": [{"Url": hook.url, "Secret": SECRET}]
        })),
        SaveMode::Create,
    )
    .await
    .unwrap();
    minute(store.as_ref(), M0, 5, 0.02).await;
    let (mut first, counters) = evaluator(&store);
    first.tick(at(1)).await.unwrap();
    first.tick(at(1) + 1.0).await.unwrap(); // retry not due yet: no second attempt
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    first.tick(at(1) + 10.0).await.unwrap(); // due: a second failed attempt
    assert_eq!(hook.got.lock().unwrap().len(), 2);
    assert_eq!(
        counters.alarm_notification_failures.load(Ordering::Relaxed),
        2
    );
    let pending = store
        .alarm_events(EventQuery {
            pending_only: true,
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the ALARM notification waits in the store"
    );
    drop(first); // the collector stops without a word

    hook.status.store(200, Ordering::SeqCst);
    let (mut second, _) = evaluator(&store);
    second.tick(at(1) + 20.0).await.unwrap();
    assert!(
        !second.holds_lease(),
        "the first collector's lease still runs"
    );
    second.tick(at(1) + 45.0).await.unwrap();
    assert!(second.holds_lease());
    for k in 0..5 {
        second.tick(at(2) + f64::from(k)).await.unwrap();
    }
    let got = received(&hook);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(id, _)| id == "pay-faults/1"));
    assert_eq!(got[2].1["NewState"], "ALARM");
    assert_eq!(
        states(store.as_ref(), "pay-faults").await,
        [(1, AlarmState::InsufficientData, AlarmState::Alarm)],
        "the restarted collector read the state back: no second transition"
    );
    let event = &store
        .alarm_events(EventQuery {
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap()[0];
    assert!(event.pending.is_empty());
    assert_eq!(
        event.deliveries[0].attempts, 1,
        "the second collector's first attempt"
    );
}

#[tokio::test]
async fn one_collector_at_a_time_evaluates_and_the_other_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (mut a, _) = evaluator(&store);
    let (mut b, _) = evaluator(&store);
    let t = at(0);
    a.tick(t).await.unwrap();
    b.tick(t + 1.0).await.unwrap();
    assert!(a.holds_lease() && !b.holds_lease());
    for k in 1..10 {
        a.tick(t + f64::from(k) * 5.0).await.unwrap();
        b.tick(t + f64::from(k) * 5.0 + 1.0).await.unwrap();
        assert!(a.holds_lease() && !b.holds_lease(), "a renews its lease");
    }
    // `a` stops; `b` takes over once the lease has run out.
    b.tick(t + 70.0).await.unwrap();
    assert!(!b.holds_lease(), "a's last renewal (t + 40) runs 30 s");
    b.tick(t + 80.0).await.unwrap();
    assert!(b.holds_lease());
    a.tick(t + 81.0).await.unwrap();
    assert!(!a.holds_lease(), "a learns it lost the lease");
}

#[tokio::test]
async fn a_latency_regression_leaves_the_learned_band() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    super::save(
        store.as_ref(),
        rule(json!({
            "Name": "pay-latency", "Metric": "P90", "Comparison": "GreaterThanUpperBand",
            "EntitySelectorExpression": "edge(\"front\", \"pay\")", "BandWidth": 3
        })),
        SaveMode::Create,
    )
    .await
    .unwrap();
    for m in 0..40 {
        let latency = if m >= 35 {
            0.400
        } else {
            0.020 + 0.002 * (m % 3) as f64
        };
        minute(store.as_ref(), M0 + m, 0, latency).await;
    }
    let (mut ev, _) = evaluator(&store);
    let mut decided = Vec::new();
    for m in [5, 30, 35, 36] {
        let events = ev.evaluate(M0 + m, at(m)).await.unwrap();
        decided.push(events.iter().map(|e| e.new_state).collect::<Vec<_>>());
    }
    use AlarmState::*;
    // 5 minutes of history is too little to learn from (the initial state stays); then
    // normal; then the regression.
    assert_eq!(decided, [vec![], vec![Ok], vec![], vec![Alarm]]);
    let alarm = &store
        .alarm_events(EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap()[0];
    let band = alarm.decision.band.unwrap();
    assert!(band.upper < 0.1 && band.median > 0.015, "{band:?}");
    assert!(
        alarm.decision.reason.contains("above the band"),
        "{}",
        alarm.decision.reason
    );
}

#[tokio::test]
async fn rules_from_a_file_are_checked_and_saved_keeping_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alarms.json");
    std::fs::write(
        &file,
        r#"{"AlarmRules": [{"Name": "a", "Metric": "P99", "Comparison": "GreaterThanThreshold",
            "Threshold": 1, "Webhooks": [{"Url": "http://127.0.0.1:9/x", "Secret": "s"}]}]}"#,
    )
    .unwrap();
    let rules = super::AlarmFile::read(&file).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    super::save(&store, rules[0].clone(), SaveMode::Upsert)
        .await
        .unwrap();
    // Sent back as shown (no secret): the stored secret stays.
    let mut shown: AlarmRule = serde_json::from_value(rules[0].redacted()).unwrap_or_else(|_| {
        let mut r = rules[0].clone();
        r.webhooks[0].secret = None;
        r
    });
    shown.webhooks[0].secret = None;
    super::save(&store, shown, SaveMode::Upsert).await.unwrap();
    let stored = store.alarm_rules().await.unwrap();
    assert_eq!(stored[0].rule.webhooks[0].secret.as_deref(), Some("s"));
    std::fs::write(&file, r#"{"AlarmRules": [{"Name": "a b", "Metric": "P99", "Comparison": "GreaterThanThreshold", "Threshold": 1}]}"#).unwrap();
    let err = super::AlarmFile::read(&file).unwrap_err();
    assert!(
        err.contains("alarms.json: rule \"a b\": Name must be"),
        "{err}"
    );
}

#[tokio::test]
async fn a_group_rule_counts_only_the_groups_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store
        .put_group(
            crate::store::StoredGroup {
                name: "broken".to_owned(),
                filter_expression: Some("fault".to_owned()),
                insights: None,
            },
            true,
        )
        .await
        .unwrap();
    // Entry requests per second of the group's traces: 6 faulty traces a minute is 0.1/s;
    // all traffic (10 a minute, 0.17/s) would breach every minute.
    super::save(
        store.as_ref(),
        rule(json!({
            "Name": "broken-traffic", "Metric": "RequestRate", "Comparison": "GreaterThanThreshold",
            "Threshold": 0.05, "GroupName": "broken"
        })),
        SaveMode::Create,
    )
    .await
    .unwrap();
    for m in 0..6 {
        minute(store.as_ref(), M0 + m, if m == 3 { 6 } else { 0 }, 0.02).await;
    }
    let (mut ev, _) = evaluator(&store);
    let mut decided = Vec::new();
    for m in 1..=6 {
        let events = ev.evaluate(M0 + m, at(m)).await.unwrap();
        decided.push(events.iter().map(|e| e.new_state).collect::<Vec<_>>());
    }
    use AlarmState::*;
    assert_eq!(
        decided,
        [vec![Ok], vec![], vec![], vec![Alarm], vec![Ok], vec![]]
    );
    // A rule on a group that does not exist says so.
    store.delete_group("broken".to_owned()).await.unwrap();
    let events = ev.evaluate(M0 + 7, at(7)).await.unwrap();
    assert_eq!(events[0].new_state, InsufficientData);
    assert!(
        events[0].decision.reason.contains("group broken"),
        "{}",
        events[0].decision.reason
    );
}

#[tokio::test]
async fn the_lease_holder_finds_an_insight_with_its_evidence_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    for m in 0..36 {
        let faults = if (30..33).contains(&m) { 6 } else { 0 };
        minute(store.as_ref(), M0 + m, faults, 0.02).await;
    }
    let (mut ev, counters) = evaluator(&store);
    ev.evaluate(M0 + 36, at(36)).await.unwrap();
    let found = ev.detect(M0 + 36, at(36)).await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let insight = &found[0];
    assert_eq!(insight.root_cause.name, "pay");
    assert_eq!(insight.state, crate::insights::InsightState::Closed);
    assert!(!insight.top_traces.is_empty());
    for id in &insight.top_traces {
        // Trace ids carry their start: every piece of evidence is from the burst.
        let epoch = i64::from_str_radix(&id[2..10], 16).unwrap();
        assert!(((M0 + 30) * 60..(M0 + 33) * 60).contains(&epoch), "{id}");
    }
    let stored = store.insights(0.0, f64::MAX, None, 10).await.unwrap();
    assert_eq!(stored, found);
    assert_eq!(counters.insights_opened.load(Ordering::Relaxed), 1);
    assert_eq!(counters.insights_closed.load(Ordering::Relaxed), 1);
    // A later round finds nothing new, and does not find it again.
    assert!(ev.detect(M0 + 37, at(37)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_band_rule_knows_what_is_usual_at_this_hour_from_yesterday() {
    let rule_json = json!({
        "Name": "pay-latency", "Metric": "P90", "Comparison": "GreaterThanUpperBand",
        "EntitySelectorExpression": "service(\"pay\")"
    });
    let day = 1_440;
    let mut decided = Vec::new();
    for with_yesterday in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        super::save(store.as_ref(), rule(rule_json.clone()), SaveMode::Create)
            .await
            .unwrap();
        if with_yesterday {
            // Yesterday `pay` was slow from minute 60 to 160: a daily batch.
            for m in 40..180 {
                let slow = (60..160).contains(&m);
                minute(
                    store.as_ref(),
                    M0 - day + m,
                    0,
                    if slow { 0.4 } else { 0.02 },
                )
                .await;
            }
        }
        for m in 0..104 {
            minute(store.as_ref(), M0 + m, 0, if m >= 100 { 0.4 } else { 0.02 }).await;
        }
        let (mut ev, _) = evaluator(&store);
        let events = ev.evaluate(M0 + 103, at(103)).await.unwrap();
        decided.push(events.iter().map(|e| e.new_state).collect::<Vec<_>>());
    }
    use AlarmState::*;
    assert_eq!(
        decided,
        [vec![Alarm], vec![Ok]],
        "slow at this hour yesterday too: usual"
    );
}

#[tokio::test]
async fn the_number_of_rules_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let named = |name: &str| {
        rule(
            json!({"Name": name, "Metric": "P99", "Comparison": "GreaterThanThreshold", "Threshold": 1}),
        )
    };
    for name in ["a", "b"] {
        super::save_within(&store, named(name), SaveMode::Create, 2)
            .await
            .unwrap();
    }
    let refused = super::save_within(&store, named("c"), SaveMode::Upsert, 2)
        .await
        .unwrap_err();
    assert!(matches!(refused, super::SaveError::Limit(2)), "{refused}");
    assert!(refused.to_string().contains("at most 2 alarm rules"));
    // Replacing one of them is still allowed.
    super::save_within(&store, named("a"), SaveMode::Update, 2)
        .await
        .unwrap();
    super::save_within(&store, named("b"), SaveMode::Upsert, 2)
        .await
        .unwrap();
}
