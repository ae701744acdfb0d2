//! The alarm operations over the real router and each store: rules made, listed with their
//! state, replaced and deleted; secrets never shown; bad rules refused with what is wrong.

use axum::http::StatusCode;
use serde_json::json;

use super::tests::api;
use crate::store::clickhouse::testing::{Backend, for_each_store};

for_each_store!(alarm_rules_are_managed_and_their_secrets_never_shown);

async fn alarm_rules_are_managed_and_their_secrets_never_shown(backend: Backend) {
    let api = api(backend).await;
    let rule = json!({
        "Name": "pay-faults", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold",
        "Threshold": 0.1, "EntitySelectorExpression": "service(\"pay\")",
        "Webhooks": [{"Url": "http://127.0.0.1:9/hook", "Secret": "very-secret"}]
    });
    let (status, body, _) = api
        .call("/CreateAlarmRule", json!({ "AlarmRule": rule }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["AlarmRule"]["Webhooks"][0]["SecretSet"], true);
    assert!(!body.to_string().contains("very-secret"));
    let (status, body, _) = api
        .call("/CreateAlarmRule", json!({ "AlarmRule": rule }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("already exists"),
        "{body}"
    );

    let (status, body, _) = api.call("/GetAlarmRules", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = &body["AlarmRules"][0];
    assert_eq!(listed["AlarmRule"]["Name"], "pay-faults");
    assert_eq!(listed["State"], "INSUFFICIENT_DATA");
    assert!(!body.to_string().contains("very-secret"));

    // Sent back as shown (no secret, plus SecretSet): refused as an unknown field, so a
    // client cannot believe it set something it did not.
    let mut shown = listed["AlarmRule"].clone();
    let (status, body, _) = api
        .call("/UpdateAlarmRule", json!({ "AlarmRule": shown }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("SecretSet"),
        "{body}"
    );
    shown["Webhooks"][0]
        .as_object_mut()
        .unwrap()
        .remove("SecretSet");
    shown["Threshold"] = json!(0.25);
    let (status, body, _) = api
        .call("/UpdateAlarmRule", json!({ "AlarmRule": shown }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["AlarmRule"]["Threshold"], 0.25);
    assert_eq!(
        body["AlarmRule"]["Webhooks"][0]["SecretSet"], true,
        "the secret is kept"
    );

    for (bad, says) in [
        (
            json!({"Name": "x", "Metric": "FaultRate", "Comparison": "GreaterThanThreshold"}),
            "needs a Threshold",
        ),
        (
            json!({"Name": "x", "Metric": "Nope", "Comparison": "GreaterThanThreshold", "Threshold": 1}),
            "unknown variant",
        ),
        (
            json!({"Name": "x", "Metric": "P99", "Comparison": "OutsideBand", "EntitySelectorExpression": "service("}),
            "EntitySelectorExpression",
        ),
    ] {
        let (status, body, _) = api
            .call("/CreateAlarmRule", json!({ "AlarmRule": bad }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{says}: {body}"
        );
    }
    let (status, body, _) = api.call("/UpdateAlarmRule", json!({ "AlarmRule": {
        "Name": "nobody", "Metric": "P99", "Comparison": "GreaterThanThreshold", "Threshold": 1 } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );

    let (status, body, _) = api
        .call("/GetAlarmHistory", json!({ "Name": "pay-faults" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["AlarmEvents"], json!([]));
    let (status, _, _) = api
        .call("/GetAlarmHistory", json!({ "MaxResults": 0 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, _) = api
        .call("/DeleteAlarmRule", json!({ "Name": "pay-faults" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .call("/DeleteAlarmRule", json!({ "Name": "pay-faults" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body, _) = api.call("/GetAlarmRules", json!({})).await;
    assert_eq!(body["AlarmRules"], json!([]));
}
