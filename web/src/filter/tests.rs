use std::collections::BTreeSet;

use super::cases::{EXPRESSIONS, labelled_documents};
use super::*;
use crate::assembly::{TraceSummary, fold_trace};
use crate::test_support::prepared;

/// The labelled traces of [`super::cases`], folded in memory (each labelled by its id).
fn traces() -> Vec<(&'static str, TraceSummary)> {
    labelled_documents()
        .into_iter()
        .map(|(label, docs)| {
            let facts: Vec<_> = prepared(&docs)
                .into_iter()
                .map(|d| (*d.facts).clone())
                .collect();
            (label, fold_trace(label, &facts).summary)
        })
        .collect()
}

#[test]
fn expressions_select_the_expected_traces() {
    let table = EXPRESSIONS;
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
            "fault )",
            "column 7: expected AND, OR or the end of the expression, found \")\"",
        ),
        (
            "edge(\"a\") { fault }",
            "column 9: expected \",\", found \")\"",
        ),
        ("responsetime > 1 $", "column 18: unexpected character '$'"),
        (
            "service(id(nme: \"x\"))",
            "column 12: expected name, type or account.id, found \"nme\"",
        ),
        (
            "fault = maybe",
            "column 9: expected true or false, found \"maybe\"",
        ),
        (
            "AND fault",
            "column 1: expected a keyword before AND, found \"AND\"",
        ),
        (
            "duration > 1e999",
            "column 12: number 1e999 is out of range",
        ),
        // Keywords where they would mean nothing are refused, never left to match nothing.
        (
            "coverage > 0.5",
            "column 1: coverage applies only inside rootcause.responsetime.entity { }",
        ),
        (
            "service(\"a\") { index = 1 }",
            "column 16: index applies only inside rootcause.KIND.service|entity|exception { }",
        ),
        (
            "rootcause.fault.entity { coverage > 0.5 }",
            "column 26: coverage does not apply inside rootcause.fault.entity { }: expected one of name, remote, first, last, index",
        ),
        (
            "rootcause.fault.service { annotation.tier = \"gold\" }",
            "column 27: annotation.tier does not apply inside rootcause.fault.service { }: expected one of name, type, inferred, remote, first, last, index",
        ),
        (
            "rootcause.error.exception { service(\"a\") }",
            "column 29: service does not apply inside rootcause.error.exception { }: expected one of name, message, first, last, index",
        ),
        (
            "edge(\"a\", \"b\") { http.status = 500 }",
            "column 18: http.status is not recorded per edge: use service(...) { http.status ... }",
        ),
        (
            "rootcause.responsetime.exception { name = \"x\" }",
            "column 1: response-time root causes record no exceptions: expected rootcause.responsetime.service or rootcause.responsetime.entity",
        ),
        (
            "rootcause.fault { name = \"x\" }",
            "column 1: expected rootcause.fault, rootcause.error or rootcause.responsetime followed by .service, .entity or .exception, found \"rootcause.fault\"",
        ),
        (
            "rootcause.fault.services",
            "column 1: expected rootcause.fault, rootcause.error or rootcause.responsetime followed by .service, .entity or .exception, found \"rootcause.fault.services\"",
        ),
        (
            "rootcause.json = #[{}]",
            "column 18: rootcause.json is not supported: match root causes with rootcause.fault|error|responsetime.service|entity|exception { ... }",
        ),
        (
            "rootcause.json",
            "column 1: rootcause.json is not supported: match root causes with rootcause.fault|error|responsetime.service|entity|exception { ... }",
        ),
        ("annotation[ ] = 1", "column 11: empty [ ]: expected a key"),
        (
            "annotation[tier = 1",
            "column 11: unterminated [ (expected ])",
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
    // A service's or an edge's fault or throttle is its trace's; nothing else in the body is.
    let e = parse("service(\"api\") { fault AND responsetime > 1 AND error }").unwrap();
    assert_eq!(
        e.pushdown(),
        vec![Pushdown::Service("api".into()), Pushdown::HasFault(true)]
    );
    let e = parse("edge(\"a\", \"b\") { throttle }").unwrap();
    assert_eq!(
        e.pushdown(),
        vec![
            Pushdown::Service("a".into()),
            Pushdown::Service("b".into()),
            Pushdown::HasThrottle(true)
        ]
    );
    let e = parse("service(\"api\") { !fault OR throttle }").unwrap();
    assert_eq!(e.pushdown(), vec![Pushdown::Service("api".into())]);
    // The client node is no service of its trace: an edge from it pushes down only its other end.
    let e = parse("edge(\"client\", \"web\") { error }").unwrap();
    assert_eq!(e.pushdown(), vec![Pushdown::Service("web".into())]);
    let e = parse("edge(id(name: \"client\", type: \"AWS::EC2::Instance\"), \"web\")").unwrap();
    assert_eq!(
        e.pushdown(),
        vec![
            Pushdown::Service("client".into()),
            Pushdown::Service("web".into())
        ]
    );
    // A fault root cause is a fault of its trace.
    let e = parse("rootcause.fault.entity { last }").unwrap();
    assert_eq!(e.pushdown(), vec![Pushdown::HasFault(true)]);
    assert!(
        parse("rootcause.error.service")
            .unwrap()
            .pushdown()
            .is_empty()
    );
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

/// `open` `n` times, then `fault`, then `close` `n` times.
fn nested(open: &str, n: usize, close: &str) -> String {
    format!("{}fault{}", open.repeat(n), close.repeat(n))
}

#[test]
fn nesting_past_the_limit_is_refused_at_its_column() {
    let deep: &[(String, usize)] = &[
        // 2,000 `(` is a 2 KB request body; each opened a stack frame or four.
        (nested("(", 2_000, ")"), 65),
        (nested("!", 3_000, ""), 65),
        (nested("!(", 1_000, ")"), 65),
        (nested("service(\"a\") { ", 100, " }"), 64 * 15 + 14),
        (format!("{}fault = false", "!".repeat(64)), 65),
        // Unclosed: refused at the level, not at the missing `)`.
        (nested("(", 2_000, ""), 65),
    ];
    for (text, column) in deep {
        let err = parse(text).expect_err("too deep");
        assert_eq!(
            err,
            FilterError {
                column: *column,
                message: "nesting deeper than 64".to_owned()
            },
            "{}",
            &text[..40]
        );
    }
    for text in [
        nested("(", 64, ")"),
        nested("!", 64, ""),
        nested("!(", 32, ")"),
        nested("service(\"a\") { ", 64, " }"),
        format!("{}fault = false", "!".repeat(63)),
    ] {
        let e = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.nesting() <= MAX_NESTING, "{text}");
        // Printing gives a text as deep as the tree, which parses back the same.
        assert_eq!(parse(&e.to_string()).as_ref(), Ok(&e), "{text}");
    }
}

