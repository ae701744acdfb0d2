//! Centralized sampling, as the official X-Ray SDKs do it: rules fetched from the daemon's
//! proxy (`GetSamplingRules`), a quota per rule assigned by the server (`SamplingTargets`) in
//! exchange for the counts of what the app saw, borrowing one request a second while a rule has
//! no live quota, and the fixed rate after it.
//!
//! The rules live in one immutable [`Manifest`] swapped in whole by the poller (`arc-swap`), so
//! a decision is a version check against the thread's copy of the manifest, wildcard matches on
//! borrowed strings and a few atomics: no lock.
//! Without a fresh manifest (before the first fetch, or an hour without one) the caller falls
//! back to its local rules.

mod poller;
mod rule;
mod wire;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use rand::Rng;

pub use poller::CentralizedConfig;
pub(crate) use poller::Poller;
pub use rule::SkippedRule;

use rule::{RuleDefinition, RuleState};
use wire::{StatisticsDocument, TargetsAnswer, WireRule};

use super::SamplingRequest;

/// A manifest not refreshed for this long is stale and the local rules decide (as the official
/// SDKs do).
const MANIFEST_TTL_SECONDS: f64 = 3600.0;

/// Samplers whose manifest one thread keeps a copy of, at most (the oldest is dropped).
const CACHED_PER_THREAD: usize = 8;

/// A thread's copy of one sampler's manifest.
struct ManifestCopy {
    /// The sampler's id.
    sampler: u64,
    /// The sampler's version when copied.
    version: u64,
    manifest: Option<Arc<Manifest>>,
}

thread_local! {
    /// Each thread's copies of the manifests it decided by. A decision checks the sampler's
    /// version (one atomic load) and uses its copy while it is current, so `arc-swap`'s load
    /// (read-modify-writes on its debt list) runs once per thread and manifest, not once per
    /// request.
    static MANIFESTS: RefCell<Vec<ManifestCopy>> = const { RefCell::new(Vec::new()) };
}

/// The fetched rules, in the order they are tried.
#[derive(Debug)]
struct Manifest {
    rules: Vec<(RuleDefinition, Arc<RuleState>)>,
    /// When it was fetched, epoch seconds.
    fetched_at: f64,
}

/// What an operator (or a test) can ask about one centralized rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSnapshot {
    /// The rule's name.
    pub name: String,
    /// The quota the server assigned, requests per second, while it is live.
    pub quota: Option<u32>,
    /// The epoch second the quota ends.
    pub quota_until: Option<u64>,
    /// The rate after the quota.
    pub rate: f64,
    /// Requests matched since the last report.
    pub requests: u64,
    /// Of which sampled.
    pub sampled: u64,
    /// Of which borrowed.
    pub borrowed: u64,
}

/// How the exchange with the daemon's proxy is going.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CentralizedStatus {
    /// The id this process reports its counts under (24 hex digits).
    pub client_id: String,
    /// When the rules in use were fetched (epoch seconds); `None`: local rules decide.
    pub rules_fetched_at: Option<f64>,
    /// Successful rule fetches.
    pub rule_fetches: u64,
    /// Successful target exchanges.
    pub target_fetches: u64,
    /// Failed calls to the proxy, both kinds.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Rules fetched but not used, and why.
    pub skipped: Vec<String>,
}

/// The shared state between the decisions and the poller.
#[derive(Debug)]
pub struct Centralized {
    manifest: ArcSwapOption<Manifest>,
    /// Bumped after each new manifest is stored.
    version: AtomicU64,
    /// Tells this sampler's copies apart in [`MANIFESTS`].
    id: u64,
    status: Mutex<CentralizedStatus>,
    client_id: String,
}

impl Default for Centralized {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let client_id = format!("{:024x}", rand::rng().random::<u128>() >> 32);
        Self {
            manifest: ArcSwapOption::empty(),
            version: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            status: Mutex::new(CentralizedStatus {
                client_id: client_id.clone(),
                ..CentralizedStatus::default()
            }),
            client_id,
        }
    }
}

