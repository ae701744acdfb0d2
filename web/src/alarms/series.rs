//! The rollups alarm rounds read: a recent window of per-minute statistics per node and edge,
//! kept between rounds (each round reads again only the minutes that may still change and the
//! ones it has not seen), and each rule's periods summed from it.

use std::collections::{BTreeMap, HashMap};

use crate::assembly::NodeKey;
use crate::graph::{Entity, EntityStats, Side, Stats};
use crate::store::{RollupRow, Store, StoreError};

/// Minutes before the newest that every round reads again: pieces of a trace arrive after
/// its start minute (long requests, daemon batching), changing those minutes' rollups.
pub const REREAD_MINUTES: i64 = 5;

/// One node (`dst` absent) or edge.
pub type Key = (NodeKey, Option<NodeKey>);

/// Per-minute statistics of every node and edge over a window of minutes.
#[derive(Debug, Default)]
pub struct RollupWindow {
    series: HashMap<Key, BTreeMap<i64, Stats>>,
    /// Minutes read, `first..=last`; `None` before the first read.
    span: Option<(i64, i64)>,
    by_name: HashMap<String, Vec<Key>>,
}

impl RollupWindow {
    /// Brings the window to minutes `first..=last`: forgets older minutes, reads what is new
    /// and the last [`REREAD_MINUTES`] it had.
    pub async fn refresh(
        &mut self,
        store: &dyn Store,
        first: i64,
        last: i64,
    ) -> Result<(), StoreError> {
        let read_from = match self.span {
            Some((have_first, have_last)) if have_first <= first && have_last >= first => {
                (have_last - REREAD_MINUTES + 1).max(first)
            }
            _ => first,
        };
        let rows = if read_from <= last {
            store.rollups(read_from, last).await?
        } else {
            Vec::new()
        };
        self.replace(first, read_from, last, rows);
        Ok(())
    }

