//! One centralized rule: what it matches (wildcards over the request) and its live state — the
//! quota the server assigned, its expiry, the rate, and the counts to report — all atomics, so
//! a decision takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::wire::{StatisticsDocument, TargetDocument, WireRule};
use crate::sampling::SamplingRequest;
use crate::sampling::reservoir::SecondWindow;
use crate::sampling::rules::Pattern;

use crate::model::sampling::DEFAULT_RULE;

/// Why a fetched rule is not used (logged at each fetch, never silently dropped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkippedRule {
    /// A rule format this SDK does not know.
    #[error("rule {0:?}: version {1} is not 1")]
    Version(String, i64),
    /// Matches on request attributes, which this SDK does not see.
    #[error("rule {0:?}: matches on attributes, which the SDK's requests do not carry")]
    Attributes(String),
    /// A rate or reservoir outside its range.
    #[error("rule {0:?}: FixedRate must be in 0..=1 and ReservoirSize not negative")]
    Range(String),
}

/// A rule's definition as fetched.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleDefinition {
    pub name: String,
    pub priority: i64,
    pub reservoir_size: u32,
    pub fixed_rate: f64,
    pub service_name: Pattern,
    pub service_type: Pattern,
    pub host: Pattern,
    pub http_method: Pattern,
    pub url_path: Pattern,
    pub resource_arn: Pattern,
}

impl TryFrom<WireRule> for RuleDefinition {
    type Error = SkippedRule;

    fn try_from(w: WireRule) -> Result<Self, SkippedRule> {
        if w.version != 1 {
            return Err(SkippedRule::Version(w.rule_name, w.version));
        }
        if !w.attributes.is_empty() {
            return Err(SkippedRule::Attributes(w.rule_name));
        }
        if !(0.0..=1.0).contains(&w.fixed_rate) || w.reservoir_size < 0 {
            return Err(SkippedRule::Range(w.rule_name));
        }
        Ok(Self {
            priority: w.priority,
            reservoir_size: u32::try_from(w.reservoir_size).unwrap_or(u32::MAX),
            fixed_rate: w.fixed_rate,
            service_name: Pattern::new(&w.service_name),
            service_type: Pattern::new(&w.service_type),
            host: Pattern::new(&w.host),
            http_method: Pattern::new(&w.http_method),
            url_path: Pattern::new(&w.url_path),
            resource_arn: Pattern::new(&w.resource_arn),
            name: w.rule_name,
        })
    }
}

impl RuleDefinition {
    /// Whether the rule applies to `request`. As the official SDKs: a request field left empty
    /// matches any pattern; the resource ARN is matched as given (an app with none matches only
    /// rules for `*`).
    #[inline]
    pub fn matches(&self, request: &SamplingRequest<'_>) -> bool {
        let field = |pattern: &Pattern, value: &str| value.is_empty() || pattern.matches(value);
        // The fields rules most often tell requests apart by come first.
        field(&self.url_path, request.url_path)
            && field(&self.service_name, request.service_name)
            && field(&self.http_method, request.method)
            && field(&self.host, request.host)
            && field(&self.service_type, request.service_type)
            && self.resource_arn.matches(request.resource_arn)
    }

    /// The default rule goes last whatever its priority; the rest by priority, then name.
    pub fn order_key(&self) -> (bool, i64, &str) {
        (self.name == DEFAULT_RULE, self.priority, &self.name)
    }
}

/// What a rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Taken from the quota the server assigned.
    Quota,
    /// Borrowed: one a second while the rule has no live quota.
    Borrowed,
    /// Drawn at the fixed rate.
    Rate,
    /// Not sampled.
    No,
}

impl Outcome {
    pub fn sampled(self) -> bool {
        self != Self::No
    }
}

