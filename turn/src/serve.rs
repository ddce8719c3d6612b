//! The relay's read loops, in place of `turn::server::Server`'s, so that we
//! own the nonce store, screen requests ([`crate::screen`]) and relay data
//! ourselves ([`crate::allocation`]).
//!
//! turn 0.17.2 answers each request it challenges (no MESSAGE-INTEGRITY, or a
//! nonce it does not know) with a fresh nonce, which it inserts in a map with
//! its creation time (request.rs, `respond_with_nonce`). It removes a nonce
//! only when a client presents it after its hour is up, so the map of
//! `Server` grows with every challenge, for good: spoofed UDP Allocates alone
//! would exhaust memory. The map is a public field of the crate's `Request`,
//! though, and `Request::handle_request` is public, so these loops hand the
//! crate a map they bound: before each request that may add a nonce, they
//! make room (expired ones first, then the older half), and a sweep drops
//! expired ones every minute.

use crate::allocation::{Allocation, Client, Context};
use crate::guard::{self, Auth};
use crate::relay::Fresh;
use crate::transport::{Receiver, Transport};
use crate::wire;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use turn::allocation::allocation_manager::Manager;
use turn::allocation::five_tuple::FiveTuple;
use turn::server::request::Request;
use util::Conn;

/// How long the crate honours a nonce (its `NONCE_LIFETIME`, RFC 5766 4).
const NONCE_LIFETIME: Duration = Duration::from_secs(3600);
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The crate's receive buffer size.
const INBOUND_MTU: usize = 1500;

/// The nonce map the crate reads and writes, and its bound.
pub(crate) struct Nonces {
    map: Arc<Mutex<HashMap<String, Instant>>>,
    /// Room kept free for requests being handled: one per read loop, since
    /// each adds at most one nonce between its check and its next.
    reserve: usize,
    cap: usize,
}

impl Nonces {
    pub(crate) fn new(cap: usize, loops: usize) -> Nonces {
        Nonces {
            map: Arc::default(),
            reserve: loops,
            cap: cap.max(2 * loops),
        }
    }

    pub(crate) async fn len(&self) -> usize {
        self.map.lock().await.len()
    }

    /// Whether the crate would accept `nonce` (so issue none).
    pub(crate) async fn knows(&self, nonce: &[u8]) -> bool {
        let Ok(nonce) = std::str::from_utf8(nonce) else {
            return false;
        };
        let map = self.map.lock().await;
        map.get(nonce).is_some_and(|t| t.elapsed() < NONCE_LIFETIME)
    }

    /// Leaves room for every loop to add one nonce without passing the cap.
    /// Amortised O(1): a full map loses at least half its entries at once.
    async fn make_room(&self) {
        let mut map = self.map.lock().await;
        if map.len() + self.reserve <= self.cap {
            return;
        }
        map.retain(|_, t| t.elapsed() < NONCE_LIFETIME);
        if map.len() + self.reserve <= self.cap {
            return;
        }
        let mut times: Vec<Instant> = map.values().copied().collect();
        let mid = times.len() / 2;
        let median = *times.select_nth_unstable(mid).1;
        let before = map.len();
        map.retain(|_, t| *t > median);
        tracing::warn!(
            forgotten = before - map.len(),
            cap = self.cap,
            "TURN nonce store full: forgot the older half"
        );
    }

    async fn sweep(&self) {
        let mut map = self.map.lock().await;
        map.retain(|_, t| t.elapsed() < NONCE_LIFETIME);
        if map.capacity() > 4 * map.len().max(256) {
            map.shrink_to_fit();
        }
    }
}

/// What every read loop shares.
pub(crate) struct Shared {
    pub(crate) nonces: Arc<Nonces>,
    pub(crate) guard: Arc<guard::State>,
    pub(crate) auth: Arc<crate::RestAuthHandler>,
    pub(crate) policy: Arc<crate::peers::PeerPolicy>,
    pub(crate) context: Arc<Context>,
    pub(crate) realm: String,
    pub(crate) stop: CancellationToken,
}

/// One listener: its index among the relay's listeners, its two sides,
/// and the slot its relayed sockets are handed over in.
pub(crate) struct Listener {
    pub(crate) index: usize,
    pub(crate) transport: Transport,
    pub(crate) receiver: Receiver,
    pub(crate) fresh: Fresh,
}

/// Drops expired nonces every minute, until `stop`.
pub(crate) fn spawn_sweeper(nonces: Arc<Nonces>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => nonces.sweep().await,
                _ = stop.cancelled() => break,
            }
        }
    });
}

