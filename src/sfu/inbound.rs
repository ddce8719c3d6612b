//! The WebRTC sockets' reader: what viewers and publishers send, read once
//! and routed to the driver that owns its peer ([`super::shard::Router`]).
//!
//! Viewers send little (transport-cc every 100 ms, a receiver report and a
//! consent check now and then: about 11 datagrams a second each), but each
//! datagram woke a reader thread and then its shard: at 2 000 viewers the
//! hand-offs cost more than the work. So the reader reads its socket dry,
//! several datagrams per call, delivers one batch per driver, and once the
//! inbound rate passes [`COALESCE_ABOVE`] it sleeps [`COALESCE`] before it
//! looks again, letting the next datagrams gather in the socket, as a NIC
//! coalesces interrupts: about a thousand wake-ups a second however many
//! viewers, for at most that much more delay on feedback (and on a WHIP
//! publisher's packets, when the server is that busy). Every datagram keeps
//! the kernel's arrival time, so the wait still counts as the server's in
//! the forwarding figures.

use super::driver::Datagram;
use super::shard::Router;
use super::udp::recv::{self, Receiver, RECV_BATCH};
use crate::isolate;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Inbound datagrams a second past which the reader gathers them for
/// [`COALESCE`]: about 350 viewers, well above what a few publishers and
/// their viewers send when nothing is scarce.
pub const COALESCE_ABOVE: u32 = 4_000;
/// How long a busy reader lets datagrams gather between reads.
pub const COALESCE: Duration = Duration::from_millis(1);
/// Datagrams one wake-up reads at most before delivering: a flood is
/// handed on in pieces, not held back until the socket is dry.
const MAX_PER_TURN: usize = 8 * RECV_BATCH;
/// How long an idle reader waits for a datagram before it checks for
/// shutdown.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// The component a panic in the reader is counted under.
const READER: &str = "webrtc_reader";
/// How often the inbound rate is re-measured.
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// The inbound rate, as the coalescing rule reads it.
pub struct Rate {
    since: Instant,
    count: u32,
    busy: bool,
}

impl Rate {
    pub fn new(now: Instant) -> Rate {
        Rate {
            since: now,
            count: 0,
            busy: false,
        }
    }

    /// Counts `n` datagrams read at `now`; true while the last full window
    /// ran above [`COALESCE_ABOVE`]. The rate counts datagrams, not reads,
    /// so gathering them does not switch gathering off.
    pub fn busy(&mut self, n: usize, now: Instant) -> bool {
        self.count = self.count.saturating_add(n as u32);
        let window = now.saturating_duration_since(self.since);
        if window >= RATE_WINDOW {
            let per_second = f64::from(self.count) / window.as_secs_f64();
            self.busy = per_second > f64::from(COALESCE_ABOVE);
            self.since = now;
            self.count = 0;
        }
        self.busy
    }
}

/// Reads `socket` on a thread of its own until `shutdown`. A thread, not
/// a task: a socket registered with the reactor wakes its thread for every
/// datagram that arrives, gathering or not, which is the cost this module
/// exists to remove. Sleeping here instead, the kernel just queues them.
pub(super) fn start(
    tag: SocketAddr,
    socket: Arc<UdpSocket>,
    router: Arc<Router>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    recv::enable_timestamps(&socket);
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("webrtc-rx".to_owned())
        .spawn(move || {
            // A panic (a datagram that breaks routing, say) costs what was
            // read and not yet handed on, then reading starts over.
            while isolate::catch(READER, &tag, || {
                read_socket(tag, &socket, &router, &shutdown)
            })
            .is_none()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(done);
        })?;
    // Shutdown waits for the thread as it does for tasks.
    tracker.spawn(async move {
        let _ = ended.await;
    });
    Ok(())
}

