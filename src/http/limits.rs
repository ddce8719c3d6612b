//! Who may do something how often: the in-memory limits of this server
//! ([`Limits`]: login throttle, password hashing, registrations, mail,
//! offers, likes, chat sockets), and their share across the servers of a
//! site (`--redis-url`), kept in Redis so that spreading requests over the
//! servers gains nothing.

use super::AppState;
use crate::auth::{self, throttle, Hasher, LoginThrottle, Rate, RateLimiter};
use crate::net::{ConnGate, ConnLimits};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Likes: one per user per channel every 10 s, as in the seed system.
pub const LIKE_INTERVAL: Duration = Duration::from_secs(10);

/// In-memory limits that are not worth a database round trip.
pub struct Limits {
    pub login: LoginThrottle,
    /// Every password hash and check the server does goes through it.
    pub hasher: Hasher,
    /// Registrations per client host; `None`: unlimited.
    register: Option<RateLimiter<IpAddr>>,
    /// Password-reset and verification mail per client host...
    mail_per_host: RateLimiter<IpAddr>,
    /// ...and per account asked about (the name as typed, whether or not
    /// it exists, so the limit itself tells nothing).
    mail_per_account: RateLimiter<String>,
    /// Chat WebSockets, per client host and in all.
    pub chat_sockets: Arc<ConnGate>,
    likes: Mutex<HashMap<(i64, String), Instant>>,
    signaling: Mutex<HashMap<std::net::IpAddr, crate::chat::limits::TokenBucket>>,
    /// Offers per second per address; `None` is the default.
    offer_rate: Option<f64>,
}

/// Mail a stranger can trigger (reset requests, verification resends) per
/// client host: a few at once, then one a minute. Each is an SMTP delivery
/// to someone's mailbox, so this is what keeps the server from being a
/// mail cannon.
pub const MAIL_PER_HOST: Rate = Rate {
    burst: 5,
    every: Duration::from_secs(60),
};
/// The same per target account: whoever asks, one mailbox gets at most
/// three, then one every ten minutes.
pub const MAIL_PER_ACCOUNT: Rate = Rate {
    burst: 3,
    every: Duration::from_secs(10 * 60),
};

/// WHIP/WHEP offers per client address: a page reload or a player retry
/// is a few; a flood costs the server a peer connection each.
pub const SIGNALING_BURST: u32 = 20;
pub const SIGNALING_PER_SEC: f64 = 5.0;
/// Addresses remembered at once; past it, idle ones are forgotten.
const SIGNALING_ADDRS: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Limits::new(None, crate::auth::AccountLimits::default())
    }
}

impl Limits {
    /// `offer_rate`: WHIP/WHEP offers per second per address (a burst of
    /// four seconds' worth; 0 turns the limit off, for load tests), `None`
    /// for the default.
    pub fn new(offer_rate: Option<f64>, accounts: crate::auth::AccountLimits) -> Limits {
        let register = (accounts.register_per_hour > 0).then(|| {
            RateLimiter::new(
                "register_per_hour",
                Rate {
                    burst: accounts.register_per_hour,
                    every: Duration::from_secs(3600) / accounts.register_per_hour,
                },
            )
        });
        Limits {
            login: LoginThrottle::default(),
            hasher: Hasher::new(),
            register,
            mail_per_host: RateLimiter::new("mail_per_host", MAIL_PER_HOST),
            mail_per_account: RateLimiter::new("mail_per_account", MAIL_PER_ACCOUNT),
            chat_sockets: ConnGate::new(
                "chat_ws",
                ConnLimits {
                    total: accounts.chat_sockets,
                    per_host: accounts.chat_sockets_per_host,
                },
            ),
            likes: Mutex::default(),
            signaling: Mutex::default(),
            offer_rate,
        }
    }

    /// Limits with `per_sec` WHIP/WHEP offers per address; 0 turns the
    /// limit off, for load tests.
    pub fn with_offer_rate(per_sec: f64) -> Limits {
        Limits::new(Some(per_sec), crate::auth::AccountLimits::default())
    }

    /// `Err(retry_after)` when `host` registered too often.
    pub fn register(&self, host: IpAddr, now: Instant) -> Result<(), Duration> {
        match &self.register {
            Some(r) => r.check(&host, now),
            None => Ok(()),
        }
    }

    /// `Err(retry_after)` when `host`, or mail to `account`, is over the
    /// mail rate.
    pub fn mail(&self, host: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        self.mail_per_host.check(&host, now)?;
        // No valid name is longer; a longer one must not grow the table.
        let account = auth::key_name(account).to_ascii_lowercase();
        self.mail_per_account.check(&account, now)
    }

    /// The offer limit as a [`Rate`], for the site's bucket of it
    /// ([`site_limit`]); `None` when offers are not limited.
    pub fn offer_rate(&self) -> Option<Rate> {
        let (burst, per_sec) = self.offer_burst()?;
        Some(Rate {
            burst,
            every: Duration::from_secs_f64(1.0 / per_sec),
        })
    }

