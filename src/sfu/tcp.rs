//! ICE over TCP (RFC 6544), for viewers and publishers whose network lets
//! no UDP through: passive host candidates on the WebRTC port number, each
//! packet framed with a 16-bit length (RFC 4571). `rtc`'s ICE agent handles
//! TCP candidates itself; this module only moves frames between sockets and
//! the driver, as the UDP sockets do datagrams.
//!
//! What keeps it bounded: at most [`MAX_CONNECTIONS`] connections and
//! [`MAX_PER_SOURCE`] from one host, frames of at most [`MAX_FRAME`]
//! bytes, a connection that sends nothing for [`IDLE`] is closed, and a
//! connection's outgoing queue holds
//! [`OUT_QUEUE`] frames: a viewer whose TCP cannot keep up loses packets
//! (as it would on UDP) and never holds up the driver.

use super::driver::Datagram;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const MAX_CONNECTIONS: usize = 4096;
/// Connections from one IPv4 address or IPv6 /64: without it one host
/// could hold every slot (renewing each before [`IDLE`]) and lock every
/// TCP-only viewer out. A viewer opens one per candidate pair; this leaves
/// room for an office of them behind one NAT.
pub const MAX_PER_SOURCE: usize = 256;
/// Media packets are under 1500 bytes; DTLS handshake flights a little more.
pub const MAX_FRAME: usize = 4096;
/// Longer than a browser's consent checks (every ~5 s) and RTCP (1 s).
const IDLE: Duration = Duration::from_secs(30);
/// About 1 s of a 2.5 Mbit/s stream.
const OUT_QUEUE: usize = 256;

/// Where the driver sends a TCP peer's packets.
pub type FrameSender = mpsc::Sender<Bytes>;

/// Accepts ICE-TCP connections on `listener`, whose candidate address (what
/// ICE must see as the local address) is `tag`.
pub async fn accept(
    tag: SocketAddr,
    listener: TcpListener,
    datagrams: mpsc::Sender<Datagram>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    loop {
        let (stream, from) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%tag, "ICE-TCP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = Slot::take(&slots, from.ip()) else {
            continue; // dropped: closes the connection
        };
        let _ = stream.set_nodelay(true);
        let (datagrams, shutdown) = (datagrams.clone(), shutdown.clone());
        tracker.spawn(async move {
            serve(tag, stream, from, datagrams, shutdown).await;
            drop(slot);
        });
    }
}

#[derive(Default)]
struct Slots {
    total: usize,
    /// Only sources with open connections: at most [`MAX_CONNECTIONS`].
    per_source: HashMap<IpAddr, usize>,
}

/// One open connection's place in the counts, given back on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    source: IpAddr,
}

impl Slot {
    fn take(slots: &Arc<Mutex<Slots>>, ip: IpAddr) -> Option<Slot> {
        let source = source_of(ip);
        let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
        let from_source = s.per_source.get(&source).copied().unwrap_or(0);
        if s.total >= MAX_CONNECTIONS || from_source >= MAX_PER_SOURCE {
            return None;
        }
        s.total += 1;
        s.per_source.insert(source, from_source + 1);
        Some(Slot {
            slots: slots.clone(),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.total -= 1;
        if let Some(n) = s.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                s.per_source.remove(&self.source);
            }
        }
    }
}

/// The address a limit applies to: one host has a whole IPv6 /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

async fn serve(
    tag: SocketAddr,
    stream: TcpStream,
    from: SocketAddr,
    datagrams: mpsc::Sender<Datagram>,
    shutdown: CancellationToken,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let writer = async move {
        while let Some(frame) = out_rx.recv().await {
            let len = (frame.len() as u16).to_be_bytes();
            if wr.write_all(&len).await.is_err() || wr.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    let reader = async {
        let mut len = [0u8; 2];
        loop {
            let read = tokio::time::timeout(IDLE, rd.read_exact(&mut len)).await;
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let n = usize::from(u16::from_be_bytes(len));
            if n == 0 || n > MAX_FRAME {
                tracing::debug!(%from, n, "ICE-TCP: bad frame length, closing");
                return;
            }
            let mut data = BytesMut::zeroed(n);
            if !matches!(
                tokio::time::timeout(IDLE, rd.read_exact(&mut data)).await,
                Ok(Ok(_))
            ) {
                return;
            }
            let d = Datagram {
                at: Instant::now(),
                local: tag,
                from,
                data,
                tcp: Some(out_tx.clone()),
            };
            // Unlike UDP, waiting here is fine: it holds up this
            // connection's reads only.
            if datagrams.send(d).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = reader => {}
        _ = writer => {}
    }
}

/// Sends one packet to a TCP peer; `false` when its connection is gone.
pub fn send(to: &FrameSender, packet: &[u8]) -> bool {
    if packet.len() > usize::from(u16::MAX) {
        return true; // cannot be framed; never produced by rtc
    }
    match to.try_send(Bytes::copy_from_slice(packet)) {
        Ok(()) => true,
        // A full queue: this peer's TCP is behind; the packet is lost.
        Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_has_a_bounded_share_and_gives_it_back() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let host = |i: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
        // Every address of one /64 counts as one host.
        let held: Vec<Slot> = (0..MAX_PER_SOURCE as u16)
            .map(|i| Slot::take(&slots, host(i)).expect("under the cap"))
            .collect();
        assert!(Slot::take(&slots, host(9999)).is_none());
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(Slot::take(&slots, other).is_some(), "another /64 is served");
        drop(held);
        assert!(Slot::take(&slots, host(1)).is_some());
        let s = slots.lock().unwrap();
        assert_eq!(s.total, 0);
        assert!(s.per_source.is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_host() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_of(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
