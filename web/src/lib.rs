//! The Roentgen collector and dashboard server: an X-Ray-compatible HTTP API over an embedded
//! store, with trace assembly, the filter language and the service graph.
//!
//! - [`api`]: the axum routes of the X-Ray API ([`api::router`] builds them over an
//!   [`api::AppState`]; merge the dashboard's routes into the result).
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation.
//! - [`assembly`]: per-document facts and the trace fold (summaries and graph samples).
//! - [`filter`]: the filter-expression language.
//! - [`alarms`]: alarm rules over the rollups, their evaluation and webhook notifications.
//! - [`insights`]: incidents found without rules, with their root causes.
//! - [`graph`]: statistics, histograms and the service graph.
//! - [`query`]: queries shared by the API and the dashboard.
//! - [`sampling`]: centralized sampling rules and targets.
//! - [`retention`]: background deletion of old data.
//! - [`synth`]: synthetic traces for tests and benchmarks.
//! - [`dashboard`]: the server-rendered pages (service map, traces, timeline).
//! - [`demo`]: the all-in-one mode's embedded daemon and the demo workload.
//! - [`auth`]: SigV4, keys, policies and the audit log, as a layer in front of both.
//! - [`metrics`]: counters, `/metrics` (Prometheus text), `/healthz` and `/readyz`.
//! - [`data_dir`]: the default data directory, created with a `.gitignore`.
//! - [`server`]: the accept loop with per-connection timeouts; [`tls`]: HTTPS configuration.

pub mod alarms;
pub mod analytics;
pub mod api;
pub mod assembly;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod data_dir;
pub mod demo;
pub mod filter;
pub mod graph;
pub mod group;
pub mod insights;
pub mod metrics;
pub mod query;
pub mod retention;
pub mod sampling;
pub mod server;
pub mod store;
pub mod synth;
pub mod tls;

#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::time::Duration;

