//! The captures from the official Python and Node SDKs parse into the model, validate, and
//! re-serialize to the same JSON (field order aside).

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures

use std::path::PathBuf;

use roentgen_sdk::model::{DocumentHead, Segment, split_datagram};
use serde_json::Value;

fn captures() -> Vec<(String, Vec<Vec<u8>>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("captures directory") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("capture");
        let mut datagrams = Vec::new();
        for block in text.split("--- datagram ").skip(1) {
            let body = block.split_once("---\n").expect("datagram marker").1;
            datagrams.push(body.trim_end().as_bytes().to_vec());
        }
        out.push((path.display().to_string(), datagrams));
    }
    out.sort();
    assert_eq!(out.len(), 4, "expected the four official-SDK captures");
    out
}

#[test]
fn every_captured_document_round_trips_without_loss() {
    let mut documents = 0;
    for (file, datagrams) in captures() {
        assert!(!datagrams.is_empty(), "{file} has no datagrams");
        for datagram in datagrams {
            let doc = split_datagram(&datagram).expect("wire framing");
            let original: Value = serde_json::from_slice(doc).expect("JSON");
            let segment: Segment =
                serde_json::from_slice(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            segment
                .validate_for_ingest()
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let head = DocumentHead::parse(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(head.id, segment.id);
            assert_eq!(Some(head.trace_id), segment.trace_id);
            let again = serde_json::to_value(&segment).expect("serialize");
            assert_eq!(again, original, "{file}: fields lost or changed");
            documents += 1;
        }
    }
    assert_eq!(documents, 1 + 5 + 1 + 32);
}

#[test]
fn strict_validation_names_the_node_sdk_annotation_key() {
    let (_, datagrams) = captures()
        .into_iter()
        .find(|(f, _)| f.ends_with("node-sdk-3.12-checkout.txt"))
        .expect("node capture");
    let doc = split_datagram(&datagrams[0]).expect("framing");
    let segment: Segment = serde_json::from_slice(doc).expect("parse");
    let error = segment
        .validate()
        .expect_err("card-number is not a valid key");
    assert_eq!(error.path, "annotations.card-number");
    assert!(error.to_string().contains("[A-Za-z0-9_]"), "{error}");
}

#[test]
fn streamed_pieces_name_their_parent() {
    for (file, datagrams) in captures() {
        if !file.contains("streamed") {
            continue;
        }
        let heads: Vec<DocumentHead> = datagrams
            .iter()
            .map(|d| DocumentHead::parse(split_datagram(d).expect("framing")).expect("head"))
            .collect();
        let segment = heads
            .iter()
            .find(|h| !h.is_subsegment)
            .expect("the segment");
        for piece in heads.iter().filter(|h| h.is_subsegment) {
            assert_eq!(piece.trace_id, segment.trace_id, "{file}");
            assert!(piece.parent_id.is_some(), "{file}");
        }
    }
}
