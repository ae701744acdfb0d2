//! Two traces compared row by row: their timelines ([`timeline::build`]) aligned by the path
//! of names from the root (service › subsegment › …), repeated calls matched by their order
//! among same-named siblings. Each aligned row has both durations, its own (exclusive) time in
//! each, what is only in one trace, and each trace's critical path; the rows whose own time
//! differs most come first, so the work that made one trace slower leads.

use std::collections::HashMap;

use serde_json::Value;

use super::timeline::{self, Row, Timeline};

/// One trace's side of an aligned row.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// Segment or subsegment id.
    pub id: String,
    /// Start, seconds from its trace's start.
    pub offset: f64,
    /// Duration, seconds.
    pub duration: f64,
    /// Time not covered by its children, seconds.
    pub own: f64,
    /// On its trace's critical path.
    pub critical: bool,
    /// `ok`, `error`, `throttle`, `fault` or `pending`.
    pub status: &'static str,
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// Names from the root down to this row.
    pub path: Vec<String>,
    /// Its place among same-named siblings (0 for the first call).
    pub occurrence: usize,
    /// Trace A's row, if A has it.
    pub a: Option<Side>,
    /// Trace B's row, if B has it.
    pub b: Option<Side>,
}

impl DiffRow {
    /// B's duration minus A's (a missing side counts as 0).
    pub fn difference(&self) -> f64 {
        self.b.as_ref().map_or(0.0, |s| s.duration) - self.a.as_ref().map_or(0.0, |s| s.duration)
    }

    /// B's own time minus A's: what this row itself adds to the difference.
    pub fn own_difference(&self) -> f64 {
        self.b.as_ref().map_or(0.0, |s| s.own) - self.a.as_ref().map_or(0.0, |s| s.own)
    }
}

/// Two traces compared.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDiff {
    /// Trace A's duration, seconds.
    pub a_duration: f64,
    /// Trace B's duration.
    pub b_duration: f64,
    /// Aligned rows, the largest absolute own difference first (then in A's, then B's, tree
    /// order).
    pub rows: Vec<DiffRow>,
}

