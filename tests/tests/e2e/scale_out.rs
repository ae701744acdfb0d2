//! Scale-out end to end: two ClickHouse servers as the shards of one cluster behind
//! `Distributed` tables, two `roentgen-web` collectors (one per shard as entry point) and two
//! `roentgen-daemon`s (one per collector). Every trace's documents are split between the two
//! daemons, so each trace is written through both collectors; every trace must then be found
//! whole, with the same answers, through either collector.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use roentgen_tests::web::{Collector, json_string};
use roentgen_tests::{Process, binary, eventually, http};
use roentgen_web::store::clickhouse::server::{Engine, LocalServer};
use serde_json::Value;

const TRACES: u64 = 150;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Starts `roentgen-daemon` on ephemeral loopback ports forwarding to `endpoint`; returns the
/// process and a UDP socket connected to it.
fn daemon(endpoint: &str) -> (Process, UdpSocket) {
    let mut command = Command::new(binary("roentgen-daemon"));
    command
        .args(["--bind", "127.0.0.1:0", "--bind-tcp", "127.0.0.1:0"])
        .args(["--otlp-http", "off", "--otlp-grpc", "off"])
        .args(["--endpoint", endpoint, "--flush-interval-ms", "100"])
        .env_remove("ROENTGEN_DAEMON_CONFIG");
    let process = Process::start(command);
    let line = process.wait_for_line("roentgen-daemon listening", Duration::from_secs(30));
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    socket
        .connect(Process::field(&line, "udp"))
        .expect("connect UDP");
    (process, socket)
}

fn clickhouse_collector(dir: &std::path::Path, server: &LocalServer) -> Collector {
    let url = server.url();
    Collector::start(
        dir,
        &[
            "--store",
            "clickhouse",
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            "roentgen",
            "--clickhouse-cluster",
            "roentgen",
        ],
    )
}

fn document_id(text: &str) -> String {
    json(text)["id"].as_str().unwrap_or_default().to_owned()
}

/// `BatchGetTraces` for `ids`: trace id to its documents' ids, sorted.
fn whole_traces(collector: &Collector, ids: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(50) {
        let list: Vec<String> = chunk.iter().map(|id| json_string(id)).collect();
        let (status, body) =
            collector.post("/Traces", &format!("{{\"TraceIds\":[{}]}}", list.join(",")));
        assert_eq!(status, 200, "{body}");
        for t in json(&body)["Traces"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let mut docs: Vec<String> = t["Segments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|s| document_id(s["Document"].as_str().unwrap_or_default()))
                .collect();
            docs.sort();
            out.insert(t["Id"].as_str().expect("trace Id").to_owned(), docs);
        }
    }
    out
}

/// All trace summary ids of a window, following `NextToken`; `(id, has_fault)` sorted.
fn summaries(collector: &Collector, start: f64, end: f64, filter: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut body = format!("{{\"StartTime\":{start},\"EndTime\":{end}");
        if !filter.is_empty() {
            body.push_str(&format!(",\"FilterExpression\":{}", json_string(filter)));
        }
        if let Some(t) = &token {
            body.push_str(&format!(",\"NextToken\":{}", json_string(t)));
        }
        body.push('}');
        let (status, text) = collector.post("/TraceSummaries", &body);
        assert_eq!(status, 200, "{text}");
        let page = json(&text);
        for s in page["TraceSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            out.push((
                s["Id"].as_str().expect("summary Id").to_owned(),
                s["HasFault"].as_bool().unwrap_or(false),
            ));
        }
        token = page["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    out
}

fn service_graph(collector: &Collector, start: f64, end: f64) -> Value {
    let (status, text) = collector.post(
        "/ServiceGraph",
        &format!("{{\"StartTime\":{start},\"EndTime\":{end}}}"),
    );
    assert_eq!(status, 200, "{text}");
    let mut graph = json(&text);
    let services = graph["Services"].as_array_mut().expect("Services");
    services.sort_by_key(|s| s["Name"].to_string() + &s["Type"].to_string());
    graph["Services"].clone()
}

