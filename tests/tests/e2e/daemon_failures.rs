//! The daemon's failure paths end to end, with a collector that misbehaves on purpose: it
//! refuses every request (401, 404), limits request bodies (413), answers a success that is
//! not JSON, or throttles every document; and a daemon killed with SIGKILL while it spools.
//! In each case every document the daemon received arrives, exactly once, once the collector
//! behaves, and no document is counted as dropped.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use roentgen_daemon::loadgen::Template;
use roentgen_tests::collector_stub::{self, CollectorOptions, Fault, MiniCollector};
use roentgen_tests::daemon::{Daemon, metric};
use roentgen_tests::eventually;

use super::daemon::{args, send_run, seqs_of, spooling};

const WAIT: Duration = Duration::from_secs(60);

const DROP_REASONS: [&str; 5] = [
    "buffer_full",
    "shutdown",
    "collector_refused",
    "worker_panic",
    "spool_file_missing",
];

fn assert_nothing_dropped(metrics: &str) {
    for reason in DROP_REASONS {
        assert_eq!(
            metric(
                metrics,
                &format!("roentgen_daemon_dropped_total{{reason=\"{reason}\"}}")
            ),
            0,
            "{reason}\n{metrics}"
        );
    }
}

/// Waits until the daemon holds nothing in memory and has accepted all it received (but the
/// datagrams it rejected as not JSON); returns how many documents it accepted.
fn settled(daemon: &Daemon, also: impl Fn(&str) -> bool) -> u64 {
    let mut last = u64::MAX;
    eventually(WAIT, || {
        let m = daemon.metrics();
        let received = metric(&m, "roentgen_daemon_received_total")
            - metric(&m, "roentgen_daemon_rejected_total{reason=\"not_json\"}");
        let done = received > 0
            && received == last
            && metric(&m, "roentgen_daemon_accepted_total") == received
            && metric(&m, "roentgen_daemon_buffered_documents") == 0
            && also(&m);
        last = received;
        done.then_some(received)
    })
    .unwrap_or_else(|| panic!("the daemon did not settle:\n{}", daemon.metrics()))
}

/// Waits until `received` documents of run `run` have arrived, and checks each came once.
fn all_arrive_once(collector: &MiniCollector, run: u32, received: u64) {
    eventually(WAIT, || {
        (seqs_of(collector, run).len() as u64 == received).then_some(())
    })
    .unwrap_or_else(|| panic!("got {} of {received}", seqs_of(collector, run).len()));
    assert_eq!(
        collector.documents().len() as u64,
        received,
        "each document arrives once"
    );
}

fn spool_files(dir: &Path, extension: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(extension))
        .collect()
}

fn with_spool(spool: &Path, log: &Path) -> Vec<String> {
    let mut options = spooling(spool);
    options.extend(["--log-file".to_owned(), log.to_str().unwrap().to_owned()]);
    options
}

#[test]
fn a_refusing_collector_keeps_every_batch_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, log) = (dir.path().join("spool"), dir.path().join("daemon.log"));
    let collector = collector_stub::recording();
    collector.set_fault(Fault::Status(401));
    let options = with_spool(&spool, &log);
    let daemon = Daemon::start(&collector.url(), &args(&options));
    // A malformed datagram whose parse error quotes a value: logged, but scrubbed.
    let planted = "{\"format\":\"json\",\"version\":1}\n{\"name\":\"api\",\"id\":\"70de5b6f19ff9a0a\",\"trace_id\":\"1-581cf771-a006649127e371903a2de979\",\"start_time\":\"jane.doe@example.com\",\"end_time\":1478293361.449}";
    daemon.socket().send(planted.as_bytes()).unwrap();
    send_run(&daemon, 41, 0..400);
    let received = settled(&daemon, |m| {
        metric(m, "roentgen_daemon_spooled_total") == metric(m, "roentgen_daemon_accepted_total")
    });
    assert_eq!(
        daemon.metric("roentgen_daemon_rejected_total{reason=\"not_json\"}"),
        1
    );
    let m = daemon.metrics();
    assert!(
        metric(
            &m,
            "roentgen_daemon_collector_refusals_total{status=\"401\"}"
        ) > 0
    );
    assert_eq!(metric(&m, "roentgen_daemon_collector_refusing_status"), 401);
    assert_nothing_dropped(&m);
    assert!(!spool_files(&spool, ".spool").is_empty());

    // An endpoint typo next: still kept, and named.
    collector.set_fault(Fault::Status(404));
    eventually(WAIT, || {
        (daemon.metric("roentgen_daemon_collector_refusals_total{status=\"404\"}") > 0)
            .then_some(())
    })
    .expect("the replay probes and sees the 404");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("the collector refuses the request") && logged.contains("clock"),
        "the refusal and its hint are logged:\n{logged}"
    );
    assert!(logged.contains("rejected datagram"), "{logged}");
    assert!(
        !logged.contains("jane.doe@example.com"),
        "PII in the log:\n{logged}"
    );

    collector.set_fault(Fault::None);
    all_arrive_once(&collector, 41, received);
    let m = daemon.metrics();
    assert_nothing_dropped(&m);
    assert_eq!(metric(&m, "roentgen_daemon_replayed_total"), received);
    assert_eq!(metric(&m, "roentgen_daemon_collector_refusing_status"), 0);
    eventually(WAIT, || {
        spool_files(&spool, ".spool").is_empty().then_some(())
    })
    .expect("the spool empties");
}

