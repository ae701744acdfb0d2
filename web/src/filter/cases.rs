//! Labelled traces and the traces each filter expression selects among them: one table that
//! the filter's own tests evaluate in memory and the store suite evaluates through each store
//! (pushdown and scans included).

use serde_json::{Value, json};

use crate::test_support::capture_documents;

/// The account the `orders` segment of trace `s7` runs in.
pub const ACCOUNT: &str = "123456789012";

/// Every label.
pub const ALL: &[&str] = &["py", "node", "s0", "s1", "s2", "s5", "s7"];
/// The synthetic shop traces.
pub const SHOP: &[&str] = &["s0", "s1", "s2", "s5", "s7"];

/// The documents of each labelled trace: the two official SDK checkout captures, and shop
/// traces n (`synth::shop_trace`): n % 20 == 0 → 500 (orders faults); 1 → 429 (payments
/// throttled); 2 → 404; otherwise 200. Tier gold/silver/bronze by n % 3; POST when
/// n % 3 == 0. `s7`'s orders segment records its AWS account.
pub fn labelled_documents() -> Vec<(&'static str, Vec<String>)> {
    let mut out = vec![
        ("py", capture_documents("python-sdk-2.15-checkout.txt")),
        ("node", capture_documents("node-sdk-3.12-checkout.txt")),
    ];
    for (label, n) in [("s0", 0), ("s1", 1), ("s2", 2), ("s5", 5), ("s7", 7)] {
        let mut docs = crate::synth::shop_trace(n, 1_800_000_000.0);
        if label == "s7" {
            for d in &mut docs {
                let mut v: Value = serde_json::from_str(d).unwrap();
                if v["name"] == "orders" {
                    v["aws"] = json!({"account_id": ACCOUNT});
                }
                *d = v.to_string();
            }
        }
        out.push((label, docs));
    }
    out
}

/// Expressions and the labels of the traces they select.
pub const EXPRESSIONS: &[(&str, &[&str])] = &[
    ("fault", &["py", "node", "s0"]),
    ("!fault", &["s1", "s2", "s5", "s7"]),
    ("error", &["s1", "s2"]),
    ("throttle", &["s1"]),
    ("ok", &["s5", "s7"]),
    ("fault = false", &["s1", "s2", "s5", "s7"]),
    ("http.status = 502", &["py", "node"]),
    ("http.status >= 400 AND http.status < 500", &["s1", "s2"]),
    ("responsetime > 0.1", &["s5"]),
    ("duration < 0.02", &["py"]),
    ("annotation.tier = \"gold\"", &["s0"]),
    ("annotation.items = 3", &["py", "node"]),
    ("annotation.items >= 2", &["py", "node", "s2", "s7"]),
    ("annotation.express = true", &["py", "node"]),
    ("annotation.order BEGINSWITH \"ord-\"", SHOP),
    ("annotation.warehouse", SHOP),
    ("annotation[tier] = \"gold\"", &["s0"]),
    ("annotation[\"warehouse\"] = \"wh-1\"", &["s1", "s5"]),
    ("!annotation[warehouse]", &["py", "node"]),
    ("service(\"orders\") { fault }", &["s0"]),
    ("service(\"payments.example.com\") { throttle }", &["s1"]),
    (
        "service(id(name: \"DynamoDB\", type: \"AWS::DynamoDB\"))",
        ALL,
    ),
    ("service(\"orders\") { inferred }", &[]),
    ("service(id(account.id: \"123456789012\"))", &["s7"]),
    (
        "edge(\"frontend\", id(name: \"orders\", account.id: \"123456789012\"))",
        &["s7"],
    ),
    ("id(account.id: \"999999999999\")", &[]),
    (
        "edge(\"frontend\", \"orders\") { responsetime > 0.1 }",
        &["s5"],
    ),
    (
        "edge(\"checkout-api\", \"payments.example.com\") { fault }",
        &["py", "node"],
    ),
    ("edge(\"client\", \"frontend\")", SHOP),
    ("edge(\"client\", \"frontend\") { error }", &["s1", "s2"]),
    (
        "edge(\"client\", \"checkout-api\") { fault }",
        &["py", "node"],
    ),
    ("user = \"user-1234\"", &["py", "node"]),
    (
        "user BEGINSWITH \"user-\" AND !annotation.order",
        &["py", "node"],
    ),
    ("http.url CONTAINS \"/cart/\"", SHOP),
    (
        "http.method = \"POST\" AND annotation.tier = \"gold\"",
        &["s0"],
    ),
    ("message CONTAINS \"returned 500\"", &["py", "node"]),
    ("fault OR throttle", &["py", "node", "s0", "s1"]),
    ("name = \"orders\"", SHOP),
    ("type = \"AWS::ECS::Container\"", SHOP),
    ("ok !partial duration < 3", &["s5", "s7"]),
    ("FAULT and Annotation.tier = \"gold\"", &["s0"]),
    ("http.useragent ENDSWITH \"(node)\"", &["node"]),
    ("!(ok OR error)", &["py", "node", "s0"]),
    (
        "id(name: \"checkout-api\") AND http.clientip = \"203.0.113.7\"",
        &["py", "node"],
    ),
    // Root causes, as stored with each trace's summary.
    ("rootcause.fault.service", &["py", "node", "s0"]),
    (
        "!rootcause.error.service",
        &["py", "node", "s0", "s5", "s7"],
    ),
    (
        "rootcause.fault.service { name = \"payments.example.com\" }",
        &["py", "node"],
    ),
    ("rootcause.fault.service { name = \"orders\" }", &["s0"]),
    (
        "rootcause.fault.service { last AND inferred AND type = \"remote\" }",
        &["py", "node"],
    ),
    (
        "rootcause.fault.service { first AND name = \"checkout-api\" }",
        &["py", "node"],
    ),
    ("rootcause.fault.service { index > 0 }", &["py", "node"]),
    (
        "rootcause.fault.entity { last AND remote AND name = \"payments.example.com\" }",
        &["py", "node"],
    ),
    ("rootcause.fault.entity { name = \"charge_card\" }", &["py"]),
    ("rootcause.fault.entity { index = 2 }", &["py"]),
    (
        "rootcause.fault.exception { last AND name = \"PaymentGatewayError\" }",
        &["py", "node"],
    ),
    (
        "rootcause.fault.exception { message CONTAINS \"returned 500\" }",
        &["py", "node"],
    ),
    ("rootcause.error.service { name = \"orders\" }", &["s1"]),
    (
        "rootcause.error.service { name = \"frontend\" }",
        &["s1", "s2"],
    ),
    ("rootcause.error.entity { remote }", &["s1"]),
    (
        "rootcause.responsetime.service { last AND type = \"AWS::DynamoDB\" }",
        &["s2", "s5"],
    ),
    (
        "rootcause.responsetime.entity { remote AND coverage > 0.6 AND name = \"DynamoDB\" }",
        &["s5"],
    ),
    (
        "rootcause.responsetime.entity { last AND coverage > 0.5 }",
        &["s0", "s5", "s7"],
    ),
];
