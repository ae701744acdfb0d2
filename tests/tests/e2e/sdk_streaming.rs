//! A long job traced by the SDK (in this process) through the real daemon to the real
//! collector: 10,000 steps, each with a child, streamed in pieces as they finish so the
//! app holds at most a threshold of them, and stored whole.

use std::time::Duration;

use roentgen_sdk::recorder::{Recorder, RecorderConfig};
use roentgen_sdk::sampling::Rules;
use roentgen_tests::daemon::Daemon;
use roentgen_tests::eventually;
use roentgen_tests::web::Collector;
use serde_json::Value;

/// How many entities named `name` a document holds, at any depth.
fn named(doc: &Value, name: &str) -> usize {
    let own = usize::from(doc["name"] == name);
    own + doc["subsegments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| named(s, name))
        .sum::<usize>()
}

#[test]
fn a_10000_step_job_keeps_bounded_memory_and_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    // Each of the 10,000 steps is streamed as a document of its own: more than the collector's
    // default cap of 10,000 documents per trace, which an operator raises for such jobs.
    let collector = Collector::start(dir.path(), &["--max-trace-documents", "20000"]);
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "200"]);
    let mut config = RecorderConfig::new(daemon.udp.parse().unwrap());
    config.rules =
        Rules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#).unwrap();
    config.centralized_sampling = None;
    let recorder = Recorder::new(config).unwrap();

    let segment = recorder.begin_segment("nightly-batch", None);
    let trace_id = segment.trace_id().to_string();
    let mut most_held = 0;
    for i in 0..10_000 {
        let step = segment.begin_subsegment("step");
        step.begin_subsegment("io").end();
        step.end();
        most_held = most_held.max(segment.held_documents());
        // The daemon reads its socket on its own schedule: pace the bursts.
        if i % 200 == 199 {
            assert!(recorder.flush(Duration::from_secs(10)));
        }
    }
    segment.end();
    assert!(recorder.flush(Duration::from_secs(10)));
    assert!(most_held <= 100, "held {most_held} finished subsegments");
    let stats = recorder.stats();
    assert_eq!(
        (stats.dropped_queue_full, stats.send_errors),
        (0, 0),
        "{stats:?}"
    );

    let body = format!("{{\"TraceIds\":[\"{trace_id}\"]}}");
    let counts = eventually(Duration::from_secs(60), || {
        let (status, text) = collector.post("/Traces", &body);
        let v: Value = serde_json::from_str(&text).ok()?;
        let segments = v["Traces"][0]["Segments"].as_array()?.clone();
        let docs: Vec<Value> = segments
            .iter()
            .filter_map(|s| serde_json::from_str(s["Document"].as_str()?).ok())
            .collect();
        let count = |name| docs.iter().map(|d| named(d, name)).sum::<usize>();
        let counts = (segments.len(), count("step"), count("io"));
        (status == 200 && counts.1 == 10_000 && counts.2 == 10_000).then_some(counts)
    });
    assert_eq!(
        counts,
        Some((1, 10_000, 10_000)),
        "one segment with every step and its child; daemon: {}",
        daemon.metrics()
    );
}
