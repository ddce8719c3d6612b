//! Where a peer's datagrams go: the UDP send batch, or the ICE-TCP
//! connection the peer reached us on.

use super::tcp::FrameSender;
use super::udp::Batcher;
use rtc::shared::{TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The driver's outputs, lent to whatever is sending for a peer.
pub struct Wire<'a> {
    pub out: &'a mut Batcher,
    /// ICE-TCP peers' connections, by remote address.
    pub tcp: &'a mut HashMap<SocketAddr, FrameSender>,
    /// For a datagram bound for ICE-TCP, which is framed from a copy.
    pub scratch: &'a mut Vec<u8>,
}

impl Wire<'_> {
    /// One datagram out, as rtc tags it.
    pub fn send_tagged(&mut self, transport: &TransportContext, message: &[u8]) {
        if transport.transport_protocol == TransportProtocol::TCP {
            self.send_tcp(transport.peer_addr, message);
        } else {
            self.out.queue(transport, message);
        }
    }

    /// One datagram to `to` from our socket `local`: over ICE-TCP when that
    /// is how `to` reached us.
    pub fn send(&mut self, local: SocketAddr, to: SocketAddr, message: &[u8]) {
        if self.tcp.contains_key(&to) {
            self.send_tcp(to, message);
        } else {
            self.out.push(local, to, message);
        }
    }

    /// One datagram written in place (see [`Batcher::write`]); over ICE-TCP
    /// it is written to the scratch buffer and framed from there.
    pub fn write(
        &mut self,
        local: SocketAddr,
        to: SocketAddr,
        room: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if !self.tcp.contains_key(&to) {
            return self.out.write(local, to, room, fill);
        }
        let mut buf = std::mem::take(self.scratch);
        buf.clear();
        buf.resize(room, 0);
        if let Some(len) = fill(&mut buf).filter(|n| *n <= room) {
            self.send_tcp(to, &buf[..len]);
        }
        *self.scratch = buf;
    }

    fn send_tcp(&mut self, to: SocketAddr, message: &[u8]) {
        if let Some(conn) = self.tcp.get(&to) {
            if !super::tcp::send(conn, message) {
                self.tcp.remove(&to);
            }
        }
    }

    /// Everything an rtc peer connection has to send.
    pub fn drain(&mut self, pc: &mut rtc::peer_connection::RTCPeerConnection) {
        use rtc::sansio::Protocol;
        while let Some(w) = pc.poll_write() {
            self.send_tagged(&w.transport, &w.message);
        }
    }
}
