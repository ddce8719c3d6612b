//! Reading the WebRTC sockets several datagrams per system call
//! (`recvmmsg(2)`), each with the kernel's arrival time (`SO_TIMESTAMPNS`),
//! so the time a datagram waits in the socket before its reader gets to it
//! still counts as the server's.

use std::io;
use std::net::{SocketAddr, UdpSocket};
#[cfg(target_os = "linux")]
use std::net::{SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant, SystemTime};

/// Datagrams one call reads at most.
pub const RECV_BATCH: usize = 32;
/// Biggest datagram read: anything legitimate fits in an Ethernet MTU. A
/// longer one is dropped (it arrives truncated).
pub const MAX_DATAGRAM: usize = 2048;
/// A kernel stamp further back than this is a wall clock that stepped, not
/// a datagram that waited: it reads as "now".
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

type Control = [u64; 16];

/// One datagram of the last [`Receiver::recv`].
pub struct Received<'a> {
    pub from: SocketAddr,
    pub data: &'a [u8],
    /// When the kernel took it in, on the monotonic clock.
    pub at: Instant,
}

/// Buffers for one socket's reads, reused call after call
/// (`RECV_BATCH` x `MAX_DATAGRAM` = 64 KiB).
pub struct Receiver {
    bufs: Vec<u8>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    names: Vec<libc::sockaddr_storage>,
    /// Control messages per datagram, 8-byte aligned: the timestamp
    /// (CMSG_SPACE of a timespec is 32 bytes) and what else the socket
    /// asks for (quinn-udp turns on IP_PKTINFO and IP_RECVTOS, 32 and 24
    /// bytes with IPv6's), so none is cut.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    controls: Vec<Control>,
    /// Per datagram of the last call: length (0 for a dropped one), source
    /// and kernel stamp.
    got: Vec<(usize, Option<SocketAddr>, Option<SystemTime>)>,
    /// Both clocks read once per call, to turn wall-clock stamps into
    /// instants.
    clocks: (Instant, SystemTime),
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            bufs: vec![0; RECV_BATCH * MAX_DATAGRAM],
            // SAFETY: all-zero is a valid sockaddr_storage.
            names: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            controls: vec![[0; 16]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
            clocks: (Instant::now(), SystemTime::now()),
        }
    }
}

