//! Group-scoped keys over real HTTP: the group a call is authorized on is the group it is
//! answered with. Every operation that takes a group, with every way of naming two groups, as
//! a group-scoped reader and a group-scoped administrator would send them (the AWS CLI where
//! the API model lets it say so, our signer for the fields the CLI refuses to send).

use std::time::Duration;

use roentgen_tests::eventually;
use roentgen_tests::web::Collector;
use serde_json::{Value, json};

use crate::security::{Key, aws, create_key, create_key_with, now, signed_post, start_collector};

const WEB_ARN: &str = "arn:aws:xray:us-east-1:000000000000:group/web";
const BILLING_ARN: &str = "arn:aws:xray:us-east-1:000000000000:group/billing";

struct Setup {
    _dir: tempfile::TempDir,
    collector: Collector,
    admin: Key,
    /// `xray:Get*` and `xray:BatchGetTraces` on `group/web` only.
    reader: Key,
    /// `xray:*` on `group/web*`.
    web_admin: Key,
    web_trace: String,
    billing_trace: String,
}

fn policy_key(dir: &std::path::Path, principal: &str, policy: &str) -> Key {
    let file = dir.join(format!("{principal}.json"));
    std::fs::write(&file, policy).expect("test setup");
    create_key_with(
        &dir.join("keys.json"),
        &[
            "--principal",
            principal,
            "--policy",
            file.to_str().expect("test setup"),
        ],
    )
}

