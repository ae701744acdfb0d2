//! The daemon end to end: the real `roentgen-daemon` binary between official X-Ray SDK clients
//! (or raw UDP) and a real HTTP collector on loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use roentgen_daemon::loadgen::{Template, run_and_seq};
use roentgen_sdk::model::{DocumentHead, split_datagram};
use roentgen_sdk::scrub::Scrubber;
use roentgen_tests::collector_stub::{self, CollectorOptions, MiniCollector};
use roentgen_tests::daemon::{Daemon, metric, node_modules, python};
use roentgen_tests::{binary, eventually};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Runs an SDK client script and returns the documents it handed to its UDP socket.
fn run_client(mut command: Command) -> Vec<String> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("run the SDK client");
    assert!(
        output.status.success(),
        "SDK client failed: {:?}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    assert!(stdout.contains("DONE"), "client did not finish: {stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DATAGRAM "))
        .filter_map(|l| {
            let datagram: String = serde_json::from_str(l).expect("tapped datagram");
            // Node's SDK also sends a one-byte NUL datagram on its socket; the daemon counts
            // it as malformed. Only framed documents are compared.
            let doc = split_datagram(datagram.as_bytes()).ok()?;
            Some(String::from_utf8(doc.to_vec()).expect("utf-8 document"))
        })
        .collect()
}

fn id_of(document: &str) -> String {
    DocumentHead::parse(document.as_bytes())
        .expect("valid document")
        .id
        .to_string()
}

/// Waits until the collector holds `count` documents and returns them by id.
fn wait_for_documents(collector: &MiniCollector, count: usize) -> BTreeMap<String, String> {
    eventually(WAIT, || {
        (collector.documents().len() >= count).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "collector got {} of {count} documents",
            collector.documents().len()
        )
    });
    collector
        .documents()
        .into_iter()
        .map(|d| (id_of(&d), d))
        .collect()
}

