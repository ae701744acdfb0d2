//! The analytics page in headless Chromium over a real collector: a known set's top root
//! cause and annotation values, a value refining the set, and a faulty window compared with a
//! healthy one putting the injected cause first.

use roentgen_tests::web::Collector;
use roentgen_web::dashboard::{format_time, url_encode};
use serde_json::json;

use crate::dashboard::{Browser, now};

/// Shop traces that return 200 (n % 20 outside 0..=4), all in warehouse `wh-0`.
const HEALTHY: [u64; 8] = [8, 12, 16, 28, 32, 36, 48, 52];
/// Four whose `orders` faults (n % 20 == 0) and four that return 200.
const FAULTY: [u64; 8] = [20, 40, 60, 80, 68, 72, 76, 88];

fn window(from: f64, to: f64) -> String {
    format!(
        "window=custom&start={}&end={}",
        url_encode(&format_time(from)),
        url_encode(&format_time(to))
    )
}

fn rows(browser: &Browser, dimension: &str, cell: &str) -> serde_json::Value {
    browser.wait_for(&format!(
        "const rows = document.querySelectorAll('#breakdown-{dimension} tbody tr'); \
         return rows.length ? Array.from(rows).map(r => r.dataset.value + '=' + r.querySelector('{cell}').textContent.trim()) : null;"
    ))
}

#[test]
fn analytics_shows_a_sets_causes_and_a_comparison_puts_the_injected_cause_first() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let t0 = now().floor();
    let mut docs = Vec::new();
    for (i, n) in HEALTHY.iter().enumerate() {
        docs.extend(roentgen_web::synth::shop_trace(
            *n,
            t0 - 1500.0 + i as f64 * 10.0,
        ));
    }
    for (i, n) in FAULTY.iter().enumerate() {
        docs.extend(roentgen_web::synth::shop_trace(
            *n,
            t0 - 500.0 + i as f64 * 10.0,
        ));
    }
    let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
    assert_eq!(status, 200, "{body}");
    let base = collector.endpoint_url();
    let browser = Browser::start();

    // The faulty window alone: orders is the only fault root cause; the tiers as stored.
    let faulty = window(t0 - 600.0, t0 + 60.0);
    browser.goto(&format!("{base}/analytics?{faulty}"));
    assert_eq!(
        rows(&browser, "FaultRootCauseService", ".count"),
        json!(["orders=4"])
    );
    assert_eq!(
        rows(&browser, "Annotation-tier", ".count"),
        json!(["bronze=3", "silver=3", "gold=2"])
    );
    browser.screenshot("analytics.png");

    // A drag across bars narrows the set to their range: here, 10 ms to 200 ms holds them all.
    browser.eval(
        "const bars = document.querySelectorAll('#analytics-histogram a'); \
         const ev = t => new MouseEvent(t, {bubbles: true, cancelable: true}); \
         bars[4].querySelector('.hitbar').dispatchEvent(ev('mousedown')); \
         bars[7].querySelector('.hitbar').dispatchEvent(ev('mouseup')); return true;",
    );
    let narrowed = browser.wait_for(
        "return location.search.includes('responsetime') ? [document.querySelector('#filter').value, document.querySelector('#set-sizes').textContent] : null",
    );
    assert_eq!(
        narrowed[0],
        json!("responsetime >= 0.01 AND responsetime <= 0.2")
    );
    assert!(
        narrowed[1].as_str().unwrap().contains("(8 traces)"),
        "{narrowed}"
    );
    browser.goto(&format!("{base}/analytics?{faulty}"));
    rows(&browser, "FaultRootCauseService", ".count");

    // A value narrows the set to it.
    browser.click("#breakdown-FaultRootCauseService tbody tr .refine");
    let sizes = browser.wait_for(
        "return location.search.includes('rootcause') ? document.querySelector('#set-sizes').textContent : null",
    );
    assert!(sizes.as_str().unwrap().contains("(4 traces)"), "{sizes}");
    let filter = browser.eval("return document.querySelector('#filter').value");
    assert_eq!(
        filter,
        json!("rootcause.fault.service { last AND name = \"orders\" }")
    );

    // The faulty window (B) against the healthy one (A): the injected cause leads.
    let healthy = window(t0 - 1800.0, t0 - 900.0);
    browser.goto(&format!(
        "{base}/analytics?{healthy}&compare=window&b_start={}&b_end={}",
        url_encode(&format_time(t0 - 600.0)),
        url_encode(&format_time(t0 + 60.0))
    ));
    let first = browser.wait_for(
        "const t = document.querySelector('#breakdowns table.breakdown'); \
         return t ? [t.dataset.dimension, t.querySelector('tbody tr').dataset.value, t.querySelector('tbody tr .difference').textContent] : null",
    );
    assert_eq!(
        first,
        json!(["FaultRootCauseService", "orders", "+50.0 pts"])
    );
    let sizes = browser.eval("return document.querySelector('#set-sizes').textContent");
    let sizes = sizes.as_str().unwrap();
    assert!(
        sizes.contains("8 traces") && sizes.contains("B:"),
        "{sizes}"
    );
    browser.screenshot("analytics-compare.png");
}

fn trace_id(docs: &[String]) -> String {
    let v: serde_json::Value = serde_json::from_str(&docs[0]).expect("a JSON document");
    v["trace_id"].as_str().expect("a trace id").to_owned()
}

/// A slow trace against a fast one of the same route: the slow subsegment leads; without a
/// second trace, the typical trace of the entry point (the median response time) is chosen.
#[test]
fn comparing_two_traces_puts_the_slow_subsegment_first() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let t0 = now().floor() - 120.0;
    // Shop trace n: its DynamoDB call takes 10 ms + 11 ms × (n % 7); all return 200.
    let traces: Vec<(u64, Vec<String>)> = [14, 13, 8, 9, 10]
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, roentgen_web::synth::shop_trace(n, t0 + i as f64 * 5.0)))
        .collect();
    let docs: Vec<String> = traces.iter().flat_map(|(_, d)| d.clone()).collect();
    let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
    assert_eq!(status, 200, "{body}");
    let id = |n: u64| trace_id(&traces.iter().find(|(k, _)| *k == n).unwrap().1);
    let (fast, slow) = (id(14), id(13));
    let base = collector.endpoint_url();
    let browser = Browser::start();

    browser.goto(&format!("{base}/traces/{fast}"));
    browser.type_into("#compare-with input[name=b]", &slow);
    browser.click("#compare-with button");
    let first = browser.wait_for(
        "const r = location.pathname === '/compare' && document.querySelector('#compare-rows tbody tr'); \
         return r ? [r.dataset.path, r.querySelector('.own').textContent] : null",
    );
    assert_eq!(
        first,
        json!(["frontend › orders › orders › DynamoDB", "+66 ms"])
    );
    let total = browser.eval("return document.querySelector('#total-difference').textContent");
    assert_eq!(total, json!("+66 ms"));
    browser.screenshot("compare.png");

    // The typical trace of frontend for the slow one: median of the other four (n = 9).
    browser.goto(&format!("{base}/compare?a={slow}"));
    let b = browser
        .wait_for("const b = document.querySelector('#b-id'); return b ? b.textContent : null");
    assert_eq!(b, json!(id(9)));
}
