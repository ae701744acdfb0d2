//! Security end to end: keys made by `roentgen-web keys`, a collector with `--auth-keys`, the
//! real AWS CLI and botocore signing with Roentgen keys, refusals of unsigned, wrongly signed and
//! replayed requests, per-principal policies, the anonymous dashboard and the audit log (the
//! refusal to serve without auth off loopback is in `listeners.rs`).

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
    create_key_with(keys_file, &["--principal", principal, "--allow", allow])
}

/// Runs `aws xray ARGS` signed with `key`; returns (success, stdout, stderr).
pub(crate) fn aws(collector: &Collector, key: &Key, args: &[&str]) -> (bool, String, String) {
    aws_xray(
        collector,
        Some((&key.id, &key.secret)),
        "eu-central-1",
        args,
    )
}

pub(crate) fn now() -> f64 {
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

/// Starts a collector over `DIR/keys.json` with its audit log in `DIR/audit.jsonl`.
pub(crate) fn start_collector(dir: &Path) -> (Collector, std::path::PathBuf) {
    let audit = dir.join("audit.jsonl");
    let keys = dir.join("keys.json");
    let collector = Collector::start(
        &dir.join("data"),
        &[
            "--auth-keys",
            keys.to_str().expect("test setup"),
            "--audit-log",
            audit.to_str().expect("test setup"),
        ],
    );
    (collector, audit)
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let writer = create_key(&keys, "daemon", "xray:PutTraceSegments");
    let reader = create_key(&keys, "reader", "xray:Get*,xray:BatchGetTraces");
    let (collector, audit) = start_collector(dir.path());
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

    revoke_key(&s._dir.path().join("keys.json"), &s.reader.id);
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

/// Runs `roentgen-web keys --keys-file FILE create ARGS` and returns the key it made.
pub(crate) fn create_key_with(keys_file: &Path, args: &[&str]) -> Key {
    let out = Command::new(binary("roentgen-web"))
        .args(["keys", "--keys-file"])
        .arg(keys_file)
        .arg("create")
        .args(args)
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

/// Runs `roentgen-web keys --keys-file FILE revoke ID`.
pub(crate) fn revoke_key(keys_file: &Path, access_key_id: &str) {
    let out = Command::new(binary("roentgen-web"))
        .args(["keys", "--keys-file"])
        .arg(keys_file)
        .args(["revoke", access_key_id])
        .output()
        .expect("run roentgen-web keys revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// POSTs `body` to `path` signed with `key` (a fresh signature each call: `seq` is signed).
pub(crate) fn signed_post(
    address: &str,
    key: &Key,
    path: &str,
    body: &str,
    seq: u64,
) -> roentgen_tests::http::Response {
    signed_request(address, key, "POST", path, body, seq)
}

/// Sends `method path` with `body`, signed with `key` (`seq` is signed, so each call differs).
pub(crate) fn signed_request(
    address: &str,
    key: &Key,
    method: &str,
    path: &str,
    body: &str,
    seq: u64,
) -> roentgen_tests::http::Response {
    let date = format_amz_date(now() as i64);
    let seq = seq.to_string();
    let headers = [
        ("host", address),
        ("x-amz-date", date.as_str()),
        ("x-roentgen-seq", seq.as_str()),
    ];
    let signer = Signer {
        access_key_id: &key.id,
        secret: &key.secret,
        region: "us-east-1",
        service: "xray",
    };
    let signable = SignableRequest {
        method,
        path,
        query: "",
        headers: &headers,
    };
    let authorization = signer
        .authorization(&signable, body.as_bytes(), &date)
        .expect("test setup");
    request(
        address,
        method,
        path,
        &[
            ("x-amz-date", date.as_str()),
            ("x-roentgen-seq", seq.as_str()),
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// The value of cookie `name` set by a response.
fn set_cookie(response: &roentgen_tests::http::Response, name: &str) -> String {
    response
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers))
        .to_owned()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs in to the dashboard with the form (CSRF cookie and field); returns the session cookie.
pub(crate) fn sign_in(address: &str, key: &Key) -> String {
    let form = request(address, "GET", "/signin", &[], "");
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = set_cookie(&form, "roentgen_csrf");
    let body = format!(
        "access_key_id={}&secret_access_key={}&csrf={}",
        form_encode(&key.id),
        form_encode(&key.secret),
        form_encode(&csrf)
    );
    let cookie = format!("roentgen_csrf={csrf}");
    let done = request(
        address,
        "POST",
        "/signin",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", cookie.as_str()),
        ],
        &body,
    );
    assert_eq!(done.status, 303, "{}", done.body);
    format!("roentgen_session={}", set_cookie(&done, "roentgen_session"))
}

/// GETs a dashboard page with a session cookie.
pub(crate) fn page(address: &str, path: &str, session: &str) -> roentgen_tests::http::Response {
    request(address, "GET", path, &[("cookie", session)], "")
}

struct Dashboard {
    _dir: tempfile::TempDir,
    collector: Collector,
    writer: Key,
    admin: Key,
    web_team: Key,
}

/// Makes a key for principal `web-team`, allowed `xray:Get*` on the group `web` only, in
/// `DIR/keys.json` (its policy in `DIR/web-team.json`).
pub(crate) fn create_web_team_key(dir: &Path) -> Key {
    let policy = dir.join("web-team.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"xray:Get*",
            "Resource":"arn:aws:xray:*:*:group/web"}]}"#,
    )
    .expect("test setup");
    let policy = policy.to_str().expect("test setup");
    create_key_with(
        &dir.join("keys.json"),
        &["--principal", "web-team", "--policy", policy],
    )
}

fn dashboard_setup() -> Dashboard {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let writer = create_key(&keys, "daemon", "xray:PutTraceSegments");
    let admin = create_key(&keys, "admin", "xray:*");
    let web_team = create_web_team_key(dir.path());
    let (collector, _) = start_collector(dir.path());
    Dashboard {
        _dir: dir,
        collector,
        writer,
        admin,
        web_team,
    }
}

#[test]
fn a_group_scoped_reader_sees_only_its_group_on_the_dashboard() {
    let d = dashboard_setup();
    let address = d.collector.address.as_str();
    for (i, (name, service)) in [("web", "frontend-web"), ("db", "ledger-db")]
        .iter()
        .enumerate()
    {
        let body = serde_json::json!({
            "GroupName": name,
            "FilterExpression": format!("service(\"{service}\")"),
        })
        .to_string();
        let r = signed_post(address, &d.admin, "/CreateGroup", &body, i as u64);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let t = now();
    let web_trace = format!("1-{:08x}-0000000000000000000000a1", t as u64);
    let db_trace = format!("1-{:08x}-0000000000000000000000b2", t as u64);
    let docs: Vec<String> = [
        ("frontend-web", &web_trace, "2000000000000001"),
        ("ledger-db", &db_trace, "2000000000000002"),
    ]
    .iter()
    .map(|(name, trace, id)| {
        serde_json::json!({"name": name, "id": id, "trace_id": trace,
            "start_time": t - 2.0, "end_time": t - 1.0})
        .to_string()
    })
    .collect();
    let put = serde_json::json!({ "TraceSegmentDocuments": docs }).to_string();
    let r = signed_post(address, &d.writer, "/TraceSegments", &put, 10);
    assert_eq!(r.status, 200, "{}", r.body);

    let admin = sign_in(address, &d.admin);
    let stored = eventually(Duration::from_secs(60), || {
        let list = page(address, "/traces?window=1d", &admin);
        (list.status == 200 && list.body.contains(&web_trace) && list.body.contains(&db_trace))
            .then_some(())
    });
    assert!(stored.is_some(), "the admin never saw both traces");

    let web = sign_in(address, &d.web_team);
    let list = page(address, "/traces?window=1d", &web);
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&web_trace), "{}", list.body);
    assert!(!list.body.contains(&db_trace), "{}", list.body);
    assert!(!list.body.contains("All traces"), "{}", list.body);
    assert!(!list.body.contains("Group: db"), "{}", list.body);
    let map = page(address, "/?window=1d", &web);
    assert_eq!(map.status, 200, "{}", map.body);
    assert!(map.body.contains("frontend-web"), "{}", map.body);
    assert!(!map.body.contains("ledger-db"), "{}", map.body);
    let other = page(address, "/traces?window=1d&group=db", &web);
    assert_eq!(other.status, 403, "{}", other.body);
    let outside = page(address, &format!("/traces/{db_trace}"), &web);
    assert_eq!(outside.status, 404, "{}", outside.body);
    assert!(!outside.body.contains("ledger-db"), "{}", outside.body);
    let inside = page(address, &format!("/traces/{web_trace}"), &web);
    assert_eq!(inside.status, 200, "{}", inside.body);
    let admin_view = page(address, &format!("/traces/{db_trace}"), &admin);
    assert_eq!(admin_view.status, 200, "{}", admin_view.body);
}

#[test]
fn the_audit_page_shows_allowed_and_denied_calls_to_those_allowed() {
    let d = dashboard_setup();
    let address = d.collector.address.as_str();
    let allowed = signed_post(
        address,
        &d.writer,
        "/TraceSegments",
        r#"{"TraceSegmentDocuments":[]}"#,
        1,
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let denied = signed_post(address, &d.writer, "/Groups", "{}", 2);
    assert_eq!(denied.status, 403, "{}", denied.body);

    // A principal without xray:GetAuditEvents: a 403 page, and no link to it.
    let group = r#"{"GroupName":"web","FilterExpression":"service(\"frontend-web\")"}"#;
    let created = signed_post(address, &d.admin, "/CreateGroup", group, 3);
    assert_eq!(created.status, 200, "{}", created.body);
    let web = sign_in(address, &d.web_team);
    let refused = page(address, "/audit", &web);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("xray:GetAuditEvents"),
        "{}",
        refused.body
    );
    let home = page(address, "/", &web);
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(!home.body.contains("id=\"audit-link\""));
    // Anonymous visitors are sent to sign in.
    let anonymous = request(address, "GET", "/audit", &[], "");
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/signin"));

    let admin = sign_in(address, &d.admin);
    let audit = page(address, "/audit?principal=daemon", &admin);
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(audit.body.contains("id=\"audit-link\""));
    let row = |allowed: bool, action: &str, principal: &str| {
        format!(
            "data-allowed=\"{allowed}\" data-action=\"{action}\" data-principal=\"{principal}\""
        )
    };
    assert!(
        audit
            .body
            .contains(&row(true, "xray:PutTraceSegments", "daemon")),
        "{}",
        audit.body
    );
    assert!(
        audit.body.contains(&row(false, "xray:GetGroups", "daemon")),
        "{}",
        audit.body
    );
    let denied_only = page(address, "/audit?outcome=denied", &admin);
    assert!(
        denied_only
            .body
            .contains(&row(false, "xray:GetGroups", "daemon"))
    );
    assert!(
        denied_only
            .body
            .contains(&row(false, "xray:GetAuditEvents", "web-team"))
    );
    assert!(
        !denied_only.body.contains("data-allowed=\"true\""),
        "{}",
        denied_only.body
    );
}

#[test]
fn a_principal_past_its_rate_limit_gets_429_while_another_is_unaffected() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let slow = create_key_with(
        &keys,
        &[
            "--principal",
            "slow",
            "--allow",
            "xray:GetGroups",
            "--rate-limit",
            "0.1:3",
        ],
    );
    let other = create_key(&keys, "other", "xray:GetGroups");
    let (collector, audit) = start_collector(dir.path());
    let address = collector.address.as_str();
    // 0.1 request/s with a burst of 3: a 429 comes within a few requests.
    let mut throttled = None;
    for seq in 0..50 {
        let r = signed_post(address, &slow, "/Groups", "{}", seq);
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = throttled.expect("the slow principal was never throttled");
    assert_eq!(r.header("x-amzn-errortype"), Some("ThrottledException"));
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header");
    assert!(retry >= 1, "{retry}");
    let body: Value = serde_json::from_str(&r.body).expect("a JSON body");
    assert_eq!(body["__type"], "ThrottledException");
    assert_eq!(body["message"], "Rate exceeded");
    for seq in 100..110 {
        let r = signed_post(address, &other, "/Groups", "{}", seq);
        assert_eq!(r.status, 200, "another principal was throttled: {}", r.body);
    }
    let lines = std::fs::read_to_string(&audit).expect("audit log");
    assert!(
        lines.lines().any(|l| {
            let v: Value = serde_json::from_str(l).expect("audit line");
            v["principal"] == "slow" && v["error"] == "ThrottledException" && v["allowed"] == false
        }),
        "{lines}"
    );
}
