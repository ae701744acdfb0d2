//! TLS and connection limits end to end: a CA and a server certificate for 127.0.0.1 made at
//! test time (no key is committed), a collector serving HTTPS with auth, a daemon that verifies
//! it with `--ca-file` and signs its data and telemetry, the AWS CLI with `--ca-bundle`, a
//! daemon without the CA that refuses the certificate and spools, and connections that send
//! nothing or half a request being cut off while others are served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roentgen_tests::daemon::Daemon;
use roentgen_tests::eventually;
use roentgen_tests::http::request;
use roentgen_tests::web::{Collector, aws_xray};
use serde_json::Value;

use super::security::create_key;

/// Generous bound for anything the machine has to do (it may be slow and loaded).
const PATIENCE: Duration = Duration::from_secs(60);

/// PEM files of a test CA and of a server certificate it signed for 127.0.0.1 and localhost.
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) fn make_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Roentgen test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&pki.cert, server_cert.pem()).expect("write certificate");
    std::fs::write(&pki.key, server_key.serialize_pem()).expect("write key");
    pki
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn audit_lines(audit: &Path) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Sends one segment named `name` to the daemon over UDP, in a new trace whose id ends with
/// `trace_tail` (24 hex digits); returns the trace id.
fn send_segment(daemon: &Daemon, name: &str, trace_tail: &str) -> String {
    let trace = format!("1-{:08x}-{trace_tail}", now() as u64);
    let doc = format!(
        r#"{{"name":"{name}","id":"3e5b8a1c9d2f4e60","trace_id":"{trace}","start_time":{},"end_time":{}}}"#,
        now() - 1.0,
        now()
    );
    daemon
        .socket()
        .send(format!("{{\"format\":\"json\",\"version\":1}}\n{doc}").as_bytes())
        .expect("send datagram");
    trace
}

/// A blocking HTTPS client that trusts only `ca`.
fn https_client(ca: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).expect("read CA");
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTPS client")
}

#[test]
fn a_daemon_with_the_ca_delivers_signed_data_and_telemetry_over_https() {
    let dir = tempfile::tempdir().expect("test setup");
    let pki = make_pki(dir.path());
    let keys = dir.path().join("keys.json");
    let edge = create_key(
        &keys,
        "edge",
        "xray:PutTraceSegments,xray:PutTelemetryRecords,xray:GetSamplingRules",
    );
    let reader = create_key(&keys, "reader", "xray:Get*,xray:BatchGetTraces");
    let audit = dir.path().join("audit.jsonl");
    let mut collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--auth-keys",
            path(&keys),
            "--audit-log",
            path(&audit),
            "--tls-cert",
            path(&pki.cert),
            "--tls-key",
            path(&pki.key),
        ],
    );
    assert_eq!(collector.scheme, "https");
    collector.ca_bundle = Some(pki.ca.clone());

    // The dashboard's cookies are Secure under TLS.
    let client = https_client(&pki.ca);
    let signin = client
        .get(format!("{}/signin", collector.endpoint_url()))
        .send()
        .expect("GET /signin over HTTPS");
    assert_eq!(signin.status().as_u16(), 200);
    let cookies: Vec<String> = signin
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII cookie").to_owned())
        .collect();
    assert!(!cookies.is_empty(), "no cookie set by /signin");
    for cookie in &cookies {
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert!(attributes.contains(&"Secure"), "{cookie}");
        assert!(attributes.contains(&"HttpOnly"), "{cookie}");
    }

    let daemon = Daemon::start(
        &collector.endpoint_url(),
        &[
            "--ca-file",
            path(&pki.ca),
            "--access-key-id",
            &edge.id,
            "--secret-access-key",
            &edge.secret,
            "--flush-interval-ms",
            "50",
            "--telemetry-interval-secs",
            "1",
        ],
    );
    let rules = eventually(PATIENCE, || {
        let r = request(&daemon.tcp, "POST", "/GetSamplingRules", &[], "{}");
        (r.status == 200 && r.body.contains("SamplingRuleRecords")).then_some(())
    });
    assert!(
        rules.is_some(),
        "the sampling proxy never got rules over HTTPS"
    );
    let trace = send_segment(&daemon, "edge-tls", "7f3a9c2e5b1d4e6f8a0b2c4d");
    let (start, end) = (now() as u64 - 600, now() as u64 + 600);
    let found = eventually(PATIENCE, || {
        let (ok, out, err) = aws_xray(
            &collector,
            Some((&reader.id, &reader.secret)),
            "us-east-1",
            &[
                "get-trace-summaries",
                "--start-time",
                &start.to_string(),
                "--end-time",
                &end.to_string(),
            ],
        );
        assert!(ok, "the AWS CLI over HTTPS failed: {err}");
        let summaries: Value = serde_json::from_str(&out).ok()?;
        summaries["TraceSummaries"]
            .as_array()?
            .iter()
            .any(|s| s["Id"] == trace.as_str())
            .then_some(())
    });
    assert!(found.is_some(), "{trace} never arrived over HTTPS");

    let telemetry = eventually(PATIENCE, || {
        audit_lines(&audit)
            .iter()
            .any(|l| {
                l["principal"] == "edge"
                    && l["action"] == "xray:PutTelemetryRecords"
                    && l["allowed"] == true
            })
            .then_some(())
    });
    assert!(
        telemetry.is_some(),
        "no signed telemetry accepted: {:?}",
        audit_lines(&audit)
    );
    assert!(audit_lines(&audit).iter().any(|l| l["principal"] == "edge"
        && l["action"] == "xray:PutTraceSegments"
        && l["allowed"] == true));
}

