//! Centralized sampling against a proxy on loopback that answers as the daemon's does: the
//! rules it serves decide, the counts reach it, a rule changed on the server changes the
//! decisions at the next target exchange, counts survive a failed report, and without a proxy
//! the local rules decide.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures
#![cfg(feature = "centralized-sampling")]

use std::net::SocketAddr;
use std::time::Duration;

use proxy::{Shared, fetched, now, rule, until};
use roentgen_sdk::sampling::centralized::CentralizedConfig;
use roentgen_sdk::sampling::{Rules, Sampler, SamplingRequest};

mod proxy;

/// The proxy's rules: `Api` for the shop's `/api/*` at `rate`, `Default` sampling nothing.
fn serving(rate: f64) -> Shared {
    let server = Shared::default();
    server.lock().unwrap().rules = vec![
        rule("Default", 10000, "*", "*", 0, 0.0),
        rule("Api", 10, "shop", "/api/*", 0, rate),
    ];
    server
}

fn config(proxy: SocketAddr) -> CentralizedConfig {
    CentralizedConfig {
        proxy,
        rules_interval: Duration::from_secs(300),
        targets_interval: Duration::from_millis(200),
    }
}

/// Local rules that sample everything, so a centralized decision is told apart.
fn local_always() -> Rules {
    Rules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#).unwrap()
}

fn api() -> SamplingRequest<'static> {
    SamplingRequest {
        service_name: "shop",
        url_path: "/api/orders",
        method: "GET",
        ..SamplingRequest::default()
    }
}

fn sampled(sampler: &Sampler, n: usize) -> usize {
    (0..n).filter(|_| sampler.should_sample(&api())).count()
}

fn reported_requests(server: &Shared, rule: &str) -> u64 {
    let server = server.lock().unwrap();
    server
        .reports
        .iter()
        .filter(|d| d["RuleName"] == rule)
        .map(|d| d["RequestCount"].as_u64().unwrap())
        .sum()
}

#[test]
fn the_servers_rules_decide_and_a_change_applies_at_the_next_exchange() {
    let server = serving(1.0);
    let sampler =
        Sampler::centralized(local_always(), config(proxy::start(server.clone()))).unwrap();
    let state = sampler.centralized_state().unwrap();
    fetched(&sampler);
    assert_eq!(sampled(&sampler, 100), 100);
    // Default (rate 0, no reservoir) takes everything else: the local rules no longer decide.
    let other = SamplingRequest {
        url_path: "/health",
        ..api()
    };
    assert!(!(0..100).any(|_| sampler.should_sample(&other)));
    until("the counts reported", || {
        reported_requests(&server, "Api") == 100
    });
    assert_eq!(reported_requests(&server, "Default"), 100);
    let client = state.status().client_id;
    assert!(
        server
            .lock()
            .unwrap()
            .reports
            .iter()
            .all(|d| d["ClientID"] == client.as_str()),
        "every report carries the client id"
    );
    // The rule changes on the server: the next exchange says so and the rules are refetched.
    {
        let mut s = server.lock().unwrap();
        s.rules[1] = rule("Api", 10, "shop", "/api/*", 0, 0.0);
        s.modified = now().ceil();
    }
    // The rate shows as soon as the fetched rule is defined; the fetch is counted once the
    // new rules are installed, a moment later.
    until("the new rules installed", || {
        state.status().rule_fetches >= 2
            && state
                .rules()
                .iter()
                .any(|r| r.name == "Api" && r.rate == 0.0)
    });
    assert_eq!(sampled(&sampler, 100), 0);
}

#[test]
fn counts_of_a_failed_report_go_with_the_next_one() {
    let server = serving(1.0);
    server.lock().unwrap().fail_targets = 2;
    let sampler =
        Sampler::centralized(local_always(), config(proxy::start(server.clone()))).unwrap();
    let state = sampler.centralized_state().unwrap();
    fetched(&sampler);
    sampled(&sampler, 40);
    until("a report after the failures", || {
        reported_requests(&server, "Api") == 40
    });
    let status = state.status();
    assert_eq!(status.failures, 2, "{status:?}");
    assert!(status.last_error.unwrap().contains("HTTP 500"));
}

#[test]
fn without_a_proxy_the_local_rules_decide() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sampler = Sampler::centralized(local_always(), config(closed)).unwrap();
    let state = sampler.centralized_state().unwrap();
    until("a failed fetch", || state.status().failures > 0);
    assert_eq!(state.status().rules_fetched_at, None);
    assert!(state.rules().is_empty());
    assert_eq!(sampled(&sampler, 50), 50);
}
