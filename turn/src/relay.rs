//! Relayed sockets: a port from the configured range, with socket buffers
//! sized for video. A keyframe arrives from the SFU as a burst of ~100
//! packets; with the kernel's default 208 KiB receive buffer the relay lost
//! 613 packets in a 5 s Chromium watch, none with 2 MiB (docs/BENCHMARKS.md).
//!
//! The `turn` crate reads each relayed socket in a task of its own and
//! relays what arrives with fresh buffers per packet; [`RelayedConn`] keeps
//! that read for itself and hands every datagram to
//! [`Allocation::relay_to_client`] instead, so the crate's reader never sees one.

use crate::allocation::Allocation;
use crate::wire::{FromClient, HEADROOM};
use async_trait::async_trait;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use turn::relay::RelayAddressGenerator;
use util::Conn;

type Result<T> = std::result::Result<T, turn::Error>;

/// Asked of the kernel for each relay socket; capped by net.core.rmem_max
/// and wmem_max.
pub(crate) const SOCKET_BUFFER: usize = 2 << 20;
const TRIES: usize = 16;
/// The largest datagram from a peer that is relayed (the crate's own
/// limit); a larger one is dropped rather than cut short.
const MAX_PEER_DATAGRAM: usize = 1500;

pub(crate) struct RelayPorts {
    /// Announced in XOR-RELAYED-ADDRESS.
    pub relay_ip: IpAddr,
    /// Bound locally.
    pub bind_ip: IpAddr,
    pub min_port: u16,
    pub max_port: u16,
    /// The socket made for the Allocate being handled, for the read loop
    /// to attach to its allocation once the crate has answered.
    pub fresh: Fresh,
}

/// One relayed socket handed from the crate's Allocate to the read loop
/// that passed the request on (requests are handled one at a time per
/// listener).
pub(crate) type Fresh = Arc<Mutex<Option<Arc<RelayedConn>>>>;

/// Bigger socket buffers, best effort (a smaller kernel limit is no error).
pub(crate) fn enlarge_buffers(socket: SockRef<'_>) {
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    enlarge_buffers(SockRef::from(&s));
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

#[async_trait]
impl RelayAddressGenerator for RelayPorts {
    fn validate(&self) -> Result<()> {
        if self.min_port == 0 || self.max_port < self.min_port {
            return Err(turn::Error::ErrMaxPortLessThanMinPort);
        }
        Ok(())
    }

    async fn allocate_conn(
        &self,
        _use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr)> {
        let span = u32::from(self.max_port - self.min_port) + 1;
        let ports: Vec<u16> = if requested_port != 0 {
            vec![requested_port]
        } else {
            (0..TRIES)
                .map(|_| self.min_port + (rand::random::<u32>() % span) as u16)
                .collect()
        };
        let mut last = None;
        for port in ports {
            match bind(SocketAddr::new(self.bind_ip, port)) {
                Ok(s) => {
                    let local = s.local_addr()?;
                    let conn = Arc::new(RelayedConn {
                        socket: Arc::new(s),
                        local,
                        allocation: OnceLock::new(),
                        closed: CancellationToken::new(),
                    });
                    *self.fresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    return Ok((conn, SocketAddr::new(self.relay_ip, local.port())));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(turn::Error::ErrMaxRetriesExceeded, turn::Error::from))
    }
}

/// A relayed socket. Its reading side forwards peers' datagrams to the
/// client itself, until the crate closes it.
pub(crate) struct RelayedConn {
    pub(crate) socket: Arc<UdpSocket>,
    local: SocketAddr,
    allocation: OnceLock<Weak<Allocation>>,
    closed: CancellationToken,
}

impl RelayedConn {
    pub(crate) fn attach(&self, allocation: &Arc<Allocation>) {
        let _ = self.allocation.set(Arc::downgrade(allocation));
    }

    fn allocation(&self) -> Option<Arc<Allocation>> {
        self.allocation.get()?.upgrade()
    }

    /// Relays peers' datagrams to the client until closed. Returning early
    /// would make the crate forget the allocation without closing it.
    async fn forward(&self) -> util::Error {
        // Lives in this future, made once per allocation.
        let mut buf = [0u8; HEADROOM + MAX_PEER_DATAGRAM + 4];
        loop {
            let r = tokio::select! {
                _ = self.closed.cancelled() => return closed(),
                r = self.socket.recv_from(&mut buf[HEADROOM..HEADROOM + MAX_PEER_DATAGRAM + 1]) => r,
            };
            let (n, from) = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(relay = %self.local, "TURN relayed socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if n > MAX_PEER_DATAGRAM {
                continue;
            }
            // Not yet attached: the client has no permission yet either.
            if let Some(a) = self.allocation() {
                a.relay_to_client(&mut buf, n, from).await;
            }
        }
    }
}

fn closed() -> util::Error {
    util::Error::Io(std::io::Error::from(std::io::ErrorKind::NotConnected).into())
}

#[async_trait]
impl Conn for RelayedConn {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("TURN relayed socket: connect".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        Err(self.forward().await)
    }

    async fn recv_from(&self, _buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        Err(self.forward().await)
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other(
            "TURN relayed socket: send without address".into(),
        ))
    }

    /// Not used by the crate while the read loops relay clients' data
    /// themselves; held to the same checks in case it ever is.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if let Some(a) = self.allocation() {
            a.relay_to_peer(FromClient::Send {
                peer: target,
                data: buf,
            })
            .await;
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        self.closed.cancel();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