#[test]
fn long_and_or_chains_stay_flat() {
    // 100,000 terms: a left-deep tree of binary nodes this long overflowed every walk.
    let text = vec!["fault AND error OR throttle"; 50_000].join(" OR ");
    let e = parse(&text).unwrap();
    assert_eq!(e.nesting(), 0);
    let Expr::Or(terms) = &e else {
        panic!("not an OR")
    };
    assert_eq!(terms.len(), 100_000);
    let traces = traces();
    let matching = traces.iter().filter(|(_, t)| matches(&e, t)).count();
    assert_eq!(matching, 1, "fault and error, or throttle");
    assert_eq!(e.to_string(), text);
    assert!(e.pushdown().is_empty());
    let and = vec!["fault"; 100_000].join(" AND ");
    assert_eq!(parse(&and).unwrap().pushdown().len(), 100_000);
}

#[test]
fn printing_adds_parentheses_only_where_needed() {
    for (text, printed) in [
        (
            "a.b AND (c OR d) AND e",
            "annotation.b AND (annotation.c OR annotation.d) AND annotation.e",
        ),
        ("(fault AND error) AND ok", "(fault AND error) AND ok"),
        ("fault AND error OR ok", "fault AND error OR ok"),
        (
            "!(fault OR ok) OR (error OR ok)",
            "!(fault OR ok) OR (error OR ok)",
        ),
        ("((((fault))))", "fault"),
        (
            "service(\"a\") { (fault OR ok) }",
            "service(\"a\") { fault OR ok }",
        ),
    ] {
        let text = text.replace("a.b", "annotation.b");
        let text = text.replace(
            "c OR d) AND e",
            "annotation.c OR annotation.d) AND annotation.e",
        );
        let e = parse(&text).unwrap();
        assert_eq!(e.to_string(), printed, "{text}");
        assert_eq!(parse(printed).unwrap(), e);
    }
}

/// A lookup over `(name, filter expression)` pairs.
fn groups<'a>(table: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<Option<String>> + 'a {
    |name| {
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| Some((*text).to_owned()))
    }
}

fn resolve(text: &str, table: &[(&str, &str)]) -> Result<Expr, String> {
    parse(text).unwrap().resolve_groups(&groups(table))
}

#[test]
fn groups_naming_themselves_are_refused() {
    let err = resolve(
        "group.name = \"a\"",
        &[("a", "fault OR group.name = \"a\"")],
    )
    .unwrap_err();
    assert_eq!(err, "group \"a\" refers to itself (through a)");
    let cycle = &[
        ("a", "group.name = \"b\""),
        ("b", "fault AND group.name = \"c\""),
        ("c", "!group.name = \"a\""),
    ];
    let err = resolve("ok OR group.name = \"b\"", cycle).unwrap_err();
    assert_eq!(err, "group \"b\" refers to itself (through b -> c -> a)");
}

