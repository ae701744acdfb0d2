//! Helpers for unit tests: the official SDK captures in `tests/data/captures/` as documents.

/// The documents (JSON text, header stripped) of a capture file.
pub fn capture_documents(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/captures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut docs = Vec::new();
    for block in text.split("--- datagram").skip(1) {
        let body = block.split_once("---\n").unwrap().1.trim_end();
        let doc = roentgen_sdk::model::split_datagram(body.as_bytes()).unwrap();
        docs.push(String::from_utf8(doc.to_vec()).unwrap());
    }
    docs
}

/// Prepared documents (validated, facts extracted) of raw JSON texts.
pub fn prepared(docs: &[String]) -> Vec<crate::store::IngestDocument> {
    docs.iter()
        .map(|d| crate::api::prepare_document(d, None).unwrap())
        .collect()
}

/// A summary with its lists sorted, so folds of different arrival orders compare equal.
pub fn normalized(view: &crate::assembly::TraceView) -> (String, Vec<String>) {
    let mut s = view.summary.clone();
    s.users.sort_by(|a, b| a.0.cmp(&b.0));
    for u in &mut s.users {
        u.1.sort();
    }
    s.annotations
        .sort_by(|a, b| (&a.key, a.value.index_text()).cmp(&(&b.key, b.value.index_text())));
    s.resources.messages.sort();
    let mut samples: Vec<String> = view
        .samples
        .iter()
        .map(|x| serde_json::to_string(x).unwrap())
        .collect();
    samples.sort();
    (serde_json::to_string(&s).unwrap(), samples)
}

/// A deterministic permutation of `0..n` from a seed.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// A scan of every trace that started in `[start, end]`, newest first.
pub fn scan_all(
    start: f64,
    end: f64,
    pushdown: Vec<crate::store::Pushdown>,
    limit: usize,
    with_samples: bool,
) -> crate::store::ScanQuery {
    crate::store::ScanQuery {
        start,
        end,
        pushdown,
        after: None,
        limit,
        with_samples,
    }
}
