//! Subsegments sent on their own, put under their parent when the parent came in the same batch
//! (an OpenTelemetry SDK exports each span as its own document): one document per tree instead
//! of one per span, the same trace once assembled. Reversible, for a tree that outgrows a
//! document's size bound.

use std::collections::HashMap;

use super::{Segment, SegmentId, TraceId};

/// Deepest chain of subsegments nested here under one document (a deeper one stays on its own):
/// each level is two levels of JSON, and a stored document is read back under a parser's depth
/// limit.
pub const MAX_NESTING: usize = 16;

/// A tree built by [`nest`]: its root, and whether a piece was put in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Nested {
    /// The root document, with the subsegments put under it.
    pub segment: Segment,
    /// Whether [`unnest`] has anything to take out of it.
    pub grew: bool,
}

/// Puts each subsegment sent on its own (`type: "subsegment"` with a `parent_id`) under its
/// parent when the parent is in `docs` too (same trace, its id there once), appended after
/// the parent's own subsegments in order of start. A piece keeps its `type`, `trace_id` and
/// `parent_id`, so [`unnest`] can take it out again and the assembled trace reads as if it had
/// been grafted on read. Cycles and chains deeper than [`MAX_NESTING`] are cut; the roots come
/// back in the order of `docs`.
pub fn nest(docs: Vec<Segment>) -> Vec<Nested> {
    let n = docs.len();
    let mut index: HashMap<(TraceId, SegmentId), Option<usize>> = HashMap::with_capacity(n);
    for (i, d) in docs.iter().enumerate() {
        if let Some(trace) = d.trace_id {
            index
                .entry((trace, d.id))
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i));
        }
    }
    let mut parent: Vec<Option<usize>> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.is_subsegment() {
                return None;
            }
            let trace = d.trace_id?;
            // A piece sent twice is left to the store's replacement rule.
            if index.get(&(trace, d.id)) != Some(&Some(i)) {
                return None;
            }
            index
                .get(&(trace, d.parent_id?))
                .copied()
                .flatten()
                .filter(|p| *p != i)
        })
        .collect();
    if parent.iter().all(Option::is_none) {
        return docs
            .into_iter()
            .map(|segment| Nested {
                segment,
                grew: false,
            })
            .collect();
    }
    let depth = cut_cycles_and_depth(&mut parent);
    // Deepest first, so a node holds all of its pieces before it moves into its parent;
    // siblings by start, as a trace assembled on read orders them.
    let mut order: Vec<usize> = (0..n).filter(|i| parent[*i].is_some()).collect();
    order.sort_by(|a, b| {
        depth[*b]
            .cmp(&depth[*a])
            .then(docs[*a].start_time.total_cmp(&docs[*b].start_time))
            .then(a.cmp(b))
    });
    let mut slots: Vec<Option<Segment>> = docs.into_iter().map(Some).collect();
    let mut grew = vec![false; n];
    for i in order {
        let (Some(p), Some(child)) = (parent[i], slots[i].take()) else {
            continue;
        };
        if let Some(host) = slots[p].as_mut() {
            host.subsegments.get_or_insert_with(Vec::new).push(child);
            grew[p] = true;
        }
    }
    slots
        .into_iter()
        .zip(grew)
        .filter_map(|(slot, grew)| slot.map(|segment| Nested { segment, grew }))
        .collect()
}

/// Writes each document of [`nest`]`(docs)` with `write`, in order; a tree that took pieces
/// and cannot be written (past a size bound) is taken apart again ([`unnest`]) and each piece
/// written on its own. The one rule for storing a batch's spans as trees.
pub fn write_nested<T, E>(
    docs: Vec<Segment>,
    mut write: impl FnMut(&mut Segment) -> Result<T, E>,
) -> Vec<Result<T, E>> {
    let mut out = Vec::with_capacity(docs.len());
    for tree in nest(docs) {
        let mut segment = tree.segment;
        match write(&mut segment) {
            Err(_) if tree.grew => {
                out.extend(
                    unnest(segment)
                        .into_iter()
                        .map(|mut piece| write(&mut piece)),
                );
            }
            result => out.push(result),
        }
    }
    out
}

/// Cuts the links that close a cycle or pass [`MAX_NESTING`]; returns each node's depth
/// below its root.
fn cut_cycles_and_depth(parent: &mut [Option<usize>]) -> Vec<usize> {
    const UNKNOWN: usize = usize::MAX;
    let mut depth = vec![UNKNOWN; parent.len()];
    let mut on_path = vec![false; parent.len()];
    let mut path = Vec::new();
    for start in 0..parent.len() {
        // Climb until a node of known depth, a root, or a node already on this path: that
        // node closes a cycle and becomes a root.
        let mut at = start;
        while depth[at] == UNKNOWN && !on_path[at] {
            on_path[at] = true;
            path.push(at);
            match parent[at] {
                Some(p) => at = p,
                None => break,
            }
        }
        if depth[at] == UNKNOWN {
            parent[at] = None;
            depth[at] = 0;
        }
        // Down again, nearest the anchor first: each node one below the one popped before it
        // (the anchor itself restarts the count, for the nodes of a cut cycle).
        let mut below = depth[at];
        while let Some(node) = path.pop() {
            on_path[node] = false;
            if node == at {
                below = depth[at];
                continue;
            }
            below += 1;
            if below > MAX_NESTING {
                parent[node] = None;
                below = 0;
            }
            depth[node] = below;
        }
    }
    depth
}

/// Takes the pieces [`nest`] put into `tree` out again: the root first, then each piece on its
/// own as it was sent.
pub fn unnest(tree: Segment) -> Vec<Segment> {
    let mut out = vec![tree];
    let mut at = 0;
    while at < out.len() {
        let mut taken = Vec::new();
        take_pieces(&mut out[at], &mut taken);
        out.extend(taken);
        at += 1;
    }
    out
}

fn take_pieces(node: &mut Segment, taken: &mut Vec<Segment>) {
    let Some(subs) = node.subsegments.as_mut() else {
        return;
    };
    let (pieces, own): (Vec<Segment>, Vec<Segment>) = std::mem::take(subs)
        .into_iter()
        .partition(Segment::is_subsegment);
    *subs = own;
    for sub in subs.iter_mut() {
        take_pieces(sub, taken);
    }
    if subs.is_empty() {
        node.subsegments = None;
    }
    taken.extend(pieces);
}

#[cfg(test)]
mod tests;
