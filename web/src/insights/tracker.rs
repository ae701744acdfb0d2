//! From anomalies minute by minute to insights: an anomaly counts once it lasts
//! [`SUSTAIN`] minutes and stops counting after [`QUIET`] normal minutes; the counting ones are
//! grouped by the graph (an anomalous edge joins its two services; the clients join nothing),
//! each group is one insight, matched to the open insight it overlaps, and an open insight
//! without a group closes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::detect::{Anomaly, anomalies_at};
use super::{AnomalyRecord, Impact, Insight, InsightEvent, InsightState, MAX_EVENTS, insight_id};
use crate::alarms::Metric;
use crate::alarms::series::{Key, RollupWindow};
use crate::assembly::NodeKey;
use crate::graph::Stats;

/// Consecutive anomalous minutes before an anomaly counts.
pub const SUSTAIN: u32 = 2;
/// Consecutive normal minutes before it stops counting.
pub const QUIET: u32 = 2;
/// Most anomaly records kept per insight.
const MAX_ANOMALIES: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    anomalous: u32,
    normal: u32,
    first: i64,
    counting: bool,
}

/// The insights being tracked and the anomalies' runs.
#[derive(Debug, Default)]
pub struct Tracker {
    runs: HashMap<(Key, Metric), Run>,
    open: Vec<Insight>,
    changed: BTreeMap<String, Insight>,
    /// The last minute stepped.
    pub last_minute: Option<i64>,
}

fn category(metric: Metric) -> &'static str {
    match metric {
        Metric::FaultRate => "FAULT",
        Metric::ErrorRate => "ERROR",
        Metric::ThrottleRate => "THROTTLE",
        _ => "LATENCY",
    }
}

fn is_client(key: &NodeKey) -> bool {
    *key == NodeKey::client()
}

/// Services an anomaly is about (an edge: both ends, but never the clients).
fn services_of(key: &Key) -> Vec<&NodeKey> {
    [Some(&key.0), key.1.as_ref()]
        .into_iter()
        .flatten()
        .filter(|k| !is_client(k))
        .collect()
}

impl Tracker {
    /// A tracker continuing the given open insights (read back after a restart).
    pub fn with_open(open: Vec<Insight>) -> Self {
        Self {
            open,
            ..Self::default()
        }
    }

    /// The open insights.
    pub fn open(&self) -> &[Insight] {
        &self.open
    }

    /// Records the traces found as an open insight's evidence.
    pub fn set_top_traces(&mut self, id: &str, traces: &[String]) {
        if let Some(i) = self.open.iter_mut().find(|i| i.insight_id == id) {
            i.top_traces = traces.to_vec();
        }
    }

    /// Insights opened, changed or closed since the last call.
    pub fn take_changed(&mut self) -> Vec<Insight> {
        std::mem::take(&mut self.changed).into_values().collect()
    }

