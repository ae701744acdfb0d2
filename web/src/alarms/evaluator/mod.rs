//! The background task of every collector: whoever holds the store's `alarms` lease evaluates
//! every rule once a minute (after the minute settles) and delivers the pending notifications;
//! the others wait to take the lease over if its holder stops renewing it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod delivery;
mod detection;

use super::StoredAlarm;
use super::band::Band;
use super::evaluate::{AlarmState, decide};
use super::event::{AlarmEvent, EventQuery};
use super::notify;
use super::rule::{AlarmRule, BAND_HISTORY_MINUTES};
use super::series::{Key, RollupWindow, group_window};
use crate::graph::Side;
use crate::insights::detect::HISTORY_MINUTES;
use crate::insights::detect::SEASON_SPREAD;
use crate::insights::tracker::Tracker;
use crate::metrics::Counters;
use crate::store::{Store, StoreError};

/// The lease's name in the store.
pub const LEASE: &str = "alarms";
/// Most events read at once (states at start, pending notifications per tick).
const MAX_EVENTS: usize = 100_000;
/// A notification not delivered after this long is given up (recorded as such).
pub const GIVE_UP_AFTER: f64 = 24.0 * 3600.0;
/// Longest wait between two attempts of one notification.
const MAX_BACKOFF: f64 = 300.0;
/// Deliveries under way at once.
const PARALLEL_DELIVERIES: usize = 16;
/// Minutes before the current one that insight detection starts from when it (re)starts, so
/// an incident under way, or one during a change of collector, is found.
pub const CATCH_UP_MINUTES: i64 = 30;
/// Traces kept as an insight's evidence.
const TOP_TRACES: usize = 5;

/// How the task runs.
#[derive(Debug, Clone)]
pub struct AlarmConfig {
    /// The dashboard's address as receivers should open it (links in notifications).
    pub public_url: String,
    /// How long after a minute ends it is evaluated (late pieces of its traces).
    pub settle: Duration,
    /// How often the task wakes (lease, rounds, deliveries).
    pub tick: Duration,
    /// How long a lease lasts without renewal; another collector takes over after it.
    pub lease_ttl: Duration,
    /// Whether insights are detected.
    pub insights: bool,
}

impl AlarmConfig {
    /// Defaults for a dashboard at `public_url`.
    pub fn new(public_url: String) -> Self {
        Self {
            public_url,
            settle: Duration::from_secs(15),
            tick: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            insights: true,
        }
    }
}

/// The current state of one alarm and its last event's number.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Current {
    state: AlarmState,
    seq: u64,
}

/// When a pending notification may be tried again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    next_at: f64,
    last_error_logged: bool,
}

/// The alarm task of one collector.
pub struct Evaluator {
    store: Arc<dyn Store>,
    config: AlarmConfig,
    counters: Arc<Counters>,
    client: reqwest::Client,
    holder: String,
    holding: bool,
    renewed_at: f64,
    states: Option<HashMap<String, Current>>,
    rules: HashMap<String, AlarmRule>,
    window: RollupWindow,
    last_round: Option<i64>,
    retries: HashMap<(String, u64), Retry>,
    tracker: Option<Tracker>,
    /// Open insights already counted and logged as opened.
    reported: std::collections::HashSet<String>,
    /// Insight detection's windows of earlier days (minutes back, window).
    seasons: Vec<(i64, RollupWindow)>,
    /// Per rule: its `modified_at` and its values of periods no round reads again.
    memos: HashMap<String, (f64, BTreeMap<i64, Option<f64>>)>,
}

impl Evaluator {
    /// A task over `store`, counting into `counters`.
    pub fn new(store: Arc<dyn Store>, config: AlarmConfig, counters: Arc<Counters>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "collector".to_owned());
        let holder = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(notify::ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            store,
            config,
            counters,
            client,
            holder,
            holding: false,
            renewed_at: f64::NEG_INFINITY,
            states: None,
            rules: HashMap::new(),
            window: RollupWindow::default(),
            last_round: None,
            retries: HashMap::new(),
            tracker: None,
            reported: std::collections::HashSet::new(),
            seasons: crate::insights::detect::SEASONS
                .iter()
                .map(|back| (*back, RollupWindow::default()))
                .collect(),
            memos: HashMap::new(),
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        loop {
            if let Err(error) = self.tick(crate::store::now_seconds()).await {
                tracing::warn!(%error, "alarm round failed; trying again");
            }
            tokio::time::sleep(self.config.tick).await;
        }
    }

