//! Deeply nested filter expressions over real HTTP: 2,000 `(` or 3,000 `!` sent to
//! `GetTraceSummaries`, `CreateGroup` and the dashboard's `/traces?filter=` get a clear refusal
//! at the column where the nesting passes 64, and the collector goes on answering (it used to
//! overflow a worker's stack and abort). Groups that name themselves are refused too.

use roentgen_tests::http::Response;
use serde_json::json;

use crate::security::{
    create_key_with, create_web_team_key, now, page, sign_in, signed_post, start_collector,
};

/// The texts that used to kill the collector: 2,000 `(` (a 2 KB body) and 3,000 `!`.
fn deep_filters() -> [String; 2] {
    ["(".repeat(2_000), format!("{}fault", "!".repeat(3_000))]
}

const REFUSAL: &str = "column 65: nesting deeper than 64";

fn summaries_body(filter: &str) -> String {
    let end = now();
    json!({"StartTime": end - 3_600.0, "EndTime": end, "FilterExpression": filter}).to_string()
}

fn assert_invalid_request(r: &Response, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidRequestException"),
        "{what}: {:?}",
        r.headers
    );
}

fn percent_encode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn deep_filter_expressions_are_refused_and_the_collector_lives_on() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let admin = create_key_with(&keys, &["--principal", "admin", "--allow", "xray:*"]);
    let web_team = create_web_team_key(dir.path());
    let (collector, _) = start_collector(dir.path());
    let address = collector.address.as_str();
    let mut seq = 0;
    let mut post = |path: &str, body: &str| {
        seq += 1;
        signed_post(address, &admin, path, body, seq)
    };
    let web = json!({"GroupName": "web", "FilterExpression": "service(\"frontend\")"});
    let r = post("/CreateGroup", &web.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let session = sign_in(address, &web_team);

    for filter in deep_filters() {
        let r = post("/TraceSummaries", &summaries_body(&filter));
        assert_invalid_request(&r, "GetTraceSummaries");
        assert!(r.body.contains(REFUSAL), "{}", r.body);

        let group = json!({"GroupName": "deep", "FilterExpression": filter}).to_string();
        let r = post("/CreateGroup", &group);
        assert_invalid_request(&r, "CreateGroup");
        assert!(r.body.contains(REFUSAL), "{}", r.body);

        // A reader allowed only the `web` group, on the dashboard.
        let path = format!("/traces?window=1h&filter={}", percent_encode(&filter));
        let p = page(address, &path, &session);
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains("id=\"filter-error\""), "{}", p.body);
        assert!(p.body.contains(REFUSAL), "no refusal on the page");

        // Still alive and answering.
        let r = post("/TraceSummaries", &summaries_body("fault OR ok"));
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // A group whose filter names a group (itself, so a loop) is refused when it is created;
    // stored loops (from before that rule) are refused when used (`filter::resolve` tests).
    let looped = json!({"GroupName": "loop", "FilterExpression": "ok OR group.name = \"loop\""});
    let r = post("/CreateGroup", &looped.to_string());
    assert_invalid_request(&r, "a group naming itself");
    assert!(r.body.contains("may not name a group"), "{}", r.body);
    let p = page(address, "/traces?window=1h", &session);
    assert_eq!(p.status, 200, "{}", p.body);
}
