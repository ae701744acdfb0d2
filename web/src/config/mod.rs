//! Command-line arguments and the validated configuration they become.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Which store backs the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded SQLite store in `--data-dir`.
    Sqlite,
    /// ClickHouse at `--clickhouse-url`, for several collectors sharing one store.
    Clickhouse,
}

/// `roentgen-web` arguments.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "roentgen-web",
    version,
    about = "Roentgen collector and dashboard"
)]
pub struct Args {
    /// Address to serve the X-Ray API (and dashboard) on.
    #[arg(long, env = "ROENTGEN_WEB_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: String,
    /// Address to serve OTLP/gRPC (`TraceService/Export`) on, a port of its own (HTTP/2; TLS
    /// with `--tls-cert`; with `--auth-keys`, callers send `authorization: Basic
    /// base64(ACCESS_KEY_ID:SECRET)`), e.g. `127.0.0.1:4317` [default: off].
    #[arg(long, env = "ROENTGEN_WEB_OTLP_GRPC")]
    pub otlp_grpc: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, env = "ROENTGEN_WEB_DATA_DIR", default_value = "roentgen-data")]
    pub data_dir: PathBuf,
    /// Store backend.
    #[arg(long, value_enum, env = "ROENTGEN_WEB_STORE", default_value = "sqlite")]
    pub store: StoreKind,
    /// ClickHouse HTTP URL (with `--store clickhouse`), e.g. `http://127.0.0.1:8123`; a
    /// `user:password@` in it is taken out and used as the credentials.
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_URL", hide_env_values = true)]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database, created if missing.
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_DATABASE", default_value = "roentgen")]
    pub clickhouse_database: String,
    /// ClickHouse user [default: the URL's user, else `default`].
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password (prefer `--clickhouse-password-file` or the environment variable:
    /// a flag shows in the process list).
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<crate::store::clickhouse::Password>,
    /// File holding the ClickHouse password (a trailing newline is ignored).
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_PASSWORD_FILE")]
    pub clickhouse_password_file: Option<PathBuf>,
    /// ClickHouse cluster (from the servers' `remote_servers`): store in `Distributed` tables
    /// over `<table>_local` tables on every shard.
    #[arg(long, env = "ROENTGEN_CLICKHOUSE_CLUSTER")]
    pub clickhouse_cluster: Option<String>,
    /// Days of traces to keep.
    #[arg(long, env = "ROENTGEN_WEB_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Scrub documents received by `PutTraceSegments` with the default scrubber configuration.
    #[arg(long, env = "ROENTGEN_WEB_SCRUB")]
    pub scrub: bool,
    /// Scrub documents with this scrubber configuration (TOML); implies `--scrub`.
    #[arg(long, env = "ROENTGEN_WEB_SCRUB_CONFIG")]
    pub scrub_config: Option<PathBuf>,
    /// Scrub spans received over OTLP (`/v1/traces`): `on` (the default, since OpenTelemetry
    /// SDKs exporting straight here skip the daemon, where scrubbing otherwise happens) or
    /// `off`. Uses `--scrub-config` when given.
    #[arg(long, env = "ROENTGEN_WEB_OTLP_SCRUBBING", value_enum, default_value_t = Switch::On)]
    pub otlp_scrubbing: Switch,
    /// OTLP span attributes indexed as annotations (comma-separated keys, e.g.
    /// `customer.tier,cart.items`), besides those a span lists in `aws.xray.annotations`; the
    /// others become metadata.
    #[arg(long, env = "ROENTGEN_WEB_OTLP_ANNOTATION_KEYS", value_delimiter = ',')]
    pub otlp_annotation_keys: Vec<String>,
    /// Index every scalar OTLP span attribute as an annotation.
    #[arg(long, env = "ROENTGEN_WEB_OTLP_INDEX_ALL_ATTRIBUTES")]
    pub otlp_index_all_attributes: bool,
    /// All-in-one: also run the daemon's UDP listener in this process, forwarding here.
    #[arg(long, env = "ROENTGEN_WEB_WITH_DAEMON")]
    pub with_daemon: bool,
    /// UDP address of the embedded daemon (with `--with-daemon` or `--demo`).
    #[arg(
        long,
        env = "ROENTGEN_WEB_DAEMON_UDP",
        default_value = "127.0.0.1:2000"
    )]
    pub daemon_udp: String,
    /// TCP address of the embedded daemon's sampling proxy.
    #[arg(
        long,
        env = "ROENTGEN_WEB_DAEMON_TCP",
        default_value = "127.0.0.1:2000"
    )]
    pub daemon_tcp: String,
    /// Drive a demo multi-service app through the embedded daemon (implies `--with-daemon`).
    #[arg(long)]
    pub demo: bool,
    /// With `--auth-keys`: the access key (in the keys file) the embedded daemon signs with;
    /// its principal needs `xray:PutTraceSegments`.
    #[arg(long, env = "ROENTGEN_WEB_DAEMON_ACCESS_KEY_ID")]
    pub daemon_access_key_id: Option<String>,
    /// Keys file (`roentgen-web keys create` makes it): turns on SigV4 authentication and
    /// IAM-style policies for every API call and dashboard page.
    #[arg(long, env = "ROENTGEN_WEB_AUTH_KEYS")]
    pub auth_keys: Option<PathBuf>,
    /// Audit log (JSON lines, rotated) of every authenticated call; needs `--auth-keys`.
    #[arg(long, env = "ROENTGEN_WEB_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Largest accepted difference, in seconds, between a signed request's time and ours.
    #[arg(long, env = "ROENTGEN_WEB_MAX_CLOCK_SKEW", default_value_t = 300)]
    pub max_clock_skew: u64,
    /// Serve without authentication on a non-loopback address (refused otherwise): `--listen`
    /// without `--auth-keys`, and the embedded daemon's `--daemon-udp`/`--daemon-tcp` (never
    /// authenticated).
    #[arg(long)]
    pub insecure: bool,
    /// With `--auth-keys`: serve `GET /metrics` unsigned to clients on loopback (a scraper on
    /// the same host); others still need a signed request allowed `xray:GetMetrics`.
    #[arg(long, env = "ROENTGEN_WEB_METRICS_ON_LOOPBACK")]
    pub metrics_on_loopback: bool,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
    /// `--tls-key`.
    #[arg(long, env = "ROENTGEN_WEB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ROENTGEN_WEB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake.
    #[arg(
        long,
        env = "ROENTGEN_WEB_TLS_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a client has to send a request's headers, from the connection's start or the
    /// end of the previous response (so idle keep-alive connections close after it too).
    #[arg(long, env = "ROENTGEN_WEB_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds from a request's headers to its response (reading the body included); 408 past it.
    #[arg(long, env = "ROENTGEN_WEB_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Longest window, in hours, of a `GetServiceGraph` or `GetTimeSeriesServiceStatistics`
    /// call (longer ones are refused with `InvalidRequestException`).
    #[arg(
        long,
        env = "ROENTGEN_WEB_MAX_QUERY_WINDOW_HOURS",
        default_value_t = crate::api::QueryLimits::DEFAULT_WINDOW_HOURS
    )]
    pub max_query_window_hours: u64,
    /// Most candidate traces the dashboard's traces page examines for one view (it then shows
    /// what it found and says the search stopped).
    #[arg(long, env = "ROENTGEN_WEB_MAX_PAGE_SCAN", default_value_t = 100_000)]
    pub max_page_scan: u64,
    /// Most SQLite read connections open at once (reads beyond wait for one).
    #[arg(long, env = "ROENTGEN_WEB_SQLITE_READERS", default_value_t = 8)]
    pub sqlite_readers: u64,
    /// Seconds a read waits for a SQLite read connection before it is answered 503.
    #[arg(long, env = "ROENTGEN_WEB_SQLITE_READ_WAIT_SECS", default_value_t = 10)]
    pub sqlite_read_wait_secs: u64,
    /// Most documents kept per trace; later documents of that trace are refused
    /// (`UnprocessedTraceSegments` with `TraceTooLarge`), counted and logged, so one runaway
    /// trace cannot stall ingest.
    #[arg(long, env = "ROENTGEN_WEB_MAX_TRACE_DOCUMENTS", default_value_t = crate::store::TraceLimits::DEFAULT_MAX_DOCUMENTS as u64)]
    pub max_trace_documents: u64,
    /// Most MiB of documents kept per trace (refused past it like --max-trace-documents).
    #[arg(long, env = "ROENTGEN_WEB_MAX_TRACE_MIB", default_value_t = crate::store::TraceLimits::DEFAULT_MAX_MIB as u64)]
    pub max_trace_mib: u64,
    /// Documents whose facts the store's writer holds in memory (about 2.5 KB each),
    /// so that later pieces of those traces are folded without reading the store; past it
    /// the oldest traces are evicted, and their late pieces read back.
    #[arg(long, env = "ROENTGEN_WEB_LIVE_DOCUMENTS", default_value_t = crate::store::TraceLimits::DEFAULT_LIVE_DOCUMENTS as u64)]
    pub live_documents: u64,
    /// Largest request line plus headers, in KiB; 431 past it.
    #[arg(long, env = "ROENTGEN_WEB_MAX_HEADER_KB", default_value_t = 64)]
    pub max_header_kb: usize,
    /// Most connections served at once; past it new connections wait in the listen backlog
    /// until one closes.
    #[arg(long, env = "ROENTGEN_WEB_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Alarm rules file (`{"AlarmRules": [...]}`, the API's shape; docs/alarms.md): each rule
    /// is created or replaced at start; rules made through the API or the dashboard stay.
    #[arg(long, env = "ROENTGEN_WEB_ALARMS")]
    pub alarms: Option<PathBuf>,
    /// Evaluate alarm rules and send their notifications in this collector (`off`: leave it
    /// to other collectors sharing the store).
    #[arg(long, env = "ROENTGEN_WEB_ALARM_EVALUATION", value_enum, default_value_t = Switch::On)]
    pub alarm_evaluation: Switch,
    /// Seconds the alarm lease lasts without renewal: when the collector evaluating the alarm
    /// rules stops, another collector sharing the store (or this one restarted) takes over
    /// after this long.
    #[arg(long, env = "ROENTGEN_WEB_ALARM_LEASE_SECS", default_value_t = 30)]
    pub alarm_lease_secs: u64,
    /// The dashboard's address as people open it, for the links in alarm notifications
    /// [default: http(s)://--listen].
    #[arg(long, env = "ROENTGEN_WEB_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Why the arguments are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--listen` is not an address.
    #[error("--listen {0:?} is not an address like 127.0.0.1:4000")]
    Listen(String),
    /// `--otlp-grpc` is not an address.
    #[error("--otlp-grpc {0:?} is not an address like 127.0.0.1:4317 (or off)")]
    OtlpGrpc(String),
    /// `--store clickhouse` without a URL.
    #[error(
        "--store clickhouse needs --clickhouse-url (or ROENTGEN_CLICKHOUSE_URL), e.g. http://127.0.0.1:8123"
    )]
    ClickhouseUrl,
    /// `--clickhouse-url` is not a URL (the message never repeats it: it may hold a password).
    #[error("--clickhouse-url {0}")]
    ClickhouseUrlInvalid(#[from] crate::store::clickhouse::credentials::UrlError),
    /// The ClickHouse password is given more than once.
    #[error(
        "the ClickHouse password is given more than once (in --clickhouse-url, --clickhouse-password / ROENTGEN_CLICKHOUSE_PASSWORD, --clickhouse-password-file): give it once"
    )]
    ClickhousePasswordTwice,
    /// `--clickhouse-password-file` cannot be read.
    #[error("--clickhouse-password-file {path}: {source}")]
    ClickhousePasswordFile {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A ClickHouse name that cannot go into SQL unquoted.
    #[error("{flag} {value:?} must be letters, digits and _ (not starting with a digit)")]
    ClickhouseName {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// The retention window is zero.
    #[error("--retention-days must be at least 1")]
    Retention,
    /// A daemon address is not an address.
    #[error("{flag} {value:?} is not an address like 127.0.0.1:2000")]
    DaemonAddress {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// A listening address off loopback without authentication or `--insecure`.
    #[error(transparent)]
    Exposed(#[from] roentgen_daemon::exposure::Exposed),
    /// The embedded daemon with `--auth-keys` but no key to sign with.
    #[error(
        "--with-daemon and --demo with --auth-keys need --daemon-access-key-id ID: the embedded daemon signs with that key from the keys file (make one with `roentgen-web keys create --principal daemon --allow xray:PutTraceSegments,xray:GetSamplingRules,xray:GetSamplingTargets`)"
    )]
    DaemonKeyMissing,
    /// `--daemon-access-key-id` where it has no use.
    #[error("--daemon-access-key-id needs --auth-keys and --with-daemon (or --demo)")]
    DaemonKeyUnused,
    /// `--alarms` is unreadable or holds a bad rule.
    #[error("--alarms {0}")]
    Alarms(String),
    /// `--public-url` is not an http(s) URL.
    #[error("--public-url {0:?} must be an http:// or https:// URL")]
    PublicUrl(String),
    /// `--tls-cert` without `--tls-key` or the other way round.
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
    /// The all-in-one mode with TLS (its embedded daemon speaks plain HTTP to this process).
    #[error("--with-daemon and --demo are for local trials over plain HTTP: drop --tls-cert")]
    TlsWithDaemon,
    /// A connection limit out of range.
    #[error("{flag} {value} is out of range {min} to {max}")]
    Limit {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// `--audit-log` without `--auth-keys`.
    #[error("--audit-log needs --auth-keys")]
    AuditWithoutAuth,
    /// The scrubber configuration cannot be read or is invalid.
    #[error("--scrub-config {path}: {message}")]
    Scrub {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Address of the OTLP/gRPC port, when on.
    pub otlp_grpc: Option<SocketAddr>,
    /// Store directory.
    pub data_dir: PathBuf,
    /// The ClickHouse store's settings; `None` for the embedded SQLite store.
    pub clickhouse: Option<crate::store::clickhouse::ClickhouseConfig>,
    /// How long traces are kept.
    pub retention: Duration,
    /// Server-side scrubber, when enabled.
    pub scrubber: Option<Scrubber>,
    /// How OTLP spans become documents, and their scrubber.
    pub otlp: crate::api::otlp::OtlpIngest,
    /// The embedded daemon's addresses, in all-in-one mode.
    pub daemon: Option<crate::demo::EmbeddedDaemon>,
    /// The key (in the keys file) the embedded daemon signs with, with authentication on.
    pub daemon_access_key_id: Option<String>,
    /// Run the demo workload.
    pub demo: bool,
    /// Authentication, when on.
    pub auth: Option<crate::auth::AuthConfig>,
    /// HTTPS certificate and key, when serving TLS.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Per-connection timeouts and header size limit.
    pub limits: crate::server::Limits,
    /// Bounds on one query's work.
    pub query_limits: crate::api::QueryLimits,
    /// The SQLite store's read pool.
    pub sqlite_reads: crate::store::sqlite::ReadLimits,
    /// Caps per trace and the store writer's live-trace memory.
    pub trace_limits: crate::store::TraceLimits,
    /// Alarm rules from `--alarms`, saved at start.
    pub alarm_rules: Vec<crate::alarms::AlarmRule>,
    /// Whether this collector evaluates alarms.
    pub alarm_evaluation: bool,
    /// How long the alarm lease lasts without renewal.
    pub alarm_lease: Duration,
    /// The dashboard's address for links; `None`: from the listening address.
    pub public_url: Option<String>,
}

impl Args {
    fn clickhouse_config(
        &self,
        trace_limits: crate::store::TraceLimits,
    ) -> Result<crate::store::clickhouse::ClickhouseConfig, ConfigError> {
        use crate::store::clickhouse::{ClickhouseConfig, is_identifier};
        use crate::store::clickhouse::{Password, ServerUrl};
        let server = ServerUrl::parse(
            self.clickhouse_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .ok_or(ConfigError::ClickhouseUrl)?,
        )?;
        let from_file = match &self.clickhouse_password_file {
            Some(path) => Some(Password::new(
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::ClickhousePasswordFile {
                        path: path.clone(),
                        source,
                    })?
                    .trim_end_matches(['\n', '\r']),
            )),
            None => None,
        };
        let mut given = [server.password, self.clickhouse_password.clone(), from_file]
            .into_iter()
            .flatten();
        let password = given.next().unwrap_or_default();
        if given.next().is_some() {
            return Err(ConfigError::ClickhousePasswordTwice);
        }
        let name = |flag: &'static str, value: &str| {
            if is_identifier(value) {
                Ok(value.to_owned())
            } else {
                Err(ConfigError::ClickhouseName {
                    flag,
                    value: value.to_owned(),
                })
            }
        };
        Ok(ClickhouseConfig {
            url: server.url,
            database: name("--clickhouse-database", &self.clickhouse_database)?,
            user: self
                .clickhouse_user
                .clone()
                .or(server.user)
                .unwrap_or_else(|| "default".to_owned()),
            password,
            cluster: match &self.clickhouse_cluster {
                Some(c) => Some(name("--clickhouse-cluster", c)?),
                None => None,
            },
            trace_limits,
        })
    }

    /// Checks the arguments and builds the configuration.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))?;
        let auth = self
            .auth_keys
            .clone()
            .map(|keys_file| crate::auth::AuthConfig {
                keys_file,
                audit_log: self.audit_log.clone(),
                max_skew: Duration::from_secs(self.max_clock_skew),
                metrics_on_loopback: self.metrics_on_loopback,
            });
        if auth.is_none() && self.audit_log.is_some() {
            return Err(ConfigError::AuditWithoutAuth);
        }
        roentgen_daemon::exposure::Listening {
            flag: "--listen",
            addr: listen,
            authenticated: auth.is_some(),
        }
        .check(self.insecure, EXPOSED_REMEDY)?;
        let otlp_grpc = match self.otlp_grpc.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::OtlpGrpc(text.to_owned()))?,
            ),
        };
        if let Some(addr) = otlp_grpc {
            roentgen_daemon::exposure::Listening {
                flag: "--otlp-grpc",
                addr,
                authenticated: auth.is_some(),
            }
            .check(self.insecure, EXPOSED_REMEDY)?;
        }
        let tls = match (self.tls_cert.clone(), self.tls_key.clone()) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        let limit = |flag: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::Limit {
                    flag,
                    value,
                    min,
                    max,
                })
            }
        };
        let limits = crate::server::Limits {
            tls_handshake: Duration::from_secs(limit(
                "--tls-handshake-timeout-secs",
                self.tls_handshake_timeout_secs,
                1,
                3600,
            )?),
            header_read: Duration::from_secs(limit(
                "--header-timeout-secs",
                self.header_timeout_secs,
                1,
                3600,
            )?),
            request: Duration::from_secs(limit(
                "--request-timeout-secs",
                self.request_timeout_secs,
                1,
                86_400,
            )?),
            max_header_bytes: usize::try_from(limit(
                "--max-header-kb",
                u64::try_from(self.max_header_kb).unwrap_or(u64::MAX),
                1,
                1024,
            )?)
            .unwrap_or(usize::MAX)
                * 1024,
            max_connections: usize::try_from(limit(
                "--max-connections",
                u64::try_from(self.max_connections).unwrap_or(u64::MAX),
                1,
                1_000_000,
            )?)
            .unwrap_or(usize::MAX),
        };
        let query_limits = crate::api::QueryLimits {
            max_window_secs: (limit(
                "--max-query-window-hours",
                self.max_query_window_hours,
                1,
                24 * 366,
            )? * 3600) as f64,
            list_scan_budget: usize::try_from(limit(
                "--max-page-scan",
                self.max_page_scan,
                1_000,
                100_000_000,
            )?)
            .unwrap_or(usize::MAX),
        };
        let sqlite_reads = crate::store::sqlite::ReadLimits {
            max_connections: usize::try_from(limit(
                "--sqlite-readers",
                self.sqlite_readers,
                1,
                256,
            )?)
            .unwrap_or(usize::MAX),
            wait: Duration::from_secs(limit(
                "--sqlite-read-wait-secs",
                self.sqlite_read_wait_secs,
                1,
                3600,
            )?),
        };
        let count = |flag: &'static str, value: u64, min: u64, max: u64| {
            limit(flag, value, min, max).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        let trace_limits = crate::store::TraceLimits {
            max_documents: count(
                "--max-trace-documents",
                self.max_trace_documents,
                1,
                10_000_000,
            )?,
            max_bytes: count("--max-trace-mib", self.max_trace_mib, 1, 1 << 20)? << 20,
            live_documents: count("--live-documents", self.live_documents, 0, 100_000_000)?,
        };
        let alarm_rules = match &self.alarms {
            Some(path) => crate::alarms::AlarmFile::read(path).map_err(ConfigError::Alarms)?,
            None => Vec::new(),
        };
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    Some(url.trim_end_matches('/').to_owned())
                }
                _ => return Err(ConfigError::PublicUrl(url.to_owned())),
            },
        };
        let clickhouse = match self.store {
            StoreKind::Sqlite => None,
            StoreKind::Clickhouse => Some(self.clickhouse_config(trace_limits)?),
        };
        if self.retention_days == 0 {
            return Err(ConfigError::Retention);
        }
        let scrubber = match (&self.scrub_config, self.scrub) {
            (Some(path), _) => {
                let scrub_err = |message: String| ConfigError::Scrub {
                    path: path.clone(),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| scrub_err(e.to_string()))?;
                let config =
                    ScrubConfig::from_toml_str(&text).map_err(|e| scrub_err(e.to_string()))?;
                Some(Scrubber::new(&config).map_err(|e| scrub_err(e.to_string()))?)
            }
            (None, true) => Some(default_scrubber()?),
            (None, false) => None,
        };
        let otlp = crate::api::otlp::OtlpIngest {
            scrubber: match (self.otlp_scrubbing, &scrubber) {
                (Switch::Off, _) => None,
                (Switch::On, Some(s)) => Some(s.clone()),
                (Switch::On, None) => Some(default_scrubber()?),
            },
            mapping: roentgen_sdk::otlp::MappingConfig {
                annotation_keys: self
                    .otlp_annotation_keys
                    .iter()
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
                index_all_attributes: self.otlp_index_all_attributes,
            },
        };
        let address = |flag: &'static str, value: &str| {
            value.parse().map_err(|_| ConfigError::DaemonAddress {
                flag,
                value: value.to_owned(),
            })
        };
        if tls.is_some() && (self.with_daemon || self.demo) {
            return Err(ConfigError::TlsWithDaemon);
        }
        let daemon = if self.with_daemon || self.demo {
            let at = crate::demo::EmbeddedDaemon {
                udp: address("--daemon-udp", &self.daemon_udp)?,
                tcp: address("--daemon-tcp", &self.daemon_tcp)?,
            };
            for (flag, addr) in [("--daemon-udp", at.udp), ("--daemon-tcp", at.tcp)] {
                roentgen_daemon::exposure::Listening {
                    flag,
                    addr,
                    authenticated: false,
                }
                .check(
                    self.insecure,
                    "pass --insecure to open it to the network anyway (--auth-keys does not cover the embedded daemon's UDP port and sampling proxy)",
                )?;
            }
            Some(at)
        } else {
            None
        };
        match (&daemon, &auth, &self.daemon_access_key_id) {
            (Some(_), Some(_), None) => return Err(ConfigError::DaemonKeyMissing),
            (None, _, Some(_)) | (_, None, Some(_)) => return Err(ConfigError::DaemonKeyUnused),
            _ => {}
        }
        Ok(Config {
            alarm_rules,
            alarm_evaluation: self.alarm_evaluation == Switch::On,
            alarm_lease: Duration::from_secs(limit(
                "--alarm-lease-secs",
                self.alarm_lease_secs,
                3,
                3600,
            )?),
            public_url,
            auth,
            tls,
            limits,
            query_limits,
            sqlite_reads,
            trace_limits,
            daemon,
            daemon_access_key_id: self.daemon_access_key_id,
            demo: self.demo,
            listen,
            otlp_grpc,
            data_dir: self.data_dir,
            clickhouse,
            retention: Duration::from_secs(u64::from(self.retention_days) * 86_400),
            scrubber,
            otlp,
        })
    }
}

/// How to start on an address off loopback.
const EXPOSED_REMEDY: &str = "pass --auth-keys FILE (see `roentgen-web keys create`), or --insecure to serve without authentication";

/// The built-in scrubber configuration, compiled.
fn default_scrubber() -> Result<Scrubber, ConfigError> {
    Scrubber::new(&ScrubConfig::default()).map_err(|e| ConfigError::Scrub {
        path: PathBuf::new(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
