//! Outgoing calls of a `hyper_util` client traced by the tower `XRayClientLayer`: inside a
//! traced task each call gets a `remote` subsegment and the `X-Amzn-Trace-Id` header; outside
//! one it goes out untouched. It calls a small local server that answers with the header it
//! got, once outside and twice inside a traced task, flushes and exits.
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p roentgen-sdk --example outgoing_hyper
//! ```

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use roentgen_sdk::client::{XRayClient, XRayClientLayer};
use roentgen_sdk::recorder::{Recorder, scope};
use tower::{Layer, Service};

/// Answers with the trace header it was sent, or `none`.
async fn echo(headers: HeaderMap) -> String {
    let header = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok());
    header.unwrap_or("none").to_owned()
}

type HttpClient = XRayClient<Client<HttpConnector, Empty<Bytes>>>;

/// Calls `url` and prints what the server answered.
async fn call(mut client: HttpClient, url: &str) -> anyhow::Result<()> {
    let request = http::Request::get(url).body(Empty::<Bytes>::new())?;
    std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
    let body = client.call(request).await?.into_body().collect().await?;
    println!(
        "the server got: {}",
        String::from_utf8_lossy(&body.to_bytes())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let server =
        tokio::spawn(
            async move { axum::serve(listener, Router::new().route("/", get(echo))).await },
        );

    let client = XRayClientLayer.layer(Client::builder(TokioExecutor::new()).build_http());
    call(client.clone(), &url).await?; // untraced: `none`
    let segment = recorder.begin_segment("batch-job", None);
    scope(segment.clone(), async {
        call(client.clone(), &url).await?;
        call(client.clone(), &url).await
    })
    .await?;
    segment.end();

    server.abort();
    recorder.flush(Duration::from_secs(2));
    println!("{:?}", recorder.stats());
    Ok(())
}