#[test]
fn a_413_splits_batches_until_they_fit() {
    let collector = collector_stub::recording();
    // Room for about three documents per request: batches of 50 are split down to fit.
    let document = Template::new(42).fill(0).len();
    collector.set_fault(Fault::MaxBody(3 * document + 64));
    let daemon = Daemon::start(
        &collector.url(),
        &[
            "--flush-interval-ms",
            "100",
            "--retry-max-backoff-ms",
            "200",
        ],
    );
    send_run(&daemon, 42, 0..300);
    let received = settled(&daemon, |_| true);
    all_arrive_once(&collector, 42, received);
    let m = daemon.metrics();
    assert!(
        metric(
            &m,
            "roentgen_daemon_collector_refusals_total{status=\"413\"}"
        ) > 0
    );
    assert!(collector.faulted() > 0);
    assert_eq!(metric(&m, "roentgen_daemon_spooled_total"), 0);
    assert_nothing_dropped(&m);
}

#[test]
fn a_garbage_success_is_a_failure_and_the_batch_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, log) = (dir.path().join("spool"), dir.path().join("daemon.log"));
    let collector = collector_stub::recording();
    collector.set_fault(Fault::Garbage);
    let options = with_spool(&spool, &log);
    let daemon = Daemon::start(&collector.url(), &args(&options));
    send_run(&daemon, 43, 0..200);
    let received = settled(&daemon, |m| {
        metric(m, "roentgen_daemon_spooled_total") == metric(m, "roentgen_daemon_accepted_total")
    });
    assert!(daemon.metric("roentgen_daemon_backend_errors_total{kind=\"other\"}") >= 2);
    assert!(collector.documents().is_empty());
    collector.set_fault(Fault::None);
    all_arrive_once(&collector, 43, received);
    assert_nothing_dropped(&daemon.metrics());
}

#[test]
fn documents_left_unprocessed_are_retried_a_bounded_number_of_times_then_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, log) = (dir.path().join("spool"), dir.path().join("daemon.log"));
    // Every document is answered "throttled" many times over: the daemon must not retry them
    // in memory forever, but spool them and replay until the collector takes them.
    let collector = MiniCollector::start(CollectorOptions {
        record: true,
        throttle_first: 400,
    })
    .unwrap();
    let options = with_spool(&spool, &log);
    let daemon = Daemon::start(&collector.url(), &args(&options));
    send_run(&daemon, 44, 0..50);
    let received = settled(&daemon, |_| true);
    all_arrive_once(&collector, 44, received);
    let m = daemon.metrics();
    assert_eq!(metric(&m, "roentgen_daemon_unprocessed_total"), 400);
    assert!(
        metric(&m, "roentgen_daemon_spooled_total") >= received,
        "{m}"
    );
    assert!(
        metric(&m, "roentgen_daemon_replayed_total") >= received,
        "{m}"
    );
    assert_nothing_dropped(&m);
}

#[test]
fn a_daemon_killed_while_spooling_replays_every_whole_file_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, log) = (dir.path().join("spool"), dir.path().join("daemon.log"));
    let mut collector = collector_stub::recording();
    collector.stop();
    let mut options = with_spool(&spool, &log);
    options.extend(["--batch-size", "5"].map(str::to_owned));
    let daemon = Daemon::start(&collector.url(), &args(&options));
    let target = daemon.udp.clone();
    let sender = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(target).unwrap();
        let mut template = Template::new(45);
        for seq in 0..20_000u64 {
            if socket.send(template.fill(seq)).is_err() {
                break;
            }
            if seq % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    eventually(WAIT, || {
        (daemon.metric("roentgen_daemon_spooled_total") > 500).then_some(())
    })
    .expect("the daemon spools");
    daemon.kill9();
    sender.join().unwrap();

    let whole: u64 = spool_files(&spool, ".spool")
        .iter()
        .map(|n| {
            let stem = n.trim_end_matches(".spool");
            stem.split_once('-').unwrap().1.parse::<u64>().unwrap()
        })
        .sum();
    let cut_short = spool_files(&spool, ".tmp").len() as u64;
    assert!(whole >= 500, "whole files hold {whole} documents");

    collector.restart().unwrap();
    let daemon = Daemon::start(&collector.url(), &args(&options));
    eventually(WAIT, || {
        (daemon.metric("roentgen_daemon_replayed_total") == whole).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "replayed {} of {whole}",
            daemon.metric("roentgen_daemon_replayed_total")
        )
    });
    let seqs = seqs_of(&collector, 45);
    assert_eq!(
        seqs.len() as u64,
        whole,
        "every document of every whole file, once"
    );
    assert_eq!(collector.documents().len() as u64, whole);
    let m = daemon.metrics();
    assert_eq!(
        metric(&m, "roentgen_daemon_spool_quarantined_files_total"),
        cut_short,
        "{m}"
    );
    assert_nothing_dropped(&m);
}
