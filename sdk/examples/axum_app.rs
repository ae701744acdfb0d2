//! An axum app instrumented with Roentgen: the middleware traces every request, handlers add
//! subsegments, annotations, metadata, a SQL call and an outgoing HTTP call whose trace header
//! continues the trace in the downstream service (here, the same app's `/inventory` route).
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p roentgen-sdk --example axum_app
//! curl -X POST 'http://127.0.0.1:8080/api/checkout?email=jane.doe@example.com'
//! ```
//! Environment: `LISTEN` (default 127.0.0.1:8080), `SERVICE_NAME` (default `example-app`), plus
//! the recorder's (`AWS_XRAY_DAEMON_ADDRESS`, `ROENTGEN_SAMPLING_RULES`, ...).

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use roentgen_sdk::middleware::{XRayLayer, inject};
use roentgen_sdk::recorder::{Recorder, current};
use serde_json::json;

#[derive(Clone)]
struct App {
    base_url: String,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Checkout {
    email: Option<String>,
    items: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("inventory answered {0}")]
struct InventoryError(u16);

async fn checkout(
    State(app): State<App>,
    Query(order): Query<Checkout>,
) -> (StatusCode, Json<serde_json::Value>) {
    let Some(segment) = current() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "untraced"})),
        );
    };
    let items = order.items.unwrap_or(1);
    let _ = segment.put_annotation("items", items);
    if let Some(email) = &order.email {
        // Personal data on purpose: the scrubber must catch it before it leaves the process.
        let _ = segment.put_annotation("customer_email", email.as_str());
    }
    segment.put_metadata("cart", json!({"items": items, "currency": "EUR"}));

    let validate = segment.begin_subsegment("validate-cart");
    validate.end();

    let db = segment.begin_subsegment("orders@db.example.com");
    db.set_sql(
        "PostgreSQL",
        "postgresql://db.example.com:5432/orders",
        "INSERT INTO orders (email, items) VALUES ('jane.doe@example.com', 3)",
    );
    db.end();

    let url = format!("{}/inventory?items={items}", app.base_url);
    let (call, header) = segment.begin_remote_call("inventory", "GET", &url);
    let mut request = app.http.get(&url).build().expect("a valid URL");
    inject(&header, request.headers_mut());
    let status = match app.http.execute(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            call.set_http_response(status, response.content_length());
            status
        }
        Err(error) => {
            call.add_error(&error);
            502
        }
    };
    call.end();
    if status >= 400 {
        segment.add_error(&InventoryError(status));
        return (StatusCode::BAD_GATEWAY, Json(json!({"error": "inventory"})));
    }
    (StatusCode::OK, Json(json!({"ok": true})))
}

#[derive(serde::Deserialize)]
struct Stock {
    items: Option<u32>,
}

async fn inventory(Query(stock): Query<Stock>) -> StatusCode {
    match stock.items.unwrap_or(1) {
        0..=9 => StatusCode::OK,
        10..=99 => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen: SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("LISTEN must be host:port")?;
    let service = std::env::var("SERVICE_NAME").unwrap_or_else(|_| "example-app".into());
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let app = App {
        base_url: format!("http://{address}"),
        http: reqwest::Client::new(),
    };
    let router = Router::new()
        .route("/api/hello", get(hello))
        .route("/api/checkout", post(checkout))
        .route("/inventory", get(inventory))
        .with_state(app)
        .layer(XRayLayer::new(recorder.clone(), &service));
    println!("axum_app listening http={address}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    recorder.flush(std::time::Duration::from_secs(2));
    Ok(())
}
