use std::collections::BTreeSet;

use super::*;
use crate::assembly::{TraceSummary, fold_trace};
use crate::test_support::{capture_documents, prepared};

/// Labelled traces: the two official SDK checkout captures and synthetic shop traces.
/// Shop trace n: n % 20 == 0 → 500 (orders faults); 1 → 429 (payments throttled);
/// 2 → 404; otherwise 200. Tier gold/silver/bronze by n % 3; POST when n % 3 == 0.
fn traces() -> Vec<(&'static str, TraceSummary)> {
    let mut out = Vec::new();
    for (label, capture) in [
        ("py", "python-sdk-2.15-checkout.txt"),
        ("node", "node-sdk-3.12-checkout.txt"),
    ] {
        let facts: Vec<_> = prepared(&capture_documents(capture))
            .into_iter()
            .map(|d| d.facts)
            .collect();
        out.push((label, fold_trace(label, &facts).summary));
    }
    for (label, n) in [("s0", 0), ("s1", 1), ("s2", 2), ("s5", 5), ("s7", 7)] {
        let docs = crate::synth::shop_trace(n, 1_800_000_000.0);
        let facts: Vec<_> = prepared(&docs).into_iter().map(|d| d.facts).collect();
        out.push((label, fold_trace(label, &facts).summary));
    }
    out
}

const ALL: &[&str] = &["py", "node", "s0", "s1", "s2", "s5", "s7"];
const SHOP: &[&str] = &["s0", "s1", "s2", "s5", "s7"];

#[test]
fn expressions_select_the_expected_traces() {
    let table: &[(&str, &[&str])] = &[
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
        ("service(\"orders\") { fault }", &["s0"]),
        ("service(\"payments.example.com\") { throttle }", &["s1"]),
        (
            "service(id(name: \"DynamoDB\", type: \"AWS::DynamoDB\"))",
            ALL,
        ),
        ("service(\"orders\") { inferred }", &[]),
        (
            "edge(\"frontend\", \"orders\") { responsetime > 0.1 }",
            &["s5"],
        ),
        (
            "edge(\"checkout-api\", \"payments.example.com\") { fault }",
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
        (
            "rootcause.fault.service { name = \"payments.example.com\" }",
            &["py", "node"],
        ),
        ("rootcause.fault.service { name = \"orders\" }", &["s0"]),
        ("FAULT and Annotation.tier = \"gold\"", &["s0"]),
        ("http.useragent ENDSWITH \"(node)\"", &["node"]),
        ("!(ok OR error)", &["py", "node", "s0"]),
        (
            "id(name: \"checkout-api\") AND http.clientip = \"203.0.113.7\"",
            &["py", "node"],
        ),
    ];
    let traces = traces();
    for (text, expected) in table {
        let expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got: BTreeSet<&str> = traces
            .iter()
            .filter(|(_, t)| matches(&expr, t))
            .map(|(l, _)| *l)
            .collect();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(got, want, "{text}");
        // Printing and parsing again gives the same expression.
        let printed = expr.to_string();
        assert_eq!(
            parse(&printed).unwrap(),
            expr,
            "{text} printed as {printed}"
        );
    }
}

#[test]
fn malformed_expressions_point_at_the_column() {
    let table: &[(&str, &str)] = &[
        ("", "column 1: the expression is empty"),
        (
            "responsetime >",
            "column 15: expected a value after >, found the end of the expression",
        ),
        (
            "fault AND",
            "column 10: expected a keyword, service(...), edge(...), \"!\" or \"(\", found the end of the expression",
        ),
        ("annotation.tier = \"gold", "column 19: unterminated string"),
        (
            "http.status = \"500\"",
            "column 15: http.status is a number: expected a number after =",
        ),
        (
            "http.url > 3",
            "column 10: http.url is a string: expected =, !=, CONTAINS, BEGINSWITH or ENDSWITH, found >",
        ),
        ("servce(\"a\")", "column 1: unknown keyword \"servce\""),
        (
            "service(\"a\" { fault }",
            "column 13: expected \")\", found \"{\"",
        ),
        (
            "(fault OR error",
            "column 16: expected \")\", found the end of the expression",
        ),
        (
            "fault error",
            "column 7: expected AND, OR or the end of the expression, found \"error\"",
        ),
        (
            "edge(\"a\") { fault }",
            "column 9: expected \",\", found \")\"",
        ),
        ("responsetime > 1 $", "column 18: unexpected character '$'"),
        (
            "service(id(nme: \"x\"))",
            "column 12: expected name or type, found \"nme\"",
        ),
        (
            "fault = maybe",
            "column 9: expected true or false, found \"maybe\"",
        ),
        (
            "AND fault",
            "column 1: expected a keyword before AND, found \"AND\"",
        ),
    ];
    for (text, message) in table {
        let err = parse(text).expect_err(text);
        assert_eq!(err.to_string(), *message, "{text}");
    }
}

#[test]
fn pushdown_takes_only_necessary_conditions() {
    let e = parse("fault AND annotation.tier = \"gold\" AND (error OR service(\"x\"))").unwrap();
    assert_eq!(
        e.pushdown(),
        vec![
            Pushdown::HasFault(true),
            Pushdown::AnnotationEquals("tier".into(), "gold".into())
        ]
    );
    let e = parse("!fault AND service(\"api\") { error } AND responsetime > 2").unwrap();
    assert_eq!(
        e.pushdown(),
        vec![
            Pushdown::HasFault(false),
            Pushdown::Service("api".into()),
            Pushdown::ResponseTime(">", 2.0)
        ]
    );
    assert!(parse("fault OR error").unwrap().pushdown().is_empty());
}

#[test]
fn groups_resolve_to_their_expression() {
    let e = parse("group.name = \"slow\" AND fault").unwrap();
    let resolved = e
        .resolve_groups(&|n| (n == "slow").then(|| Some("responsetime > 1".to_owned())))
        .unwrap();
    assert_eq!(resolved, parse("responsetime > 1 AND fault").unwrap());
    let missing = parse("group.name = \"nope\"")
        .unwrap()
        .resolve_groups(&|_| None)
        .unwrap_err();
    assert!(missing.contains("does not exist"), "{missing}");
}