/// Compares the assembled documents of trace A with those of trace B.
pub fn compare(a: &[Value], b: &[Value]) -> TraceDiff {
    let (ta, tb) = (timeline::build(a), timeline::build(b));
    let mut keys = Keys::default();
    // Keys borrow the rows' names: both timelines outlive them.
    let ka = keys.of(&ta);
    let kb = keys.of(&tb);
    let mut rows: Vec<DiffRow> = Vec::with_capacity(ta.rows.len().max(tb.rows.len()));
    let mut at: Vec<Option<usize>> = vec![None; keys.paths.len()];
    for (timeline, slots, is_a) in [(&ta, &ka, true), (&tb, &kb, false)] {
        let own = own_times(&timeline.rows);
        for (i, r) in timeline.rows.iter().enumerate() {
            let key = slots[i];
            let side = Side {
                id: r.id.clone(),
                offset: r.offset,
                duration: r.duration,
                own: own[i],
                critical: r.critical,
                status: r.status,
            };
            let row = match at[key] {
                Some(k) => &mut rows[k],
                None => {
                    at[key] = Some(rows.len());
                    let (path, occurrence) = keys.path(key);
                    rows.push(DiffRow {
                        path,
                        occurrence,
                        a: None,
                        b: None,
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            if is_a {
                row.a = Some(side);
            } else {
                row.b = Some(side);
            }
        }
    }
    // Stable: equal differences keep tree order.
    rows.sort_by(|x, y| {
        y.own_difference()
            .abs()
            .total_cmp(&x.own_difference().abs())
    });
    TraceDiff {
        a_duration: ta.duration,
        b_duration: tb.duration,
        rows,
    }
}

/// Aligned-row keys: `(parent key, name, occurrence)` interned, shared by both traces.
#[derive(Default)]
struct Keys<'t> {
    ids: HashMap<(usize, &'t str, usize), usize>,
    /// Per key: parent key (`usize::MAX` for a root), name, occurrence.
    paths: Vec<(usize, &'t str, usize)>,
}

impl<'t> Keys<'t> {
    /// The key of each row of `t`, in row order.
    fn of(&mut self, t: &'t Timeline) -> Vec<usize> {
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(t.rows.len());
        let mut seen: HashMap<(usize, &str), usize> = HashMap::new();
        let mut out = Vec::with_capacity(t.rows.len());
        for r in &t.rows {
            let parent = r
                .parent
                .as_deref()
                .and_then(|p| by_id.get(p).copied())
                .unwrap_or(usize::MAX);
            let n = seen.entry((parent, r.name.as_str())).or_insert(0);
            let occurrence = *n;
            *n += 1;
            let next = self.paths.len();
            let name = r.name.as_str();
            let key = *self.ids.entry((parent, name, occurrence)).or_insert(next);
            if key == next {
                self.paths.push((parent, name, occurrence));
            }
            by_id.insert(r.id.as_str(), key);
            out.push(key);
        }
        out
    }

    /// Names from the root to `key`, and its occurrence.
    fn path(&self, key: usize) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut k = key;
        while let Some((parent, name, _)) = self.paths.get(k) {
            names.push((*name).to_owned());
            k = *parent;
        }
        names.reverse();
        (names, self.paths[key].2)
    }
}

/// Each row's own time: its duration less the union of its children's spans within it.
fn own_times(rows: &[Row]) -> Vec<f64> {
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<(f64, f64)>> = vec![Vec::new(); rows.len()];
    for r in rows {
        if let Some(p) = r.parent.as_deref().and_then(|p| index.get(p)) {
            children[*p].push((r.offset, r.offset + r.duration));
        }
    }
    rows.iter()
        .zip(children.iter_mut())
        .map(|(r, spans)| {
            let (lo, hi) = (r.offset, r.offset + r.duration);
            spans.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut covered = 0.0;
            let mut cursor = lo;
            for &(s, e) in spans.iter() {
                let (s, e) = (s.max(cursor), e.min(hi));
                if e > s {
                    covered += e - s;
                    cursor = e;
                }
            }
            (r.duration - covered).max(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A checkout trace: `web` calls `orders` (with `n_queries` DynamoDB queries of
    /// `query_ms` each) and then `payments` taking `payment_ms`.
    fn trace(n_queries: usize, query_ms: f64, payment_ms: f64) -> Vec<Value> {
        let t = 1_800_000_000.0;
        let mut queries = Vec::new();
        let mut at = t + 0.002;
        for k in 0..n_queries {
            queries.push(
                json!({"name": "DynamoDB", "id": format!("{:016x}", 0x100 + k), "namespace": "aws",
                "start_time": at, "end_time": at + query_ms / 1e3}),
            );
            at += query_ms / 1e3;
        }
        let orders_end = at + 0.001;
        let pay_end = orders_end + payment_ms / 1e3;
        let web = json!({"name": "web", "id": "00000000000000a1", "trace_id": "1-6b5f4200-000000000000000000000001",
        "start_time": t, "end_time": pay_end + 0.001,
        "subsegments": [
            {"name": "orders", "id": "00000000000000a2", "namespace": "remote", "start_time": t + 0.001, "end_time": orders_end},
            {"name": "payments", "id": "00000000000000a3", "namespace": "remote", "start_time": orders_end, "end_time": pay_end}
        ]});
        let orders = json!({"name": "orders", "id": "00000000000000b1", "trace_id": "1-6b5f4200-000000000000000000000001",
            "parent_id": "00000000000000a2", "start_time": t + 0.0015, "end_time": orders_end - 0.0005,
            "subsegments": queries});
        vec![web, orders]
    }

    fn names(row: &DiffRow) -> String {
        format!("{}#{}", row.path.join(" › "), row.occurrence)
    }

    #[test]
    fn the_slow_call_leads_and_repeated_calls_are_matched_in_order() {
        let fast = trace(3, 2.0, 5.0);
        let slow = trace(3, 2.0, 80.0);
        let d = compare(&fast, &slow);
        assert_eq!(names(&d.rows[0]), "web › payments#0");
        assert!(
            (d.rows[0].own_difference() - 0.075).abs() < 1e-5,
            "{:?}",
            d.rows[0]
        );
        assert!((d.b_duration - d.a_duration - 0.075).abs() < 1e-5);
        // Every row is in both; the three queries are three rows, matched by order.
        assert!(d.rows.iter().all(|r| r.a.is_some() && r.b.is_some()));
        let queries: Vec<String> = d
            .rows
            .iter()
            .filter(|r| r.path.last().is_some_and(|n| n == "DynamoDB"))
            .map(names)
            .collect();
        assert_eq!(queries.len(), 3);
        assert!(queries.contains(&"web › orders › orders › DynamoDB#2".to_owned()));
        // The slow payment is on B's critical path.
        assert!(d.rows[0].b.as_ref().unwrap().critical);
    }

    #[test]
    fn rows_only_in_one_trace_are_kept_with_their_own_time() {
        let d = compare(&trace(2, 10.0, 5.0), &trace(5, 10.0, 5.0));
        let only_b: Vec<&DiffRow> = d.rows.iter().filter(|r| r.a.is_none()).collect();
        assert_eq!(only_b.len(), 3, "three more queries in B");
        // Three extra 10 ms queries lead; the orders segment's own time barely changes.
        for r in &d.rows[..3] {
            assert!(r.a.is_none(), "{}", names(r));
            assert!((r.own_difference() - 0.010).abs() < 1e-5);
        }
        assert!(d.rows.iter().all(|r| r.b.is_some()));
    }

    #[test]
    fn own_time_is_duration_less_what_children_cover() {
        let d = compare(&trace(3, 2.0, 5.0), &trace(3, 2.0, 5.0));
        let web = d.rows.iter().find(|r| r.path == ["web"]).unwrap();
        let a = web.a.as_ref().unwrap();
        // web: 1 ms before orders, 1 ms after payments.
        assert!((a.own - 0.002).abs() < 1e-5, "{a:?}");
        assert!(d.rows.iter().all(|r| r.own_difference().abs() < 1e-5));
    }
}
