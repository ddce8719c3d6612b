//! Quotas the `turn` crate lacks: it opens an allocation (a relay socket and
//! its tasks) for every authenticated client 5-tuple, without limit. This
//! wrapper around the listening socket counts allocations per client IP and
//! in total, and answers an Allocate over quota itself with 486 (per client)
//! or 508 (server full), as RFC 5766 6.2 says, before the crate sees it.
//!
//! It also holds the ration of challenges (requests the crate answers with a
//! new nonce), which [`crate::serve`] applies: each costs a stored nonce and
//! an MD5, and a flood of them can come from spoofed UDP sources. The nonce
//! store itself is bounded there.

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use turn::allocation::AllocationInfo;
use util::Conn;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Allocations open at once, in total.
    pub max_allocations: usize,
    /// Allocations open at once from one client IP (a NAT may hide several
    /// viewers behind one address, so not 1).
    pub max_allocations_per_ip: usize,
    /// TURN-over-TCP connections open at once.
    pub max_tcp_connections: usize,
    /// Unauthenticated requests (which make the crate store a nonce) per
    /// second, all clients together; bursts of 5x. Legitimate clients send
    /// one or two per allocation.
    pub challenges_per_sec: u32,
    /// Nonces stored at once. A legitimate client keeps using its nonce for
    /// the allocation's life, so this is a few times `max_allocations`; when
    /// full, the older half is forgotten (their clients get 438 Stale Nonce
    /// with a new one, and retry).
    pub max_nonces: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_allocations: 4096,
            max_allocations_per_ip: 16,
            max_tcp_connections: 1024,
            challenges_per_sec: 200,
            max_nonces: 16384,
        }
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ALLOCATE_REQUEST: u16 = 0x0003;
const ALLOCATE_SUCCESS: u16 = 0x0103;
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

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

fn stun_type(b: &[u8]) -> Option<u16> {
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

#[derive(Default)]
struct Live {
    total: usize,
    by_ip: HashMap<IpAddr, HashSet<SocketAddr>>,
}

pub(crate) struct State {
    limits: Limits,
    live: Mutex<Live>,
    challenges: Mutex<Bucket>,
}

impl State {
    /// The state, and the sender the server reports closed allocations on.
    pub(crate) fn new(limits: Limits) -> (Arc<State>, mpsc::Sender<AllocationInfo>) {
        let state = Arc::new(State {
            challenges: Mutex::new(Bucket {
                tokens: f64::from(limits.challenges_per_sec) * 5.0,
                at: std::time::Instant::now(),
            }),
            limits,
            live: Mutex::default(),
        });
        let (tx, mut rx) = mpsc::channel::<AllocationInfo>(256);
        let weak = Arc::downgrade(&state);
        // Ends when the server and its allocations are gone (senders dropped).
        tokio::spawn(async move {
            while let Some(info) = rx.recv().await {
                match weak.upgrade() {
                    Some(s) => s.closed(info.five_tuple.src_addr),
                    None => break,
                }
            }
        });
        (state, tx)
    }

    pub(crate) fn allocations(&self) -> usize {
        self.live.lock().expect("not poisoned").total
    }

    fn opened(&self, client: SocketAddr) {
        let mut guard = self.live.lock().expect("not poisoned");
        let live = &mut *guard;
        if live.by_ip.entry(client.ip()).or_default().insert(client) {
            live.total += 1;
        }
    }

    fn closed(&self, client: SocketAddr) {
        let mut guard = self.live.lock().expect("not poisoned");
        let live = &mut *guard;
        if let Some(set) = live.by_ip.get_mut(&client.ip()) {
            if set.remove(&client) {
                live.total -= 1;
            }
            if set.is_empty() {
                live.by_ip.remove(&client.ip());
            }
        }
    }

    /// Whether another request the crate answers with a new nonce may reach
    /// it.
    pub(crate) fn challenge_allowed(&self) -> bool {
        let rate = f64::from(self.limits.challenges_per_sec);
        let mut b = self.challenges.lock().expect("not poisoned");
        let now = std::time::Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate * 5.0);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The error to answer a new Allocate from `client` with, if over quota.
    fn refusal(&self, client: SocketAddr) -> Option<(u16, &'static str)> {
        let live = self.live.lock().expect("not poisoned");
        let mine = live.by_ip.get(&client.ip());
        if mine.is_some_and(|s| s.contains(&client)) {
            return None; // a retransmission: the crate answers it
        }
        if live.total >= self.limits.max_allocations {
            return Some((508, "Insufficient Capacity"));
        }
        if mine.map_or(0, HashSet::len) >= self.limits.max_allocations_per_ip {
            return Some((486, "Allocation Quota Reached"));
        }
        None
    }
}

pub(crate) struct GuardedConn {
    inner: Arc<dyn Conn + Send + Sync>,
    state: Arc<State>,
}

impl GuardedConn {
    pub(crate) fn new(inner: Arc<dyn Conn + Send + Sync>, state: Arc<State>) -> Self {
        GuardedConn { inner, state }
    }
}

#[async_trait]
impl Conn for GuardedConn {
    async fn connect(&self, addr: SocketAddr) -> util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            if stun_type(&buf[..n]) == Some(ALLOCATE_REQUEST) {
                if let Some((code, reason)) = self.state.refusal(from) {
                    tracing::debug!(%from, code, "TURN allocation refused: {reason}");
                    let _ = self
                        .inner
                        .send_to(&error_response(&buf[..n], code, reason), from)
                        .await;
                    continue;
                }
            }
            return Ok((n, from));
        }
    }

    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if stun_type(buf) == Some(ALLOCATE_SUCCESS) {
            self.state.opened(target);
        }
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    /// The crate closes the listening socket whenever it closes an
    /// allocation (allocation/mod.rs); harmless for a UdpSocket, fatal for the
    /// TCP listener. The socket is closed by [`crate::TurnRelay::close`] and
    /// when dropped instead.
    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
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

        let s = State {
            limits: Limits {
                challenges_per_sec: 2,
                ..Limits::default()
            },
            live: Mutex::default(),
            challenges: Mutex::new(Bucket {
                tokens: 10.0,
                at: std::time::Instant::now(),
            }),
        };
        let allowed = (0..100).filter(|_| s.challenge_allowed()).count();
        assert!((10..=11).contains(&allowed), "{allowed} of 100 let through");
    }

    #[tokio::test]
    async fn quotas() {
        let (s, _tx) = State::new(Limits {
            max_allocations: 3,
            max_allocations_per_ip: 2,
            max_tcp_connections: 1,
            challenges_per_sec: 1,
            max_nonces: 1,
        });
        let a1: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let a2: SocketAddr = "10.0.0.1:1001".parse().unwrap();
        let a3: SocketAddr = "10.0.0.1:1002".parse().unwrap();
        let b1: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let c1: SocketAddr = "10.0.0.3:1000".parse().unwrap();
        s.opened(a1);
        s.opened(a2);
        assert_eq!(s.refusal(a3).map(|r| r.0), Some(486));
        assert_eq!(s.refusal(a1), None, "retransmissions pass");
        s.opened(b1);
        assert_eq!(s.refusal(c1).map(|r| r.0), Some(508));
        s.closed(a1);
        assert_eq!(s.refusal(a3), None);
        assert_eq!(s.allocations(), 2);
    }
}
