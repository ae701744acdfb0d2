//! Alarm rules, alarm events, leases and insights in the SQLite store.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::super::{AlarmEvent, EventQuery, StoreError, StoredAlarm};

pub(super) fn read_rules(conn: &Connection) -> Result<Vec<StoredAlarm>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT body FROM alarm_rules ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

pub(super) fn put_rule(
    tx: &Transaction<'_>,
    alarm: StoredAlarm,
    create: bool,
) -> Result<(), StoreError> {
    let existing: Option<String> = tx
        .query_row(
            "SELECT body FROM alarm_rules WHERE name = ?1",
            [&alarm.rule.name],
            |r| r.get(0),
        )
        .optional()?;
    let created_at = match (existing, create) {
        (Some(_), true) => return Err(StoreError::Exists(alarm.rule.name)),
        (None, false) => return Err(StoreError::NotFound(alarm.rule.name)),
        (Some(body), false) => serde_json::from_str::<StoredAlarm>(&body)?.created_at,
        (None, true) => alarm.created_at,
    };
    let stored = StoredAlarm {
        created_at,
        ..alarm
    };
    tx.execute(
        "INSERT OR REPLACE INTO alarm_rules (name, body) VALUES (?1, ?2)",
        params![stored.rule.name, serde_json::to_string(&stored)?],
    )?;
    Ok(())
}

pub(super) fn delete_rule(tx: &Transaction<'_>, name: String) -> Result<(), StoreError> {
    if tx.execute("DELETE FROM alarm_rules WHERE name = ?1", [&name])? == 0 {
        return Err(StoreError::NotFound(name));
    }
    Ok(())
}

pub(super) fn put_events(tx: &Transaction<'_>, events: Vec<AlarmEvent>) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO alarm_events (alarm, seq, pending, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in events {
        stmt.execute(params![
            e.alarm,
            e.seq as i64,
            !e.pending.is_empty(),
            serde_json::to_string(&e)?
        ])?;
    }
    Ok(())
}

pub(super) fn read_events(
    conn: &Connection,
    q: &EventQuery,
) -> Result<Vec<AlarmEvent>, StoreError> {
    let mut sql = String::from("SELECT body FROM alarm_events e WHERE (?1 IS NULL OR alarm = ?1)");
    if q.pending_only {
        sql.push_str(" AND pending = 1");
    }
    if q.latest_only {
        sql.push_str(" AND seq = (SELECT max(seq) FROM alarm_events l WHERE l.alarm = e.alarm)");
    }
    sql.push_str(" ORDER BY json_extract(body, '$.Time') DESC, seq DESC LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![q.alarm, limit], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

/// Retention of the alarm history and insights (the rule is [`crate::store::Store::delete_before`]'s).
pub(super) fn delete_before(tx: &Transaction<'_>, cutoff: f64) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM alarm_events WHERE pending = 0 AND json_extract(body, '$.Time') < ?1
         AND seq < (SELECT max(l.seq) FROM alarm_events l WHERE l.alarm = alarm_events.alarm)",
        [cutoff],
    )?;
    tx.execute("DELETE FROM insights WHERE end_time < ?1", [cutoff])?;
    Ok(())
}

pub(super) fn take_lease(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    now: f64,
    ttl: f64,
) -> Result<bool, StoreError> {
    let changed = tx.execute(
        "INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
         WHERE leases.holder = excluded.holder OR leases.expires < ?4",
        params![name, holder, now + ttl, now],
    )?;
    Ok(changed > 0)
}

pub(super) fn put_insights(
    tx: &Transaction<'_>,
    insights: Vec<crate::insights::Insight>,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO insights (id, start_time, end_time, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for i in insights {
        stmt.execute(params![
            i.insight_id,
            i.start_time,
            i.end_time,
            serde_json::to_string(&i)?
        ])?;
    }
    Ok(())
}

pub(super) fn read_insights(
    conn: &Connection,
    start: f64,
    end: f64,
    id: Option<&str>,
    limit: usize,
) -> Result<Vec<crate::insights::Insight>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM insights WHERE (?1 IS NULL OR id = ?1) AND start_time <= ?3
         AND (end_time IS NULL OR end_time >= ?2) ORDER BY start_time DESC LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![id, start, end, limit], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}