use config::Config;
use store::sqlite::SqliteStore;

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The embedded daemon or the demo could not start.
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    /// The keys file or the audit log is unusable.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// A rule of `--alarms` could not be saved.
    #[error("{0}")]
    Alarms(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Opens the store, binds, prints `roentgen-web listening http=ADDR` (`https=ADDR` with TLS,
/// then `otlp_grpc=ADDR` when that port is on) on stdout, and serves until the process ends.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // Checked before anything opens: an embedded daemon that cannot sign would lose everything.
    let daemon_credentials = match (&config.auth, &config.daemon_access_key_id) {
        (Some(auth), Some(id)) => Some(demo::daemon_credentials(&auth.keys_file, id)?),
        _ => None,
    };
    let tls_config = match &config.tls {
        Some(files) => Some(tls::server_config(files)?),
        None => None,
    };
    let tls = tls_config.clone().map(tokio_rustls::TlsAcceptor::from);
    let store: Arc<dyn store::Store> = match &config.clickhouse {
        None => Arc::new(SqliteStore::open_with(
            &config.data_dir,
            config.sqlite_reads,
            config.trace_limits,
        )?),
        Some(clickhouse) => {
            Arc::new(store::clickhouse::ClickhouseStore::open(clickhouse.clone()).await?)
        }
    };
    if config.scrubber.is_some() {
        tracing::info!("server-side scrubbing of PutTraceSegments documents is on");
    }
    let mut state = api::AppState::new(store.clone(), config.scrubber.clone());
    state.limits = config.query_limits;
    if config.otlp.scrubber.is_none() {
        tracing::warn!("--otlp-scrubbing off: OTLP spans are stored as sent");
    }
    state.otlp = config.otlp.clone();
    let counters = state.counters.clone();
    let counters_for_alarms = counters.clone();
    let grpc_state = state.clone();
    // Every answer, API and unknown paths included, carries the page headers (no framing,
    // no sniffing); `auth::protect` adds them to its own answers too.
    let app = dashboard::headers::protect_pages(
        api::router(state.clone())
            .merge(dashboard::router(state.clone()))
            .merge(metrics::router(state)),
    );
    let app = metrics::time_operations(app, counters.clone());
    let mut shared_auth = None;
    let app = match &config.auth {
        Some(auth) => {
            tracing::info!(keys = %auth.keys_file.display(), "SigV4 authentication is on");
            if tls.is_none() && !config.listen.ip().is_loopback() {
                tracing::warn!(
                    listen = %config.listen,
                    "serving plain HTTP off loopback: dashboard session cookies (which stand for credentials) travel in clear; pass --tls-cert and --tls-key"
                );
            }
            let mut auth = auth::Auth::open(auth.clone())?;
            auth.secure_cookies = tls.is_some();
            let auth = Arc::new(auth);
            shared_auth = Some(auth.clone());
            auth::protect(app, auth)
        }
        None if config.listen.ip().is_loopback() => app,
        None => {
            tracing::warn!(
                listen = %config.listen,
                "AUTHENTICATION IS OFF on a non-loopback address (--insecure): anyone who can reach it may send and read traces"
            );
            app
        }
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        counters,
        metrics::track_requests,
    ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, data_dir = %config.data_dir.display(), "collector listening");
    let grpc_addr = match config.otlp_grpc {
        Some(at) => {
            let grpc_listener = tokio::net::TcpListener::bind(at).await?;
            let grpc_addr = grpc_listener.local_addr()?;
            if shared_auth.is_some() && tls.is_none() && !at.ip().is_loopback() {
                tracing::warn!(otlp_grpc = %grpc_addr, "OTLP/gRPC credentials travel in clear text off loopback: pass --tls-cert and --tls-key");
            }
            let grpc_tls = tls_config
                .as_deref()
                .map(|c| tokio_rustls::TlsAcceptor::from(tls::grpc_config(c)));
            let grpc_app = api::otlp_grpc::router(grpc_state, shared_auth);
            tracing::info!(addr = %grpc_addr, tls = grpc_tls.is_some(), "OTLP/gRPC listening");
            let limits = config.limits;
            tokio::spawn(async move {
                let served = server::serve(
                    grpc_listener,
                    grpc_app,
                    grpc_tls,
                    limits,
                    server::Protocol::Http2,
                )
                .await;
                if let Err(error) = served {
                    tracing::error!(%error, "the OTLP/gRPC port stopped");
                }
            });
            format!(" otlp_grpc={grpc_addr}")
        }
        None => String::new(),
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "roentgen-web listening {scheme}={addr}{grpc_addr}")?;
        out.flush()?;
    }
    if let Some(at) = config.daemon {
        let daemon = demo::start_daemon(at, addr, daemon_credentials).await?;
        if config.demo {
            let demo = demo::DemoConfig {
                daemon,
                interval: Duration::from_millis(300),
                max_requests: None,
            };
            tokio::spawn(async move {
                if let Err(error) = demo::run(demo).await {
                    tracing::error!(%error, "demo workload stopped");
                }
            });
        }
        println!("Roentgen is running: open http://{addr}/ in a browser");
    }
    for rule in config.alarm_rules.iter().cloned() {
        let name = rule.name.clone();
        alarms::save(store.as_ref(), rule, alarms::SaveMode::Upsert)
            .await
            .map_err(|e| ServeError::Alarms(format!("saving rule {name:?} of --alarms: {e}")))?;
    }
    if config.alarm_evaluation {
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let mut alarm_config = alarms::evaluator::AlarmConfig::new(public_url);
        alarm_config.lease_ttl = config.alarm_lease;
        alarm_config.tick = alarm_config.tick.min(config.alarm_lease / 3);
        let evaluator =
            alarms::evaluator::Evaluator::new(store.clone(), alarm_config, counters_for_alarms);
        tokio::spawn(evaluator.run());
    } else {
        tracing::info!(
            "--alarm-evaluation off: other collectors sharing the store evaluate the alarm rules"
        );
    }
    tokio::spawn(retention::run(store, config.retention, RETENTION_EVERY));
    server::serve(listener, app, tls, config.limits, server::Protocol::Http1).await?;
    Ok(())
}
