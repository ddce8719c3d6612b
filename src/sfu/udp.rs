//! Outgoing datagrams, batched across viewers. A fan-out queues what every
//! viewer is owed for one access unit or audio frame, then [`Batcher::flush`]
//! hands it to the kernel in as few system calls as Linux allows:
//! - runs of equal-size datagrams to one address become one UDP GSO message
//!   that the kernel splits (an access unit is ~9 packets at 2.5 Mbit/s);
//! - the messages for all addresses go out together in `sendmmsg` calls, so
//!   an audio packet to 500 viewers is 2 calls, not 500.
//!
//! Sends never block: a full socket buffer drops, as the network would.

use rtc::shared::TransportContext;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::Arc;

/// Socket buffers we ask for. Sending: a fast-start GOP burst to several
/// new viewers fits, rather than being dropped by a default ~200 KiB buffer.
/// Receiving: hundreds of viewers joining at once send STUN checks and DTLS
/// flights together; a dropped DTLS flight costs that viewer a 1-2-4-8 s
/// retransmission backoff (joins of 400 viewers took up to 15 s with the
/// default buffer).
const SEND_BUFFER: usize = 4 << 20;
const RECV_BUFFER: usize = 4 << 20;

/// Queued bytes past which [`Batcher::queue`] flushes by itself, so a
/// keyframe to thousands of viewers never sits whole in memory.
const FLUSH_BYTES: usize = 1 << 20;

/// The most one GSO message may carry: a UDP datagram's payload limit over
/// IPv4 (IPv6 allows 20 bytes more). The kernel refuses a larger run with
/// EMSGSIZE whatever its segment count: 54 SRTP packets of 1 222 bytes.
const MAX_GSO_BYTES: usize = 65_507;

struct Output {
    tag: SocketAddr,
    socket: Arc<UdpSocket>,
    /// The kernel's GSO segment limit for this socket; 1 without GSO.
    max_segments: usize,
    ipv6: bool,
}

struct Pending {
    output: usize,
    to: SocketAddr,
    start: usize,
    len: usize,
}

/// One message for the kernel: `len` bytes from `start`, cut into
/// `segment`-byte datagrams when GSO applies.
#[derive(Clone, Copy)]
pub(crate) struct Run {
    pub to: SocketAddr,
    pub start: usize,
    pub len: usize,
    pub segment: Option<u16>,
    pub datagrams: usize,
}

pub struct Batcher {
    outputs: Vec<Output>,
    buf: Vec<u8>,
    pending: Vec<Pending>,
    runs: Vec<Run>,
}

impl Batcher {
    pub fn new(sockets: &[(SocketAddr, Arc<UdpSocket>)]) -> std::io::Result<Batcher> {
        let mut outputs = Vec::new();
        for (tag, socket) in sockets {
            // quinn-udp probes GSO support (kernel and socket) for us.
            let state = quinn_udp::UdpSocketState::new(socket.as_ref().into())?;
            // It also turns on UDP GRO, which would hand our plain
            // `recv_from` several coalesced datagrams as one (truncated)
            // read on a real NIC: a publisher's keyframe burst lost.
            disable_gro(socket);
            let _ = state.set_send_buffer_size(socket.as_ref().into(), SEND_BUFFER);
            let _ = state.set_recv_buffer_size(socket.as_ref().into(), RECV_BUFFER);
            // The kernel caps both at net.core.{w,r}mem_max (~208 KiB on a
            // stock kernel) without saying so.
            let got = state.recv_buffer_size(socket.as_ref().into()).unwrap_or(0);
            if got < RECV_BUFFER {
                tracing::warn!(
                    %tag,
                    "WebRTC socket receive buffer is {} KiB, not the {} KiB asked for: many viewers joining at once may lose handshake packets (raise net.core.rmem_max)",
                    got / 1024,
                    RECV_BUFFER / 1024
                );
            }
            outputs.push(Output {
                tag: *tag,
                socket: socket.clone(),
                max_segments: state.max_gso_segments().max(1),
                ipv6: socket.local_addr()?.is_ipv6(),
            });
        }
        Ok(Batcher {
            outputs,
            buf: Vec::new(),
            pending: Vec::new(),
            runs: Vec::new(),
        })
    }

    /// Queues one datagram from the socket whose announced address is
    /// `t.local_addr`.
    pub fn queue(&mut self, t: &TransportContext, data: &[u8]) {
        self.push(t.local_addr, t.peer_addr, data);
    }

    /// Queues a copy of `data` for `to`, from the socket announced as `local`.
    pub fn push(&mut self, local: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.write(local, to, data.len(), |buf| {
            buf.copy_from_slice(data);
            Some(data.len())
        });
    }

