//! Rate limits: a token bucket per principal (after its signature is checked) and per source
//! address (for anonymous and failed requests), held in sharded maps so concurrent requests
//! rarely meet on a lock, with a cap on buckets and eviction of idle ones so a flood of new
//! addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Shards per map (a power of two).
const SHARDS: usize = 16;
/// Buckets kept per shard before idle ones are evicted.
const PER_SHARD: usize = 4096;
/// Default for principals without their own limit: requests per second.
pub const DEFAULT_RATE: f64 = 500.0;
/// Default burst for principals.
pub const DEFAULT_BURST: f64 = 1000.0;
/// Default for each anonymous or failing source address: requests per second.
pub const ANONYMOUS_RATE: f64 = 50.0;
/// Default burst for source addresses.
pub const ANONYMOUS_BURST: f64 = 100.0;

/// The keyword that turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unlimited {
    /// `"unlimited"`.
    #[serde(rename = "unlimited")]
    Unlimited,
}

/// A rate limit as written in the keys file: `"unlimited"` or
/// `{"requests_per_second": 10, "burst": 20}` (burst defaults to twice the rate, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RateLimit {
    /// No limit.
    Unlimited(Unlimited),
    /// A token bucket.
    Bucket {
        /// Sustained requests per second.
        requests_per_second: f64,
        /// Requests that may arrive at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burst: Option<f64>,
    },
}

impl RateLimit {
    /// A bucket limit.
    pub fn per_second(rate: f64, burst: f64) -> Self {
        RateLimit::Bucket {
            requests_per_second: rate,
            burst: Some(burst),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        RateLimit::Unlimited(Unlimited::Unlimited)
    }

    /// Checks the numbers and resolves the default burst.
    pub fn compile(&self) -> Result<Limit, String> {
        match *self {
            RateLimit::Unlimited(_) => Ok(Limit::Unlimited),
            RateLimit::Bucket {
                requests_per_second: rate,
                burst,
            } => {
                let burst = burst.unwrap_or((rate * 2.0).max(1.0));
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(format!(
                        "requests_per_second must be a positive number, not {rate}"
                    ));
                }
                if !(burst.is_finite() && burst >= 1.0) {
                    return Err(format!("burst must be at least 1, not {burst}"));
                }
                Ok(Limit::Bucket { rate, burst })
            }
        }
    }
}

/// A checked limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// No limit.
    Unlimited,
    /// Tokens refill at `rate` per second up to `burst`.
    Bucket {
        /// Per second.
        rate: f64,
        /// Capacity.
        burst: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Nanoseconds since the limiter's start, when `tokens` was computed.
    at: u64,
    /// When the bucket will be full again (then it is as good as absent).
    full_at: u64,
}

/// Buckets by key, sharded.
#[derive(Debug)]
struct Buckets<K> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token from `key`'s bucket; `Err(wait)` when it is empty.
    fn take<Q>(
        &self,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        rate: f64,
        burst: f64,
        now: u64,
    ) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        let Ok(mut map) = self.shards[shard].lock() else {
            return Ok(());
        };
        let bucket = match map.get_mut(key) {
            Some(b) => b,
            None => {
                if map.len() >= PER_SHARD {
                    evict(&mut map, now);
                }
                map.entry(own(key)).or_insert(Bucket {
                    tokens: burst,
                    at: now,
                    full_at: now,
                })
            }
        };
        let elapsed = now.saturating_sub(bucket.at) as f64 / 1e9;
        let tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now.max(bucket.at);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.full_at = bucket
                .at
                .saturating_add(((burst - bucket.tokens) / rate * 1e9) as u64);
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::try_from_secs_f64((1.0 - tokens) / rate).unwrap_or(Duration::MAX))
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

/// Makes room in a full shard: drops buckets that have refilled (forgetting them changes
/// nothing), and if too few have, the least recently used quarter.
fn evict<K: Hash + Eq>(map: &mut HashMap<K, Bucket>, now: u64) {
    map.retain(|_, b| b.full_at > now);
    if map.len() >= PER_SHARD * 3 / 4 {
        let mut ats: Vec<u64> = map.values().map(|b| b.at).collect();
        let (_, cut, _) = ats.select_nth_unstable(PER_SHARD / 4);
        let cut = *cut;
        map.retain(|_, b| b.at > cut);
    }
}

