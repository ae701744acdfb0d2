use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::store::clickhouse::testing::{Backend, Place, for_each_store};
use crate::test_support::capture_documents;

// The API suite runs once per store: every answer must be the same whichever store is used.
for_each_store!(
    put_trace_segments_stores_good_documents_and_lists_bad_ones,
    errors_have_the_xray_shape,
    summaries_filter_and_paginate,
    sampling_rules_and_targets,
    groups_filter_the_service_graph_and_searches,
    telemetry_and_time_series,
    server_side_scrubbing_rewrites_documents_before_they_are_stored,
    summaries_by_segment_end_time,
    summaries_sampled_by_strategy,
    a_group_time_series_counts_its_traces_only,
    documents_past_their_traces_cap_are_refused_and_counted,
);

pub(crate) struct TestApi {
    _place: Place,
    pub app: Router,
}

pub(crate) async fn api(backend: Backend) -> TestApi {
    api_with(backend, |_| {}).await
}

/// [`api`] with its state changed by `edit` first.
pub(crate) async fn api_with(backend: Backend, edit: impl FnOnce(&mut AppState)) -> TestApi {
    let place = Place::new(backend);
    let store = place.open().await;
    let mut state = AppState::new(store, None);
    edit(&mut state);
    TestApi {
        _place: place,
        app: router(state),
    }
}

impl TestApi {
    pub async fn call(&self, path: &str, body: Value) -> (StatusCode, Value, Option<String>) {
        let req = Request::post(path)
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/xray/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            )
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let kind = resp
            .headers()
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v, kind)
    }
}

