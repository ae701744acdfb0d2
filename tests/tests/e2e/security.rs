//! Security end to end: keys made by `roentgen-web keys`, a collector with `--auth-keys`, the
//! real AWS CLI and botocore signing with Roentgen keys, refusals of unsigned, wrongly signed and
//! replayed requests, per-principal policies, the anonymous dashboard, the audit log and the
//! refusal to serve without auth off loopback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use roentgen_tests::daemon::python;
use roentgen_tests::http::request;
use roentgen_tests::web::{Collector, aws_xray};
use roentgen_tests::{binary, eventually};
use roentgen_web::auth::sigv4::{SignableRequest, Signer, format_amz_date};
use serde_json::Value;

/// An access key made by `roentgen-web keys create`.
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// Makes a key for `principal` with the `allow` policy in `keys_file` (created if absent).
pub(crate) fn create_key(keys_file: &Path, principal: &str, allow: &str) -> Key {
    let out = Command::new(binary("roentgen-web"))
        .args(["keys", "--keys-file"])
        .arg(keys_file)
        .args(["create", "--principal", principal, "--allow", allow])
        .output()
        .expect("run roentgen-web keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("test setup");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    Key {
        id: field("access_key_id="),
        secret: field("secret_access_key="),
    }
}

/// Runs `aws xray ARGS` signed with `key`; returns (success, stdout, stderr).
fn aws(collector: &Collector, key: &Key, args: &[&str]) -> (bool, String, String) {
    aws_xray(
        collector,
        Some((&key.id, &key.secret)),
        "eu-central-1",
        args,
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Setup {
    _dir: tempfile::TempDir,
    collector: Collector,
    audit: std::path::PathBuf,
    writer: Key,
    reader: Key,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let writer = create_key(&keys, "daemon", "xray:PutTraceSegments");
    let reader = create_key(&keys, "reader", "xray:Get*,xray:BatchGetTraces");
    let audit = dir.path().join("audit.jsonl");
    let collector = Collector::start(
        &dir.path().join("data"),
        &[
            "--auth-keys",
            keys.to_str().expect("test setup"),
            "--audit-log",
            audit.to_str().expect("test setup"),
        ],
    );
    Setup {
        _dir: dir,
        collector,
        audit,
        writer,
        reader,
    }
}

#[test]
fn the_aws_cli_with_roentgen_keys_sends_and_reads_by_policy() {
    let s = setup();
    let trace = format!("1-{:08x}-bd862e3fe1be46a994272793", now() as u64);
    let doc = format!(
        r#"{{"name":"checkout","id":"70de5b6f19ff9a0a","trace_id":"{trace}","start_time":{},"end_time":{}}}"#,
        now() - 1.0,
        now()
    );
    let (ok, out, err) = aws(
        &s.collector,
        &s.writer,
        &["put-trace-segments", "--trace-segment-documents", &doc],
    );
    assert!(ok, "{out}{err}");
    let window = [
        "get-trace-summaries",
        "--start-time",
        &format!("{}", now() as u64 - 600),
        "--end-time",
        &format!("{}", now() as u64 + 600),
    ];
    let (ok, _, err) = aws(&s.collector, &s.writer, &window);
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains("xray:GetTraceSummaries"), "{err}");
    let found = eventually(Duration::from_secs(30), || {
        let (ok, out, err) = aws(&s.collector, &s.reader, &window);
        assert!(ok, "{err}");
        out.contains(&trace).then_some(())
    });
    assert!(found.is_some(), "the reader never saw {trace}");
    let (ok, _, err) = aws(
        &s.collector,
        &s.reader,
        &["put-trace-segments", "--trace-segment-documents", &doc],
    );
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");

    let wrong = Key {
        id: s.reader.id.clone(),
        secret: format!("{}x", s.reader.secret),
    };
    let (ok, _, err) = aws(&s.collector, &wrong, &window);
    assert!(!ok && err.contains("InvalidSignatureException"), "{err}");
    let unknown = Key {
        id: "RKIAAAAAAAAAAAAAAAAA".into(),
        secret: s.reader.secret.clone(),
    };
    let (ok, _, err) = aws(&s.collector, &unknown, &window);
    assert!(!ok && err.contains("UnrecognizedClientException"), "{err}");

    let lines: Vec<Value> = std::fs::read_to_string(&s.audit)
        .expect("test setup")
        .lines()
        .map(|l| serde_json::from_str(l).expect("test setup"))
        .collect();
    assert!(lines.iter().any(|l| l["principal"] == "daemon"
        && l["action"] == "xray:PutTraceSegments"
        && l["allowed"] == true));
    assert!(
        lines
            .iter()
            .any(|l| l["accessKeyId"].as_str() == Some(&s.writer.id)
                && l["action"] == "xray:GetTraceSummaries"
                && l["allowed"] == false
                && l["error"] == "AccessDeniedException")
    );
    assert!(lines.iter().all(|l| l["sourceIp"] == "127.0.0.1"));

    let out = Command::new(binary("roentgen-web"))
        .args(["keys", "--keys-file"])
        .arg(s._dir.path().join("keys.json"))
        .args(["revoke", &s.reader.id])
        .output()
        .expect("run roentgen-web keys revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = eventually(Duration::from_secs(30), || {
        let (ok, _, err) = aws(&s.collector, &s.reader, &window);
        (!ok && err.contains("UnrecognizedClientException")).then_some(())
    });
    assert!(refused.is_some(), "a revoked key still worked");
}

