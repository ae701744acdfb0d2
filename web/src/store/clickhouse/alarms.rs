//! Alarm rules, alarm events, leases and insights: versioned rows, the newest version of each key wins
//! (`argMax`), like the sampling rules and groups.

use std::time::Duration;

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::quote;
use super::rowbinary::RowBinary;
use super::writer::now_nanos;
use crate::store::{AlarmEvent, EventQuery, StoreError, StoredAlarm};

/// How long a claimant waits after writing its claim before reading who won: longer than one
/// insert takes, so two collectors claiming together both see both claims, and agree.
const CLAIM_SETTLE: Duration = Duration::from_millis(500);

impl ClickhouseStore {
    pub(super) async fn read_alarm_rules(&self) -> Result<Vec<StoredAlarm>, StoreError> {
        self.read_named("alarm_rules").await
    }

    async fn write_alarm_rule(&self, alarm: &StoredAlarm, deleted: bool) -> Result<(), StoreError> {
        self.write_named("alarm_rules", &alarm.rule.name, alarm, deleted)
            .await
    }

    pub(super) async fn save_alarm_rule(
        &self,
        alarm: StoredAlarm,
        create: bool,
    ) -> Result<(), StoreError> {
        let existing = self
            .read_alarm_rules()
            .await?
            .into_iter()
            .find(|a| a.rule.name == alarm.rule.name);
        let created_at = match (existing, create) {
            (Some(_), true) => return Err(StoreError::Exists(alarm.rule.name)),
            (None, false) => return Err(StoreError::NotFound(alarm.rule.name)),
            (Some(e), false) => e.created_at,
            (None, true) => alarm.created_at,
        };
        self.write_alarm_rule(
            &StoredAlarm {
                created_at,
                ..alarm
            },
            false,
        )
        .await
    }

    pub(super) async fn remove_alarm_rule(&self, name: String) -> Result<(), StoreError> {
        let alarm = self
            .read_alarm_rules()
            .await?
            .into_iter()
            .find(|a| a.rule.name == name)
            .ok_or(StoreError::NotFound(name))?;
        self.write_alarm_rule(&alarm, true).await
    }

    pub(super) async fn write_alarm_events(
        &self,
        events: Vec<AlarmEvent>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let version = now_nanos();
        let mut w = RowBinary::default();
        for e in &events {
            w.string(&e.alarm)
                .u64(e.seq)
                .u8(u8::from(!e.pending.is_empty()))
                .f64(e.time)
                .string(&serde_json::to_string(e)?)
                .u64(version);
        }
        self.conn.insert("alarm_events", w).await
    }

    pub(super) async fn read_alarm_events(
        &self,
        q: EventQuery,
    ) -> Result<Vec<AlarmEvent>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            body: String,
        }
        let only = match &q.alarm {
            Some(name) => format!("WHERE alarm = {}", quote(name)),
            None => String::new(),
        };
        let pending = if q.pending_only {
            "HAVING argMax(pending, version) = 1"
        } else {
            ""
        };
        let sql = if q.latest_only {
            format!(
                "SELECT argMax(body, (seq, version)) AS body FROM alarm_events {only}
                 GROUP BY alarm {pending_latest} ORDER BY argMax(time, (seq, version)) DESC LIMIT {limit}",
                pending_latest = if q.pending_only {
                    "HAVING argMax(pending, (seq, version)) = 1"
                } else {
                    ""
                },
                limit = q.limit
            )
        } else {
            format!(
                "SELECT argMax(body, version) AS body FROM alarm_events {only}
                 GROUP BY alarm, seq {pending} ORDER BY argMax(time, version) DESC, seq DESC
                 LIMIT {limit}",
                limit = q.limit
            )
        };
        let rows: Vec<Row> = self.conn.select(&sql).await?;
        rows.into_iter()
            .map(|r| Ok(serde_json::from_str(&r.body)?))
            .collect()
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, f64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            holder: String,
            expires: f64,
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT argMax(holder, version) AS holder, argMax(expires, version) AS expires
                 FROM leases WHERE name = {} GROUP BY name",
                quote(name)
            ))
            .await?;
        Ok(rows.into_iter().next().map(|r| (r.holder, r.expires)))
    }

    /// A lease without transactions: a holder renews its own lease by writing a newer row;
    /// anyone may claim an expired one by writing a row, waiting [`CLAIM_SETTLE`] and reading
    /// back, and the newest row (the last claim) wins for every reader alike.
    pub(super) async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: f64,
        ttl: f64,
    ) -> Result<bool, StoreError> {
        let current = self.lease_holder(name).await?;
        let renewing = match &current {
            Some((h, _)) if h == holder => true,
            Some((_, expires)) if *expires >= now => return Ok(false),
            _ => false,
        };
        let mut w = RowBinary::default();
        w.string(name)
            .string(holder)
            .f64(now + ttl)
            .u64(now_nanos());
        self.conn.insert("leases", w).await?;
        if renewing {
            return Ok(true);
        }
        tokio::time::sleep(CLAIM_SETTLE).await;
        Ok(self
            .lease_holder(name)
            .await?
            .is_some_and(|(h, _)| h == holder))
    }

    pub(super) async fn write_insights(
        &self,
        insights: Vec<crate::insights::Insight>,
    ) -> Result<(), StoreError> {
        if insights.is_empty() {
            return Ok(());
        }
        let version = now_nanos();
        let mut w = RowBinary::default();
        for i in &insights {
            w.string(&i.insight_id)
                .f64(i.start_time)
                .f64(i.end_time.unwrap_or(-1.0))
                .string(&serde_json::to_string(i)?)
                .u64(version);
        }
        self.conn.insert("insights", w).await
    }

    pub(super) async fn read_insights(
        &self,
        start: f64,
        end: f64,
        id: Option<String>,
        limit: usize,
    ) -> Result<Vec<crate::insights::Insight>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            body: String,
        }
        let only = match &id {
            Some(id) => format!("WHERE id = {}", quote(id)),
            None => String::new(),
        };
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT argMax(body, version) AS body, argMax(start_time, version) AS s,
                        argMax(end_time, version) AS e
                 FROM insights {only} GROUP BY id
                 HAVING s <= {end} AND (e < 0 OR e >= {start}) ORDER BY s DESC LIMIT {limit}",
                end = super::connection::number(end),
                start = super::connection::number(start),
            ))
            .await?;
        rows.into_iter()
            .map(|r| Ok(serde_json::from_str(&r.body)?))
            .collect()
    }
}
