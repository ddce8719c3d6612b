//! TURN over TCP (RFC 5766 2.1): what gets through networks that block UDP.
//! The `turn` crate's server reads datagrams from a packet `Conn`; this one
//! presents every accepted TCP connection as a source address of a single
//! packet socket. Frames are STUN messages (20-byte header with a length)
//! and ChannelData (4-byte header, padded to 4 bytes over TCP).
//!
//! Bounded: a cap on connections, one bounded queue each way per connection
//! (a slow reader loses packets, as over UDP, and stalls no one else), and
//! a frame size limit (the crate reads into a 1500-byte buffer).
//!
//! Frames cross the queues as `Bytes` cut from a per-connection arena, so a
//! frame costs no allocation of its own: one per [`ARENA`] bytes.
//!
//! TURN over TLS (`turns:`, RFC 5766 2.1) is the same mux with an
//! [`Upgrade`] run on each accepted connection; the caller owns the
//! certificate.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The crate's read buffer.
const MAX_FRAME: usize = 1500;
const QUEUE: usize = 256;
/// What frames are cut from, per connection and direction: room for ~40
/// full frames per allocation.
const ARENA: usize = 64 << 10;
/// A connection that sends nothing for this long is closed (allocations
/// refresh every few minutes, permissions every 5).
const IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// A frame from a client, and who sent it.
pub(crate) type Frame = (Bytes, SocketAddr);

/// A byte stream a connection is served over once upgraded.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Turns an accepted connection into the stream TURN is spoken over: a
/// TLS handshake for `turns:`.
pub type Upgrade = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Stream>>> + Send>>
        + Send
        + Sync,
>;

/// How long an upgrade (a TLS handshake) may take.
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One connection's way out: its queue, and the arena frames for it are
/// copied into.
struct Writer {
    tx: mpsc::Sender<Bytes>,
    arena: BytesMut,
}

type Writers = Arc<Mutex<HashMap<SocketAddr, Writer>>>;

pub(crate) struct TcpMux {
    local: SocketAddr,
    writers: Writers,
    pub(crate) stop: CancellationToken,
}

impl TcpMux {
    /// Accepts on `listener`; every connection's frames arrive on the
    /// receiver, for one reader.
    pub(crate) fn start(
        listener: TcpListener,
        max_connections: usize,
        upgrade: Option<Upgrade>,
    ) -> std::io::Result<(TcpMux, mpsc::Receiver<Frame>)> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writers = Writers::default();
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            tx,
            writers.clone(),
            stop.clone(),
            max_connections,
            upgrade,
        ));
        Ok((
            TcpMux {
                local,
                writers,
                stop,
            },
            rx,
        ))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues `buf` for the connection from `target`. A full queue drops
    /// it, as a congested UDP path would: the relay never waits on one
    /// client.
    pub(crate) fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = writers.get_mut(&target) else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        // ChannelData is padded to 4 bytes over TCP (RFC 8656 12.5).
        let len = if buf.first().is_some_and(|b| b >> 6 == 1) {
            buf.len().next_multiple_of(4)
        } else {
            buf.len()
        };
        if w.arena.capacity() < len {
            w.arena.reserve(ARENA.max(len));
        }
        w.arena.extend_from_slice(buf);
        w.arena.resize(len, 0);
        let frame = w.arena.split().freeze();
        match w.tx.try_send(frame) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(buf.len()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(std::io::ErrorKind::NotConnected.into())
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<Frame>,
    writers: Writers,
    stop: CancellationToken,
    max_connections: usize,
    upgrade: Option<Upgrade>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!("TURN TCP accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(QUEUE);
        {
            let mut w = writers.lock().unwrap_or_else(|e| e.into_inner());
            if w.len() >= max_connections {
                tracing::debug!(%peer, "TURN TCP connection refused: {max_connections} open");
                continue;
            }
            w.insert(
                peer,
                Writer {
                    tx: out_tx,
                    arena: BytesMut::new(),
                },
            );
        }
        let _ = stream.set_nodelay(true);
        let (tx, writers, stop) = (tx.clone(), writers.clone(), stop.clone());
        let upgrade = upgrade.clone();
        tokio::spawn(async move {
            let stream: Box<dyn Stream> = match upgrade {
                None => Box::new(stream),
                Some(up) => match tokio::time::timeout(UPGRADE_TIMEOUT, up(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TURN TLS handshake failed: {e}");
                        writers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&peer);
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TURN TLS handshake timed out");
                        writers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&peer);
                        return;
                    }
                },
            };
            let (r, w) = tokio::io::split(stream);
            tokio::select! {
                _ = stop.cancelled() => {}
                e = read_frames(r, peer, tx) => tracing::debug!(%peer, "TURN TCP connection ended: {e}"),
                _ = write_frames(w, out_rx) => {}
            }
            writers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&peer);
        });
    }
}

/// The length of the frame starting with `head` (4 bytes), padding included.
fn frame_len(head: [u8; 4]) -> Result<usize, &'static str> {
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    match head[0] >> 6 {
        0 => Ok(20 + len),           // STUN: length excludes the header
        1 => Ok((4 + len + 3) & !3), // ChannelData, padded over TCP
        _ => Err("not STUN or ChannelData"),
    }
}

async fn read_frames(
    mut r: impl AsyncRead + Unpin,
    peer: SocketAddr,
    tx: mpsc::Sender<Frame>,
) -> String {
    let mut arena = BytesMut::new();
    loop {
        let mut head = [0u8; 4];
        match tokio::time::timeout(IDLE, r.read_exact(&mut head)).await {
            Err(_) => return "idle".into(),
            Ok(Err(e)) => return e.to_string(),
            Ok(Ok(_)) => {}
        }
        let total = match frame_len(head) {
            Ok(n) if n <= MAX_FRAME => n,
            Ok(n) => return format!("{n}-byte frame"),
            Err(e) => return e.into(),
        };
        if arena.capacity() < total {
            arena.reserve(ARENA);
        }
        arena.extend_from_slice(&head);
        arena.resize(total, 0);
        if let Err(e) = r.read_exact(&mut arena[4..]).await {
            return e.to_string();
        }
        let mut frame = arena.split();
        if head[0] >> 6 == 1 {
            // The read loop wants ChannelData without the TCP padding.
            frame.truncate(4 + u16::from_be_bytes([head[2], head[3]]) as usize);
        }
        if tx.send((frame.freeze(), peer)).await.is_err() {
            return "relay closed".into();
        }
    }
}

async fn write_frames(mut w: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(frame) = rx.recv().await {
        if w.write_all(&frame).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpMux {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(frame_len([0x00, 0x03, 0x00, 0x08]), Ok(28));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Ok(12));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x04]), Ok(8));
        assert!(frame_len([0x80, 0, 0, 0]).is_err());
    }
}
