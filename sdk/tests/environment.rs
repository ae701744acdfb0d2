//! The official X-Ray SDKs' environment through a real UDP socket: `AWS_XRAY_SDK_ENABLED`,
//! `AWS_XRAY_TRACING_NAME` with fixed and dynamic naming in the axum layer,
//! `AWS_XRAY_CONTEXT_MISSING`, and a Lambda-style invocation's `_X_AMZN_TRACE_ID` facade.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures
#![cfg(feature = "axum")]

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use roentgen_sdk::middleware::XRayLayer;
use roentgen_sdk::model::{SegmentId, TraceHeader};
use roentgen_sdk::recorder::{ContextMissing, Recorder, RecorderConfig, SdkError, scope};
use tower::{Layer, Service};
use udp::{ALWAYS, nothing_more, receive};

mod udp;

fn setup(vars: &[(&str, &str)]) -> (UdpSocket, Recorder) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), ALWAYS).unwrap();
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(
        "AWS_XRAY_DAEMON_ADDRESS".into(),
        socket.local_addr().unwrap().to_string(),
    );
    map.insert(
        "ROENTGEN_SAMPLING_RULES".into(),
        rules.path().to_str().unwrap().to_owned(),
    );
    let config = RecorderConfig::from_vars(|name| map.get(name).cloned()).unwrap();
    (socket, Recorder::new(config).unwrap())
}

#[test]
fn the_variables_are_read_and_a_bad_value_is_named() {
    let vars: HashMap<&str, &str> = [
        (
            "AWS_XRAY_DAEMON_ADDRESS",
            "tcp:127.0.0.1:2999 udp:127.0.0.1:2998",
        ),
        ("AWS_XRAY_SDK_ENABLED", "false"),
        ("AWS_XRAY_TRACING_NAME", "orders"),
        ("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR"),
    ]
    .into();
    let config = RecorderConfig::from_vars(|n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
    assert!(!config.enabled);
    assert_eq!(config.tracing_name.as_deref(), Some("orders"));
    assert_eq!(config.context_missing, ContextMissing::IgnoreError);
    assert_eq!(config.emitter.daemon.to_string(), "127.0.0.1:2998");

    let defaults = RecorderConfig::from_vars(|_| None).unwrap();
    assert!(defaults.enabled);
    assert_eq!(defaults.context_missing, ContextMissing::LogError);

    let bad = RecorderConfig::from_vars(|n| {
        (n == "AWS_XRAY_CONTEXT_MISSING").then(|| "THROW".to_owned())
    });
    assert!(
        matches!(bad, Err(SdkError::Environment(e)) if e.variable == "AWS_XRAY_CONTEXT_MISSING")
    );
}

#[test]
fn a_disabled_sdk_records_nothing() {
    let (socket, recorder) = setup(&[("AWS_XRAY_SDK_ENABLED", "false")]);
    let segment = recorder.begin_segment("api", None);
    assert!(!segment.is_sampled());
    segment.begin_subsegment("db").end();
    segment.end();
    recorder.flush(Duration::from_secs(5));
    assert!(nothing_more(&socket));
}

#[tokio::test]
async fn context_missing_logs_ignores_or_fails_as_configured() {
    let (socket, recorder) = setup(&[("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR")]);
    let error = recorder.begin_subsegment("db").unwrap_err();
    assert!(error.to_string().contains("begin_subsegment"));
    let segment = recorder.begin_segment("api", None);
    scope(segment.clone(), async {
        recorder.begin_subsegment("db").unwrap().end();
    })
    .await;
    segment.end();
    recorder.flush(Duration::from_secs(5));
    let doc = receive(&socket);
    assert_eq!(doc.subsegments.unwrap()[0].name, "db");

    for strategy in ["LOG_ERROR", "IGNORE_ERROR"] {
        let (socket, recorder) = setup(&[("AWS_XRAY_CONTEXT_MISSING", strategy)]);
        let orphan = recorder.begin_subsegment("db").unwrap();
        assert!(!orphan.is_sampled(), "{strategy}");
        orphan.end();
        recorder.flush(Duration::from_secs(5));
        assert!(nothing_more(&socket), "{strategy}");
    }
}

#[test]
fn an_invocation_facade_sends_its_subsegments_under_the_runtime_segment() {
    let (socket, recorder) = setup(&[]);
    let (header, _) = TraceHeader::parse_lenient(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    let facade = recorder.continue_invocation(Some(&header)).unwrap();
    let call = facade.begin_subsegment("s3");
    call.begin_subsegment("retry").end();
    call.end();
    facade.end();
    recorder.flush(Duration::from_secs(5));
    // Every piece is sent as it ends (the facade's segment is not this process's to send).
    let retry = receive(&socket);
    let doc = receive(&socket);
    assert_eq!(doc.name, "s3");
    assert_eq!(doc.kind.as_deref(), Some("subsegment"));
    assert_eq!(doc.trace_id, header.root);
    assert_eq!(
        doc.parent_id,
        Some(SegmentId::from_u64(0x5399_5c3f_42cd_8ad8))
    );
    assert_eq!(retry.name, "retry");
    assert_eq!(retry.parent_id, Some(doc.id));
    assert_eq!(retry.trace_id, header.root);
    assert!(nothing_more(&socket), "the facade itself is never sent");

    let (unsampled, _) = TraceHeader::parse_lenient(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    );
    let (socket, recorder) = setup(&[]);
    let facade = recorder.continue_invocation(Some(&unsampled)).unwrap();
    facade.begin_subsegment("s3").end();
    recorder.flush(Duration::from_secs(5));
    assert!(nothing_more(&socket));

    let (_, recorder) = setup(&[("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR")]);
    assert!(recorder.continue_invocation(None).is_err());
}

async fn get_host(recorder: &Recorder, layer: XRayLayer, host: &str) {
    let mut app = layer.layer(Router::new().route("/", get(|| async { "ok" })));
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut app, cx))
        .await
        .unwrap();
    let request = Request::get("/")
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    let response = app.call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    recorder.flush(Duration::from_secs(5));
}

#[tokio::test]
async fn the_layer_names_segments_by_host_pattern_and_tracing_name() {
    let (socket, recorder) = setup(&[]);
    let layer = XRayLayer::dynamic(recorder.clone(), "shop", "*.example.com");
    get_host(&recorder, layer.clone(), "api.example.com:8080").await;
    assert_eq!(receive(&socket).name, "api.example.com");
    get_host(&recorder, layer, "10.0.0.7").await;
    assert_eq!(receive(&socket).name, "shop");

    let (socket, recorder) = setup(&[("AWS_XRAY_TRACING_NAME", "from-env")]);
    let layer = XRayLayer::dynamic(recorder.clone(), "shop", "*.example.com");
    get_host(&recorder, layer, "10.0.0.7").await;
    assert_eq!(receive(&socket).name, "from-env");
    let layer = XRayLayer::new(recorder.clone(), "in-code");
    get_host(&recorder, layer, "api.example.com").await;
    assert_eq!(receive(&socket).name, "from-env");
}
