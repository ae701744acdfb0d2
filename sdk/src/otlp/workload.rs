//! A production-like OTLP workload for benchmarks (feature `otlp-workload`): traces crossing 3
//! to 6 services of a shop (gateway, orders, payments, stock, search, users), 8 to 40 spans
//! each: server spans with HTTP attributes, client calls with `peer.service`, database calls
//! with literal-bearing queries, AWS SDK calls, exceptions with stack traces on about 1 in 10,
//! and personal data (emails, phone numbers, card numbers) in some attributes; random W3C trace
//! ids, as OpenTelemetry SDKs make them. Shared by the conversion bench and the daemon's and
//! the collector's ingest benches.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SERVICES: [&str; 6] = ["gateway", "orders", "payments", "stock", "search", "users"];
const PII: [&str; 4] = [
    "jane.doe@example.com",
    "+1 415 555 0132",
    "4111 1111 1111 1111",
    "ana.lopez@example.org",
];

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Any::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Any::IntValue(value))
}

/// A random, non-zero span id.
fn span_id(rng: &mut StdRng) -> Vec<u8> {
    rng.random::<u64>().max(1).to_be_bytes().to_vec()
}

/// One trace's spans, grouped by service.
fn trace(rng: &mut StdRng, start: u64) -> Vec<(usize, Span)> {
    let trace_id: [u8; 16] = rng.random();
    let services = rng.random_range(3..=6);
    let mut out = Vec::new();
    let mut parent: Vec<u8> = Vec::new();
    let mut at = start;
    for (s, service) in SERVICES.iter().enumerate().take(services) {
        let server_id = span_id(rng);
        let status = if rng.random_range(0..10) == 0 {
            503
        } else {
            200
        };
        let mut server = Span {
            trace_id: trace_id.to_vec(),
            span_id: server_id.clone(),
            parent_span_id: parent.clone(),
            name: format!("GET /api/{service}/{}", rng.random_range(1..9999)),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: at,
            end_time_unix_nano: at + 40_000_000,
            attributes: vec![
                text("http.request.method", "GET"),
                text("url.path", &format!("/api/{service}")),
                text("server.address", &format!("{service}.shop.internal")),
                int("http.response.status_code", status),
                text("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                text("http.route", &format!("/api/{service}/{{id}}")),
            ],
            ..Span::default()
        };
        if rng.random_range(0..3) == 0 {
            server
                .attributes
                .push(text("enduser.email", PII[rng.random_range(0..PII.len())]));
        }
        if status == 503 {
            server.status = Some(Status {
                code: 2,
                message: "upstream unavailable".into(),
            });
            server.events.push(Event {
                name: "exception".into(),
                time_unix_nano: at + 30_000_000,
                attributes: vec![
                    text("exception.type", "java.lang.IllegalStateException"),
                    text("exception.message", "pool exhausted"),
                    text(
                        "exception.stacktrace",
                        "java.lang.IllegalStateException: pool exhausted\n\tat com.shop.Pool.take(Pool.java:88)\n\tat com.shop.Api.get(Api.java:41)\n\tat com.shop.Router.route(Router.java:17)",
                    ),
                ],
                ..Event::default()
            });
        }
        out.push((s, server));
        let calls = rng.random_range(2..=6);
        for c in 0..calls {
            let span_id = span_id(rng);
            let mut call = Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.clone(),
                parent_span_id: server_id.clone(),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: at + 1_000_000 * (c + 1),
                end_time_unix_nano: at + 1_000_000 * (c + 4),
                ..Span::default()
            };
            match rng.random_range(0..3) {
                0 => {
                    call.name = "SELECT orders".into();
                    call.attributes = vec![
                        text("db.system.name", "postgresql"),
                        text("db.namespace", "orders"),
                        text("server.address", "orders-db"),
                        text(
                            "db.query.text",
                            &format!(
                                "SELECT * FROM orders WHERE customer = '{}' AND id = {}",
                                PII[rng.random_range(0..PII.len())],
                                rng.random_range(1..99999)
                            ),
                        ),
                    ];
                }
                1 => {
                    call.name = "DynamoDB.GetItem".into();
                    call.attributes = vec![
                        text("rpc.system", "aws-api"),
                        text("rpc.service", "DynamoDB"),
                        text("rpc.method", "GetItem"),
                        text("aws.request_id", &format!("{:X}", rng.random::<u64>())),
                        text("cloud.region", "eu-west-1"),
                    ];
                }
                _ => {
                    call.name = "GET".into();
                    call.attributes = vec![
                        text("http.request.method", "GET"),
                        text("peer.service", "recommendations"),
                        text("url.full", "https://reco.shop.internal/v2/items?limit=20"),
                        int("http.response.status_code", 200),
                    ];
                }
            }
            out.push((s, call));
        }
        parent = server_id;
        at += 5_000_000;
    }
    out
}

/// Protobuf request bodies and the spans they hold.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// `ExportTraceServiceRequest` bodies, as SDKs' OTLP/HTTP exporters send them.
    pub bodies: Vec<Vec<u8>>,
    /// Spans in all of them.
    pub spans: u64,
}

/// `requests` bodies of `traces_per_request` traces each, from `seed`; trace `k` starts `k`
/// seconds after `start_nanos` (Unix nanoseconds). Each resource is one service.
pub fn workload(
    seed: u64,
    requests: usize,
    traces_per_request: usize,
    start_nanos: u64,
) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut spans_total = 0;
    let mut k = 0u64;
    let bodies = (0..requests)
        .map(|_| {
            let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
            for _ in 0..traces_per_request {
                for (s, span) in trace(&mut rng, start_nanos + k * 1_000_000_000) {
                    by_service[s].push(span);
                }
                k += 1;
            }
            let resource_spans = by_service
                .into_iter()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(|(s, spans)| {
                    spans_total += spans.len() as u64;
                    ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![
                                text("service.name", SERVICES[s]),
                                text("service.version", "3.2.1"),
                                text("cloud.platform", "aws_ec2"),
                                text("host.id", "i-0abcdef1234567890"),
                                text("telemetry.sdk.language", "java"),
                            ],
                            ..Resource::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..ScopeSpans::default()
                        }],
                        ..ResourceSpans::default()
                    }
                })
                .collect();
            ExportTraceServiceRequest { resource_spans }.encode_to_vec()
        })
        .collect();
    Workload {
        bodies,
        spans: spans_total,
    }
}
