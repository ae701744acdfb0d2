//! Sampling rules, groups and daemon telemetry in the SQLite store.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::super::{StoreError, StoredGroup, StoredRule, TelemetryRow};

pub(super) fn read_rules(conn: &Connection) -> Result<Vec<StoredRule>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT rule, created_at, modified_at FROM sampling_rules ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rule, created_at, modified_at) = row?;
        out.push(StoredRule {
            rule: serde_json::from_str(&rule)?,
            created_at,
            modified_at,
        });
    }
    Ok(out)
}

/// The writer's `PutRule` command, in its transaction.
pub(super) fn put_rule(
    tx: &Transaction<'_>,
    rule: StoredRule,
    create: bool,
) -> Result<(), StoreError> {
    let exists: Option<f64> = tx
        .query_row(
            "SELECT created_at FROM sampling_rules WHERE name = ?1",
            [&rule.rule.rule_name],
            |r| r.get(0),
        )
        .optional()?;
    match (exists, create) {
        (Some(_), true) => return Err(StoreError::Exists(rule.rule.rule_name)),
        (None, false) => return Err(StoreError::NotFound(rule.rule.rule_name)),
        _ => {}
    }
    tx.execute(
        "INSERT OR REPLACE INTO sampling_rules (name, rule, created_at, modified_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            rule.rule.rule_name,
            serde_json::to_string(&rule.rule)?,
            exists.unwrap_or(rule.created_at),
            rule.modified_at
        ],
    )?;
    Ok(())
}

/// The writer's `DeleteRule` command, in its transaction.
pub(super) fn delete_rule(tx: &Transaction<'_>, name: String) -> Result<StoredRule, StoreError> {
    let rule = read_rules(tx)?
        .into_iter()
        .find(|r| r.rule.rule_name == name)
        .ok_or_else(|| StoreError::NotFound(name.clone()))?;
    tx.execute("DELETE FROM sampling_rules WHERE name = ?1", [&name])?;
    Ok(rule)
}

/// The writer's `PutGroup` command, in its transaction.
pub(super) fn put_group(
    tx: &Transaction<'_>,
    group: StoredGroup,
    create: bool,
) -> Result<(), StoreError> {
    let exists: Option<String> = tx
        .query_row(
            "SELECT name FROM groups WHERE name = ?1",
            [&group.name],
            |r| r.get(0),
        )
        .optional()?;
    match (exists.is_some(), create) {
        (true, true) => return Err(StoreError::Exists(group.name)),
        (false, false) => return Err(StoreError::NotFound(group.name)),
        _ => {}
    }
    tx.execute(
        "INSERT OR REPLACE INTO groups (name, body) VALUES (?1, ?2)",
        params![group.name, serde_json::to_string(&group)?],
    )?;
    Ok(())
}

/// The writer's `DeleteGroup` command, in its transaction.
pub(super) fn delete_group(tx: &Transaction<'_>, name: String) -> Result<(), StoreError> {
    let n = tx.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
    if n == 0 {
        return Err(StoreError::NotFound(name));
    }
    Ok(())
}

/// The writer's `Telemetry` command, in its transaction.
pub(super) fn put_telemetry(
    tx: &Transaction<'_>,
    rows: Vec<TelemetryRow>,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO telemetry (received_at, hostname, instance_id, record) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in rows {
        stmt.execute(params![r.received_at, r.hostname, r.instance_id, r.record])?;
    }
    Ok(())
}
