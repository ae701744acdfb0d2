use proptest::prelude::*;

use super::*;

fn trace() -> TraceId {
    TraceId::from_parts(1_800_000_000, 42)
}

fn doc(id: u64, parent: Option<u64>, start: f64) -> Segment {
    Segment {
        name: format!("n{id}"),
        id: SegmentId::from_u64(id),
        trace_id: Some(trace()),
        parent_id: parent.map(SegmentId::from_u64),
        start_time: start,
        end_time: Some(start + 1.0),
        kind: parent.map(|_| "subsegment".to_owned()),
        ..Segment::default()
    }
}

/// Every document of the trees, depth first, with the depth each sits at.
fn flatten(s: &Segment, depth: usize, out: &mut Vec<(u64, usize)>) {
    out.push((s.id.as_u64(), depth));
    for sub in s.subsegments.iter().flatten() {
        flatten(sub, depth + 1, out);
    }
}

fn ids(docs: &[Segment]) -> Vec<u64> {
    let mut ids: Vec<u64> = docs.iter().map(|d| d.id.as_u64()).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn pieces_go_under_their_parent_in_order_of_start_and_come_out_again() {
    let docs = vec![
        doc(3, Some(1), 12.0),
        doc(1, None, 10.0),
        doc(2, Some(1), 11.0),
        doc(4, Some(3), 12.5),
        doc(9, Some(77), 13.0),
    ];
    let trees = nest(docs.clone());
    assert_eq!(trees.len(), 2, "{trees:?}");
    let root = &trees[0];
    assert!(root.grew);
    assert_eq!(root.segment.id.as_u64(), 1);
    let subs = root.segment.subsegments.as_deref().unwrap_or_default();
    let order: Vec<u64> = subs.iter().map(|s| s.id.as_u64()).collect();
    assert_eq!(order, [2, 3]);
    let inner = subs[1].subsegments.as_deref().unwrap_or_default();
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].id.as_u64(), 4);
    // A piece keeps what it was sent with.
    assert_eq!(inner[0].parent_id, Some(SegmentId::from_u64(3)));
    assert!(inner[0].is_subsegment());
    // Its parent is not in the batch: on its own.
    assert!(!trees[1].grew);
    assert_eq!(trees[1].segment.id.as_u64(), 9);

    let back = unnest(root.segment.clone());
    assert_eq!(ids(&back), [1, 2, 3, 4]);
    for original in &docs[..4] {
        assert!(back.contains(original), "{original:?} not given back");
    }
}

#[test]
fn a_document_of_its_own_keeps_its_own_subsegments_when_unnested() {
    let mut parent = doc(1, None, 10.0);
    let mut own = doc(5, None, 10.5);
    own.kind = None;
    own.trace_id = None;
    parent.subsegments = Some(vec![own.clone()]);
    let trees = nest(vec![parent.clone(), doc(2, Some(1), 11.0)]);
    assert_eq!(trees.len(), 1);
    let back = unnest(trees[0].segment.clone());
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], parent);
}

#[test]
fn pieces_sent_twice_and_ids_of_other_traces_are_left_alone() {
    let mut other = doc(1, None, 10.0);
    other.trace_id = Some(TraceId::from_parts(1_800_000_000, 43));
    let docs = vec![
        doc(1, None, 10.0),
        doc(2, Some(1), 11.0),
        doc(2, Some(1), 11.0),
        other,
    ];
    let trees = nest(docs);
    assert_eq!(trees.len(), 4);
    assert!(trees.iter().all(|t| !t.grew));
}

#[test]
fn cycles_are_cut_and_nothing_is_lost() {
    let docs = vec![
        doc(1, Some(2), 10.0),
        doc(2, Some(3), 11.0),
        doc(3, Some(1), 12.0),
        doc(4, Some(3), 13.0),
    ];
    let trees = nest(docs);
    let mut all = Vec::new();
    for t in &trees {
        flatten(&t.segment, 0, &mut all);
    }
    let mut seen: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4]);
    assert_eq!(
        trees.len(),
        1,
        "one node of the cycle becomes the root: {trees:?}"
    );
}

#[test]
fn a_long_chain_is_nested_no_deeper_than_the_bound() {
    let n = 3 * MAX_NESTING as u64 + 5;
    let docs: Vec<Segment> = (1..=n)
        .map(|i| doc(i, (i > 1).then(|| i - 1), i as f64))
        .collect();
    let trees = nest(docs);
    let mut all = Vec::new();
    for t in &trees {
        flatten(&t.segment, 0, &mut all);
    }
    assert_eq!(all.len() as u64, n);
    assert!(all.iter().all(|(_, d)| *d <= MAX_NESTING), "{all:?}");
    assert_eq!(trees.len(), 4);
}

#[test]
fn a_tree_that_cannot_be_written_is_written_piece_by_piece() {
    let docs = vec![
        doc(1, None, 10.0),
        doc(2, Some(1), 11.0),
        doc(3, Some(2), 12.0),
        doc(7, None, 20.0),
    ];
    // Only documents holding no subsegment can be written.
    let written = write_nested(docs, |s: &mut Segment| {
        if s.subsegment_count() > 0 {
            Err(s.id.as_u64())
        } else {
            Ok(s.id.as_u64())
        }
    });
    let mut ids: Vec<u64> = written.into_iter().map(|r| r.unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 7]);
    // A tree that took no piece keeps its failure.
    let mut own = doc(5, None, 1.0);
    own.subsegments = Some(vec![doc(6, None, 1.5)]);
    let written = write_nested(vec![own], |s: &mut Segment| {
        if s.subsegment_count() > 0 {
            Err(s.id.as_u64())
        } else {
            Ok(s.id.as_u64())
        }
    });
    assert_eq!(written, [Err(5)]);
}

proptest! {
    /// Whatever the links (forests, cycles, self-links, missing parents, repeated ids), nesting
    /// loses and repeats nothing, stays within the bound, and unnesting gives back every
    /// document as it was sent.
    #[test]
    fn nesting_loses_nothing_and_unnests_to_what_was_sent(
        links in prop::collection::vec((0u64..40, prop::option::of(0u64..45), 0u32..100), 0..60),
    ) {
        let docs: Vec<Segment> = links
            .iter()
            .map(|(id, parent, start)| doc(*id, *parent, f64::from(*start)))
            .collect();
        let trees = nest(docs.clone());
        let mut all = Vec::new();
        for t in &trees {
            flatten(&t.segment, 0, &mut all);
        }
        prop_assert_eq!(all.len(), docs.len());
        prop_assert!(all.iter().all(|(_, d)| *d <= MAX_NESTING));
        let mut back: Vec<Segment> = trees.into_iter().flat_map(|t| unnest(t.segment)).collect();
        let key = |s: &Segment| (s.id.as_u64(), s.parent_id.map(|p| p.as_u64()), s.start_time.to_bits());
        back.sort_by_key(key);
        let mut sent = docs;
        sent.sort_by_key(key);
        prop_assert_eq!(back, sent);
    }
}
