//! Centralized sampling: the rule shape, the `Default` rule every store starts with, and the
//! targets that split each rule's reservoir among the clients that report to it, as X-Ray does.
//! Collectors sharing a store (ClickHouse) record every report there and split from the
//! store's view of the active clients, so the shares of all clients of a rule add up to its
//! reservoir whichever collector each client reports to.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{SamplingClient, Store, StoreError};

mod statistics;

pub use statistics::{Statistics, Summary};

pub use roentgen_sdk::model::sampling::{
    DEFAULT_RULE, SamplingRule, StatisticsDocument, TargetDocument,
};

/// Seconds between two target requests from an SDK.
pub const TARGET_INTERVAL_SECONDS: i64 = 10;

/// How long a client counts as active after its last report.
pub const CLIENT_ACTIVE_SECONDS: f64 = 30.0;

/// The ARN Roentgen gives a rule.
pub fn rule_arn(name: &str) -> String {
    format!("arn:aws:xray:us-east-1:000000000000:sampling-rule/{name}")
}

/// The `Default` rule every store starts with.
pub fn default_rule() -> SamplingRule {
    SamplingRule::default_rule(rule_arn(DEFAULT_RULE))
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
    /// The counts reported to this collector, for `GetSamplingStatisticSummaries`.
    pub statistics: Statistics,
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
    let known = docs
        .iter()
        .filter(|d| rules.iter().any(|r| r.rule_name == d.rule_name));
    local
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .statistics
        .record(now, known);
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
                fixed_rate: Some(rule.fixed_rate),
                reservoir_quota: Some(quota),
                reservoir_quota_ttl: Some((now + CLIENT_ACTIVE_SECONDS).floor()),
                interval: Some(TARGET_INTERVAL_SECONDS),
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
    use std::collections::BTreeMap;

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
        let rules = vec![default_rule()];
        let out = t.report(100.0, &[doc("a", 10)], &rules);
        assert_eq!(out[0].reservoir_quota, Some(1));
        assert_eq!(out[0].fixed_rate, Some(0.05));
        assert_eq!(out[0].interval, Some(10));
    }

    #[test]
    fn busier_clients_get_bigger_shares() {
        let mut t = Targets::default();
        let mut rule = default_rule();
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
        let mut rule = default_rule();
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
                quotas.insert(*client, out[0].reservoir_quota.unwrap_or(0));
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
        let mut rule = default_rule();
        rule.reservoir_size = 4;
        let rules = vec![rule];
        let mut quotas = Vec::new();
        for _ in 0..2 {
            quotas.clear();
            for client in ["a", "b"] {
                let out = report(&store, &local, 10.0, &[doc(client, 1)], &rules)
                    .await
                    .unwrap();
                quotas.push(out[0].reservoir_quota.unwrap_or(0));
            }
        }
        assert_eq!(quotas, vec![2, 2]);
    }

    proptest! {
        #[test]
        fn shares_never_exceed_the_reservoir(reservoir in 0i64..50, counts in proptest::collection::vec(0i64..1000, 1..8)) {
            let mut rule = default_rule();
            rule.reservoir_size = reservoir;
            let mut t = Targets::default();
            let docs: Vec<_> = counts.iter().enumerate().map(|(i, n)| doc(&format!("{i:024}"), *n)).collect();
            t.report(1.0, &docs, std::slice::from_ref(&rule));
            let sum: i64 = (0..counts.len()).map(|i| t.quota(&rule, &format!("{i:024}"))).sum();
            prop_assert_eq!(sum, reservoir);
        }
    }
}
