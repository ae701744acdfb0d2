//! A centralized-sampling proxy on loopback answering as the daemon's does
//! (`GetSamplingRules`, `SamplingTargets`), for the SDK's tests and benchmarks: the rules are
//! editable, every report is kept, and target requests can be made to fail.
// Each test file is its own crate and uses some of these.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use roentgen_sdk::sampling::Sampler;
use serde_json::{Value, json};

/// What the proxy serves and what it was sent.
#[derive(Default)]
pub struct Server {
    /// `SamplingRule` objects served.
    pub rules: Vec<Value>,
    /// When the rules last changed (epoch seconds).
    pub modified: f64,
    /// Every statistics document received.
    pub reports: Vec<Value>,
    /// Answer the next this many target requests with 500.
    pub fail_targets: usize,
}

/// The proxy's state, shared with the test.
pub type Shared = Arc<Mutex<Server>>;

/// Epoch seconds now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A rule matching `url_path` for `service_name`, with priority, reservoir and rate.
pub fn rule(
    name: &str,
    priority: i64,
    service_name: &str,
    url_path: &str,
    reservoir: i64,
    rate: f64,
) -> Value {
    json!({"RuleName": name, "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
        "ResourceARN": "*", "ServiceName": service_name, "ServiceType": "*", "Host": "*",
        "HTTPMethod": "*", "URLPath": url_path, "Version": 1})
}

async fn rules(State(server): State<Shared>) -> Json<Value> {
    let rules = server.lock().unwrap().rules.clone();
    let records: Vec<Value> = rules
        .into_iter()
        .map(|r| json!({"SamplingRule": r}))
        .collect();
    Json(json!({ "SamplingRuleRecords": records }))
}

/// Each reported rule gets its whole reservoir (this proxy has one client) and its rate.
async fn targets(State(server): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut server = server.lock().unwrap();
    if server.fail_targets > 0 {
        server.fail_targets -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({}))).into_response();
    }
    let docs = body["SamplingStatisticsDocuments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let targets: Vec<Value> = docs
        .iter()
        .filter_map(|d| server.rules.iter().find(|r| r["RuleName"] == d["RuleName"]))
        .map(|r| {
            json!({"RuleName": r["RuleName"], "FixedRate": r["FixedRate"],
                "ReservoirQuota": r["ReservoirSize"], "ReservoirQuotaTTL": now() + 30.0,
                "Interval": 10})
        })
        .collect();
    server.reports.extend(docs);
    Json(json!({"SamplingTargetDocuments": targets,
        "LastRuleModification": server.modified, "UnprocessedStatistics": []}))
    .into_response()
}

/// Starts the proxy on its own thread; returns its address.
pub fn start(server: Shared) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/GetSamplingRules", post(rules))
        .route("/SamplingTargets", post(targets))
        .with_state(server);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await
        })
    });
    addr
}

/// Waits (at most 20 s) until `done` holds; panics naming `what` otherwise.
pub fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `sampler` has fetched its first rules.
pub fn fetched(sampler: &Sampler) {
    let state = sampler.centralized_state().unwrap();
    until("the first rules", || {
        state.status().rules_fetched_at.is_some()
    });
}
