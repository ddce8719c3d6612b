//! A listener as the relay uses it: a UDP socket, or TURN over TCP
//! ([`crate::tcp`]) presented as one packet socket. The read loops and the
//! data plane call it directly (no boxed future per packet, as a `dyn Conn`
//! would cost); the `turn` crate, which answers requests, gets it as a
//! [`Conn`].

use crate::tcp::{Frame, TcpMux};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use util::Conn;

/// Where replies to clients go.
#[derive(Clone)]
pub(crate) enum Transport {
    Udp(Arc<UdpSocket>),
    Tcp(Arc<TcpMux>),
}

/// Where clients' datagrams come from: one reader, the listener's read
/// loop.
pub(crate) enum Receiver {
    Udp(Arc<UdpSocket>),
    Tcp(mpsc::Receiver<Frame>),
}

impl Transport {
    pub(crate) async fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize> {
        match self {
            Transport::Udp(s) => s.send_to(buf, target).await,
            Transport::Tcp(m) => m.send_to(buf, target),
        }
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Transport::Udp(s) => s.local_addr(),
            Transport::Tcp(m) => Ok(m.local_addr()),
        }
    }
}

impl Receiver {
    /// The next datagram, copied into `buf`; `None` once the listener is
    /// gone.
    pub(crate) async fn recv_from(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        match self {
            Receiver::Udp(s) => loop {
                match s.recv_from(buf).await {
                    Ok(r) => return Some(r),
                    // ICMP errors surface here on some systems: not fatal.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
                    Err(e) => {
                        tracing::debug!("TURN listener: {e}");
                        return None;
                    }
                }
            },
            Receiver::Tcp(rx) => {
                let (frame, from) = rx.recv().await?;
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                Some((n, from))
            }
        }
    }
}

fn not_here(what: &str) -> util::Error {
    util::Error::Other(format!("TURN listener: {what}"))
}

/// What the crate answers requests through.
#[async_trait]
impl Conn for Transport {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(not_here("connect"))
    }

    /// The read loops read; the crate only answers.
    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        Err(not_here("recv"))
    }

    async fn recv_from(&self, _buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        Err(not_here("recv"))
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(not_here("send without address"))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        Ok(Transport::send_to(self, buf, target).await?)
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(Transport::local_addr(self)?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The crate closes the listening socket whenever it closes an
    /// allocation (allocation/mod.rs); the listener stays open until
    /// [`crate::TurnRelay::close`].
    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
