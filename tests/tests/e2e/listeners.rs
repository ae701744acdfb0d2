//! Every listening address follows one rule, end to end: the real binaries refuse to open an
//! unauthenticated port off loopback without `--insecure`, and the all-in-one's embedded daemon
//! signs with the key `--daemon-access-key-id` names (refused at start when it cannot).

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use roentgen_tests::web::{Collector, aws_xray};
use roentgen_tests::{binary, eventually};

use crate::security::{create_key, now};

/// Runs `program ARGS` and returns its stderr, asserting it exits with a failure (within 30 s)
/// instead of serving.
fn refused_at_start(program: &str, args: &[&str]) -> String {
    let mut child = Command::new(binary(program))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let status = eventually(Duration::from_secs(30), || {
        child.try_wait().expect("test setup")
    });
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("test setup");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "{program} {args:?} did not refuse to start ({status:?}): {err}"
    );
    err
}

#[test]
fn no_auth_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("test setup");
    let data = dir.path().to_str().expect("test setup");
    let err = refused_at_start(
        "roentgen-web",
        &["--listen", "0.0.0.0:0", "--data-dir", data],
    );
    assert!(
        err.contains("--listen 0.0.0.0:0 is not a loopback address")
            && err.contains("--insecure")
            && err.contains("--auth-keys"),
        "{err}"
    );
}

#[test]
fn unauthenticated_ports_off_loopback_need_insecure() {
    let dir = tempfile::tempdir().expect("test setup");
    let data = dir.path().to_str().expect("test setup");
    let keys = dir.path().join("keys.json");
    let daemon = create_key(&keys, "daemon", "xray:PutTraceSegments");
    let keys = keys.to_str().expect("test setup");
    let signed = ["--auth-keys", keys, "--daemon-access-key-id", &daemon.id];
    for (flag, extra) in [
        ("--daemon-udp", &[][..]),
        ("--daemon-tcp", &[][..]),
        // Authentication covers the HTTP API, not the embedded daemon's ports.
        ("--daemon-udp", &signed[..]),
        ("--daemon-tcp", &signed[..]),
    ] {
        let mut args = vec!["--data-dir", data, "--with-daemon", flag, "0.0.0.0:0"];
        args.extend_from_slice(extra);
        let err = refused_at_start("roentgen-web", &args);
        assert!(
            err.contains(&format!("{flag} 0.0.0.0:0 is not a loopback address"))
                && err.contains("pass --insecure"),
            "{err}"
        );
    }
    for flag in ["--bind", "--bind-tcp", "--otlp-http", "--otlp-grpc"] {
        let err = refused_at_start("roentgen-daemon", &[flag, "0.0.0.0:0"]);
        assert!(
            err.contains(&format!("{flag} 0.0.0.0:0 is not a loopback address"))
                && err.contains("add --insecure"),
            "{err}"
        );
    }
}

#[test]
fn the_embedded_daemon_refuses_to_start_without_a_usable_key() {
    let dir = tempfile::tempdir().expect("test setup");
    let data = dir.path().join("data");
    let data = data.to_str().expect("test setup");
    let keys = dir.path().join("keys.json");
    let reader = create_key(&keys, "reader", "xray:Get*");
    let keys = keys.to_str().expect("test setup");
    let base = ["--data-dir", data, "--with-daemon", "--auth-keys", keys];
    let cases: [(&[&str], &str); 3] = [
        (&[], "need --daemon-access-key-id ID"),
        (
            &["--daemon-access-key-id", "RKIANOSUCHKEY00000"],
            "not an active key in",
        ),
        (
            &["--daemon-access-key-id", &reader.id],
            "principal reader is not allowed xray:PutTraceSegments",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let err = refused_at_start("roentgen-web", &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn the_embedded_daemon_signs_with_the_named_key() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let daemon = create_key(
        &keys,
        "daemon",
        "xray:PutTraceSegments,xray:GetSamplingRules,xray:GetSamplingTargets,xray:PutTelemetryRecords",
    );
    let reader = create_key(&keys, "reader", "xray:Get*,xray:BatchGetTraces");
    // A free UDP port for the embedded daemon (the collector prints only its own address).
    let udp = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("test setup")
        .to_string();
    let collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--with-daemon",
            "--daemon-udp",
            &udp,
            "--daemon-tcp",
            "127.0.0.1:0",
            "--auth-keys",
            keys.to_str().expect("test setup"),
            "--daemon-access-key-id",
            &daemon.id,
        ],
    );
    let trace = format!("1-{:08x}-5e1f2a3b4c5d6e7f8091a2b3", now() as u64);
    let doc = format!(
        r#"{{"name":"all-in-one","id":"1a2b3c4d5e6f7081","trace_id":"{trace}","start_time":{},"end_time":{}}}"#,
        now() - 1.0,
        now()
    );
    let socket = UdpSocket::bind("127.0.0.1:0").expect("test setup");
    let window = [
        "get-trace-summaries",
        "--start-time",
        &format!("{}", now() as u64 - 600),
        "--end-time",
        &format!("{}", now() as u64 + 600),
    ];
    let found = eventually(Duration::from_secs(60), || {
        // Resent until seen: the daemon's port may open a moment after the collector's line.
        socket
            .send_to(
                format!("{{\"format\":\"json\",\"version\":1}}\n{doc}").as_bytes(),
                &udp,
            )
            .expect("send datagram");
        let (ok, out, err) = aws_xray(
            &collector,
            Some((&reader.id, &reader.secret)),
            "us-east-1",
            &window,
        );
        assert!(ok, "{err}");
        out.contains(&trace).then_some(())
    });
    assert!(
        found.is_some(),
        "the embedded daemon's documents never arrived"
    );
}
