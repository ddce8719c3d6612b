//! Login throttle: wrong passwords slow down the one who types them, never
//! the account's owner elsewhere. Failures are counted per (username,
//! client host) and per client host ([`crate::net::host_of`]); past a few
//! free tries each further failure doubles the delay before that key may
//! try again, up to [`MAX_DELAY`]. While a delay runs the login is answered
//! 429 with the time left. There is no per-username lock: a stranger's
//! failures cannot keep the owner out from their own address.
//!
//! The table is bounded ([`MAX_ENTRIES`]); when it is full the entries
//! touched longest ago are forgotten to make room, so it always records.
//! In memory: a restart forgives, which is acceptable for a single node and
//! keeps logins off the database. The servers of a site also keep the
//! counts in Redis ([`site`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords for one username from one host before delays start:
/// room for typos and a forgotten caps lock.
pub const FREE_USER_FAILURES: u32 = 5;
/// Wrong passwords from one host, whatever the usernames, before delays
/// start: an office or campus behind one address has many people typing.
pub const FREE_HOST_FAILURES: u32 = 20;
/// The first delay; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay: after ten doublings an attacker gets four guesses an
/// hour per key, and an owner who forgot their password waits this at most.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long starts over.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Keys remembered at once. An entry is ~100 bytes, so this is ~10 MB;
/// a host's own delay bounds how fast it can add keys.
pub const MAX_ENTRIES: usize = 100_000;
/// Entries forgotten at once when the table is full, oldest first: one
/// pass over the table per this many new keys keeps insertion cheap.
const EVICT_BATCH: usize = MAX_ENTRIES / 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    UserHost(String, IpAddr),
    Host(IpAddr),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    until: Instant,
}

pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Entry>>,
    max_entries: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::with_capacity(MAX_ENTRIES)
    }
}

fn user_key(username: &str, host: IpAddr) -> Key {
    Key::UserHost(
        super::key_name(username).to_string(),
        crate::net::host_of(host),
    )
}

fn host_key(host: IpAddr) -> Key {
    Key::Host(crate::net::host_of(host))
}