    /// Whether this collector evaluates the rules now.
    pub fn holds_lease(&self) -> bool {
        self.holding
    }

    /// One wake-up at `now`: the lease, a round if a minute settled since the last, deliveries.
    pub async fn tick(&mut self, now: f64) -> Result<(), StoreError> {
        self.lease(now).await?;
        if !self.holding {
            return Ok(());
        }
        let round = ((now - self.config.settle.as_secs_f64()) / 60.0).floor() as i64;
        if self.last_round != Some(round) {
            self.evaluate(round, now).await?;
            self.detect(round, now).await?;
            self.last_round = Some(round);
        }
        self.deliver(now).await
    }

    async fn lease(&mut self, now: f64) -> Result<(), StoreError> {
        let ttl = self.config.lease_ttl.as_secs_f64();
        if self.holding && now - self.renewed_at < ttl / 3.0 {
            return Ok(());
        }
        let held = self
            .store
            .take_lease(LEASE.to_owned(), self.holder.clone(), now, ttl)
            .await;
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                self.lose();
                return Err(e);
            }
        };
        if held && !self.holding {
            tracing::info!(holder = %self.holder, "this collector evaluates the alarm rules");
        } else if !held && self.holding {
            tracing::warn!(holder = %self.holder, "another collector took over the alarm rules");
        }
        if held {
            self.holding = true;
            self.renewed_at = now;
        } else {
            self.lose();
        }
        Ok(())
    }

    /// Forgets what only a holder may know: states are read again when the lease comes back.
    fn lose(&mut self) {
        self.holding = false;
        self.states = None;
        self.last_round = None;
        self.retries.clear();
        self.tracker = None;
        self.memos.clear();
    }

    /// Evaluates every rule over the periods complete before epoch minute `round`; records
    /// and returns the state changes.
    pub async fn evaluate(&mut self, round: i64, now: f64) -> Result<Vec<AlarmEvent>, StoreError> {
        let started = std::time::Instant::now();
        let stored: Vec<StoredAlarm> = self.store.alarm_rules().await?;
        let states = match self.states.take() {
            Some(s) => s,
            None => self.load_states().await?,
        };
        let modified: HashMap<String, f64> = stored
            .iter()
            .map(|s| (s.rule.name.clone(), s.modified_at))
            .collect();
        let rules: Vec<AlarmRule> = stored.into_iter().map(|s| s.rule).collect();
        let mut memos = std::mem::take(&mut self.memos);
        memos.retain(|name, _| modified.contains_key(name));
        self.rules = rules.iter().map(|r| (r.name.clone(), r.clone())).collect();
        let span = rules.iter().map(AlarmRule::span_minutes).max().unwrap_or(0);
        // Periods are aligned to their length, so the longest ends at most one period early.
        let longest_period = rules
            .iter()
            .map(|r| i64::from(r.period / 60))
            .max()
            .unwrap_or(1);
        let mut first = round - span - longest_period;
        if self.config.insights {
            first = first.min(self.next_insight_minute(round) - HISTORY_MINUTES);
        }
        self.window
            .refresh(self.store.as_ref(), first, round - 1)
            .await?;
        // The same minutes yesterday and a week ago (band rules, insights): settled, so only
        // new minutes are read.
        if self.config.insights || rules.iter().any(|r| r.comparison.uses_band()) {
            for (back, window) in &mut self.seasons {
                window
                    .extend(
                        self.store.as_ref(),
                        first - *back - SEASON_SPREAD,
                        round - 1 - *back + SEASON_SPREAD,
                    )
                    .await?;
            }
        }
        let mut groups: HashMap<String, Result<RollupWindow, String>> = HashMap::new();
        let mut events = Vec::new();
        let mut next_states = HashMap::with_capacity(rules.len());
        for rule in &rules {
            let current = states.get(&rule.name).copied().unwrap_or(Current {
                state: AlarmState::InsufficientData,
                seq: 0,
            });
            let window = match &rule.group_name {
                None => Ok(&self.window),
                Some(group) => {
                    if !groups.contains_key(group) {
                        // A group's traces are read over what its own rules need.
                        let (span, period) = rules
                            .iter()
                            .filter(|r| r.group_name.as_ref() == Some(group))
                            .map(|r| (r.span_minutes(), i64::from(r.period / 60)))
                            .fold((0, 1), |(s, p), (rs, rp)| (s.max(rs), p.max(rp)));
                        let read = self
                            .group_rollups(group, round - span - period, round - 1)
                            .await;
                        groups.insert(group.clone(), read);
                    }
                    match &groups[group] {
                        Ok(w) => Ok(w),
                        Err(e) => Err(e.clone()),
                    }
                }
            };
            let (decision, window_start, window_end) = match window {
                Ok(window) => {
                    let changed_at = modified.get(&rule.name).copied().unwrap_or_default();
                    let memo = memos.entry(rule.name.clone()).or_default();
                    if memo.0 != changed_at {
                        *memo = (changed_at, BTreeMap::new());
                    }
                    let seasons: Vec<(i64, &RollupWindow)> = match &rule.group_name {
                        None => self.seasons.iter().map(|(back, w)| (*back, w)).collect(),
                        // A group's earlier days are not read: its rollups come from traces.
                        Some(_) => Vec::new(),
                    };
                    judge(rule, window, round, current.state, &seasons, &mut memo.1)
                }
                Err(problem) => (
                    super::Decision {
                        state: AlarmState::InsufficientData,
                        reason: problem,
                        datapoints: Vec::new(),
                        threshold: None,
                        band: None,
                    },
                    round as f64 * 60.0,
                    round as f64 * 60.0,
                ),
            };
            let mut next = current;
            if decision.state != current.state {
                next = Current {
                    state: decision.state,
                    seq: current.seq + 1,
                };
                let pending = if rule.actions_enabled {
                    (0..rule.webhooks.len() as u32).collect()
                } else {
                    Vec::new()
                };
                tracing::info!(alarm = %rule.name, from = current.state.as_str(), to = decision.state.as_str(), reason = %decision.reason, "alarm state changed");
                events.push(AlarmEvent {
                    alarm: rule.name.clone(),
                    seq: next.seq,
                    time: now,
                    old_state: current.state,
                    new_state: decision.state,
                    decision,
                    window_start,
                    window_end,
                    pending,
                    deliveries: Vec::new(),
                });
            }
            next_states.insert(rule.name.clone(), next);
        }
        if !events.is_empty()
            && let Err(e) = self.store.put_alarm_events(events.clone()).await
        {
            // Not recorded: the states stay as they were, so the next round decides again.
            self.states = Some(states);
            self.memos = memos;
            return Err(e);
        }
        self.memos = memos;
        // Deleted rules' states are forgotten with them; their numbering resumes from the
        // store's history if the name comes back.
        self.states = Some(next_states);
        self.counters.alarm_rounds.fetch_add(1, Ordering::Relaxed);
        self.counters
            .alarm_transitions
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.counters
            .alarm_rules
            .store(rules.len() as u64, Ordering::Relaxed);
        self.counters.alarm_round_micros.store(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(events)
    }

    async fn load_states(&self) -> Result<HashMap<String, Current>, StoreError> {
        let latest = self
            .store
            .alarm_events(EventQuery {
                latest_only: true,
                limit: MAX_EVENTS,
                ..EventQuery::default()
            })
            .await?;
        Ok(latest
            .into_iter()
            .map(|e| {
                (
                    e.alarm,
                    Current {
                        state: e.new_state,
                        seq: e.seq,
                    },
                )
            })
            .collect())
    }

    async fn group_rollups(
        &self,
        group: &str,
        first: i64,
        last: i64,
    ) -> Result<RollupWindow, String> {
        use crate::filter::Literal;
        let groups = self.store.groups().await.map_err(|e| e.to_string())?;
        let text = format!("group.name = {}", Literal::Str(group.to_owned()));
        let lookup = |name: &str| {
            groups
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.filter_expression.clone())
        };
        let filter = crate::filter::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|e| e.resolve_groups(&lookup))
            .map_err(|e| format!("group {group}: {e}"))?;
        group_window(self.store.as_ref(), &filter, first, last)
            .await
            .map_err(|e| format!("group {group}: {e}"))
    }
}

