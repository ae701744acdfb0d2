use super::*;
use crate::test_support::{capture_documents, normalized, prepared, shuffled};

fn facts(docs: &[String]) -> Vec<DocFacts> {
    prepared(docs)
        .into_iter()
        .map(|d| (*d.facts).clone())
        .collect()
}

fn fold_in_order(docs: &[DocFacts], order: &[usize]) -> TraceView {
    let ordered: Vec<DocFacts> = order.iter().map(|i| docs[*i].clone()).collect();
    fold_trace("t", &ordered)
}

#[test]
fn streamed_captures_fold_the_same_in_every_arrival_order() {
    for capture in [
        "python-sdk-2.15-streamed-40.txt",
        "node-sdk-3.12-streamed-105.txt",
    ] {
        let docs = facts(&capture_documents(capture));
        let n = docs.len();
        let reference = normalized(&fold_in_order(&docs, &(0..n).collect::<Vec<_>>()));
        let mut orders: Vec<Vec<usize>> = vec![(0..n).rev().collect()];
        for seed in 1..8 {
            orders.push(shuffled(n, seed));
        }
        for order in orders {
            assert_eq!(
                normalized(&fold_in_order(&docs, &order)),
                reference,
                "{capture}"
            );
        }
        let view = fold_in_order(&docs, &(0..n).collect::<Vec<_>>());
        assert!(
            !view.summary.is_partial,
            "{capture}: complete trace is not partial"
        );
        assert_eq!(
            view.summary.entry_point.as_ref().map(|e| e.name.as_str()),
            Some("checkout-api")
        );
    }
}

#[test]
fn subsegments_without_their_segment_make_a_partial_trace() {
    let docs = facts(&capture_documents("python-sdk-2.15-streamed-40.txt"));
    let pieces: Vec<DocFacts> = docs.iter().filter(|d| d.subsegment).cloned().collect();
    assert!(!pieces.is_empty());
    let view = fold_trace("t", &pieces);
    assert!(view.summary.is_partial);
    assert!(view.summary.entry_point.is_none());
    assert!(
        view.samples.is_empty(),
        "nothing is counted before the owner arrives"
    );
}

#[test]
fn checkout_capture_summary_has_http_flags_annotations_and_inferred_calls() {
    let docs = facts(&capture_documents("python-sdk-2.15-checkout.txt"));
    let view = fold_trace("t", &docs);
    let s = &view.summary;
    assert_eq!(s.http.as_ref().and_then(|h| h.status), Some(502));
    assert!(s.has_fault);
    assert!(s.annotations.iter().any(
        |a| a.key == "order_id" && a.value == AnnotationValue::String("ord-9f8e7d".to_owned())
    ));
    let names: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|x| (x.key.name.as_str(), x.key.kind.as_str()))
        .collect();
    assert!(names.contains(&("checkout-api", "")), "{names:?}");
    assert!(
        names.contains(&("payments.example.com", "remote")),
        "{names:?}"
    );
    assert!(names.contains(&("DynamoDB", "AWS::DynamoDB")), "{names:?}");
    assert!(
        s.edges
            .iter()
            .any(|e| e.src == NodeKey::client() && e.dst.name == "checkout-api")
    );
}

#[test]
fn a_downstream_segment_replaces_the_inferred_node() {
    let docs = crate::synth::shop_trace(5, 1_800_000_000.0);
    let all = facts(&docs);
    // Only the frontend: `orders` is inferred from its remote subsegment.
    let alone = fold_trace("t", &all[..1]);
    assert!(
        alone
            .summary
            .services
            .iter()
            .any(|s| s.key.name == "orders" && s.inferred && s.key.kind == "remote")
    );
    // With the orders segment: the real node replaces the inferred one, in either order.
    for order in [[0, 1], [1, 0]] {
        let view = fold_in_order(&all, &order);
        let orders: Vec<&ServiceFacts> = view
            .summary
            .services
            .iter()
            .filter(|s| s.key.name == "orders")
            .collect();
        assert_eq!(orders.len(), 1);
        assert!(!orders[0].inferred);
        assert_eq!(orders[0].key.kind, "AWS::ECS::Container");
        assert!(view.summary.edges.iter().any(|e| e.src.name == "frontend"
            && e.dst.name == "orders"
            && e.dst.kind == "AWS::ECS::Container"));
    }
}

