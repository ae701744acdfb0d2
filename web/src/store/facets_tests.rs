//! The store suite's analytics part, run once per store: a set's analysis read from the
//! stored facets ([`Store::scan_facets`]) equals the analysis of its summaries.

use super::Store;
use crate::store::clickhouse::testing::{Backend, Place, for_each_store, store};
use crate::test_support::prepared;

for_each_store!(an_exact_set_is_analysed_from_facets_as_from_its_summaries);

/// Traces for the analytics tests: the filter's labelled traces and 60 fleet traces, each
/// fleet trace sent in two calls (so it is folded twice: ClickHouse holds two folds).
async fn put_analytics_traces(store: &dyn Store) {
    for (_, docs) in crate::filter::cases::labelled_documents() {
        store.put_documents(prepared(&docs)).await.unwrap();
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for n in 0..60 {
        let docs = crate::synth::fleet_trace(n, 1_800_000_000.0 + (n / 2) as f64);
        let (a, b) = docs.split_at(docs.len() / 2);
        first.extend_from_slice(a);
        second.extend_from_slice(b);
    }
    store.put_documents(prepared(&first)).await.unwrap();
    store.put_documents(prepared(&second)).await.unwrap();
    // Two annotations whose `key=value` texts are the same (`a=b=c`).
    let ambiguous: Vec<String> = [("a=b", "c", 1), ("a", "b=c", 2)]
        .into_iter()
        .map(|(key, value, n)| {
            serde_json::json!({
                "name": "eq", "id": format!("{n:016x}"),
                "trace_id": format!("1-6b49d200-{n:024x}"),
                "start_time": 1_800_000_000.0 + n as f64, "end_time": 1_800_000_001.0 + n as f64,
                "annotations": { key: value },
            })
            .to_string()
        })
        .collect();
    store.put_documents(prepared(&ambiguous)).await.unwrap();
}

/// Analyses of sets whose filter the store answers exactly, read from the stored facets,
/// equal analyses that evaluate the filter on every candidate's summary: for every such
/// expression of the filter's table and a few of the analytics page's own, whole and cut to
/// the newest few.
async fn an_exact_set_is_analysed_from_facets_as_from_its_summaries(backend: Backend) {
    let (_place, store) = store(backend).await;
    put_analytics_traces(store.as_ref()).await;
    assert_analyses_agree(store.as_ref()).await;
}

async fn assert_analyses_agree(store: &dyn Store) {
    use crate::analytics::{collect_facets, collect_newest};
    use crate::filter::cases::EXPRESSIONS;
    let own = [
        "annotation.tier = \"gold\"",
        "service(\"payments\")",
        "fault AND service(\"inventory\")",
        "!fault AND http.status = 200",
        "responsetime > 0 AND error",
        "annotation.tier = \"gold\" AND service(\"checkout\") AND !throttle",
        "annotation.a = \"b=c\"",
    ];
    let mut exact = 0;
    for text in EXPRESSIONS.iter().map(|(t, _)| *t).chain(own) {
        let expr = crate::filter::parse(text).unwrap();
        let Some(pushdown) = expr.exact_pushdown() else {
            continue;
        };
        exact += 1;
        for limit in [10_000, 60, 5] {
            let window = (0.0, 2e9);
            let from_facets = collect_facets(store, window.0, window.1, pushdown.clone(), limit)
                .await
                .unwrap()
                .finish();
            let from_summaries = collect_newest(store, window.0, window.1, Some(&expr), limit)
                .await
                .unwrap()
                .finish();
            assert_eq!(from_facets, from_summaries, "{text}, limit {limit}");
            if limit == 10_000 && own.contains(&text) {
                assert!(from_facets.traces > 0, "{text} selects nothing");
            }
        }
    }
    assert!(exact >= 10, "only {exact} exact expressions");
}

mod clickhouse_only {
    use super::*;

    /// Folds written before ClickHouse kept facets (`facets` empty) are analysed from their
    /// summaries: newer folds without facets are added to every trace.
    #[tokio::test]
    async fn clickhouse26_folds_without_facets_are_analysed_from_their_summaries() {
        let place = Place::new(Backend::Clickhouse26);
        let store = place.clickhouse().await;
        put_analytics_traces(&store).await;
        store
            .run_for_test(
                "INSERT INTO traces SELECT * REPLACE (version + 1 AS version, '' AS facets) FROM traces",
            )
            .await;
        assert_analyses_agree(&store).await;
    }
}
