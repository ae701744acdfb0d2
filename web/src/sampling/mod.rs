//! Centralized sampling: the rule shape, the `Default` rule every store starts with, and the
//! targets that split each rule's reservoir among the clients that report to it, as X-Ray does.
//! Collectors sharing a store (ClickHouse) record every report there and split from the
//! store's view of the active clients, so the shares of all clients of a rule add up to its
//! reservoir whichever collector each client reports to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{SamplingClient, Store, StoreError};

/// Name of the rule that always exists.
pub const DEFAULT_RULE: &str = "Default";

/// Seconds between two target requests from an SDK.
pub const TARGET_INTERVAL_SECONDS: i64 = 10;

/// How long a client counts as active after its last report.
pub const CLIENT_ACTIVE_SECONDS: f64 = 30.0;

/// X-Ray `SamplingRule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRule {
    /// Name (1 to 32 characters).
    #[serde(default)]
    pub rule_name: String,
    /// ARN (derived from the name).
    #[serde(default, rename = "RuleARN")]
    pub rule_arn: String,
    /// Resource ARN to match.
    #[serde(default = "star", rename = "ResourceARN")]
    pub resource_arn: String,
    /// Priority: lower first.
    pub priority: i64,
    /// Rate after the reservoir.
    pub fixed_rate: f64,
    /// Requests per second sampled before the rate applies.
    pub reservoir_size: i64,
    /// Service name to match.
    #[serde(default = "star")]
    pub service_name: String,
    /// Service type to match.
    #[serde(default = "star")]
    pub service_type: String,
    /// Host to match.
    #[serde(default = "star")]
    pub host: String,
    /// Method to match.
    #[serde(default = "star", rename = "HTTPMethod")]
    pub http_method: String,
    /// Path to match.
    #[serde(default = "star", rename = "URLPath")]
    pub url_path: String,
    /// Rule format version (1).
    #[serde(default = "one")]
    pub version: i64,
    /// Attributes to match.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

fn star() -> String {
    "*".to_owned()
}

fn one() -> i64 {
    1
}

/// The ARN Roentgen gives a rule.
pub fn rule_arn(name: &str) -> String {
    format!("arn:aws:xray:us-east-1:000000000000:sampling-rule/{name}")
}

impl SamplingRule {
    /// The `Default` rule: 1 request per second, then 5%.
    pub fn default_rule() -> Self {
        Self {
            rule_name: DEFAULT_RULE.to_owned(),
            rule_arn: rule_arn(DEFAULT_RULE),
            resource_arn: star(),
            priority: 10000,
            fixed_rate: 0.05,
            reservoir_size: 1,
            service_name: star(),
            service_type: star(),
            host: star(),
            http_method: star(),
            url_path: star(),
            version: 1,
            attributes: BTreeMap::new(),
        }
    }

    /// Checks the limits of the API model; returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.rule_name.is_empty() || self.rule_name.chars().count() > 32 {
            return Err("RuleName must be 1 to 32 characters".to_owned());
        }
        if !(0.0..=1.0).contains(&self.fixed_rate) {
            return Err("FixedRate must be between 0 and 1".to_owned());
        }
        if self.reservoir_size < 0 {
            return Err("ReservoirSize must not be negative".to_owned());
        }
        if self.rule_name != DEFAULT_RULE && !(1..=9999).contains(&self.priority) {
            return Err("Priority must be between 1 and 9999".to_owned());
        }
        if self.version != 1 {
            return Err("Version must be 1".to_owned());
        }
        Ok(())
    }
}

/// A client's report for one rule (X-Ray `SamplingStatisticsDocument`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticsDocument {
    /// Rule.
    pub rule_name: String,
    /// Client id, 24 hex digits.
    #[serde(rename = "ClientID")]
    pub client_id: String,
    /// Report time, epoch seconds.
    pub timestamp: f64,
    /// Requests matched.
    pub request_count: i64,
    /// Requests sampled.
    pub sampled_count: i64,
    /// Requests sampled by borrowing.
    #[serde(default)]
    pub borrow_count: i64,
}

/// X-Ray `SamplingTargetDocument`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDocument {
    /// Rule.
    pub rule_name: String,
    /// Rate after the quota.
    pub fixed_rate: f64,
    /// Requests per second this client may sample.
    pub reservoir_quota: i64,
    /// When the quota expires.
    #[serde(rename = "ReservoirQuotaTTL")]
    pub reservoir_quota_ttl: f64,
    /// Seconds until the next report.
    pub interval: i64,
}

