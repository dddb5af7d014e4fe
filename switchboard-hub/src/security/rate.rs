//! Token-bucket rate limiting, per connection or per client address.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `per_second` tokens refill per second, up to `burst`.
///
/// ```
/// use switchboard_hub::security::RateLimit;
///
/// let limit = RateLimit { per_second: 5.0, burst: 10 };
/// assert!(limit.is_enabled());
/// assert!(!RateLimit { per_second: 0.0, burst: 10 }.is_enabled()); // no limit
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained rate; 0 or less disables limiting.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: u32,
}

impl RateLimit {
    /// Whether this limit limits anything.
    pub fn is_enabled(&self) -> bool {
        self.per_second > 0.0
    }
}

/// One bucket. Starts full.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_hub::security::{RateLimit, TokenBucket};
///
/// let start = Instant::now();
/// let mut bucket = TokenBucket::new(RateLimit { per_second: 10.0, burst: 2 }, start);
/// assert!(bucket.try_take(start).is_ok());
/// assert!(bucket.try_take(start).is_ok());
/// let wait = bucket.try_take(start).unwrap_err(); // empty: one token every 100 ms
/// assert!(wait <= Duration::from_millis(100));
/// assert!(bucket.try_take(start + Duration::from_millis(100)).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            last: now,
        }
    }

    /// Takes one token at `now`, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if !self.limit.is_enabled() {
            return Ok(());
        }
        let capacity = f64::from(self.limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // `try_from`: a tiny rate must not overflow (and panic) here.
            Err(
                Duration::try_from_secs_f64((1.0 - self.tokens) / self.limit.per_second)
                    .unwrap_or(Duration::MAX),
            )
        }
    }
}

/// Buckets by key (a client address), shared by every request and connection of that key.
///
/// O(1) per call at any number of keys, in bounded memory: buckets live in two
/// generations. A key is looked up in the young one, then the old one (and moved up). The
/// generations turn over every refill period (`burst / per_second`: the time an untouched
/// bucket takes to become full, which is the same as new), dropping the old one; so only
/// buckets that nobody touched for a whole period are forgotten, and forgetting them
/// changes nothing. Memory is bounded by `max_keys`: when the young generation holds half
/// of it, it turns over early — then buckets touched within the last period may be
/// forgotten and start full again, a leniency that only a client with more than
/// `max_keys / 2` addresses active at once can get, and that never grows memory.
///
/// ```
/// use std::net::IpAddr;
/// use std::time::Instant;
/// use switchboard_hub::security::{KeyedRateLimiter, RateLimit};
///
/// let limiter = KeyedRateLimiter::new(RateLimit { per_second: 1.0, burst: 1 }, 10_000);
/// let (alice, bob): (IpAddr, IpAddr) = ("192.0.2.1".parse()?, "192.0.2.2".parse()?);
/// let now = Instant::now();
/// assert!(limiter.try_take(alice, now).is_ok());
/// assert!(limiter.try_take(alice, now).is_err()); // alice's bucket is empty
/// assert!(limiter.try_take(bob, now).is_ok()); // bob has his own
/// assert_eq!(limiter.tracked(), 2);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub struct KeyedRateLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    /// How long an untouched bucket takes to refill completely.
    period: Duration,
    state: Mutex<Generations<K>>,
}

struct Generations<K> {
    young: HashMap<K, TokenBucket>,
    old: HashMap<K, TokenBucket>,
    turned: Option<Instant>,
}