/// Groups `web` (service frontend-web) and `billing` (service billing-api), one trace of each.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("test setup");
    let writer = create_key(
        &dir.path().join("keys.json"),
        "daemon",
        "xray:PutTraceSegments",
    );
    let admin = create_key(&dir.path().join("keys.json"), "admin", "xray:*");
    let reader = policy_key(
        dir.path(),
        "web-reader",
        r#"{"Statement":[{"Effect":"Allow","Action":["xray:Get*","xray:BatchGetTraces"],
            "Resource":"arn:aws:xray:*:*:group/web"}]}"#,
    );
    let web_admin = policy_key(
        dir.path(),
        "web-admin",
        r#"{"Statement":[{"Effect":"Allow","Action":"xray:*","Resource":"arn:aws:xray:*:*:group/web*"}]}"#,
    );
    let (collector, _) = start_collector(dir.path());
    let address = collector.address.clone();
    for (i, (group, service)) in [("web", "frontend-web"), ("billing", "billing-api")]
        .iter()
        .enumerate()
    {
        let body =
            json!({"GroupName": group, "FilterExpression": format!("service(\"{service}\")")});
        let r = signed_post(
            &address,
            &admin,
            "/CreateGroup",
            &body.to_string(),
            i as u64,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let t = now();
    let web_trace = format!("1-{:08x}-0000000000000000000000c1", t as u64);
    let billing_trace = format!("1-{:08x}-0000000000000000000000c2", t as u64);
    let docs: Vec<String> = [
        ("frontend-web", &web_trace, "3000000000000001"),
        ("billing-api", &billing_trace, "3000000000000002"),
    ]
    .iter()
    .map(|(name, trace, id)| {
        json!({"name": name, "id": id, "trace_id": trace, "start_time": t - 2.0, "end_time": t - 1.0})
            .to_string()
    })
    .collect();
    let r = signed_post(
        &address,
        &writer,
        "/TraceSegments",
        &Collector::put_body(&docs),
        10,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let s = Setup {
        _dir: dir,
        collector,
        admin,
        reader,
        web_admin,
        web_trace,
        billing_trace,
    };
    let both = eventually(Duration::from_secs(30), || {
        let ids = summaries(&s, &s.admin, &json!({}));
        (ids.contains(&s.web_trace) && ids.contains(&s.billing_trace)).then_some(())
    });
    assert!(both.is_some(), "the admin never saw both traces");
    s
}

fn window(extra: &Value) -> String {
    let mut body = json!({"StartTime": now() - 600.0, "EndTime": now() + 600.0});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string()
}

/// Trace ids a signed `GetTraceSummaries` returns (panics on a refusal).
fn summaries(s: &Setup, key: &Key, extra: &Value) -> Vec<String> {
    let r = post(s, key, "/TraceSummaries", &window(extra));
    assert_eq!(r.0, 200, "{}", r.1);
    let v: Value = serde_json::from_str(&r.1).expect("JSON answer");
    v["TraceSummaries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["Id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn post(s: &Setup, key: &Key, path: &str, body: &str) -> (u16, String) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let r = signed_post(&s.collector.address, key, path, body, seq);
    (r.status, r.body)
}

fn assert_invalid(r: (u16, String), what: &str) {
    assert_eq!(r.0, 400, "{what}: {}", r.1);
    assert!(r.1.contains("InvalidRequestException"), "{what}: {}", r.1);
}

fn cli_window() -> [String; 4] {
    [
        "--start-time".to_owned(),
        format!("{}", now() as u64 - 600),
        "--end-time".to_owned(),
        format!("{}", now() as u64 + 600),
    ]
}

#[test]
fn a_group_scoped_reader_gets_only_its_group_whatever_the_request_names() {
    let s = setup();
    // GroupName on GetTraceSummaries is honoured: the answer is the group's traces.
    let ids = summaries(&s, &s.reader, &json!({"GroupName": "web"}));
    assert!(ids.contains(&s.web_trace), "{ids:?}");
    assert!(
        !ids.contains(&s.billing_trace),
        "read billing through GroupName web: {ids:?}"
    );
    let ids = summaries(
        &s,
        &s.reader,
        &json!({"GroupARN": WEB_ARN, "FilterExpression": "ok"}),
    );
    assert_eq!(ids, std::slice::from_ref(&s.web_trace));
    // Two groups in one request are refused, wherever the second one hides.
    for extra in [
        json!({"GroupName": "web", "FilterExpression": "group.name = \"billing\""}),
        json!({"GroupName": "web", "FilterExpression": "fault OR group.name = \"billing\""}),
        json!({"GroupName": "web", "GroupARN": BILLING_ARN}),
        json!({"FilterExpression": format!("group.arn = \"{WEB_ARN}/billing\"")}),
        json!({"GroupARN": format!("{WEB_ARN}/billing")}),
        json!({"GroupName": "web/billing"}),
    ] {
        assert_invalid(
            post(&s, &s.reader, "/TraceSummaries", &window(&extra)),
            &extra.to_string(),
        );
    }
    // The service graph and the time series, through the real AWS CLI.
    for op in ["get-service-graph", "get-time-series-service-statistics"] {
        let w = cli_window();
        let mut args: Vec<&str> = vec![op];
        args.extend(w.iter().map(String::as_str));
        let with = |more: &[&str]| {
            let mut a = args.clone();
            a.extend_from_slice(more);
            aws(&s.collector, &s.reader, &a)
        };
        let (ok, out, err) = with(&["--group-name", "web"]);
        assert!(ok, "{op}: {err}");
        if op == "get-service-graph" {
            assert!(
                out.contains("frontend-web") && !out.contains("billing-api"),
                "{out}"
            );
        }
        for mix in [
            ["--group-arn", WEB_ARN, "--group-name", "billing"].as_slice(),
            &["--group-name", "web", "--group-arn", BILLING_ARN],
            &["--group-arn", &format!("{WEB_ARN}/billing")],
            &[
                "--group-arn",
                "arn:aws:xray:us-east-1:000000000000:group/../billing",
            ],
        ] {
            let (ok, out, err) = with(mix);
            assert!(
                !ok && err.contains("InvalidRequestException"),
                "{op} {mix:?}: {out}{err}"
            );
            assert!(!out.contains("billing-api"), "{op} {mix:?}: {out}");
        }
        let (ok, _, err) = with(&["--group-name", "billing"]);
        assert!(!ok && err.contains("AccessDeniedException"), "{op}: {err}");
    }
    // GetGroup with a mix names two groups.
    let (ok, _, err) = aws(
        &s.collector,
        &s.reader,
        &[
            "get-group",
            "--group-arn",
            WEB_ARN,
            "--group-name",
            "billing",
        ],
    );
    assert!(!ok && err.contains("InvalidRequestException"), "{err}");
}

#[test]
fn a_group_scoped_admin_cannot_change_another_group() {
    let s = setup();
    let billing_filter = || {
        let (ok, out, err) = aws(
            &s.collector,
            &s.admin,
            &["get-group", "--group-name", "billing"],
        );
        assert!(ok, "billing is gone: {err}");
        let v: Value = serde_json::from_str(&out).expect("JSON");
        v["Group"]["FilterExpression"].as_str().map(str::to_owned)
    };
    for mix in [
        ["--group-arn", WEB_ARN, "--group-name", "billing"].as_slice(),
        &["--group-arn", &format!("{WEB_ARN}/billing")],
    ] {
        let mut update = vec!["update-group", "--filter-expression", "service(\"x\")"];
        update.extend_from_slice(mix);
        let (ok, _, err) = aws(&s.collector, &s.web_admin, &update);
        assert!(
            !ok && err.contains("InvalidRequestException"),
            "update {mix:?}: {err}"
        );
        let mut delete = vec!["delete-group"];
        delete.extend_from_slice(mix);
        let (ok, _, err) = aws(&s.collector, &s.web_admin, &delete);
        assert!(
            !ok && err.contains("InvalidRequestException"),
            "delete {mix:?}: {err}"
        );
        assert_eq!(
            billing_filter().as_deref(),
            Some("service(\"billing-api\")")
        );
    }
    // A group's filter may not pull in another group's traces.
    let (ok, _, err) = aws(
        &s.collector,
        &s.web_admin,
        &[
            "update-group",
            "--group-name",
            "web",
            "--filter-expression",
            "group.name = \"billing\"",
        ],
    );
    assert!(!ok && err.contains("InvalidRequestException"), "{err}");
    // Its own group it may change, by name or by ARN.
    let (ok, _, err) = aws(
        &s.collector,
        &s.web_admin,
        &[
            "update-group",
            "--group-arn",
            WEB_ARN,
            "--filter-expression",
            "service(\"frontend-web\") AND ok",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = aws(
        &s.collector,
        &s.web_admin,
        &["delete-group", "--group-name", "billing"],
    );
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");
    assert!(billing_filter().is_some());
}
