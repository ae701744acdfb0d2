//! Property tests of the scrubber on generated documents full of PII glued to random text:
//! scrubbing is idempotent, no built-in detector finds anything in its output, the output has
//! the same JSON structure, and the typed and text walks agree with the JSON walk.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use proptest::prelude::*;
use roentgen_sdk::model::Segment;
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};
use serde_json::{Map, Value, json};

static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(Scrubber::default);

/// Hashes some kinds, drops fields holding others, exempts a field.
static MIXED: LazyLock<Scrubber> = LazyLock::new(|| {
    let config = ScrubConfig::from_toml_str(include_str!("scrub_mixed.toml")).expect("config");
    Scrubber::new(&config).expect("scrubber")
});

fn luhn_complete(mut digits: Vec<u32>) -> String {
    for check in 0..10 {
        digits.push(check);
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| match (i % 2, d * 2) {
                (1, x) if x > 9 => x - 9,
                (1, x) => x,
                _ => d,
            })
            .sum();
        if sum.is_multiple_of(10) {
            break;
        }
        digits.pop();
    }
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect()
}

fn card() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            ("4", 16),
            ("51", 16),
            ("37", 15),
            ("6011", 16),
            ("3530", 16),
        ]),
        prop::collection::vec(0u32..10, 18),
        prop::sample::select(vec!["", " ", "-"]),
    )
        .prop_map(|((prefix, len), rest, sep)| {
            let mut digits: Vec<u32> = prefix.chars().filter_map(|c| c.to_digit(10)).collect();
            digits.extend(rest.into_iter().take(len - 1 - digits.len()));
            let number = luhn_complete(digits);
            let groups: Vec<&str> = number
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            groups.join(sep)
        })
}

fn pii() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}(\\.[a-z]{1,5})?@[a-z]{2,8}\\.(com|org|io|co\\.kr)",
        card(),
        (1u32..900, 1u32..100, 1u32..10000)
            .prop_filter("area 666", |(a, _, _)| *a != 666)
            .prop_map(|(a, g, s)| format!("{a:03}-{g:02}-{s:04}")),
        (0u32..100, 1u32..13, 1u32..29, 1u32..5, 0u32..1_000_000)
            .prop_map(|(y, m, d, g, n)| format!("{y:02}{m:02}{d:02}-{g}{n:06}")),
        (200u32..1000, 200u32..1000, 0u32..10000).prop_map(|(a, b, c)| format!("({a}) {b}-{c:04}")),
        (1000u32..10000, 1000u32..10000).prop_map(|(a, b)| format!("010-{a}-{b}")),
        (200u32..1000, 200u32..1000, 0u32..10000)
            .prop_map(|(a, b, c)| format!("+1 {a} {b} {c:04}")),
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        (any::<[u16; 7]>(), 1u16..)
            .prop_map(
                |(g, last)| Ipv6Addr::new(0x2001, g[0], g[1], g[2], g[3], 0, 0, last).to_string()
            ),
        "(AKIA|ASIA)[A-Z0-9]{16}",
        "[A-Za-z0-9/+]{37}[A-Z][a-z][0-9]",
        "eyJ[A-Za-z0-9_-]{8,20}\\.eyJ[A-Za-z0-9_-]{8,30}\\.[A-Za-z0-9_-]{10,40}",
        "Bearer [A-Za-z0-9]{10,20}7",
        "(password|token|api_key|pwd)=[A-Za-z0-9!#]{1,12}",
        "https://[a-z]{1,6}:[a-z0-9]{1,8}@[a-z]{2,6}\\.com/",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-zA-Z0-9 ,.;:=/()-]{0,6}", pii()), 0..4).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(filler, pii)| format!("{filler} {pii}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

const KEYS: &[&str] = &[
    "note",
    "order",
    "email",
    "card_number",
    "password",
    "cvv",
    "phone",
    "items",
    "detail",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::String),
        1 => any::<u32>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
}