/// `roentgen_web_<name>` of a collector's `/metrics` (0 when absent).
fn metric(collector: &Collector, name: &str) -> u64 {
    let r = http::request(&collector.address, "GET", "/metrics", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let prefix = format!("roentgen_web_{name} ");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn settled_minutes(collector: &Collector) -> u64 {
    metric(collector, "rollup_minutes_settled_total")
}

/// Rows of the trace table on one shard (its local table, not the distributed one).
fn local_traces(server: &LocalServer) -> u64 {
    let address = format!("127.0.0.1:{}", server.http_port);
    let r = http::request(
        &address,
        "POST",
        "/",
        &[],
        "SELECT uniqExact(trace_id) FROM roentgen.traces_local",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.trim().parse().expect("a count")
}

#[test]
fn two_shards_two_collectors_two_daemons_every_trace_whole_through_either() {
    every_trace_whole_through_either(&Engine::Server);
}

#[test]
fn on_clickhouse_26_two_shards_two_collectors_two_daemons_every_trace_whole_through_either() {
    every_trace_whole_through_either(&Engine::chdb());
}

#[allow(clippy::unwrap_used)] // a test body, run once per store
fn every_trace_whole_through_either(engine: &Engine) {
    let shards = LocalServer::cluster_of(engine, "roentgen", 2).unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Started together: each creates its shard's tables, and waits for the other shard's.
    let (collector_a, collector_b) = std::thread::scope(|s| {
        let a = s.spawn(|| clickhouse_collector(dir_a.path(), &shards[0]));
        let b = clickhouse_collector(dir_b.path(), &shards[1]);
        (a.join().unwrap(), b)
    });
    let (_daemon_a, socket_a) = daemon(&collector_a.endpoint_url());
    let (_daemon_b, socket_b) = daemon(&collector_b.endpoint_url());
    let sockets = [socket_a, socket_b];

    let start = now() - 300.0;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut datagram = Vec::new();
    for n in 0..TRACES {
        let docs = roentgen_web::synth::shop_trace(n, start + n as f64 * 0.5);
        let id = json(&docs[0])["trace_id"].as_str().unwrap().to_owned();
        for (k, doc) in docs.iter().enumerate() {
            roentgen_sdk::model::encode_datagram(doc.as_bytes(), &mut datagram).unwrap();
            // Each trace's documents alternate between the two daemons (and collectors).
            sockets[(n as usize + k) % 2].send(&datagram).unwrap();
        }
        expected.insert(id, docs.iter().map(|d| document_id(d)).collect());
        if n % 10 == 9 {
            // Paced so the loopback socket buffers never overflow.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for docs in expected.values_mut() {
        docs.sort();
    }
    let ids: Vec<String> = expected.keys().cloned().collect();

    let whole = eventually(Duration::from_secs(120), || {
        let got = whole_traces(&collector_a, &ids);
        (got == expected).then_some(got)
    });
    assert!(
        whole.is_some(),
        "not every trace became whole through collector A"
    );
    assert_eq!(
        whole_traces(&collector_b, &ids),
        expected,
        "collector B sees the same whole traces"
    );
    // Each collector folded the pieces it was sent; their reconcilers, off the write path,
    // fold again from the store the traces whose pieces went through both. Wait until
    // neither has a write or a trace to reconcile pending.
    let collectors = [&collector_a, &collector_b];
    let quiet = eventually(Duration::from_secs(60), || {
        collectors
            .iter()
            .all(|c| {
                metric(c, "store_batches_in_flight") == 0
                    && metric(c, "reconcile_pending_traces") == 0
            })
            .then_some(())
    });
    assert!(quiet.is_some(), "traces still waiting for the reconcilers");
    let reconciled: u64 = collectors
        .iter()
        .map(|c| metric(c, "reconciled_total"))
        .sum();
    assert!(
        reconciled > 0,
        "traces split over the collectors were folded again"
    );

    let (from, to) = (start - 60.0, start + TRACES as f64 + 60.0);
    let all_a = summaries(&collector_a, from, to, "");
    assert_eq!(
        all_a.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(all_a, summaries(&collector_b, from, to, ""));
    let faults = summaries(
        &collector_b,
        from,
        to,
        "fault = true AND service(\"orders\")",
    );
    assert!(!faults.is_empty());
    assert!(faults.iter().all(|(_, fault)| *fault));
    assert_eq!(
        faults,
        summaries(
            &collector_a,
            from,
            to,
            "fault = true AND service(\"orders\")"
        )
    );

    let graph = service_graph(&collector_a, from, to);
    assert!(graph.as_array().is_some_and(|s| s.len() >= 3), "{graph}");
    assert_eq!(graph, service_graph(&collector_b, from, to));

    // The collectors settle the quiet minutes through the distributed tables (a minute is
    // quiet 15 s after its last write, and the task looks every 15 s); the graph read from
    // the settled minutes is the same.
    let settled = eventually(Duration::from_secs(120), || {
        [&collector_a, &collector_b]
            .iter()
            .any(|c| settled_minutes(c) > 0)
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "no minute settled: {}",
        http::request(&collector_a.address, "GET", "/metrics", &[], "").body
    );
    assert_eq!(service_graph(&collector_b, from, to), graph);

    // Both shards hold part of the traces, and together all of them, each once.
    let (on_a, on_b) = (local_traces(&shards[0]), local_traces(&shards[1]));
    assert!(on_a > 0 && on_b > 0, "{on_a} + {on_b}");
    assert_eq!(on_a + on_b, TRACES);
}

/// `GetSamplingTargets` for one client of rule `checkout`: its reservoir quota.
fn quota(collector: &Collector, client: &str, requests: u64) -> i64 {
    let (status, text) = collector.post(
        "/SamplingTargets",
        &format!(
            "{{\"SamplingStatisticsDocuments\":[{{\"RuleName\":\"checkout\",\"ClientID\":\"{client}\",\
             \"Timestamp\":{},\"RequestCount\":{requests},\"SampledCount\":1,\"BorrowCount\":0}}]}}",
            now().floor()
        ),
    );
    assert_eq!(status, 200, "{text}");
    let body = json(&text);
    let target = &body["SamplingTargetDocuments"][0];
    assert_eq!(target["RuleName"], "checkout", "{text}");
    target["ReservoirQuota"].as_i64().expect("ReservoirQuota")
}

#[test]
fn two_collectors_on_one_clickhouse_split_a_reservoir_among_all_clients() {
    reservoir_split_among_all_clients(&Engine::Server);
}

#[test]
fn on_clickhouse_26_two_collectors_split_a_reservoir_among_all_clients() {
    reservoir_split_among_all_clients(&Engine::chdb());
}

#[allow(clippy::unwrap_used)] // a test body, run once per store
fn reservoir_split_among_all_clients(engine: &Engine) {
    let server = LocalServer::start_engine(engine).unwrap();
    let url = server.url();
    let args = ["--store", "clickhouse", "--clickhouse-url", &url];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let collectors = [
        Collector::start(dir_a.path(), &args),
        Collector::start(dir_b.path(), &args),
    ];
    let (status, text) = collectors[0].post(
        "/CreateSamplingRule",
        "{\"SamplingRule\":{\"RuleName\":\"checkout\",\"Priority\":5,\"FixedRate\":0.1,\
          \"ReservoirSize\":12,\"ServiceName\":\"*\",\"ServiceType\":\"*\",\"Host\":\"*\",\
          \"HTTPMethod\":\"*\",\"URLPath\":\"*\",\"ResourceARN\":\"*\",\"Version\":1}}",
    );
    assert_eq!(status, 200, "{text}");
    // Six clients, three per collector, each reporting the same load every round.
    let clients: Vec<(String, u64)> = (0..6u64)
        .map(|k| (format!("{:024x}", 0xc11e_0000 + k), 10 + 10 * k))
        .collect();
    let round = || -> Vec<i64> {
        clients
            .iter()
            .enumerate()
            .map(|(k, (id, requests))| quota(&collectors[k % 2], id, *requests))
            .collect()
    };
    // The first round makes every client known to the store.
    round();
    let quotas = round();
    assert_eq!(quotas.iter().sum::<i64>(), 12, "{quotas:?}");
    // Shares follow the load across both collectors: the busiest client (on B) gets most.
    assert!(quotas[5] > quotas[0], "{quotas:?}");
    assert_eq!(quotas, round(), "every collector computes the same split");
}