/// Serves `listener` until `shared.stop`, then frees its allocations.
pub(crate) async fn read_loop(mut listener: Listener, manager: Arc<Manager>, shared: Arc<Shared>) {
    // The crate answers requests through this.
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(listener.transport.clone());
    let mut buf = vec![0u8; INBOUND_MTU];
    loop {
        let (n, from) = tokio::select! {
            r = listener.receiver.recv_from(&mut buf) => match r {
                Some(r) => r,
                None => break,
            },
            _ = shared.stop.cancelled() => break,
        };
        let packet = &buf[..n];
        let client = Client {
            listener: listener.index,
            addr: from,
        };
        // Data first: it is nearly all the traffic.
        if let Some(data) = wire::from_client(packet) {
            if let Some(a) = shared.guard.allocation(client) {
                a.relay_to_peer(data).await;
            }
            continue;
        }
        if let Some(refusal) = shared.guard.allocate_refusal(client, packet) {
            let _ = listener.transport.send_to(&refusal, from).await;
            continue;
        }
        let challenged = match guard::auth(packet) {
            None => false,
            Some(Auth::Missing) => true,
            Some(Auth::Nonce(nonce)) => !shared.nonces.knows(nonce).await,
        };
        if challenged {
            if !shared.guard.challenge_allowed() {
                // Dropped unanswered: a real client retransmits.
                tracing::debug!(%from, "TURN challenge dropped: over the rate");
                continue;
            }
            shared.nonces.make_room().await;
        } else if crate::screen::answered(&shared, &listener.transport, client, packet).await {
            continue;
        }
        let allocate = guard::stun_type(packet) == Some(guard::ALLOCATE_REQUEST);
        let mut request = Request {
            conn: conn.clone(),
            src_addr: from,
            buff: packet.to_vec(),
            allocation_manager: manager.clone(),
            nonces: shared.nonces.map.clone(),
            auth_handler: shared.auth.clone(),
            realm: shared.realm.clone(),
            channel_bind_timeout: crate::allocation::CHANNEL_LIFETIME,
        };
        if let Err(e) = request.handle_request().await {
            tracing::debug!(%from, "TURN request failed: {e}");
        }
        if allocate {
            opened(&listener, &manager, &shared, client).await;
        }
    }
    if let Err(e) = manager.close().await {
        tracing::debug!("TURN allocations did not close cleanly: {e}");
    }
}

/// After an Allocate: if the crate made an allocation, records it and
/// gives its relayed socket to it.
async fn opened(listener: &Listener, manager: &Manager, shared: &Shared, client: Client) {
    let fresh = listener
        .fresh
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(relayed) = fresh else {
        return;
    };
    let Ok(local) = listener.transport.local_addr() else {
        return;
    };
    let five_tuple = FiveTuple {
        src_addr: client.addr,
        dst_addr: local,
        protocol: turn::proto::PROTO_UDP,
    };
    let infos = manager.get_allocations_info(Some(vec![five_tuple])).await;
    let Some(info) = infos.get(&five_tuple) else {
        return;
    };
    let a = Arc::new(Allocation::new(
        client,
        &info.username,
        listener.transport.clone(),
        relayed.socket.clone(),
        shared.context.clone(),
    ));
    relayed.attach(&a);
    shared.guard.opened(a);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn add(n: &Nonces, key: &str, at: Instant) {
        n.make_room().await;
        n.map.lock().await.insert(key.into(), at);
        assert!(n.len().await <= n.cap, "over the cap after {key}");
    }

    #[tokio::test]
    async fn the_store_stays_under_its_cap_and_keeps_the_newest() {
        let n = Nonces::new(100, 2);
        let start = Instant::now();
        for i in 0..10_000u64 {
            add(&n, &i.to_string(), start + Duration::from_micros(i)).await;
        }
        let map = n.map.lock().await;
        assert!(map.len() >= 49, "kept {}", map.len());
        assert!(map.contains_key("9999"), "the newest nonce was forgotten");
        assert!(
            !map.contains_key("9000"),
            "an old nonce outlived newer ones"
        );
        drop(map);
        assert!(n.knows(b"9999").await);
        assert!(!n.knows(b"1").await);
        assert!(!n.knows(&[0xff, 0xfe]).await);
    }

    #[tokio::test]
    async fn expired_nonces_go_first_and_in_the_sweep() {
        let n = Nonces::new(10, 1);
        let now = Instant::now();
        let Some(old) = now.checked_sub(NONCE_LIFETIME + Duration::from_secs(1)) else {
            return; // the clock started under an hour ago
        };
        for i in 0..5 {
            add(&n, &format!("old{i}"), old).await;
        }
        for i in 0..5 {
            add(&n, &format!("new{i}"), now).await;
        }
        // Full: the expired ones make the room, the fresh ones stay.
        add(&n, "newest", now).await;
        assert_eq!(n.len().await, 6);
        assert!(!n.knows(b"old0").await);
        n.map.lock().await.insert("old".into(), old);
        n.sweep().await;
        assert_eq!(n.len().await, 6);
        assert!(n.knows(b"new0").await);
    }
}
