//! `roentgen-daemon`: the X-Ray-compatible daemon binary. Parses options, validates them into a
//! [`Config`], and runs the library's daemon until SIGTERM or SIGINT.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use roentgen_daemon::config::scrub_config_from_file;
use roentgen_daemon::{Cli, Command, Config, Daemon};
use roentgen_sdk::scrub::Scrubber;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Scrub { config }) = cli.command {
        let scrub_config = scrub_config_from_file(config.as_deref())?;
        let scrubber = Scrubber::new(&scrub_config).context("invalid [scrub] table")?;
        roentgen_daemon::scrub_command::run(
            &scrubber,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            std::io::stderr().lock(),
        )?;
        return Ok(());
    }
    let config = cli.run.validate()?;
    init_logging(&config)?;
    roentgen_sdk::scrub::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("roentgen-io")
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid `log_level` {:?}", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &config.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open `log_file` {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if config.insecure && !(config.bind.ip().is_loopback() && config.bind_tcp.ip().is_loopback()) {
        tracing::warn!(
            bind = %config.bind,
            bind_tcp = %config.bind_tcp,
            "listening off loopback without authentication (--insecure): anyone who can reach these ports may send documents and sampling requests under this daemon's key"
        );
    }
    if config.scrubber.is_none() {
        tracing::warn!("scrubbing is OFF: documents are forwarded with any personal data in them");
    }
    let endpoint = config.endpoint.clone();
    let daemon = Daemon::bind(config).await?;
    let shown =
        |a: Option<std::net::SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let otlp = shown(daemon.otlp_http_addr());
    let otlp_grpc = shown(daemon.otlp_grpc_addr());
    tracing::info!(udp = %daemon.udp_addr(), tcp = %daemon.tcp_addr(), otlp_http = %otlp, %otlp_grpc, %endpoint, "listening");
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "roentgen-daemon listening udp={} tcp={} otlp_http={otlp} otlp_grpc={otlp_grpc}",
            daemon.udp_addr(),
            daemon.tcp_addr()
        )?;
        out.flush()?;
    }
    let report = daemon.run(shutdown_signal()).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "roentgen-daemon stopped {}", report.fields())?;
    out.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
