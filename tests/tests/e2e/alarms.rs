//! Alarms end to end: a steady three-service workload sent to the real collector's API (after
//! half an hour of history), a fault burst in one downstream and a latency regression on one
//! edge at once, and a webhook receiver on loopback. Each alarm's ALARM and its OK after
//! recovery arrive once, with valid signatures; an ALARM the receiver refused survives a
//! SIGKILL and restart of the collector and is delivered by the restarted one, once. Each
//! injection is also an insight naming its own root cause, opened and closed, that the AWS CLI
//! lists.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use roentgen_tests::web::Collector;
use roentgen_tests::webhook::{Hit, Receiver};
use serde_json::{Value, json};

const SECRET: &str = "e2e-hook-secret";

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The delivery id and body of a notification whose signature checks out.
fn verified(hit: &Hit) -> (String, Value) {
    let signature = &hit.headers["x-roentgen-signature"];
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .expect("t=…,v1=…");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hit.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        v1,
        expected,
        "signature of {}",
        String::from_utf8_lossy(&hit.body)
    );
    (
        hit.headers["x-roentgen-delivery"].clone(),
        serde_json::from_slice(&hit.body).expect("JSON body"),
    )
}

/// One request at `start`: `front` calls `pay` and `inventory`; with `faulty`, `pay` faults
/// on 6 of 10 requests, with `slow`, `inventory` takes 500 ms instead of 20.
pub(crate) fn request_at(n: u64, start: f64, faulty: bool, slow: bool) -> Vec<String> {
    let trace_id = format!("1-{:08x}-{:024x}", start as u64, 0xa1a2_0000_0000 + n);
    let id = |k: u64| format!("{:016x}", 0x1000_0000_0000 + (n << 4) + k);
    let fault = faulty && n % 10 < 6;
    let slow = if slow { 0.5 } else { 0.02 };
    let status = |bad: bool| if bad { 500 } else { 200 };
    let front = json!({
        "name": "front", "id": id(1), "trace_id": trace_id, "start_time": start,
        "end_time": start + slow + 0.03, "fault": fault,
        "http": {"request": {"method": "GET", "url": "http://front/buy"}, "response": {"status": status(fault)}},
        "subsegments": [
            {"name": "pay", "id": id(2), "namespace": "remote", "start_time": start + 0.001,
             "end_time": start + 0.011, "fault": fault,
             "http": {"request": {"method": "POST", "url": "http://pay/charge"}, "response": {"status": status(fault)}}},
            {"name": "inventory", "id": id(3), "namespace": "remote", "start_time": start + 0.012,
             "end_time": start + 0.012 + slow,
             "http": {"request": {"method": "GET", "url": "http://inventory/stock"}, "response": {"status": 200}}}
        ]
    });
    let pay = json!({
        "name": "pay", "id": id(4), "trace_id": trace_id, "parent_id": id(2),
        "start_time": start + 0.002, "end_time": start + 0.010, "fault": fault,
        "http": {"request": {"method": "POST", "url": "http://pay/charge"}, "response": {"status": status(fault)}}
    });
    let inventory = json!({
        "name": "inventory", "id": id(5), "trace_id": trace_id, "parent_id": id(3),
        "start_time": start + 0.013, "end_time": start + 0.011 + slow,
        "http": {"request": {"method": "GET", "url": "http://inventory/stock"}, "response": {"status": 200}}
    });
    vec![front.to_string(), pay.to_string(), inventory.to_string()]
}