#[test]
fn botocore_signs_with_a_roentgen_key() {
    let s = setup();
    let script = r#"
import sys, botocore.session
session = botocore.session.get_session()
client = session.create_client("xray", region_name="us-west-2", endpoint_url=sys.argv[1],
                               aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
print(len(client.get_groups()["Groups"]))
try:
    client.put_trace_segments(TraceSegmentDocuments=[])
    print("put allowed")
except client.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
"#;
    let out = Command::new(python())
        .args([
            "-c",
            script,
            &s.collector.endpoint_url(),
            &s.reader.id,
            &s.reader.secret,
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["0", "AccessDeniedException"]);
}

#[test]
fn unsigned_and_replayed_requests_and_anonymous_dashboard_visitors_are_refused() {
    let s = setup();
    let address = &s.collector.address;
    let unsigned = request(address, "POST", "/Groups", &[], "{}");
    assert_eq!(unsigned.status, 403);
    assert_eq!(
        unsigned.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    let page = request(address, "GET", "/", &[], "");
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.header("location"), Some("/signin"));
    let page = request(address, "GET", "/traces", &[], "");
    assert_eq!(page.status, 303, "{}", page.body);

    let date = format_amz_date(now() as i64);
    let headers = [("host", address.as_str()), ("x-amz-date", date.as_str())];
    let signer = Signer {
        access_key_id: &s.reader.id,
        secret: &s.reader.secret,
        region: "us-east-1",
        service: "xray",
    };
    let signable = SignableRequest {
        method: "POST",
        path: "/Groups",
        query: "",
        headers: &headers,
    };
    let authorization = signer
        .authorization(&signable, b"{}", &date)
        .expect("test setup");
    let sent = [
        ("x-amz-date", date.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let first = request(address, "POST", "/Groups", &sent, "{}");
    assert_eq!(first.status, 200, "{}", first.body);
    let again = request(address, "POST", "/Groups", &sent, "{}");
    assert_eq!(again.status, 403);
    assert!(again.body.contains("replayed"), "{}", again.body);

    let old = format_amz_date(now() as i64 - 3600);
    let headers = [("host", address.as_str()), ("x-amz-date", old.as_str())];
    let signable = SignableRequest {
        headers: &headers,
        ..signable
    };
    let authorization = signer
        .authorization(&signable, b"{}", &old)
        .expect("test setup");
    let expired = request(
        address,
        "POST",
        "/Groups",
        &[
            ("x-amz-date", old.as_str()),
            ("authorization", authorization.as_str()),
        ],
        "{}",
    );
    assert_eq!(expired.status, 403);
    assert!(expired.body.contains("expired"), "{}", expired.body);
}

#[test]
fn no_auth_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("test setup");
    let mut child = Command::new(binary("roentgen-web"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run roentgen-web");
    let status = eventually(Duration::from_secs(30), || {
        child.try_wait().expect("test setup")
    });
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("test setup");
    assert!(
        status.is_some_and(|s| !s.success()),
        "it served without auth on 0.0.0.0"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure") && err.contains("--auth-keys"),
        "{err}"
    );
}

#[test]
fn the_daemon_signs_with_its_own_key() {
    let s = setup();
    // A key made while the collector runs: it reloads the keys file.
    let edge = create_key(
        &s._dir.path().join("keys.json"),
        "edge",
        "xray:PutTraceSegments,xray:GetSamplingRules",
    );
    let daemon = roentgen_tests::daemon::Daemon::start(
        &s.collector.endpoint_url(),
        &[
            "--access-key-id",
            &edge.id,
            "--secret-access-key",
            &edge.secret,
            "--region",
            "ap-southeast-2",
            "--flush-interval-ms",
            "50",
        ],
    );
    let trace = format!("1-{:08x}-0123456789abcdef01234567", now() as u64);
    let doc = format!(
        r#"{{"name":"edge","id":"5759e988bd862e3f","trace_id":"{trace}","start_time":{},"end_time":{}}}"#,
        now() - 1.0,
        now()
    );
    let rules = eventually(Duration::from_secs(30), || {
        let r = request(&daemon.tcp, "POST", "/GetSamplingRules", &[], "{}");
        (r.status == 200).then_some(r.body)
    });
    assert!(
        rules.is_some_and(|b| b.contains("SamplingRuleRecords")),
        "the sampling proxy's signed request was never accepted"
    );
    let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{doc}");
    daemon
        .socket()
        .send(datagram.as_bytes())
        .expect("send datagram");
    let window = [
        "get-trace-summaries",
        "--start-time",
        &format!("{}", now() as u64 - 600),
        "--end-time",
        &format!("{}", now() as u64 + 600),
    ];
    let found = eventually(Duration::from_secs(30), || {
        let (ok, out, err) = aws(&s.collector, &s.reader, &window);
        assert!(ok, "{err}");
        out.contains(&trace).then_some(())
    });
    assert!(found.is_some(), "the daemon's signed batch never arrived");
    let audit = std::fs::read_to_string(&s.audit).expect("audit log");
    assert!(
        audit.lines().any(|l| l.contains("\"principal\":\"edge\"")
            && l.contains("xray:PutTraceSegments")
            && l.contains("\"allowed\":true")),
        "{audit}"
    );
}
