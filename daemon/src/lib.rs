//! The Roentgen daemon: receives X-Ray UDP datagrams, validates and scrubs them, buffers them
//! within a memory bound, and forwards them in batches to the collector, spooling to disk while
//! the collector is unreachable.
//!
//! The pipeline, one folder per stage:
//! `listener` (UDP, `recvmmsg`) -> `processor` (framing, validation, scrubbing; one thread per
//! worker, each with its own `batcher`) -> `forwarder` (concurrent `PutTraceSegments` with
//! retries) <-> `spool` (disk, checksummed, replayed oldest first). `sampling_proxy` serves the TCP port,
//! `telemetry` holds the counters. [`Daemon::bind`] then [`BoundDaemon::run`] is the whole
//! daemon, usable inside another process (the all-in-one demo embeds it).

pub mod batcher;
pub mod config;
pub mod exposure;
pub mod forwarder;
pub mod listener;
pub mod loadgen;
pub mod memory;
pub mod otlp;
pub mod processor;
pub mod sampling_proxy;
pub mod scrub_command;
pub mod spool;
pub mod telemetry;

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, watch};

pub use config::{Cli, Command, Config, ConfigError, RunArgs, SpoolConfig};
pub use telemetry::{Counters, Report};

use crate::batcher::Batcher;
use crate::forwarder::{Forwarder, ForwarderSettings};
use crate::listener::{Listener, PacketPool};
use crate::memory::MemoryBudget;
use crate::processor::Worker;
use crate::spool::{Spool, SpoolError};
use roentgen_sdk::scrub::Scrubber;

/// Room for the datagram header line on top of the largest document.
const HEADER_ALLOWANCE: usize = 64;

/// Packet batches queued per worker before the listener drops. Under load a `recvmmsg` call
/// often returns only a few datagrams, so this is generous: the memory bound is what should
/// apply first.
const WORKER_QUEUE: usize = 16 * 1024;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A socket could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The spool directory is unusable.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A thread could not be started or panicked.
    #[error("thread: {0}")]
    Thread(String),
    /// The TCP server failed.
    #[error("TCP server: {0}")]
    Server(std::io::Error),
}

/// The daemon before binding.
pub struct Daemon;

impl Daemon {
    /// Binds the UDP and TCP sockets and opens the spool, so the real addresses are known
    /// (useful with port 0) before anything runs.
    pub async fn bind(config: Config) -> Result<BoundDaemon, DaemonError> {
        let udp =
            listener::open_socket(config.bind, config.receive_buffer_bytes).map_err(|source| {
                DaemonError::Bind {
                    what: "UDP",
                    addr: config.bind,
                    source,
                }
            })?;
        let tcp = tokio::net::TcpListener::bind(config.bind_tcp)
            .await
            .map_err(|source| DaemonError::Bind {
                what: "TCP",
                addr: config.bind_tcp,
                source,
            })?;
        let otlp = bind_optional("OTLP/HTTP", config.otlp_http).await?;
        let otlp_grpc = bind_optional("OTLP/gRPC", config.otlp_grpc).await?;
        let spool = match &config.spool {
            Some(s) => Some(Arc::new(Spool::open(&s.dir, s.max_bytes)?)),
            None => None,
        };
        let counters = Arc::new(Counters::default());
        if let Some(spool) = &spool {
            counters
                .spool_bytes
                .store(spool.used_bytes(), Ordering::Relaxed);
            counters.quarantined.add(spool.quarantined_at_open());
        }
        Ok(BoundDaemon {
            budget: Arc::new(MemoryBudget::new(config.buffer_memory_bytes)),
            config,
            udp,
            tcp,
            otlp,
            otlp_grpc,
            spool,
            counters,
        })
    }
}

/// Binds a listener that may be off.
async fn bind_optional(
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, DaemonError> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| DaemonError::Bind { what, addr, source }),
        None => Ok(None),
    }
}

/// A daemon with its sockets bound, ready to run.
pub struct BoundDaemon {
    config: Config,
    udp: UdpSocket,
    tcp: tokio::net::TcpListener,
    otlp: Option<tokio::net::TcpListener>,
    otlp_grpc: Option<tokio::net::TcpListener>,
    spool: Option<Arc<Spool>>,
    counters: Arc<Counters>,
    budget: Arc<MemoryBudget>,
}