impl Centralized {
    /// Decides for `request` in epoch second `second` by the fetched rules; `None` when they
    /// cannot (none fetched, stale, or none matched) and the local rules must.
    pub fn decide(&self, request: &SamplingRequest<'_>, second: u64) -> Option<bool> {
        let version = self.version.load(Ordering::Acquire);
        MANIFESTS
            .try_with(|cell| {
                let mut copies = cell.borrow_mut();
                let slot = match copies.iter().position(|c| c.sampler == self.id) {
                    Some(slot) => slot,
                    None => {
                        if copies.len() >= CACHED_PER_THREAD {
                            copies.remove(0);
                        }
                        copies.push(ManifestCopy {
                            sampler: self.id,
                            version: u64::MAX,
                            manifest: None,
                        });
                        copies.len() - 1
                    }
                };
                let copy = &mut copies[slot];
                if copy.version != version {
                    copy.version = version;
                    copy.manifest = self.manifest.load_full();
                }
                Self::decide_by(copy.manifest.as_deref()?, request, second)
            })
            // The thread is ending (its copies are gone): read the manifest itself.
            .unwrap_or_else(|_| Self::decide_by(self.manifest.load().as_deref()?, request, second))
    }

    fn decide_by(manifest: &Manifest, request: &SamplingRequest<'_>, second: u64) -> Option<bool> {
        if second as f64 >= manifest.fetched_at + MANIFEST_TTL_SECONDS {
            return None;
        }
        let (_, state) = manifest.rules.iter().find(|(d, _)| d.matches(request))?;
        Some(state.decide(second, super::draw).sampled())
    }

    /// The rules in use with their live state, in the order they are tried.
    pub fn rules(&self) -> Vec<RuleSnapshot> {
        self.rules_at(super::current_second())
    }

    fn rules_at(&self, second: u64) -> Vec<RuleSnapshot> {
        let guard = self.manifest.load();
        let Some(manifest) = guard.as_ref() else {
            return Vec::new();
        };
        manifest
            .rules
            .iter()
            .map(|(d, s)| {
                let live = s.quota_at(second);
                let (requests, sampled, borrowed) = s.pending();
                RuleSnapshot {
                    name: d.name.clone(),
                    quota: live.map(|(q, _)| q),
                    quota_until: live.map(|(_, until)| until),
                    rate: s.rate(),
                    requests,
                    sampled,
                    borrowed,
                }
            })
            .collect()
    }