    /// The registration limit, `None` when unlimited.
    pub fn register_rate(&self) -> Option<Rate> {
        self.register.as_ref().map(|r| r.rate())
    }

    fn offer_burst(&self) -> Option<(u32, f64)> {
        let per_sec = self.offer_rate.unwrap_or(SIGNALING_PER_SEC);
        if per_sec <= 0.0 {
            return None;
        }
        let burst = if self.offer_rate.is_some() {
            (per_sec * 4.0).ceil().max(1.0) as u32
        } else {
            SIGNALING_BURST
        };
        Some((burst, per_sec))
    }

    /// `Err(retry_after)` when `ip` is over its offer rate.
    pub fn offer(&self, ip: std::net::IpAddr, now: Instant) -> Result<(), Duration> {
        let Some((burst, per_sec)) = self.offer_burst() else {
            return Ok(());
        };
        let mut map = self.signaling.lock().expect("signaling limits poisoned");
        if map.len() >= SIGNALING_ADDRS && !map.contains_key(&ip) {
            map.retain(|_, b| !b.is_full(now));
        }
        let bucket = map
            .entry(ip)
            .or_insert_with(|| crate::chat::limits::TokenBucket::with_rate(burst, per_sec, now));
        if bucket.take(now) {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(1.0 / per_sec))
        }
    }

    /// `Err(retry_after)` if `user` liked `channel` less than 10 s ago.
    pub fn like(&self, user: i64, channel: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.likes.lock().expect("likes poisoned");
        if map.len() > 100_000 {
            map.retain(|_, t| now.duration_since(*t) < LIKE_INTERVAL);
        }
        let key = (user, channel.to_string());
        if let Some(t) = map.get(&key) {
            let since = now.duration_since(*t);
            if since < LIKE_INTERVAL {
                return Err(LIKE_INTERVAL - since);
            }
        }
        map.insert(key, now);
        Ok(())
    }
}

/// Gauges of the account limits for `/metrics`: the password hasher's
/// slots, what runs and waits now, and the most that ever ran at once
/// (never above the slots), and the chat sockets open.
pub(super) fn gauges(s: &AppState) -> Vec<(String, String, f64)> {
    let h = s.limits.hasher.stats();
    let (sockets, _) = s
        .limits
        .chat_sockets
        .open(std::net::Ipv4Addr::UNSPECIFIED.into());
    [
        ("onair_password_hash_slots", h.slots),
        ("onair_password_hashes_running", h.running),
        ("onair_password_hashes_peak", h.peak),
        ("onair_password_hashes_waiting", h.waiting),
        ("onair_chat_sockets", sockets),
    ]
    .into_iter()
    .map(|(name, v)| (name.to_string(), String::new(), v as f64))
    .collect()
}

/// `here` (this server's own verdict) and, when it passes and the limit
/// is on, the site's bucket for the same `rate` ([`site_limit`]): the
/// longer wait of the two, or `Ok`.
pub(super) async fn here_and_site(
    s: &AppState,
    what: &str,
    host: IpAddr,
    here: Result<(), Duration>,
    rate: Option<Rate>,
) -> Result<(), Duration> {
    match (here, rate) {
        (Ok(()), Some(rate)) => site_limit(s, what, host, rate).await,
        (here, _) => here,
    }
}

/// A per-address limit the servers of a site share (`--redis-url`): the
/// same `rate` as each server's own, in one bucket in Redis, so a client
/// spreading its requests over the servers gets no more than from one.
/// Without a bus, or with Redis not answering, each server's own limit
/// stands alone.
async fn site_limit(s: &AppState, what: &str, host: IpAddr, rate: Rate) -> Result<(), Duration> {
    let Some(bus) = s.rooms.bus() else {
        return Ok(());
    };
    match bus
        .take_token(&format!("{what}:{host}"), rate.burst, rate.every)
        .await
    {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => Err(wait.max(Duration::from_secs(1))),
        Err(e) => {
            tracing::debug!("site limit {what}: {e}");
            Ok(())
        }
    }
}

/// The login throttle's wait for `username` from `host`: this server's,
/// or the site's when it is longer (see [`throttle::site`]).
pub(super) async fn throttle_check(
    s: &AppState,
    username: &str,
    host: IpAddr,
) -> Result<(), Duration> {
    s.limits.login.check(username, host, Instant::now())?;
    let Some(bus) = s.rooms.bus() else {
        return Ok(());
    };
    match throttle::site::check(bus, username, host).await {
        Ok(wait) => wait,
        Err(e) => {
            tracing::debug!("site login throttle: {e}");
            Ok(())
        }
    }
}

/// A wrong password, counted here and for the site.
pub(super) async fn throttle_failed(s: &AppState, username: &str, host: IpAddr) {
    s.limits.login.failed(username, host, Instant::now());
    if let Some(bus) = s.rooms.bus() {
        if let Err(e) = throttle::site::failed(bus, username, host).await {
            tracing::debug!("site login throttle: {e}");
        }
    }
}