#[derive(Debug, Clone, Default)]
struct ClientState {
    last_seen: f64,
    request_count: i64,
}

/// Who reports to which rule; decides each client's share of a reservoir.
#[derive(Debug, Default)]
pub struct Targets {
    clients: HashMap<String, HashMap<String, ClientState>>,
}

/// Records `docs` received at `now` and returns one target per reported rule that exists:
/// through the store when it is shared (every collector's clients count), else through this
/// collector's own table `local`.
pub async fn report(
    store: &dyn Store,
    local: &Mutex<Targets>,
    now: f64,
    docs: &[StatisticsDocument],
    rules: &[SamplingRule],
) -> Result<Vec<TargetDocument>, StoreError> {
    let shared = store
        .report_sampling(now, docs.to_vec(), now - CLIENT_ACTIVE_SECONDS)
        .await?;
    Ok(match shared {
        Some(clients) => {
            let mut view = Targets::default();
            view.absorb(clients.iter());
            view.report(now, docs, rules)
        }
        None => local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .report(now, docs, rules),
    })
}

impl Targets {
    /// Adds clients' latest reports (kept when newer than what is known of them).
    pub fn absorb<'a>(&mut self, clients: impl Iterator<Item = &'a SamplingClient>) {
        for c in clients {
            let state = self
                .clients
                .entry(c.rule_name.clone())
                .or_default()
                .entry(c.client_id.clone())
                .or_default();
            if c.seen >= state.last_seen {
                state.last_seen = c.seen;
                state.request_count = c.request_count.max(0);
            }
        }
    }

    /// Records reports received at `now` and returns one target per reported rule that exists.
    pub fn report(
        &mut self,
        now: f64,
        docs: &[StatisticsDocument],
        rules: &[SamplingRule],
    ) -> Vec<TargetDocument> {
        for d in docs {
            let c = self
                .clients
                .entry(d.rule_name.clone())
                .or_default()
                .entry(d.client_id.clone())
                .or_default();
            c.last_seen = now;
            c.request_count = d.request_count.max(0);
        }
        for clients in self.clients.values_mut() {
            clients.retain(|_, c| now - c.last_seen <= CLIENT_ACTIVE_SECONDS);
        }
        let mut out = Vec::new();
        for d in docs {
            let Some(rule) = rules.iter().find(|r| r.rule_name == d.rule_name) else {
                continue;
            };
            if out
                .iter()
                .any(|t: &TargetDocument| t.rule_name == d.rule_name)
            {
                continue;
            }
            let quota = self.quota(rule, &d.client_id);
            out.push(TargetDocument {
                rule_name: rule.rule_name.clone(),
                fixed_rate: rule.fixed_rate,
                reservoir_quota: quota,
                reservoir_quota_ttl: (now + CLIENT_ACTIVE_SECONDS).floor(),
                interval: TARGET_INTERVAL_SECONDS,
            });
        }
        out
    }

    /// This client's share of the rule's reservoir: proportional to the requests each active
    /// client reported (evenly when none reported any), largest remainders first, so the shares
    /// add up to the reservoir and never exceed it.
    pub fn quota(&self, rule: &SamplingRule, client_id: &str) -> i64 {
        let reservoir = rule.reservoir_size.max(0);
        let Some(clients) = self.clients.get(&rule.rule_name) else {
            return reservoir;
        };
        if clients.is_empty() {
            return reservoir;
        }
        let mut ids: Vec<(&String, i64)> =
            clients.iter().map(|(k, c)| (k, c.request_count)).collect();
        ids.sort();
        let total: i64 = ids.iter().map(|(_, n)| n).sum();
        let weights: Vec<i64> = if total == 0 {
            vec![1; ids.len()]
        } else {
            ids.iter().map(|(_, n)| *n).collect()
        };
        let wsum: i64 = weights.iter().sum();
        let mut shares: Vec<(usize, i64, i64)> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (i, reservoir * w / wsum, reservoir * w % wsum))
            .collect();
        let given: i64 = shares.iter().map(|s| s.1).sum();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by_key(|i| (std::cmp::Reverse(shares[*i].2), *i));
        for i in order.into_iter().take((reservoir - given).max(0) as usize) {
            shares[i].1 += 1;
        }
        ids.iter()
            .position(|(k, _)| k.as_str() == client_id)
            .map(|i| shares[i].1)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(client: &str, requests: i64) -> StatisticsDocument {
        StatisticsDocument {
            rule_name: DEFAULT_RULE.to_owned(),
            client_id: client.to_owned(),
            timestamp: 0.0,
            request_count: requests,
            sampled_count: 0,
            borrow_count: 0,
        }
    }

    #[test]
    fn a_single_client_gets_the_whole_reservoir() {
        let mut t = Targets::default();
        let rules = vec![SamplingRule::default_rule()];
        let out = t.report(100.0, &[doc("a", 10)], &rules);
        assert_eq!(out[0].reservoir_quota, 1);
        assert_eq!(out[0].fixed_rate, 0.05);
        assert_eq!(out[0].interval, 10);
    }

    #[test]
    fn busier_clients_get_bigger_shares() {
        let mut t = Targets::default();
        let mut rule = SamplingRule::default_rule();
        rule.reservoir_size = 10;
        let rules = vec![rule.clone()];
        t.report(100.0, &[doc("a", 90), doc("b", 10)], &rules);
        assert_eq!(t.quota(&rule, "a"), 9);
        assert_eq!(t.quota(&rule, "b"), 1);
        // b stops reporting: after the active window a gets everything.
        t.report(200.0, &[doc("a", 90)], &rules);
        assert_eq!(t.quota(&rule, "a"), 10);
    }

    /// Two collectors over one ClickHouse database, two clients reporting to each: every
    /// client's quota comes from all four, so the quotas add up to the reservoir once.
    #[tokio::test]
    async fn collectors_sharing_a_store_split_the_reservoir_among_all_clients() {
        use crate::store::clickhouse::testing::{Backend, Place};
        let place = Place::new(Backend::Clickhouse);
        let collectors = [place.open().await, place.open().await];
        let locals = [Mutex::default(), Mutex::default()];
        let mut rule = SamplingRule::default_rule();
        rule.reservoir_size = 10;
        let rules = vec![rule];
        let counts = [("a", 50), ("b", 30), ("c", 15), ("d", 5)];
        let now = crate::store::now_seconds();
        let mut quotas = BTreeMap::new();
        // The first round makes every client known; the second reads everyone's shares.
        for round in 0..2 {
            for (k, (client, requests)) in counts.iter().enumerate() {
                let at = k % 2;
                let out = report(
                    collectors[at].as_ref(),
                    &locals[at],
                    now + f64::from(round),
                    &[doc(&format!("{client:0>24}"), *requests)],
                    &rules,
                )
                .await
                .unwrap();
                quotas.insert(*client, out[0].reservoir_quota);
            }
        }
        assert_eq!(quotas.values().sum::<i64>(), 10, "{quotas:?}");
        assert_eq!(quotas["a"], 5, "{quotas:?}");
        assert_eq!(quotas["b"], 3, "{quotas:?}");
    }

    #[tokio::test]
    async fn a_collector_with_its_own_store_splits_among_its_own_clients() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
        let local = Mutex::default();
        let mut rule = SamplingRule::default_rule();
        rule.reservoir_size = 4;
        let rules = vec![rule];
        let mut quotas = Vec::new();
        for _ in 0..2 {
            quotas.clear();
            for client in ["a", "b"] {
                let out = report(&store, &local, 10.0, &[doc(client, 1)], &rules)
                    .await
                    .unwrap();
                quotas.push(out[0].reservoir_quota);
            }
        }
        assert_eq!(quotas, vec![2, 2]);
    }

    proptest! {
        #[test]
        fn shares_never_exceed_the_reservoir(reservoir in 0i64..50, counts in proptest::collection::vec(0i64..1000, 1..8)) {
            let mut rule = SamplingRule::default_rule();
            rule.reservoir_size = reservoir;
            let mut t = Targets::default();
            let docs: Vec<_> = counts.iter().enumerate().map(|(i, n)| doc(&format!("{i:024}"), *n)).collect();
            t.report(1.0, &docs, std::slice::from_ref(&rule));
            let sum: i64 = (0..counts.len()).map(|i| t.quota(&rule, &format!("{i:024}"))).sum();
            prop_assert_eq!(sum, reservoir);
        }
    }
}
