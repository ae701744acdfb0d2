//! Root-cause analysis over a trace's documents: fault and error root causes (each
//! service's deepest flagged path) and the response-time root cause (the slowest path from the
//! entry point, continued into subsegments sent on their own and into the downstreams its
//! calls reached).

use std::collections::{BTreeMap, HashMap};

use super::facts::{self, CausePath, DocFacts, PathEntity, PathStep};
use super::{MAX_ROOT_CAUSES, NodeKey, RootCause, RootCauseService};

/// Root-cause analysis over a trace's documents.
pub(super) struct Causes<'a> {
    docs: &'a [&'a DocFacts],
    /// The segment document that owns each document.
    owner: &'a [Option<usize>],
    node_of: &'a dyn Fn(usize) -> NodeKey,
    /// The first segment document under each parent id (the downstream a call reached).
    downstream: HashMap<u64, usize>,
    /// The slowest subsegment sent on its own under each parent id.
    pieces: HashMap<u64, usize>,
}

/// How a piece ranks among the pieces under one parent: duration, then start, then id.
type PieceRank = (f64, f64, u64);

/// Whether `a` outranks `b`: the longer piece; on a tie the later start, then the larger id
/// (the assembled document's last longest child, which the whole trace's path follows).
fn ranks_above(a: PieceRank, b: PieceRank) -> bool {
    a.0.total_cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then(a.2.cmp(&b.2))
        .is_gt()
}

/// The first step of a document's response-time path: its own id and duration.
fn slow_top(d: &DocFacts) -> Option<PathStep> {
    d.slow_path.as_ref()?.steps.first().copied()
}

impl<'a> Causes<'a> {
    /// The analysis of `docs`, whose owning segment documents are `owner` and whose nodes
    /// `node_of` names.
    pub(super) fn new(
        docs: &'a [&'a DocFacts],
        owner: &'a [Option<usize>],
        node_of: &'a dyn Fn(usize) -> NodeKey,
    ) -> Self {
        let mut downstream: HashMap<u64, usize> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            if let (false, Some(p)) = (d.subsegment, &d.parent_id) {
                downstream.entry(p.as_u64()).or_insert(i);
            }
        }
        // The slowest subsegment sent on its own under each parent id.
        let mut slowest: HashMap<u64, (usize, PieceRank)> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            let (Some(p), Some(step), true, false) =
                (&d.parent_id, slow_top(d), d.subsegment, d.in_progress)
            else {
                continue;
            };
            let rank = (step.duration, d.start, d.id.as_u64());
            match slowest.get(&p.as_u64()) {
                Some((_, best)) if !ranks_above(rank, *best) => {}
                _ => {
                    slowest.insert(p.as_u64(), (i, rank));
                }
            }
        }
        let pieces = slowest.into_iter().map(|(p, (i, _))| (p, i)).collect();
        Self {
            docs,
            owner,
            node_of,
            downstream,
            pieces,
        }
    }
}