    /// Queues one datagram to `to` from the socket announced as `local`,
    /// written in place: `fill` gets `room` zeroed bytes at the end of the
    /// batch and says how many it used, or `None` to queue nothing. What a
    /// viewer is sent is sealed here, with no copy of its own.
    pub fn write(
        &mut self,
        local: SocketAddr,
        to: SocketAddr,
        room: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if self.buf.len() + room > FLUSH_BYTES {
            self.flush();
        }
        let output = self
            .outputs
            .iter()
            .position(|o| o.tag == local)
            .unwrap_or(0);
        let start = self.buf.len();
        self.buf.resize(start + room, 0);
        match fill(&mut self.buf[start..]) {
            Some(len) if len > 0 && len <= room => {
                self.buf.truncate(start + len);
                self.pending.push(Pending {
                    output,
                    to,
                    start,
                    len,
                });
            }
            _ => self.buf.truncate(start),
        }
    }

    /// Datagrams queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Drops what is queued unsent: for benchmarks of what comes before
    /// the system call.
    pub fn discard(&mut self) {
        self.pending.clear();
        self.buf.clear();
    }

    /// Sends everything queued.
    pub fn flush(&mut self) {
        for o in 0..self.outputs.len() {
            self.runs.clear();
            let max_segments = self.outputs[o].max_segments;
            let mut i = 0;
            while i < self.pending.len() {
                let first = &self.pending[i];
                if first.output != o {
                    i += 1;
                    continue;
                }
                // A run: equal sizes to one address, then at most one
                // shorter datagram to close it (the GSO rule). Queued in
                // order, so a viewer's datagrams are next to each other.
                let max = max_segments.min((MAX_GSO_BYTES / first.len.max(1)).max(1));
                let mut j = i + 1;
                while j < self.pending.len()
                    && j - i < max
                    && self.pending[j].output == o
                    && self.pending[j].to == first.to
                    && self.pending[j].len <= first.len
                {
                    let short = self.pending[j].len < first.len;
                    j += 1;
                    if short {
                        break;
                    }
                }
                let last = &self.pending[j - 1];
                self.runs.push(Run {
                    to: first.to,
                    start: first.start,
                    len: last.start + last.len - first.start,
                    segment: (j - i > 1).then_some(first.len as u16),
                    datagrams: j - i,
                });
                i = j;
            }
            if !self.runs.is_empty() {
                let out = &mut self.outputs[o];
                let sent = send_runs(&out.socket, out.ipv6, &self.buf, &self.runs);
                if sent.gso_refused && out.max_segments > 1 {
                    tracing::warn!(tag = %out.tag, "UDP GSO refused by the kernel; sending datagrams one by one");
                    out.max_segments = 1;
                }
                crate::metrics::udp_send(sent.calls, sent.datagrams, sent.dropped);
            }
        }
        self.pending.clear();
        self.buf.clear();
    }
}

#[derive(Default)]
pub(crate) struct Sent {
    pub calls: u64,
    pub datagrams: u64,
    pub dropped: u64,
    /// A GSO message failed with EIO: the device cannot segment.
    pub gso_refused: bool,
}

#[cfg(target_os = "linux")]
fn send_runs(socket: &UdpSocket, ipv6: bool, buf: &[u8], runs: &[Run]) -> Sent {
    use std::os::fd::AsRawFd;
    mmsg::send(socket.as_raw_fd(), ipv6, buf, runs)
}

/// Elsewhere: one `send_to` per datagram.
#[cfg(target_os = "linux")]
fn disable_gro(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    mmsg::disable_gro(socket.as_raw_fd());
}

#[cfg(not(target_os = "linux"))]
fn disable_gro(_: &UdpSocket) {}

#[cfg(not(target_os = "linux"))]
fn send_runs(socket: &UdpSocket, _ipv6: bool, buf: &[u8], runs: &[Run]) -> Sent {
    let mut sent = Sent::default();
    for run in runs {
        let size = run.segment.map_or(run.len, usize::from);
        for chunk in buf[run.start..run.start + run.len].chunks(size) {
            sent.calls += 1;
            sent.datagrams += 1;
            if socket.send_to(chunk, run.to).is_err() {
                sent.dropped += 1;
            }
        }
    }
    sent
}

#[cfg(target_os = "linux")]
mod mmsg;
pub mod recv;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rtc::shared::TransportProtocol;

    /// A whole keyframe to one viewer (60 full packets, 73 KB) fits no
    /// single GSO message: it is cut into runs under the UDP limit and
    /// every datagram arrives.
    #[tokio::test]
    async fn a_keyframe_burst_is_cut_under_the_gso_limit() {
        let out = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        out.set_nonblocking(true).unwrap();
        let tag = out.local_addr().unwrap();
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut b = Batcher::new(&[(tag, out)]).unwrap();
        let t = TransportContext {
            local_addr: tag,
            peer_addr: rx.local_addr().unwrap(),
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        };
        for i in 0..60u8 {
            b.queue(&t, &[i; 1222]);
        }
        b.flush();
        let mut d = [0u8; 2048];
        for i in 0..60u8 {
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv(&mut d))
                .await
                .expect("datagram arrives")
                .unwrap();
            assert_eq!(n, 1222);
            assert!(
                d[..n].iter().all(|&x| x == i),
                "datagram {i} intact, in order"
            );
        }
    }
}