    /// Judges minute `minute` of `window` (and of `seasons`, the same time on earlier days,
    /// each with how many minutes back it lies) and moves the insights along.
    pub fn step(&mut self, window: &RollupWindow, seasons: &[(i64, &RollupWindow)], minute: i64) {
        self.last_minute = Some(minute);
        let anomalies = anomalies_at(window, seasons, minute);
        let seen: BTreeSet<(Key, Metric)> = anomalies
            .iter()
            .map(|a| (a.key.clone(), a.metric))
            .collect();
        for (k, run) in self.runs.iter_mut() {
            if !seen.contains(k) {
                run.anomalous = 0;
                run.normal += 1;
                if run.normal >= QUIET {
                    run.counting = false;
                }
            }
        }
        for a in &anomalies {
            let run = self.runs.entry((a.key.clone(), a.metric)).or_default();
            if run.anomalous == 0 && !run.counting {
                run.first = minute;
            }
            run.anomalous += 1;
            run.normal = 0;
            if run.anomalous >= SUSTAIN {
                run.counting = true;
            }
        }
        self.runs.retain(|_, r| r.counting || r.anomalous > 0);
        // The anomalies that count this minute: seen now, or counting and not yet quiet.
        let counting: Vec<(&(Key, Metric), &Run)> =
            self.runs.iter().filter(|(_, r)| r.counting).collect();
        let now: HashMap<(Key, Metric), &Anomaly> = anomalies
            .iter()
            .map(|a| ((a.key.clone(), a.metric), a))
            .collect();
        let groups = by_root_cause(&counting);
        let minute_start = minute as f64 * 60.0;
        let mut matched = vec![false; self.open.len()];
        for (cause, members) in groups {
            let services: BTreeSet<NodeKey> = members
                .iter()
                .flat_map(|(k, _, _)| services_of(k).into_iter().cloned())
                .chain([cause.clone()])
                .collect();
            let edges: BTreeSet<(NodeKey, NodeKey)> = members
                .iter()
                .filter_map(|(k, _, _)| k.1.clone().map(|d| (k.0.clone(), d)))
                .collect();
            let found = self.open.iter().position(|i| i.root_cause == cause);
            let index = match found {
                Some(i) => i,
                None => {
                    let first = members
                        .iter()
                        .map(|(_, _, r)| r.first)
                        .min()
                        .unwrap_or(minute);
                    let id = insight_id(&format!("{}|{first}", cause.encode()));
                    self.open.push(Insight {
                        insight_id: id,
                        state: InsightState::Active,
                        start_time: first as f64 * 60.0,
                        end_time: None,
                        last_update_time: minute_start,
                        root_cause: cause.clone(),
                        categories: Vec::new(),
                        summary: String::new(),
                        impacted_services: Vec::new(),
                        impacted_edges: Vec::new(),
                        anomalies: Vec::new(),
                        requests_affected: 0.0,
                        client_request_impact_statistics: Impact::default(),
                        root_cause_service_request_impact_statistics: Impact::default(),
                        top_traces: Vec::new(),
                        events: Vec::new(),
                    });
                    matched.push(false);
                    let index = self.open.len() - 1;
                    // The minutes before this one since it began count too.
                    for m in first..minute {
                        let (client, root) = impacts(window, m, &cause);
                        add(
                            &mut self.open[index].client_request_impact_statistics,
                            client,
                        );
                        add(
                            &mut self.open[index].root_cause_service_request_impact_statistics,
                            root,
                        );
                    }
                    index
                }
            };
            matched[index] = true;
            let insight = &mut self.open[index];
            let before: BTreeSet<NodeKey> = insight.impacted_services.iter().cloned().collect();
            let opened = insight.events.is_empty();
            let cause_changed = !opened && insight.root_cause != cause;
            insight.root_cause = cause.clone();
            for s in &services {
                if !insight.impacted_services.contains(s) {
                    insight.impacted_services.push(s.clone());
                }
            }
            for e in &edges {
                if !insight.impacted_edges.contains(e) {
                    insight.impacted_edges.push(e.clone());
                }
            }
            for (key, metric, _) in &members {
                let Some(a) = now.get(&(key.clone(), *metric)) else {
                    continue;
                };
                let c = category(*metric).to_owned();
                if !insight.categories.contains(&c) {
                    insight.categories.push(c);
                }
                let record = AnomalyRecord {
                    service: key.0.clone(),
                    to: key.1.clone(),
                    metric: *metric,
                    value: a.value,
                    usual: a.band.median,
                    upper: a.band.upper,
                    at: minute_start,
                };
                let same = insight.anomalies.iter().position(|r| {
                    r.service == record.service && r.to == record.to && r.metric == record.metric
                });
                match same {
                    Some(i) => insight.anomalies[i] = record,
                    None if insight.anomalies.len() < MAX_ANOMALIES => {
                        insight.anomalies.push(record);
                    }
                    None => {}
                }
                if services_of(key).last() == Some(&&cause) {
                    insight.requests_affected += a.excess;
                }
            }
            let (client, root) = impacts(window, minute, &cause);
            add(&mut insight.client_request_impact_statistics, client);
            add(
                &mut insight.root_cause_service_request_impact_statistics,
                root,
            );
            insight.last_update_time = minute_start + 60.0;
            insight.summary = summary(insight);
            let grew = insight.impacted_services.len() > before.len();
            let event = if opened {
                Some(format!("Opened: {}", insight.summary))
            } else if cause_changed {
                Some(format!(
                    "Root cause now {}: {}",
                    cause.name, insight.summary
                ))
            } else if grew {
                Some(format!(
                    "Now impacting {}",
                    names(&insight.impacted_services)
                ))
            } else {
                None
            };
            if let Some(text) = event {
                push_event(insight, text, minute_start, client, root);
            }
            self.changed
                .insert(insight.insight_id.clone(), insight.clone());
        }
        // Open insights without anomalies any more close at the end of their last anomalous
        // minute.
        let mut still = Vec::new();
        for (insight, matched) in std::mem::take(&mut self.open).into_iter().zip(matched) {
            if matched {
                still.push(insight);
                continue;
            }
            let mut closed = insight;
            closed.state = InsightState::Closed;
            let end = (minute - i64::from(QUIET) + 1) as f64 * 60.0;
            closed.end_time = Some(end.max(closed.start_time + 60.0));
            closed.last_update_time = minute_start + 60.0;
            let (client, root) = impacts(window, minute, &closed.root_cause);
            push_event(
                &mut closed,
                "Closed: the anomalies ended".to_owned(),
                minute_start,
                client,
                root,
            );
            self.changed.insert(closed.insight_id.clone(), closed);
        }
        self.open = still;
    }
}

