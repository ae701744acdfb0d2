//! The collector end to end: the real `roentgen-web` binary over loopback HTTP, driven by the
//! real AWS CLI, and killed with SIGKILL in the middle of ingest.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roentgen_tests::web::{Collector, aws_xray, json_string, post_to};
use roentgen_tests::{data, eventually};
use serde_json::Value;

fn capture_documents(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(&format!("captures/{name}"))).expect("capture");
    text.split("--- datagram")
        .skip(1)
        .map(|block| {
            let body = block.split_once("---\n").expect("marker").1.trim_end();
            let doc = roentgen_sdk::model::split_datagram(body.as_bytes()).expect("framing");
            String::from_utf8(doc.to_vec()).expect("utf-8")
        })
        .collect()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `aws xray ARGS` against the collector, unsigned; returns (success, stdout, stderr).
fn aws(collector: &Collector, args: &[&str]) -> (bool, String, String) {
    aws_xray(collector, None, "us-east-1", args)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_aws_cli_works_against_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--retention-days", "36500"]);
    let py = capture_documents("python-sdk-2.15-checkout.txt");
    let node = capture_documents("node-sdk-3.12-checkout.txt");
    let docs: Vec<&str> = py.iter().chain(node.iter()).map(String::as_str).collect();
    let mut args = vec!["put-trace-segments", "--trace-segment-documents"];
    args.extend(docs.iter().copied());
    args.push("{\"name\":\"broken\"}");
    let (ok, out, err) = aws(&collector, &args);
    assert!(ok, "put-trace-segments: {err}");
    let unprocessed = &json(&out)["UnprocessedTraceSegments"];
    assert_eq!(unprocessed.as_array().map(Vec::len), Some(1), "{out}");

    let window = ["--start-time", "1795900000", "--end-time", "1795910000"];
    let mut args = vec!["get-trace-summaries"];
    args.extend(window);
    args.extend([
        "--filter-expression",
        "annotation.order_id = \"ord-9f8e7d\" AND http.useragent ENDSWITH \"(python)\"",
    ]);
    let (ok, out, err) = aws(&collector, &args);
    assert!(ok, "get-trace-summaries: {err}");
    let summaries = json(&out)["TraceSummaries"].as_array().cloned().unwrap();
    assert_eq!(summaries.len(), 1, "{out}");
    assert_eq!(summaries[0]["Id"], "1-6b0b563f-bd5f12f36c129ba2856caf10");
    assert_eq!(summaries[0]["HasFault"], true);
    assert_eq!(summaries[0]["Http"]["HttpStatus"], 502);
    // The fault started at the payments call (inferred: payments sent no segment), whose
    // exception the CLI shows in the root cause.
    let cause = &summaries[0]["FaultRootCauses"][0];
    assert_eq!(cause["ClientImpacting"], true, "{out}");
    assert_eq!(cause["Services"][0]["Name"], "checkout-api", "{out}");
    assert_eq!(
        cause["Services"][1]["Name"], "payments.example.com",
        "{out}"
    );
    assert_eq!(cause["Services"][1]["Inferred"], true, "{out}");
    let entity = &cause["Services"][1]["EntityPath"][0];
    assert_eq!(entity["Remote"], true, "{out}");
    assert_eq!(
        entity["Exceptions"][0]["Name"], "PaymentGatewayError",
        "{out}"
    );
    assert!(
        summaries[0]["ResponseTimeRootCauses"][0]["Services"][0]["EntityPath"][0]["Coverage"]
            .as_f64()
            .is_some(),
        "{out}"
    );

    // By segment end time, with a fixed-rate sample of everything (1.0 keeps all).
    let mut args = vec!["get-trace-summaries"];
    args.extend(window);
    args.extend([
        "--time-range-type",
        "Service",
        "--sampling-strategy",
        "Name=FixedRate,Value=1.0",
        "--filter-expression",
        "annotation.order_id = \"ord-9f8e7d\"",
    ]);
    let (ok, out, err) = aws(&collector, &args);
    assert!(ok, "get-trace-summaries --time-range-type Service: {err}");
    let summaries = json(&out)["TraceSummaries"].as_array().cloned().unwrap();
    assert!(
        summaries
            .iter()
            .any(|s| s["Id"] == "1-6b0b563f-bd5f12f36c129ba2856caf10"
                && s["MatchedEventTime"].as_f64().is_some()),
        "{out}"
    );

    let (ok, _, err) = aws(
        &collector,
        &[
            "get-trace-summaries",
            "--start-time",
            "1795900000",
            "--end-time",
            "1795910000",
            "--filter-expression",
            "fault AND",
        ],
    );
    assert!(!ok);
    assert!(err.contains("InvalidRequestException"), "{err}");
    assert!(err.contains("column 10"), "{err}");

    let (ok, out, err) = aws(
        &collector,
        &[
            "batch-get-traces",
            "--trace-ids",
            "1-6b0b563f-bd5f12f36c129ba2856caf10",
            "1-6b0b5685-52845a3a3ed0b32c21896cfd",
        ],
    );
    assert!(ok, "batch-get-traces: {err}");
    let traces = json(&out)["Traces"].as_array().cloned().unwrap();
    assert_eq!(traces.len(), 2, "{out}");
    for t in &traces {
        let doc = json(t["Segments"][0]["Document"].as_str().unwrap());
        assert_eq!(doc["name"], "checkout-api");
    }

    let mut args = vec!["get-service-graph"];
    args.extend(window);
    let (ok, out, err) = aws(&collector, &args);
    assert!(ok, "get-service-graph: {err}");
    let services = json(&out)["Services"].as_array().cloned().unwrap();
    let names: Vec<&str> = services.iter().filter_map(|s| s["Name"].as_str()).collect();
    for expected in ["checkout-api", "client", "payments.example.com", "DynamoDB"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let checkout = services
        .iter()
        .find(|s| s["Name"] == "checkout-api")
        .unwrap();
    assert_eq!(checkout["SummaryStatistics"]["TotalCount"], 2);
    assert_eq!(
        checkout["SummaryStatistics"]["FaultStatistics"]["TotalCount"],
        2
    );

    let (ok, out, err) = aws(&collector, &["get-sampling-rules"]);
    assert!(ok, "get-sampling-rules: {err}");
    let rules = json(&out)["SamplingRuleRecords"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(rules[0]["SamplingRule"]["RuleName"], "Default");
    assert_eq!(rules[0]["SamplingRule"]["FixedRate"], 0.05);
}

#[test]
fn kill_9_during_ingest_loses_nothing_acknowledged() {
    kill_9_loses_nothing_acknowledged(&[]);
}

#[test]
fn kill_9_during_ingest_on_clickhouse_26_loses_nothing_acknowledged() {
    use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
    let server = LocalServer::start_engine(&Engine::chdb()).unwrap();
    let url = server.url();
    kill_9_loses_nothing_acknowledged(&["--store", "clickhouse", "--clickhouse-url", &url]);
}

/// Kills the collector (started with `store_args`) with SIGKILL while a client posts batches;
/// a new collector on the same store then returns every trace the first one acknowledged.
#[allow(clippy::unwrap_used)] // a test body, run once per store
fn kill_9_loses_nothing_acknowledged(store_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), store_args);
    let start = now() - 60.0;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let address = collector.address.clone();
        let acked = acked.clone();
        std::thread::spawn(move || {
            // Bounded: at most 3000 batches; it stops at the first failed exchange.
            for batch in 0..3000u64 {
                let mut docs = Vec::new();
                let mut ids = Vec::new();
                for n in batch * 10..batch * 10 + 10 {
                    let trace = roentgen_web::synth::shop_trace(n, start + n as f64 * 0.001);
                    ids.push(json(&trace[0])["trace_id"].as_str().unwrap().to_owned());
                    docs.extend(trace);
                }
                match post_to(&address, "/TraceSegments", &Collector::put_body(&docs)) {
                    Some((200, body))
                        if json(&body)["UnprocessedTraceSegments"] == Value::Array(vec![]) =>
                    {
                        acked.lock().unwrap().extend(ids);
                    }
                    _ => return batch,
                }
            }
            3000
        })
    };
    let enough = eventually(Duration::from_secs(120), || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });
    assert!(enough.is_some(), "the collector acknowledged too little");
    collector.kill9();
    let batches = writer.join().unwrap();
    assert!(batches < 3000, "the kill interrupted ingest");
    let acked = acked.lock().unwrap().clone();

    let collector = Collector::start(dir.path(), store_args);
    for chunk in acked.chunks(100) {
        let ids: Vec<String> = chunk.iter().map(|id| json_string(id)).collect();
        let (status, body) =
            collector.post("/Traces", &format!("{{\"TraceIds\":[{}]}}", ids.join(",")));
        assert_eq!(status, 200, "{body}");
        let body = json(&body);
        assert_eq!(
            body["UnprocessedTraceIds"],
            Value::Array(vec![]),
            "acknowledged traces are missing"
        );
        let traces = body["Traces"].as_array().unwrap();
        assert_eq!(traces.len(), chunk.len());
        for t in traces {
            assert_eq!(t["Segments"].as_array().map(Vec::len), Some(2), "{t}");
        }
    }
}

