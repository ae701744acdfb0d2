//! Property tests of the scrubber on generated documents full of PII glued to random text, also
//! percent-encoded and `\u`-escaped, in map keys, arrays of strings, string causes and
//! non-object items: scrubbing is idempotent, no built-in detector finds anything in its
//! output, the output has the same JSON structure, and the typed and text walks agree with the
//! JSON walk (the text walk gives up exactly when a key is rewritten). A value that looks like
//! one of the scrubber's placeholders does not shield the PII it holds.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use proptest::prelude::*;
use roentgen_sdk::model::Segment;
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};
use serde_json::{Map, Value, json};

mod support;
use support::keys_of;

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

/// `text` with every character but letters and digits written as `escape` writes it.
fn escaped(text: &str, escape: fn(char) -> String) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                escape(c)
            }
        })
        .collect()
}

/// A character as `%XX` escapes of its UTF-8 bytes.
fn percent(c: char) -> String {
    let mut buf = [0; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

/// A character as JSON `\u` escapes of its UTF-16 units.
fn unicode(c: char) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)
        .iter()
        .map(|u| format!("\\u{u:04x}"))
        .collect()
}

/// PII as written, percent-encoded or `\u`-escaped.
fn pii_form() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => pii(),
        1 => pii().prop_map(|p| escaped(&p, percent)),
        1 => pii().prop_map(|p| escaped(&p, unicode)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-zA-Z0-9 ,.;:=/()-]{0,6}", pii_form()), 0..4).prop_map(|parts| {
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

/// A map key: a word, or PII (metadata keyed by e-mail, cards as keys).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => pii_form(),
    ]
}

fn free_form() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn annotations() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(KEYS), scalar(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// What a document may hold besides the usual: a string `cause`, a string among its
/// subsegments, a string among its exceptions and an exception's string `cause`.
#[derive(Debug, Clone)]
struct Oddities {
    cause: Option<String>,
    subsegment: Option<String>,
    exception: Option<String>,
    exception_cause: Option<String>,
}

fn oddities() -> impl Strategy<Value = Oddities> {
    let maybe = || prop::option::weighted(0.2, text());
    (maybe(), maybe(), maybe(), maybe()).prop_map(
        |(cause, subsegment, exception, exception_cause)| Oddities {
            cause,
            subsegment,
            exception,
            exception_cause,
        },
    )
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
        oddities(),
    );
    let subsegments = if depth == 0 {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(document(depth - 1), 0..3).boxed()
    };
    (fields, subsegments)
        .prop_map(|((ann, meta, url, user, sql, message, id, odd), subs)| {
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
            if let Some(cause) = odd.exception_cause {
                doc["cause"]["exceptions"][0]["cause"] = Value::String(cause);
            }
            if let Some(item) = odd.exception
                && let Some(items) = doc["cause"]["exceptions"].as_array_mut()
            {
                items.push(Value::String(item));
            }
            if let Some(cause) = odd.cause {
                doc["cause"] = Value::String(cause);
            }
            let mut subs = subs;
            if let Some(item) = odd.subsegment {
                subs.push(Value::String(item));
            }
            if !subs.is_empty() {
                doc["subsegments"] = Value::Array(subs);
            }
            doc
        })
        .boxed()
}

/// The structure of a JSON value with every scalar and key that may be rewritten made equal
/// (an object becomes the list of its members' structures, in order).
fn shape(value: &Value) -> Value {
    match value {
        Value::String(_) | Value::Number(_) => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => json!({"object": map.values().map(shape).collect::<Vec<_>>()}),
        other => other.clone(),
    }
}

/// Every string and key a scrubber looks at.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        // Ids and names are never scrubbed (an all-digit id may look like a card).
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "id" | "trace_id" | "parent_id" | "name"))
            .for_each(|(k, v)| {
                out.push(k);
                strings(v, out);
            }),
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
        if serde_json::from_value::<Segment>(doc.clone()).is_ok() {
            let bytes = serde_json::to_vec(&once).expect("serialize");
            let _: Segment = serde_json::from_slice(&bytes).expect("still a valid document");
        }
    }

    #[test]
    fn typed_and_json_walks_agree(doc in document(2)) {
        let scrubber = &*SCRUBBER;
        let mut as_value = doc.clone();
        let report = scrubber.scrub(&mut as_value);
        // Strings among subsegments or exceptions are not typed documents.
        if let Ok(mut typed) = serde_json::from_value::<Segment>(doc.clone()) {
            let typed_report = scrubber.scrub_segment(&mut typed);
            prop_assert_eq!(&report, &typed_report);
            prop_assert_eq!(serde_json::to_value(&typed).expect("serialize"), as_value.clone());
        }
        let renamed = keys_of(&doc) != keys_of(&as_value);
        for text in [doc.to_string(), serde_json::to_string_pretty(&doc).expect("pretty")] {
            let mut out = String::new();
            match scrubber.scrub_json_text(&text, &mut out) {
                Some(text_report) => {
                    prop_assert!(!renamed, "a key was rewritten but the text walk did not give up");
                    prop_assert_eq!(&text_report, &report);
                    let result = if out.is_empty() { text.as_str() } else { out.as_str() };
                    prop_assert_eq!(serde_json::from_str::<Value>(result).expect("parses"), as_value.clone());
                }
                None => prop_assert!(renamed, "the text walk gave up with no key to rewrite"),
            }
        }
    }

    #[test]
    fn a_look_alike_placeholder_shields_nothing(
        name in prop::sample::select(vec!["email", "card", "secret", "x", "field"]),
        hash in prop::option::of("[0-9a-f]{16}"),
        secret in pii(),
        glue in prop::sample::select(vec!["#", "] ", "]", " | "]),
    ) {
        let scrubber = &*SCRUBBER;
        let hash = hash.map(|h| format!("#{h}")).unwrap_or_default();
        for forged in [
            format!("[{name}{hash}{glue}{secret}]"),
            format!("[{name}{hash}]{glue}{secret}"),
            format!("{secret}{glue}[{name}{hash}]"),
        ] {
            let mut once = forged.clone();
            scrubber.scrub_text(&mut once);
            // Whatever scrubbing the PII alone removes, the look-alike does not shield.
            let mut alone = secret.clone();
            scrubber.scrub_text(&mut alone);
            if !alone.contains(&secret) {
                prop_assert!(!once.contains(&secret), "{:?} survived in {:?}", secret, once);
            }
            prop_assert!(!scrubber.finds_anything(&once), "a pattern survived in {:?}", once);
            let mut twice = once.clone();
            prop_assert!(scrubber.scrub_text(&mut twice).is_clean());
            prop_assert_eq!(twice, once);
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
            None => prop_assert!(
                shape(&once) != shape(&doc) || keys_of(&once) != keys_of(&doc),
                "gave up without a drop or a key to rewrite"
            ),
        }
        if let Ok(mut typed) = serde_json::from_value::<Segment>(doc) {
            scrubber.scrub_segment(&mut typed);
            prop_assert_eq!(serde_json::to_value(&typed).expect("serialize"), once);
        }
    }
}
