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
use super::shard::Router;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
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
    datagrams: Arc<Router>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let gate = crate::net::ConnGate::new(
        "ice_tcp",
        crate::net::ConnLimits {
            total: MAX_CONNECTIONS,
            per_host: MAX_PER_SOURCE,
        },
    );
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
        let Ok(permit) = gate.admit(from.ip()) else {
            continue; // dropped: closes the connection
        };
        let _ = stream.set_nodelay(true);
        let (datagrams, shutdown) = (datagrams.clone(), shutdown.clone());
        tracker.spawn(async move {
            serve(tag, stream, from, datagrams, shutdown).await;
            drop(permit);
        });
    }
}

async fn serve(
    tag: SocketAddr,
    stream: TcpStream,
    from: SocketAddr,
    datagrams: Arc<Router>,
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
            if !datagrams.deliver_tcp(d).await {
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