#[test]
fn official_python_sdk_through_the_daemon_assembles_streamed_traces() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let daemon = roentgen_tests::daemon::Daemon::start(
        &collector.endpoint_url(),
        &["--flush-interval-ms", "100"],
    );
    let out = Command::new(roentgen_tests::daemon::python())
        .arg(data("../python/emit_streamed.py"))
        .arg("3")
        .env("AWS_XRAY_DAEMON_ADDRESS", &daemon.udp)
        .env("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")
        .output()
        .expect("run the Python SDK client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && stdout.contains("DONE"), "{stdout}");
    let ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("TRACE "))
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 3);
    let body = format!(
        "{{\"TraceIds\":[{}]}}",
        ids.iter()
            .map(|i| json_string(i))
            .collect::<Vec<_>>()
            .join(",")
    );
    // Pieces arrive streamed (subsegments first) and are grafted back into one segment each.
    let traces = eventually(Duration::from_secs(60), || {
        let (status, text) = collector.post("/Traces", &body);
        let v = json(&text);
        let done = status == 200
            && v["Traces"].as_array().is_some_and(|t| {
                t.len() == 3
                    && t.iter().all(|t| {
                        t["Segments"].as_array().is_some_and(|s| {
                            s.len() == 1
                                && json(s[0]["Document"].as_str().unwrap_or("{}"))["subsegments"]
                                    .as_array()
                                    .is_some_and(|subs| subs.len() == 45)
                        })
                    })
            });
        done.then_some(v)
    });
    assert!(
        traces.is_some(),
        "three whole traces of 45 subsegments each"
    );
    let start = now() - 600.0;
    let (status, text) = collector.post(
        "/TraceSummaries",
        &format!(
            "{{\"StartTime\":{start},\"EndTime\":{},\"FilterExpression\":\"annotation.step = 44 AND service(\\\"py-streamed\\\") {{ ok }}\"}}",
            now() + 60.0
        ),
    );
    assert_eq!(status, 200, "{text}");
    let summaries = json(&text)["TraceSummaries"].as_array().cloned().unwrap();
    assert_eq!(summaries.len(), 3, "{text}");
    assert!(summaries.iter().all(|s| s["IsPartial"] == false));
    // The daemon's sampling proxy reaches the collector's rules.
    let rules = roentgen_tests::http::request(&daemon.tcp, "POST", "/GetSamplingRules", &[], "{}");
    assert_eq!(rules.status, 200, "{}", rules.body);
    assert!(rules.body.contains("\"Default\""), "{}", rules.body);
}
