//! Rate limits on account actions a stranger can repeat (registering,
//! asking for a password reset, asking for a verification mail): a token
//! bucket per key, in a bounded table that forgets the least recently used
//! keys when full, so it never stops limiting.

use crate::chat::TokenBucket;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One limit: `burst` at once, then one every `every`, per key.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// Keys remembered by one limiter. A bucket is ~64 bytes with its key, so
/// this is a few MB; an evicted key only gets its burst back.
pub const MAX_KEYS: usize = 50_000;

pub struct RateLimiter<K> {
    /// Names the limit in `onair_limit_hits_total`.
    name: &'static str,
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, (TokenBucket, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(name: &'static str, rate: Rate) -> RateLimiter<K> {
        Self::with_capacity(name, rate, MAX_KEYS)
    }

    /// The limit it keeps.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    pub fn with_capacity(name: &'static str, rate: Rate, max_keys: usize) -> RateLimiter<K> {
        RateLimiter {
            name,
            rate,
            max_keys: max_keys.max(16),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn per_sec(&self) -> f64 {
        1.0 / self.rate.every.as_secs_f64().max(1e-6)
    }

    /// Whether `key` may act now; `Err(retry_after)` if not. Takes nothing
    /// when refused.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.check_all(&[key], now)
    }

    /// Takes one token from every key's bucket if each has one, else none
    /// (the reset limit is per host and per account at once).
    pub fn check_all(&self, keys: &[&K], now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if !map.contains_key(*key) && map.len() >= self.max_keys {
                self.evict(&mut map, now);
            }
            let rate = self.rate;
            let per_sec = self.per_sec();
            map.entry((*key).clone())
                .or_insert_with(|| (TokenBucket::with_rate(rate.burst, per_sec, now), now));
        }
        let empty = keys.iter().any(|k| {
            let (b, _) = map.get(*k).expect("inserted above");
            let mut probe = b.clone();
            !probe.take(now)
        });
        if empty {
            crate::metrics::limit_hit(self.name);
            return Err(self.rate.every);
        }
        for key in keys {
            if let Some((b, used)) = map.get_mut(*key) {
                b.take(now);
                *used = now;
            }
        }
        Ok(())
    }

    /// Drops full buckets (forgetting them changes nothing), then if need
    /// be the least recently used eighth.
    fn evict(&self, map: &mut HashMap<K, (TokenBucket, Instant)>, now: Instant) {
        map.retain(|_, (b, _)| !b.is_full(now));
        let batch = self.max_keys / 8;
        if map.len() + batch <= self.max_keys {
            return;
        }
        let mut used: Vec<Instant> = map.values().map(|(_, t)| *t).collect();
        let (_, cutoff, _) = used.select_nth_unstable(batch - 1);
        let cutoff = *cutoff;
        let mut dropped = 0;
        map.retain(|_, (_, t)| {
            if dropped < batch && *t <= cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }

    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 2,
        every: Duration::from_secs(10),
    };

    #[test]
    fn burst_then_one_per_interval_per_key() {
        let r = RateLimiter::new("test_rate", RATE);
        let t = Instant::now();
        assert!(r.check(&1, t).is_ok());
        assert!(r.check(&1, t).is_ok());
        assert_eq!(r.check(&1, t), Err(RATE.every));
        assert!(r.check(&2, t).is_ok(), "another key has its own bucket");
        assert!(r.check(&1, t + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn all_or_nothing_across_keys() {
        let r = RateLimiter::new("test_rate", RATE);
        let t = Instant::now();
        r.check(&"host", t).unwrap();
        r.check(&"host", t).unwrap();
        assert!(r.check_all(&[&"host", &"account"], t).is_err());
        // The refused request did not use the account's tokens.
        r.check(&"account", t).unwrap();
        r.check(&"account", t).unwrap();
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_used() {
        let r = RateLimiter::with_capacity("test_rate", RATE, 64);
        let t = Instant::now();
        for i in 0..10_000u32 {
            let _ = r.check(&i, t + Duration::from_millis(u64::from(i)));
        }
        assert!(r.len() <= 64);
        let last = t + Duration::from_millis(10_000);
        r.check(&9_999, last).unwrap();
        assert!(
            r.check(&9_999, last).is_err(),
            "the newest key still limits"
        );
    }
}
