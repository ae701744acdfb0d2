//! Spare documents: the sender thread hands emptied `Segment` boxes and subsegment lists back
//! to the recorder, which fills them again instead of allocating new ones.
//!
//! A `Segment` is about 1.5 KB; with the system allocator, blocks of that size skip the
//! per-thread cache and cost several times a small allocation (and trigger consolidation of
//! freed small blocks). Reusing them keeps the app's thread to small allocations only. The
//! pools are bounded, so memory stays bounded; an empty pool simply allocates.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

use crate::model::Segment;

/// Emptied documents kept at most.
const MAX_DOCUMENTS: usize = 1024;
/// Emptied subsegment lists kept at most.
const MAX_LISTS: usize = 256;
/// Lists with room for more subsegments than this are freed, not kept.
const MAX_LIST_CAPACITY: usize = 32;
/// Emptied name buffers kept at most.
const MAX_NAMES: usize = 1024;
/// Name buffers with room for more bytes than this are freed, not kept (names are at most
/// 200 characters).
const MAX_NAME_CAPACITY: usize = 256;
/// Emptied annotation and metadata maps kept at most.
const MAX_MAPS: usize = 1024;
/// Maps that held more members than this are freed, not kept.
const MAX_MAP_MEMBERS: usize = 16;
/// Levels of a metadata map whose objects are kept: the map, its namespaces, their objects.
const MAX_MAP_DEPTH: usize = 2;

/// Bounded pools of empty documents, subsegment lists, name buffers and annotation and
/// metadata maps, shared by the app's threads and the sender thread.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    pools: Mutex<Pools>,
}

#[derive(Debug, Default)]
struct Pools {
    /// Each is `Segment::default()` but for `name`, which may be an empty buffer.
    #[allow(clippy::vec_box)]
    documents: Vec<Box<Segment>>,
    /// Each is empty.
    lists: Vec<Vec<Segment>>,
    /// Each is empty.
    names: Vec<String>,
    /// Each is empty.
    maps: Vec<Map<String, Value>>,
}

/// Moves up to `max - to.len()` items of `from` to `to`; the rest of `from` is dropped.
fn refill<T>(to: &mut Vec<T>, from: &mut Vec<T>, max: usize) {
    let n = max.saturating_sub(to.len()).min(from.len());
    to.extend(from.drain(..n));
    from.clear();
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spares {
    /// An empty document (equal to `Segment::default()`; its `name` may have room already),
    /// reused when one is spare.
    pub(crate) fn document(&self) -> Box<Segment> {
        let mut pools = lock(&self.pools);
        let mut doc = pools.documents.pop().unwrap_or_default();
        if doc.name.capacity() == 0
            && let Some(name) = pools.names.pop()
        {
            doc.name = name;
        }
        doc
    }

    /// An empty subsegment list, reused when one is spare.
    pub(crate) fn list(&self) -> Vec<Segment> {
        lock(&self.pools).lists.pop().unwrap_or_default()
    }

    /// An empty map for annotations or metadata, reused when one is spare.
    pub(crate) fn map(&self) -> Map<String, Value> {
        lock(&self.pools).maps.pop().unwrap_or_default()
    }

    /// Keeps a document that is already empty (`Segment::default()`, e.g. after
    /// `std::mem::take`) for reuse.
    pub(crate) fn give_empty(&self, document: Box<Segment>) {
        let mut pools = lock(&self.pools);
        if pools.documents.len() < MAX_DOCUMENTS {
            pools.documents.push(document);
        }
    }

    /// Moves what `recycled` collected into the pools (one lock), up to their bounds; what
    /// does not fit is freed.
    pub(crate) fn give(&self, recycled: &mut Recycled) {
        let mut pools = lock(&self.pools);
        refill(&mut pools.documents, &mut recycled.documents, MAX_DOCUMENTS);
        refill(&mut pools.lists, &mut recycled.lists, MAX_LISTS);
        refill(&mut pools.names, &mut recycled.names, MAX_NAMES);
        refill(&mut pools.maps, &mut recycled.maps, MAX_MAPS);
    }
}

/// Documents, lists, names and maps emptied on one thread, waiting to go back to [`Spares`]
/// together.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    #[allow(clippy::vec_box)]
    documents: Vec<Box<Segment>>,
    lists: Vec<Vec<Segment>>,
    names: Vec<String>,
    maps: Vec<Map<String, Value>>,
}

impl Recycled {
    /// Documents waiting to go back.
    pub(crate) fn len(&self) -> usize {
        self.documents.len()
    }

