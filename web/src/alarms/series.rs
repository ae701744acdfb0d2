//! The rollups alarm rounds read: a recent window of per-minute statistics per node and edge,
//! kept between rounds (each round reads again only the minutes that may still change and the
//! ones it has not seen), and each rule's periods summed from it.

use std::collections::BTreeMap;

use super::metric::Metric;
use crate::assembly::NodeKey;
use crate::graph::{Entity, EntityStats, FastMap, Side, Stats};
use crate::store::{RollupRow, Store, StoreError};

/// Minutes before the newest that every round reads again: pieces of a trace arrive after
/// its start minute (long requests, daemon batching), changing those minutes' rollups.
pub const REREAD_MINUTES: i64 = 5;

/// One node (`dst` absent) or edge.
pub type Key = (NodeKey, Option<NodeKey>);

/// Per-minute statistics of every node and edge over a window of minutes.
#[derive(Debug, Default)]
pub struct RollupWindow {
    series: FastMap<Key, BTreeMap<i64, Stats>>,
    /// Each held minute's request count and p90 response time (as [`Metric::value`] gives
    /// it), computed once when the minute is read: insight detection judges every minute
    /// against two hours of them, and a percentile walks the minute's whole histogram.
    p90: FastMap<Key, BTreeMap<i64, (i64, Option<f64>)>>,
    /// Minutes read, `first..=last`; `None` before the first read.
    span: Option<(i64, i64)>,
    by_name: FastMap<String, Vec<Key>>,
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
        self.refresh_rereading(store, first, last, REREAD_MINUTES)
            .await
    }

    /// Brings a window of settled minutes (yesterday's, last week's) to `first..=last`:
    /// forgets older minutes and reads only the new ones, since no piece of a trace arrives
    /// that late.
    pub async fn extend(
        &mut self,
        store: &dyn Store,
        first: i64,
        last: i64,
    ) -> Result<(), StoreError> {
        self.refresh_rereading(store, first, last, 0).await
    }

    async fn refresh_rereading(
        &mut self,
        store: &dyn Store,
        first: i64,
        last: i64,
        reread: i64,
    ) -> Result<(), StoreError> {
        let read_from = match self.span {
            Some((have_first, have_last)) if have_first <= first && have_last >= first => {
                (have_last - reread + 1).max(first)
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
        // Cut each series at both ends (a round drops a minute or so and replaces a few):
        // walking every held minute instead cost most of a round.
        for minutes in self.series.values_mut() {
            cut(minutes, first, read_from);
        }
        for minutes in self.p90.values_mut() {
            cut(minutes, first, read_from);
        }
        let mut keys_changed = false;
        for row in rows {
            if !(read_from..=last).contains(&row.minute) {
                continue;
            }
            let src = NodeKey::decode(&row.src);
            let dst = (!row.dst.is_empty()).then(|| NodeKey::decode(&row.dst));
            let minutes = match self.series.entry((src, dst)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    keys_changed = true;
                    e.insert(BTreeMap::new())
                }
            };
            minutes.entry(row.minute).or_default().merge(&row.stats);
        }
        let held = self.series.len();
        self.series.retain(|_, minutes| !minutes.is_empty());
        keys_changed |= self.series.len() != held;
        for (key, minutes) in &self.series {
            let read = minutes.range(read_from..);
            let memo = match self.p90.get_mut(key) {
                Some(memo) => memo,
                None => self.p90.entry(key.clone()).or_default(),
            };
            for (minute, stats) in read {
                memo.insert(*minute, (stats.total(), Metric::P90.value(stats, 60, 0)));
            }
        }
        self.span = Some((first, last));
        if !keys_changed {
            return;
        }
        let series = &self.series;
        self.p90.retain(|key, _| series.contains_key(key));
        self.by_name.clear();
        for key in self.series.keys() {
            self.by_name
                .entry(key.0.name.clone())
                .or_default()
                .push(key.clone());
            // Listed once under each name it holds (a call to itself once).
            if let Some(dst) = key.1.as_ref().filter(|dst| dst.name != key.0.name) {
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
                .map(|keys| keys.iter().filter_map(side).collect())
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

    /// The p90 response times of `key`'s minutes in `minutes` that had at least
    /// `min_requests` requests (minutes without a value left out).
    pub fn p90s(
        &self,
        key: &Key,
        minutes: impl std::ops::RangeBounds<i64>,
        min_requests: i64,
    ) -> impl Iterator<Item = f64> + '_ {
        self.p90
            .get(key)
            .map(move |memo| memo.range(minutes))
            .into_iter()
            .flatten()
            .filter(move |(_, (total, _))| *total >= min_requests)
            .filter_map(|(_, (_, p90))| *p90)
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

/// Keeps the minutes of `minutes` from `first` up to (not including) `read_from`.
fn cut<V>(minutes: &mut BTreeMap<i64, V>, first: i64, read_from: i64) {
    if minutes.first_key_value().is_some_and(|(m, _)| *m < first) {
        *minutes = minutes.split_off(&first);
    }
    if minutes
        .last_key_value()
        .is_some_and(|(m, _)| *m >= read_from)
    {
        drop(minutes.split_off(&read_from));
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
    fn the_p90_memo_follows_rereads_and_forgets_old_minutes() {
        let slow = |minute: i64, seconds: f64| {
            let mut r = row(minute, "pay", "", 0);
            r.stats.add(Outcome::Ok, seconds, 20);
            r
        };
        let mut w = RollupWindow::default();
        w.replace(
            100,
            100,
            110,
            (100..=110)
                .map(|m| slow(m, 0.01 * (m - 99) as f64))
                .collect(),
        );
        let key = w.series().next().unwrap().0.clone();
        let computed = |w: &RollupWindow| -> Vec<f64> {
            w.series_of(&key)
                .unwrap()
                .values()
                .filter_map(|s| Metric::P90.value(s, 60, 0))
                .collect()
        };
        let memo: Vec<f64> = w.p90s(&key, 0..200, 10).collect();
        assert_eq!(memo.len(), 11);
        assert_eq!(memo, computed(&w));
        // Minutes 106..=112 read again, slower now; 100 is forgotten.
        w.replace(101, 106, 112, (106..=112).map(|m| slow(m, 2.0)).collect());
        let memo: Vec<f64> = w.p90s(&key, 0..200, 10).collect();
        assert_eq!(memo.len(), 12);
        assert_eq!(memo, computed(&w));
        let two_seconds = Metric::P90.value(&slow(0, 2.0).stats, 60, 0).unwrap();
        assert_eq!(memo[5..], [two_seconds; 7]);
        assert_eq!(w.p90s(&key, 0..200, 1_000).count(), 0, "too few requests");
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
