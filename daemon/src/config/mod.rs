//! The daemon's configuration in two stages: raw options (flags, environment, an optional TOML
//! file) and the validated, typed [`Config`] the pipeline runs with.
//!
//! Precedence: a flag beats its environment variable, which beats the file, which beats the
//! default. Every error names the option or file key at fault.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use roentgen_sdk::model::MAX_DOCUMENT_BYTES;
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};
use serde::Deserialize;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key and line).
        message: String,
    },
    /// An option has a value out of range or unparsable.
    #[error("invalid `{key}`: {message}")]
    Invalid {
        /// The option (file key spelling; the flag is the same with dashes).
        key: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The `[scrub]` table was refused by the scrubber.
    #[error("invalid `[scrub]` table: {0}")]
    Scrub(#[from] roentgen_sdk::scrub::ConfigError),
    /// A listening address off loopback without `insecure`.
    #[error(transparent)]
    Exposed(#[from] crate::exposure::Exposed),
}

/// `roentgen-daemon`: receives X-Ray segment documents over UDP, scrubs personal data out of
/// them, buffers and batches them, and forwards them to the Roentgen collector.
#[derive(Debug, Parser)]
#[command(name = "roentgen-daemon", version, about, long_about = None)]
pub struct Cli {
    /// A subcommand; without one, the daemon runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the daemon.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scrubs documents read from stdin (one JSON document per line, or datagrams with their
    /// header line) and writes them to stdout, one per line, with a per-detector summary on
    /// stderr, so operators can try their rules.
    Scrub {
        /// Config file whose `[scrub]` table is used (the daemon's own file).
        #[arg(short = 'c', long, env = "ROENTGEN_DAEMON_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// The daemon's options as given on the command line or in the environment. Every field is
/// optional so the config file and the defaults can fill the gaps.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// TOML config file: the same keys as these options with underscores
    /// (`buffer_memory_mb = 64`), plus a `[scrub]` table for the scrubber.
    #[arg(short = 'c', long, env = "ROENTGEN_DAEMON_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// UDP address for segment documents [default: 127.0.0.1:2000].
    #[arg(short = 'b', long, env = "ROENTGEN_DAEMON_BIND")]
    pub bind: Option<String>,

    /// TCP address for the sampling proxy and `GET /metrics` [default: 127.0.0.1:2000].
    #[arg(short = 't', long, env = "ROENTGEN_DAEMON_BIND_TCP")]
    pub bind_tcp: Option<String>,

    /// TCP address of the OTLP/HTTP listener (`POST /v1/traces`) for OpenTelemetry SDKs, or
    /// `off` [default: 127.0.0.1:4318].
    #[arg(long, env = "ROENTGEN_DAEMON_OTLP_HTTP")]
    pub otlp_http: Option<String>,

    /// TCP address of the OTLP/gRPC listener (`TraceService/Export`, plain HTTP/2) for
    /// OpenTelemetry SDKs, or `off` [default: 127.0.0.1:4317].
    #[arg(long, env = "ROENTGEN_DAEMON_OTLP_GRPC")]
    pub otlp_grpc: Option<String>,

    /// OTLP span attributes indexed as annotations (comma-separated keys), besides those a
    /// span lists in `aws.xray.annotations`; the others become metadata [default: none].
    #[arg(
        long,
        env = "ROENTGEN_DAEMON_OTLP_ANNOTATION_KEYS",
        value_delimiter = ','
    )]
    pub otlp_annotation_keys: Option<Vec<String>>,

    /// Allow `--bind`/`--bind-tcp` off loopback: neither port authenticates its clients, so
    /// anyone who reaches them can send documents (and sampling requests) under this daemon's
    /// key [default: false].
    #[arg(
        long,
        env = "ROENTGEN_DAEMON_INSECURE",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub insecure: Option<bool>,

    /// The collector's base URL, `http://` or `https://` [default: http://127.0.0.1:4000].
    #[arg(short = 'e', long, env = "ROENTGEN_DAEMON_ENDPOINT")]
    pub endpoint: Option<String>,

    /// PEM file of the CA certificates that an `https://` collector's certificate must chain
    /// to; without it, the system's trusted roots are used.
    #[arg(long, env = "ROENTGEN_DAEMON_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Access key id to sign `PutTraceSegments` with (SigV4, service `xray`); needs
    /// `--secret-access-key`.
    #[arg(long, env = "ROENTGEN_DAEMON_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,

    /// Secret of `--access-key-id` (prefer the environment variable to the flag).
    #[arg(
        long,
        env = "ROENTGEN_DAEMON_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,

    /// Region of the signature's credential scope [default: us-east-1].
    #[arg(long, env = "ROENTGEN_DAEMON_REGION")]
    pub region: Option<String>,

    /// Memory bound for documents held in the daemon, in MiB; past it, new datagrams are
    /// dropped and counted [default: 64].
    #[arg(short = 'm', long, env = "ROENTGEN_DAEMON_BUFFER_MEMORY_MB")]
    pub buffer_memory_mb: Option<u64>,

    /// UDP socket receive buffer, in KiB (raised past the system limit when running as root)
    /// [default: 16384].
    #[arg(long, env = "ROENTGEN_DAEMON_RECEIVE_BUFFER_KB")]
    pub receive_buffer_kb: Option<u64>,

    /// Largest document accepted, in KiB (1 to 64) [default: 64].
    #[arg(long, env = "ROENTGEN_DAEMON_MAX_DOCUMENT_KB")]
    pub max_document_kb: Option<u64>,

    /// Documents per PutTraceSegments request (1 to 500) [default: 50].
    #[arg(long, env = "ROENTGEN_DAEMON_BATCH_SIZE")]
    pub batch_size: Option<usize>,

    /// Send a partial batch after this many milliseconds [default: 1000].
    #[arg(long, env = "ROENTGEN_DAEMON_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,

    /// Concurrent requests to the collector (1 to 64) [default: 4].
    #[arg(long, env = "ROENTGEN_DAEMON_SENDERS")]
    pub senders: Option<usize>,

    /// Threads that validate and scrub documents (1 to 64) [default: number of CPUs, at most 4].
    #[arg(long, env = "ROENTGEN_DAEMON_WORKERS")]
    pub workers: Option<usize>,

    /// Directory for the disk spool used while the collector is unreachable; without it,
    /// batches wait in memory.
    #[arg(long, env = "ROENTGEN_DAEMON_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Disk bound for the spool, in MiB [default: 1024].
    #[arg(long, env = "ROENTGEN_DAEMON_SPOOL_MAX_MB")]
    pub spool_max_mb: Option<u64>,

    /// Timeout of one request to the collector, in milliseconds [default: 10000].
    #[arg(long, env = "ROENTGEN_DAEMON_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,

    /// Longest pause between retries, in milliseconds (back-off doubles up to it, with jitter)
    /// [default: 5000].
    #[arg(long, env = "ROENTGEN_DAEMON_RETRY_MAX_BACKOFF_MS")]
    pub retry_max_backoff_ms: Option<u64>,

    /// Failed attempts (any error, any whole-request 4xx included) after which a batch goes to
    /// the spool and the collector is deemed down until a replay succeeds; also how often
    /// documents left unprocessed are resent before they are spooled [default: 3].
    #[arg(long, env = "ROENTGEN_DAEMON_SPOOL_AFTER_ATTEMPTS")]
    pub spool_after_attempts: Option<u32>,

    /// On SIGTERM/SIGINT, time to flush before the rest is spooled, in seconds [default: 10].
    #[arg(long, env = "ROENTGEN_DAEMON_SHUTDOWN_DEADLINE_SECS")]
    pub shutdown_deadline_secs: Option<u64>,

    /// Seconds between summary log lines and PutTelemetryRecords; 0 turns both off
    /// [default: 60].
    #[arg(long, env = "ROENTGEN_DAEMON_TELEMETRY_INTERVAL_SECS")]
    pub telemetry_interval_secs: Option<u64>,

    /// Scrub personal data out of documents (`true`/`false`) [default: true].
    #[arg(long, env = "ROENTGEN_DAEMON_SCRUB")]
    pub scrub: Option<bool>,

    /// Append logs to this file instead of stderr.
    #[arg(long, env = "ROENTGEN_DAEMON_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Log filter, e.g. `info` or `roentgen_daemon=debug` [default: info].
    #[arg(long, env = "ROENTGEN_DAEMON_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// The config file: the daemon's keys plus the scrubber's `[scrub]` table.
#[derive(Debug, Default)]
struct FileConfig {
    run: RunArgs,
    scrub: Option<ScrubConfig>,
}

/// Where a disk spool lives and how much it may hold.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The directory (created if absent).
    pub dir: PathBuf,
    /// Bound on the spool's total size.
    pub max_bytes: u64,
}

/// How to open the daemon's ports to the network anyway (the opt-in, in each of its spellings).
const INSECURE_REMEDY: &str = "add --insecure (or ROENTGEN_DAEMON_INSECURE=true, or `insecure = true` in the config file) to accept unauthenticated documents and sampling requests from the network";

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP listen address.
    pub bind: SocketAddr,
    /// TCP listen address (sampling proxy, metrics).
    pub bind_tcp: SocketAddr,
    /// OTLP/HTTP listen address, if on.
    pub otlp_http: Option<SocketAddr>,
    /// OTLP/gRPC listen address, if on.
    pub otlp_grpc: Option<SocketAddr>,
    /// How OTLP spans become documents.
    pub otlp_mapping: roentgen_sdk::otlp::MappingConfig,
    /// The operator opted in to listening off loopback without authentication.
    pub insecure: bool,
    /// The collector's base URL, ending with `/`.
    pub endpoint: reqwest::Url,
    /// The only CAs trusted for an `https://` collector (from `--ca-file`); `None` trusts the
    /// system's roots.
    pub ca_certificates: Option<Vec<reqwest::Certificate>>,
    /// The key requests are signed with, if any.
    pub credentials: Option<crate::forwarder::sign::Credentials>,
    /// Memory bound in bytes.
    pub buffer_memory_bytes: usize,
    /// Requested `SO_RCVBUF` in bytes.
    pub receive_buffer_bytes: usize,
    /// Largest document accepted.
    pub max_document_bytes: usize,
    /// Documents per request.
    pub batch_size: usize,
    /// Partial batch flush interval.
    pub flush_interval: Duration,
    /// Concurrent senders.
    pub senders: usize,
    /// Validation and scrubbing threads.
    pub workers: usize,
    /// The disk spool, if any.
    pub spool: Option<SpoolConfig>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Cap of the retry back-off.
    pub retry_max_backoff: Duration,
    /// Attempts before a batch is spooled.
    pub spool_after_attempts: u32,
    /// Shutdown flush deadline.
    pub shutdown_deadline: Duration,
    /// Summary and telemetry period, if on.
    pub telemetry_interval: Option<Duration>,
    /// The scrubber, if scrubbing is on.
    pub scrubber: Option<Scrubber>,
    /// Log file, if not stderr.
    pub log_file: Option<PathBuf>,
    /// Log filter.
    pub log_level: String,
}

