//! Cost of authentication per request against ingest, measured in the same run:
//! - `verify`: SigV4 verification of one signed `PutTraceSegments` request of
//!   `BATCH` documents (parse, scope and time checks, body hash, HMAC, rate-limit bucket,
//!   replay cache);
//! - `rate_limit`: charging one request to a principal's token bucket alone (a hit on a
//!   shard of the limiter, as every signed request pays);
//! - `ingest/unsigned`: the same request through the X-Ray API router into the SQLite store
//!   with auth off (the baseline);
//! - `ingest/signed`: the same request through the auth layer (verification, policy, audit
//!   off) and the router.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use roentgen_web::api::{AppState, router};
use roentgen_web::auth::keys::{KeysFile, Principal, allow_policy, new_key};
use roentgen_web::auth::limit::{Limiter, RateLimit};
use roentgen_web::auth::sigv4::{SignableRequest, Signer, format_amz_date};
use roentgen_web::auth::{Auth, AuthConfig, now_secs, protect};
use roentgen_web::store::sqlite::SqliteStore;
use roentgen_web::synth;
use tower::ServiceExt;

/// Documents per request, as the daemon batches them.
const BATCH: usize = 50;

struct Signed {
    body: String,
    date: String,
    seq: String,
    authorization: String,
}

fn body(first: u64) -> String {
    let docs: Vec<String> = (first..)
        .flat_map(|n| synth::shop_trace(n, now_secs() as f64))
        .take(BATCH)
        .map(|d| serde_json::to_string(&d).expect("json"))
        .collect();
    format!("{{\"TraceSegmentDocuments\":[{}]}}", docs.join(","))
}

fn sign(key: &roentgen_web::auth::keys::AccessKey, body: String, seq: u64) -> Signed {
    let date = format_amz_date(now_secs());
    let seq = seq.to_string();
    let headers = [
        ("host", "collector:4000"),
        ("x-amz-date", date.as_str()),
        ("x-bench-seq", seq.as_str()),
    ];
    let request = SignableRequest {
        method: "POST",
        path: "/TraceSegments",
        query: "",
        headers: &headers,
    };
    let signer = Signer {
        access_key_id: &key.access_key_id,
        secret: &key.secret_access_key,
        region: "us-east-1",
        service: "xray",
    };
    let authorization = signer
        .authorization(&request, body.as_bytes(), &date)
        .expect("sign");
    Signed {
        body,
        date,
        seq,
        authorization,
    }
}

fn request(s: Signed) -> Request<Body> {
    Request::post("/TraceSegments")
        .header("host", "collector:4000")
        .header("x-amz-date", s.date)
        .header("x-bench-seq", s.seq)
        .header("authorization", s.authorization)
        .body(Body::from(s.body))
        .expect("request")
}

fn auth(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = new_key(0);
    let file = KeysFile {
        default_rate_limit: None,
        anonymous_rate_limit: None,
        principals: vec![Principal {
            name: "daemon".into(),
            policies: vec![allow_policy(&["xray:PutTraceSegments".into()])],
            keys: vec![key.clone()],
            // A limit the bench never reaches, so every request pays for its bucket.
            rate_limit: Some(RateLimit::per_second(1e9, 1e9)),
        }],
    };
    let keys_file = dir.path().join("keys.json");
    file.save(&keys_file).expect("keys");
    let auth = Arc::new(
        Auth::open(AuthConfig {
            keys_file,
            audit_log: None,
            max_skew: Duration::from_secs(300),
            metrics_on_loopback: false,
        })
        .expect("auth"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seq = AtomicU64::new(0);
    let next = || seq.fetch_add(1, Ordering::Relaxed);

    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(BATCH as u64));
    let sample = body(0);
    group.bench_function("verify", |b| {
        b.iter_batched(
            || sign(&key, sample.clone(), next()),
            |s| {
                let headers = [
                    ("host", "collector:4000"),
                    ("x-amz-date", s.date.as_str()),
                    ("x-bench-seq", s.seq.as_str()),
                    ("authorization", s.authorization.as_str()),
                ];
                let request = SignableRequest {
                    method: "POST",
                    path: "/TraceSegments",
                    query: "",
                    headers: &headers,
                };
                auth.authenticate(&request, s.body.as_bytes(), now_secs())
                    .expect("verified")
            },
            BatchSize::SmallInput,
        )
    });

    let limiter = Limiter::new();
    let limit = RateLimit::per_second(1e9, 1e9).compile().expect("limit");
    group.bench_function("rate_limit", |b| {
        b.iter(|| limiter.principal("daemon", limit, limiter.now()))
    });

    let store = Arc::new(SqliteStore::open(&dir.path().join("plain")).expect("store"));
    let plain = router(AppState::new(store, None));
    let trace = AtomicU64::new(1_000_000);
    let fresh = || trace.fetch_add(BATCH as u64, Ordering::Relaxed);
    group.bench_function("ingest/unsigned", |b| {
        b.iter_batched(
            || request(sign(&key, body(fresh()), next())),
            |r| {
                let status = rt
                    .block_on(plain.clone().oneshot(r))
                    .expect("call")
                    .status();
                assert!(status.is_success());
            },
            BatchSize::SmallInput,
        )
    });
    let store = Arc::new(SqliteStore::open(&dir.path().join("signed")).expect("store"));
    let signed = protect(router(AppState::new(store, None)), auth.clone());
    group.bench_function("ingest/signed", |b| {
        b.iter_batched(
            || request(sign(&key, body(fresh()), next())),
            |r| {
                let status = rt
                    .block_on(signed.clone().oneshot(r))
                    .expect("call")
                    .status();
                assert!(status.is_success());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