/// Asks the kernel to stamp each datagram `socket` receives. Without it
/// (an old kernel) datagrams are stamped when read.
#[cfg(target_os = "linux")]
pub fn enable_timestamps(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&on`.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!("SO_TIMESTAMPNS: {}", io::Error::last_os_error());
    }
}

impl Receiver {
    /// Reads what is queued on `socket`, up to [`RECV_BATCH`] datagrams,
    /// without blocking: `WouldBlock` when there is none. Returns how many
    /// were read; [`Receiver::datagrams`] lists them.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.got.clear();
        // Built per call, on the stack: the headers point into `self`'s
        // buffers, which must not move until the call returns.
        // SAFETY: zeroed iovec/mmsghdr values are valid (null, zero).
        let mut iovs: [libc::iovec; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let (bufs, names, controls) = (
            self.bufs.as_mut_ptr(),
            self.names.as_mut_ptr(),
            self.controls.as_mut_ptr(),
        );
        for (i, (iov, h)) in iovs.iter_mut().zip(headers.iter_mut()).enumerate() {
            *iov = libc::iovec {
                iov_base: bufs.wrapping_add(i * MAX_DATAGRAM).cast(),
                iov_len: MAX_DATAGRAM,
            };
            h.msg_hdr.msg_name = names.wrapping_add(i).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = controls.wrapping_add(i).cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<Control>() as _;
        }
        // SAFETY: every header points to live, correctly sized buffers of
        // `self` and to `iovs`, all of which outlive the call; the kernel
        // writes at most the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.clocks = (Instant::now(), SystemTime::now());
        let n = n as usize;
        for h in &headers[..n] {
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = if truncated { 0 } else { h.msg_len as usize };
            // SAFETY: the kernel filled `msg_name` with `msg_namelen`
            // bytes of a socket address.
            let from = unsafe { read_sockaddr(h.msg_hdr.msg_name.cast(), h.msg_hdr.msg_namelen) };
            // SAFETY: the kernel wrote `msg_controllen` bytes of control
            // messages into `msg_control`.
            let stamp = unsafe { read_stamp(&h.msg_hdr) };
            self.got.push((len, from, stamp));
        }
        Ok(n)
    }

    /// Elsewhere: one `recv_from` per call, stamped when read.
    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        let (len, from) = socket.recv_from(&mut self.bufs[..MAX_DATAGRAM])?;
        self.clocks = (Instant::now(), SystemTime::now());
        self.got.push((len.min(MAX_DATAGRAM), Some(from), None));
        Ok(1)
    }

    /// The datagrams of the last [`Receiver::recv`], in arrival order;
    /// truncated ones and ones from an unknown address family left out.
    pub fn datagrams(&self) -> impl Iterator<Item = Received<'_>> {
        let (now, wall) = self.clocks;
        self.got
            .iter()
            .enumerate()
            .filter_map(move |(i, (len, from, stamp))| {
                let from = (*len > 0).then_some(*from)??;
                let age = stamp
                    .and_then(|s| wall.duration_since(s).ok())
                    .filter(|a| *a < MAX_STAMP_AGE)
                    .unwrap_or_default();
                Some(Received {
                    from,
                    data: &self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len],
                    at: now.checked_sub(age).unwrap_or(now),
                })
            })
    }
}

#[cfg(target_os = "linux")]
/// # Safety
/// `name` points to `len` initialised bytes of a socket address.
unsafe fn read_sockaddr(
    name: *const libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    // SAFETY: the caller's; each cast is to a type the family names, no
    // larger than what the kernel wrote (checked).
    unsafe {
        match i32::from((*name).ss_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = &*name.cast::<libc::sockaddr_in>();
                Some(SocketAddr::V4(SocketAddrV4::new(
                    a.sin_addr.s_addr.to_ne_bytes().into(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let a = &*name.cast::<libc::sockaddr_in6>();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(target_os = "linux")]
/// # Safety
/// `h.msg_control` holds `h.msg_controllen` bytes of control messages.
unsafe fn read_stamp(h: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the caller's; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
    // `msg_controllen`, and a timestamp's data is a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let d = Duration::new(
                    u64::try_from(ts.tv_sec).ok()?,
                    u32::try_from(ts.tv_nsec).ok()?,
                );
                return SystemTime::UNIX_EPOCH.checked_add(d);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
pub fn enable_timestamps(_: &UdpSocket) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Turns stamping on for `socket` and waits until the kernel does:
    /// the first socket to ask switches it on for the whole machine in
    /// deferred work, and until then datagrams are stamped when read.
    fn stamping(socket: &UdpSocket) {
        enable_timestamps(socket);
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(&probe);
        let to = probe.local_addr().unwrap();
        let mut r = Receiver::default();
        for _ in 0..100 {
            probe.send_to(b"?", to).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            assert_eq!(r.recv(&probe).unwrap(), 1);
            let d = r.datagrams().next().unwrap();
            if Instant::now().duration_since(d.at) >= Duration::from_millis(5) {
                return;
            }
        }
        panic!("the kernel never stamped a datagram on arrival");
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        stamping(&rx);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (tx, rx)
    }

    /// Several datagrams come back from one call, in order, each with its
    /// sender and a stamp no later than the read; an empty socket says
    /// WouldBlock; a datagram too long for the buffer is dropped, not cut.
    #[test]
    fn one_call_reads_what_is_queued() {
        let (tx, rx) = pair();
        let before = Instant::now();
        for i in 0..5u8 {
            tx.send(&[i; 100]).unwrap();
        }
        tx.send(&[9; MAX_DATAGRAM + 1]).unwrap();
        tx.send(b"last").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut r = Receiver::default();
        assert_eq!(r.recv(&rx).unwrap(), 7);
        let got: Vec<_> = r.datagrams().collect();
        assert_eq!(got.len(), 6, "the long one is dropped");
        for (i, d) in got[..5].iter().enumerate() {
            assert_eq!(d.data, &[i as u8; 100][..]);
            assert_eq!(d.from, tx.local_addr().unwrap());
        }
        assert_eq!(got[5].data, b"last");
        // Stamped by the kernel when sent, about 20 ms before the read.
        let read_at = Instant::now();
        for d in &got {
            assert!(d.at >= before && d.at <= read_at);
            assert!(read_at.duration_since(d.at) >= Duration::from_millis(15));
        }
        let e = r.recv(&rx).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    /// More than a batch waits for the next call, none lost.
    #[test]
    fn a_long_queue_takes_several_calls() {
        let (tx, rx) = pair();
        for i in 0..(RECV_BATCH + 3) as u16 {
            tx.send(&i.to_be_bytes()).unwrap();
        }
        let mut r = Receiver::default();
        let mut seen = Vec::new();
        while let Ok(n) = r.recv(&rx) {
            assert!(n <= RECV_BATCH);
            seen.extend(
                r.datagrams()
                    .map(|d| u16::from_be_bytes([d.data[0], d.data[1]])),
            );
        }
        assert_eq!(seen, (0..(RECV_BATCH + 3) as u16).collect::<Vec<_>>());
    }

    /// Senders read as std's `recv_from` reads them: an IPv4 one on a
    /// dual-stack socket v4-mapped, an IPv6 one as it is.
    #[test]
    fn senders_read_as_std_reads_them() {
        for (bind, from) in [("[::]:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let rx = UdpSocket::bind(bind).unwrap();
            let port = rx.local_addr().unwrap().port();
            let tx = UdpSocket::bind(from).unwrap();
            let to = SocketAddr::new(tx.local_addr().unwrap().ip(), port);
            tx.send_to(b"a", to).unwrap();
            tx.send_to(b"b", to).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            let (_, std_from) = rx.recv_from(&mut [0; 8]).unwrap();
            let mut r = Receiver::default();
            assert_eq!(r.recv(&rx).unwrap(), 1);
            assert_eq!(
                r.datagrams().next().unwrap().from,
                std_from,
                "{bind} from {from}"
            );
        }
    }

    /// The server's sockets also ask for each datagram's destination
    /// address and traffic class (quinn-udp): the kernel's stamp must
    /// still fit beside them, over IPv4 and IPv6.
    #[test]
    fn the_stamp_fits_beside_the_other_control_messages() {
        use std::os::fd::AsRawFd;
        let rx = UdpSocket::bind("[::]:0").unwrap();
        stamping(&rx);
        for (level, name) in [
            (libc::IPPROTO_IP, libc::IP_PKTINFO),
            (libc::IPPROTO_IP, libc::IP_RECVTOS),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
        ] {
            let on: libc::c_int = 1;
            // SAFETY: setsockopt reads one c_int from `&on`.
            let r = unsafe {
                libc::setsockopt(
                    rx.as_raw_fd(),
                    level,
                    name,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "{level}/{name}: {}", io::Error::last_os_error());
        }
        let port = rx.local_addr().unwrap().port();
        for from in ["127.0.0.1:0", "[::1]:0"] {
            let tx = UdpSocket::bind(from).unwrap();
            tx.send_to(b"x", SocketAddr::new(tx.local_addr().unwrap().ip(), port))
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut r = Receiver::default();
            assert_eq!(r.recv(&rx).unwrap(), 1);
            let d = r.datagrams().next().unwrap();
            let waited = Instant::now().duration_since(d.at);
            assert!(
                waited >= Duration::from_millis(15),
                "{from}: stamp lost ({waited:?})"
            );
        }
    }
}
