//! Sampling decisions: centralized rules fetched from the daemon when there are fresh ones,
//! else local rules, each with a per-second reservoir and then a fixed rate.
//!
//! The hot path is lock-free: rule matching on borrowed strings, one atomic compare-and-swap for
//! the reservoir, one draw from the thread-local CSPRNG for the rate.

#[cfg(feature = "centralized-sampling")]
pub mod centralized;
mod reservoir;
mod rules;

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

pub use reservoir::Reservoir;
use rules::Pattern;
pub use rules::{Rule, Rules, RulesError, wildcard_match};

/// The current epoch second from the coarse real-time clock: a vDSO read of a few nanoseconds
/// (its millisecond-scale resolution is plenty for a per-second reservoir).
fn current_second() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE)
        .map(|t| t.tv_sec() as u64)
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// What a sampling decision looks at. A field left empty matches any centralized rule's
/// pattern for it (as in the official SDKs).
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingRequest<'a> {
    /// The `Host` of the request (matched by `host` / v1 `service_name`).
    pub host: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The URL path.
    pub url_path: &'a str,
    /// The segment's name (centralized rules' `ServiceName`); the recorder fills it.
    pub service_name: &'a str,
    /// The segment's `origin`, e.g. `AWS::EC2::Instance` (`ServiceType`); the recorder fills it.
    pub service_type: &'a str,
    /// The app's resource ARN (`ResourceARN`); without one only rules for `*` match.
    pub resource_arn: &'a str,
}

/// A local rule prepared for matching.
#[derive(Debug)]
struct LocalRule {
    host: Pattern,
    http_method: Pattern,
    url_path: Pattern,
    rate: f64,
}

/// Decides whether a request is traced.
#[derive(Debug)]
pub struct Sampler {
    rules: Vec<(LocalRule, Reservoir)>,
    default: (LocalRule, Reservoir),
    #[cfg(feature = "centralized-sampling")]
    centralized: Option<(
        std::sync::Arc<centralized::Centralized>,
        centralized::Poller,
    )>,
}

impl Default for Sampler {
    /// One request per second, then 5%.
    fn default() -> Self {
        Self::new(Rules::default())
    }
}

impl Sampler {
    /// A sampler following `rules`.
    pub fn new(rules: Rules) -> Self {
        let with_reservoir = |r: Rule| {
            let reservoir = Reservoir::new(r.fixed_target);
            let rule = LocalRule {
                host: Pattern::new(&r.host),
                http_method: Pattern::new(&r.http_method),
                url_path: Pattern::new(&r.url_path),
                rate: r.rate,
            };
            (rule, reservoir)
        };
        Self {
            rules: rules.rules.into_iter().map(with_reservoir).collect(),
            default: with_reservoir(rules.default),
            #[cfg(feature = "centralized-sampling")]
            centralized: None,
        }
    }

    /// A sampler following the rules fetched from the daemon's proxy, and `local` until it has
    /// fresh ones; starts the poller thread, which stops when the sampler is dropped.
    #[cfg(feature = "centralized-sampling")]
    pub fn centralized(
        local: Rules,
        config: centralized::CentralizedConfig,
    ) -> std::io::Result<Self> {
        let shared = std::sync::Arc::new(centralized::Centralized::default());
        let poller = centralized::Poller::start(std::sync::Arc::clone(&shared), config)?;
        let mut sampler = Self::new(local);
        sampler.centralized = Some((shared, poller));
        Ok(sampler)
    }

    /// The centralized rules' state, when this sampler polls the daemon.
    #[cfg(feature = "centralized-sampling")]
    pub fn centralized_state(&self) -> Option<&centralized::Centralized> {
        self.centralized.as_ref().map(|(shared, _)| shared.as_ref())
    }

    /// Decides for a request now.
    pub fn should_sample(&self, request: &SamplingRequest<'_>) -> bool {
        self.should_sample_at(request, current_second())
    }

    /// Decides for a request in the given epoch second.
    pub fn should_sample_at(&self, request: &SamplingRequest<'_>, second: u64) -> bool {
        #[cfg(feature = "centralized-sampling")]
        if let Some(decision) = self
            .centralized
            .as_ref()
            .and_then(|(shared, _)| shared.decide(request, second))
        {
            return decision;
        }
        let (rule, reservoir) = self
            .rules
            .iter()
            .find(|(r, _)| {
                r.host.matches(request.host)
                    && r.http_method.matches(request.method)
                    && r.url_path.matches(request.url_path)
            })
            .unwrap_or(&self.default);
        if reservoir.try_take(second) {
            return true;
        }
        rule.rate > 0.0 && draw() < rule.rate
    }
}

/// A uniform number in `[0, 1)` for a rate decision, from a fast per-thread generator
/// (xoshiro) seeded from the OS-seeded thread generator: a sampling draw needs no
/// cryptographic strength, and ChaCha's was a fifth of a centralized decision.
fn draw() -> f64 {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    thread_local! {
        static RNG: std::cell::RefCell<SmallRng> =
            std::cell::RefCell::new(SmallRng::from_rng(&mut rand::rng()));
    }
    RNG.try_with(|rng| rng.borrow_mut().random())
        // The thread is ending: its generator is gone.
        .unwrap_or_else(|_| rand::rng().random())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str) -> SamplingRequest<'a> {
        SamplingRequest {
            host: "shop.example.com",
            method,
            url_path: path,
            ..SamplingRequest::default()
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = Rules::from_json(
            r#"{"version":2,"rules":[
                {"host":"*","http_method":"GET","url_path":"/health","fixed_target":0,"rate":0},
                {"host":"*","http_method":"*","url_path":"*","fixed_target":0,"rate":1}
            ],"default":{"fixed_target":0,"rate":0}}"#,
        )
        .unwrap();
        let s = Sampler::new(rules);
        assert!(!s.should_sample_at(&req("GET", "/health"), 1));
        assert!(s.should_sample_at(&req("POST", "/health"), 1));
    }

    #[test]
    fn default_takes_one_per_second_then_the_rate() {
        let rules =
            Rules::from_json(r#"{"version":2,"default":{"fixed_target":1,"rate":0}}"#).unwrap();
        let s = Sampler::new(rules);
        assert!(s.should_sample_at(&req("GET", "/"), 7));
        assert!(!s.should_sample_at(&req("GET", "/"), 7));
        assert!(s.should_sample_at(&req("GET", "/"), 8));
    }

    #[test]
    fn rate_samples_about_its_share() {
        let rules =
            Rules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":0.25}}"#).unwrap();
        let s = Sampler::new(rules);
        let n = (0..20_000)
            .filter(|_| s.should_sample_at(&req("GET", "/"), 1))
            .count();
        // 25% of 20,000 = 5,000; 6 standard deviations is about ±370.
        assert!((4_600..5_400).contains(&n), "{n}");
    }
}
