//! Splitting a large segment into pieces the way the official SDKs stream them.

use crate::model::Segment;

/// Splits `segment` so that no piece holds more than `threshold` subsegments: completed
/// subsegments are sent on their own (`type: "subsegment"`, `trace_id`, `parent_id`), deepest
/// first where a single child is itself too large. The segment comes last, as SDKs send it.
pub fn split(mut segment: Segment, threshold: usize, out: &mut Vec<Segment>) {
    let trace_id = segment.trace_id;
    if segment.subsegment_count() > threshold
        && let Some(children) = segment.subsegments.take()
    {
        let mut kept = Vec::new();
        for mut child in children {
            if child.end_time.is_none() {
                kept.push(child);
                continue;
            }
            child.trace_id = trace_id;
            child.parent_id = Some(segment.id);
            child.kind = Some("subsegment".to_owned());
            split(child, threshold, out);
        }
        if !kept.is_empty() {
            segment.subsegments = Some(kept);
        }
    }
    out.push(segment);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SegmentId, TraceId};

    fn seg(id: u64, children: Vec<Segment>) -> Segment {
        Segment {
            name: format!("s{id}"),
            id: SegmentId::from_u64(id),
            start_time: 1.0,
            end_time: Some(2.0),
            subsegments: (!children.is_empty()).then_some(children),
            ..Segment::default()
        }
    }

    #[test]
    fn small_segments_go_whole() {
        let mut out = Vec::new();
        split(seg(1, vec![seg(2, vec![])]), 10, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn large_segments_stream_children_with_their_parent() {
        let mut root = seg(1, (2..=6).map(|i| seg(i, vec![])).collect());
        root.trace_id = Some(TraceId::from_parts(1, 2));
        let mut out = Vec::new();
        split(root, 3, &mut out);
        assert_eq!(out.len(), 6);
        let last = out.last().unwrap();
        assert_eq!(last.id, SegmentId::from_u64(1));
        assert!(last.subsegments.is_none());
        for piece in &out[..5] {
            assert!(piece.is_subsegment());
            assert_eq!(piece.parent_id, Some(SegmentId::from_u64(1)));
            assert_eq!(piece.trace_id, Some(TraceId::from_parts(1, 2)));
            piece.validate().unwrap();
        }
    }

    #[test]
    fn in_progress_children_stay_inside() {
        let mut open = seg(3, vec![]);
        open.end_time = None;
        open.in_progress = Some(true);
        let root = seg(1, vec![seg(2, vec![]), open]);
        let mut out = Vec::new();
        split(root, 1, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].subsegments.as_ref().unwrap()[0].id,
            SegmentId::from_u64(3)
        );
    }
}
