//! Shards: the drivers that share the WebRTC port. Fan-out shards each own
//! their viewers, each on a thread of its own; one more driver, the ingest,
//! holds WHIP publishers (a task among the server's others), so
//! depacketizing and signalling never run on a fan-out thread. Every driver sends from the
//! same sockets (Linux sends on an unconnected UDP socket without taking
//! its lock, so shards do not serialize there); what arrives is read once
//! and routed here to the driver that owns its peer.

use super::driver::Datagram;
use super::stun;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// The most fan-out shards `--webrtc-shards` may ask for.
pub const MAX_SHARDS: usize = 64;

/// Which driver owns each proven remote address and each local ICE ufrag.
/// Drivers fill it as they do their own maps, so it holds at most what
/// they do (bounded by `MAX_PEERS` and `MAX_ADDRS_PER_PEER`).
#[derive(Default)]
pub(crate) struct Routes {
    addrs: RwLock<HashMap<SocketAddr, u8>>,
    ufrags: RwLock<HashMap<String, u8>>,
}

impl Routes {
    pub fn add_addr(&self, addr: SocketAddr, driver: u8) {
        write(&self.addrs).insert(addr, driver);
    }

    pub fn add_ufrag(&self, ufrag: &str, driver: u8) {
        write(&self.ufrags).insert(ufrag.to_owned(), driver);
    }

    /// Removes `driver`'s entries for one of its peers: another driver's
    /// claim on the same address since then stays.
    pub fn remove(&self, driver: u8, addrs: &[SocketAddr], ufrag: &str) {
        addrs.iter().for_each(|a| self.remove_addr(driver, *a));
        let mut u = write(&self.ufrags);
        if u.get(ufrag) == Some(&driver) {
            u.remove(ufrag);
        }
    }

    /// `driver`'s claim on `addr`, if it still has it.
    pub fn remove_addr(&self, driver: u8, addr: SocketAddr) {
        let mut a = write(&self.addrs);
        if a.get(&addr) == Some(&driver) {
            a.remove(&addr);
        }
    }

    /// Everything of `driver`'s: it starts anew, with no peers.
    pub fn forget_driver(&self, driver: u8) {
        write(&self.addrs).retain(|_, d| *d != driver);
        write(&self.ufrags).retain(|_, d| *d != driver);
    }

    /// The driver a datagram is for: its address's, or for an address not
    /// proven yet, the one whose ufrag a STUN check names. None: nobody's,
    /// dropped unread.
    pub fn driver_for(&self, d: &Datagram) -> Option<usize> {
        if let Some(i) = read(&self.addrs).get(&d.from) {
            return Some(usize::from(*i));
        }
        let ufrag = stun::local_ufrag(&d.data)?;
        read(&self.ufrags).get(ufrag).map(|i| usize::from(*i))
    }
}

/// Datagrams read and not yet handled, per driver, each at most
/// [`MAX_DATAGRAM`](super::udp::recv::MAX_DATAGRAM) bytes: what a saturated
/// driver holds before it sheds input.
pub const DATAGRAM_QUEUE: usize = 8192;

/// A driver's datagram inbox. Datagrams travel in batches (one per socket
/// read), so a burst wakes the driver once, but the bound is in datagrams.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Vec<Datagram>>,
    queued: Arc<AtomicUsize>,
}

/// The driver's end of its [`Inbox`].
pub struct Datagrams {
    rx: mpsc::Receiver<Vec<Datagram>>,
    queued: Arc<AtomicUsize>,
}

pub(crate) fn inbox() -> (Inbox, Datagrams) {
    // Every batch holds at least one datagram, so the channel never fills
    // before the count does.
    let (tx, rx) = mpsc::channel(DATAGRAM_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Inbox {
            tx,
            queued: queued.clone(),
        },
        Datagrams { rx, queued },
    )
}

impl Inbox {
    /// A batch from a UDP socket, whole or not at all: false when the
    /// driver is saturated (or gone) and it was shed.
    fn try_send(&self, batch: Vec<Datagram>) -> bool {
        let n = batch.len();
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > DATAGRAM_QUEUE {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send(batch).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// One ICE-TCP frame, waiting for room. False when the driver is gone
    /// for good.
    async fn send(&self, d: Datagram) -> bool {
        // Counted only once there is room: the connection may be dropped
        // while it waits, and nothing then takes the count back.
        let Ok(room) = self.tx.reserve().await else {
            return false;
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        room.send(vec![d]);
        true
    }
}

impl Datagrams {
    pub async fn recv(&mut self) -> Option<Vec<Datagram>> {
        let b = self.rx.recv().await?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }

    pub fn try_recv(&mut self) -> Option<Vec<Datagram>> {
        let b = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }
}

/// Hands what the sockets read to the driver that owns it.
pub(crate) struct Router {
    pub routes: Arc<Routes>,
    pub inboxes: Vec<Inbox>,
}

impl Router {
    /// What one socket read: each datagram to its driver, in one batch per
    /// driver. A full inbox means that driver is saturated, and its batch is
    /// shed rather than queued without bound.
    pub fn deliver(&self, read: impl IntoIterator<Item = Datagram>) {
        let mut batches: Vec<Vec<Datagram>> = self.inboxes.iter().map(|_| Vec::new()).collect();
        for d in read {
            if let Some(b) = self.routes.driver_for(&d).and_then(|i| batches.get_mut(i)) {
                b.push(d);
            }
        }
        for (inbox, batch) in self.inboxes.iter().zip(batches) {
            let n = batch.len();
            if n > 0 && !inbox.try_send(batch) {
                crate::metrics::limit_hits_add("webrtc_datagram_queue", n as u64);
            }
        }
    }

    /// An ICE-TCP frame: waiting for room holds up that connection's reads
    /// only. False when the driver is gone for good.
    pub async fn deliver_tcp(&self, d: Datagram) -> bool {
        match self.routes.driver_for(&d).and_then(|i| self.inboxes.get(i)) {
            Some(inbox) => inbox.send(d).await,
            None => true,
        }
    }
}

/// Runs `fut` on a thread of its own named `name`, with a runtime of its
/// own (timers only: the shard's sockets are written without the reactor,
/// and everything it reads comes through channels). A panic there is
/// raised again here, so the supervisor sees the shard die.
pub async fn on_thread<F>(name: &'static str, fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            let r =
                match rt {
                    Ok(rt) => {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(fut)))
                    }
                    Err(e) => Err(Box::new(format!("{name}: no runtime: {e}"))
                        as Box<dyn std::any::Any + Send>),
                };
            let _ = done_tx.send(r);
        });
    if let Err(e) = spawned {
        panic!("{name}: no thread: {e}");
    }
    match done.await {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{name}: its thread ended without a word"),
    }
}

