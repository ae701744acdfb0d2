//! Centralized sampling end to end: rules created and changed with the AWS CLI on the real
//! collector reach an app (the SDK's recorder, in this process) through the real daemon's
//! proxy and drive its decisions; the app's counts reach the collector
//! (`get-sampling-statistic-summaries`) and its sampled segments are stored.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roentgen_sdk::recorder::{Recorder, RecorderConfig};
use roentgen_sdk::sampling::SamplingRequest;
use roentgen_sdk::sampling::centralized::{Centralized, RuleSnapshot};
use roentgen_tests::daemon::Daemon;
use roentgen_tests::eventually;
use roentgen_tests::web::{Collector, aws_xray};
use serde_json::Value;

const SERVICE: &str = "e2e-sampled-shop";
const RULE: &str = "checkout";

fn aws(collector: &Collector, args: &[&str]) -> Value {
    let (ok, out, err) = aws_xray(collector, None, "us-east-1", args);
    assert!(ok, "aws xray {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn rule(state: &Centralized) -> Option<RuleSnapshot> {
    state.rules().into_iter().find(|r| r.name == RULE)
}

/// Requests made and sampled in each second of a run.
struct Run {
    seconds: Vec<(u64, u64)>,
}

impl Run {
    fn requests(&self) -> u64 {
        self.seconds.iter().map(|s| s.0).sum()
    }

    fn sampled(&self) -> u64 {
        self.seconds.iter().map(|s| s.1).sum()
    }

    /// What a reservoir of `quota` a second then `rate` samples on average, and the
    /// tolerance: five standard deviations of the rate's draws, plus one second's quota for
    /// the edges of seconds (the sampler's coarse clock and this one's may differ there).
    fn expected(&self, quota: u64, rate: f64) -> (f64, f64) {
        let reserved: u64 = self.seconds.iter().map(|s| s.0.min(quota)).sum();
        let rest = (self.requests() - reserved) as f64;
        let mean = reserved as f64 + rest * rate;
        (
            mean,
            5.0 * (rest * rate * (1.0 - rate)).sqrt() + quota as f64 + 1.0,
        )
    }
}

/// Paces `per_second` checkout requests for `seconds` seconds through the recorder; sampled
/// ones are ended (sent through the daemon to the collector).
fn drive(recorder: &Recorder, seconds: u64, per_second: u64) -> Run {
    let request = SamplingRequest {
        method: "POST",
        url_path: "/api/checkout",
        ..SamplingRequest::default()
    };
    let start = Instant::now();
    let mut counts = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    for i in 0..seconds * per_second {
        let due = start + Duration::from_secs_f64(i as f64 / per_second as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let segment = recorder.begin_segment_for(SERVICE, None, &request);
        let entry = counts.entry(second).or_default();
        entry.0 += 1;
        if segment.is_sampled() {
            entry.1 += 1;
        }
        segment.end();
    }
    Run {
        seconds: counts.into_values().collect(),
    }
}

#[test]
fn rules_created_and_changed_with_the_aws_cli_drive_an_apps_sampling_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let daemon = Daemon::start(&collector.endpoint_url(), &["--flush-interval-ms", "200"]);
    aws(
        &collector,
        &[
            "create-sampling-rule",
            "--sampling-rule",
            &format!(
                r#"{{"RuleName":"{RULE}","ResourceARN":"*","Priority":10,"FixedRate":0.1,
                "ReservoirSize":5,"ServiceName":"{SERVICE}","ServiceType":"*","Host":"*",
                "HTTPMethod":"POST","URLPath":"/api/checkout*","Version":1}}"#
            ),
        ],
    );
    let address = format!("tcp:{} udp:{}", daemon.tcp, daemon.udp);
    let config = RecorderConfig::from_vars(|name| {
        (name == "AWS_XRAY_DAEMON_ADDRESS").then(|| address.clone())
    })
    .unwrap();
    let recorder = Recorder::new(config).unwrap();
    let state = recorder.sampler().centralized_state().unwrap();

    // The rule arrives at once; its quota with the first target exchange (10 s).
    let quota = eventually(Duration::from_secs(30), || {
        rule(state).and_then(|r| r.quota).filter(|q| *q == 5)
    });
    assert_eq!(quota, Some(5), "{:?} {:?}", state.rules(), state.status());
    let first = drive(&recorder, 30, 100);
    let (mean, tolerance) = first.expected(5, 0.1);
    assert!(
        (first.sampled() as f64 - mean).abs() <= tolerance,
        "reservoir 5/s then 10% of {} requests: sampled {}, expected {mean:.0} ± {tolerance:.0}",
        first.requests(),
        first.sampled()
    );

    // Changed with the CLI: the app samples by the new rule after one target exchange.
    aws(
        &collector,
        &[
            "update-sampling-rule",
            "--sampling-rule-update",
            &format!(r#"{{"RuleName":"{RULE}","FixedRate":0.5,"ReservoirSize":0}}"#),
        ],
    );
    let changed = Instant::now();
    let applied = eventually(Duration::from_secs(30), || {
        rule(state).filter(|r| r.rate == 0.5 && r.quota.is_none_or(|q| q == 0))
    });
    assert!(applied.is_some(), "{:?}", state.rules());
    let took = changed.elapsed();
    // One target interval (10 s, plus up to 100 ms of jitter) and the calls themselves.
    assert!(took <= Duration::from_secs(12), "the change took {took:?}");
    let second = drive(&recorder, 30, 100);
    let (mean, tolerance) = second.expected(0, 0.5);
    assert!(
        (second.sampled() as f64 - mean).abs() <= tolerance,
        "50% of {} requests: sampled {}, expected {mean:.0} ± {tolerance:.0}",
        second.requests(),
        second.sampled()
    );

    // Every decision is counted at the collector once the app's next report is in.
    let (requests, sampled) = (
        first.requests() + second.requests(),
        first.sampled() + second.sampled(),
    );
    let reported = eventually(Duration::from_secs(30), || {
        let out = aws(&collector, &["get-sampling-statistic-summaries"]);
        let sum = |key: &str| -> u64 {
            out["SamplingStatisticSummaries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["RuleName"] == RULE)
                .filter_map(|s| s[key].as_u64())
                .sum()
        };
        (sum("RequestCount") == requests).then(|| sum("SampledCount"))
    });
    assert_eq!(reported, Some(sampled), "{:?}", state.status());
    eprintln!(
        "sampling e2e: reservoir 5/s + 10%: {} of {} sampled; 50%: {} of {}; change applied \
         in {took:?}",
        first.sampled(),
        first.requests(),
        second.sampled(),
        second.requests()
    );
    assert_eq!(state.status().failures, 0, "{:?}", state.status());

    // And every sampled request is a trace on the collector.
    recorder.flush(Duration::from_secs(30));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stored = eventually(Duration::from_secs(60), || {
        let out = aws(
            &collector,
            &[
                "get-trace-summaries",
                "--start-time",
                &(now - 600).to_string(),
                "--end-time",
                &(now + 60).to_string(),
                "--filter-expression",
                &format!("service(\"{SERVICE}\")"),
            ],
        );
        let n = out["TraceSummaries"].as_array().map_or(0, Vec::len) as u64;
        (n == sampled).then_some(n)
    });
    assert_eq!(stored, Some(sampled));
}
