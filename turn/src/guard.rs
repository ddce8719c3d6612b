//! Quotas the `turn` crate lacks: it opens an allocation (a relay socket and
//! its tasks) for every authenticated client 5-tuple, without limit. The
//! relay keeps its own record of every open allocation ([`State`]), counts
//! them per client host, per user and in total, and the read loops answer
//! an Allocate over the host or total quota themselves with 486 (per
//! client) or 508 (server full), as RFC 8656 7.2 says, before the crate
//! sees it (the per-user quota needs the request authenticated first:
//! [`crate::screen`]).
//!
//! It also holds the ration of challenges (requests the crate answers with a
//! new nonce), which [`crate::serve`] applies: each costs a stored nonce and
//! an MD5, and a flood of them can come from spoofed UDP sources. The nonce
//! store itself is bounded there.

use crate::allocation::{user_part, Allocation, Client};
use crate::limits::{Bucket, Limits};
use crate::stats::{add, Stats};
use crate::wire::MAGIC_COOKIE;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use turn::allocation::AllocationInfo;

pub(crate) const ALLOCATE_REQUEST: u16 = 0x0003;
const ALLOCATE_ERROR: u16 = 0x0113;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const METHOD_BINDING: u16 = 0x0001;

const ATTR_NONCE: u16 = 0x0015;

/// How a request the crate may challenge is authenticated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Auth<'a> {
    /// No MESSAGE-INTEGRITY (or not parsed as having one): the crate answers
    /// 401 with a new nonce.
    Missing,
    /// MESSAGE-INTEGRITY and this NONCE: the crate answers 438 with a new
    /// nonce unless it issued this one.
    Nonce(&'a [u8]),
}

