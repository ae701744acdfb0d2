//! OTLP spans stored one tree per document (`otlp::prepare`) read as they would stored one
//! span per document: the same summaries, rollups and assembled documents, over the workload's
//! production-shaped traces (3 to 6 services, databases, AWS calls, exceptions, personal data).

use std::collections::BTreeMap;

use prost::Message;
use roentgen_sdk::otlp::map_resource_spans;
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use roentgen_sdk::otlp::workload::workload;
use roentgen_sdk::scrub::Scrubber;
use serde_json::Value;

use super::otlp::{OtlpIngest, prepare};
use super::prepare_segment;
use crate::assembly::{DocFacts, StoredDocument, assemble_documents, fold_trace};
use crate::store::IngestDocument;
use crate::test_support::normalized;

fn by_trace(docs: Vec<IngestDocument>) -> BTreeMap<String, Vec<IngestDocument>> {
    let mut out: BTreeMap<String, Vec<IngestDocument>> = BTreeMap::new();
    for d in docs {
        out.entry(d.trace_id.clone()).or_default().push(d);
    }
    out
}

fn facts(docs: &[IngestDocument]) -> Vec<DocFacts> {
    docs.iter().map(|d| (*d.facts).clone()).collect()
}

/// The trace as `BatchGetTraces` answers it: whole segments by id.
fn assembled(docs: &[IngestDocument]) -> BTreeMap<String, Value> {
    let stored = docs
        .iter()
        .map(|d| StoredDocument {
            id: d.id.clone(),
            parent_id: d.parent_id.clone(),
            subsegment: d.subsegment,
            start_time: d.start_time,
            document: d.document.clone(),
        })
        .collect();
    assemble_documents(stored)
        .into_iter()
        .map(|(id, text)| (id, serde_json::from_str(&text).unwrap()))
        .collect()
}

#[test]
fn spans_stored_as_trees_read_as_spans_stored_one_by_one() {
    let ingest = OtlpIngest {
        scrubber: Some(Scrubber::default()),
        ..OtlpIngest::default()
    };
    let w = workload(7, 6, 8, 1_800_000_000_000_000_000);
    let (mut trees, mut spans) = (0, 0);
    for body in &w.bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let (nested, refused, n) = prepare(&request, &ingest);
        assert!(refused.is_empty(), "{refused:?}");
        let flat: Vec<IngestDocument> =
            map_resource_spans(&request.resource_spans, &ingest.mapping)
                .segments
                .into_iter()
                .map(|s| prepare_segment(s, None, ingest.scrubber.as_ref()).unwrap())
                .collect();
        assert_eq!(flat.len(), n);
        (trees, spans) = (trees + nested.len(), spans + n);
        let (nested, flat) = (by_trace(nested), by_trace(flat));
        assert!(nested.keys().eq(flat.keys()));
        for (trace, docs) in &flat {
            let (mut tree, mut one_by_one) = (
                fold_trace(trace, &facts(&nested[trace])),
                fold_trace(trace, &facts(docs)),
            );
            assert_eq!(tree.summary.document_count, nested[trace].len());
            // Not compared: the number of documents (the `Revision`).
            for view in [&mut tree, &mut one_by_one] {
                view.summary.document_count = 0;
            }
            assert_eq!(
                normalized(&tree),
                normalized(&one_by_one),
                "summary and rollup of {trace}"
            );
            assert_eq!(
                assembled(&nested[trace]),
                assembled(docs),
                "documents of {trace}"
            );
        }
    }
    assert_eq!(spans as u64, w.spans);
    // Each service's spans of a trace are one document (at most 6 per trace).
    assert!(
        trees <= 6 * 6 * 8 && trees * 3 < spans,
        "{trees} documents for {spans} spans"
    );
}

/// A tree past a document's size bound is stored span by span again: nothing refused, every
/// document within the bound.
#[test]
fn a_tree_too_large_for_one_document_is_stored_span_by_span() {
    use roentgen_sdk::model::MAX_DOCUMENT_BYTES;
    use roentgen_sdk::otlp::opentelemetry_proto::tonic::common::v1::{
        AnyValue, KeyValue, any_value,
    };
    use roentgen_sdk::otlp::opentelemetry_proto::tonic::resource::v1::Resource;
    use roentgen_sdk::otlp::opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span,
    };
    let text = |key: &str, value: String| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    };
    let trace_id: Vec<u8> = (1..=16).collect();
    let start = 1_800_000_000_000_000_000u64;
    let span = |id: u8, parent: Option<u8>, kind: i32| Span {
        trace_id: trace_id.clone(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent
            .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: format!("step {id}"),
        kind,
        start_time_unix_nano: start + u64::from(id) * 1_000_000,
        end_time_unix_nano: start + 500_000_000,
        attributes: vec![text("note", "lorem ipsum dolor ".repeat(150))],
        ..Span::default()
    };
    let mut spans = vec![span(1, None, 2)];
    spans.extend((2..=41).map(|id| span(id, Some(1), 1)));
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "batch".to_owned())],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let (docs, refused, spans) = prepare(&request, &OtlpIngest::default());
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!((spans, docs.len()), (41, 41));
    assert!(docs.iter().all(|d| d.document.len() <= MAX_DOCUMENT_BYTES));
    assert_eq!(docs.iter().filter(|d| d.subsegment).count(), 40);
}
