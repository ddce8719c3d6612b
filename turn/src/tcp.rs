//! TURN over TCP (RFC 5766 2.1): what gets through networks that block UDP.
//! The `turn` crate's server reads datagrams from a packet `Conn`; this one
//! presents every accepted TCP connection as a source address of a single
//! packet socket. Frames are STUN messages (20-byte header with a length)
//! and ChannelData (4-byte header, padded to 4 bytes over TCP).
//!
//! Bounded: a cap on connections, one bounded queue each way per connection
//! (a slow reader loses packets, as over UDP, and stalls no one else), and
//! a frame size limit (the crate reads into a 1500-byte buffer).

use async_trait::async_trait;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use util::Conn;

/// The crate's read buffer.
const MAX_FRAME: usize = 1500;
const QUEUE: usize = 256;
/// A connection that sends nothing for this long is closed (allocations
/// refresh every few minutes, permissions every 5).
const IDLE: std::time::Duration = std::time::Duration::from_secs(600);

type Frame = (Vec<u8>, SocketAddr);

pub(crate) struct TcpMux {
    local: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Frame>>,
    writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    pub(crate) stop: CancellationToken,
}

impl TcpMux {
    pub(crate) fn start(listener: TcpListener, max_connections: usize) -> std::io::Result<TcpMux> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            tx,
            writers.clone(),
            stop.clone(),
            max_connections,
        ));
        Ok(TcpMux {
            local,
            incoming: tokio::sync::Mutex::new(rx),
            writers,
            stop,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<Frame>,
    writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    stop: CancellationToken,
    max_connections: usize,
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
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        {
            let mut w = writers.lock().expect("not poisoned");
            if w.len() >= max_connections {
                tracing::debug!(%peer, "TURN TCP connection refused: {max_connections} open");
                continue;
            }
            w.insert(peer, out_tx);
        }
        let _ = stream.set_nodelay(true);
        let (tx, writers, stop) = (tx.clone(), writers.clone(), stop.clone());
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            tokio::select! {
                _ = stop.cancelled() => {}
                e = read_frames(r, peer, tx) => tracing::debug!(%peer, "TURN TCP connection ended: {e}"),
                _ = write_frames(w, out_rx) => {}
            }
            writers.lock().expect("not poisoned").remove(&peer);
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
    mut r: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    tx: mpsc::Sender<Frame>,
) -> String {
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
        let mut frame = vec![0u8; total];
        frame[..4].copy_from_slice(&head);
        if let Err(e) = r.read_exact(&mut frame[4..]).await {
            return e.to_string();
        }
        if head[0] >> 6 == 1 {
            // The crate wants ChannelData without the TCP padding.
            frame.truncate(4 + u16::from_be_bytes([head[2], head[3]]) as usize);
        }
        if tx.send((frame, peer)).await.is_err() {
            return "relay closed".into();
        }
    }
}

async fn write_frames(mut w: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut frame) = rx.recv().await {
        if frame.first().is_some_and(|b| b >> 6 == 1) {
            frame.resize((frame.len() + 3) & !3, 0);
        }
        if w.write_all(&frame).await.is_err() {
            return;
        }
    }
}

fn closed() -> util::Error {
    util::Error::Io(std::io::Error::from(std::io::ErrorKind::NotConnected).into())
}

#[async_trait]
impl Conn for TcpMux {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("TURN TCP listener: connect".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let (frame, from) = tokio::select! {
            _ = self.stop.cancelled() => return Err(closed()),
            f = async { self.incoming.lock().await.recv().await } => f.ok_or_else(closed)?,
        };
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other(
            "TURN TCP listener: send without address".into(),
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        let tx = self
            .writers
            .lock()
            .expect("not poisoned")
            .get(&target)
            .cloned();
        match tx {
            // Full: drop, as a congested UDP path would; never block the relay.
            Some(tx) => match tx.try_send(buf.to_vec()) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(buf.len()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(closed()),
            },
            None => Err(closed()),
        }
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        self.stop.cancel();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
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
