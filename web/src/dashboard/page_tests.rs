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

async fn post_form(
    state: AppState,
    uri: &str,
    form: &str,
    origin: Option<&str>,
) -> (axum::http::StatusCode, String, String) {
    let mut request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "127.0.0.1:4000");
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    let response = super::router(state)
        .oneshot(request.body(Body::from(form.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, location, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The alarms page: a rule created with the form is listed with its state, a bad one is
/// shown back with what is wrong, a form from another site is refused, and delete works.
#[tokio::test]
async fn alarm_rules_are_created_listed_and_deleted_from_the_alarms_page() {
    use axum::http::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let state = AppState::new(store.clone(), None);
    let empty = page(state.clone(), "/alarms").await;
    assert!(empty.contains("id=\"alarms-empty\""), "{empty}");
    let form = "name=pay-faults&entity=service%28%22pay%22%29&metric=FaultRate&comparison=GreaterThanThreshold&threshold=0.1&period=120&evaluation_periods=3&datapoints_to_alarm=2&missing=NotBreaching&webhook_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook&webhook_secret=s3&webhook_format=Slack";
    let (status, location, _) = post_form(
        state.clone(),
        "/alarms/create",
        form,
        Some("http://127.0.0.1:4000"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/alarms?saved=pay-faults");
    let stored = store.alarm_rules().await.unwrap();
    let rule = &stored[0].rule;
    assert_eq!(
        (
            rule.period,
            rule.evaluation_periods,
            rule.datapoints_to_alarm
        ),
        (120, 3, 2)
    );
    assert_eq!(rule.webhooks[0].secret.as_deref(), Some("s3"));
    assert_eq!(
        rule.webhooks[0].format,
        crate::alarms::rule::WebhookFormat::Slack
    );
    let listed = page(state.clone(), &location).await;
    assert!(listed.contains("Saved rule pay-faults."), "{listed}");
    assert!(
        listed.contains("data-alarm=\"pay-faults\" data-state=\"INSUFFICIENT_DATA\""),
        "{listed}"
    );
    assert!(
        listed.contains("FaultRate GreaterThanThreshold 10.0%, 2 of 3 × 120 s"),
        "{listed}"
    );
    assert!(!listed.contains("s3\""), "the secret is never shown");

    let (status, _, body) = post_form(
        state.clone(),
        "/alarms/create",
        "name=x&metric=P99&comparison=GreaterThanThreshold&threshold=soon",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Threshold: &#34;soon&#34; is not a number")
            || body.contains("Threshold: &quot;soon&quot; is not a number"),
        "{body}"
    );
    assert!(
        body.contains("value=\"x\""),
        "the form keeps what was typed"
    );
    let (status, _, _) = post_form(
        state.clone(),
        "/alarms/create",
        form,
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, location, _) =
        post_form(state.clone(), "/alarms/delete", "name=pay-faults", None).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/alarms?deleted=pay-faults")
    );
    assert!(store.alarm_rules().await.unwrap().is_empty());
}

/// The insights page lists the window's insights, open first, with root cause, events and
/// evidence links.
#[tokio::test]
async fn the_insights_page_shows_root_causes_events_and_evidence() {
    use crate::insights::{Insight, InsightEvent};
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let node = |n: &str| crate::assembly::NodeKey {
        name: n.to_owned(),
        kind: String::new(),
    };
    let insight = |id: &str, root: &str, start: f64, end: Option<f64>| Insight {
        last_update_time: start + 120.0,
        root_cause: node(root),
        summary: format!("{root} FaultRate 60.0% (usual 0.1%), impacting front"),
        impacted_services: vec![node(root), node("front")],
        impacted_edges: vec![(node("front"), node(root))],
        requests_affected: 42.0,
        top_traces: vec!["1-6a5f0000-000000000000000000000001".to_owned()],
        events: vec![InsightEvent {
            summary: "Opened: it broke".to_owned(),
            event_time: start + 60.0,
            client_request_impact_statistics: Default::default(),
            root_cause_service_request_impact_statistics: Default::default(),
            top_anomalous_services: vec![node(root)],
        }],
        ..Insight::for_test(id, start, end)
    };
    let t = 1_800_000_000.0;
    store
        .put_insights(vec![
            insight("a", "pay", t, Some(t + 300.0)),
            insight("b", "db", t + 600.0, None),
        ])
        .await
        .unwrap();
    let state = AppState::new(store, None);
    let html = page(
        state,
        &format!(
            "/insights?window=custom&start={}&end={}",
            t - 60.0,
            t + 3600.0
        ),
    )
    .await;
    let open = html
        .find("data-root=\"db\" data-state=\"ACTIVE\"")
        .expect("open insight");
    let closed = html
        .find("data-root=\"pay\" data-state=\"CLOSED\"")
        .expect("closed insight");
    assert!(open < closed, "open ones first");
    assert!(html.contains("Opened: it broke"), "{html}");
    assert!(
        html.contains("href=\"/traces/1-6a5f0000-000000000000000000000001\""),
        "{html}"
    );
    assert!(html.contains("42 requests beyond the usual"), "{html}");
    assert!(html.contains("calls front → pay"), "{html}");
}

/// The map outlines an insight's impacted services and calls, its root cause most.
#[tokio::test]
async fn the_map_outlines_what_an_insight_impacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let t = 1_800_000_000.0;
    let docs: Vec<String> = (0..20)
        .flat_map(|n| crate::synth::shop_trace(n, t + n as f64))
        .collect();
    store.put_documents(prepared(&docs)).await.unwrap();
    let node = |n: &str| crate::assembly::NodeKey {
        name: n.to_owned(),
        kind: String::new(),
    };
    let insight = crate::insights::Insight {
        insight_id: "i-1".to_owned(),
        state: crate::insights::InsightState::Closed,
        start_time: t,
        end_time: Some(t + 60.0),
        last_update_time: t + 60.0,
        root_cause: node("orders"),
        categories: vec!["FAULT".to_owned()],
        summary: String::new(),
        impacted_services: vec![node("frontend"), node("orders")],
        impacted_edges: vec![(node("frontend"), node("orders"))],
        anomalies: Vec::new(),
        requests_affected: 0.0,
        client_request_impact_statistics: Default::default(),
        root_cause_service_request_impact_statistics: Default::default(),
        top_traces: Vec::new(),
        events: Vec::new(),
    };
    store.put_insights(vec![insight]).await.unwrap();
    let state = AppState::new(store, None);
    let uri = format!(
        "/?window=custom&start={}&end={}&insight=i-1",
        t - 60.0,
        t + 120.0
    );
    let html = page(state.clone(), &uri).await;
    let node_of = |name: &str| {
        let at = html.find(&format!("data-name=\"{name}\"")).unwrap();
        html[..at].rsplit("<g class=\"").next().unwrap().to_owned()
    };
    assert!(
        node_of("orders").contains("impacted root-cause"),
        "{}",
        node_of("orders")
    );
    assert!(
        node_of("frontend").contains("impacted") && !node_of("frontend").contains("root-cause")
    );
    assert!(!node_of("DynamoDB").contains("impacted"));
    assert_eq!(
        html.matches("impacted\" id=\"edge-").count(),
        1,
        "one call outlined"
    );
    let missing = super::router(state)
        .oneshot(Request::get("/?insight=nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