async fn put_trace_segments_stores_good_documents_and_lists_bad_ones(backend: Backend) {
    let api = api(backend).await;
    let mut docs = capture_documents("python-sdk-2.15-checkout.txt");
    docs.push(
        r#"{"name":"x","id":"zz","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1}"#
            .to_owned(),
    );
    docs.push("not json".to_owned());
    docs.push(r#"{"name":"bad*name","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#.to_owned());
    let (status, body, _) = api
        .call("/TraceSegments", json!({ "TraceSegmentDocuments": docs }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unprocessed = body["UnprocessedTraceSegments"].as_array().unwrap();
    assert_eq!(unprocessed.len(), 3, "{body}");
    assert_eq!(unprocessed[0]["Id"], "zz");
    assert_eq!(unprocessed[2]["Id"], "70de5b6f19ff9a0a");
    assert!(
        unprocessed[2]["Message"].as_str().unwrap().contains("name"),
        "{body}"
    );
    let trace_id = "1-6b0b563f-bd5f12f36c129ba2856caf10";
    let (status, body, _) = api
        .call(
            "/Traces",
            json!({ "TraceIds": [trace_id, "1-00000000-000000000000000000000000"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Traces"][0]["Id"], trace_id);
    assert_eq!(
        body["UnprocessedTraceIds"][0],
        "1-00000000-000000000000000000000000"
    );
    let doc: Value = serde_json::from_str(
        body["Traces"][0]["Segments"][0]["Document"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["name"], "checkout-api");
}

async fn errors_have_the_xray_shape(backend: Backend) {
    let api = api(backend).await;
    let (status, body, kind) = api.call("/TraceSegments", json!({ "Nope": 1 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["__type"], "InvalidRequestException");
    assert_eq!(kind.as_deref(), Some("InvalidRequestException"));
    let (status, body, _) = api
        .call(
            "/TraceSummaries",
            json!({ "StartTime": 1, "EndTime": 2, "FilterExpression": "responsetime > " }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("column 16"),
        "{body}"
    );
    let (status, body, kind) = api.call("/NoSuchOperation", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["__type"], "UnknownOperationException", "{body}");
    assert_eq!(kind.as_deref(), Some("UnknownOperationException"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/NoSuchOperation"),
        "{body}"
    );
}

/// Stores `count` shop traces, one every `spacing` seconds from 1,800,000,000.
pub(crate) async fn put_shop_traces(api: &TestApi, count: u64, spacing: f64) {
    let docs: Vec<String> = (0..count)
        .flat_map(|n| crate::synth::shop_trace(n, 1_800_000_000.0 + n as f64 * spacing))
        .collect();
    let (status, body, _) = api
        .call("/TraceSegments", json!({ "TraceSegmentDocuments": docs }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A one-segment trace that starts at `start` and ends 100 s later.
fn long_trace(n: u64, start: f64) -> String {
    json!({
        "name": "batch-job", "id": format!("{:016x}", 0x1000 + n),
        "trace_id": format!("1-{:08x}-{:024x}", start as u64, n + 1),
        "start_time": start, "end_time": start + 100.0,
    })
    .to_string()
}

async fn summaries_by_segment_end_time(backend: Backend) {
    let api = api(backend).await;
    let docs = vec![
        long_trace(1, 1_800_000_000.0),
        long_trace(2, 1_800_000_200.0),
    ];
    api.call("/TraceSegments", json!({ "TraceSegmentDocuments": docs }))
        .await;
    // Only the first trace ended in the window; neither started in it.
    let window = json!({ "StartTime": 1_800_000_050, "EndTime": 1_800_000_150 });
    let (status, body, _) = api.call("/TraceSummaries", window.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["TraceSummaries"].as_array().unwrap().len(),
        0,
        "{body}"
    );
    let mut by_end = window.clone();
    by_end["TimeRangeType"] = json!("Service");
    let (status, body, _) = api.call("/TraceSummaries", by_end).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = body["TraceSummaries"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    assert_eq!(
        found[0]["Id"],
        format!("1-{:08x}-{:024x}", 1_800_000_000u64, 2)
    );
    assert_eq!(found[0]["MatchedEventTime"], 1_800_000_100.0);
    let mut bad = window;
    bad["TimeRangeType"] = json!("Whenever");
    let (status, body, _) = api.call("/TraceSummaries", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn summaries_sampled_by_strategy(backend: Backend) {
    let api = api(backend).await;
    put_shop_traces(&api, 60, 1.0).await;
    let ids = |body: &Value| -> Vec<String> {
        body["TraceSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Id"].as_str().unwrap().to_owned())
            .collect()
    };
    let window = json!({ "StartTime": 1_800_000_000, "EndTime": 1_800_000_059 });
    let (_, all, _) = api.call("/TraceSummaries", window.clone()).await;
    let all = ids(&all);
    assert_eq!(all.len(), 60);
    let mut fixed = window.clone();
    fixed["SamplingStrategy"] = json!({ "Name": "FixedRate", "Value": 0.5 });
    let (status, body, _) = api.call("/TraceSummaries", fixed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kept = ids(&body);
    let expected: Vec<String> = all
        .iter()
        .filter(|id| crate::query::sampled(id, 0.5))
        .cloned()
        .collect();
    assert_eq!(kept, expected);
    assert!(!kept.is_empty() && kept.len() < all.len(), "{kept:?}");
    // The same request keeps the same traces.
    let (_, again, _) = api.call("/TraceSummaries", fixed).await;
    assert_eq!(ids(&again), kept);
    // A partial scan reads the newest half of the window: traces 30..=59 (start >= +29.5 s).
    let mut partial = window.clone();
    partial["SamplingStrategy"] = json!({ "Name": "PartialScan", "Value": 0.5 });
    let (status, body, _) = api.call("/TraceSummaries", partial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), all[..30].to_vec());
    for bad in [
        json!({ "Name": "Everything", "Value": 0.5 }),
        json!({ "Name": "FixedRate", "Value": 1.5 }),
    ] {
        let mut req = window.clone();
        req["SamplingStrategy"] = bad;
        let (status, body, _) = api.call("/TraceSummaries", req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}

async fn a_group_time_series_counts_its_traces_only(backend: Backend) {
    let api = api(backend).await;
    put_shop_traces(&api, 30, 10.0).await;
    let (status, body, _) = api
        .call(
            "/CreateGroup",
            json!({ "GroupName": "gold", "FilterExpression": "annotation.tier = \"gold\"" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let arn = body["Group"]["GroupARN"].as_str().unwrap().to_owned();
    let total = |body: &Value| -> i64 {
        body["TimeSeriesServiceStatistics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["ServiceSummaryStatistics"]["TotalCount"]
                    .as_i64()
                    .unwrap()
            })
            .sum()
    };
    let window = json!({ "StartTime": 1_799_999_940, "EndTime": 1_800_000_600,
                         "EntitySelectorExpression": "service(\"frontend\")", "Period": 60 });
    let (_, all, _) = api
        .call("/TimeSeriesServiceStatistics", window.clone())
        .await;
    assert_eq!(total(&all), 30, "{all}");
    // Tier gold: n % 3 == 0, 10 of 30; by name and by ARN alike.
    let mut by_name = window.clone();
    by_name["GroupName"] = json!("gold");
    let (status, body, _) = api.call("/TimeSeriesServiceStatistics", by_name).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(total(&body), 10, "{body}");
    let mut by_arn = window;
    by_arn["GroupARN"] = json!(arn);
    let (_, body, _) = api.call("/TimeSeriesServiceStatistics", by_arn).await;
    assert_eq!(total(&body), 10, "{body}");
}

/// `TimeRangeType: Event` selects traces by when they were stored (the SQLite store records
/// it; it is not the trace's own time).
#[tokio::test]
async fn summaries_by_update_time() {
    let api = api(Backend::Sqlite).await;
    api.call(
        "/TraceSegments",
        json!({ "TraceSegmentDocuments": [long_trace(1, 1_800_000_000.0)] }),
    )
    .await;
    let now = crate::store::now_seconds();
    let window = json!({ "StartTime": now - 3600.0, "EndTime": now + 3600.0 });
    let (_, body, _) = api.call("/TraceSummaries", window.clone()).await;
    assert_eq!(
        body["TraceSummaries"].as_array().unwrap().len(),
        0,
        "{body}"
    );
    let mut by_event = window;
    by_event["TimeRangeType"] = json!("Event");
    let (status, body, _) = api.call("/TraceSummaries", by_event).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = body["TraceSummaries"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    let matched = found[0]["MatchedEventTime"].as_f64().unwrap();
    assert!((now - 3600.0..=now + 3600.0).contains(&matched), "{body}");
}

async fn summaries_filter_and_paginate(backend: Backend) {
    let api = api(backend).await;
    let mut docs = Vec::new();
    for n in 0..250 {
        docs.extend(crate::synth::shop_trace(n, 1_800_000_000.0 + n as f64));
    }
    for chunk in docs.chunks(50) {
        let (status, _, _) = api
            .call("/TraceSegments", json!({ "TraceSegmentDocuments": chunk }))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let mut req = json!({ "StartTime": 1_799_999_000, "EndTime": 1_800_001_000 });
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        let (status, body, _) = api.call("/TraceSummaries", req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for s in body["TraceSummaries"].as_array().unwrap() {
            assert!(
                seen.insert(s["Id"].as_str().unwrap().to_owned()),
                "no duplicates"
            );
        }
        token = body["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 250);
    let (_, body, _) = api
        .call(
            "/TraceSummaries",
            json!({ "StartTime": 1_799_999_000, "EndTime": 1_800_001_000,
                    "FilterExpression": "annotation.tier = \"gold\" AND fault" }),
        )
        .await;
    let list = body["TraceSummaries"].as_array().unwrap();
    // Faults: n % 20 in {0, 4}; gold: n % 3 == 0 → 0, 24, 60, 84, 120, 144, 180, 204, 240.
    assert_eq!(list.len(), 9, "{body}");
    assert!(list.iter().all(|s| s["HasFault"] == true));
    assert_eq!(
        list[0]["Annotations"]["tier"][0]["AnnotationValue"]["StringValue"],
        "gold"
    );
}

async fn sampling_rules_and_targets(backend: Backend) {
    let api = api(backend).await;
    let (_, body, _) = api.call("/GetSamplingRules", json!({})).await;
    let rules = body["SamplingRuleRecords"].as_array().unwrap();
    assert_eq!(rules[0]["SamplingRule"]["RuleName"], "Default");
    assert_eq!(rules[0]["SamplingRule"]["Priority"], 10000);
    let rule = json!({ "SamplingRule": {
        "RuleName": "checkout", "ResourceARN": "*", "Priority": 10, "FixedRate": 0.5,
        "ReservoirSize": 4, "ServiceName": "checkout-api", "ServiceType": "*", "Host": "*",
        "HTTPMethod": "POST", "URLPath": "/api/*", "Version": 1 } });
    let (status, body, _) = api.call("/CreateSamplingRule", rule.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = api.call("/CreateSamplingRule", rule).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body, _) = api
        .call(
            "/UpdateSamplingRule",
            json!({ "SamplingRuleUpdate": { "RuleName": "checkout", "FixedRate": 0.25 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["SamplingRuleRecord"]["SamplingRule"]["FixedRate"],
        0.25
    );
    let stats = |client: &str, n: i64| {
        json!({ "RuleName": "checkout", "ClientID": client, "Timestamp": 1_800_000_000,
                "RequestCount": n, "SampledCount": 1, "BorrowCount": 0 })
    };
    api.call(
        "/SamplingTargets",
        json!({ "SamplingStatisticsDocuments": [stats("aaaaaaaaaaaaaaaaaaaaaaaa", 30)] }),
    )
    .await;
    let (_, body, _) = api
        .call(
            "/SamplingTargets",
            json!({ "SamplingStatisticsDocuments": [stats("bbbbbbbbbbbbbbbbbbbbbbbb", 10),
                    { "RuleName": "nope", "ClientID": "bbbbbbbbbbbbbbbbbbbbbbbb", "Timestamp": 1, "RequestCount": 1, "SampledCount": 0 }] }),
        )
        .await;
    let t = &body["SamplingTargetDocuments"][0];
    assert_eq!(t["RuleName"], "checkout");
    assert_eq!(t["ReservoirQuota"], 1, "b gets a quarter of 4: {body}");
    assert_eq!(t["FixedRate"], 0.25);
    assert_eq!(body["UnprocessedStatistics"][0]["RuleName"], "nope");
    // Both clients' counts are summed per rule and window; the unknown rule's are not kept.
    let (status, body, _) = api.call("/SamplingStatisticSummaries", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let summaries = body["SamplingStatisticSummaries"].as_array().unwrap();
    let sum = |key: &str| {
        summaries
            .iter()
            .map(|s| s[key].as_i64().unwrap())
            .sum::<i64>()
    };
    assert!(
        summaries.iter().all(|s| s["RuleName"] == "checkout"),
        "{body}"
    );
    assert_eq!(
        (sum("RequestCount"), sum("SampledCount")),
        (40, 2),
        "{body}"
    );
    assert_eq!(summaries[0]["Timestamp"].as_i64().unwrap() % 10, 0);
    let (status, _, _) = api
        .call("/DeleteSamplingRule", json!({ "RuleName": "Default" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = api
        .call("/DeleteSamplingRule", json!({ "RuleName": "checkout" }))
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn groups_filter_the_service_graph_and_searches(backend: Backend) {
    let api = api(backend).await;
    put_shop_traces(&api, 40, 1.0).await;
    let (status, body, _) = api
        .call(
            "/CreateGroup",
            json!({ "GroupName": "faults", "FilterExpression": "fault" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["Group"]["GroupARN"]
            .as_str()
            .unwrap()
            .ends_with("group/faults")
    );
    let (status, body, _) = api
        .call(
            "/CreateGroup",
            json!({ "GroupName": "broken", "FilterExpression": "fault AND (" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let window = json!({ "StartTime": 1_799_999_000, "EndTime": 1_800_001_000 });
    let (_, all, _) = api.call("/ServiceGraph", window.clone()).await;
    let mut grouped = window.clone();
    grouped["GroupName"] = json!("faults");
    let (status, faults, _) = api.call("/ServiceGraph", grouped).await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    let total = |g: &Value, name: &str| {
        g["Services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Name"] == name)
            .map(|s| s["SummaryStatistics"]["TotalCount"].as_i64().unwrap())
    };
    assert_eq!(total(&all, "frontend"), Some(40));
    // Faulted traces: n % 20 in {0, 4}: 4 of 40.
    assert_eq!(total(&faults, "frontend"), Some(4));
    let (_, body, _) = api
        .call(
            "/TraceSummaries",
            json!({ "StartTime": 1_799_999_000, "EndTime": 1_800_001_000, "FilterExpression": "group.name = \"faults\"" }),
        )
        .await;
    assert_eq!(body["TraceSummaries"].as_array().unwrap().len(), 4);
    let (_, body, _) = api.call("/Groups", json!({})).await;
    assert_eq!(body["Groups"].as_array().unwrap().len(), 1);
    let (status, _, _) = api
        .call(
            "/UpdateGroup",
            json!({ "GroupName": "faults", "FilterExpression": "error" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body, _) = api
        .call("/GetGroup", json!({ "GroupName": "faults" }))
        .await;
    assert_eq!(body["Group"]["FilterExpression"], "error");
    let (status, _, _) = api
        .call("/DeleteGroup", json!({ "GroupName": "faults" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .call("/GetGroup", json!({ "GroupName": "faults" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn telemetry_and_time_series(backend: Backend) {
    let api = api(backend).await;
    let (status, body, _) = api
        .call(
            "/TelemetryRecords",
            json!({ "TelemetryRecords": [{ "Timestamp": 1_800_000_000, "SegmentsReceivedCount": 5,
                     "BackendConnectionErrors": { "TimeoutCount": 0 } }], "Hostname": "h1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    put_shop_traces(&api, 20, 10.0).await;
    let (status, body, _) = api
        .call(
            "/TimeSeriesServiceStatistics",
            json!({ "StartTime": 1_799_999_940, "EndTime": 1_800_000_600,
                    "EntitySelectorExpression": "service(\"frontend\")", "Period": 60 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let series = body["TimeSeriesServiceStatistics"].as_array().unwrap();
    let total: i64 = series
        .iter()
        .map(|p| {
            p["ServiceSummaryStatistics"]["TotalCount"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 20);
    let (status, _, _) = api
        .call(
            "/TimeSeriesServiceStatistics",
            json!({ "StartTime": 1, "EndTime": 2, "Period": 61 }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn server_side_scrubbing_rewrites_documents_before_they_are_stored(backend: Backend) {
    let place = Place::new(backend);
    let store = place.open().await;
    let scrubbing = TestApi {
        _place: place,
        app: router(AppState::new(
            store,
            Some(roentgen_sdk::scrub::Scrubber::default()),
        )),
    };
    let docs = capture_documents("python-sdk-2.15-checkout.txt");
    assert!(docs[0].contains("jane.doe@example.com"));
    let (status, _, _) = scrubbing
        .call("/TraceSegments", json!({ "TraceSegmentDocuments": docs }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body, _) = scrubbing
        .call(
            "/Traces",
            json!({ "TraceIds": ["1-6b0b563f-bd5f12f36c129ba2856caf10"] }),
        )
        .await;
    let stored = body["Traces"][0]["Segments"][0]["Document"]
        .as_str()
        .unwrap();
    assert!(stored.contains("checkout-api"));
    assert!(!stored.contains("jane.doe@example.com"), "{stored}");
    assert!(!stored.contains("4111 1111 1111 1111"), "{stored}");
}

/// A trace at its cap: its further documents are refused one by one with `TraceTooLarge`
/// (final, so a daemon does not retry them), counted, and the rest of the request is stored.
async fn documents_past_their_traces_cap_are_refused_and_counted(backend: Backend) {
    let place = Place::new(backend);
    let limits = crate::store::TraceLimits {
        max_documents: 3,
        ..crate::store::TraceLimits::default()
    };
    let store = place.open_with(limits).await;
    let live = store.live_counters().unwrap();
    let state = AppState::new(store, None);
    let counters = state.counters.clone();
    let api = TestApi {
        _place: place,
        app: router(state),
    };
    let big = crate::synth::fleet_trace(1, 1_800_000_000.0);
    let small = crate::synth::shop_trace(2, 1_800_000_000.0);
    assert!(big.len() > 3);
    let (first, rest) = big.split_at(2);
    let mut docs = first.to_vec();
    docs.extend(small.iter().cloned());
    let (status, body, _) = api
        .call("/TraceSegments", json!({ "TraceSegmentDocuments": docs }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["UnprocessedTraceSegments"], json!([]));
    let (status, body, _) = api
        .call("/TraceSegments", json!({ "TraceSegmentDocuments": rest }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refused = body["UnprocessedTraceSegments"].as_array().unwrap();
    assert_eq!(refused.len(), big.len() - 3, "{body}");
    for r in refused {
        assert_eq!(r["ErrorCode"], "TraceTooLarge", "{body}");
        assert!(r["Id"].is_string(), "{body}");
    }
    let big_id: Value = serde_json::from_str(&big[0]).unwrap();
    let small_id: Value = serde_json::from_str(&small[0]).unwrap();
    let (_, body, _) = api
        .call(
            "/Traces",
            json!({ "TraceIds": [big_id["trace_id"], small_id["trace_id"]] }),
        )
        .await;
    let segments = |i: usize| body["Traces"][i]["Segments"].as_array().unwrap().len();
    assert_eq!(segments(0) + segments(1), 3 + small.len(), "{body}");
    use crate::metrics::DocumentRefusal;
    assert_eq!(
        counters.documents_refused(DocumentRefusal::TraceTooLarge),
        (big.len() - 3) as u64
    );
    assert_eq!(
        counters
            .documents_accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        (3 + small.len()) as u64
    );
    assert_eq!(
        live.over_cap.load(std::sync::atomic::Ordering::Relaxed),
        (big.len() - 3) as u64
    );
}
