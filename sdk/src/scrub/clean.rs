//! Strings a scrubber has already found clean, remembered per thread: a service's methods,
//! routes, user agents, database types and statement shapes come back request after request,
//! and a hit here costs a hash and a compare instead of the pre-filter set and the decoded form.
//!
//! Only a string found clean with every detector searched is remembered (no field rule in
//! force, no key that silences one), under the id of the scrubber's configuration; the lookup
//! is made under the same conditions, so a hit gives what scanning would. A string is
//! remembered the second time it is found clean (its hash is noted the first time), so strings
//! seen once do not churn the table. Bounded: [`SLOTS`] strings of at most [`MAX_LEN`] bytes.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Strings remembered per thread.
const SLOTS: usize = 1024;
/// Hashes of strings seen once, per thread.
const SEEN: usize = 4096;
/// Longer strings are not remembered.
pub(super) const MAX_LEN: usize = 256;

/// A new id for a compiled scrubber configuration.
pub(super) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    scrubber: u64,
    hash: u64,
    text: Box<str>,
}

struct Table {
    hasher: foldhash::fast::FixedState,
    entries: Vec<Option<Entry>>,
    seen: Vec<u64>,
}

impl Table {
    fn new() -> Self {
        Self {
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_c1ea),
            entries: (0..SLOTS).map(|_| None).collect(),
            seen: vec![0; SEEN],
        }
    }

    fn hash(&self, scrubber: u64, text: &str) -> u64 {
        self.hasher.hash_one((scrubber, text))
    }
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::new());
}

/// Whether `text` was found clean by the scrubber `scrubber` (see the module's conditions).
pub(super) fn known(scrubber: u64, text: &str) -> bool {
    if text.len() > MAX_LEN {
        return false;
    }
    TABLE.with(|table| {
        let table = table.borrow();
        let hash = table.hash(scrubber, text);
        table.entries[hash as usize % SLOTS]
            .as_ref()
            .is_some_and(|e| e.hash == hash && e.scrubber == scrubber && *e.text == *text)
    })
}

/// Notes that the scrubber `scrubber` found `text` clean; remembered from the second time.
pub(super) fn note(scrubber: u64, text: &str) {
    if text.len() > MAX_LEN {
        return;
    }
    TABLE.with(|table| {
        let mut table = table.borrow_mut();
        let hash = table.hash(scrubber, text);
        let seen = &mut table.seen[hash as usize % SEEN];
        if *seen != hash {
            *seen = hash;
            return;
        }
        table.entries[hash as usize % SLOTS] = Some(Entry {
            scrubber,
            hash,
            text: text.into(),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_from_the_second_time_per_scrubber() {
        let (a, b) = (next_id(), next_id());
        assert!(!known(a, "GET"));
        note(a, "GET");
        assert!(!known(a, "GET"));
        note(a, "GET");
        assert!(known(a, "GET"));
        assert!(!known(b, "GET"));
        assert!(!known(a, "POST"));
        let long = "x".repeat(MAX_LEN + 1);
        note(a, &long);
        note(a, &long);
        assert!(!known(a, &long));
    }
}