impl Causes<'_> {
    /// The segment document whose `parent_id` is `call` (the downstream that call reached).
    fn downstream(&self, call: SegmentIdKey) -> Option<usize> {
        self.downstream.get(&call).copied()
    }

    /// The inferred node a remote call ending a path stands for (`doc` holds the call).
    fn inferred(&self, doc: usize, path: &CausePath) -> Option<RootCauseService> {
        let last = path.entities.last().filter(|e| e.remote)?;
        let call = self.docs[doc]
            .calls
            .iter()
            .find(|c| c.id.as_u64() == path.last_id.as_u64())?;
        Some(RootCauseService {
            key: NodeKey {
                name: call.name.clone(),
                kind: call.kind.clone(),
            },
            inferred: true,
            entity_path: vec![last.clone()],
        })
    }

    /// The service holding document `doc`, with `path` prefixed by its segment's name when
    /// `doc` is a subsegment sent on its own.
    fn service(&self, doc: usize, path: &CausePath) -> Option<RootCauseService> {
        let owner = self.owner[doc]?;
        let mut entity_path = Vec::new();
        if owner != doc {
            entity_path.push(PathEntity {
                name: self.docs[owner].name.clone(),
                exceptions: Vec::new(),
                remote: false,
                coverage: None,
            });
        }
        entity_path.extend(path.entities.iter().cloned());
        Some(RootCauseService {
            key: (self.node_of)(owner),
            inferred: false,
            entity_path,
        })
    }

    /// Fault or error root causes: per service, its deepest flagged path, unless that path
    /// ends in a call to a downstream that reported the same kind of problem itself (the
    /// cause is further down); a call to a downstream that did not report adds its inferred
    /// node.
    pub(super) fn flagged(
        &self,
        path_of: impl Fn(&DocFacts) -> Option<&CausePath>,
        client_impacting: bool,
    ) -> Vec<RootCause> {
        // Per service: the document with the deepest path (then the smallest last id, so
        // the choice does not depend on arrival order).
        let mut best: BTreeMap<NodeKey, (usize, (std::cmp::Reverse<usize>, u64))> = BTreeMap::new();
        for (i, d) in self.docs.iter().enumerate() {
            let (Some(path), Some(owner)) = (path_of(d), self.owner[i]) else {
                continue;
            };
            if d.in_progress {
                continue;
            }
            let rank = (
                std::cmp::Reverse(path.entities.len() + usize::from(owner != i)),
                path.last_id.as_u64(),
            );
            let key = (self.node_of)(owner);
            match best.get(&key) {
                Some((_, better)) if *better <= rank => {}
                _ => {
                    best.insert(key, (i, rank));
                }
            }
        }
        let mut out: Vec<RootCause> = Vec::new();
        for (i, _) in best.into_values() {
            let Some(path) = path_of(self.docs[i]) else {
                continue;
            };
            if let Some(down) = self.downstream(path.last_id.as_u64())
                && path_of(self.docs[down]).is_some()
            {
                continue;
            }
            let mut services: Vec<RootCauseService> = self.service(i, path).into_iter().collect();
            services.extend(self.inferred(i, path));
            if !services.is_empty() && out.len() < MAX_ROOT_CAUSES {
                out.push(RootCause {
                    services,
                    client_impacting,
                });
            }
        }
        out
    }

    /// The response-time root cause: from the entry point down its slowest path, into the
    /// downstream segment a slowest call reached, to where the time was spent.
    pub(super) fn slowest(&self, entry: usize) -> RootCause {
        let mut services = Vec::new();
        let mut at = Some(entry);
        while let Some(i) = at.take() {
            let Some((last_doc, path)) = self.slow_walk(i) else {
                break;
            };
            if let Some(s) = self.service(i, &path) {
                services.push(s);
            }
            match self.downstream(path.last_id.as_u64()) {
                Some(down) if services.len() < MAX_ROOT_CAUSES && down != i => at = Some(down),
                Some(_) => {}
                None => services.extend(self.inferred(last_doc, &path)),
            }
        }
        RootCause {
            services,
            client_impacting: true,
        }
    }

    /// Document `i`'s slowest path, continued into subsegments sent on their own: at each
    /// entity, a piece whose `parent_id` is that entity and that ran at least as long as the
    /// nested child takes the path over, as it would in the document sent whole. Returns the
    /// document holding the path's last entity, and the path.
    fn slow_walk(&self, i: usize) -> Option<(usize, CausePath)> {
        let first = self.docs[i].slow_path.as_ref()?;
        let Some(total) = first.steps.first().map(|s| s.duration) else {
            // A path without steps (fault and error paths have none): as it is.
            return Some((i, first.clone()));
        };
        let mut entities = Vec::new();
        let (mut doc, mut path, mut k) = (i, first, 0);
        while let (Some(entity), Some(step)) = (path.entities.get(k), path.steps.get(k)) {
            let mut entity = entity.clone();
            if doc != i {
                entity.coverage = Some(facts::coverage(step.duration, total));
            }
            entities.push(entity);
            if entities.len() >= facts::MAX_PATH_DEPTH {
                break;
            }
            let nested = path.steps.get(k + 1).map(|s| s.duration);
            let piece = self.pieces.get(&step.id.as_u64()).and_then(|&p| {
                let piece_path = self.docs[p].slow_path.as_ref()?;
                let d = piece_path.steps.first()?.duration;
                nested.is_none_or(|n| d >= n).then_some((p, piece_path))
            });
            match piece {
                Some((p, piece_path)) => (doc, path, k) = (p, piece_path, 0),
                None if nested.is_some() => k += 1,
                None => break,
            }
        }
        let last_id = path.steps.get(k).map_or(path.last_id, |s| s.id);
        Some((
            doc,
            CausePath {
                entities,
                last_id,
                steps: Vec::new(),
            },
        ))
    }
}

/// A segment id as the fold compares them.
type SegmentIdKey = u64;
