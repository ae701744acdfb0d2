//! `/TraceAnalytics` over the real router and each store: the analysis of a set, its values'
//! filters answered by `/TraceSummaries` with the same counts, comparisons, and refusals.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{TestApi, api, put_shop_traces};
use crate::store::clickhouse::testing::{Backend, for_each_store};

for_each_store!(analytics_of_a_set_agree_with_searches_and_comparisons_rank_what_differs);

const WINDOW: (i64, i64) = (1_799_999_000, 1_800_001_000);

async fn summaries(api: &TestApi, filter: &str) -> usize {
    let (status, body, _) = api
        .call(
            "/TraceSummaries",
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "FilterExpression": filter }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{filter}: {body}");
    assert!(body.get("NextToken").is_none(), "one page");
    body["TraceSummaries"].as_array().unwrap().len()
}

fn breakdown<'a>(list: &'a Value, dimension: &str) -> &'a Vec<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|b| b["Dimension"] == dimension)
        .unwrap_or_else(|| panic!("{dimension} in {list}"))["Values"]
        .as_array()
        .unwrap()
}

async fn analytics_of_a_set_agree_with_searches_and_comparisons_rank_what_differs(
    backend: Backend,
) {
    let api = api(backend).await;
    put_shop_traces(&api, 40, 1.0).await;
    let (status, body, _) = api
        .call(
            "/TraceAnalytics",
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = &body["Analysis"];
    assert_eq!(a["Traces"], 40);
    assert_eq!(a["Truncated"], false);
    // Shop traces fault when n % 20 is 0 (orders faults) or 4 (payments answers 503 to orders,
    // which does not fault, and frontend answers 502 on its own).
    let causes = breakdown(&a["Breakdowns"], "FaultRootCauseService");
    let names: Vec<(&str, i64)> = causes
        .iter()
        .map(|e| (e["Value"].as_str().unwrap(), e["Count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("frontend", 2), ("orders", 2), ("payments.example.com", 2)]
    );
    // Every value's filter finds as many traces through the search API.
    for b in a["Breakdowns"].as_array().unwrap() {
        for e in b["Values"].as_array().unwrap() {
            let filter = e["Filter"].as_str().unwrap();
            assert_eq!(
                summaries(&api, filter).await as i64,
                e["Count"].as_i64().unwrap(),
                "{}: {filter}",
                b["Dimension"]
            );
        }
    }
    let histogram_total: i64 = a["Histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Count"].as_i64().unwrap())
        .sum();
    assert_eq!(histogram_total, 40);

    // The faulty traces against the rest: a fault root cause tells them apart, only in B.
    let (status, body, _) = api
        .call(
            "/TraceAnalytics",
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "Comparison": { "Selection": "fault" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = &body["Comparison"];
    assert_eq!(
        (c["A"]["Traces"].as_i64(), c["B"]["Traces"].as_i64()),
        (Some(36), Some(4))
    );
    // The value that tells them apart most leads (here the warehouse all four share).
    let largest = c["Breakdowns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["Values"].as_array().unwrap())
        .map(|e| e["Difference"].as_f64().unwrap().abs())
        .fold(0.0, f64::max);
    let first = &c["Breakdowns"][0]["Values"][0];
    assert_eq!(
        first["Difference"].as_f64().unwrap().abs(),
        largest,
        "{first}"
    );
    assert_eq!(first["Filter"], "annotation.warehouse = \"wh-0\"");
    let causes = breakdown(&c["Breakdowns"], "FaultRootCauseService");
    assert!(
        causes.iter().all(|e| e["CountA"] == 0 && e["CountB"] == 2),
        "{causes:?}"
    );

    // Two filters: gold-tier traces against silver ones.
    let (status, body, _) = api
        .call(
            "/TraceAnalytics",
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1,
                    "FilterExpression": "annotation.tier = \"silver\"",
                    "Comparison": { "FilterExpression": "annotation.tier = \"gold\"" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tiers = breakdown(&body["Comparison"]["Breakdowns"], "Annotation:tier");
    let gold = tiers.iter().find(|e| e["Value"] == "gold").unwrap();
    assert_eq!(
        (gold["ShareA"].as_f64(), gold["ShareB"].as_f64()),
        (Some(0.0), Some(1.0))
    );

    // Refusals: clear errors, nothing answered.
    for (request, message) in [
        (
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "FilterExpression": "fault AND" }),
            "invalid filter expression: column 10",
        ),
        (
            json!({ "StartTime": 0, "EndTime": 1_800_000_000 }),
            "at most 24 hours are allowed",
        ),
        (
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "Comparison": { "FilterExpression": "group.name = \"other\"" } }),
            "Comparison.FilterExpression names group \"other\"",
        ),
        (
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "Comparison": { "Selection": "fault", "StartTime": 1 } }),
            "not both",
        ),
        (
            json!({ "StartTime": WINDOW.0, "EndTime": WINDOW.1, "Compare": {} }),
            "unknown field `Compare`",
        ),
    ] {
        let (status, body, kind) = api.call("/TraceAnalytics", request.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert_eq!(kind.as_deref(), Some("InvalidRequestException"));
        let text = body["Message"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or_default();
        assert!(text.contains(message), "{request}: {body}");
    }
}