#[test]
fn python_sdk_documents_arrive_scrubbed_and_otherwise_unchanged() {
    let collector = collector_stub::recording();
    let daemon = Daemon::start(&collector.url(), &["--flush-interval-ms", "100"]);
    let mut client = Command::new(python());
    client
        .arg(roentgen_tests::data("../python/emit_segments.py"))
        .arg("4")
        .env("AWS_XRAY_DAEMON_ADDRESS", &daemon.udp)
        .env("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR");
    let sent = run_client(client);
    assert_eq!(sent.len(), 4, "one datagram per segment");
    let received = wait_for_documents(&collector, sent.len());
    assert_eq!(received.len(), sent.len());

    let scrubber = Scrubber::default();
    for original in &sent {
        let got = &received[&id_of(original)];
        let mut expected: Value = serde_json::from_str(original).unwrap();
        let report = scrubber.scrub(&mut expected);
        assert!(report.total() > 0, "the client plants personal data");
        let got_value: Value = serde_json::from_str(got).unwrap();
        assert_eq!(
            got_value, expected,
            "collector document = scrubbed SDK document"
        );
        assert!(!got.contains("jane.doe@example.com"), "{got}");
        assert!(!got.contains("4111111111111111"), "{got}");
    }
    assert!(daemon.metric("roentgen_daemon_scrubbed_documents_total") >= 4);
    // The collector stores before it answers; the daemon counts once it has the answer.
    eventually(WAIT, || {
        (daemon.metric("roentgen_daemon_sent_total") == 4).then_some(())
    })
    .expect("4 documents counted as sent");
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn node_sdk_documents_arrive_byte_for_byte_without_scrubbing() {
    let collector = collector_stub::recording();
    let daemon = Daemon::start(
        &collector.url(),
        &["--flush-interval-ms", "100", "--scrub", "false"],
    );
    let mut client = Command::new("node");
    client
        .arg(roentgen_tests::data("../node/emit_segments.js"))
        .arg("4")
        .env("NODE_PATH", node_modules())
        .env("AWS_XRAY_DAEMON_ADDRESS", &daemon.udp)
        .env("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR");
    let sent = run_client(client);
    assert_eq!(sent.len(), 4, "one datagram per segment");
    let received = wait_for_documents(&collector, sent.len());
    for original in &sent {
        assert_eq!(&received[&id_of(original)], original, "byte for byte");
    }
    // With scrubbing on (the default), the same SDK's planted data is rewritten.
    let scrubbing = Daemon::start(&collector.url(), &["--flush-interval-ms", "100"]);
    let mut client = Command::new("node");
    client
        .arg(roentgen_tests::data("../node/emit_segments.js"))
        .arg("2")
        .env("NODE_PATH", node_modules())
        .env("AWS_XRAY_DAEMON_ADDRESS", &scrubbing.udp);
    let sent = run_client(client);
    let received = wait_for_documents(&collector, 4 + sent.len());
    for original in &sent {
        let got = &received[&id_of(original)];
        assert!(original.contains("jane.doe@example.com"));
        assert!(!got.contains("jane.doe@example.com"), "{got}");
    }
}

fn good(seq: u64) -> Vec<u8> {
    let mut template = Template::new(9);
    template.fill(seq).to_vec()
}

#[test]
fn malformed_and_oversize_datagrams_are_counted_and_neighbours_pass() {
    let collector = collector_stub::recording();
    let daemon = Daemon::start(
        &collector.url(),
        &["--flush-interval-ms", "100", "--max-document-kb", "8"],
    );
    let socket = daemon.socket();
    let header = "{\"format\":\"json\",\"version\":1}\n";
    let text = String::from_utf8(good(1)).unwrap();
    let doc = text.strip_prefix(header).unwrap().to_owned();
    let padded = doc.replacen(
        "\"annotations\":{",
        &format!("\"annotations\":{{\"pad\":\"{}\",", "x".repeat(10_000)),
        1,
    );
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (doc.clone().into_bytes(), "no_header"),
        (
            format!("{{\"format\":\"xml\",\"version\":1}}\n{doc}").into_bytes(),
            "bad_header",
        ),
        (format!("{header}   ").into_bytes(), "empty"),
        (format!("{header}{{not json").into_bytes(), "not_json"),
        (
            format!(
                "{header}{}",
                doc.replacen("\"name\":\"checkout-api\",", "", 1)
            )
            .into_bytes(),
            "missing_field",
        ),
        (
            format!("{header}{}", doc.replacen("\"id\":\"", "\"id\":\"zz", 1)).into_bytes(),
            "bad_id",
        ),
        (
            format!(
                "{header}{}",
                doc.replacen("\"end_time\":", "\"end_time\":-", 1)
            )
            .into_bytes(),
            "bad_time",
        ),
        (
            format!(
                "{header}{}",
                doc.replacen("checkout-api", "checkout<api>", 1)
            )
            .into_bytes(),
            "bad_name",
        ),
        (format!("{header}{padded}").into_bytes(), "oversize"),
    ];
    let mut expected = BTreeSet::new();
    for (i, (datagram, _)) in bad.iter().enumerate() {
        let seq = 100 + i as u64;
        socket.send(&good(seq)).unwrap();
        expected.insert(format!("{seq:016x}"));
        socket.send(datagram).unwrap();
    }
    let received = wait_for_documents(&collector, expected.len());
    let got: BTreeSet<String> = received.keys().cloned().collect();
    assert_eq!(got, expected, "every good neighbour passed, no bad one did");
    // The last bad datagram follows the last good one: wait for every count to settle.
    let metrics = eventually(WAIT, || {
        let m = daemon.metrics();
        (metric(&m, "roentgen_daemon_received_total") == 18
            && bad.iter().all(|(_, reason)| {
                metric(
                    &m,
                    &format!("roentgen_daemon_rejected_total{{reason=\"{reason}\"}}"),
                ) >= 1
            }))
        .then_some(m)
    })
    .unwrap_or_else(|| daemon.metrics());
    for (_, reason) in &bad {
        assert_eq!(
            metric(
                &metrics,
                &format!("roentgen_daemon_rejected_total{{reason=\"{reason}\"}}")
            ),
            1,
            "{reason}\n{metrics}"
        );
    }
    assert_eq!(metric(&metrics, "roentgen_daemon_received_total"), 18);
}

#[test]
fn unprocessed_segments_are_retried() {
    let collector = MiniCollector::start(CollectorOptions {
        record: true,
        throttle_first: 3,
    })
    .unwrap();
    let daemon = Daemon::start(
        &collector.url(),
        &["--flush-interval-ms", "50", "--retry-max-backoff-ms", "100"],
    );
    let socket = daemon.socket();
    for seq in 0..10 {
        socket.send(&good(seq)).unwrap();
    }
    let received = wait_for_documents(&collector, 10);
    assert_eq!(received.len(), 10);
    assert_eq!(daemon.metric("roentgen_daemon_unprocessed_total"), 3);
    assert!(daemon.metric("roentgen_daemon_retried_total") >= 1);
}

