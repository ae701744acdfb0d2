//! The poller: one background thread that fetches rules from the daemon's proxy (every
//! `rules_interval`, with up to 5 s of jitter; every `targets_interval` until the first fetch
//! works) and exchanges counts for targets (every `targets_interval`, sooner when the server's
//! `Interval` asks), refetching the rules at once when the server says they changed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::Notify;

use super::Centralized;
use super::wire::{RulesAnswer, RulesRequest, TargetsAnswer, TargetsRequest};

/// Where and how often to poll.
#[derive(Debug, Clone, PartialEq)]
pub struct CentralizedConfig {
    /// The daemon's TCP proxy (the `tcp:` part of `AWS_XRAY_DAEMON_ADDRESS`).
    pub proxy: SocketAddr,
    /// Between two rule fetches (official SDKs: 5 minutes).
    pub rules_interval: Duration,
    /// Between two target exchanges (official SDKs: 10 s).
    pub targets_interval: Duration,
}

impl CentralizedConfig {
    /// The official SDKs' schedule against `proxy`.
    pub fn new(proxy: SocketAddr) -> Self {
        Self {
            proxy,
            rules_interval: Duration::from_secs(300),
            targets_interval: Duration::from_secs(10),
        }
    }
}

/// Most rule pages followed in one fetch (X-Ray holds at most 25 rules).
const MAX_PAGES: usize = 10;

/// Each call to the proxy gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures are logged at the first one, then at most this often.
const LOG_EVERY: Duration = Duration::from_secs(300);

/// Why a call to the proxy failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
}

/// The running poller; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Poller {
    stop: Arc<Notify>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl Poller {
    /// Starts polling `config.proxy` into `shared`.
    pub fn start(shared: Arc<Centralized>, config: CentralizedConfig) -> std::io::Result<Self> {
        let stop = Arc::new(Notify::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("roentgen-sampling".into())
            .spawn(move || runtime.block_on(run(shared, config, stopped)))?;
        Ok(Self { stop })
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn jitter(max: Duration) -> Duration {
    Duration::from_millis(rand::rng().random_range(0..=max.as_millis() as u64))
}

struct Client {
    http: reqwest::Client,
    base: String,
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
}

impl Client {
    async fn call<T: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<A, CallError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            return Err(CallError::Status(status.as_u16(), text));
        }
        Ok(response.json().await?)
    }

    async fn fetch_rules(&self, shared: &Centralized) -> Result<(), CallError> {
        let mut rules = Vec::new();
        let mut request = RulesRequest::default();
        for _ in 0..MAX_PAGES {
            let answer: RulesAnswer = self.call("GetSamplingRules", &request).await?;
            rules.extend(
                answer
                    .sampling_rule_records
                    .into_iter()
                    .map(|r| r.sampling_rule),
            );
            match answer.next_token {
                Some(token) if !token.is_empty() => request.next_token = Some(token),
                _ => break,
            }
        }
        shared.install(rules, now_seconds());
        Ok(())
    }

    /// Reports the counts and applies the targets; returns whether the rules changed and the
    /// interval the server asked for.
    async fn exchange(&self, shared: &Centralized) -> Result<(bool, Option<Duration>), CallError> {
        let docs = shared.statistics(now_seconds());
        if docs.is_empty() {
            return Ok((false, None));
        }
        let request = TargetsRequest {
            sampling_statistics_documents: docs,
        };
        let answer: TargetsAnswer = match self.call("SamplingTargets", &request).await {
            Ok(answer) => answer,
            Err(e) => {
                shared.restore(&request.sampling_statistics_documents);
                return Err(e);
            }
        };
        let interval = answer
            .sampling_target_documents
            .iter()
            .filter_map(|t| t.interval)
            .filter(|i| *i > 0)
            .min()
            .map(|i| Duration::from_secs(i as u64));
        Ok((shared.apply(&answer), interval))
    }

    fn failed(&mut self, shared: &Centralized, what: &str, e: &CallError) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        shared.update_status(|s| {
            s.failures += 1;
            s.last_error = Some(format!("{what}: {e}"));
        });
        if self.last_logged.is_none_or(|t| now - t >= LOG_EVERY) {
            self.last_logged = Some(now);
            tracing::warn!(
                proxy = %self.base, error = %e, what,
                "centralized sampling: the daemon's proxy did not answer; the rules already \
                 fetched (or the local rules) keep deciding"
            );
        }
    }

    fn succeeded(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                proxy = %self.base, after_seconds = since.elapsed().as_secs(),
                "centralized sampling: the daemon's proxy answers again"
            );
            self.last_logged = None;
        }
    }
}

async fn run(shared: Arc<Centralized>, config: CentralizedConfig, stop: Arc<Notify>) {
    let http = match reqwest::Client::builder().timeout(CALL_TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "centralized sampling: no HTTP client; local rules only");
            return;
        }
    };
    let mut client = Client {
        http,
        base: format!("http://{}/", config.proxy),
        failing_since: None,
        last_logged: None,
    };
    let mut next_rules = Instant::now();
    let mut targets_every = config.targets_interval;
    let mut next_targets = Instant::now() + targets_every;
    loop {
        if Instant::now() >= next_rules {
            next_rules = match client.fetch_rules(&shared).await {
                Ok(()) => {
                    client.succeeded();
                    Instant::now() + config.rules_interval + jitter(Duration::from_secs(5))
                }
                Err(e) => {
                    client.failed(&shared, "GetSamplingRules", &e);
                    Instant::now() + config.targets_interval.min(config.rules_interval)
                }
            };
        }
        if Instant::now() >= next_targets {
            match client.exchange(&shared).await {
                Ok((changed, interval)) => {
                    client.succeeded();
                    targets_every = interval
                        .map_or(config.targets_interval, |i| i.min(config.targets_interval));
                    if changed {
                        next_rules = Instant::now();
                    }
                }
                Err(e) => client.failed(&shared, "SamplingTargets", &e),
            }
            next_targets = Instant::now() + targets_every + jitter(Duration::from_millis(100));
        }
        let wake = next_rules.min(next_targets);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = stop.notified() => return,
        }
    }
}
