//! Copies of a scrubber lent to the threads of a pool. A copy made by
//! [`Scrubber::with_own_caches`] scrubs faster than the shared scrubber (its regexes' caches
//! are its own, and it remembers the strings it found clean), but a pool of hundreds of
//! threads (the collector's blocking pool) cannot hold one each. So a scrubber and its clones
//! keep a bounded set of copies, two per core, made on demand; a thread borrows one for a
//! request and gives it back when done, and uses the shared scrubber when none is free.

use std::ops::Deref;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Scrubber;

/// The copies a scrubber and its clones lend.
#[derive(Debug, Default)]
pub(super) struct Copies {
    free: Mutex<Vec<Scrubber>>,
    made: AtomicUsize,
}

/// Copies made at most: two per core.
fn most() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// A scrubber borrowed with [`Scrubber::lend`]; given back when dropped.
#[derive(Debug)]
pub struct Lent<'a> {
    from: &'a Scrubber,
    copy: Option<Scrubber>,
}

impl Deref for Lent<'_> {
    type Target = Scrubber;

    fn deref(&self) -> &Scrubber {
        self.copy.as_ref().unwrap_or(self.from)
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let (Some(copy), Ok(mut free)) = (self.copy.take(), self.from.copies.free.lock()) {
            free.push(copy);
        }
    }
}

impl Scrubber {
    /// A copy with its own caches for this thread's work, until the [`Lent`] is dropped:
    /// a free one, or a new one while fewer than two per core were made, or else this
    /// scrubber itself. Every copy scrubs exactly as this scrubber does.
    pub fn lend(&self) -> Lent<'_> {
        let free = self.copies.free.lock().ok().and_then(|mut free| free.pop());
        let copy = free.or_else(|| {
            let made = &self.copies.made;
            let fresh = made
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < most()).then_some(n + 1)
                })
                .is_ok();
            fresh.then(|| self.with_own_caches())
        });
        Lent { from: self, copy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_bounded_reused_and_scrub_as_the_original() {
        let scrubber = Scrubber::default();
        let lent: Vec<Lent<'_>> = (0..most() + 3).map(|_| scrubber.lend()).collect();
        let copies = lent.iter().filter(|l| l.copy.is_some()).count();
        assert_eq!(
            copies,
            most(),
            "two copies per core, the rest share the original"
        );
        let text = "mail jane.doe@example.com card 4111 1111 1111 1111";
        let mut expected = text.to_owned();
        scrubber.scrub_text(&mut expected);
        assert_ne!(expected, text, "the text holds personal data");
        for l in &lent {
            // Twice: the second time a copy may answer from the strings it found clean.
            for _ in 0..2 {
                let mut scrubbed = text.to_owned();
                l.scrub_text(&mut scrubbed);
                assert_eq!(scrubbed, expected);
            }
        }
        drop(lent);
        // Given back: lending again makes no new copy.
        let again = scrubber.lend();
        assert!(again.copy.is_some());
        assert_eq!(scrubber.copies.made.load(Ordering::Acquire), most());
        assert_eq!(
            scrubber.copies.free.lock().map(|f| f.len()).ok(),
            Some(most() - 1)
        );
    }
}
