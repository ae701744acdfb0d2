//! OTLP/HTTP request bodies as the collector's `/v1/traces` and the daemon's OTLP listener read
//! them: protobuf or JSON (the first byte picks), decoded within a bound, then mapped. Every
//! document the mapping makes must pass ingest validation and serialize: a span either becomes
//! a valid X-Ray document or is rejected with its reason, never a document the store refuses;
//! nested one tree per document, the spans still validate, read back and unnest whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_sdk::otlp::wire::{Encoding, decode_request};
use roentgen_sdk::otlp::{MappingConfig, map_resource_spans};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let Ok(request) = decode_request(body, encoding, None, 1 << 20) else {
        return;
    };
    let config = MappingConfig {
        annotation_keys: vec!["a".into(), "b.c".into()],
        index_all_attributes: first & 2 != 0,
    };
    let mapped = map_resource_spans(&request.resource_spans, &config);
    for doc in &mapped.segments {
        if let Err(e) = doc.validate_for_ingest() {
            panic!("the mapping made an invalid document ({e}): {doc:?}");
        }
        let text = serde_json::to_string(doc).expect("a document serializes");
        let back: roentgen_sdk::model::Segment = serde_json::from_str(&text).expect("and parses");
        assert_eq!(back.id, doc.id);
    }
    // The collector and the daemon store a request's spans one tree per document: whatever
    // the links, nothing is lost, and every tree still validates and reads back (the nesting
    // depth stays under the parser's limit).
    let spans = mapped.segments.len();
    let trees = roentgen_sdk::model::nest::nest(mapped.segments);
    let mut pieces = 0;
    for tree in trees {
        if let Err(e) = tree.segment.validate_for_ingest() {
            panic!("a tree of valid spans is invalid ({e}): {:?}", tree.segment);
        }
        let text = serde_json::to_string(&tree.segment).expect("a tree serializes");
        let back: roentgen_sdk::model::Segment = serde_json::from_str(&text).expect("and parses");
        assert_eq!(back.id, tree.segment.id);
        assert_eq!(back.subsegment_count(), tree.segment.subsegment_count());
        pieces += roentgen_sdk::model::nest::unnest(tree.segment).len();
    }
    assert_eq!(pieces, spans, "unnesting gives back every span");
});
