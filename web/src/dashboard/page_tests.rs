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