/// The limiter: principals' and addresses' buckets and a count of refusals.
#[derive(Debug)]
pub struct Limiter {
    start: Instant,
    principals: Buckets<Box<str>>,
    addresses: Buckets<IpAddr>,
    throttled: AtomicU64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            principals: Buckets::new(),
            addresses: Buckets::new(),
            throttled: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the limiter started (its clock).
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn count(&self, r: Result<(), Duration>) -> Result<(), Duration> {
        if r.is_err() {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Charges one request to a principal; `Err(retry_after)` when over its limit.
    pub fn principal(&self, name: &str, limit: Limit, now: u64) -> Result<(), Duration> {
        match limit {
            Limit::Unlimited => Ok(()),
            Limit::Bucket { rate, burst } => {
                self.count(
                    self.principals
                        .take(name, |n: &str| n.into(), rate, burst, now),
                )
            }
        }
    }

    /// Charges one anonymous or failed request to its source address.
    pub fn address(&self, ip: IpAddr, limit: Limit, now: u64) -> Result<(), Duration> {
        match limit {
            Limit::Unlimited => Ok(()),
            Limit::Bucket { rate, burst } => {
                self.count(self.addresses.take(&ip, |ip| *ip, rate, burst, now))
            }
        }
    }

    /// Requests refused so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Buckets held (principals, addresses).
    pub fn buckets(&self) -> (usize, usize) {
        (self.principals.len(), self.addresses.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        let l = Limiter::new();
        let limit = RateLimit::per_second(2.0, 3.0).compile().unwrap();
        for _ in 0..3 {
            assert!(l.principal("a", limit, 0).is_ok());
        }
        let wait = l.principal("a", limit, 0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another principal has its own bucket.
        assert!(l.principal("b", limit, 0).is_ok());
        // Half a second later one token is back, and only one.
        assert!(l.principal("a", limit, SEC / 2).is_ok());
        assert!(l.principal("a", limit, SEC / 2).is_err());
        // Long idle: refilled to the burst, not beyond.
        for _ in 0..3 {
            assert!(l.principal("a", limit, 100 * SEC).is_ok());
        }
        assert!(l.principal("a", limit, 100 * SEC).is_err());
        assert_eq!(l.throttled(), 3);
    }

    #[test]
    fn unlimited_and_defaults_and_bad_numbers() {
        let l = Limiter::new();
        for _ in 0..10_000 {
            assert!(l.principal("a", Limit::Unlimited, 0).is_ok());
        }
        assert_eq!(l.buckets(), (0, 0));
        let parsed: RateLimit = serde_json::from_str(r#""unlimited""#).unwrap();
        assert_eq!(parsed.compile().unwrap(), Limit::Unlimited);
        let parsed: RateLimit = serde_json::from_str(r#"{"requests_per_second":5}"#).unwrap();
        assert_eq!(
            parsed.compile().unwrap(),
            Limit::Bucket {
                rate: 5.0,
                burst: 10.0
            }
        );
        assert_eq!(
            serde_json::to_string(&RateLimit::unlimited()).unwrap(),
            r#""unlimited""#
        );
        for bad in [
            r#"{"requests_per_second":0}"#,
            r#"{"requests_per_second":-1}"#,
            r#"{"requests_per_second":5,"burst":0.5}"#,
        ] {
            let parsed: RateLimit = serde_json::from_str(bad).unwrap();
            assert!(parsed.compile().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<RateLimit>(r#""fast""#).is_err());
        // A vanishingly small rate waits "forever" rather than overflowing.
        let tiny = RateLimit::per_second(1e-300, 1.0).compile().unwrap();
        assert!(l.principal("t", tiny, 0).is_ok());
        assert_eq!(l.principal("t", tiny, 0), Err(Duration::MAX));
    }

    #[test]
    fn addresses_are_capped_and_idle_ones_evicted_first() {
        let l = Limiter::new();
        let limit = RateLimit::per_second(1.0, 2.0).compile().unwrap();
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        // A busy address, then a flood of new ones far past the cap.
        assert!(l.address(ip(1), limit, 0).is_ok());
        assert!(l.address(ip(1), limit, 0).is_ok());
        assert!(l.address(ip(1), limit, 0).is_err());
        let total = (SHARDS * PER_SHARD * 3) as u32;
        for n in 2..total {
            let _ = l.address(ip(n), limit, 0);
        }
        assert!(l.buckets().1 <= SHARDS * PER_SHARD, "{:?}", l.buckets());
        // Once they have refilled, new addresses replace them instead of the least recent.
        for n in total..total + 100 {
            assert!(l.address(ip(n), limit, 10 * SEC).is_ok());
        }
        assert!(l.buckets().1 <= SHARDS * PER_SHARD);
    }
}
