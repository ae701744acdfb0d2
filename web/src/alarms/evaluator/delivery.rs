//! Delivering the recorded state changes: each alarm's oldest pending notification, retried
//! with back-off, its outcome recorded in the store.

use std::sync::atomic::Ordering;

use super::{Evaluator, GIVE_UP_AFTER, MAX_BACKOFF, MAX_EVENTS, PARALLEL_DELIVERIES, Retry};
use crate::alarms::event::{AlarmEvent, Delivery, EventQuery};
use crate::alarms::notify;
use crate::alarms::rule::AlarmRule;
use crate::store::StoreError;

impl Evaluator {
    /// Tries each alarm's oldest pending notification whose retry is due (in order: a later
    /// state change of an alarm waits for the earlier one), and records how each ended.
    pub async fn deliver(&mut self, now: f64) -> Result<(), StoreError> {
        let mut pending = self
            .store
            .alarm_events(EventQuery {
                pending_only: true,
                limit: MAX_EVENTS,
                ..EventQuery::default()
            })
            .await?;
        pending.sort_by(|a, b| a.alarm.cmp(&b.alarm).then(a.seq.cmp(&b.seq)));
        pending.dedup_by(|later, earlier| later.alarm == earlier.alarm);
        pending.retain(|e| {
            self.retries
                .get(&(e.alarm.clone(), e.seq))
                .is_none_or(|r| r.next_at <= now)
        });
        let mut finished = Vec::new();
        for chunk in pending.chunks(PARALLEL_DELIVERIES) {
            let mut attempts = tokio::task::JoinSet::new();
            for event in chunk {
                let rule = self.rules.get(&event.alarm).cloned();
                let client = self.client.clone();
                let base = self.config.public_url.clone();
                let event = event.clone();
                let tries = self
                    .retries
                    .get(&(event.alarm.clone(), event.seq))
                    .map_or(1, |r| r.attempts + 1);
                attempts.spawn(async move {
                    attempt(&client, &base, rule.as_ref(), event, tries, now).await
                });
            }
            while let Some(done) = attempts.join_next().await {
                let Ok((event, failures)) = done else {
                    continue;
                };
                self.account(&event, failures, now);
                finished.push(event);
            }
        }
        let changed: Vec<AlarmEvent> = finished
            .into_iter()
            .filter(|e| e.deliveries.iter().any(|d| d.at == now))
            .collect();
        if !changed.is_empty() {
            self.store.put_alarm_events(changed).await?;
        }
        Ok(())
    }

    /// Counts an attempt's outcome and schedules the retry of what is still pending.
    fn account(&mut self, event: &AlarmEvent, failures: Vec<String>, now: f64) {
        let key = (event.alarm.clone(), event.seq);
        for d in event.deliveries.iter().filter(|d| d.at == now) {
            if d.delivered {
                self.counters
                    .alarm_notifications_sent
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters
                    .alarm_notifications_abandoned
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(alarm = %event.alarm, seq = event.seq, webhook = d.webhook, detail = %d.detail, "alarm notification given up");
            }
        }
        if event.pending.is_empty() {
            self.retries.remove(&key);
            return;
        }
        self.counters
            .alarm_notification_failures
            .fetch_add(failures.len() as u64, Ordering::Relaxed);
        let retry = self.retries.entry(key).or_insert(Retry {
            attempts: 0,
            next_at: now,
            last_error_logged: false,
        });
        retry.attempts += 1;
        let wait = (2f64.powi(retry.attempts.min(16) as i32)).min(MAX_BACKOFF);
        retry.next_at = now + wait * (0.75 + 0.5 * rand::random::<f64>());
        if !retry.last_error_logged || retry.attempts.is_multiple_of(10) {
            tracing::warn!(alarm = %event.alarm, seq = event.seq, attempts = retry.attempts, errors = ?failures, "alarm notification not delivered; will retry");
            retry.last_error_logged = true;
        }
    }
}

/// One attempt at every pending webhook of `event`; returns the event with what ended moved
/// from `pending` to `deliveries`, and the errors of what is still pending.
async fn attempt(
    client: &reqwest::Client,
    base: &str,
    rule: Option<&AlarmRule>,
    mut event: AlarmEvent,
    tries: u32,
    now: f64,
) -> (AlarmEvent, Vec<String>) {
    let mut still = Vec::new();
    let mut failures = Vec::new();
    let pending = std::mem::take(&mut event.pending);
    for index in pending {
        let end = |delivered: bool, detail: String| Delivery {
            webhook: index,
            at: now,
            attempts: tries,
            delivered,
            detail,
        };
        let Some(rule) = rule else {
            event
                .deliveries
                .push(end(false, "the alarm rule was deleted".to_owned()));
            continue;
        };
        let Some(hook) = rule.webhooks.get(index as usize) else {
            event.deliveries.push(end(
                false,
                "the webhook was removed from the rule".to_owned(),
            ));
            continue;
        };
        if !rule.actions_enabled {
            event
                .deliveries
                .push(end(false, "actions were disabled on the rule".to_owned()));
            continue;
        }
        let link = notify::link(base, rule, &event);
        let body = notify::body(hook.format, rule, &event, &link);
        match notify::send(client, hook, &event.delivery_id(), body).await {
            Ok(status) => event
                .deliveries
                .push(end(true, format!("answered {status}"))),
            Err(error) if now - event.time > GIVE_UP_AFTER => {
                event
                    .deliveries
                    .push(end(false, format!("gave up after 24 hours: {error}")));
            }
            Err(error) => {
                failures.push(format!("{}: {error}", hook.url));
                still.push(index);
            }
        }
    }
    event.pending = still;
    (event, failures)
}
