//! Spare documents: the sender thread hands emptied `Segment` boxes and subsegment lists back
//! to the recorder, which fills them again instead of allocating new ones.
//!
//! A `Segment` is about 1.5 KB; with the system allocator, blocks of that size skip the
//! per-thread cache and cost several times a small allocation (and trigger consolidation of
//! freed small blocks). Reusing them keeps the app's thread to small allocations only. The
//! pools are bounded, so memory stays bounded; an empty pool simply allocates.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::model::Segment;

/// Emptied documents kept at most.
const MAX_DOCUMENTS: usize = 1024;
/// Emptied subsegment lists kept at most.
const MAX_LISTS: usize = 256;
/// Lists with room for more subsegments than this are freed, not kept.
const MAX_LIST_CAPACITY: usize = 32;

/// Bounded pools of empty documents and subsegment lists, shared by the app's threads and the
/// sender thread.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    /// Each is `Segment::default()`.
    #[allow(clippy::vec_box)]
    documents: Mutex<Vec<Box<Segment>>>,
    /// Each is empty.
    lists: Mutex<Vec<Vec<Segment>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spares {
    /// An empty document (`Segment::default()`), reused when one is spare.
    pub(crate) fn document(&self) -> Box<Segment> {
        lock(&self.documents).pop().unwrap_or_default()
    }

    /// An empty subsegment list, reused when one is spare.
    pub(crate) fn list(&self) -> Vec<Segment> {
        lock(&self.lists).pop().unwrap_or_default()
    }

    /// Keeps a document that is already empty (`Segment::default()`, e.g. after
    /// `std::mem::take`) for reuse.
    pub(crate) fn give_empty(&self, document: Box<Segment>) {
        let mut documents = lock(&self.documents);
        if documents.len() < MAX_DOCUMENTS {
            documents.push(document);
        }
    }

    /// Moves what `recycled` collected into the pools (one lock each), up to their bounds.
    pub(crate) fn give(&self, recycled: &mut Recycled) {
        if !recycled.documents.is_empty() {
            let mut documents = lock(&self.documents);
            let room = MAX_DOCUMENTS.saturating_sub(documents.len());
            let n = room.min(recycled.documents.len());
            documents.extend(recycled.documents.drain(..n));
        }
        recycled.documents.clear();
        if !recycled.lists.is_empty() {
            let mut lists = lock(&self.lists);
            let room = MAX_LISTS.saturating_sub(lists.len());
            let n = room.min(recycled.lists.len());
            lists.extend(recycled.lists.drain(..n));
        }
        recycled.lists.clear();
    }
}

/// Documents and lists emptied on one thread, waiting to go back to [`Spares`] together.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    #[allow(clippy::vec_box)]
    documents: Vec<Box<Segment>>,
    lists: Vec<Vec<Segment>>,
}

impl Recycled {
    /// Empties `document` (its contents are dropped) and keeps its subsegment list; the box
    /// itself stays with the caller, which may hand it to [`Recycled::keep`].
    fn take(&mut self, document: &mut Segment) {
        let mut contents = std::mem::take(document);
        if let Some(mut list) = contents.subsegments.take() {
            list.clear();
            if list.capacity() <= MAX_LIST_CAPACITY {
                self.lists.push(list);
            }
        }
    }

    /// Documents waiting to go back.
    pub(crate) fn len(&self) -> usize {
        self.documents.len()
    }

    /// Empties `document` and keeps it, box and subsegment list, for reuse.
    pub(crate) fn keep(&mut self, mut document: Box<Segment>) {
        self.take(&mut document);
        self.documents.push(document);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_come_back_empty_and_pools_stay_bounded() {
        let spares = Spares::default();
        let mut recycled = Recycled::default();
        for i in 0..(MAX_DOCUMENTS + 10) {
            let mut doc = spares.document();
            doc.name = format!("n{i}");
            doc.subsegments = Some(vec![Segment::default(); 3]);
            recycled.keep(doc);
        }
        spares.give(&mut recycled);
        assert_eq!(lock(&spares.documents).len(), MAX_DOCUMENTS);
        assert_eq!(lock(&spares.lists).len(), MAX_LISTS);
        let doc = spares.document();
        assert_eq!(*doc, Segment::default());
        let list = spares.list();
        assert!(list.is_empty());
        assert!(list.capacity() >= 3);
    }

    #[test]
    fn long_lists_are_not_kept() {
        let spares = Spares::default();
        let mut doc = spares.document();
        doc.subsegments = Some(vec![Segment::default(); MAX_LIST_CAPACITY + 1]);
        let mut recycled = Recycled::default();
        recycled.keep(doc);
        spares.give(&mut recycled);
        assert!(lock(&spares.lists).is_empty());
        assert_eq!(lock(&spares.documents).len(), 1);
    }
}