#[test]
fn group_chains_and_expansions_are_bounded() {
    let names: Vec<String> = (0..=MAX_GROUP_CHAIN).map(|i| format!("g{i}")).collect();
    let chain: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let text = names.get(i + 1).map_or("fault".to_owned(), |next| {
                format!("group.name = \"{next}\"")
            });
            (n.clone(), text)
        })
        .collect();
    let table: Vec<(&str, &str)> = chain
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        resolve("group.name = \"g1\"", &table),
        Ok(Expr::Flag(Flag::Fault))
    );
    let err = resolve("group.name = \"g0\"", &table).unwrap_err();
    assert!(err.contains("too deeply"), "{err}");

    // Each group names the next one four times: 4^5 expansions.
    let wide: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("w{i}"),
                vec![format!("group.name = \"w{}\"", i + 1); 4].join(" OR "),
            )
        })
        .chain([("w5".to_owned(), "fault".to_owned())])
        .collect();
    let table: Vec<(&str, &str)> = wide.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert!(resolve("group.name = \"w3\"", &table).is_ok());
    let err = resolve("group.name = \"w0\"", &table).unwrap_err();
    assert_eq!(
        err,
        "the expression names more than 256 groups once resolved"
    );
}

#[test]
fn groups_put_in_place_keep_the_nesting_bound() {
    let deep = nested("!", 63, "");
    let table = &[
        ("deep", deep.as_str()),
        ("deeper", "!group.name = \"deep\""),
    ];
    let e = resolve("!group.name = \"deep\"", table).unwrap();
    assert_eq!(e.nesting(), MAX_NESTING);
    for text in [
        "!!group.name = \"deep\"",
        "!group.name = \"deeper\"",
        "service(\"a\") { group.name = \"deeper\" }",
    ] {
        let err = resolve(text, table).unwrap_err();
        assert!(
            err.starts_with("nesting deeper than 64 once group"),
            "{text}: {err}"
        );
    }
    // An OR put under an AND needs parentheses: one more level.
    let or = format!("{} OR ok", nested("!", 63, ""));
    let table = &[("or", or.as_str())];
    assert_eq!(resolve("group.name = \"or\"", table).unwrap().nesting(), 63);
    assert!(resolve("fault AND group.name = \"or\"", table).is_ok());
    assert!(resolve("!group.name = \"or\"", table).is_err());
}

#[test]
fn a_trace_id_in_either_form_selects_that_trace_and_a_bad_one_is_named() {
    let xray = "1-5759e988-bd862e3fe1be46a994272793";
    for text in [
        format!("id(\"{xray}\")"),
        "id(\"5759E988BD862E3FE1BE46A994272793\")".to_owned(),
    ] {
        let expr = parse(&text).unwrap();
        assert_eq!(expr, Expr::TraceId(xray.to_owned()));
        assert_eq!(expr.to_string(), format!("id(\"{xray}\")"));
        assert_eq!(expr.pushdown(), [Pushdown::TraceId(xray.to_owned())]);
    }
    let mut summary = traces().remove(0).1;
    summary.id = xray.to_owned();
    let both = parse("id(\"5759e988bd862e3fe1be46a994272793\") AND fault").unwrap();
    assert!(matches(&both, &summary));
    let other = parse("id(\"1-5759e988-bd862e3fe1be46a994272794\")").unwrap();
    assert!(!matches(&other, &summary));
    let bad = parse("id(\"5759e988\")").unwrap_err().to_string();
    assert!(bad.contains("takes a trace id"), "{bad}");
    // The service form is unchanged.
    assert!(matches!(parse("id(name: \"orders\")"), Ok(Expr::Id(_))));
}

/// Exact pushdowns are offered only for terms the stores' indexes answer exactly.
#[test]
fn exact_pushdown_is_offered_only_for_what_indexes_answer_exactly() {
    for (text, exact) in [
        ("fault", true),
        ("!throttle AND http.status = 404", true),
        ("responsetime >= 1.5 AND duration < 3", true),
        ("annotation.tier = \"gold\" AND service(\"web\")", true),
        ("annotation.n = 1", true),
        ("id(name: \"web\")", true),
        ("id(\"1-5f84c7a5-0123456789abcdef01234567\")", true),
        ("annotation.n = 0", false),
        ("annotation.n > 1", false),
        ("annotation.tier", false),
        ("responsetime != 1", false),
        ("http.status = 404.5", false),
        ("service(\"web\") { fault }", false),
        ("id(name: \"web\", type: \"AWS::EC2::Instance\")", false),
        ("fault OR error", false),
        ("ok", false),
        ("partial", false),
        ("http.url CONTAINS \"x\"", false),
        ("edge(\"a\", \"b\")", false),
        ("rootcause.fault.service { name = \"a\" }", false),
    ] {
        let expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        match expr.exact_pushdown() {
            Some(p) => {
                assert!(exact, "{text} offered as exact: {p:?}");
                assert_eq!(p, expr.pushdown(), "{text}");
            }
            None => assert!(!exact, "{text} not offered as exact"),
        }
    }
}