fn read_socket(tag: SocketAddr, socket: &UdpSocket, router: &Router, shutdown: &CancellationToken) {
    let mut rx = Receiver::default();
    let mut rate = Rate::new(Instant::now());
    let mut read: Vec<Datagram> = Vec::with_capacity(MAX_PER_TURN);
    while !shutdown.is_cancelled() {
        let mut failed = false;
        while read.len() < MAX_PER_TURN {
            match rx.recv(socket) {
                Ok(_) => read.extend(rx.datagrams().map(|d| Datagram {
                    at: d.at,
                    local: tag,
                    from: d.from,
                    data: bytes::BytesMut::from(d.data),
                    tcp: None,
                })),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ICMP port-unreachable from a vanished viewer surfaces here
                // on Linux; it concerns that viewer only.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::warn!(%tag, "WebRTC socket read failed: {e}");
                    failed = true;
                    break;
                }
            }
        }
        let n = read.len();
        router.deliver(read.drain(..));
        let busy = rate.busy(n, Instant::now());
        if failed {
            std::thread::sleep(Duration::from_millis(50));
        } else if n >= MAX_PER_TURN {
            // More is waiting: read on.
        } else if busy {
            std::thread::sleep(COALESCE);
        } else {
            wait_readable(socket, IDLE_CHECK);
        }
    }
}

/// Blocks until `socket` has something to read or `timeout` passes (so
/// shutdown is noticed).
fn wait_readable(socket: &UdpSocket, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gathering starts once a window runs above the threshold, stays on
    /// while it does (however few reads that takes), and stops when the
    /// traffic falls.
    #[test]
    fn gathering_follows_the_rate_of_datagrams() {
        let t0 = Instant::now();
        let mut rate = Rate::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 2 000 a second, one datagram per read: not busy.
        for i in 1..=400 {
            assert!(!rate.busy(1, ms(i / 2)));
        }
        // 10 000 a second, read 20 at a time every 2 ms: busy from the
        // first window over the threshold.
        let mut t = 200;
        let mut on = false;
        for _ in 0..100 {
            t += 2;
            on = rate.busy(20, ms(t));
        }
        assert!(on);
        // Quiet again: off after the next window.
        for _ in 0..20 {
            t += 20;
            on = rate.busy(1, ms(t));
        }
        assert!(!on);
    }

    /// A real socket sent 8 000 datagrams a second, evenly: every one
    /// reaches the driver, in order, stamped no later than it was handed
    /// on; once the rate is known they come gathered, several per batch,
    /// not one wake-up each; a stranger's datagram goes nowhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_busy_port_is_read_in_gathered_batches_and_loses_nothing() {
        use crate::sfu::shard::{self, Routes};
        const N: u32 = 4_000;
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let tag = socket.local_addr().unwrap();
        let viewer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let routes = Arc::new(Routes::default());
        routes.add_addr(viewer.local_addr().unwrap(), 0);
        let (inbox, mut datagrams) = shard::inbox();
        let router = Arc::new(Router {
            routes,
            inboxes: vec![inbox],
        });
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        start(tag, socket, router, shutdown.clone(), &tracker).unwrap();
        let sender = std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..N {
                let due = start + Duration::from_micros(125 * u64::from(i));
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                viewer.send_to(&i.to_be_bytes(), tag).unwrap();
                if i % 1000 == 0 {
                    stranger.send_to(b"not ours", tag).unwrap();
                }
            }
        });
        let (mut got, mut batches) = (Vec::new(), Vec::new());
        while got.len() < N as usize {
            let batch = tokio::time::timeout(Duration::from_secs(5), datagrams.recv())
                .await
                .expect("the rest of the datagrams")
                .unwrap();
            let handed = Instant::now();
            batches.push(batch.len());
            for d in batch {
                assert!(d.at <= handed);
                assert_eq!(d.local, tag);
                got.push(u32::from_be_bytes(
                    d.data[..].try_into().expect("the viewer's"),
                ));
            }
        }
        sender.join().unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        // The second half: well past the first rate window.
        let late = &batches[batches.len() / 2..];
        let mean = late.iter().sum::<usize>() as f64 / late.len() as f64;
        assert!(mean >= 3.0, "batches of {mean:.1} datagrams: not gathered");
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(2), tracker.wait())
            .await
            .expect("the reader thread ends on shutdown");
    }
}
