//! Reads: trace summaries (by id and by scan with pushed-down filters) and the stored
//! documents of traces (`BatchGetTraces`).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::{IDS_PER_QUERY, id_list, number, quote};
use super::schema::annotation_pair;
use crate::assembly::{TraceSummary, replaces};
use crate::store::{Pushdown, ScanQuery, StoreError, StoredDocument, StoredTrace, TraceRecord};

/// One fold's summary and samples (`''` when not asked for), as read by a scan.
#[derive(Deserialize)]
pub(super) struct FoldBody {
    trace_id: String,
    fold: u64,
    pub(super) summary: String,
    pub(super) samples: String,
}

/// A fold row as a scan reads it, in scan order.
#[derive(Debug, Deserialize)]
struct FoldRow {
    trace_id: String,
    version: u64,
    fold: u64,
    start_time: f64,
}

/// A trace's newest fold, read after a scan's page of rows, and whether it is in the scan's
/// window and passes its pushed-down filters.
#[derive(Debug, Deserialize)]
struct Newest {
    trace_id: String,
    #[serde(rename = "newest_version")]
    version: u64,
    #[serde(rename = "newest_fold")]
    fold: u64,
    #[serde(rename = "newest_start")]
    start_time: f64,
    matches: u8,
}

/// Which `(trace, fold)` a page of scan `rows` answers, at most `room`, in scan order, each
/// trace once (`seen` carries over the scan's pages). A row is chosen when it is its trace's
/// newest fold. A fold written between reading the rows and reading the newest is chosen in
/// place of the row it replaces when the scan has already passed its place (same start, a
/// greater fold id), so a trace being written is never skipped; a newer fold ahead of the
/// scan is met later. A trace's start only moves earlier as pieces arrive, so a newer fold is
/// never behind the scan at another start.
fn choose(
    rows: &[FoldRow],
    newest: &HashMap<String, Newest>,
    seen: &mut std::collections::HashSet<String>,
    room: usize,
) -> Vec<(String, u64)> {
    let mut chosen = Vec::new();
    for r in rows {
        if chosen.len() >= room {
            break;
        }
        let Some(n) = newest.get(&r.trace_id) else {
            continue;
        };
        let is_newest = (n.version, n.fold) == (r.version, r.fold);
        let passed = n.matches == 1 && n.start_time == r.start_time && n.fold > r.fold;
        if (is_newest || passed) && seen.insert(r.trace_id.clone()) {
            chosen.push((r.trace_id.clone(), n.fold));
        }
    }
    chosen
}

