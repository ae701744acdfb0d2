//! Outgoing calls traced through real HTTP on loopback: `hyper_util`'s client behind
//! `XRayClientLayer` and `reqwest` behind `XRayMiddleware`, from inside a traced task and from
//! outside one, to a server that answers, one that fails, and a port nobody listens on.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures
#![cfg(feature = "reqwest")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use roentgen_sdk::client::{XRayClientLayer, XRayMiddleware};
use roentgen_sdk::model::{Cause, Segment, TraceHeader};
use roentgen_sdk::recorder::scope;
use tower::{Layer, Service};
use udp::{ALWAYS, receive, setup};

mod udp;

/// A server whose `/echo` answers with the trace header it got, and `/down` with 503.
async fn server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                headers
                    .get("x-amzn-trace-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned()
            }),
        )
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn check(doc: &Segment, echoed: &str, addr: SocketAddr) {
    let subs = doc.subsegments.as_ref().unwrap();
    assert_eq!(subs.len(), 3, "{subs:#?}");
    for sub in subs {
        assert_eq!(sub.name, "127.0.0.1");
        assert_eq!(sub.namespace.as_deref(), Some("remote"));
    }
    let header: TraceHeader = echoed.parse().unwrap();
    assert_eq!(header.root, doc.trace_id);
    let echo = subs
        .iter()
        .find(|s| Some(s.id) == header.parent)
        .expect("the echo call");
    let request = echo.http.as_ref().unwrap().request.as_ref().unwrap();
    // The address in the URL is scrubbed before it leaves the process.
    assert_eq!(
        request.url.as_deref(),
        Some(format!("http://[ipv4]:{}/echo", addr.port()).as_str())
    );
    assert_eq!(request.method.as_deref(), Some("GET"));
    assert_eq!(
        echo.http
            .as_ref()
            .unwrap()
            .response
            .as_ref()
            .unwrap()
            .status,
        Some(200)
    );
    assert_eq!(echo.fault, None);
    let down = subs
        .iter()
        .find(|s| {
            s.http
                .as_ref()
                .and_then(|h| h.response.as_ref())
                .and_then(|r| r.status)
                == Some(503)
        })
        .expect("the failing call");
    assert_eq!(down.fault, Some(true));
    let refused = subs
        .iter()
        .find(|s| matches!(s.cause, Some(Cause::Details(_))))
        .expect("the refused connection");
    assert_eq!(refused.fault, Some(true));
}

#[tokio::test]
async fn a_hyper_client_behind_the_layer_traces_its_calls() {
    let (socket, recorder) = setup(ALWAYS);
    let addr = server().await;
    let mut client = XRayClientLayer.layer(Client::builder(TokioExecutor::new()).build_http());
    let mut get = move |url: String| {
        let request = http::Request::get(url)
            .body(Empty::<axum::body::Bytes>::new())
            .unwrap();
        client.call(request)
    };
    let untraced = get(format!("http://{addr}/echo")).await.unwrap();
    let body = untraced.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"none", "outside a traced task nothing is added");

    let segment = recorder.begin_segment("shop", None);
    let echoed = scope(segment.clone(), async {
        let response = get(format!("http://{addr}/echo")).await.unwrap();
        let echoed = response.into_body().collect().await.unwrap().to_bytes();
        get(format!("http://{addr}/down")).await.unwrap();
        assert!(get(format!("http://{}/", closed_port())).await.is_err());
        String::from_utf8(echoed.to_vec()).unwrap()
    })
    .await;
    segment.end();
    recorder.flush(Duration::from_secs(5));
    check(&receive(&socket), &echoed, addr);
}

#[tokio::test]
async fn reqwest_behind_the_middleware_traces_its_calls() {
    let (socket, recorder) = setup(ALWAYS);
    let addr = server().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware)
        .build();
    let untraced = client
        .get(format!("http://{addr}/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(untraced.text().await.unwrap(), "none");

    let segment = recorder.begin_segment("shop", None);
    let echoed = scope(segment.clone(), async {
        let echoed = client
            .get(format!("http://{addr}/echo"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        client
            .get(format!("http://{addr}/down"))
            .send()
            .await
            .unwrap();
        let refused = client
            .get(format!("http://{}/", closed_port()))
            .send()
            .await;
        assert!(refused.is_err());
        echoed
    })
    .await;
    segment.end();
    recorder.flush(Duration::from_secs(5));
    check(&receive(&socket), &echoed, addr);
}