fn free_form() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn annotations() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(KEYS), scalar(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn document(depth: u32) -> BoxedStrategy<Value> {
    let fields = (
        annotations(),
        free_form(),
        text(),
        text(),
        text(),
        text(),
        any::<u64>(),
    );
    let subsegments = if depth == 0 {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(document(depth - 1), 0..3).boxed()
    };
    (fields, subsegments)
        .prop_map(|((ann, meta, url, user, sql, message, id), subs)| {
            let mut doc = json!({
                "name": "svc",
                "id": format!("{id:016x}"),
                "trace_id": "1-6b0b563f-bd5f12f36c129ba2856caf10",
                "start_time": 1795905087.5,
                "end_time": 1795905088.25,
                "user": user,
                "http": {"request": {"url": format!("https://shop.example.com/x?q={url}"), "method": "GET"},
                         "response": {"status": 200}},
                "sql": {"sanitized_query": sql},
                "annotations": ann,
                "metadata": {"default": meta},
                "cause": {"exceptions": [{"id": "5b7b903722d5dd88", "message": message}]},
            });
            if !subs.is_empty() {
                doc["subsegments"] = Value::Array(subs);
            }
            doc
        })
        .boxed()
}

/// The structure of a JSON value with every scalar that may be rewritten made equal.
fn shape(value: &Value) -> Value {
    match value {
        Value::String(_) | Value::Number(_) => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        other => other.clone(),
    }
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        // Ids and names are never scrubbed (an all-digit id may look like a card).
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "id" | "trace_id" | "parent_id" | "name"))
            .for_each(|(_, v)| strings(v, out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn scrubbing_is_idempotent_and_leaves_no_pattern(doc in document(2)) {
        let scrubber = &*SCRUBBER;
        let mut once = doc.clone();
        scrubber.scrub(&mut once);

        let mut twice = once.clone();
        let second = scrubber.scrub(&mut twice);
        prop_assert_eq!(&twice, &once);
        prop_assert!(second.is_clean(), "second pass found {:?}", second.by_detector());

        let mut all = Vec::new();
        strings(&once, &mut all);
        for s in all {
            prop_assert!(!scrubber.finds_anything(s), "a pattern survived in {:?}", s);
        }

        prop_assert_eq!(shape(&once), shape(&doc));
        let bytes = serde_json::to_vec(&once).expect("serialize");
        let _: Segment = serde_json::from_slice(&bytes).expect("still a valid document");
    }

    #[test]
    fn typed_and_json_walks_agree(doc in document(2)) {
        let scrubber = &*SCRUBBER;
        let mut as_value = doc.clone();
        let report = scrubber.scrub(&mut as_value);
        let mut typed: Segment = serde_json::from_value(doc.clone()).expect("parse");
        let typed_report = scrubber.scrub_segment(&mut typed);
        prop_assert_eq!(&report, &typed_report);
        prop_assert_eq!(serde_json::to_value(&typed).expect("serialize"), as_value.clone());
        for text in [doc.to_string(), serde_json::to_string_pretty(&doc).expect("pretty")] {
            let mut out = String::new();
            let text_report = scrubber.scrub_json_text(&text, &mut out);
            prop_assert_eq!(text_report.as_ref(), Some(&report));
            let result = if out.is_empty() { text.as_str() } else { out.as_str() };
            prop_assert_eq!(serde_json::from_str::<Value>(result).expect("parses"), as_value.clone());
        }
    }

    #[test]
    fn hashing_dropping_and_exemptions_are_idempotent(doc in document(2)) {
        let scrubber = &*MIXED;
        let mut once = doc.clone();
        scrubber.scrub(&mut once);
        let mut twice = once.clone();
        let second = scrubber.scrub(&mut twice);
        prop_assert_eq!(&twice, &once);
        prop_assert!(second.is_clean(), "second pass found {:?}", second.by_detector());
        prop_assert_eq!(&once["sql"], &doc["sql"]);
        // The text walk gives up only where a field is dropped, and otherwise agrees.
        let mut out = String::new();
        let text = doc.to_string();
        match scrubber.scrub_json_text(&text, &mut out) {
            Some(_) => {
                let result = if out.is_empty() { text.as_str() } else { out.as_str() };
                prop_assert_eq!(&serde_json::from_str::<Value>(result).expect("parses"), &once);
            }
            None => prop_assert!(shape(&once) != shape(&doc), "gave up without a drop"),
        }
        let mut typed: Segment = serde_json::from_value(doc).expect("parse");
        scrubber.scrub_segment(&mut typed);
        prop_assert_eq!(serde_json::to_value(&typed).expect("serialize"), once);
    }
}