fn addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ConfigError::Invalid {
            key,
            message: format!("{value:?} is not a host:port address"),
        })
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            key,
            message: format!("{value} is out of range {min} to {max}"),
        });
    }
    Ok(value)
}

/// Reads the `[scrub]` table of a daemon config file (defaults when no file or no table).
pub fn scrub_config_from_file(path: Option<&Path>) -> Result<ScrubConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(ScrubConfig::default());
    };
    Ok(read_file(path)?.scrub.unwrap_or_default())
}

/// The certificates of a PEM CA bundle; an error naming `ca_file` if it has none.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let bad = |message: String| ConfigError::Invalid {
        key: "ca_file",
        message: format!("{}: {message}", path.display()),
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))?;
    if certificates.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        ));
    }
    Ok(certificates)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let scrub = match table.remove("scrub") {
        None => None,
        Some(value @ toml::Value::Table(_)) => Some(
            value
                .try_into::<ScrubConfig>()
                .map_err(|e| bad(format!("in [scrub]: {e}")))?,
        ),
        Some(_) => return Err(bad("`scrub` must be a table ([scrub])".to_owned())),
    };
    let run: RunArgs = toml::Value::Table(table)
        .try_into()
        .map_err(|e| bad(e.to_string()))?;
    Ok(FileConfig { run, scrub })
}

