//! Sampling decisions: local rules, each with a per-second reservoir and then a fixed rate.
//!
//! The hot path is lock-free: rule matching on borrowed strings, one atomic compare-and-swap for
//! the reservoir, one draw from the thread-local CSPRNG for the rate.

mod reservoir;
mod rules;

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

pub use reservoir::Reservoir;
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

/// What a sampling decision looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingRequest<'a> {
    /// The `Host` of the request (matched by `host` / v1 `service_name`).
    pub host: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The URL path.
    pub url_path: &'a str,
}

/// Decides whether a request is traced.
#[derive(Debug)]
pub struct Sampler {
    rules: Vec<(Rule, Reservoir)>,
    default: (Rule, Reservoir),
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
            (r, reservoir)
        };
        Self {
            rules: rules.rules.into_iter().map(with_reservoir).collect(),
            default: with_reservoir(rules.default),
        }
    }

    /// Decides for a request now.
    pub fn should_sample(&self, request: &SamplingRequest<'_>) -> bool {
        self.should_sample_at(request, current_second())
    }

    /// Decides for a request in the given epoch second.
    pub fn should_sample_at(&self, request: &SamplingRequest<'_>, second: u64) -> bool {
        let (rule, reservoir) = self
            .rules
            .iter()
            .find(|(r, _)| {
                wildcard_match(&r.host, request.host)
                    && wildcard_match(&r.http_method, request.method)
                    && wildcard_match(&r.url_path, request.url_path)
            })
            .unwrap_or(&self.default);
        if reservoir.try_take(second) {
            return true;
        }
        rule.rate > 0.0 && rand::rng().random::<f64>() < rule.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str) -> SamplingRequest<'a> {
        SamplingRequest {
            host: "shop.example.com",
            method,
            url_path: path,
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
