//! `roentgen-web`: the collector and dashboard binary.

use clap::Parser;
use roentgen_web::config::Args;

/// mimalloc: the collector allocates and frees many small objects per document across threads
/// (folds, summaries, SQLite's pages); with glibc's allocator that was a third of its CPU
/// (`BENCHMARKS.md`, "Fleet-shaped ingest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    roentgen_sdk::scrub::install_panic_hook();
    if std::env::args().nth(1).as_deref() == Some("keys") {
        let args = roentgen_web::auth::keys::KeysArgs::parse_from(std::env::args().skip(1));
        roentgen_web::auth::keys::run(args, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let config = Args::parse().validate()?;
    roentgen_web::serve(config).await?;
    Ok(())
}
