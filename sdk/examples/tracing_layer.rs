//! An axum app whose work is instrumented only with `tracing`: the middleware makes a segment
//! per request, `XRayTracingLayer` turns the spans and `#[instrument]`ed functions inside it
//! into subsegments (an `error!` event into a cause), and `reqwest-middleware` with
//! `XRayMiddleware` traces the outgoing call and carries the header downstream (here, to the
//! same app). It sends itself a few requests, flushes and exits.
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 \
//!   cargo run -p roentgen-sdk --features tracing-layer,reqwest --example tracing_layer
//! ```

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use roentgen_sdk::client::XRayMiddleware;
use roentgen_sdk::middleware::XRayLayer;
use roentgen_sdk::recorder::Recorder;
use roentgen_sdk::tracing_layer::XRayTracingLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone)]
struct App {
    base_url: String,
    http: ClientWithMiddleware,
}

/// Becomes a subsegment `price` with `sku` as an annotation and `quantity` as metadata.
#[tracing::instrument(skip(app))]
async fn price(app: &App, sku: &str, quantity: u32) -> Result<u32, StatusCode> {
    let url = format!("{}/stock/{sku}", app.base_url);
    let stock = app.http.get(url).send().await.map_err(|error| {
        tracing::error!(%error, "stock service unreachable");
        StatusCode::BAD_GATEWAY
    })?;
    if !stock.status().is_success() {
        tracing::error!(status = stock.status().as_u16(), "out of stock");
        return Err(StatusCode::CONFLICT);
    }
    let _rounding = tracing::info_span!("rounding", currency = "EUR").entered();
    Ok(quantity * 250)
}

async fn quote(State(app): State<App>, Path(sku): Path<String>) -> Result<String, StatusCode> {
    price(&app, &sku, 3).await.map(|cents| cents.to_string())
}

async fn stock(Path(sku): Path<String>) -> StatusCode {
    if sku.starts_with("gone") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::registry()
        .with(XRayTracingLayer::new().with_annotations(["sku"]))
        .init();
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = App {
        base_url: base_url.clone(),
        http: ClientBuilder::new(reqwest::Client::new())
            .with(XRayMiddleware)
            .build(),
    };
    let router = Router::new()
        .route("/quote/{sku}", get(quote))
        .route("/stock/{sku}", get(stock))
        .with_state(app)
        .layer(XRayLayer::new(recorder.clone(), "quotes"));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let client = reqwest::Client::new();
    for sku in ["tea-42", "gone-7"] {
        let response = client.get(format!("{base_url}/quote/{sku}")).send().await?;
        println!("GET /quote/{sku}: {}", response.status());
    }
    server.abort();
    recorder.flush(Duration::from_secs(2));
    println!("{:?}", recorder.stats());
    Ok(())
}