/// Reads from `stream` until the peer closes it (EOF or reset) or `PATIENCE` passes; the bytes
/// it sent before closing (such as a response or a TLS alert), or `None` if it stayed open.
fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set read timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    eventually(PATIENCE, || match stream.read(&mut buf) {
        Ok(0) => Some(()),
        Ok(n) => {
            received.extend_from_slice(&buf[..n]);
            None
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(()),
    })?;
    Some(received)
}

/// Whether the peer closes `stream` within `PATIENCE`.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    read_until_closed(stream).is_some()
}

#[test]
fn a_daemon_without_the_ca_refuses_the_certificate_and_spools() {
    let dir = tempfile::tempdir().expect("test setup");
    let pki = make_pki(dir.path());
    let collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            path(&pki.cert),
            "--tls-key",
            path(&pki.key),
            "--tls-handshake-timeout-secs",
            "1",
        ],
    );
    // A client that connects and never starts the handshake is cut off.
    let mut silent = TcpStream::connect(&collector.address).expect("connect");
    assert!(
        closed_by_peer(&mut silent),
        "a connection that never sent a TLS hello was kept open"
    );

    let log = dir.path().join("daemon.log");
    let spool = dir.path().join("spool");
    let daemon = Daemon::start(
        &collector.endpoint_url(),
        &[
            "--log-file",
            path(&log),
            "--spool-dir",
            path(&spool),
            "--spool-after-attempts",
            "1",
            "--retry-max-backoff-ms",
            "100",
            "--flush-interval-ms",
            "50",
        ],
    );
    send_segment(&daemon, "untrusted", "2d4f6a8c0e1b3d5f7a9c0e2b");
    let spooled = eventually(PATIENCE, || {
        (daemon.metric("roentgen_daemon_spooled_total") >= 1).then_some(())
    });
    assert!(spooled.is_some(), "{}", daemon.metrics());
    assert_eq!(daemon.metric("roentgen_daemon_sent_total"), 0);
    let logged = eventually(PATIENCE, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("invalid peer certificate") && l.contains("UnknownIssuer"))
            .map(str::to_owned)
    });
    assert!(
        logged.is_some(),
        "no log line names the TLS error: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn a_half_sent_request_is_cut_off_while_other_connections_are_served() {
    let dir = tempfile::tempdir().expect("test setup");
    let collector = Collector::start(
        &dir.path().join("data"),
        &["--header-timeout-secs", "1", "--request-timeout-secs", "1"],
    );
    let mut slow = TcpStream::connect(&collector.address).expect("connect");
    slow.write_all(b"POST /Groups HTTP/1.1\r\nHost: 127.0")
        .expect("send half a request");
    let served = request(&collector.address, "POST", "/Groups", &[], "{}");
    assert_eq!(served.status, 200, "{}", served.body);
    assert!(
        closed_by_peer(&mut slow),
        "a connection with half a request was kept open"
    );
    let served = request(&collector.address, "POST", "/Groups", &[], "{}");
    assert_eq!(served.status, 200, "{}", served.body);

    // A kept-alive connection that goes quiet after its response is closed too.
    let mut idle = TcpStream::connect(&collector.address).expect("connect");
    idle.write_all(b"POST /Groups HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
        .expect("send a request");
    let answered = read_until_closed(&mut idle).expect("an idle keep-alive connection stayed open");
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 200 "), "{answered}");

    // A body that stops arriving gets 408 and the connection is closed.
    let mut trickle = TcpStream::connect(&collector.address).expect("connect");
    trickle
        .write_all(b"POST /TraceSegments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n{\"TraceSegmentDocuments\"")
        .expect("send part of a body");
    let answered = read_until_closed(&mut trickle).expect("a stalled body kept the connection");
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 408 "), "{answered}");
}
