//! The all-in-one mode: the daemon's UDP listener embedded in the collector's process
//! (forwarding to the collector's own HTTP address), and the demo workload — a small shop of
//! real axum services instrumented with the real SDK (`frontend` -> `checkout` -> `inventory`,
//! `payments` -> an uninstrumented bank API, plus PostgreSQL, DynamoDB and SQS calls) driven at
//! a few requests per second through the real UDP path. It has errors (404), throttles (429),
//! faults (5xx with exceptions), slow requests, and personal data that the scrubbers remove.

mod signing;

pub use signing::daemon_credentials;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use roentgen_sdk::emitter::DaemonAddress;
use roentgen_sdk::middleware::{XRayLayer, inject};
use roentgen_sdk::model::{StackFrame, TraceHeader};
use roentgen_sdk::recorder::{Entity, Recorder, RecorderConfig, current};
use roentgen_sdk::sampling::Rules;
use serde_json::json;

/// Why the all-in-one parts could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded daemon failed to configure or bind.
    #[error("embedded daemon: {0}")]
    Daemon(String),
    /// A demo service could not start.
    #[error("demo service: {0}")]
    Service(String),
    /// The key the embedded daemon should sign with is unusable.
    #[error("embedded daemon: {0}")]
    Key(String),
}

/// Where the embedded daemon listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedDaemon {
    /// UDP listener (the SDKs send here).
    pub udp: SocketAddr,
    /// TCP sampling proxy.
    pub tcp: SocketAddr,
}

/// Binds the embedded daemon forwarding to `collector` (`127.0.0.1:PORT`), signing with
/// `credentials` when given (see [`daemon_credentials`]), prints its
/// `roentgen-daemon listening udp=... tcp=...` line, and runs it in the background.
pub async fn start_daemon(
    at: EmbeddedDaemon,
    collector: SocketAddr,
    credentials: Option<roentgen_daemon::forwarder::sign::Credentials>,
) -> Result<EmbeddedDaemon, DemoError> {
    let mut config = roentgen_daemon::Config::local(&format!("http://{collector}/"))
        .map_err(|e| DemoError::Daemon(e.to_string()))?;
    config.bind = at.udp;
    config.bind_tcp = at.tcp;
    // OpenTelemetry SDKs export to the collector's own `/v1/traces` in the all-in-one.
    config.otlp_http = None;
    config.otlp_grpc = None;
    config.credentials = credentials;
    if !(at.udp.ip().is_loopback() && at.tcp.ip().is_loopback()) {
        tracing::warn!(
            udp = %at.udp,
            tcp = %at.tcp,
            "the embedded daemon listens off loopback without authentication (--insecure): anyone who can reach it may send documents"
        );
    }
    let bound = roentgen_daemon::Daemon::bind(config)
        .await
        .map_err(|e| DemoError::Daemon(e.to_string()))?;
    let real = EmbeddedDaemon {
        udp: bound.udp_addr(),
        tcp: bound.tcp_addr(),
    };
    println!(
        "roentgen-daemon listening udp={} tcp={}",
        real.udp, real.tcp
    );
    tokio::spawn(async move {
        if let Err(error) = bound.run(std::future::pending()).await {
            tracing::error!(%error, "embedded daemon stopped");
        }
    });
    Ok(real)
}

/// Demo settings.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    /// Where the SDKs send (the embedded daemon's UDP address).
    pub daemon: EmbeddedDaemon,
    /// Pause between two requests of the load loop.
    pub interval: Duration,
    /// Stop after this many requests (`None`: run until the process ends).
    pub max_requests: Option<u64>,
}

fn recorder(daemon: EmbeddedDaemon, origin: &str) -> Result<Recorder, DemoError> {
    let mut config = RecorderConfig::new(DaemonAddress {
        udp: daemon.udp,
        tcp: daemon.tcp,
    });
    config.origin = Some(origin.to_owned());
    config.service_version = Some("demo-1.0".to_owned());
    config.rules = Rules::from_json(r#"{"version":2,"default":{"fixed_target":50,"rate":1.0}}"#)
        .map_err(|e| DemoError::Service(e.to_string()))?;
    Recorder::new(config).map_err(|e| DemoError::Service(e.to_string()))
}

async fn serve(router: Router) -> Result<String, DemoError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::Service(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::Service(e.to_string()))?;
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "demo service stopped");
        }
    });
    Ok(format!("http://{addr}"))
}

/// A cheap deterministic mix, so the demo's outcomes vary without a random generator.
fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone)]
struct Shop {
    http: reqwest::Client,
    next: String,
    other: String,
    counter: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("{service} answered {status}")]