/// A session id names its driver in its first two hex digits, so PATCH,
/// DELETE and chat lines go straight to it.
pub fn tag_session(driver: u8, session: &str) -> String {
    format!("{driver:02x}{session}")
}

/// The driver a session id names, if it is well formed.
pub fn session_driver(session: &str) -> Option<usize> {
    let tag = session.get(..2)?;
    usize::from_str_radix(tag, 16).ok()
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_check(ufrag: &str) -> bytes::BytesMut {
        stun::tests::binding_request(&format!("{ufrag}:remote"))[..].into()
    }

    fn datagram(from: &str, data: bytes::BytesMut) -> Datagram {
        Datagram {
            local: "127.0.0.1:1".parse().unwrap(),
            from: from.parse().unwrap(),
            data,
            at: std::time::Instant::now(),
            tcp: None,
        }
    }

    #[test]
    fn datagrams_go_to_the_driver_of_their_address_or_ufrag() {
        let r = Routes::default();
        r.add_ufrag("abcd", 1);
        r.add_addr("10.0.0.1:5000".parse().unwrap(), 2);
        // An unknown address: only a check naming a ufrag of ours routes.
        assert_eq!(
            r.driver_for(&datagram("10.0.0.9:1", stun_check("abcd"))),
            Some(1)
        );
        assert_eq!(
            r.driver_for(&datagram("10.0.0.9:1", stun_check("zzzz"))),
            None
        );
        assert_eq!(
            r.driver_for(&datagram("10.0.0.9:1", b"\x80\x60junk"[..].into())),
            None
        );
        // A proven address routes whatever it sends.
        assert_eq!(
            r.driver_for(&datagram("10.0.0.1:5000", b"\x80\x60rtp"[..].into())),
            Some(2)
        );
        // A driver removes only its own claims; one that restarts, all.
        r.remove(1, &["10.0.0.1:5000".parse().unwrap()], "abcd");
        assert_eq!(
            r.driver_for(&datagram("10.0.0.1:5000", b"x"[..].into())),
            Some(2)
        );
        assert_eq!(
            r.driver_for(&datagram("10.0.0.9:1", stun_check("abcd"))),
            None
        );
        r.forget_driver(2);
        assert_eq!(
            r.driver_for(&datagram("10.0.0.1:5000", b"x"[..].into())),
            None
        );
    }

    #[test]
    fn a_session_id_names_its_driver() {
        let s = tag_session(0x2a, "0123abcd");
        assert_eq!(s, "2a0123abcd");
        assert_eq!(session_driver(&s), Some(0x2a));
        assert_eq!(session_driver("z"), None);
        assert_eq!(session_driver("zz99"), None);
        assert_eq!(session_driver("é1"), None);
    }

    /// The inbox holds `DATAGRAM_QUEUE` datagrams however they are
    /// batched, sheds a batch that does not fit whole, and its count comes
    /// back to zero when drained, even after an ICE-TCP frame gave up
    /// waiting for room (its connection closed).
    #[tokio::test]
    async fn the_inbox_is_bounded_in_datagrams_and_its_count_does_not_drift() {
        let (inbox, mut rx) = inbox();
        let d = || datagram("10.0.0.1:5000", b"x"[..].into());
        let batch = |n: usize| (0..n).map(|_| d()).collect::<Vec<_>>();
        assert!(inbox.try_send(batch(DATAGRAM_QUEUE - 10)));
        assert!(!inbox.try_send(batch(11)), "past the bound: shed whole");
        assert!(inbox.try_send(batch(10)));
        assert!(!inbox.try_send(batch(1)));
        assert_eq!(inbox.queued.load(Ordering::Relaxed), DATAGRAM_QUEUE);
        let mut got = 0;
        while let Some(b) = rx.try_recv() {
            got += b.len();
        }
        assert_eq!(got, DATAGRAM_QUEUE);
        assert_eq!(inbox.queued.load(Ordering::Relaxed), 0);
        // The channel full of one-datagram batches: a TCP frame waits, and
        // its connection goes away meanwhile.
        for _ in 0..DATAGRAM_QUEUE {
            assert!(inbox.try_send(batch(1)));
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), inbox.send(d()));
        assert!(waiting.await.is_err(), "no room: it waits");
        while rx.try_recv().is_some() {}
        assert_eq!(inbox.queued.load(Ordering::Relaxed), 0);
        assert!(inbox.send(d()).await, "room again");
        assert_eq!(rx.try_recv().map(|b| b.len()), Some(1));
        assert_eq!(inbox.queued.load(Ordering::Relaxed), 0);
    }
}