#[test]
fn streamed_subsegments_are_grafted_back_into_their_segment() {
    for capture in [
        "python-sdk-2.15-streamed-40.txt",
        "node-sdk-3.12-streamed-105.txt",
    ] {
        let raw = capture_documents(capture);
        let docs = prepared(&raw);
        let total_subsegments: usize = raw
            .iter()
            .map(|d| {
                let s: roentgen_sdk::model::Segment = serde_json::from_str(d).unwrap();
                s.subsegment_count() + usize::from(s.is_subsegment())
            })
            .sum();
        for seed in 0..4 {
            let stored: Vec<StoredDocument> = shuffled(docs.len(), seed)
                .into_iter()
                .map(|i| StoredDocument {
                    id: docs[i].id.clone(),
                    parent_id: docs[i].parent_id.clone(),
                    subsegment: docs[i].subsegment,
                    start_time: docs[i].start_time,
                    document: docs[i].document.clone(),
                })
                .collect();
            let out = assemble_documents(stored);
            assert_eq!(out.len(), 1, "{capture}: one segment document");
            let seg: roentgen_sdk::model::Segment = serde_json::from_str(&out[0].1).unwrap();
            assert_eq!(seg.subsegment_count(), total_subsegments, "{capture}");
        }
    }
}

#[test]
fn root_causes_follow_the_fault_to_the_service_where_it_started() {
    // Python capture: the card charge's call to payments.example.com got a 500 and recorded
    // the gateway's exception; payments did not report a segment, so it is inferred.
    let view = fold_trace(
        "t",
        &facts(&capture_documents("python-sdk-2.15-checkout.txt")),
    );
    let s = &view.summary;
    assert_eq!(s.fault_root_causes.len(), 1, "{:?}", s.fault_root_causes);
    let cause = &s.fault_root_causes[0];
    assert!(cause.client_impacting);
    let names: Vec<(&str, bool)> = cause
        .services
        .iter()
        .map(|x| (x.key.name.as_str(), x.inferred))
        .collect();
    assert_eq!(
        names,
        [("checkout-api", false), ("payments.example.com", true)]
    );
    let path: Vec<&str> = cause.services[0]
        .entity_path
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        path,
        ["checkout-api", "charge_card", "payments.example.com"]
    );
    let last = cause.services[0].entity_path.last().unwrap();
    assert!(last.remote);
    assert_eq!(
        last.exceptions[0].name.as_deref(),
        Some("PaymentGatewayError")
    );
    assert!(s.error_root_causes.is_empty());
    // The response time went into the database call.
    let slow = &s.response_time_root_causes[0].services[0].entity_path;
    assert_eq!(slow[0].coverage, Some(1.0));
    assert_eq!(slow.last().unwrap().name, "orders@db.example.com");

    // Shop trace 0: frontend's call to orders faulted, and orders reported the fault itself:
    // the root cause is orders, not the caller.
    let view = fold_trace("t", &facts(&crate::synth::shop_trace(0, 1_800_000_000.0)));
    let causes = &view.summary.fault_root_causes;
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].services.len(), 1);
    assert_eq!(causes[0].services[0].key.name, "orders");
    // Shop trace 1: a throttle at payments (inferred) under orders, and frontend's own 429.
    let view = fold_trace("t", &facts(&crate::synth::shop_trace(1, 1_800_000_000.0)));
    let s = &view.summary;
    assert!(s.fault_root_causes.is_empty());
    let ends: Vec<&str> = s
        .error_root_causes
        .iter()
        .map(|c| c.services.last().unwrap().key.name.as_str())
        .collect();
    assert_eq!(ends, ["frontend", "payments.example.com"]);
    // The slowest path runs frontend -> orders -> a call orders made.
    let slow: Vec<&str> = s.response_time_root_causes[0]
        .services
        .iter()
        .map(|x| x.key.name.as_str())
        .collect();
    assert_eq!(slow[..2], ["frontend", "orders"]);
}

