//! Detection quality on the labelled data set `tests/data/insights/incidents.json`: six hours
//! of a generated shop (request-level simulation through its call tree, so faults and latency
//! propagate to callers) with incidents; each insight found is matched to a label by its root
//! cause and time. Prints precision, recall and time to detect (BENCHMARKS.md quotes them):
//! `cargo test -p roentgen-web --lib insights::quality -- --nocapture`.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::tracker::Tracker;
use crate::alarms::series::RollupWindow;
use crate::assembly::{NodeKey, Outcome};
use crate::graph::Stats;
use crate::store::RollupRow;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Spec {
    seed: u64,
    minutes: i64,
    entry_requests_per_minute: f64,
    services: Vec<Service>,
    incidents: Vec<Incident>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Service {
    name: String,
    latency_ms: f64,
    fault_rate: f64,
    calls: Vec<String>,
    #[serde(default)]
    call_share: Option<f64>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct Incident {
    root: Option<String>,
    #[serde(default)]
    service: Option<String>,
    start: i64,
    minutes: i64,
    #[serde(default)]
    fault_rate: Option<f64>,
    #[serde(default)]
    throttle_rate: Option<f64>,
    #[serde(default)]
    extra_latency_ms: Option<f64>,
    #[serde(default)]
    latency_factor: Option<f64>,
}

impl Incident {
    fn target(&self) -> Option<&str> {
        self.root.as_deref().or(self.service.as_deref())
    }
}

struct Sim<'a> {
    spec: &'a Spec,
    rng: StdRng,
    stats: BTreeMap<(i64, String, String), Stats>,
}

fn key(name: &str) -> String {
    NodeKey {
        name: name.to_owned(),
        kind: String::new(),
    }
    .encode()
}

impl Sim<'_> {
    /// One call to `name` in minute `m`: its response time and outcome, recorded on its node.
    fn call(&mut self, name: &str, m: i64) -> (f64, Outcome) {
        let spec = self.spec;
        let Some(svc) = spec.services.iter().find(|s| s.name == name) else {
            return (0.0, Outcome::Ok);
        };
        let incident = spec
            .incidents
            .iter()
            .find(|i| i.target() == Some(name) && (i.start..i.start + i.minutes).contains(&m));
        let noise: f64 = (self.rng.random::<f64>() - 0.5) * 0.5;
        let mut latency = svc.latency_ms / 1000.0
            * noise.exp()
            * incident.and_then(|i| i.latency_factor).unwrap_or(1.0)
            + incident.and_then(|i| i.extra_latency_ms).unwrap_or(0.0) / 1000.0;
        let mut outcome = Outcome::Ok;
        for child in &svc.calls {
            let share = spec
                .services
                .iter()
                .find(|s| s.name == *child)
                .and_then(|s| s.call_share)
                .unwrap_or(1.0);
            if self.rng.random::<f64>() >= share {
                continue;
            }
            let (l, o) = self.call(child, m);
            self.stats
                .entry((m, key(name), key(child)))
                .or_default()
                .add(o, l, 1);
            latency += l;
            if o == Outcome::Fault && self.rng.random::<f64>() < 0.8 {
                outcome = Outcome::Fault;
            }
        }
        let fault = incident
            .and_then(|i| i.fault_rate)
            .unwrap_or(svc.fault_rate);
        let throttle = incident.and_then(|i| i.throttle_rate).unwrap_or(0.0);
        let draw: f64 = self.rng.random();
        if draw < fault {
            outcome = Outcome::Fault;
        } else if draw < fault + throttle && outcome == Outcome::Ok {
            outcome = Outcome::Throttle;
        }
        self.stats
            .entry((m, key(name), String::new()))
            .or_default()
            .add(outcome, latency, 1);
        (latency, outcome)
    }
}

fn rows(spec: &Spec) -> Vec<RollupRow> {
    let mut sim = Sim {
        spec,
        rng: StdRng::seed_from_u64(spec.seed),
        stats: BTreeMap::new(),
    };
    let entry = spec.services[0].name.clone();
    for m in 0..spec.minutes {
        let swing = 1.0 + 0.3 * (std::f64::consts::TAU * m as f64 / spec.minutes as f64).sin();
        let requests = (spec.entry_requests_per_minute * swing) as i64;
        for _ in 0..requests {
            let (l, o) = sim.call(&entry, m);
            sim.stats
                .entry((m, NodeKey::client().encode(), key(&entry)))
                .or_default()
                .add(o, l, 1);
        }
    }
    RollupRow::from_keyed(sim.stats)
}

#[test]
fn insights_find_the_labelled_incidents_of_the_generated_shop() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/insights/incidents.json"
    );
    let spec: Spec = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut window = RollupWindow::default();
    window.replace(0, 0, spec.minutes - 1, rows(&spec));
    let mut tracker = Tracker::default();
    // Insight id -> (root cause, start minute, the minute it was first reported).
    let mut found: HashMap<String, (String, i64, i64)> = HashMap::new();
    for m in super::detect::HISTORY_MINUTES..spec.minutes {
        tracker.step(&window, &[], m);
        for i in tracker.take_changed() {
            found.entry(i.insight_id.clone()).or_insert((
                i.root_cause.name.clone(),
                (i.start_time / 60.0) as i64,
                m,
            ));
        }
    }
    let labels: Vec<&Incident> = spec.incidents.iter().filter(|i| i.root.is_some()).collect();
    let matches = |root: &str, start: i64, label: &Incident| {
        label.root.as_deref() == Some(root)
            && (label.start - 1..=label.start + label.minutes + 2).contains(&start)
    };
    let true_positives = found
        .values()
        .filter(|(root, start, _)| labels.iter().any(|l| matches(root, *start, l)))
        .count();
    let mut delays = Vec::new();
    let mut missed = Vec::new();
    for label in &labels {
        let first = found
            .values()
            .filter(|(root, start, _)| matches(root, *start, label))
            .map(|(_, _, seen)| *seen)
            .min();
        match first {
            Some(seen) => delays.push(seen - label.start + 1),
            None => missed.push(label.root.clone().unwrap_or_default()),
        }
    }
    let precision = true_positives as f64 / found.len().max(1) as f64;
    let recall = delays.len() as f64 / labels.len() as f64;
    delays.sort_unstable();
    let false_positives: Vec<&(String, i64, i64)> = found
        .values()
        .filter(|(root, start, _)| !labels.iter().any(|l| matches(root, *start, l)))
        .collect();
    println!(
        "insights: {} found, {} labelled incidents; precision {:.2}, recall {:.2}; minutes from the incident's start to its report (end of the reporting minute): {:?}; missed {:?}; false {:?}",
        found.len(),
        labels.len(),
        precision,
        recall,
        delays,
        missed,
        false_positives
    );
    assert!(
        precision >= 0.8,
        "precision {precision:.2}: {false_positives:?}"
    );
    assert!(recall >= 0.8, "recall {recall:.2}: missed {missed:?}");
    assert!(delays.iter().all(|d| *d <= 4), "{delays:?}");
}