impl<K: Eq + Hash> KeyedRateLimiter<K> {
    /// A limiter tracking at most `max_keys` keys.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        let period = if limit.is_enabled() {
            Duration::try_from_secs_f64(f64::from(limit.burst.max(1)) / limit.per_second)
                .unwrap_or(Duration::MAX)
        } else {
            Duration::MAX
        };
        Self {
            limit,
            max_keys: max_keys.max(2),
            period,
            state: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
                turned: None,
            }),
        }
    }

    /// Takes a token for `key` at `now`.
    pub fn try_take(&self, key: K, now: Instant) -> Result<(), Duration> {
        if !self.limit.is_enabled() {
            return Ok(());
        }
        // Freed after the lock is released: dropping a generation is O(its size).
        let mut forgotten = None;
        let result = {
            // No `.await` under this lock; each call is a hash lookup or two.
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let turned = *g.turned.get_or_insert(now);
            let since = now.saturating_duration_since(turned);
            if since >= self.period {
                forgotten = Some(g.turn_over(now));
                if since >= self.period.saturating_mul(2) {
                    // Nothing in the other generation was touched for a period either.
                    forgotten = Some(g.turn_over(now));
                }
            }
            if let Some(bucket) = g.young.get_mut(&key) {
                bucket.try_take(now)
            } else {
                let mut bucket = g
                    .old
                    .remove(&key)
                    .unwrap_or_else(|| TokenBucket::new(self.limit, now));
                let result = bucket.try_take(now);
                if g.young.len() >= self.max_keys / 2 {
                    forgotten = Some(g.turn_over(now));
                }
                g.young.insert(key, bucket);
                result
            }
        };
        drop(forgotten);
        result
    }

    /// Keys tracked now (both generations).
    pub fn tracked(&self) -> usize {
        let g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.young.len() + g.old.len()
    }
}

impl<K> Generations<K> {
    /// Makes the young generation the old one; returns the old one to be dropped.
    fn turn_over(&mut self, now: Instant) -> HashMap<K, TokenBucket> {
        self.turned = Some(now);
        let young = std::mem::take(&mut self.young);
        std::mem::replace(&mut self.old, young)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3,
    };

    #[test]
    fn burst_then_refill() {
        let t = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t);
        for _ in 0..3 {
            b.try_take(t).unwrap();
        }
        let wait = b.try_take(t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        b.try_take(t + Duration::from_millis(500)).unwrap();
        assert!(b.try_take(t + Duration::from_millis(500)).is_err());
        // Refill caps at the burst size.
        let later = t + Duration::from_secs(100);
        for _ in 0..3 {
            b.try_take(later).unwrap();
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn disabled_limit_always_allows() {
        let t = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 0.0,
                burst: 0,
            },
            t,
        );
        for _ in 0..1000 {
            b.try_take(t).unwrap();
        }
    }

    #[test]
    fn keys_are_independent_and_forgotten_only_when_full() {
        let t = Instant::now();
        let l = KeyedRateLimiter::new(LIMIT, 100);
        for _ in 0..3 {
            l.try_take("a", t).unwrap();
        }
        assert!(l.try_take("a", t).is_err());
        l.try_take("b", t).unwrap();
        // Within a refill period (1.5 s) "a" stays tracked, across a turnover too.
        let soon = t + Duration::from_millis(1400);
        assert!(l.try_take("a", soon).is_ok()); // 2.8 tokens refilled, 1 left after
        let later = soon + Duration::from_millis(1500);
        for _ in 0..3 {
            l.try_take("c", later).unwrap();
        }
        assert!(l.try_take("c", later).is_err());
        // Untouched for two periods: forgotten.
        let much_later = later + Duration::from_secs(4);
        l.try_take("d", much_later).unwrap();
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_new_key_past_the_bound_is_still_limited_and_calls_stay_cheap() {
        // 300,000 distinct keys against a 100,000-key bound: each call O(1), and the
        // attacker's key, arriving when the table is full, is still limited.
        let t = Instant::now();
        let l = KeyedRateLimiter::new(LIMIT, 100_000);
        let started = Instant::now();
        for k in 0..300_000u32 {
            l.try_take(k, t).unwrap();
        }
        for _ in 0..3 {
            l.try_take(u32::MAX, t).unwrap();
        }
        assert!(l.try_take(u32::MAX, t).is_err());
        assert!(l.tracked() <= 100_000);
        // A scan per new key (the old design) would take hours here; O(1) takes well under
        // a second in release, a few seconds in a debug build on a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }
}
