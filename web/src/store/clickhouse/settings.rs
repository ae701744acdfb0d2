//! Sampling rules and groups: versioned rows, the newest version of each name wins
//! (`argMax`), a delete is a newer row marked deleted.

use std::time::Duration;

use serde::Deserialize;

use super::ClickhouseStore;
use super::rowbinary::RowBinary;
use super::writer::now_nanos;
use crate::sampling::DEFAULT_RULE;
use crate::store::{StoreError, StoredGroup, StoredRule};

impl ClickhouseStore {
    /// Inserts the default sampling rule unless a collector already did.
    pub(super) async fn ensure_default_rule(&self) -> Result<(), StoreError> {
        if !self.default_rule_exists().await? {
            let now = crate::store::now_seconds();
            // Version 1: any later edit (versioned by the clock) wins over a default inserted
            // by another collector starting at the same time.
            self.write_rule(
                &StoredRule {
                    rule: crate::sampling::default_rule(),
                    created_at: now,
                    modified_at: now,
                },
                false,
                1,
            )
            .await?;
        }
        Ok(())
    }

    /// Whether the default sampling rule exists. In a cluster the shared tables answer only
    /// once every shard has its local tables (each shard's first collector creates them), so
    /// this waits for that, bounded, telling the operator what it waits for.
    async fn default_rule_exists(&self) -> Result<bool, StoreError> {
        let mut attempts = 0;
        loop {
            match self.read_rules().await {
                Ok(rules) => return Ok(rules.iter().any(|r| r.rule.rule_name == DEFAULT_RULE)),
                Err(e) if self.conn.config.cluster.is_some() && attempts < 120 => {
                    attempts += 1;
                    if attempts % 10 == 1 {
                        tracing::warn!(error = %e, cluster = ?self.conn.config.cluster, "waiting for every shard of the cluster to have the schema (start a collector against each shard)");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(StoreError::Open(format!("reading the sampling rules: {e}")));
                }
            }
        }
    }

    pub(super) async fn read_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            rule: String,
            created_at: f64,
            modified_at: f64,
            deleted: u8,
        }
        let rows: Vec<Row> = self
            .conn
            .select(
                "SELECT name, argMax(rule, version) AS rule, argMax(created_at, version) AS created_at,
                        argMax(modified_at, version) AS modified_at, argMax(deleted, version) AS deleted
                 FROM sampling_rules GROUP BY name ORDER BY name",
            )
            .await?;
        rows.into_iter()
            .filter(|r| r.deleted == 0)
            .map(|r| {
                Ok(StoredRule {
                    rule: serde_json::from_str(&r.rule)?,
                    created_at: r.created_at,
                    modified_at: r.modified_at,
                })
            })
            .collect()
    }

    pub(super) async fn write_rule(
        &self,
        rule: &StoredRule,
        deleted: bool,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        w.string(&rule.rule.rule_name)
            .string(&serde_json::to_string(&rule.rule)?)
            .f64(rule.created_at)
            .f64(rule.modified_at)
            .u8(u8::from(deleted))
            .u64(version);
        self.conn.insert("sampling_rules", w).await
    }

    /// The newest body of each name in a `(name, body, deleted, version)` table, deleted ones
    /// left out (groups, alarm rules).
    pub(super) async fn read_named<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
    ) -> Result<Vec<T>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            body: String,
            deleted: u8,
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT name, argMax(body, version) AS body, argMax(deleted, version) AS deleted
                 FROM {table} GROUP BY name ORDER BY name"
            ))
            .await?;
        rows.into_iter()
            .filter(|r| r.deleted == 0)
            .map(|r| Ok(serde_json::from_str(&r.body)?))
            .collect()
    }

    /// Appends a newer version of `name`'s body (or its deletion) to a named table.
    pub(super) async fn write_named<T: serde::Serialize>(
        &self,
        table: &str,
        name: &str,
        body: &T,
        deleted: bool,
    ) -> Result<(), StoreError> {
        let mut w = RowBinary::default();
        w.string(name)
            .string(&serde_json::to_string(body)?)
            .u8(u8::from(deleted))
            .u64(now_nanos());
        self.conn.insert(table, w).await
    }

    pub(super) async fn read_groups(&self) -> Result<Vec<StoredGroup>, StoreError> {
        self.read_named("groups").await
    }

    pub(super) async fn write_group(
        &self,
        group: &StoredGroup,
        deleted: bool,
    ) -> Result<(), StoreError> {
        self.write_named("groups", &group.name, group, deleted)
            .await
    }

    /// Creates (`create`) or replaces a rule, keeping its creation time.
    pub(super) async fn save_rule(&self, rule: StoredRule, create: bool) -> Result<(), StoreError> {
        let existing = self
            .read_rules()
            .await?
            .into_iter()
            .find(|r| r.rule.rule_name == rule.rule.rule_name);
        match (&existing, create) {
            (Some(_), true) => return Err(StoreError::Exists(rule.rule.rule_name)),
            (None, false) => return Err(StoreError::NotFound(rule.rule.rule_name)),
            _ => {}
        }
        let stored = StoredRule {
            created_at: existing.map(|e| e.created_at).unwrap_or(rule.created_at),
            ..rule
        };
        self.write_rule(&stored, false, now_nanos()).await
    }

    /// Deletes a rule; returns what it was.
    pub(super) async fn remove_rule(&self, name: String) -> Result<StoredRule, StoreError> {
        let rule = self
            .read_rules()
            .await?
            .into_iter()
            .find(|r| r.rule.rule_name == name)
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        self.write_rule(&rule, true, now_nanos()).await?;
        Ok(rule)
    }

    /// Creates (`create`) or replaces a group.
    pub(super) async fn save_group(
        &self,
        group: StoredGroup,
        create: bool,
    ) -> Result<(), StoreError> {
        let exists = self
            .read_groups()
            .await?
            .iter()
            .any(|g| g.name == group.name);
        match (exists, create) {
            (true, true) => return Err(StoreError::Exists(group.name)),
            (false, false) => return Err(StoreError::NotFound(group.name)),
            _ => {}
        }
        self.write_group(&group, false).await
    }

    /// Deletes a group.
    pub(super) async fn remove_group(&self, name: String) -> Result<(), StoreError> {
        let group = self
            .read_groups()
            .await?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        self.write_group(&group, true).await
    }
}