impl BoundDaemon {
    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp.local_addr().unwrap_or(self.config.bind)
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp.local_addr().unwrap_or(self.config.bind_tcp)
    }

    /// The bound OTLP/HTTP address, if the listener is on.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound OTLP/gRPC address, if the listener is on.
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The live counters (shared with the running daemon).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The memory budget (shared with the running daemon).
    pub fn budget(&self) -> Arc<MemoryBudget> {
        self.budget.clone()
    }

    /// Runs until `shutdown` completes; then stops receiving, drains the socket, flushes every
    /// batch to the collector or the spool within the shutdown deadline, and returns the
    /// final counts.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<Report, DaemonError> {
        let Self {
            config,
            udp,
            tcp,
            otlp,
            otlp_grpc,
            spool,
            counters,
            budget,
        } = self;
        let client = forwarder::client::build(&config)?;
        let segments_url = config
            .endpoint
            .join("TraceSegments")
            .unwrap_or_else(|_| config.endpoint.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (deadline_tx, deadline_rx) = watch::channel(false);
        let forwarder = Arc::new(Forwarder::new(
            ForwarderSettings {
                segments_url,
                retry_max_backoff: config.retry_max_backoff,
                spool_after_attempts: config.spool_after_attempts,
                senders: config.senders,
                credentials: config.credentials.clone(),
            },
            client.clone(),
            counters.clone(),
            budget.clone(),
            spool.clone(),
            deadline_rx,
        ));
        let (batch_tx, batch_rx) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(forwarder.clone().run_dispatcher(batch_rx));
        let replayer = tokio::spawn(forwarder.clone().run_replay(stop_rx.clone()));

        let pool = Arc::new(PacketPool::default());
        let mut worker_inputs = Vec::with_capacity(config.workers);
        let mut threads = Vec::with_capacity(config.workers + 1);
        for i in 0..config.workers {
            let (tx, rx) = std::sync::mpsc::sync_channel(WORKER_QUEUE);
            worker_inputs.push(tx);
            let worker = Worker {
                input: rx,
                pool: pool.clone(),
                budget: budget.clone(),
                counters: counters.clone(),
                // Each worker's regexes get their own caches (no lock between workers).
                scrubber: config.scrubber.as_ref().map(Scrubber::with_own_caches),
                max_document_bytes: config.max_document_bytes,
                batcher: Batcher::new(config.batch_size, config.flush_interval),
                output: batch_tx.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("roentgen-worker-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| DaemonError::Thread(e.to_string()))?;
            threads.push(handle);
        }
        drop(batch_tx);
        // The OTLP listeners feed the same workers; their senders go when they stop, before
        // the workers are joined.
        let otlp_state = Arc::new(otlp::OtlpState::new(
            worker_inputs.clone(),
            pool.clone(),
            budget.clone(),
            counters.clone(),
            config.otlp_mapping.clone(),
        ));
        let otlp_servers: Vec<_> = [
            (otlp, otlp::router(otlp_state.clone()), "OTLP/HTTP"),
            (otlp_grpc, otlp::grpc_router(otlp_state), "OTLP/gRPC"),
        ]
        .into_iter()
        .filter_map(|(listener, app, what)| {
            let listener = listener?;
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(error) = served {
                    tracing::error!(%error, "the {what} listener failed");
                }
            }))
        })
        .collect();
        let stop_flag = Arc::new(AtomicBool::new(false));
        let listener = Listener {
            socket: udp,
            workers: worker_inputs,
            pool,
            budget: budget.clone(),
            counters: counters.clone(),
            stop: stop_flag.clone(),
            max_datagram_bytes: config.max_document_bytes + HEADER_ALLOWANCE,
        };
        let listener_thread = std::thread::Builder::new()
            .name("roentgen-udp".to_owned())
            .spawn(move || listener.run())
            .map_err(|e| DaemonError::Thread(e.to_string()))?;

        let app = sampling_proxy::router(sampling_proxy::ProxyState {
            client: client.clone(),
            endpoint: config.endpoint.clone(),
            counters: counters.clone(),
            budget: budget.clone(),
            credentials: config.credentials.clone(),
        });
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(tcp, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let telemetry = config.telemetry_interval.map(|interval| {
            tokio::spawn(telemetry::run_telemetry(
                counters.clone(),
                budget.clone(),
                client.clone(),
                config.endpoint.clone(),
                config.credentials.clone(),
                interval,
                stop_rx.clone(),
            ))
        });

        shutdown.await;
        tracing::info!(
            deadline_secs = config.shutdown_deadline.as_secs(),
            "shutting down: receiving stops, buffered documents are flushed or spooled"
        );
        stop_flag.store(true, Ordering::Release);
        let _ = stop_tx.send(true);
        let deadline = config.shutdown_deadline;
        let deadline_timer = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = deadline_tx.send(true);
        });
        for server in otlp_servers {
            let _ = server.await;
        }
        let joined = tokio::task::spawn_blocking(move || {
            let mut panicked = listener_thread.join().is_err();
            for t in threads {
                panicked |= t.join().is_err();
            }
            panicked
        })
        .await;
        if !matches!(joined, Ok(false)) {
            tracing::error!("a receive or processing thread panicked");
        }
        let _ = dispatcher.await;
        deadline_timer.abort();
        let _ = replayer.await;
        if let Some(t) = telemetry {
            let _ = t.await;
        }
        let served = server.await;
        let report = Report::from_counters(&counters);
        tracing::info!(
            received = report.received,
            sent = report.sent,
            spooled = report.spooled,
            replayed = report.replayed,
            dropped = report.dropped,
            rejected = report.rejected,
            "stopped"
        );
        match served {
            Ok(Err(e)) => Err(DaemonError::Server(e)),
            _ => Ok(report),
        }
    }
}

/// Binds and runs a daemon until `shutdown` completes (see [`BoundDaemon::run`]).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, DaemonError> {
    Daemon::bind(config).await?.run(shutdown).await
}
