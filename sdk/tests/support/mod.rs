//! Helpers the scrubber's integration tests share.

use serde_json::Value;

/// Every key of a JSON value, in document order (a scrubbed document differs from its input
/// in these exactly when a key was rewritten).
pub fn keys_of(value: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}
