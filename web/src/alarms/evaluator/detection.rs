//! Insight detection in the lease holder's rounds: the minutes settled since the last round
//! stepped through the tracker, what changed recorded with its evidence traces.

use std::sync::atomic::Ordering;

use super::{CATCH_UP_MINUTES, Evaluator, TOP_TRACES};
use crate::alarms::series::RollupWindow;
use crate::insights::tracker::Tracker;
use crate::insights::{Insight, InsightState};
use crate::store::{Store, StoreError};

impl Evaluator {
    /// The next minute insight detection judges.
    pub(super) fn next_insight_minute(&self, round: i64) -> i64 {
        self.tracker
            .as_ref()
            .and_then(|t| t.last_minute)
            .map_or(round - CATCH_UP_MINUTES, |m| m + 1)
            .max(round - CATCH_UP_MINUTES)
    }

    /// Judges the minutes settled since the last round for insights (the window is fresh:
    /// `evaluate` read it), and records what changed with its evidence.
    pub async fn detect(&mut self, round: i64, now: f64) -> Result<Vec<Insight>, StoreError> {
        if !self.config.insights {
            return Ok(Vec::new());
        }
        let from = self.next_insight_minute(round);
        if self.tracker.is_none() {
            let open: Vec<Insight> = self
                .store
                .insights(now - 7.0 * 86_400.0, now, None, 10_000)
                .await?
                .into_iter()
                .filter(|i| i.state == InsightState::Active)
                .collect();
            self.tracker = Some(Tracker::with_open(open));
        }
        // The same minutes yesterday and a week ago: `evaluate` read them with the window.
        let seasons: Vec<(i64, &RollupWindow)> =
            self.seasons.iter().map(|(back, w)| (*back, w)).collect();
        let Some(tracker) = self.tracker.as_mut() else {
            return Ok(Vec::new());
        };
        for minute in from..round {
            tracker.step(&self.window, &seasons, minute);
        }
        let mut changed = tracker.take_changed();
        for insight in &mut changed {
            if insight.top_traces.is_empty() || insight.state == InsightState::Closed {
                match top_traces(self.store.as_ref(), insight).await {
                    Ok(ids) => insight.top_traces = ids,
                    Err(error) => {
                        tracing::warn!(%error, insight = %insight.insight_id, "finding an insight's traces failed")
                    }
                }
            }
            if let Some(t) = self.tracker.as_mut() {
                t.set_top_traces(&insight.insight_id, &insight.top_traces);
            }
            // An insight may open and close between two rounds (found while catching up).
            if self.reported.insert(insight.insight_id.clone()) {
                tracing::warn!(insight = %insight.insight_id, summary = %insight.summary, "insight opened");
                self.counters
                    .insights_opened
                    .fetch_add(1, Ordering::Relaxed);
            }
            if insight.state == InsightState::Closed {
                self.reported.remove(&insight.insight_id);
                tracing::info!(insight = %insight.insight_id, summary = %insight.summary, "insight closed");
                self.counters
                    .insights_closed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if !changed.is_empty() {
            self.store.put_insights(changed.clone()).await?;
        }
        Ok(changed)
    }
}

/// The traces that show an insight: first those whose root cause, as computed when they were
/// stored, is the insight's root cause (`rootcause.fault.service { name = … }`, `error`, or
/// `responsetime` for latency), then the root cause's own faulty (erroneous, throttled, slow)
/// requests, over the insight's window.
async fn top_traces(
    store: &dyn Store,
    insight: &Insight,
) -> Result<Vec<String>, crate::query::QueryError> {
    use crate::filter::Literal;
    let cause = &insight.root_cause;
    let name = Literal::Str(cause.name.clone());
    let slow = insight.anomalies.iter().find(|a| {
        a.metric == crate::alarms::Metric::P90
            && (a.service == *cause || a.to.as_ref() == Some(cause))
    });
    let outcome = insight.categories.iter().find_map(|c| match c.as_str() {
        "FAULT" => Some(("fault", "fault")),
        "ERROR" => Some(("error", "error")),
        "THROTTLE" => Some(("error", "throttle")),
        _ => None,
    });
    let filters = match (outcome, slow) {
        (Some((kind, flag)), _) => [
            format!("rootcause.{kind}.service {{ name = {name} }}"),
            format!("service({name}) {{ {flag} }}"),
        ],
        (None, Some(a)) => [
            format!("rootcause.responsetime.service {{ name = {name} }}"),
            format!("service({name}) {{ responsetime > {} }}", a.upper),
        ],
        (None, None) => return Ok(Vec::new()),
    };
    let end = insight.end_time.unwrap_or(insight.last_update_time);
    let mut ids: Vec<String> = Vec::new();
    for text in filters {
        let Ok(filter) = crate::filter::parse(&text) else {
            continue;
        };
        let page =
            crate::query::trace_summaries(store, insight.start_time, end, Some(&filter), None)
                .await?;
        for s in page.summaries {
            if ids.len() < TOP_TRACES && !ids.contains(&s.id) {
                ids.push(s.id);
            }
        }
        if ids.len() >= TOP_TRACES {
            break;
        }
    }
    Ok(ids)
}