#[test]
fn annotation_values_read_back_by_their_json_type() {
    for (text, value) in [
        ("true", AnnotationValue::Bool(true)),
        ("3", AnnotationValue::Number(3.0)),
        ("-2", AnnotationValue::Number(-2.0)),
        ("2.5", AnnotationValue::Number(2.5)),
        ("\"gold\"", AnnotationValue::String("gold".into())),
        ("\"3\"", AnnotationValue::String("3".into())),
    ] {
        let read: AnnotationValue = serde_json::from_str(text).unwrap();
        assert_eq!(read, value, "{text}");
        let back: AnnotationValue =
            serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
        assert_eq!(back, value);
    }
    for bad in ["null", "[1]", "{\"a\": 1}"] {
        assert!(
            serde_json::from_str::<AnnotationValue>(bad).is_err(),
            "{bad}"
        );
    }
}

/// Marks subsegments of `s` (below `s` itself) as sent on their own, as an SDK streams them,
/// where the seeded coin says so.
fn mark_streamed(s: &mut roentgen_sdk::model::Segment, trace: TraceIdOf, coin: &mut u64) {
    let parent = s.id;
    for sub in s.subsegments.iter_mut().flatten() {
        *coin ^= *coin << 13;
        *coin ^= *coin >> 7;
        *coin ^= *coin << 17;
        if coin.is_multiple_of(2) {
            sub.kind = Some("subsegment".to_owned());
            sub.trace_id = Some(trace);
            sub.parent_id = Some(parent);
        }
        mark_streamed(sub, trace, coin);
    }
}

type TraceIdOf = roentgen_sdk::model::TraceId;

/// `view` with each fault and error root cause's entity path cut to its first and last
/// entity: a subsegment streamed on its own names its segment, not the entities of other
/// documents between them.
fn flag_path_ends(view: &TraceView) -> TraceView {
    let mut view = view.clone();
    let s = &mut view.summary;
    for cause in s
        .fault_root_causes
        .iter_mut()
        .chain(&mut s.error_root_causes)
    {
        for service in &mut cause.services {
            let path = &mut service.entity_path;
            if path.len() > 2 {
                path.drain(1..path.len() - 1);
            }
        }
    }
    view
}

/// Property, over seeded cases: a trace whose subsegments (at any depth) were streamed on
/// their own folds to the summary and rollup of the same trace sent whole. The response-time
/// root cause is the same entity by entity; fault and error root causes are the same
/// services, ending at the same entity (see [`flag_path_ends`]).
#[test]
fn streamed_subsegments_fold_as_when_sent_whole() {
    let mut traces: Vec<Vec<String>> = (0..24)
        .map(|n| crate::synth::fleet_trace(n, 1_800_000_000.0 + n as f64))
        .collect();
    traces.extend((0..8).map(|n| crate::synth::shop_trace(n, 1_800_000_000.0)));
    traces.push(capture_documents("python-sdk-2.15-checkout.txt"));
    let mut streamed_any = 0;
    for (case, whole) in traces.iter().enumerate() {
        let expected = fold_trace("t", &facts(whole));
        for seed in 1..4u64 {
            let mut coin = (case as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            let mut pieces = Vec::new();
            for doc in whole {
                let mut s: roentgen_sdk::model::Segment = serde_json::from_str(doc).unwrap();
                let trace = s.trace_id.unwrap();
                mark_streamed(&mut s, trace, &mut coin);
                pieces.extend(roentgen_sdk::model::nest::unnest(s));
            }
            streamed_any += pieces.len() - whole.len();
            let pieces: Vec<String> = pieces
                .iter()
                .map(|s| serde_json::to_string(s).unwrap())
                .collect();
            let mut got = fold_trace("t", &facts(&pieces));
            got.summary.document_count = expected.summary.document_count;
            assert_eq!(
                normalized(&flag_path_ends(&got)),
                normalized(&flag_path_ends(&expected)),
                "case {case}, seed {seed}"
            );
        }
    }
    assert!(streamed_any > 100, "{streamed_any} subsegments streamed");
}
