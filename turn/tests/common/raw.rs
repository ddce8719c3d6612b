//! The raw TURN client (onair-loadtest's, shared with the soak's hostile
//! client) and a UDP listener standing for a service behind the relay.

#[allow(unused_imports)] // not every test binary including this module drives it
pub use onair_loadtest::turn_raw::{RawClient, Refused, Relayed};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// A UDP listener standing for a service a relay must not reach: counts
/// what arrives.
pub struct Listener {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: &str) -> Listener {
        let socket = UdpSocket::bind(addr).await.expect("bind a listener");
        let addr = socket.local_addr().unwrap();
        Listener { socket, addr }
    }

    /// Datagrams (and their bytes) that arrive within `wait`.
    pub async fn drain(&self, wait: Duration) -> (usize, usize) {
        let mut buf = [0u8; 2048];
        let (mut n, mut bytes) = (0, 0);
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await
        {
            n += 1;
            bytes += len;
        }
        (n, bytes)
    }
}
