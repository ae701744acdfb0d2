//! The traces page over a real store, in process: its bounds on the work of one GET.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::api::AppState;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::test_support::prepared;

async fn page(state: AppState, uri: &str) -> String {
    let response = super::router(state)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_traces_page_stops_at_its_scan_budget_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let start = 1_800_000_000.0;
    let docs: Vec<String> = (0..600)
        .flat_map(|n| crate::synth::shop_trace(n, start + n as f64))
        .collect();
    store.put_documents(prepared(&docs)).await.unwrap();
    let mut state = AppState::new(std::sync::Arc::new(store), None);
    let uri = format!(
        "/traces?window=custom&start={}&end={}&filter=responsetime+%3E%3D+0",
        start - 1.0,
        start + 700.0
    );
    let whole = page(state.clone(), &uri).await;
    assert!(
        !whole.contains("scan-stopped"),
        "600 traces fit the default budget"
    );
    state.limits.list_scan_budget = 250;
    let stopped = page(state, &uri).await;
    assert!(stopped.contains("id=\"scan-stopped\""), "{stopped}");
    assert!(
        stopped.contains("examining 300 traces"),
        "pages of 100 matches: {stopped}"
    );
}

/// The analytics page's comparison modes over a real store: a selection against the rest
/// splits the set, another filter is answered within the page's window, and a B filter that
/// does not parse is shown as B's problem while A is still analysed.
#[tokio::test]
async fn the_analytics_page_compares_a_selection_with_the_rest_and_reports_a_bad_b_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let start = 1_800_000_000.0;
    let docs: Vec<String> = (0..40)
        .flat_map(|n| crate::synth::shop_trace(n, start + n as f64))
        .collect();
    store.put_documents(prepared(&docs)).await.unwrap();
    let state = AppState::new(std::sync::Arc::new(store), None);
    let window = format!("window=custom&start={}&end={}", start - 1.0, start + 100.0);
    let rest = page(
        state.clone(),
        &format!("/analytics?{window}&compare=rest&b_filter=fault"),
    )
    .await;
    assert!(rest.contains("A: not fault — 36 traces"), "{rest}");
    assert!(rest.contains("B: fault — 4 traces"), "{rest}");
    assert!(rest.contains("id=\"breakdown-FaultRootCauseService\""));
    let other = page(
        state.clone(),
        &format!("/analytics?{window}&filter=annotation.tier+%3D+%22gold%22&compare=filter&b_filter=annotation.tier+%3D+%22silver%22"),
    )
    .await;
    assert!(
        other.contains("— 14 traces"),
        "gold: n % 3 == 0 of 40: {other}"
    );
    assert!(other.contains("— 13 traces"), "silver: {other}");
    let bad = page(
        state,
        &format!("/analytics?{window}&compare=filter&b_filter=fault+AND"),
    )
    .await;
    assert!(bad.contains("id=\"b-problem\""), "{bad}");
    assert!(bad.contains("(40 traces)"), "A alone: {bad}");
}