    /// Keeps minutes `first..read_from` as held, replaces `read_from..=last` by `rows`.
    pub fn replace(&mut self, first: i64, read_from: i64, last: i64, rows: Vec<RollupRow>) {
        self.series.retain(|_, minutes| {
            minutes.retain(|m, _| *m >= first && *m < read_from);
            !minutes.is_empty()
        });
        for row in rows {
            if !(read_from..=last).contains(&row.minute) {
                continue;
            }
            let src = NodeKey::decode(&row.src);
            let dst = (!row.dst.is_empty()).then(|| NodeKey::decode(&row.dst));
            self.series
                .entry((src, dst))
                .or_default()
                .entry(row.minute)
                .or_default()
                .merge(&row.stats);
        }
        self.span = Some((first, last));
        self.by_name.clear();
        for key in self.series.keys() {
            self.by_name
                .entry(key.0.name.clone())
                .or_default()
                .push(key.clone());
            if let Some(dst) = &key.1 {
                self.by_name
                    .entry(dst.name.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
    }

    /// The nodes and edges counting for `entity`, with their side.
    pub fn keys_of<'a>(&'a self, entity: &Entity) -> Vec<(&'a Key, Side)> {
        let client = NodeKey::client().name;
        let named: Option<&str> = match entity {
            Entity::Services(sel) => sel.name.as_deref(),
            Entity::Edge(a, b) => a.name.as_deref().or(b.name.as_deref()),
            Entity::All => Some(&client),
        };
        let side = |key: &'a Key| entity.side(&key.0, key.1.as_ref()).map(|s| (key, s));
        match named {
            Some(name) => self
                .by_name
                .get(name)
                .map(|keys| {
                    let mut out: Vec<(&Key, Side)> = Vec::new();
                    for key in keys {
                        if let Some((k, s)) =
                            self.series.get_key_value(key).and_then(|(k, _)| side(k))
                            && !out.iter().any(|(seen, _)| *seen == k)
                        {
                            out.push((k, s));
                        }
                    }
                    out
                })
                .unwrap_or_default(),
            None => self.series.keys().filter_map(side).collect(),
        }
    }

    /// The entity's statistics over minutes `from..to` (epoch minutes); the histogram only
    /// with `histogram` (percentiles need it, rates do not).
    pub fn sum(&self, keys: &[(&Key, Side)], from: i64, to: i64, histogram: bool) -> EntityStats {
        let mut out = EntityStats::default();
        for (key, side) in keys {
            if let Some(minutes) = self.series.get(*key) {
                for (_, stats) in minutes.range(from..to) {
                    if histogram {
                        out.add(*side, stats);
                    } else {
                        out.add_counts(*side, stats);
                    }
                }
            }
        }
        out
    }

    /// Every node's and edge's statistics by minute.
    pub fn series(&self) -> impl Iterator<Item = (&Key, &BTreeMap<i64, Stats>)> {
        self.series.iter()
    }

    /// One node's or edge's statistics by minute.
    pub fn series_of(&self, key: &Key) -> Option<&BTreeMap<i64, Stats>> {
        self.series.get(key)
    }

    /// Nodes and edges held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Per-minute statistics of a group's traces (its filter) over `first..=last`, read whole each
/// round: a group's rollups are made from its matching traces at read time.
pub async fn group_window(
    store: &dyn Store,
    filter: &crate::filter::Expr,
    first: i64,
    last: i64,
) -> Result<RollupWindow, StoreError> {
    let rows = crate::query::filtered_rollups(
        store,
        first as f64 * 60.0,
        (last + 1) as f64 * 60.0 - 0.001,
        filter,
    )
    .await?;
    let mut window = RollupWindow::default();
    window.replace(first, first, last, rows);
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembly::Outcome;

    fn row(minute: i64, src: &str, dst: &str, faults: i64) -> RollupRow {
        let mut stats = Stats::default();
        stats.add(Outcome::Fault, 0.1, faults);
        stats.add(Outcome::Ok, 0.1, 1);
        let key = |n: &str| match n {
            "client" => NodeKey::client().encode(),
            _ => NodeKey {
                name: n.to_owned(),
                kind: String::new(),
            }
            .encode(),
        };
        RollupRow {
            minute,
            src: key(src),
            dst: if dst.is_empty() {
                String::new()
            } else {
                key(dst)
            },
            stats,
        }
    }

    #[test]
    fn a_refresh_keeps_old_minutes_and_replaces_the_reread_ones() {
        let mut w = RollupWindow::default();
        w.replace(
            100,
            100,
            110,
            (100..=110).map(|m| row(m, "pay", "", 1)).collect(),
        );
        let pay = Entity::parse(Some("service(\"pay\")")).unwrap();
        let keys = w.keys_of(&pay);
        assert_eq!(keys.len(), 1);
        assert_eq!(w.sum(&keys, 100, 111, true).service.fault, 11);
        // Minutes 106..=112 read again: 106..=110 now hold 3 faults each; 100 is forgotten.
        w.replace(
            101,
            106,
            112,
            (106..=112).map(|m| row(m, "pay", "", 3)).collect(),
        );
        let keys = w.keys_of(&pay);
        assert_eq!(w.sum(&keys, 0, 200, false).service.fault, 5 + 7 * 3);
        assert_eq!(w.sum(&keys, 106, 107, true).service.fault, 3);
    }

    #[test]
    fn entities_find_their_nodes_and_edges() {
        let mut w = RollupWindow::default();
        w.replace(
            0,
            0,
            0,
            vec![
                row(0, "front", "", 0),
                row(0, "pay", "", 2),
                row(0, "front", "pay", 1),
                row(0, "client", "front", 0),
            ],
        );
        let sides = |text: Option<&str>| {
            let e = Entity::parse(text).unwrap();
            let mut v: Vec<String> = w
                .keys_of(&e)
                .iter()
                .map(|(k, s)| {
                    format!(
                        "{}>{}:{s:?}",
                        k.0.name,
                        k.1.as_ref().map_or("", |d| d.name.as_str())
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            sides(Some("service(\"pay\")")),
            ["front>pay:Edge", "pay>:Service"]
        );
        assert_eq!(sides(Some("edge(\"front\", \"pay\")")), ["front>pay:Edge"]);
        assert_eq!(sides(None), ["client>front:Edge"]);
        assert!(sides(Some("service(\"nobody\")")).is_empty());
    }
}