struct Downstream {
    service: &'static str,
    status: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("card declined by the bank: gateway timeout")]
struct BankError;

/// Calls `url` as a traced remote call named `name`; returns the status (502 if it failed).
async fn call(parent: &Entity, http: &reqwest::Client, name: &str, method: &str, url: &str) -> u16 {
    let (sub, header): (Entity, TraceHeader) = parent.begin_remote_call(name, method, url);
    let request = if method == "POST" {
        http.post(url)
    } else {
        http.get(url)
    };
    let Ok(mut request) = request.build() else {
        sub.end();
        return 502;
    };
    inject(&header, request.headers_mut());
    let status = match http.execute(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            sub.set_http_response(status, response.content_length());
            status
        }
        Err(error) => {
            sub.add_error(&error);
            502
        }
    };
    sub.end();
    status
}

#[derive(serde::Deserialize)]
struct ShopQuery {
    user: Option<u64>,
}

async fn frontend(
    State(shop): State<Shop>,
    Path(item): Path<String>,
    Query(q): Query<ShopQuery>,
) -> StatusCode {
    let Some(segment) = current() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let user = q.user.unwrap_or(0);
    segment.set_user(&format!("user-{user}"));
    let _ = segment.put_annotation("item", item.as_str());
    // Personal data on purpose: the scrubbers must take it out before it is stored.
    let _ = segment.put_annotation("customer_email", format!("customer{user}@example.com"));
    let session = segment.begin_subsegment("session-lookup");
    tokio::time::sleep(Duration::from_millis(2)).await;
    session.end();
    if item == "missing" {
        return StatusCode::NOT_FOUND;
    }
    let url = format!("{}/checkout/{item}?user={user}", shop.next);
    let status = call(&segment, &shop.http, "checkout", "POST", &url).await;
    let render = segment.begin_subsegment("render-page");
    tokio::time::sleep(Duration::from_millis(1)).await;
    render.end();
    match status {
        200 => StatusCode::OK,
        429 => StatusCode::TOO_MANY_REQUESTS,
        s => {
            segment.add_error(&Downstream {
                service: "checkout",
                status: s,
            });
            StatusCode::BAD_GATEWAY
        }
    }
}