/// Decides one rule over `window` for the periods complete before minute `round`; returns
/// the decision and the periods' span, epoch seconds.
///
/// `memo` holds the rule's values of periods that end before `stable_before` (minutes no
/// round reads again): each round computes only the periods that may have changed.
pub fn judge(
    rule: &AlarmRule,
    window: &RollupWindow,
    round: i64,
    current: AlarmState,
    seasons: &[(i64, &RollupWindow)],
    memo: &mut BTreeMap<i64, Option<f64>>,
) -> (super::Decision, f64, f64) {
    let stable_before = round - super::series::REREAD_MINUTES;
    let per = i64::from(rule.period / 60).max(1);
    let end = round.div_euclid(per) * per;
    let n = i64::from(rule.evaluation_periods);
    let start = end - n * per;
    let entity = match rule.entity() {
        Ok(e) => e,
        Err(problem) => {
            return (
                super::Decision {
                    state: AlarmState::InsufficientData,
                    reason: format!("invalid EntitySelectorExpression: {problem}"),
                    datapoints: Vec::new(),
                    threshold: None,
                    band: None,
                },
                start as f64 * 60.0,
                end as f64 * 60.0,
            );
        }
    };
    let keys = window.keys_of(&entity);
    let histogram = rule.metric.needs_histogram();
    let mut value = |w: &RollupWindow, keys: &[(&Key, Side)], from: i64| {
        let stable = from + per <= stable_before;
        if stable && let Some(v) = memo.get(&from) {
            return *v;
        }
        let stats = w.sum(keys, from, from + per, histogram);
        let v = rule
            .metric
            .value(stats.requests(), rule.period, rule.min_requests);
        if stable {
            memo.insert(from, v);
        }
        v
    };
    let values: Vec<(f64, Option<f64>)> = (0..n)
        .map(|k| {
            let from = start + k * per;
            (from as f64 * 60.0, value(window, &keys, from))
        })
        .collect();
    // The periods whose values are kept for later rounds: these, the history, the seasons.
    let mut kept: Vec<std::ops::Range<i64>> = Vec::with_capacity(4);
    kept.push(start..end);
    let band = if rule.comparison.uses_band() {
        let floor = |median: f64| rule.metric.noise_floor(median, rule.period);
        let history_periods = i64::from(BAND_HISTORY_MINUTES) / per;
        let history: Vec<f64> = (1..=history_periods)
            .filter_map(|k| value(window, &keys, start - k * per))
            .collect();
        kept.push(start - history_periods * per..start);
        let recent = Band::learn(&history, rule.band_width, floor);
        // The same periods yesterday and a week ago (± the season's spread), where known.
        let spread = SEASON_SPREAD.div_euclid(per);
        let mut then = Vec::new();
        for (back, w) in seasons {
            let keys = w.keys_of(&entity);
            let first = start - back - spread * per;
            let last = end - back + spread * per;
            kept.push(first..last);
            let mut from = first;
            while from < last {
                then.extend(value(w, &keys, from));
                from += per;
            }
        }
        let seasonal = Band::learn(&then, rule.band_width, floor);
        // Outside the band means outside both: a level usual at this hour on earlier days is
        // not an anomaly.
        match (recent, seasonal) {
            (Some(r), Some(s)) => Some(Band {
                lower: r.lower.min(s.lower),
                median: r.median,
                upper: r.upper.max(s.upper),
            }),
            (r, s) => r.or(s),
        }
    } else {
        None
    };
    memo.retain(|from, _| kept.iter().any(|r| r.contains(from)));
    (
        decide(rule, current, &values, band),
        start as f64 * 60.0,
        end as f64 * 60.0,
    )
}
