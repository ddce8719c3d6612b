//! Relayed sockets: a port from the configured range, with socket buffers
//! sized for video. A keyframe arrives from the SFU as a burst of ~100
//! packets; with the kernel's default 208 KiB receive buffer the relay lost
//! 613 packets in a 5 s Chromium watch, none with 2 MiB (docs/BENCHMARKS.md).

use async_trait::async_trait;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use turn::relay::RelayAddressGenerator;
use util::Conn;

type Result<T> = std::result::Result<T, turn::Error>;

/// Asked of the kernel for each relay socket; capped by net.core.rmem_max
/// and wmem_max.
pub(crate) const SOCKET_BUFFER: usize = 2 << 20;
const TRIES: usize = 16;

pub(crate) struct RelayPorts {
    /// Announced in XOR-RELAYED-ADDRESS.
    pub relay_ip: IpAddr,
    /// Bound locally.
    pub bind_ip: IpAddr,
    pub min_port: u16,
    pub max_port: u16,
}

/// Bigger socket buffers, best effort (a smaller kernel limit is no error).
pub(crate) fn enlarge_buffers(socket: SockRef<'_>) {
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    enlarge_buffers(SockRef::from(&s));
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(s.into())
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
                    let mut relayed = s.local_addr()?;
                    relayed.set_ip(self.relay_ip);
                    return Ok((Arc::new(s), relayed));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(turn::Error::ErrMaxRetriesExceeded, turn::Error::from))
    }
}