macro_rules! merge {
    ($args:ident, $file:ident, $($field:ident),*) => {
        $( if $args.$field.is_none() { $args.$field = $file.$field.take(); } )*
    };
}

impl RunArgs {
    /// Merges in the config file (if any), applies defaults and checks every value.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        let mut scrub_table_value = None;
        if let Some(path) = self.config.clone() {
            let mut file = read_file(&path)?;
            let f = &mut file.run;
            merge!(
                self,
                f,
                bind,
                bind_tcp,
                otlp_http,
                otlp_grpc,
                otlp_annotation_keys,
                insecure,
                endpoint,
                ca_file,
                access_key_id,
                secret_access_key,
                region,
                buffer_memory_mb,
                receive_buffer_kb,
                max_document_kb,
                batch_size,
                flush_interval_ms,
                senders,
                workers,
                spool_dir,
                spool_max_mb,
                request_timeout_ms,
                retry_max_backoff_ms,
                spool_after_attempts,
                shutdown_deadline_secs,
                telemetry_interval_secs,
                scrub,
                log_file,
                log_level
            );
            scrub_table_value = file.scrub;
        }
        let bind = addr("bind", self.bind.as_deref().unwrap_or("127.0.0.1:2000"))?;
        let bind_tcp = addr(
            "bind_tcp",
            self.bind_tcp.as_deref().unwrap_or("127.0.0.1:2000"),
        )?;
        let insecure = self.insecure.unwrap_or(false);
        let switchable = |name, given: Option<&str>, default| match given.unwrap_or(default) {
            off if off.eq_ignore_ascii_case("off") => Ok(None),
            text => addr(name, text).map(Some),
        };
        let otlp_http = switchable("otlp_http", self.otlp_http.as_deref(), "127.0.0.1:4318")?;
        let otlp_grpc = switchable("otlp_grpc", self.otlp_grpc.as_deref(), "127.0.0.1:4317")?;
        let listening = [("--bind", bind), ("--bind-tcp", bind_tcp)]
            .into_iter()
            .chain(otlp_http.map(|a| ("--otlp-http", a)))
            .chain(otlp_grpc.map(|a| ("--otlp-grpc", a)));
        for (flag, addr) in listening {
            crate::exposure::Listening {
                flag,
                addr,
                authenticated: false,
            }
            .check(insecure, INSECURE_REMEDY)?;
        }
        let endpoint_text = self
            .endpoint
            .unwrap_or_else(|| "http://127.0.0.1:4000".to_owned());
        let mut endpoint =
            reqwest::Url::parse(&endpoint_text).map_err(|e| ConfigError::Invalid {
                key: "endpoint",
                message: format!("{endpoint_text:?} is not a URL: {e}"),
            })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                key: "endpoint",
                message: format!("{endpoint_text:?} must start with http:// or https://"),
            });
        }
        let ca_certificates = match &self.ca_file {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        if !endpoint.path().ends_with('/') {
            let path = format!("{}/", endpoint.path());
            endpoint.set_path(&path);
        }
        let mb = |v: u64| usize::try_from(v.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let buffer_memory_bytes = mb(range(
            "buffer_memory_mb",
            self.buffer_memory_mb.unwrap_or(64),
            1,
            1 << 20,
        )?);
        let receive_buffer_bytes = usize::try_from(
            range(
                "receive_buffer_kb",
                self.receive_buffer_kb.unwrap_or(16_384),
                64,
                1 << 20,
            )? * 1024,
        )
        .unwrap_or(usize::MAX);
        let max_document_kb = range("max_document_kb", self.max_document_kb.unwrap_or(64), 1, 64)?;
        let max_document_bytes =
            usize::try_from(max_document_kb * 1024).unwrap_or(MAX_DOCUMENT_BYTES);
        let batch_size = range("batch_size", self.batch_size.unwrap_or(50), 1, 500)?;
        let flush_interval = Duration::from_millis(range(
            "flush_interval_ms",
            self.flush_interval_ms.unwrap_or(1000),
            1,
            600_000,
        )?);
        let senders = range("senders", self.senders.unwrap_or(4), 1, 64)?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = range("workers", self.workers.unwrap_or(cpus.min(4)), 1, 64)?;
        let spool = match self.spool_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(SpoolConfig {
                dir,
                max_bytes: range(
                    "spool_max_mb",
                    self.spool_max_mb.unwrap_or(1024),
                    1,
                    1 << 24,
                )? * 1024
                    * 1024,
            }),
            None => None,
        };
        let request_timeout = Duration::from_millis(range(
            "request_timeout_ms",
            self.request_timeout_ms.unwrap_or(10_000),
            10,
            600_000,
        )?);
        let retry_max_backoff = Duration::from_millis(range(
            "retry_max_backoff_ms",
            self.retry_max_backoff_ms.unwrap_or(5_000),
            10,
            600_000,
        )?);
        let spool_after_attempts = range(
            "spool_after_attempts",
            self.spool_after_attempts.unwrap_or(3),
            1,
            1000,
        )?;
        let shutdown_deadline = Duration::from_secs(range(
            "shutdown_deadline_secs",
            self.shutdown_deadline_secs.unwrap_or(10),
            0,
            3600,
        )?);
        let telemetry_interval = match self.telemetry_interval_secs.unwrap_or(60) {
            0 => None,
            secs => Some(Duration::from_secs(range(
                "telemetry_interval_secs",
                secs,
                1,
                86_400,
            )?)),
        };
        let scrub_config = scrub_table_value.unwrap_or_default();
        let scrubber = if self.scrub.unwrap_or(true) {
            Some(Scrubber::new(&scrub_config)?)
        } else {
            None
        };
        let credentials = match (self.access_key_id, self.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Some(crate::forwarder::sign::Credentials {
                    access_key_id,
                    secret_access_key,
                    region: self.region.unwrap_or_else(|| "us-east-1".to_owned()),
                })
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "access_key_id",
                    message: "--access-key-id and --secret-access-key go together".to_owned(),
                });
            }
        };
        let otlp_mapping = roentgen_sdk::otlp::MappingConfig {
            annotation_keys: self
                .otlp_annotation_keys
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect(),
            index_all_attributes: false,
        };
        Ok(Config {
            bind,
            bind_tcp,
            otlp_http,
            otlp_grpc,
            otlp_mapping,
            insecure,
            endpoint,
            ca_certificates,
            credentials,
            buffer_memory_bytes,
            receive_buffer_bytes,
            max_document_bytes,
            batch_size,
            flush_interval,
            senders,
            workers,
            spool,
            request_timeout,
            retry_max_backoff,
            spool_after_attempts,
            shutdown_deadline,
            telemetry_interval,
            scrubber,
            log_file: self.log_file,
            log_level: self.log_level.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

impl Config {
    /// A configuration for a daemon on ephemeral loopback ports sending to `endpoint`, with
    /// every other option at its default (for tests and embedding).
    pub fn local(endpoint: &str) -> Result<Self, ConfigError> {
        RunArgs {
            bind: Some("127.0.0.1:0".to_owned()),
            bind_tcp: Some("127.0.0.1:0".to_owned()),
            otlp_http: Some("127.0.0.1:0".to_owned()),
            otlp_grpc: Some("127.0.0.1:0".to_owned()),
            endpoint: Some(endpoint.to_owned()),
            ..RunArgs::default()
        }
        .validate()
    }
}

#[cfg(test)]
mod tests;