/// For a STUN request other than Binding (which the crate never
/// challenges), how it is authenticated. The header checks are no stricter
/// than the crate's (which ignores the type's top two bits), and anything
/// unclear counts as [`Auth::Missing`], so every request that can make the
/// crate store a nonce is seen.
pub(crate) fn auth(b: &[u8]) -> Option<Auth<'_>> {
    let t = stun_type(b)?;
    let request = t & 0x0110 == 0;
    let method = t & 0x3EEF;
    if !request || method == METHOD_BINDING {
        return None;
    }
    let end = (20 + u16::from_be_bytes([b[2], b[3]]) as usize).min(b.len());
    let mut at = 20;
    let (mut integrity, mut nonce) = (false, None);
    while at + 4 <= end {
        let typ = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        let value = b.get(at + 4..at + 4 + len);
        match typ {
            ATTR_MESSAGE_INTEGRITY => integrity = true,
            ATTR_NONCE if nonce.is_none() => nonce = value,
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    match (integrity, nonce) {
        (true, Some(n)) => Some(Auth::Nonce(n)),
        _ => Some(Auth::Missing),
    }
}

pub(crate) fn stun_type(b: &[u8]) -> Option<u16> {
    (b.len() >= 20 && b[4..8] == MAGIC_COOKIE).then(|| u16::from_be_bytes([b[0], b[1]]))
}

/// An error response to the request `req` (whose header was checked).
fn error_response(req: &[u8], code: u16, reason: &str) -> Vec<u8> {
    let reason = reason.as_bytes();
    let value_len = 4 + reason.len();
    let padded = value_len.div_ceil(4) * 4;
    let mut m = Vec::with_capacity(20 + 4 + padded);
    m.extend_from_slice(&ALLOCATE_ERROR.to_be_bytes());
    m.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    m.extend_from_slice(&req[4..20]); // cookie and transaction id
    m.extend_from_slice(&ATTR_ERROR_CODE.to_be_bytes());
    m.extend_from_slice(&(value_len as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
    m.extend_from_slice(reason);
    m.resize(20 + 4 + padded, 0);
    m
}

/// Open allocations, and how many each host and user has.
#[derive(Default)]
struct Live {
    allocations: HashMap<Client, Arc<Allocation>>,
    by_host: HashMap<IpAddr, usize>,
    by_user: HashMap<String, usize>,
}

fn count_up<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    *map.entry(key).or_default() += 1;
}

fn count_down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

pub(crate) struct State {
    limits: Limits,
    live: Mutex<Live>,
    challenges: Mutex<Bucket>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) on_limit: fn(&'static str),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(crate) fn new(limits: Limits, on_limit: fn(&'static str)) -> Arc<State> {
        let rate = f64::from(limits.challenges_per_sec);
        Arc::new(State {
            challenges: Mutex::new(Bucket::new(rate, rate * 5.0)),
            limits,
            live: Mutex::default(),
            stats: Arc::default(),
            on_limit,
        })
    }

    /// The sender the crate reports `listener`'s closed allocations on.
    /// Its task ends when the crate's allocations and manager are gone.
    pub(crate) fn close_notify(self: &Arc<Self>, listener: usize) -> mpsc::Sender<AllocationInfo> {
        let (tx, mut rx) = mpsc::channel::<AllocationInfo>(256);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(info) = rx.recv().await {
                match weak.upgrade() {
                    Some(s) => s.closed(Client {
                        listener,
                        addr: info.five_tuple.src_addr,
                    }),
                    None => break,
                }
            }
        });
        tx
    }

    pub(crate) fn allocations(&self) -> usize {
        lock(&self.live).allocations.len()
    }

    /// The allocation of `client`, if open. On the data path: a map
    /// lookup under a lock held for nothing else.
    pub(crate) fn allocation(&self, client: Client) -> Option<Arc<Allocation>> {
        lock(&self.live).allocations.get(&client).cloned()
    }

    pub(crate) fn opened(&self, a: Arc<Allocation>) {
        let mut guard = lock(&self.live);
        let live = &mut *guard;
        if live.allocations.contains_key(&a.client) {
            return;
        }
        count_up(&mut live.by_host, a.host);
        count_up(&mut live.by_user, a.user.clone());
        live.allocations.insert(a.client, a);
    }

    pub(crate) fn closed(&self, client: Client) {
        let mut guard = lock(&self.live);
        let live = &mut *guard;
        if let Some(a) = live.allocations.remove(&client) {
            count_down(&mut live.by_host, &a.host);
            count_down(&mut live.by_user, &a.user);
        }
    }

    /// Whether another request the crate answers with a new nonce may reach
    /// it.
    pub(crate) fn challenge_allowed(&self) -> bool {
        lock(&self.challenges).take(1.0)
    }

    /// For an Allocate from `client` over the total or the per-host quota,
    /// the error response to send instead of letting the crate allocate.
    pub(crate) fn allocate_refusal(&self, client: Client, packet: &[u8]) -> Option<Vec<u8>> {
        if stun_type(packet) != Some(ALLOCATE_REQUEST) {
            return None;
        }
        let (code, reason) = self.refusal(client)?;
        tracing::debug!(client = %client.addr, code, "TURN allocation refused: {reason}");
        Some(error_response(packet, code, reason))
    }

    fn refusal(&self, client: Client) -> Option<(u16, &'static str)> {
        let live = lock(&self.live);
        if live.allocations.contains_key(&client) {
            return None; // a retransmission: the crate answers it
        }
        if live.allocations.len() >= self.limits.max_allocations {
            (self.on_limit)("max_allocations");
            return Some((508, "Insufficient Capacity"));
        }
        let host = crate::addr::host_of(client.addr.ip());
        if live.by_host.get(&host).copied().unwrap_or(0) >= self.limits.max_allocations_per_ip {
            (self.on_limit)("max_allocations_per_host");
            return Some((486, "Allocation Quota Reached"));
        }
        None
    }

    /// Whether `username` may open another allocation.
    pub(crate) fn user_has_room(&self, username: &str) -> bool {
        let live = lock(&self.live);
        let n = live.by_user.get(user_part(username)).copied().unwrap_or(0);
        if n < self.limits.max_allocations_per_user {
            return true;
        }
        drop(live);
        add(&self.stats.user_cap_hits, 1);
        (self.on_limit)("max_allocations_per_user");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_is_well_formed() {
        let mut req = vec![0u8; 20];
        req[..2].copy_from_slice(&ALLOCATE_REQUEST.to_be_bytes());
        req[4..8].copy_from_slice(&MAGIC_COOKIE);
        req[8..20].copy_from_slice(&[7; 12]);
        let r = error_response(&req, 486, "Allocation Quota Reached");
        let mut m = stun::message::Message::new();
        m.raw = r;
        m.decode().expect("decodes");
        assert_eq!(m.transaction_id.0, [7; 12]);
        use stun::message::Getter;
        let mut code = stun::error_code::ErrorCodeAttribute::default();
        code.get_from(&m).expect("has ERROR-CODE");
        assert_eq!(code.code.0, 486);
    }

    #[test]
    fn challenges_are_rationed() {
        let mut req = vec![0u8; 20];
        req[..2].copy_from_slice(&ALLOCATE_REQUEST.to_be_bytes());
        req[4..8].copy_from_slice(&MAGIC_COOKIE);
        assert_eq!(auth(&req), Some(Auth::Missing));
        let mut binding = req.clone();
        binding[1] = 0x01;
        assert_eq!(auth(&binding), None);
        // REQUESTED-TRANSPORT, NONCE "abcde" (padded), MESSAGE-INTEGRITY.
        let mut authed = req.clone();
        authed.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
        authed.extend_from_slice(&[0x00, 0x15, 0x00, 0x05]);
        authed.extend_from_slice(b"abcde\0\0\0");
        authed.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        authed.extend_from_slice(&[0; 20]);
        let len = (authed.len() - 20) as u16;
        authed[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(auth(&authed), Some(Auth::Nonce(b"abcde")));
        // Integrity without a nonce, or a nonce without integrity: challenged.
        let mut no_nonce = req.clone();
        no_nonce.extend_from_slice(&authed[40..]);
        no_nonce[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(auth(&no_nonce), Some(Auth::Missing));
        let mut no_integrity = authed.clone();
        no_integrity.truncate(40);
        no_integrity[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(auth(&no_integrity), Some(Auth::Missing));
        // A truncated attribute still counts as a challenge.
        assert_eq!(auth(&authed[..30]), Some(Auth::Missing));
        assert_eq!(auth(&error_response(&req, 486, "x")), None);
        assert_eq!(auth(&[0x40, 0, 0, 4, 1, 2, 3, 4]), None);

        let s = State::new(
            Limits {
                challenges_per_sec: 2,
                ..Limits::default()
            },
            |_| {},
        );
        let allowed = (0..100).filter(|_| s.challenge_allowed()).count();
        assert!((10..=11).contains(&allowed), "{allowed} of 100 let through");
    }

    #[tokio::test]
    async fn quotas_per_host_per_user_and_in_all() {
        let s = State::new(
            Limits {
                max_allocations: 4,
                max_allocations_per_ip: 2,
                max_allocations_per_user: 3,
                ..Limits::default()
            },
            |_| {},
        );
        let cx = Arc::new(crate::allocation::Context {
            policy: Arc::default(),
            stats: Arc::default(),
            on_limit: |_| {},
            limits: Limits::default(),
        });
        let client = |addr: &str| Client {
            listener: 0,
            addr: addr.parse().unwrap(),
        };
        let open = |addr: &str, user: &str| {
            let cx = cx.clone();
            let (addr, user) = (addr.to_string(), user.to_string());
            let s = s.clone();
            async move {
                let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
                s.opened(Arc::new(Allocation::new(
                    client(&addr),
                    &user,
                    crate::transport::Transport::Udp(socket.clone()),
                    socket,
                    cx,
                )));
            }
        };
        open("10.0.0.1:1000", "1:a").await;
        // One IPv6 host is its /64.
        open("[2001:db8:0:1::1]:1000", "1:a").await;
        open("[2001:db8:0:1::2]:1000", "1:b").await;
        assert_eq!(
            s.refusal(client("[2001:db8:0:1::3]:1")).map(|r| r.0),
            Some(486)
        );
        assert_eq!(s.refusal(client("[2001:db8:0:2::3]:1")), None);
        assert_eq!(
            s.refusal(client("10.0.0.1:1000")),
            None,
            "retransmissions pass"
        );
        assert!(s.user_has_room("2:a"));
        open("10.0.0.2:1000", "1:a").await;
        assert!(!s.user_has_room("2:a"), "a's fourth");
        assert!(s.user_has_room("2:b"));
        assert_eq!(s.refusal(client("10.0.0.3:1000")).map(|r| r.0), Some(508));
        s.closed(client("10.0.0.1:1000"));
        assert!(s.user_has_room("2:a"));
        assert_eq!(s.refusal(client("10.0.0.3:1000")), None);
        assert_eq!(s.allocations(), 3);
        // The same address on the other listener is another allocation.
        s.closed(Client {
            listener: 1,
            addr: "10.0.0.2:1000".parse().unwrap(),
        });
        assert_eq!(s.allocations(), 3);
    }
}