/// The counting anomalies grouped by root cause. Following anomalous calls downstream from
/// each anomalous service leads to the deepest ones, whose own calls are all normal: those are
/// root causes, and each anomaly belongs to the root causes below all the services it is
/// about. A caller failing because of two independent callees is in both their insights.
fn by_root_cause(
    counting: &[(&(Key, Metric), &Run)],
) -> BTreeMap<NodeKey, Vec<(Key, Metric, Run)>> {
    let mut calls: BTreeMap<&NodeKey, BTreeSet<&NodeKey>> = BTreeMap::new();
    let mut services: BTreeSet<&NodeKey> = BTreeSet::new();
    for ((key, _), _) in counting {
        services.extend(services_of(key));
        if let Some(dst) = &key.1
            && !is_client(&key.0)
            && key.0 != *dst
        {
            calls.entry(&key.0).or_default().insert(dst);
        }
    }
    fn deepest<'k>(
        s: &'k NodeKey,
        calls: &BTreeMap<&'k NodeKey, BTreeSet<&'k NodeKey>>,
        path: &mut Vec<&'k NodeKey>,
        out: &mut BTreeSet<&'k NodeKey>,
    ) {
        path.push(s);
        let below: Vec<&NodeKey> = calls
            .get(s)
            .into_iter()
            .flatten()
            .copied()
            .filter(|c| !path.contains(c))
            .collect();
        if below.is_empty() {
            out.insert(s);
        }
        for c in below {
            deepest(c, calls, path, out);
        }
        path.pop();
    }
    let roots: BTreeMap<&NodeKey, BTreeSet<&NodeKey>> = services
        .iter()
        .map(|s| {
            let mut out = BTreeSet::new();
            deepest(s, &calls, &mut Vec::new(), &mut out);
            (*s, out)
        })
        .collect();
    let mut groups: BTreeMap<NodeKey, Vec<(Key, Metric, Run)>> = BTreeMap::new();
    for ((key, metric), run) in counting {
        let about = services_of(key);
        // The root causes below every service the anomaly is about.
        let mut common: Option<BTreeSet<&NodeKey>> = None;
        for s in &about {
            let r = roots.get(s).cloned().unwrap_or_default();
            common = Some(match common {
                None => r,
                Some(c) => c.intersection(&r).copied().collect(),
            });
        }
        for cause in common.unwrap_or_default() {
            groups
                .entry(cause.clone())
                .or_default()
                .push((key.clone(), *metric, **run));
        }
    }
    groups
}

/// The clients' and the root cause's requests in one minute.
fn impacts(window: &RollupWindow, minute: i64, cause: &NodeKey) -> (Impact, Impact) {
    let mut client = Stats::default();
    let mut own = Stats::default();
    let mut calls_in = Stats::default();
    for (key, minutes) in window.series() {
        let Some(stats) = minutes.get(&minute) else {
            continue;
        };
        match &key.1 {
            Some(dst) if is_client(&key.0) => {
                client.merge(stats);
                if dst == cause {
                    calls_in.merge(stats);
                }
            }
            Some(dst) if dst == cause => calls_in.merge(stats),
            None if key.0 == *cause => own.merge(stats),
            _ => {}
        }
    }
    let root = if own.total() > 0 { own } else { calls_in };
    (Impact::of(&client), Impact::of(&root))
}

fn add(total: &mut Impact, more: Impact) {
    total.fault_count += more.fault_count;
    total.ok_count += more.ok_count;
    total.total_count += more.total_count;
}

fn names(services: &[NodeKey]) -> String {
    services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(insight: &Insight) -> String {
    let cause = &insight.root_cause;
    let own = insight
        .anomalies
        .iter()
        .filter(|a| (a.to.is_none() && a.service == *cause) || a.to.as_ref() == Some(cause))
        .max_by(|a, b| (a.value / a.upper.max(1e-9)).total_cmp(&(b.value / b.upper.max(1e-9))));
    let what = match own {
        Some(a) => format!(
            "{} {:?} {} (usual {})",
            cause.name,
            a.metric,
            a.metric.display(a.value),
            a.metric.display(a.usual)
        ),
        None => format!("{} is anomalous", cause.name),
    };
    let others: Vec<&NodeKey> = insight
        .impacted_services
        .iter()
        .filter(|s| *s != cause)
        .collect();
    if others.is_empty() {
        what
    } else {
        format!(
            "{what}, impacting {}",
            others
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn push_event(insight: &mut Insight, summary: String, at: f64, client: Impact, root: Impact) {
    if insight.events.len() >= MAX_EVENTS {
        insight.events.remove(1);
    }
    let top = insight.impacted_services.clone();
    insight.events.push(InsightEvent {
        summary,
        event_time: at,
        client_request_impact_statistics: client,
        root_cause_service_request_impact_statistics: root,
        top_anomalous_services: top,
    });
}