impl ClickhouseStore {
    /// The newest summaries of `ids` that exist, in the order asked.
    pub(super) async fn traces_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<TraceRecord>, StoreError> {
        let mut found: HashMap<String, TraceRecord> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            for r in self
                .summaries(&format!("trace_id IN ({})", id_list(chunk)))
                .await?
            {
                found.insert(r.summary.id.clone(), r);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn summaries(&self, where_sql: &str) -> Result<Vec<TraceRecord>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            summary: String,
            samples: String,
        }
        let rows: Vec<Row> = self
            .conn
            .select(&format!(
                "SELECT summary, samples FROM traces FINAL WHERE {where_sql}"
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TraceRecord {
                    summary: serde_json::from_str::<TraceSummary>(&r.summary)?,
                    rollup: if r.samples.is_empty() {
                        Default::default()
                    } else {
                        serde_json::from_str(&r.samples)?
                    },
                })
            })
            .collect()
    }

    /// Candidate summaries newest first. Fold rows are read without `FINAL` (which merges
    /// every row of the window first): a page of candidate keys is checked against the newest
    /// fold of its traces (stale folds are skipped, so the answer is the same), and only then
    /// are the chosen summaries read, by key.
    pub(super) async fn scan(&self, q: &ScanQuery) -> Result<Vec<TraceRecord>, StoreError> {
        let mut filters = String::new();
        for p in &q.pushdown {
            filters.push_str(" AND ");
            filters.push_str(&self.predicate_sql(p));
        }
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let fetch = q.limit.saturating_mul(2).saturating_add(16);
        // Past the page token's trace, then past the last row read: its trace's other fold
        // rows with the same start (a page may end among them) come next.
        let mut after: Option<(f64, String, Option<u64>)> =
            q.after.clone().map(|(t, id)| (t, id, None));
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Bounded: each round moves the cursor past `fetch` rows.
        for _ in 0..1_000 {
            // PREWHERE: the filter columns are read first, the rest only where they match.
            let mut sql = format!(
                "SELECT trace_id, version, fold, start_time FROM traces
                 PREWHERE start_time >= {} AND start_time <= {}{filters}",
                number(q.start),
                number(q.end)
            );
            if let Some((t, id, fold)) = &after {
                let id = quote(id);
                let same_trace = fold
                    .map(|f| format!(" OR (trace_id = {id} AND fold < {f})"))
                    .unwrap_or_default();
                sql.push_str(&format!(
                    " AND (start_time < {t} OR (start_time = {t} AND (trace_id < {id}{same_trace})))",
                    t = number(*t)
                ));
            }
            sql.push_str(&format!(
                " ORDER BY start_time DESC, trace_id DESC, fold DESC LIMIT {fetch}"
            ));
            let rows: Vec<FoldRow> = self.conn.select(&sql).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some((last.start_time, last.trace_id.clone(), Some(last.fold)));
            let ids: Vec<String> = rows.iter().map(|r| r.trace_id.clone()).collect();
            let mut newest: HashMap<String, Newest> = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let found: Vec<Newest> = self
                    .conn
                    .select(&format!(
                        "SELECT trace_id, max(version) AS newest_version,
                                argMax(fold, version) AS newest_fold,
                                argMax(start_time, version) AS newest_start,
                                argMax(toUInt8(start_time >= {} AND start_time <= {}{filters}),
                                       version) AS matches
                         FROM traces WHERE trace_id IN ({}) GROUP BY trace_id",
                        number(q.start),
                        number(q.end),
                        id_list(chunk)
                    ))
                    .await?;
                newest.extend(found.into_iter().map(|n| (n.trace_id.clone(), n)));
            }
            let complete_page = rows.len() == fetch;
            let room = q.limit - out.len();
            let chosen = choose(&rows, &newest, &mut seen, room);
            let mut bodies = self.fold_bodies(&chosen, q.with_samples).await?;
            for (id, _) in chosen {
                let Some(b) = bodies.remove(&id) else {
                    continue;
                };
                out.push(TraceRecord {
                    summary: serde_json::from_str(&b.summary)?,
                    rollup: if b.samples.is_empty() {
                        Default::default()
                    } else {
                        serde_json::from_str(&b.samples)?
                    },
                });
            }
            if out.len() >= q.limit || !complete_page {
                break;
            }
        }
        Ok(out)
    }

    /// The summaries (and samples, when asked) of the chosen `(trace, fold)` rows, by trace.
    /// A merge may replace a chosen row after it was chosen: by a fold of the same version
    /// (another collector's fold of the same documents) or a newer one. Such a trace gets
    /// its newest row instead, so it is never dropped from the answer.
    pub(super) async fn fold_bodies(
        &self,
        chosen: &[(String, u64)],
        with_samples: bool,
    ) -> Result<HashMap<String, FoldBody>, StoreError> {
        let samples = if with_samples { "samples" } else { "''" };
        let mut bodies: HashMap<String, FoldBody> = HashMap::new();
        for chunk in chosen.chunks(IDS_PER_QUERY) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let folds: Vec<String> = chunk.iter().map(|(_, f)| f.to_string()).collect();
            let found: Vec<FoldBody> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, fold, summary, {samples} AS samples FROM traces
                     PREWHERE trace_id IN ({}) AND fold IN ({})",
                    id_list(&ids),
                    folds.join(",")
                ))
                .await?;
            let wanted: HashMap<&str, u64> =
                chunk.iter().map(|(id, f)| (id.as_str(), *f)).collect();
            for b in found {
                if wanted.get(b.trace_id.as_str()) == Some(&b.fold) {
                    bodies.insert(b.trace_id.clone(), b);
                }
            }
        }
        let replaced: Vec<String> = chosen
            .iter()
            .filter(|(id, _)| !bodies.contains_key(id))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in replaced.chunks(IDS_PER_QUERY) {
            let found: Vec<FoldBody> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, fold, summary, {samples} AS samples FROM traces
                     PREWHERE trace_id IN ({})
                     ORDER BY trace_id, version DESC, fold DESC LIMIT 1 BY trace_id",
                    id_list(chunk)
                ))
                .await?;
            bodies.extend(found.into_iter().map(|b| (b.trace_id.clone(), b)));
        }
        Ok(bodies)
    }

    /// The SQL of one pushed-down predicate over a `traces` row.
    pub(super) fn predicate_sql(&self, p: &Pushdown) -> String {
        match p {
            Pushdown::HasFault(b) => format!("has_fault = {}", u8::from(*b)),
            Pushdown::HasError(b) => format!("has_error = {}", u8::from(*b)),
            Pushdown::HasThrottle(b) => format!("has_throttle = {}", u8::from(*b)),
            Pushdown::HttpStatus(s) => format!("http_status = {s}"),
            Pushdown::ResponseTime(op, v) => {
                format!("response_time {} {}", crate::store::op_sql(op), number(*v))
            }
            Pushdown::Duration(op, v) => {
                format!("duration {} {}", crate::store::op_sql(op), number(*v))
            }
            // `has` on `ann_pairs` lets the bloom filter index skip granules (where the
            // server has one; elsewhere it would only read one more column). A pair with one
            // `=` can only be this key and value; with more, the keys and texts decide.
            Pushdown::AnnotationEquals(k, v) => {
                let exact = format!(
                    "arrayExists((k, v) -> k = {} AND v = {}, ann_keys, ann_text)",
                    quote(k),
                    quote(v)
                );
                let pair = annotation_pair(k, v);
                match (self.features.skip_indexes, pair.matches('=').count()) {
                    (true, 1) => format!("has(ann_pairs, {})", quote(&pair)),
                    (true, _) => format!("has(ann_pairs, {}) AND {exact}", quote(&pair)),
                    (false, _) => exact,
                }
            }
            Pushdown::AnnotationNumber(k, op, v) => format!(
                "arrayExists((k, n) -> k = {} AND n {} {}, ann_keys, ann_number)",
                quote(k),
                crate::store::op_sql(op),
                number(*v)
            ),
            Pushdown::AnnotationExists(k) => format!("has(ann_keys, {})", quote(k)),
            Pushdown::Service(name) => format!("has(services, {})", quote(name)),
            Pushdown::TraceId(id) => format!("trace_id = {}", quote(id)),
        }
    }

    pub(super) async fn documents(&self, ids: Vec<String>) -> Result<Vec<StoredTrace>, StoreError> {
        #[derive(Deserialize)]
        struct Head {
            trace_id: String,
            duration: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Doc {
            trace_id: String,
            id: String,
            parent_id: Option<String>,
            subsegment: u8,
            start_time: f64,
            in_progress: u8,
            document: String,
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = id_list(chunk);
            let heads: Vec<Head> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, duration FROM traces FINAL WHERE trace_id IN ({list})"
                ))
                .await?;
            let docs: Vec<Doc> = self
                .conn
                .select(&format!(
                    "SELECT trace_id, id, parent_id, subsegment, start_time, in_progress, document
                     FROM segments WHERE trace_id IN ({list})"
                ))
                .await?;
            let mut by_trace: HashMap<String, BTreeMap<String, (u8, StoredDocument)>> =
                HashMap::new();
            for d in docs {
                let slot = by_trace.entry(d.trace_id).or_default();
                let keep = match slot.get(&d.id) {
                    Some((in_progress, _)) => replaces(*in_progress == 1, d.in_progress == 1),
                    None => true,
                };
                if keep {
                    slot.insert(
                        d.id.clone(),
                        (
                            d.in_progress,
                            StoredDocument {
                                id: d.id,
                                parent_id: d.parent_id,
                                subsegment: d.subsegment != 0,
                                start_time: d.start_time,
                                document: d.document,
                            },
                        ),
                    );
                }
            }
            let heads: HashMap<String, Option<f64>> = heads
                .into_iter()
                .map(|h| (h.trace_id, h.duration))
                .collect();
            for id in chunk {
                let Some(duration) = heads.get(id) else {
                    continue;
                };
                let documents = by_trace
                    .remove(id)
                    .map(|m| m.into_values().map(|(_, d)| d).collect())
                    .unwrap_or_default();
                out.push(StoredTrace {
                    id: id.clone(),
                    duration: *duration,
                    documents,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test bodies
mod tests {
    use super::super::testing::{Backend, Place, for_each_clickhouse};
    use super::{FoldRow, HashMap, Newest, choose};
    use crate::store::Store;
    use crate::test_support::prepared;

    /// A scan chose a fold row that a merge replaced before its summary was read: the trace
    /// is answered with its newest fold, not dropped.
    async fn a_chosen_fold_replaced_by_a_merge_answers_the_newest(backend: Backend) {
        let place = Place::new(backend);
        let store = place.clickhouse().await;
        let docs = prepared(&crate::synth::shop_trace(1, 1_800_000_000.0));
        let id = docs[0].trace_id.clone();
        let (first, rest) = docs.split_at(1);
        store.put_documents(first.to_vec()).await.unwrap();
        store.put_documents(rest.to_vec()).await.unwrap();
        let whole = store.get_traces(vec![id.clone()]).await.unwrap().remove(0);
        // No fold has id 0: as if the chosen row were merged away.
        let bodies = store.fold_bodies(&[(id.clone(), 0)], false).await.unwrap();
        let summary: crate::assembly::TraceSummary =
            serde_json::from_str(&bodies[&id].summary).unwrap();
        assert_eq!(summary.id, id);
        assert_eq!(summary.document_count, docs.len());
        assert_eq!(summary.duration, whole.summary.duration);
        assert_eq!(bodies[&id].samples, "");
        assert!(
            store
                .fold_bodies(&[("1-00000000-000000000000000000000000".into(), 0)], false)
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn row(trace: &str, version: u64, fold: u64, start_time: f64) -> FoldRow {
        FoldRow {
            trace_id: trace.into(),
            version,
            fold,
            start_time,
        }
    }

    fn newest(trace: &str, version: u64, fold: u64, start_time: f64, matches: u8) -> Newest {
        Newest {
            trace_id: trace.into(),
            version,
            fold,
            start_time,
            matches,
        }
    }

    /// The folds a page answers: each trace's newest once; a fold written after the rows were
    /// read stands in for its trace when the scan has passed its place, and not otherwise.
    #[test]
    fn a_page_answers_each_traces_newest_fold_once() {
        // Scan order: start descending, then trace, then fold descending.
        let rows = [
            row("a", 2, 90, 10.0),
            row("a", 1, 80, 10.0),
            row("b", 1, 50, 9.0),
            row("c", 1, 40, 8.0),
            row("d", 1, 30, 7.0),
            row("e", 1, 20, 6.0),
            row("f", 1, 10, 5.0),
        ];
        let newest: HashMap<String, Newest> = [
            // Read: the newest row.
            newest("a", 2, 90, 10.0, 1),
            // Written since, at a place already passed: answered in b's place.
            newest("b", 2, 60, 9.0, 1),
            // Written since, ahead of the scan (a smaller fold id): met later.
            newest("c", 2, 35, 8.0, 1),
            // Written since, at an earlier start (ahead): met later.
            newest("d", 2, 99, 4.0, 1),
            // Written since and no longer passing the filters: not in the answer.
            newest("e", 2, 25, 6.0, 0),
        ]
        .into_iter()
        .map(|n| (n.trace_id.clone(), n))
        .collect();
        let mut seen = std::collections::HashSet::new();
        let chosen = choose(&rows, &newest, &mut seen, 10);
        assert_eq!(chosen, vec![("a".to_owned(), 90), ("b".to_owned(), 60)]);
        // A trace already answered by an earlier page is not answered again, and `room`
        // bounds the page.
        assert!(choose(&rows, &newest, &mut seen, 10).is_empty());
        let mut fresh = std::collections::HashSet::new();
        assert_eq!(choose(&rows, &newest, &mut fresh, 1).len(), 1);
    }

    for_each_clickhouse!(a_chosen_fold_replaced_by_a_merge_answers_the_newest);
}
