//! Documents as the daemon scrubs them (`Scrubber::scrub_json_text`, once per datagram): the
//! text pass accepts only what `serde_json` accepts, agrees with the `Value` walk, writes JSON,
//! and a second pass over its output changes nothing.
//!
//! Where an object repeats a key, the text pass scrubs every copy and the `Value` walk sees
//! only the last one (as `serde_json` keeps it): the documents agree, the counts may not. The
//! text pass gives up where a map key must be rewritten; the `Value` walk decides then.
#![no_main]

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use roentgen_sdk::scrub::{ScrubConfig, Scrubber};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The built-in detectors, redacting: the text pass never has to give up on a valid document.
static PLAIN: LazyLock<Scrubber> = LazyLock::new(Scrubber::default);

/// Hashes, drops (where the text pass gives up), exempts a field and applies a field rule.
static MIXED: LazyLock<Scrubber> = LazyLock::new(|| {
    // The property tests' mixed configuration (`sdk/tests/scrub_properties.rs`).
    let config = ScrubConfig::from_toml_str(include_str!("../../sdk/tests/scrub_mixed.toml"))
        .unwrap_or_else(|e| panic!("fuzz scrub config: {e}"));
    Scrubber::new(&config).unwrap_or_else(|e| panic!("fuzz scrubber: {e}"))
});

/// Nesting of arrays and objects (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Every key of a JSON value, in order.
fn keys(value: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => {
                for (k, v) in map.iter().rev() {
                    stack.push(v);
                    out.push(k.as_str());
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether some object in a JSON text repeats a key.
struct RepeatsKey(bool);

impl<'de> Deserialize<'de> for RepeatsKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RepeatsKeyVisitor)
    }
}

struct RepeatsKeyVisitor;

impl<'de> Visitor<'de> for RepeatsKeyVisitor {
    type Value = RepeatsKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RepeatsKey, A::Error> {
        let mut keys = HashSet::new();
        let mut repeats = false;
        while let Some(key) = map.next_key::<String>()? {
            repeats |= !keys.insert(key);
            repeats |= map.next_value::<RepeatsKey>()?.0;
        }
        Ok(RepeatsKey(repeats))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RepeatsKey, A::Error> {
        let mut repeats = false;
        while let Some(item) = seq.next_element::<RepeatsKey>()? {
            repeats |= item.0;
        }
        Ok(RepeatsKey(repeats))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RepeatsKey, E> {
        Ok(RepeatsKey(false))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    for (scrubber, may_drop) in [(&*PLAIN, false), (&*MIXED, true)] {
        let mut out = String::new();
        let Some(report) = scrubber.scrub_json_text(text, &mut out) else {
            // Giving up is for what serde_json refuses, deep nesting, a drop, or a map key
            // to rewrite.
            let decidable = parsed
                .as_ref()
                .is_some_and(|v| v.is_object() && depth(v) < 90);
            let renames = parsed.as_ref().is_some_and(|v| {
                let mut scrubbed = v.clone();
                scrubber.scrub(&mut scrubbed);
                keys(&scrubbed) != keys(v)
            });
            assert!(may_drop || renames || !decidable, "gave up on {text:?}");
            continue;
        };
        let Some(value) = parsed.clone() else {
            panic!("the text pass accepted what serde_json refuses: {text:?}")
        };
        let result = if out.is_empty() { text } else { out.as_str() };
        let mut expected = value;
        let value_report = scrubber.scrub(&mut expected);
        let repeats = serde_json::from_str::<RepeatsKey>(text).is_ok_and(|r| r.0);
        if !repeats {
            assert_eq!(report, value_report, "reports differ on {text:?}");
        }
        let got: Value = serde_json::from_str(result)
            .unwrap_or_else(|e| panic!("rewritten {result:?} is not JSON: {e}"));
        assert_eq!(got, expected, "text and Value walks differ on {text:?}");
        let mut again = String::new();
        let second = scrubber
            .scrub_json_text(result, &mut again)
            .unwrap_or_else(|| panic!("gave up on its own output {result:?}"));
        assert!(
            second.is_clean() && again.is_empty(),
            "a second pass changed {result:?}: {:?}",
            second.by_detector()
        );
    }
});
