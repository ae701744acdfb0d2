//! Puts subsegments that were streamed on their own back under their parents, so a trace reads
//! as whole segment documents whatever order its pieces arrived in.

use std::collections::HashMap;

use serde_json::Value;

/// One stored document of a trace, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// Document id.
    pub id: String,
    /// Parent id.
    pub parent_id: Option<String>,
    /// A subsegment sent on its own.
    pub subsegment: bool,
    /// Start time (orders siblings).
    pub start_time: f64,
    /// The JSON text as stored.
    pub document: String,
}

fn graft(node: &mut Value, pending: &mut HashMap<String, Vec<Value>>, depth: usize) {
    if depth > 64 {
        return;
    }
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(children) = id.and_then(|id| pending.remove(&id)) {
        let subs = obj
            .entry("subsegments")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = subs {
            list.extend(children);
        }
    }
    if let Some(Value::Array(list)) = obj.get_mut("subsegments") {
        for child in list {
            graft(child, pending, depth + 1);
        }
    }
}

/// Returns `(id, document)` per segment, with streamed subsegments grafted under the segment
/// or subsegment their `parent_id` names. Pieces whose parent is not stored stay on their own.
pub fn assemble_documents(mut pieces: Vec<StoredDocument>) -> Vec<(String, String)> {
    if !pieces.iter().any(|p| p.subsegment) {
        return pieces.into_iter().map(|p| (p.id, p.document)).collect();
    }
    pieces.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let mut roots: Vec<(String, Value)> = Vec::new();
    let mut pending: HashMap<String, Vec<Value>> = HashMap::new();
    let mut originals: HashMap<String, String> = HashMap::new();
    for p in pieces {
        let Ok(value) = serde_json::from_str::<Value>(&p.document) else {
            roots.push((p.id, Value::String(p.document)));
            continue;
        };
        match (p.subsegment, p.parent_id) {
            (true, Some(parent)) => {
                originals.insert(p.id.clone(), p.document);
                pending.entry(parent).or_default().push(value);
            }
            _ => roots.push((p.id, value)),
        }
    }
    for (_, root) in &mut roots {
        graft(root, &mut pending, 0);
    }
    // Streamed pieces whose parent never arrived are listed on their own, as sent.
    let orphans: Vec<Value> = pending.drain().flat_map(|(_, v)| v).collect();
    let mut out: Vec<(String, String)> = roots
        .into_iter()
        .map(|(id, v)| match v {
            Value::String(raw) => (id, raw),
            v => (id, v.to_string()),
        })
        .collect();
    for o in orphans {
        let id = o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let text = originals.remove(&id).unwrap_or_else(|| o.to_string());
        out.push((id, text));
    }
    out
}