    /// Empties `document` and keeps it, box, name buffer and subsegment list, for reuse; the
    /// name buffers and maps of its subsegments too.
    pub(crate) fn keep(&mut self, mut document: Box<Segment>) {
        // Emptied where it lies: a `Segment` is large, and moving it out costs a copy.
        let mut name = std::mem::take(&mut document.name);
        self.salvage_parts(&mut document);
        *document = Segment::default();
        if name.capacity() <= MAX_NAME_CAPACITY {
            name.clear();
            document.name = name;
        }
        self.documents.push(document);
    }

    /// Takes the maps and the subsegment list of `doc` (and, from its subsegments, their name
    /// buffers too) into the pools' waiting lists.
    fn salvage_parts(&mut self, doc: &mut Segment) {
        for map in [doc.annotations.take(), doc.metadata.take()]
            .into_iter()
            .flatten()
        {
            self.salvage_map(map, 0);
        }
        if let Some(mut list) = doc.subsegments.take() {
            for child in &mut list {
                let mut name = std::mem::take(&mut child.name);
                if name.capacity() > 0 && name.capacity() <= MAX_NAME_CAPACITY {
                    name.clear();
                    self.names.push(name);
                }
                self.salvage_parts(child);
            }
            list.clear();
            if list.capacity() <= MAX_LIST_CAPACITY {
                self.lists.push(list);
            }
        }
    }

    /// Keeps `map` emptied, and the objects among its values (metadata namespaces) too, down
    /// to [`MAX_MAP_DEPTH`] (deeper ones are simply dropped).
    fn salvage_map(&mut self, mut map: Map<String, Value>, depth: usize) {
        // `Map` does not tell its capacity: its length is the proxy (it rarely shrinks).
        let keep = map.len() <= MAX_MAP_MEMBERS;
        if depth < MAX_MAP_DEPTH {
            for value in map.values_mut() {
                if let Value::Object(inner) = value {
                    self.salvage_map(std::mem::take(inner), depth + 1);
                }
            }
        }
        if keep {
            map.clear();
            self.maps.push(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Segment {
        Segment {
            name: name.to_owned(),
            ..Segment::default()
        }
    }

    #[test]
    fn parts_come_back_empty_and_pools_stay_bounded() {
        let spares = Spares::default();
        let mut recycled = Recycled::default();
        for i in 0..(MAX_DOCUMENTS + 10) {
            let mut doc = spares.document();
            doc.name = format!("n{i}");
            let mut annotations = Map::new();
            annotations.insert("k".into(), Value::from(i));
            doc.annotations = Some(annotations);
            let mut namespace = Map::new();
            namespace.insert("k".into(), Value::from("v"));
            let mut metadata = Map::new();
            metadata.insert("default".into(), Value::Object(namespace));
            doc.metadata = Some(metadata);
            doc.subsegments = Some(vec![named("a"), named("b"), named("c")]);
            recycled.keep(doc);
        }
        spares.give(&mut recycled);
        {
            let pools = lock(&spares.pools);
            assert_eq!(pools.documents.len(), MAX_DOCUMENTS);
            assert_eq!(pools.lists.len(), MAX_LISTS);
            assert_eq!(pools.names.len(), MAX_NAMES);
            assert_eq!(pools.maps.len(), MAX_MAPS);
            assert!(pools.names.iter().all(|n| n.is_empty() && n.capacity() > 0));
            assert!(pools.maps.iter().all(Map::is_empty));
        }
        let doc = spares.document();
        assert_eq!(*doc, Segment::default());
        assert!(doc.name.capacity() > 0);
        let list = spares.list();
        assert!(list.is_empty());
        assert!(list.capacity() >= 3);
        assert!(spares.map().is_empty());
    }

    #[test]
    fn large_parts_are_not_kept() {
        let spares = Spares::default();
        let mut doc = spares.document();
        doc.name = "x".repeat(MAX_NAME_CAPACITY + 1);
        doc.subsegments = Some(vec![Segment::default(); MAX_LIST_CAPACITY + 1]);
        doc.annotations = Some(
            (0..=MAX_MAP_MEMBERS)
                .map(|i| (format!("k{i}"), Value::from(i)))
                .collect(),
        );
        let mut recycled = Recycled::default();
        recycled.keep(doc);
        spares.give(&mut recycled);
        let pools = lock(&spares.pools);
        assert!(pools.lists.is_empty());
        assert!(pools.maps.is_empty());
        assert_eq!(pools.documents.len(), 1);
        assert_eq!(pools.documents[0].name.capacity(), 0);
    }
}
