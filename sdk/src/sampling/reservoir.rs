//! The reservoir: at most `fixed_target` requests per whole second, never saving unused quota.

use std::sync::atomic::{AtomicU64, Ordering};

/// A per-second quota shared by all threads.
///
/// The count belongs to the second it was last used in; a request in a later second starts a
/// new count from zero, so quota unused during idle time is never carried into a burst.
#[derive(Debug)]
pub struct Reservoir {
    quota: u32,
    window: SecondWindow,
}

impl Reservoir {
    /// A reservoir granting `quota` requests per second.
    pub fn new(quota: u32) -> Self {
        Self {
            quota,
            window: SecondWindow::default(),
        }
    }

    /// The per-second quota.
    pub fn quota(&self) -> u32 {
        self.quota
    }

    /// Takes one request from the quota of `second` (an epoch second); `false` when it is spent.
    pub fn try_take(&self, second: u64) -> bool {
        self.window.try_take(second, self.quota)
    }
}

/// The count of requests taken in the current second; one atomic word holds `(second, taken)`,
/// so taking is one compare-and-swap and the limit may change from call to call (a centralized
/// rule's quota changes with every target the daemon sends).
#[derive(Debug, Default)]
pub(crate) struct SecondWindow(AtomicU64);

impl SecondWindow {
    /// Takes one of `limit` requests of `second`; `false` when they are spent.
    pub(crate) fn try_take(&self, second: u64, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let second = (second & u64::from(u32::MAX)) << 32;
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let (current_second, taken) = (current & !u64::from(u32::MAX), current as u32);
            let next = if current_second == second {
                if taken >= limit {
                    return false;
                }
                current + 1
            } else if current_second > second {
                // A clock stepped back or a racing thread moved on: don't reopen an old second.
                return false;
            } else {
                second | 1
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn grants_the_quota_then_refuses_until_the_next_second() {
        let r = Reservoir::new(2);
        assert!(r.try_take(100));
        assert!(r.try_take(100));
        assert!(!r.try_take(100));
        assert!(r.try_take(101));
    }

    #[test]
    fn zero_quota_grants_nothing() {
        assert!(!Reservoir::new(0).try_take(5));
    }

    proptest! {
        /// Never more than the quota in any second, and idle seconds are not saved up.
        #[test]
        fn never_exceeds_quota_nor_saves_unused_quota(
            quota in 0u32..5,
            gaps in proptest::collection::vec(0u64..3, 1..200),
        ) {
            let r = Reservoir::new(quota);
            let mut second = 1_700_000_000u64;
            let mut granted: BTreeMap<u64, u32> = BTreeMap::new();
            for gap in gaps {
                second += gap;
                if r.try_take(second) {
                    *granted.entry(second).or_default() += 1;
                }
            }
            for (_, n) in granted {
                prop_assert!(n <= quota);
            }
        }

        /// After any idle time, a burst in one second gets exactly the quota, no more.
        #[test]
        fn burst_after_idle_gets_exactly_the_quota(quota in 1u32..10, idle in 1u64..1000, burst in 1u32..50) {
            let r = Reservoir::new(quota);
            prop_assert!(r.try_take(10));
            let second = 10 + idle;
            let granted = (0..burst).filter(|_| r.try_take(second)).count() as u32;
            prop_assert_eq!(granted, burst.min(quota));
        }
    }
}