    /// How the exchange with the proxy is going.
    pub fn status(&self) -> CentralizedStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update_status(&self, f: impl FnOnce(&mut CentralizedStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Installs freshly fetched rules; a rule that keeps its name keeps its quota and counts.
    fn install(&self, fetched: Vec<WireRule>, now: f64) {
        let old = self.manifest.load_full();
        let mut skipped = Vec::new();
        let mut rules: Vec<(RuleDefinition, Arc<RuleState>)> = Vec::new();
        for wire in fetched {
            let definition = match RuleDefinition::try_from(wire) {
                Ok(d) => d,
                Err(e) => {
                    skipped.push(e.to_string());
                    continue;
                }
            };
            let kept = old
                .as_ref()
                .and_then(|m| m.rules.iter().find(|(d, _)| d.name == definition.name))
                .map(|(_, s)| Arc::clone(s));
            let state = match kept {
                Some(state) => {
                    state.define(&definition);
                    state
                }
                None => Arc::new(RuleState::new(&definition)),
            };
            rules.push((definition, state));
        }
        rules.sort_by(|(a, _), (b, _)| a.order_key().cmp(&b.order_key()));
        for reason in &skipped {
            tracing::warn!(%reason, "centralized sampling: rule not used");
        }
        self.manifest.store(Some(Arc::new(Manifest {
            rules,
            fetched_at: now,
        })));
        // After the store: a decision that sees the new version finds the new manifest.
        self.version.fetch_add(1, Ordering::Release);
        self.update_status(|s| {
            s.rules_fetched_at = Some(now);
            s.rule_fetches += 1;
            s.skipped = skipped;
        });
    }

    /// Takes every rule's counts for a report; empty before the first fetch.
    fn statistics(&self, now: f64) -> Vec<StatisticsDocument> {
        let guard = self.manifest.load();
        guard
            .as_ref()
            .map(|m| {
                m.rules
                    .iter()
                    .map(|(d, s)| s.take_statistics(&d.name, &self.client_id, now))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Puts back the counts of a report that was not delivered.
    fn restore(&self, docs: &[StatisticsDocument]) {
        let guard = self.manifest.load();
        let Some(manifest) = guard.as_ref() else {
            return;
        };
        for doc in docs {
            if let Some((_, s)) = manifest.rules.iter().find(|(d, _)| d.name == doc.rule_name) {
                s.restore_statistics(doc);
            }
        }
    }

    /// Applies the server's targets; `true` when its rules changed after the ones in use
    /// were fetched (the caller refetches them).
    fn apply(&self, answer: &TargetsAnswer) -> bool {
        let guard = self.manifest.load();
        let Some(manifest) = guard.as_ref() else {
            return false;
        };
        for target in &answer.sampling_target_documents {
            if let Some((_, s)) = manifest
                .rules
                .iter()
                .find(|(d, _)| d.name == target.rule_name)
            {
                s.apply(target);
            }
        }
        for u in &answer.unprocessed_statistics {
            tracing::warn!(
                rule = u.rule_name.as_deref().unwrap_or("?"),
                code = u.error_code.as_deref().unwrap_or("?"),
                message = u.message.as_deref().unwrap_or(""),
                "centralized sampling: the server did not take a rule's statistics"
            );
        }
        self.update_status(|s| s.target_fetches += 1);
        // Whole seconds on both sides: a change in the second of the fetch counts as newer
        // (one extra fetch at worst, never a missed change).
        answer
            .last_rule_modification
            .is_some_and(|modified| modified.floor() >= manifest.fetched_at.floor())
    }

    /// The client id reports are sent under.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{RulesAnswer, TargetDocument};

    fn rules(json: &str) -> Vec<WireRule> {
        let answer: RulesAnswer = serde_json::from_str(json).unwrap();
        answer
            .sampling_rule_records
            .into_iter()
            .map(|r| r.sampling_rule)
            .collect()
    }

    const RULES: &str = r#"{"SamplingRuleRecords":[
        {"SamplingRule":{"RuleName":"Default","Priority":10000,"FixedRate":0.0,"ReservoirSize":1,"ResourceARN":"*","ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"*","Version":1}},
        {"SamplingRule":{"RuleName":"api","Priority":5,"FixedRate":1.0,"ReservoirSize":0,"ServiceName":"shop","URLPath":"/api/*","Version":1}},
        {"SamplingRule":{"RuleName":"health","Priority":1,"FixedRate":0.0,"ReservoirSize":0,"URLPath":"/health","Version":1}},
        {"SamplingRule":{"RuleName":"v2","Priority":2,"FixedRate":1.0,"ReservoirSize":0,"Version":2}},
        {"SamplingRule":{"RuleName":"attrs","Priority":3,"FixedRate":1.0,"ReservoirSize":0,"Version":1,"Attributes":{"tier":"gold"}}}
    ]}"#;

    fn request<'a>(service: &'a str, path: &'a str) -> SamplingRequest<'a> {
        SamplingRequest {
            service_name: service,
            url_path: path,
            method: "GET",
            ..SamplingRequest::default()
        }
    }

    #[test]
    fn a_thread_decides_by_the_newest_manifest_and_samplers_keep_their_own() {
        let (a, b) = (Centralized::default(), Centralized::default());
        a.install(rules(RULES), 10.0);
        assert_eq!(a.decide(&request("shop", "/api/x"), 10), Some(true));
        // `b` has no rules: its own answer, not `a`'s copy.
        assert_eq!(b.decide(&request("shop", "/api/x"), 10), None);
        // The `api` rule now covers other paths: the same thread decides by the new rules.
        let without_api = RULES.replace("/api/*", "/other/*");
        a.install(rules(&without_api), 10.0);
        assert_eq!(
            a.decide(&request("shop", "/api/x"), 11),
            Some(true),
            "Default borrows"
        );
        assert_eq!(a.decide(&request("shop", "/api/x"), 11), Some(false));
        // More samplers than a thread keeps copies of: each still decides by its own rules.
        let many: Vec<Centralized> = (0..CACHED_PER_THREAD + 2)
            .map(|_| Centralized::default())
            .collect();
        for (i, c) in many.iter().enumerate() {
            if i % 2 == 0 {
                c.install(rules(RULES), 10.0);
            }
        }
        for _ in 0..2 {
            for (i, c) in many.iter().enumerate() {
                let decided = c.decide(&request("shop", "/health"), 10);
                assert_eq!(decided, (i % 2 == 0).then_some(false), "sampler {i}");
            }
        }
    }

    #[test]
    fn rules_are_tried_by_priority_with_default_last_and_unusable_ones_reported() {
        let c = Centralized::default();
        assert_eq!(c.decide(&request("shop", "/api/x"), 10), None);
        c.install(rules(RULES), 10.0);
        let names: Vec<_> = c.rules_at(10).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["health", "api", "Default"]);
        assert_eq!(c.status().skipped.len(), 2, "{:?}", c.status());
        assert_eq!(c.decide(&request("shop", "/health"), 10), Some(false));
        assert_eq!(c.decide(&request("shop", "/api/x"), 10), Some(true));
        // Default: borrows one a second, rate 0.
        assert_eq!(c.decide(&request("other", "/api/x"), 10), Some(true));
        assert_eq!(c.decide(&request("other", "/api/x"), 10), Some(false));
        // An hour without a refresh: the local rules decide again.
        assert_eq!(c.decide(&request("shop", "/api/x"), 3610), None);
    }

    #[test]
    fn targets_set_quotas_and_a_newer_rule_change_asks_for_a_refetch() {
        let c = Centralized::default();
        c.install(rules(RULES), 100.5);
        for _ in 0..3 {
            c.decide(&request("x", "/"), 101);
        }
        let stats = c.statistics(102.0);
        let default = stats.iter().find(|d| d.rule_name == "Default").unwrap();
        assert_eq!(
            (
                default.request_count,
                default.sampled_count,
                default.borrow_count
            ),
            (3, 1, 1)
        );
        assert_eq!(default.client_id.len(), 24);
        let answer = TargetsAnswer {
            sampling_target_documents: vec![TargetDocument {
                rule_name: "Default".into(),
                fixed_rate: Some(0.0),
                reservoir_quota: Some(2),
                reservoir_quota_ttl: Some(140.0),
                interval: Some(10),
            }],
            last_rule_modification: Some(50.0),
            unprocessed_statistics: Vec::new(),
        };
        assert!(!c.apply(&answer));
        let sampled = (0..5).filter(|_| c.decide(&request("x", "/"), 110) == Some(true));
        assert_eq!(sampled.count(), 2);
        let changed = TargetsAnswer {
            last_rule_modification: Some(100.0),
            ..answer
        };
        assert!(c.apply(&changed));
        // A refetch keeps the quota of a rule that keeps its name.
        c.install(rules(RULES), 111.0);
        let default = c.rules_at(111).into_iter().find(|r| r.name == "Default");
        assert_eq!(default.and_then(|r| r.quota), Some(2));
    }
}