/// The delay after `failures` failures with `free` of them free.
fn delay(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let doublings = (failures - free - 1).min(20);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

impl LoginThrottle {
    pub fn with_capacity(max_entries: usize) -> LoginThrottle {
        LoginThrottle {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(16),
        }
    }

    /// `Err(wait)` while `username` from `host`, or `host` at all, must
    /// wait before trying again.
    pub fn check(&self, username: &str, host: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let wait = [user_key(username, host), host_key(host)]
            .iter()
            .filter_map(|k| map.get(k))
            .map(|e| e.until.saturating_duration_since(now))
            .max()
            .unwrap_or(Duration::ZERO);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Records a wrong password for `username` from `host`.
    pub fn failed(&self, username: &str, host: IpAddr, now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (key, free) in [
            (user_key(username, host), FREE_USER_FAILURES),
            (host_key(host), FREE_HOST_FAILURES),
        ] {
            if map.len() >= self.max_entries && !map.contains_key(&key) {
                self.evict(&mut map, now);
            }
            let e = map.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
                until: now,
            });
            if now.saturating_duration_since(e.last) > FORGET_AFTER {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            e.until = now + delay(e.failures, free);
        }
    }

    /// A right password: `username` from `host` starts over. The host's
    /// count stays, or an attacker could clear it by signing in to an
    /// account of their own between guesses.
    pub fn succeeded(&self, username: &str, host: IpAddr) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user_key(username, host));
    }

    /// A password reset by mail proves the owner: every host's count for
    /// `username` is dropped.
    pub fn forgive(&self, username: &str) {
        let username = super::key_name(username);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !matches!(k, Key::UserHost(u, _) if u == username));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets entries that no longer matter, and if that frees too little,
    /// the least recently touched ones.
    fn evict(&self, map: &mut HashMap<Key, Entry>, now: Instant) {
        map.retain(|_, e| e.until > now || now.saturating_duration_since(e.last) < FORGET_AFTER);
        let batch = (self.max_entries / 16).clamp(1, EVICT_BATCH);
        if map.len() + batch <= self.max_entries {
            return;
        }
        crate::metrics::limit_hit("login_throttle_entries");
        let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
        let (_, cutoff, _) = lasts.select_nth_unstable(batch - 1);
        let cutoff = *cutoff;
        let mut dropped = 0;
        map.retain(|_, e| {
            if dropped < batch && e.last <= cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}

/// The same rules kept in the site's Redis (`--redis-url`), beside each
/// server's own table: a guesser spreading tries over the servers of a
/// site gets no more of them than from one. Counts and waits expire there
/// by themselves ([`FORGET_AFTER`], the delay). A Redis that does not
/// answer leaves each server's own table in charge.
pub mod site {
    use super::*;
    use crate::bus::{Bus, BusError};

    fn keys(username: &str, host: IpAddr) -> [(String, u32); 2] {
        let host = crate::net::host_of(host);
        [
            (
                format!("login:u:{}|{host}", crate::auth::key_name(username)),
                FREE_USER_FAILURES,
            ),
            (format!("login:h:{host}"), FREE_HOST_FAILURES),
        ]
    }

    /// `Ok(Err(wait))` while `username` from `host`, or `host` at all, must
    /// wait.
    pub async fn check(
        bus: &Bus,
        username: &str,
        host: IpAddr,
    ) -> Result<Result<(), Duration>, BusError> {
        let names: Vec<String> = keys(username, host).into_iter().map(|(k, _)| k).collect();
        let wait = bus.waiting(&names).await?;
        Ok(if wait.is_zero() { Ok(()) } else { Err(wait) })
    }

    /// Records a wrong password for `username` from `host`.
    pub async fn failed(bus: &Bus, username: &str, host: IpAddr) -> Result<(), BusError> {
        for (key, free) in keys(username, host) {
            let failures = bus.bump(&key, FORGET_AFTER).await?;
            let wait = delay(u32::try_from(failures).unwrap_or(u32::MAX), free);
            if !wait.is_zero() {
                bus.hold_off(&key, wait).await?;
            }
        }
        Ok(())
    }

    /// A right password: `username` from `host` starts over (the host's
    /// count stays, as on one server).
    pub async fn succeeded(bus: &Bus, username: &str, host: IpAddr) -> Result<(), BusError> {
        let [(user, _), _] = keys(username, host);
        bus.forget(&[user]).await
    }

    /// A password reset by mail: every host's count for `username` goes.
    pub async fn forgive(bus: &Bus, username: &str) -> Result<(), BusError> {
        // Names that reach here are stored ones: no glob characters.
        bus.forget_prefix(&format!("login:u:{}|", crate::auth::key_name(username)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn delays_double_after_the_free_tries_and_stop_at_the_cap() {
        assert_eq!(
            delay(FREE_USER_FAILURES, FREE_USER_FAILURES),
            Duration::ZERO
        );
        assert_eq!(
            delay(FREE_USER_FAILURES + 1, FREE_USER_FAILURES),
            FIRST_DELAY
        );
        assert_eq!(
            delay(FREE_USER_FAILURES + 4, FREE_USER_FAILURES),
            FIRST_DELAY * 8
        );
        assert_eq!(delay(1000, FREE_USER_FAILURES), MAX_DELAY);
    }

    #[test]
    fn a_strangers_failures_never_lock_the_owner_out() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..1000 {
            t.failed("alice", A, now);
        }
        assert_eq!(t.check("alice", A, now), Err(MAX_DELAY));
        assert_eq!(t.check("bob", A, now), Err(MAX_DELAY), "the host waits");
        assert_eq!(t.check("alice", B, now), Ok(()), "the owner elsewhere");
        // IPv6: a /64 is one host.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        for _ in 0..FREE_USER_FAILURES + 1 {
            t.failed("carol", v6a, now);
        }
        assert!(t.check("carol", v6b, now).is_err());
    }

    #[test]
    fn success_clears_the_pair_but_not_the_host() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_HOST_FAILURES + 1 {
            t.failed(&format!("u{i}"), A, now);
        }
        t.failed("alice", A, now);
        t.succeeded("alice", A);
        assert!(t.check("alice", A, now).is_err(), "the host still waits");
        let later = now + MAX_DELAY + Duration::from_secs(1);
        assert_eq!(t.check("alice", A, later), Ok(()));
        let forgotten = now + FORGET_AFTER + Duration::from_secs(1);
        t.failed("alice", A, forgotten);
        assert_eq!(t.check("alice", A, forgotten), Ok(()), "starts over");
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_keeps_recording() {
        let t = LoginThrottle::with_capacity(64);
        let t0 = Instant::now();
        // The attacker's key first, then a spray of other keys.
        for _ in 0..FREE_USER_FAILURES + 1 {
            t.failed("alice", A, t0);
        }
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed("spray", ip, t0 + Duration::from_millis(u64::from(i) + 1));
        }
        assert!(t.len() <= 64, "{}", t.len());
        // The newest keys are all there: recording never stopped.
        let now = t0 + Duration::from_secs(2);
        let last = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999));
        for _ in 0..FREE_USER_FAILURES {
            t.failed("spray", last, now);
        }
        assert!(t.check("spray", last, now).is_err());
    }
}
