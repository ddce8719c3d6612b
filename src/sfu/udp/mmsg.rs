//! `sendmmsg(2)` with a per-message `UDP_SEGMENT` (GSO) size. Neither
//! quinn-udp (one destination per call) nor nix (one control message for
//! every message in the call) can say "this message is one datagram to A,
//! that one is nine 1 200-byte datagrams to B" in a single system call, so
//! this builds the headers itself.

use super::{Run, Sent};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// `UDP_SEGMENT` and `UDP_GRO` from linux/udp.h (not exported by libc for
/// glibc targets).
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Turns UDP generic receive offload off on `fd`.
pub(super) fn disable_gro(fd: RawFd) {
    let off: libc::c_int = 0;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&off`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        // Kernels before 5.0 have no UDP_GRO, and so never coalesce.
        tracing::debug!("UDP_GRO off: {}", io::Error::last_os_error());
    }
}

/// Messages per `sendmmsg` call: the kernel caps one call at UIO_MAXIOV
/// (1024); smaller chunks keep the scratch space small.
const CHUNK: usize = 256;

/// Room for one control message carrying a `u16`, 8-byte aligned as
/// `cmsghdr` requires (CMSG_SPACE(2) is 24 on 64-bit Linux).
type Control = [u64; 4];

pub(super) fn send(fd: RawFd, ipv6: bool, buf: &[u8], runs: &[Run]) -> Sent {
    let mut sent = Sent::default();
    for chunk in runs.chunks(CHUNK) {
        send_chunk(fd, ipv6, buf, chunk, &mut sent);
    }
    sent
}

fn send_chunk(fd: RawFd, ipv6: bool, buf: &[u8], runs: &[Run], sent: &mut Sent) {
    let n = runs.len();
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut names: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; n];
    let mut name_lens: Vec<libc::socklen_t> = vec![0; n];
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(n);
    let mut controls: Vec<Control> = vec![[0; 4]; n];
    for (i, run) in runs.iter().enumerate() {
        name_lens[i] = write_sockaddr(&mut names[i], run.to, ipv6);
        let bytes = &buf[run.start..run.start + run.len];
        iovs.push(libc::iovec {
            // The kernel only reads through it (sendmmsg).
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        });
    }
    // Built after the vectors above are complete: the headers point into
    // them, and they must not move from here until the call returns.
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(n);
    for (i, run) in runs.iter().enumerate() {
        // SAFETY: zeroed msghdr/mmsghdr are valid (null pointers, zero
        // lengths); the pointers set below are to live, correctly sized
        // elements of `names`, `iovs` and `controls`.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // Element pointers come from each vector's base pointer, taken
        // once per element, so none invalidates another.
        h.msg_hdr.msg_name = names.as_mut_ptr().wrapping_add(i).cast();
        h.msg_hdr.msg_namelen = name_lens[i];
        h.msg_hdr.msg_iov = iovs.as_mut_ptr().wrapping_add(i);
        h.msg_hdr.msg_iovlen = 1;
        if let Some(segment) = run.segment {
            h.msg_hdr.msg_control = controls.as_mut_ptr().wrapping_add(i).cast();
            // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
            h.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
            // SAFETY: msg_control points to `controls[i]`, 32 bytes and
            // 8-byte aligned, which holds CMSG_SPACE(2) = 24 bytes; so
            // CMSG_FIRSTHDR is non-null and CMSG_DATA has 2 bytes of room.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
            }
        }
        headers.push(h);
    }
    let mut at = 0;
    while at < n {
        sent.calls += 1;
        // SAFETY: `headers[at..]` are valid mmsghdr values whose pointers
        // refer to memory that outlives this call (see above); the kernel
        // writes only their `msg_len` fields.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr().add(at),
                (n - at) as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        if r == 0 {
            // Not expected for a non-empty batch; never spin on it.
            for run in &runs[at..] {
                sent.datagrams += run.datagrams as u64;
                sent.dropped += run.datagrams as u64;
            }
            return;
        }
        if r > 0 {
            for run in &runs[at..at + r as usize] {
                sent.datagrams += run.datagrams as u64;
            }
            at += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                // The socket buffer is full: what is left is dropped now,
                // like a congested link would, rather than queued.
                for run in &runs[at..] {
                    sent.datagrams += run.datagrams as u64;
                    sent.dropped += run.datagrams as u64;
                }
                return;
            }
            _ => {
                // sendmmsg reports an error only for the first message it
                // could not send: skip that one and carry on.
                let run = &runs[at];
                at += 1;
                if let Some(size) = run.segment {
                    // The route or device refused GSO (EIO), or the run
                    // broke a limit: its datagrams go one by one instead.
                    if e.raw_os_error() == Some(libc::EIO) {
                        sent.gso_refused = true;
                    }
                    let singles: Vec<Run> = (0..run.len)
                        .step_by(usize::from(size).max(1))
                        .map(|off| Run {
                            to: run.to,
                            start: run.start + off,
                            len: usize::from(size).min(run.len - off),
                            segment: None,
                            datagrams: 1,
                        })
                        .collect();
                    send_chunk(fd, ipv6, buf, &singles, sent);
                    continue;
                }
                tracing::debug!(to = %run.to, "UDP send failed: {e}");
                sent.datagrams += run.datagrams as u64;
                sent.dropped += run.datagrams as u64;
            }
        }
    }
}

/// Fills `storage` with `to` for a socket of the given family (an IPv4
/// destination on an IPv6 socket is written v4-mapped) and returns its
/// length.
fn write_sockaddr(
    storage: &mut libc::sockaddr_storage,
    to: SocketAddr,
    ipv6: bool,
) -> libc::socklen_t {
    let v6 = match to {
        SocketAddr::V4(a) if !ipv6 => {
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            return std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        SocketAddr::V4(a) => std::net::SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => a,
    };
    // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
    let sin6 =
        unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_port = v6.port().to_be();
    sin6.sin6_flowinfo = v6.flowinfo();
    sin6.sin6_addr = libc::in6_addr {
        s6_addr: v6.ip().octets(),
    };
    sin6.sin6_scope_id = v6.scope_id();
    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn receiver() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    fn recv_all(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut b = [0u8; 2048];
        for _ in 0..n {
            let len = s.recv(&mut b).expect("a datagram");
            out.push(b[..len].to_vec());
        }
        out
    }

    /// One call carries single datagrams and GSO runs to different
    /// addresses, and each arrives cut where it should be.
    #[test]
    fn mixed_runs_to_many_addresses_arrive_intact() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, a_addr) = receiver();
        let (b, b_addr) = receiver();
        let mut buf = Vec::new();
        buf.extend(std::iter::repeat_n(1u8, 300));
        buf.extend(std::iter::repeat_n(2u8, 1000));
        buf.extend(std::iter::repeat_n(3u8, 1000));
        buf.extend(std::iter::repeat_n(4u8, 200));
        let runs = [
            Run {
                to: a_addr,
                start: 0,
                len: 300,
                segment: None,
                datagrams: 1,
            },
            Run {
                to: b_addr,
                start: 300,
                len: 2200,
                segment: Some(1000),
                datagrams: 3,
            },
        ];
        let sent = send(sender.as_raw_fd(), false, &buf, &runs);
        assert_eq!(sent.dropped, 0);
        assert_eq!(sent.datagrams, 4);
        assert_eq!(sent.calls, 1, "one system call for both addresses");
        assert_eq!(recv_all(&a, 1), vec![vec![1u8; 300]]);
        let got = recv_all(&b, 3);
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        // Without kernel GSO support the run would be refused, not
        // silently merged: this checks the segmenting itself.
        assert_eq!(lens, vec![1000, 1000, 200]);
        assert!(got[0].iter().all(|&x| x == 2) && got[2].iter().all(|&x| x == 4));
    }

    /// A run the kernel refuses (over the 64 KiB UDP limit) is sent as
    /// single datagrams instead of being lost.
    #[test]
    fn a_refused_gso_run_goes_out_datagram_by_datagram() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, a_addr) = receiver();
        let buf: Vec<u8> = (0..60 * 1222).map(|i| (i / 1222) as u8).collect();
        let runs = [Run {
            to: a_addr,
            start: 0,
            len: buf.len(),
            segment: Some(1222),
            datagrams: 60,
        }];
        let sent = send(sender.as_raw_fd(), false, &buf, &runs);
        assert_eq!(sent.dropped, 0);
        let got = recv_all(&a, 60);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), 1222);
            assert!(d.iter().all(|&x| x == i as u8), "datagram {i} in order");
        }
    }

    /// An unreachable destination fails alone; the messages after it
    /// still go out.
    #[test]
    fn a_failed_destination_does_not_stop_the_rest() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, a_addr) = receiver();
        let buf = vec![7u8; 100];
        let bad: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let runs = [
            Run {
                to: bad,
                start: 0,
                len: 50,
                segment: None,
                datagrams: 1,
            },
            Run {
                to: a_addr,
                start: 50,
                len: 50,
                segment: None,
                datagrams: 1,
            },
        ];
        let sent = send(sender.as_raw_fd(), false, &buf, &runs);
        assert_eq!(sent.dropped, 1);
        assert_eq!(recv_all(&a, 1), vec![vec![7u8; 50]]);
    }

    #[test]
    fn v4_destinations_are_mapped_on_a_v6_socket() {
        let Ok(sender) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 on this host: nothing to map
        };
        let (a, a_addr) = receiver();
        let buf = vec![9u8; 10];
        let runs = [Run {
            to: a_addr,
            start: 0,
            len: 10,
            segment: None,
            datagrams: 1,
        }];
        let sent = send(sender.as_raw_fd(), true, &buf, &runs);
        assert_eq!(sent.dropped, 0);
        assert_eq!(recv_all(&a, 1), vec![vec![9u8; 10]]);
    }
}
