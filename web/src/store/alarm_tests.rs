//! The store suite's alarm part, run once per store: alarm rules, events, leases and insights
//! keep what was written, and retention lets go of only what nothing needs any more.

use std::time::Duration;

use super::{EventQuery, StoreError};
use crate::alarms::{AlarmEvent, AlarmState, Decision, StoredAlarm};
use crate::insights::Insight;
use crate::store::clickhouse::testing::{Backend, for_each_store, store};

for_each_store!(
    alarm_rules_events_and_leases_keep_what_was_written,
    retention_forgets_settled_alarm_history_and_closed_insights,
);

/// An alarm event that says `alarm/seq` as its reason.
fn event(alarm: &str, seq: u64, time: f64, pending: Vec<u32>) -> AlarmEvent {
    AlarmEvent {
        alarm: alarm.to_owned(),
        seq,
        time,
        old_state: AlarmState::Ok,
        new_state: AlarmState::Alarm,
        decision: Decision {
            state: AlarmState::Alarm,
            reason: format!("{alarm}/{seq}"),
            datapoints: Vec::new(),
            threshold: Some(0.1),
            band: None,
        },
        window_start: time - 60.0,
        window_end: time,
        pending,
        deliveries: Vec::new(),
    }
}

/// Alarm rules (created, replaced, deleted), events (replaced by sequence number, read newest
/// first, pending or latest only) and leases (one holder until it expires).
async fn alarm_rules_events_and_leases_keep_what_was_written(backend: Backend) {
    let (_place, store) = store(backend).await;
    let rule: crate::alarms::AlarmRule = serde_json::from_value(serde_json::json!({
        "Name": "a", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold", "Threshold": 0.1
    }))
    .unwrap();
    let stored = |created_at: f64, threshold: f64| {
        let mut rule = rule.clone();
        rule.threshold = Some(threshold);
        StoredAlarm {
            rule,
            created_at,
            modified_at: created_at + 1.0,
        }
    };
    store.put_alarm_rule(stored(10.0, 0.1), true).await.unwrap();
    assert!(matches!(
        store.put_alarm_rule(stored(20.0, 0.2), true).await,
        Err(StoreError::Exists(_))
    ));
    store
        .put_alarm_rule(stored(20.0, 0.3), false)
        .await
        .unwrap();
    let rules = store.alarm_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!((rules[0].created_at, rules[0].modified_at), (10.0, 21.0));
    assert_eq!(rules[0].rule.threshold, Some(0.3));
    store.delete_alarm_rule("a".to_owned()).await.unwrap();
    assert!(store.alarm_rules().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_alarm_rule("a".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.put_alarm_rule(stored(20.0, 0.3), false).await,
        Err(StoreError::NotFound(_))
    ));

    store
        .put_alarm_events(vec![
            event("a", 1, 100.0, vec![0]),
            event("b", 1, 150.0, vec![0]),
        ])
        .await
        .unwrap();
    store
        .put_alarm_events(vec![event("a", 2, 200.0, vec![0, 1])])
        .await
        .unwrap();
    let read = |q: EventQuery| {
        let store = store.clone();
        async move {
            store
                .alarm_events(q)
                .await
                .unwrap()
                .iter()
                .map(|e| format!("{}/{}:{}", e.alarm, e.seq, e.pending.len()))
                .collect::<Vec<_>>()
        }
    };
    let all = EventQuery {
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(read(all.clone()).await, ["a/2:2", "b/1:1", "a/1:1"]);
    assert_eq!(
        read(EventQuery {
            latest_only: true,
            ..all.clone()
        })
        .await,
        ["a/2:2", "b/1:1"]
    );
    assert_eq!(
        read(EventQuery {
            alarm: Some("a".into()),
            ..all.clone()
        })
        .await,
        ["a/2:2", "a/1:1"]
    );
    assert_eq!(
        read(EventQuery {
            limit: 1,
            ..all.clone()
        })
        .await,
        ["a/2:2"]
    );
    // A delivery recorded: the same event again, nothing pending.
    store
        .put_alarm_events(vec![event("a", 1, 100.0, Vec::new())])
        .await
        .unwrap();
    assert_eq!(
        read(EventQuery {
            pending_only: true,
            ..all.clone()
        })
        .await,
        ["a/2:2", "b/1:1"]
    );
    assert_eq!(read(all.clone()).await, ["a/2:2", "b/1:1", "a/1:0"]);

    let lease =
        |holder: &str, now: f64| store.take_lease("job".to_owned(), holder.to_owned(), now, 30.0);
    assert!(lease("x", 1000.0).await.unwrap());
    assert!(!lease("y", 1010.0).await.unwrap());
    assert!(lease("x", 1020.0).await.unwrap(), "renewed until 1050");
    assert!(!lease("y", 1045.0).await.unwrap());
    assert!(lease("y", 1051.0).await.unwrap(), "expired: taken over");
    assert!(!lease("x", 1052.0).await.unwrap());
    assert!(
        store
            .take_lease("other".to_owned(), "x".to_owned(), 1052.0, 30.0)
            .await
            .unwrap()
    );
    store
        .put_insights(vec![
            Insight::for_test("old", 100.0, Some(200.0)),
            Insight::for_test("open", 500.0, None),
        ])
        .await
        .unwrap();
    let ids = |list: Vec<crate::insights::Insight>| {
        list.into_iter().map(|i| i.insight_id).collect::<Vec<_>>()
    };
    let between = |start: f64, end: f64, id: Option<&str>| {
        store.insights(start, end, id.map(str::to_owned), 10)
    };
    assert_eq!(
        ids(between(0.0, 1000.0, None).await.unwrap()),
        ["open", "old"]
    );
    assert_eq!(ids(between(150.0, 160.0, None).await.unwrap()), ["old"]);
    assert_eq!(
        ids(between(5000.0, 6000.0, None).await.unwrap()),
        ["open"],
        "open goes on"
    );
    // By id over all time, as GetInsight and the map ask.
    assert_eq!(
        ids(between(f64::MIN, f64::MAX, Some("old")).await.unwrap()),
        ["old"]
    );
    assert!(
        between(f64::MIN, f64::MAX, Some("nope"))
            .await
            .unwrap()
            .is_empty()
    );
    // Closed later: replaced.
    store
        .put_insights(vec![Insight::for_test("open", 500.0, Some(800.0))])
        .await
        .unwrap();
    assert!(between(5000.0, 6000.0, None).await.unwrap().is_empty());
    assert_eq!(between(0.0, 1000.0, None).await.unwrap().len(), 2);
}

/// Retention lets an alarm event go once it is older than the cutoff, settled and not its
/// alarm's newest (every version of it: one written pending and then settled does not come
/// back pending), and an insight once it closed before the cutoff.
async fn retention_forgets_settled_alarm_history_and_closed_insights(backend: Backend) {
    let (_place, store) = store(backend).await;
    for batch in [
        vec![event("a", 1, 100.0, vec![0]), event("b", 1, 100.0, vec![])],
        vec![event("a", 1, 100.0, vec![]), event("a", 2, 200.0, vec![0])],
        vec![event("a", 3, 300.0, vec![]), event("a", 4, 5_000.0, vec![])],
    ] {
        store.put_alarm_events(batch).await.unwrap();
    }
    store
        .put_insights(vec![
            Insight::for_test("closed", 100.0, Some(200.0)),
            Insight::for_test("open", 100.0, None),
            Insight::for_test("recent", 900.0, Some(5_000.0)),
        ])
        .await
        .unwrap();
    assert_eq!(store.delete_before(1_000.0, 10).await.unwrap(), 0);
    let all = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    let events = || async {
        let mut seen: Vec<String> = store
            .alarm_events(all.clone())
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{}/{}:{}", e.alarm, e.seq, e.pending.len()))
            .collect();
        seen.sort();
        seen
    };
    let insights = || async {
        let mut ids: Vec<String> = store
            .insights(f64::MIN, f64::MAX, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.insight_id)
            .collect();
        ids.sort();
        ids
    };
    let want_events = ["a/2:1", "a/4:0", "b/1:0"];
    let want_insights = ["open", "recent"];
    // ClickHouse deletes in the background (a mutation): up to two minutes on a busy machine.
    let mut seen = (events().await, insights().await);
    for _ in 0..1_200 {
        if seen.0 == want_events && seen.1 == want_insights {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = (events().await, insights().await);
    }
    assert_eq!(seen.0, want_events, "pending, newest of each alarm, recent");
    assert_eq!(seen.1, want_insights, "open or closed after the cutoff");
    // Nothing more goes on the next sweep.
    store.delete_before(1_000.0, 10).await.unwrap();
    assert_eq!(events().await, want_events);
    assert_eq!(insights().await, want_insights);
}