async fn checkout(State(shop): State<Shop>, Path(item): Path<String>) -> StatusCode {
    let Some(segment) = current() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let n = shop.counter.fetch_add(1, Ordering::Relaxed);
    segment.put_metadata(
        "payment",
        json!({"card": "4111 1111 1111 1111", "holder": "Jane Doe", "phone": "+1 415 555 0132"}),
    );
    // The stock check and the order row go out at the same time; the slower one is on the
    // critical path.
    let stock_url = format!("{}/stock/{item}", shop.next);
    let stock_check = call(&segment, &shop.http, "inventory", "GET", &stock_url);
    let reserve = async {
        let db = segment.begin_subsegment("orders@postgres.internal");
        db.set_sql(
            "PostgreSQL",
            "postgresql://postgres.internal:5432/orders",
            "INSERT INTO orders (item, email) VALUES ('widget', 'jane.doe@example.com')",
        );
        tokio::time::sleep(Duration::from_millis(3 + mix(n) % 8)).await;
        db.end();
    };
    let (stock, ()) = tokio::join!(stock_check, reserve);
    if stock == 429 {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    let charged = call(
        &segment,
        &shop.http,
        "payments",
        "POST",
        &format!("{}/charge", shop.other),
    )
    .await;
    if charged >= 500 {
        segment.add_error(&Downstream {
            service: "payments",
            status: charged,
        });
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let queue = segment.begin_subsegment("SQS");
    queue.with_document(|d| {
        d.namespace = Some("aws".into());
        d.aws = Some(
            json!({"operation": "SendMessage", "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    });
    tokio::time::sleep(Duration::from_millis(2)).await;
    queue.end();
    StatusCode::OK
}

async fn inventory(State(shop): State<Shop>, Path(item): Path<String>) -> StatusCode {
    let Some(segment) = current() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let n = shop.counter.fetch_add(1, Ordering::Relaxed);
    let table = segment.begin_subsegment("DynamoDB");
    table.with_document(|d| {
        d.namespace = Some("aws".into());
        d.aws = Some(
            json!({"operation": "GetItem", "table_name": "stock", "region": "us-east-1"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    });
    // Every so often the table is hot: throttled, or slow.
    let roll = mix(n) % 100;
    if roll < 6 {
        table.set_http_response(400, None);
        table.with_document(|d| {
            d.throttle = Some(true);
            d.error = Some(true);
        });
        table.end();
        return StatusCode::TOO_MANY_REQUESTS;
    }
    let wait = if roll > 94 { 350 } else { 4 + roll % 6 };
    tokio::time::sleep(Duration::from_millis(wait)).await;
    table.end();
    let _ = segment.put_annotation("sku", item.as_str());
    StatusCode::OK
}

async fn payments(State(shop): State<Shop>) -> StatusCode {
    let Some(segment) = current() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let fraud = segment.begin_subsegment("fraud-check");
    tokio::time::sleep(Duration::from_millis(3)).await;
    fraud.end();
    let status = call(
        &segment,
        &shop.http,
        "bank.example.com",
        "POST",
        &format!("{}/v1/charges", shop.next),
    )
    .await;
    if status >= 500 {
        segment.add_error(&BankError);
        segment.with_document(|d| {
            if let Some(roentgen_sdk::model::Cause::Details(c)) = &mut d.cause
                && let Some(e) = c.exceptions.as_mut().and_then(|l| l.first_mut())
            {
                e.stack = Some(
                    [
                        ("charge_card", "src/payments/bank.rs", 88),
                        ("authorize", "src/payments/mod.rs", 41),
                        ("handle_charge", "src/main.rs", 120),
                    ]
                    .iter()
                    .map(|(label, path, line)| StackFrame {
                        label: Some((*label).to_owned()),
                        path: Some((*path).to_owned()),
                        line: Some(Some(*line)),
                        ..StackFrame::default()
                    })
                    .collect(),
                );
            }
        });
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// The bank's API: not instrumented, so it shows as an inferred remote node.
async fn bank(State(counter): State<Arc<AtomicU64>>) -> StatusCode {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let roll = mix(n ^ 0xBA4C) % 100;
    let wait = if roll > 96 { 600 } else { 8 + roll % 15 };
    tokio::time::sleep(Duration::from_millis(wait)).await;
    if roll < 5 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// Starts the demo's services and returns the frontend's base URL.
pub async fn start_services(daemon: EmbeddedDaemon) -> Result<String, DemoError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DemoError::Service(e.to_string()))?;
    let counter = Arc::new(AtomicU64::new(0));
    let bank_url = serve(
        Router::new()
            .route("/v1/charges", post(bank))
            .with_state(counter.clone()),
    )
    .await?;
    let shop = |next: &str, other: &str| Shop {
        http: http.clone(),
        next: next.to_owned(),
        other: other.to_owned(),
        counter: counter.clone(),
    };
    let payments_url = serve(
        Router::new()
            .route("/charge", post(payments))
            .with_state(shop(&bank_url, ""))
            .layer(XRayLayer::new(
                recorder(daemon, "AWS::EC2::Instance")?,
                "payments",
            )),
    )
    .await?;
    let inventory_url = serve(
        Router::new()
            .route("/stock/{item}", get(inventory))
            .with_state(shop("", ""))
            .layer(XRayLayer::new(
                recorder(daemon, "AWS::ECS::Container")?,
                "inventory",
            )),
    )
    .await?;
    // checkout reaches inventory at `next` and payments at `other`.
    let checkout_url = serve(
        Router::new()
            .route("/checkout/{item}", post(checkout))
            .with_state(shop(&inventory_url, &payments_url))
            .layer(XRayLayer::new(
                recorder(daemon, "AWS::ECS::Container")?,
                "checkout",
            )),
    )
    .await?;
    serve(
        Router::new()
            .route("/shop/{item}", get(frontend))
            .with_state(shop(&checkout_url, ""))
            .layer(XRayLayer::new(
                recorder(daemon, "AWS::EC2::Instance")?,
                "frontend",
            )),
    )
    .await
}

/// Runs the demo: starts its services, then sends requests to the frontend at the configured
/// pace until `max_requests` (or forever).
pub async fn run(config: DemoConfig) -> Result<(), DemoError> {
    let frontend = start_services(config.daemon).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DemoError::Service(e.to_string()))?;
    let items = ["widget", "gadget", "gizmo", "doohickey", "sprocket"];
    let mut n: u64 = 0;
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while config.max_requests.is_none_or(|m| n < m) {
        tick.tick().await;
        let r = mix(n);
        let item = if r.is_multiple_of(23) {
            "missing"
        } else {
            items[(r % items.len() as u64) as usize]
        };
        let url = format!("{frontend}/shop/{item}?user={}", r % 40);
        let http = http.clone();
        // Fire and forget so a slow request does not hold the pace back.
        tokio::spawn(async move {
            if let Err(error) = http.get(&url).send().await {
                tracing::debug!(%error, "demo request failed");
            }
        });
        n += 1;
    }
    Ok(())
}
