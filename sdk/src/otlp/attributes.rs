//! Reading OTLP attributes: lookups by the current semantic-convention name and the older
//! ones still sent by many SDKs, and conversion of any value to JSON.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde_json::{Map, Value};

/// Attributes of a span or a resource, read by key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attributes<'a>(pub &'a [KeyValue]);

impl<'a> Attributes<'a> {
    /// The first of `keys` present.
    pub fn get(&self, keys: &[&str]) -> Option<&'a Any> {
        keys.iter().find_map(|k| {
            self.0
                .iter()
                .find(|kv| kv.key == *k)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
        })
    }

    /// The first of `keys` present, as text (numbers and booleans printed).
    pub fn text(&self, keys: &[&str]) -> Option<String> {
        self.get(keys).and_then(text).filter(|s| !s.is_empty())
    }

    /// The first of `keys` present, as an integer (text parsed).
    pub fn int(&self, keys: &[&str]) -> Option<i64> {
        match self.get(keys)? {
            Any::IntValue(i) => Some(*i),
            Any::DoubleValue(f) if f.fract() == 0.0 => Some(*f as i64),
            Any::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The first of `keys` present, as a list of strings (a single string is a list of one).
    pub fn strings(&self, keys: &[&str]) -> Vec<String> {
        match self.get(keys) {
            Some(Any::ArrayValue(a)) => a
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().and_then(text))
                .collect(),
            Some(other) => text(other).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// A scalar value as text; `None` for lists, maps and bytes.
pub(super) fn text(value: &Any) -> Option<String> {
    match value {
        Any::StringValue(s) => Some(s.clone()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::DoubleValue(f) => Some(f.to_string()),
        _ => None,
    }
}

/// Any value as JSON: lists as arrays, maps as objects, bytes as hex text.
pub(super) fn to_json(value: Option<&AnyValue>) -> Value {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return Value::Null;
    };
    match value {
        Any::StringValue(s) => Value::String(s.clone()),
        Any::BoolValue(b) => Value::Bool(*b),
        Any::IntValue(i) => Value::from(*i),
        Any::DoubleValue(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Any::ArrayValue(a) => Value::Array(a.values.iter().map(|v| to_json(Some(v))).collect()),
        Any::KvlistValue(kv) => Value::Object(object(&kv.values)),
        Any::BytesValue(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        Any::StringValueStrindex(i) => Value::from(*i),
    }
}

/// Key-value pairs as a JSON object (a repeated key keeps its last value).
pub(super) fn object(pairs: &[KeyValue]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref())))
        .collect()
}
