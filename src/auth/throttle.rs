//! Login throttle: after [`MAX_FAILURES`] wrong passwords for one username
//! (or from one address) within [`WINDOW`], logins are refused for
//! [`LOCKOUT`]. In memory: a restart forgives, which is acceptable for a
//! single-node server and keeps the hot path off the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Bounds memory under a spray of usernames: the oldest entries go first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// `Some(retry_after)` while `key` is locked out.
    pub fn check(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.entries.lock().expect("throttle poisoned");
        map.get(key)
            .and_then(|e| e.locked_until)
            .filter(|&t| t > now)
            .map(|t| t - now)
    }

    pub fn failed(&self, key: &str, now: Instant) {
        let mut map = self.entries.lock().expect("throttle poisoned");
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.retain(|_, e| now.duration_since(e.first) < WINDOW || e.locked_until > Some(now));
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            first: now,
            locked_until: None,
        });
        if now.duration_since(e.first) > WINDOW {
            e.failures = 0;
            e.first = now;
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES {
            e.locked_until = Some(now + LOCKOUT);
            e.failures = 0;
            e.first = now;
        }
    }

    pub fn succeeded(&self, key: &str) {
        self.entries.lock().expect("throttle poisoned").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_ten_failures_and_unlocks_later() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed("alice", now);
        }
        assert!(t.check("alice", now).is_none());
        t.failed("alice", now);
        assert!(t.check("alice", now).is_some());
        assert!(t.check("bob", now).is_none());
        assert!(t
            .check("alice", now + LOCKOUT + Duration::from_secs(1))
            .is_none());
    }
}