/// Five requests a second to whichever collector `target` names, until `stop`.
fn workload(target: Arc<Mutex<String>>, incident: Arc<AtomicU8>, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let on = incident.load(Ordering::SeqCst) == 1;
        let docs = request_at(n, now(), on, on);
        let address = target.lock().expect("target").clone();
        // While the collector restarts the requests fail; the alarms do not depend on them.
        let _ =
            roentgen_tests::web::post_to(&address, "/TraceSegments", &Collector::put_body(&docs));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn history(collector: &Collector) -> Vec<Value> {
    let (status, body) = collector.post("/GetAlarmHistory", "{\"MaxResults\": 100}");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    body["AlarmEvents"].as_array().expect("events").clone()
}

fn sleep_until(t: f64) {
    let left = t - now();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}

#[test]
fn alarms_notify_a_fault_burst_and_a_latency_regression_once_each_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = Receiver::start();
    let rules = dir.path().join("alarms.json");
    std::fs::write(
        &rules,
        json!({ "AlarmRules": [
            {"Name": "pay-faults", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold",
             "Threshold": 0.3, "EntitySelectorExpression": "service(\"pay\")",
             "Webhooks": [{"Url": hook.url, "Secret": SECRET}]},
            {"Name": "inventory-latency", "Metric": "P90", "Comparison": "GreaterThanThreshold",
             "Threshold": 0.25, "EntitySelectorExpression": "edge(\"front\", \"inventory\")",
             "Webhooks": [{"Url": hook.url, "Secret": SECRET}]}
        ]})
        .to_string(),
    )
    .expect("rules file");
    let data = dir.path().join("data");
    let args = [
        "--alarms",
        rules.to_str().expect("path"),
        "--alarm-lease-secs",
        "3",
    ];
    let collector = Collector::start(&data, &args);
    // Half an hour of ordinary traffic already happened: insight detection learns from it.
    let this_minute = (now() / 60.0).floor() * 60.0;
    for m in 1..=30u32 {
        let minute = this_minute - f64::from(m) * 60.0;
        let docs: Vec<String> = (0..15u32)
            .flat_map(|k| {
                request_at(
                    1_000_000 + u64::from(m * 100 + k),
                    minute + f64::from(k) * 4.0,
                    false,
                    false,
                )
            })
            .collect();
        let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
        assert_eq!(status, 200, "{body}");
    }
    let target = Arc::new(Mutex::new(collector.address.clone()));
    let incident = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (t, i, s) = (target.clone(), incident.clone(), stop.clone());
        std::thread::spawn(move || workload(t, i, s))
    };

    // The incident fills two whole minutes, B and B + 1 (an insight needs two).
    let b = ((now() + 5.0) / 60.0).ceil() * 60.0;
    sleep_until(b);
    incident.store(1, Ordering::SeqCst);
    let ends = {
        let incident = incident.clone();
        std::thread::spawn(move || {
            sleep_until(b + 120.0);
            incident.store(0, Ordering::SeqCst);
        })
    };
    sleep_until(b + 60.0);
    // The ALARMs (decided about 15 s after B ends) are refused for now.
    hook.answer(503);
    let alarmed = roentgen_tests::eventually(Duration::from_secs(90), || {
        let events = history(&collector);
        let pending = events
            .iter()
            .filter(|e| {
                e["NewState"] == "ALARM" && !e["Pending"].as_array().expect("pending").is_empty()
            })
            .count();
        let tried = hook.hits().iter().filter(|h| h.status == 503).count();
        (pending == 2 && tried >= 2).then_some(events)
    })
    .expect("both alarms decided, their notifications refused and pending");
    assert!(
        alarmed
            .iter()
            .all(|e| e["NewState"] != "ALARM" || e["Time"].as_f64().expect("time") < b + 120.0),
        "decided within two periods of the burst's start: {alarmed:?}"
    );
    collector.kill9();

    hook.answer(200);
    let collector = Collector::start(&data, &args);
    *target.lock().expect("target") = collector.address.clone();
    // Both OKs, decided once minute B + 1 (healthy) settles, arrive after the delivered ALARMs.
    // Delivered notifications of `name` from state `old` (any when empty) to `new`.
    let delivered = |name: &str, old: &str, new: &str| {
        hook.hits()
            .iter()
            .filter(|h| h.status == 200)
            .map(verified)
            .filter(|(_, b)| {
                b["Alarm"] == name
                    && b["NewState"] == new
                    && (old.is_empty() || b["OldState"] == old)
            })
            .count()
    };
    let recovered = roentgen_tests::eventually(Duration::from_secs(150), || {
        let done = ["pay-faults", "inventory-latency"]
            .iter()
            .all(|name| delivered(name, "ALARM", "OK") >= 1);
        done.then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    load.join().expect("workload");
    assert!(
        recovered.is_some(),
        "hits: {:#?}",
        hook.hits()
            .iter()
            .map(|h| (h.status, String::from_utf8_lossy(&h.body).into_owned()))
            .collect::<Vec<_>>()
    );
    for name in ["pay-faults", "inventory-latency"] {
        assert_eq!(
            delivered(name, "", "ALARM"),
            1,
            "{name}: ALARM delivered once"
        );
        assert_eq!(
            delivered(name, "ALARM", "OK"),
            1,
            "{name}: OK after recovery delivered once"
        );
        let ids: Vec<String> = hook
            .hits()
            .iter()
            .filter(|h| h.status == 200)
            .map(verified)
            .filter(|(_, b)| b["Alarm"] == name)
            .map(|(id, _)| id)
            .collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique, "{name}: no notification delivered twice");
    }
    let alarm = hook
        .hits()
        .iter()
        .filter(|h| h.status == 200)
        .map(verified)
        .find(|(_, b)| b["Alarm"] == "pay-faults" && b["NewState"] == "ALARM")
        .expect("pay ALARM")
        .1;
    assert!(
        alarm["Reason"]
            .as_str()
            .expect("reason")
            .contains("FaultRate"),
        "{alarm}"
    );
    assert!(
        alarm["Link"]
            .as_str()
            .expect("link")
            .contains("/analytics?window=custom"),
        "{alarm}"
    );
    let (_, rules) = collector.post("/GetAlarmRules", "{}");
    assert!(rules.contains("\"State\":\"OK\""), "{rules}");
    ends.join().expect("incident timer");

    // Each injection is an insight naming its own root cause, opened and closed; the AWS CLI
    // lists them.
    let (start, end) = (
        format!("{}", b as i64 - 600),
        format!("{}", now() as i64 + 600),
    );
    let insights = roentgen_tests::eventually(Duration::from_secs(150), || {
        let (ok, out, err) = roentgen_tests::web::aws_xray(
            &collector,
            None,
            "us-east-1",
            &[
                "get-insight-summaries",
                "--start-time",
                &start,
                "--end-time",
                &end,
            ],
        );
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).expect("CLI JSON");
        let mut list: Vec<(String, String, f64)> = v["InsightSummaries"]
            .as_array()
            .expect("list")
            .iter()
            .map(|i| {
                let (root, state) = crate::insights::root_and_state(i);
                (root, state, i["StartTime"].as_f64().expect("start"))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        (list.len() == 2 && list.iter().all(|i| i.1 == "CLOSED")).then_some(list)
    })
    .expect("two closed insights");
    assert_eq!(insights[0].0, "inventory", "{insights:?}");
    assert_eq!(insights[1].0, "pay", "{insights:?}");
    assert!(
        insights.iter().all(|i| i.2 == b),
        "both began with the incident: {insights:?}"
    );
}
