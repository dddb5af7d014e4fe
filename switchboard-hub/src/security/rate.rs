//! Token-bucket rate limiting, per connection or per client address.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `per_second` tokens refill per second, up to `burst`.
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

    /// True when the bucket has refilled completely by `now` (it can be forgotten).
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.limit.per_second >= f64::from(self.limit.burst.max(1))
    }
}

/// Buckets by key (a client address), for stateless HTTP requests.
///
/// The map is bounded: when it passes `max_keys`, full buckets are forgotten (a full bucket
/// is the same as a new one), and if that is not enough the request is allowed through
/// untracked rather than growing memory without bound.
pub struct KeyedRateLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Eq + Hash> KeyedRateLimiter<K> {
    /// A limiter tracking at most `max_keys` keys.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            limit,
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`.
    pub fn try_take(&self, key: K, now: Instant) -> Result<(), Duration> {
        if !self.limit.is_enabled() {
            return Ok(());
        }
        // No `.await` under this lock; each call is a hash lookup.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| !b.is_full_at(now));
            if buckets.len() >= self.max_keys {
                return Ok(());
            }
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.limit, now))
            .try_take(now)
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
    fn keys_are_independent_and_bounded() {
        let t = Instant::now();
        let l = KeyedRateLimiter::new(LIMIT, 2);
        for _ in 0..3 {
            l.try_take("a", t).unwrap();
        }
        assert!(l.try_take("a", t).is_err());
        l.try_take("b", t).unwrap();
        // A third key while "a" and "b" are tracked and not full: let through untracked.
        for _ in 0..10 {
            l.try_take("c", t).unwrap();
        }
        // Once they refill they are forgotten and "c" is tracked.
        let later = t + Duration::from_secs(10);
        for _ in 0..3 {
            l.try_take("c", later).unwrap();
        }
        assert!(l.try_take("c", later).is_err());
    }
}
