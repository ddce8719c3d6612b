//! Outgoing datagrams, batched. Everything one viewer is owed after an
//! input (an access unit is ~9 SRTP packets at 2.5 Mbit/s) goes out in as
//! few `sendmsg` calls as UDP GSO allows: runs of equal-size datagrams to the
//! same address become one call the kernel splits. Sends never block: a
//! full socket buffer drops, as the network would.

use quinn_udp::{Transmit, UdpSocketState};
use rtc::shared::TransportContext;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Socket send buffer we ask for: a fast-start GOP burst to several new
/// viewers fits, rather than being dropped by a default ~200 KiB buffer.
const SEND_BUFFER: usize = 4 << 20;

struct Output {
    tag: SocketAddr,
    socket: Arc<UdpSocket>,
    state: UdpSocketState,
}

struct Pending {
    output: usize,
    to: SocketAddr,
    start: usize,
    len: usize,
}

pub struct Batcher {
    outputs: Vec<Output>,
    buf: Vec<u8>,
    pending: Vec<Pending>,
}

impl Batcher {
    pub fn new(sockets: &[(SocketAddr, Arc<UdpSocket>)]) -> std::io::Result<Batcher> {
        let mut outputs = Vec::new();
        for (tag, socket) in sockets {
            let state = UdpSocketState::new(socket.as_ref().into())?;
            if let Err(e) = state.set_send_buffer_size(socket.as_ref().into(), SEND_BUFFER) {
                tracing::debug!(%tag, "keeping the default send buffer: {e}");
            }
            outputs.push(Output {
                tag: *tag,
                socket: socket.clone(),
                state,
            });
        }
        Ok(Batcher {
            outputs,
            buf: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Queues one datagram from the socket whose announced address is
    /// `t.local_addr`.
    pub fn queue(&mut self, t: &TransportContext, data: &[u8]) {
        let output = self
            .outputs
            .iter()
            .position(|o| o.tag == t.local_addr)
            .unwrap_or(0);
        let start = self.buf.len();
        self.buf.extend_from_slice(data);
        self.pending.push(Pending {
            output,
            to: t.peer_addr,
            start,
            len: data.len(),
        });
    }

    /// Sends everything queued.
    pub fn flush(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            let first = &self.pending[i];
            let Some(out) = self.outputs.get(first.output) else {
                i += 1;
                continue;
            };
            let max = out.state.max_gso_segments().max(1);
            // A run: equal sizes to one address, then at most one shorter
            // datagram to close it (the GSO rule).
            let mut j = i + 1;
            while j < self.pending.len()
                && j - i < max
                && self.pending[j].output == first.output
                && self.pending[j].to == first.to
                && self.pending[j].len <= first.len
            {
                let short = self.pending[j].len < first.len;
                j += 1;
                if short {
                    break;
                }
            }
            let end = self.pending[j - 1].start + self.pending[j - 1].len;
            let transmit = Transmit {
                destination: first.to,
                ecn: None,
                contents: &self.buf[first.start..end],
                segment_size: (j - i > 1).then_some(first.len),
                src_ip: None,
            };
            let failed = out
                .state
                .try_send(out.socket.as_ref().into(), &transmit)
                .is_err();
            crate::metrics::udp_send((j - i) as u64, failed);
            i = j;
        }
        self.pending.clear();
        self.buf.clear();
    }
}