/// Sends `count` generated documents of run `run`, paced so the socket buffer never overflows.
pub(crate) fn send_run(daemon: &Daemon, run: u32, seqs: std::ops::Range<u64>) {
    let socket = daemon.socket();
    let mut template = Template::new(run);
    for seq in seqs {
        socket.send(template.fill(seq)).unwrap();
        if seq % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

pub(crate) fn seqs_of(collector: &MiniCollector, run: u32) -> BTreeSet<u64> {
    collector
        .documents()
        .iter()
        .filter_map(|d| {
            let head = DocumentHead::parse(d.as_bytes()).ok()?;
            run_and_seq(&head.trace_id.to_string()).filter(|(r, _)| *r == run)
        })
        .map(|(_, s)| s)
        .collect()
}

/// Options for a daemon that spools after two quick failures into `spool`.
pub(crate) fn spooling(spool: &std::path::Path) -> Vec<String> {
    [
        "--flush-interval-ms",
        "100",
        "--retry-max-backoff-ms",
        "200",
        "--spool-after-attempts",
        "2",
        "--spool-dir",
        spool.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `String` options as `&str`s.
pub(crate) fn args(options: &[String]) -> Vec<&str> {
    options.iter().map(String::as_str).collect()
}

#[test]
fn collector_outage_loses_nothing() {
    let spool = tempfile::tempdir().unwrap();
    let mut collector = collector_stub::recording();
    let daemon = Daemon::start(&collector.url(), &args(&spooling(spool.path())));
    // UDP itself may lose datagrams on a loaded machine before the daemon sees them; what the
    // daemon received is what must arrive, exactly once.
    send_run(&daemon, 21, 0..300);
    eventually(WAIT, || {
        let received = daemon.metric("roentgen_daemon_received_total");
        (received > 0 && seqs_of(&collector, 21).len() as u64 == received).then_some(())
    })
    .expect("the first documents are delivered");

    collector.stop();
    send_run(&daemon, 21, 300..3000);
    let mut last = u64::MAX;
    let accepted = eventually(WAIT, || {
        let m = daemon.metrics();
        let received = metric(&m, "roentgen_daemon_received_total");
        let accepted = metric(&m, "roentgen_daemon_accepted_total");
        let settled = received == last
            && accepted == received
            && metric(&m, "roentgen_daemon_buffered_documents") == 0
            && metric(&m, "roentgen_daemon_spooled_total") > 0;
        last = received;
        settled.then_some(accepted)
    })
    .expect("everything accepted during the outage is spooled");
    assert!(
        accepted > 300,
        "traffic during the outage reached the daemon"
    );
    assert!(std::fs::read_dir(spool.path()).unwrap().count() > 0);

    collector.restart().unwrap();
    eventually(WAIT, || {
        (seqs_of(&collector, 21).len() as u64 == accepted).then_some(())
    })
    .unwrap_or_else(|| panic!("got {} of {accepted}", seqs_of(&collector, 21).len()));
    assert_eq!(
        collector.documents().len() as u64,
        accepted,
        "each document arrives once"
    );
    let m = daemon.metrics();
    assert_eq!(
        metric(&m, "roentgen_daemon_dropped_total{reason=\"buffer_full\"}"),
        0
    );
    assert!(metric(&m, "roentgen_daemon_replayed_total") > 0);
    eventually(WAIT, || {
        (std::fs::read_dir(spool.path()).unwrap().count() == 0).then_some(())
    })
    .expect("the spool empties after replay");
}

#[test]
fn sigterm_under_load_loses_nothing() {
    let collector = collector_stub::recording();
    let daemon = Daemon::start(&collector.url(), &[]);
    let target = daemon.udp.clone();
    let sender = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(target).unwrap();
        let mut template = Template::new(31);
        let mut sent = 0u64;
        for seq in 0..40_000u64 {
            if socket.send(template.fill(seq)).is_err() {
                break;
            }
            sent += 1;
            if seq % 200 == 199 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sent
    });
    eventually(WAIT, || {
        (daemon.metric("roentgen_daemon_received_total") > 5_000).then_some(())
    })
    .expect("traffic flows");
    let (code, line) = daemon.terminate();
    sender.join().unwrap();
    assert_eq!(code, Some(0), "{line}");
    let field = |k: &str| -> u64 { roentgen_tests::Process::field(&line, k).parse().unwrap() };
    let (received, sent, spooled, dropped) = (
        field("received"),
        field("sent"),
        field("spooled"),
        field("dropped"),
    );
    assert!(received > 5_000, "{line}");
    assert_eq!(dropped, 0, "{line}");
    assert_eq!(spooled, 0, "{line}");
    assert_eq!(sent, received, "{line}");
    let seqs = seqs_of(&collector, 31);
    assert_eq!(seqs.len() as u64, received, "{line}");
    assert_eq!(
        collector.documents().len() as u64,
        received,
        "no duplicates"
    );
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn memory_stays_within_the_bound_under_a_flood() {
    // The collector is down for the whole test and there is no spool: everything must wait in
    // memory, so the bound is what stops growth.
    let mut collector = collector_stub::recording();
    collector.stop();
    let daemon = Daemon::start(
        &collector.url(),
        &[
            "--buffer-memory-mb",
            "8",
            "--retry-max-backoff-ms",
            "500",
            "--flush-interval-ms",
            "100",
        ],
    );
    let socket = daemon.socket();
    let mut template = Template::new(41);
    for seq in 0..60_000u64 {
        let _ = socket.send(template.fill(seq));
        if seq % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    eventually(WAIT, || {
        let m = daemon.metrics();
        let received = metric(&m, "roentgen_daemon_received_total");
        let accounted = metric(&m, "roentgen_daemon_accepted_total")
            + metric(&m, "roentgen_daemon_dropped_total{reason=\"buffer_full\"}");
        (received > 20_000 && accounted == received).then_some(())
    })
    .expect("every received datagram is either buffered or counted as dropped");
    let m = daemon.metrics();
    let limit = 8 * 1024 * 1024;
    assert!(
        metric(&m, "roentgen_daemon_buffered_bytes") <= limit + 64 * 1024,
        "{m}"
    );
    assert!(metric(&m, "roentgen_daemon_dropped_total{reason=\"buffer_full\"}") > 0);
    let peak_kib = rss_kib(daemon.process.pid(), "VmHWM:");
    assert!(
        peak_kib <= (8 + 30) * 1024,
        "peak RSS {peak_kib} KiB exceeds the 8 MiB buffer + 30 MiB"
    );
}

#[test]
fn sampling_is_proxied_and_telemetry_is_reported() {
    let collector = collector_stub::recording();
    let daemon = Daemon::start(&collector.url(), &["--telemetry-interval-secs", "1"]);
    let rules = roentgen_tests::http::request(&daemon.tcp, "POST", "/GetSamplingRules", &[], "{}");
    assert_eq!(rules.status, 200);
    assert!(rules.body.contains("SamplingRuleRecords"), "{}", rules.body);
    let body = r#"{"SamplingStatisticsDocuments":[]}"#;
    let targets = roentgen_tests::http::request(&daemon.tcp, "POST", "/SamplingTargets", &[], body);
    assert_eq!(targets.status, 200);
    assert!(targets.body.contains("SamplingTargetDocuments"));
    let calls = collector.sampling_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1], format!("/SamplingTargets {body}"));

    daemon.socket().send(&good(5)).unwrap();
    let record = eventually(WAIT, || {
        collector
            .telemetry()
            .into_iter()
            .find(|t| t.contains("\"SegmentsReceivedCount\":1"))
    })
    .expect("a telemetry record counting the datagram");
    assert!(record.contains("BackendConnectionErrors"), "{record}");
    assert!(
        daemon
            .metrics()
            .contains("# TYPE roentgen_daemon_received_total counter")
    );
}

#[test]
fn scrub_subcommand_rewrites_captured_datagrams() {
    let capture = std::fs::read_to_string(roentgen_tests::data(
        "captures/python-sdk-2.15-checkout.txt",
    ))
    .unwrap();
    let input: String = capture
        .lines()
        .filter(|l| !l.starts_with("--- datagram"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut child = Command::new(binary("roentgen-daemon"))
        .arg("scrub")
        .env_remove("ROENTGEN_DAEMON_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let doc: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(doc["name"], "checkout-api");
    assert!(!stdout.contains("jane.doe@example.com"));
    assert!(!stdout.contains("4111111111111111"));
    assert!(stderr.contains("scrubbed 1 of 1 documents"), "{stderr}");
}

#[test]
fn a_bad_option_is_named() {
    let output = Command::new(binary("roentgen-daemon"))
        .args(["--batch-size", "0", "--bind", "127.0.0.1:0"])
        .env_remove("ROENTGEN_DAEMON_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("batch_size"), "{stderr}");
}
