//! End-to-end throughput of the real daemon binary: the load generator sends ~620-byte documents
//! at a series of target rates, the daemon forwards them to a minimal collector on the same
//! machine, and for each rate we report documents delivered, loss, p99 receive-to-send time and
//! the daemon's peak RSS. The same run first measures the physical limit: a bare batched UDP
//! receive loop (`recvmmsg`, same socket settings) fed by the same load generator at full speed.
//!
//! Settings (environment): `ROENTGEN_BENCH_SECS` (seconds per rate, default 5),
//! `ROENTGEN_BENCH_RATES` (comma-separated documents/s, default 50000,100000,150000,200000),
//! `ROENTGEN_BENCH_BUFFER_MB` (daemon --buffer-memory-mb, default 64), `ROENTGEN_BENCH_SCRUB`
//! (daemon --scrub, default true), `ROENTGEN_BENCH_BARE_RATE` (target rate of the bare loop's
//! sender, default 400000; 0 = as fast as possible).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roentgen_daemon::listener::{bare_receive_loop, open_socket};
use roentgen_daemon::loadgen::collector::{CollectorOptions, MiniCollector};

const DAEMON: &str = env!("CARGO_BIN_EXE_roentgen-daemon");
const LOADGEN: &str = env!("CARGO_BIN_EXE_roentgen-loadgen");

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_default()
        .to_owned()
}

fn loadgen(target: &str, rate: u64, secs: f64) -> (u64, f64) {
    let out = Command::new(LOADGEN)
        .args(["--target", target, "--rate", &rate.to_string()])
        .args(["--duration-secs", &secs.to_string()])
        .output()
        .expect("run roentgen-loadgen");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        field(&line, "sent").parse().unwrap_or(0),
        field(&line, "seconds").parse().unwrap_or(secs),
    )
}

fn metrics(tcp: &str) -> String {
    let Ok(mut s) = TcpStream::connect(tcp) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn peak_rss_mib(child: &Child) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn bare_loop(secs: f64, rate: u64) -> (u64, u64, f64) {
    let socket = open_socket(
        "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        16_384 * 1024,
    )
    .expect("bind");
    let target = socket.local_addr().expect("addr").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let receiver = std::thread::spawn(move || bare_receive_loop(&socket, &s2));
    let (sent, seconds) = loadgen(&target, rate, secs);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let received = receiver.join().unwrap_or(0);
    (sent, received, seconds)
}

struct RunResult {
    rate: u64,
    sent: u64,
    received: u64,
    delivered: u64,
    dropped: u64,
    p99_ms: u64,
    rss_mib: f64,
    seconds: f64,
}

fn daemon_run(rate: u64, secs: f64, buffer_mb: u64, scrub: bool) -> RunResult {
    let collector = MiniCollector::start(CollectorOptions::default()).expect("collector");
    let mut child = Command::new(DAEMON)
        .args(["--bind", "127.0.0.1:0", "--bind-tcp", "127.0.0.1:0"])
        .args(["--otlp-http", "off", "--otlp-grpc", "off"])
        .args(["--endpoint", &collector.url()])
        .args(["--buffer-memory-mb", &buffer_mb.to_string()])
        .args(["--telemetry-interval-secs", "0", "--log-level", "error"])
        .args(["--scrub", if scrub { "true" } else { "false" }])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start roentgen-daemon");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines.next().and_then(Result::ok).unwrap_or_default();
    let udp = field(&listening, "udp");
    let tcp = field(&listening, "tcp");
    let (sent, seconds) = loadgen(&udp, rate, secs);
    // Wait until the daemon has forwarded everything it accepted (bounded: 20 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut m = metrics(&tcp);
    let mut last_received = u64::MAX;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        m = metrics(&tcp);
        let received = metric(&m, "roentgen_daemon_received_total");
        let settled = received == last_received
            && metric(&m, "roentgen_daemon_buffered_documents") == 0
            && collector.document_count() >= metric(&m, "roentgen_daemon_sent_total");
        if settled {
            break;
        }
        last_received = received;
    }
    let rss_mib = peak_rss_mib(&child);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    RunResult {
        rate,
        sent,
        received: metric(&m, "roentgen_daemon_received_total"),
        delivered: collector.document_count(),
        dropped: metric(&m, "roentgen_daemon_dropped_total{reason=\"buffer_full\"}"),
        p99_ms: metric(
            &m,
            "roentgen_daemon_receive_to_send_milliseconds{quantile=\"0.99\"}",
        ),
        rss_mib,
        seconds,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let secs: f64 = env_or("ROENTGEN_BENCH_SECS", 5.0);
    let buffer_mb: u64 = env_or("ROENTGEN_BENCH_BUFFER_MB", 64);
    let scrub: bool = env_or("ROENTGEN_BENCH_SCRUB", true);
    let rates: Vec<u64> = std::env::var("ROENTGEN_BENCH_RATES")
        .unwrap_or_else(|_| "50000,100000,150000,200000".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();

    let bare_rate: u64 = env_or("ROENTGEN_BENCH_BARE_RATE", 400_000);
    let (sent, received, seconds) = bare_loop(secs, bare_rate);
    let bare_rate = received as f64 / seconds;
    println!(
        "bare recvmmsg loop: sender {:.0}/s, received {received} of {sent} = {bare_rate:.0} datagrams/s (loss {:.2}%)",
        sent as f64 / seconds,
        100.0 * (sent.saturating_sub(received)) as f64 / sent.max(1) as f64
    );
    println!("daemon: --buffer-memory-mb {buffer_mb} --scrub {scrub}, {secs} s per rate");
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "target/s",
        "sent",
        "received",
        "delivered",
        "lost",
        "dropped",
        "p99 ms",
        "RSS MiB",
        "ratio"
    );
    for rate in rates {
        let r = daemon_run(rate, secs, buffer_mb, scrub);
        let lost = r.sent.saturating_sub(r.delivered);
        let achieved = r.delivered as f64 / r.seconds;
        println!(
            "{:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9.1} {:>8.2}   ({achieved:.0} delivered/s)",
            r.rate,
            r.sent,
            r.received,
            r.delivered,
            lost,
            r.dropped,
            r.p99_ms,
            r.rss_mib,
            achieved / bare_rate
        );
    }
}