/// A rule's state, kept across rule refreshes while the rule keeps its name.
#[derive(Debug, Default)]
pub(crate) struct RuleState {
    window: SecondWindow,
    quota: AtomicU32,
    /// Epoch second the quota stops at; 0 before the first target.
    quota_until: AtomicU64,
    rate_bits: AtomicU64,
    can_borrow: AtomicBool,
    requests: AtomicU64,
    sampled: AtomicU64,
    borrowed: AtomicU64,
}

impl RuleState {
    /// A state for a newly fetched rule: no quota yet, so it borrows.
    pub fn new(definition: &RuleDefinition) -> Self {
        let state = Self::default();
        state.define(definition);
        state
    }

    /// Takes the rule's (new) rate and whether it may borrow; the quota stays until the next
    /// target replaces it or it expires.
    pub fn define(&self, definition: &RuleDefinition) {
        self.rate_bits
            .store(definition.fixed_rate.to_bits(), Ordering::Relaxed);
        self.can_borrow
            .store(definition.reservoir_size > 0, Ordering::Relaxed);
    }

    /// Decides for one matched request in epoch second `second`; `draw` is a uniform number
    /// in `[0, 1)`, asked for only when the rate decides.
    pub fn decide(&self, second: u64, draw: impl FnOnce() -> f64) -> Outcome {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = if second < self.quota_until.load(Ordering::Relaxed) {
            if self
                .window
                .try_take(second, self.quota.load(Ordering::Relaxed))
            {
                Outcome::Quota
            } else {
                self.by_rate(draw)
            }
        } else if self.can_borrow.load(Ordering::Relaxed) && self.window.try_take(second, 1) {
            self.borrowed.fetch_add(1, Ordering::Relaxed);
            Outcome::Borrowed
        } else {
            self.by_rate(draw)
        };
        if outcome.sampled() {
            self.sampled.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn by_rate(&self, draw: impl FnOnce() -> f64) -> Outcome {
        let rate = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
        if rate > 0.0 && draw() < rate {
            Outcome::Rate
        } else {
            Outcome::No
        }
    }

    /// Applies the server's target; fields it left out keep their value.
    pub fn apply(&self, target: &TargetDocument) {
        if let Some(rate) = target.fixed_rate.filter(|r| (0.0..=1.0).contains(r)) {
            self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        }
        if let (Some(quota), Some(ttl)) = (target.reservoir_quota, target.reservoir_quota_ttl) {
            let quota = u32::try_from(quota.max(0)).unwrap_or(u32::MAX);
            // The quota first: a racing decision may see the new quota with the old expiry,
            // never a fresh expiry with a stale quota.
            self.quota.store(quota, Ordering::Relaxed);
            self.quota_until
                .store(ttl.max(0.0).floor() as u64, Ordering::Relaxed);
        }
    }

    /// Takes the counts since the last report, leaving zeros.
    pub fn take_statistics(&self, rule: &str, client_id: &str, now: f64) -> StatisticsDocument {
        StatisticsDocument {
            rule_name: rule.to_owned(),
            client_id: client_id.to_owned(),
            timestamp: now.floor(),
            request_count: count(self.requests.swap(0, Ordering::Relaxed)),
            sampled_count: count(self.sampled.swap(0, Ordering::Relaxed)),
            borrow_count: count(self.borrowed.swap(0, Ordering::Relaxed)),
        }
    }

    /// Puts back counts a report failed to deliver, so the next one carries them.
    pub fn restore_statistics(&self, doc: &StatisticsDocument) {
        let back = |n: i64| u64::try_from(n).unwrap_or(0);
        self.requests
            .fetch_add(back(doc.request_count), Ordering::Relaxed);
        self.sampled
            .fetch_add(back(doc.sampled_count), Ordering::Relaxed);
        self.borrowed
            .fetch_add(back(doc.borrow_count), Ordering::Relaxed);
    }

    /// The quota and the second it ends, when the server assigned one that is still live.
    pub fn quota_at(&self, second: u64) -> Option<(u32, u64)> {
        let until = self.quota_until.load(Ordering::Relaxed);
        (second < until).then(|| (self.quota.load(Ordering::Relaxed), until))
    }

    /// The rate after the quota.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// The counts not reported yet: requests, sampled, borrowed.
    pub fn pending(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.sampled.load(Ordering::Relaxed),
            self.borrowed.load(Ordering::Relaxed),
        )
    }
}

/// A count as the wire's signed integer.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(reservoir: u32, rate: f64) -> RuleDefinition {
        RuleDefinition {
            name: "r".into(),
            priority: 1,
            reservoir_size: reservoir,
            fixed_rate: rate,
            service_name: Pattern::Any,
            service_type: Pattern::Any,
            host: Pattern::Any,
            http_method: Pattern::Any,
            url_path: Pattern::Any,
            resource_arn: Pattern::Any,
        }
    }

    fn target(quota: i64, ttl: f64, rate: f64) -> TargetDocument {
        TargetDocument {
            rule_name: "r".into(),
            fixed_rate: Some(rate),
            reservoir_quota: Some(quota),
            reservoir_quota_ttl: Some(ttl),
            interval: Some(10),
        }
    }

    #[test]
    fn borrows_one_a_second_until_a_quota_arrives_then_takes_the_quota() {
        let state = RuleState::new(&definition(10, 0.0));
        let never = || 1.0;
        let outcomes: Vec<_> = (0..3).map(|_| state.decide(100, never)).collect();
        assert_eq!(outcomes, [Outcome::Borrowed, Outcome::No, Outcome::No]);
        state.apply(&target(2, 130.0, 0.0));
        let outcomes: Vec<_> = (0..3).map(|_| state.decide(101, never)).collect();
        assert_eq!(outcomes, [Outcome::Quota, Outcome::Quota, Outcome::No]);
        // Once the quota's TTL passes it borrows again.
        assert_eq!(state.decide(130, never), Outcome::Borrowed);
        let stats = state.take_statistics("r", "c", 131.5);
        assert_eq!(
            (stats.request_count, stats.sampled_count, stats.borrow_count),
            (7, 4, 2)
        );
        assert_eq!(stats.timestamp, 131.0);
        assert_eq!(state.pending(), (0, 0, 0));
    }

    #[test]
    fn a_rule_without_reservoir_never_borrows_and_the_rate_decides() {
        let state = RuleState::new(&definition(0, 0.5));
        assert_eq!(state.decide(1, || 0.49), Outcome::Rate);
        assert_eq!(state.decide(1, || 0.5), Outcome::No);
        state.apply(&target(0, 100.0, 1.0));
        assert_eq!(state.decide(2, || 0.99), Outcome::Rate);
    }

    #[test]
    fn failed_reports_are_put_back() {
        let state = RuleState::new(&definition(1, 0.0));
        state.decide(5, || 1.0);
        let doc = state.take_statistics("r", "c", 6.0);
        state.decide(6, || 1.0);
        state.restore_statistics(&doc);
        assert_eq!(state.pending(), (2, 2, 2));
    }

    #[test]
    fn empty_request_fields_match_any_pattern_but_the_resource_arn_is_matched_as_given() {
        let mut d = definition(1, 0.1);
        d.url_path = Pattern::new("/api/*");
        d.service_name = Pattern::new("check*");
        let request = SamplingRequest {
            url_path: "/api/orders",
            service_name: "checkout",
            ..SamplingRequest::default()
        };
        assert!(d.matches(&request));
        assert!(!d.matches(&SamplingRequest {
            url_path: "/health",
            ..request
        }));
        d.resource_arn = Pattern::new("arn:aws:ecs:*");
        assert!(!d.matches(&request));
        assert!(d.matches(&SamplingRequest {
            resource_arn: "arn:aws:ecs:eu-west-1:1:service/x",
            ..request
        }));
    }
}
