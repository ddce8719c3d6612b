//! The cheap side of a crowd's viewer. SRTP encrypts only an RTP packet's
//! payload, so most viewers of a load run never decrypt: they read their
//! socket as a browser's would, with UDP GRO (a server's GSO run of one
//! frame is one read), count what came from the clear header, and send the
//! feedback a browser sends, built here and sealed by the viewer's own peer
//! connection: a receiver report each second and transport-wide congestion
//! control feedback every 100 ms. The server sees the same traffic either
//! way; a sample of the crowd still decrypts and decodes everything.

use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    SymbolTypeTcc, TransportLayerCc,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `UDP_GRO` from linux/udp.h (libc does not export it).
const UDP_GRO: libc::c_int = 104;
/// The most one read can return: a whole GSO run (a UDP datagram's limit).
pub const READ_BYTES: usize = 65_536;
/// As a browser at these rates (rtc's TWCC receiver's default too).
const TWCC_EVERY: Duration = Duration::from_millis(100);
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Arrivals kept between two feedback packets: a burst past this (seconds
/// of media in 100 ms) loses its oldest, as a browser's bounded history does.
const MAX_ARRIVALS: usize = 1024;
/// The most numbers one feedback covers (the server reads 4 096).
const MAX_SPAN: u16 = 4096;
/// The transport-cc header extension's URI, to find its id in the answer.
const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Asks the kernel to hand this socket coalesced datagrams (kernels before
/// 5.0 refuse, and then every datagram comes alone, which is also fine),
/// and to stamp each read with its arrival: a viewer's feedback must report
/// when a packet reached the host, not when a busy load generator got to
/// it, or the server reads the generator's lag as a queue on the path.
pub fn tune(socket: &tokio::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    for (level, name) in [
        (libc::SOL_UDP, UDP_GRO),
        (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
    ] {
        // SAFETY: a valid fd and a c_int option of the size given.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// One read: its length, sender, the size of the datagrams GRO joined into
/// it (None: one datagram), and when it arrived, in microseconds of the
/// system clock (the kernel's stamp, or now when there is none).
pub struct Read {
    pub len: usize,
    pub from: SocketAddr,
    pub segment: Option<usize>,
    pub arrived_us: i64,
}

/// Reads one message without waiting.
pub fn recv(socket: &tokio::net::UdpSocket, buf: &mut [u8]) -> std::io::Result<Read> {
    use std::os::fd::AsRawFd;
    socket.try_io(tokio::io::Interest::READABLE, || {
        // SAFETY: every pointer handed to recvmsg points into locals that
        // outlive the call, with the lengths given.
        unsafe {
            let mut from: libc::sockaddr_storage = std::mem::zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut control = [0u64; 16];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut segment = None;
            let mut arrived_us = None;
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
                if level == libc::SOL_UDP && kind == UDP_GRO {
                    let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    segment = usize::try_from(size).ok().filter(|s| *s > 0);
                } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                    let t = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    arrived_us = Some(t.tv_sec as i64 * 1_000_000 + t.tv_nsec as i64 / 1_000);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            Ok(Read {
                len: n as usize,
                from: socket_addr(&from)?,
                segment,
                arrived_us: arrived_us.unwrap_or_else(now_us),
            })
        }
    })
}

/// The system clock in microseconds, the unit of [`Read::arrived_us`].
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn socket_addr(s: &libc::sockaddr_storage) -> std::io::Result<SocketAddr> {
    // SAFETY: the family says which of the two the storage holds.
    unsafe {
        match libc::c_int::from(s.ss_family) {
            libc::AF_INET => {
                let a = &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Ok(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
            }
            libc::AF_INET6 => {
                let a = &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Ok(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
            }
            _ => Err(std::io::Error::other("not an IP sender")),
        }
    }
}

/// The datagrams of one read: GRO joins equal-size datagrams, the last
/// possibly shorter.
pub fn datagrams(read: &[u8], segment: Option<usize>) -> impl Iterator<Item = &[u8]> {
    read.chunks(segment.unwrap_or(read.len()).max(1))
}

/// What a viewer needs from an RTP packet's clear header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub payload_type: u8,
    pub seq: u16,
    pub marker: bool,
    pub ssrc: u32,
    /// Transport-wide sequence number, when the extension is there.
    pub twcc: Option<u16>,
    /// Bytes after the header: the encrypted payload and its tag.
    pub body: usize,
}

/// Parses an RTP packet's header (RFC 3550, extensions as RFC 8285's
/// one-byte form), or None for anything else (RTCP, STUN, DTLS, junk).
pub fn rtp_header(d: &[u8], twcc_id: Option<u8>) -> Option<Header> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let payload_type = d[1] & 0x7f;
    // RTCP's packet types 192-223 read as these (RFC 5761).
    if (64..96).contains(&payload_type) {
        return None;
    }
    let mut at = 12 + 4 * usize::from(d[0] & 0x0f);
    let mut twcc = None;
    if d[0] & 0x10 != 0 {
        let ext = d.get(at..at + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        let body = d.get(at + 4..at + 4 + 4 * words)?;
        if ext[..2] == [0xbe, 0xde] {
            twcc = twcc_id
                .and_then(|id| one_byte_extension(body, id))
                .filter(|v| v.len() >= 2)
                .map(|v| u16::from_be_bytes([v[0], v[1]]));
        }
        at += 4 + 4 * words;
    }
    Some(Header {
        payload_type,
        seq: u16::from_be_bytes([d[2], d[3]]),
        marker: d[1] & 0x80 != 0,
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        twcc,
        body: d.len().checked_sub(at)?,
    })
}

fn one_byte_extension(mut b: &[u8], want: u8) -> Option<&[u8]> {
    while let Some((&first, rest)) = b.split_first() {
        let (id, len) = (first >> 4, usize::from(first & 0x0f) + 1);
        match id {
            0 => b = rest,
            15 => return None,
            _ => {
                let value = rest.get(..len)?;
                if id == want {
                    return Some(value);
                }
                b = &rest[len..];
            }
        }
    }
    None
}

/// The transport-cc extension's id in an answer, if it agreed to one.
pub fn twcc_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse::<u8>().ok()?;
        (uri.trim() == TWCC_URI && (1..15).contains(&id)).then_some(id)
    })
}

/// One incoming stream's sequence, for its receiver report (RFC 3550 A.3).
#[derive(Debug, Default, Clone, Copy)]
struct Sequence {
    ssrc: u32,
    base: u32,
    highest: u32,
    received: u32,
    started: bool,
}

impl Sequence {
    fn packet(&mut self, ssrc: u32, seq: u16) {
        if !self.started || ssrc != self.ssrc {
            *self = Sequence {
                ssrc,
                base: u32::from(seq),
                highest: u32::from(seq),
                received: 0,
                started: true,
            };
        }
        let last = self.highest as u16;
        let ahead = seq.wrapping_sub(last);
        if ahead != 0 && ahead < 0x8000 {
            let cycles = self.highest & 0xffff_0000;
            let wrapped = u32::from(seq < last) << 16;
            self.highest = (cycles + wrapped) | u32::from(seq);
        }
        self.received = self.received.wrapping_add(1);
    }

    fn report(&self) -> ReceptionReport {
        let expected = self.highest.wrapping_sub(self.base).wrapping_add(1);
        let lost = expected.saturating_sub(self.received).min(0x7f_ffff);
        ReceptionReport {
            ssrc: self.ssrc,
            total_lost: lost,
            last_sequence_number: self.highest,
            ..Default::default()
        }
    }
}

/// A viewer's feedback, kept from clear headers.
pub struct Feedback {
    /// (transport-wide number, arrival in us) since the last feedback.
    arrivals: Vec<(u16, i64)>,
    /// The number the next feedback starts at: one past the last one's
    /// highest, so a loss across two feedback packets is still reported.
    next_base: Option<u16>,
    media_ssrc: u32,
    count: u8,
    streams: [Sequence; 2],
    next_twcc: Instant,
    next_report: Instant,
}

impl Feedback {
    pub fn new(now: Instant) -> Feedback {
        Feedback {
            arrivals: Vec::new(),
            next_base: None,
            media_ssrc: 0,
            count: 0,
            streams: [Sequence::default(); 2],
            next_twcc: now + TWCC_EVERY,
            next_report: now + REPORT_EVERY,
        }
    }

    /// One media packet's arrival (`slot`: 0 audio, 1 video), at
    /// `arrived_us` ([`Read::arrived_us`]).
    pub fn packet(&mut self, arrived_us: i64, slot: usize, h: &Header) {
        self.streams[slot % 2].packet(h.ssrc, h.seq);
        if slot == 1 {
            self.media_ssrc = h.ssrc;
        }
        if let Some(seq) = h.twcc {
            if self.arrivals.len() == MAX_ARRIVALS {
                self.arrivals.remove(0);
            }
            self.arrivals.push((seq, arrived_us));
        }
    }

    /// When [`Feedback::due`] next has something to send.
    pub fn next(&self) -> Instant {
        self.next_twcc.min(self.next_report)
    }

    /// The RTCP due by `now`, if any.
    pub fn due(&mut self, now: Instant) -> Vec<Box<dyn rtc::rtcp::Packet>> {
        let mut out: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::new();
        if now >= self.next_twcc {
            self.next_twcc = now + TWCC_EVERY;
            if let Some(fb) = self.transport_cc() {
                out.push(Box::new(fb));
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_EVERY;
            let reports: Vec<_> = self
                .streams
                .iter()
                .filter(|s| s.started)
                .map(Sequence::report)
                .collect();
            if !reports.is_empty() {
                out.push(Box::new(ReceiverReport {
                    ssrc: 1,
                    reports,
                    ..Default::default()
                }));
            }
        }
        out
    }

    /// Transport-wide feedback for what arrived since the last one: every
    /// number from one past the last feedback's highest (the lowest that
    /// arrived, the first time) to the highest now, received or not, in
    /// two-bit status vectors, each received one with its arrival delta.
    /// One that arrives after a feedback already reported it lost stays
    /// lost, as in a browser.
    fn transport_cc(&mut self) -> Option<TransportLayerCc> {
        let mut arrivals = std::mem::take(&mut self.arrivals);
        let &(first, _) = arrivals.first()?;
        // Order by signed distance from the first across the 16-bit wrap:
        // a packet overtaken by a later one sorts before it.
        arrivals.sort_by_key(|(seq, _)| seq.wrapping_sub(first) as i16);
        arrivals.dedup_by_key(|(seq, _)| *seq);
        let highest = arrivals.last()?.0;
        let lowest = arrivals[0].0;
        let mut base = self.next_base.unwrap_or(lowest);
        let ahead = highest.wrapping_sub(base) as i16;
        if ahead < 0 {
            // Only late ones, all reported already.
            return None;
        }
        // Never more than the server reads: after a long gap, the
        // feedback starts near the highest.
        if ahead >= MAX_SPAN as i16 {
            base = highest.wrapping_sub(MAX_SPAN - 1);
        }
        arrivals.retain(|(seq, _)| seq.wrapping_sub(base) as i16 >= 0);
        self.next_base = Some(highest.wrapping_add(1));
        let span = usize::from(highest.wrapping_sub(base)) + 1;
        // 24-bit reference time in 64 ms units; deltas count from it.
        let reference = arrivals[0].1.div_euclid(64_000);
        let mut at = reference * 64_000;
        let (mut symbols, mut deltas) = (Vec::with_capacity(span), Vec::new());
        let mut next = arrivals.iter().peekable();
        debug_assert!(span <= usize::from(MAX_SPAN));
        for i in 0..span {
            let seq = base.wrapping_add(i as u16);
            match next.next_if(|(s, _)| *s == seq) {
                Some(&(_, us)) => {
                    let delta = (us - at) / 250 * 250;
                    at += delta;
                    let small = (0..=255 * 250).contains(&delta);
                    let symbol = if small {
                        SymbolTypeTcc::PacketReceivedSmallDelta
                    } else {
                        SymbolTypeTcc::PacketReceivedLargeDelta
                    };
                    symbols.push(symbol);
                    deltas.push(RecvDelta {
                        type_tcc_packet: symbol,
                        delta,
                    });
                }
                None => symbols.push(SymbolTypeTcc::PacketNotReceived),
            }
        }
        let packet_chunks = symbols
            .chunks(7)
            .map(|c| {
                let mut symbol_list = c.to_vec();
                symbol_list.resize(7, SymbolTypeTcc::PacketNotReceived);
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::TwoBit,
                    symbol_list,
                })
            })
            .collect();
        self.count = self.count.wrapping_add(1);
        self.arrivals = arrivals;
        self.arrivals.clear();
        Some(TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: self.media_ssrc,
            base_sequence_number: base,
            packet_status_count: span as u16,
            reference_time: (reference & 0xff_ffff) as u32,
            fb_pkt_count: self.count.wrapping_sub(1),
            packet_chunks,
            recv_deltas: deltas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::Unmarshal;

    fn packet(seq: u16, twcc: Option<(u8, u16)>, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, 102 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef]);
        if let Some((id, n)) = twcc {
            p[0] |= 0x10;
            // A padding byte and another element first, as senders may.
            p.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x10, 7, 0]);
            p.push(id << 4 | 1);
            p.extend_from_slice(&n.to_be_bytes());
            p.extend_from_slice(&[0, 0]);
        }
        p.extend_from_slice(&[1; 100]);
        p
    }

    #[test]
    fn the_clear_header_gives_sequence_marker_and_transport_number() {
        let h = rtp_header(&packet(65_535, Some((3, 4_321)), true), Some(3)).unwrap();
        assert_eq!(
            h,
            Header {
                payload_type: 102,
                seq: 65_535,
                marker: true,
                ssrc: 0xdead_beef,
                twcc: Some(4_321),
                body: 100,
            }
        );
        let other_id = rtp_header(&packet(1, Some((3, 9)), false), Some(4)).unwrap();
        assert_eq!(other_id.twcc, None);
        // Media with extensions is still media when no id was agreed.
        let none_agreed = rtp_header(&packet(1, Some((3, 9)), false), None).unwrap();
        assert_eq!((none_agreed.twcc, none_agreed.body), (None, 100));
        // RTCP (a receiver report) and STUN are not media.
        assert_eq!(
            rtp_header(&[0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0], None),
            None
        );
        assert_eq!(
            rtp_header(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0], None),
            None
        );
        // An extension running past the datagram is refused, not read.
        let mut cut = packet(1, Some((3, 9)), false);
        cut.truncate(18);
        assert_eq!(rtp_header(&cut, Some(3)), None);
    }

    #[test]
    fn the_answers_transport_cc_id_is_found() {
        let sdp = "v=0\r\na=extmap:2 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n";
        assert_eq!(twcc_id(sdp), Some(5));
        assert_eq!(twcc_id("v=0\r\n"), None);
    }

    fn arrive(fb: &mut Feedback, numbers: &[(u16, i64)]) {
        for &(n, ms) in numbers {
            let h = rtp_header(&packet(n, Some((3, n)), false), Some(3)).unwrap();
            fb.packet(ms * 1_000, 1, &h);
        }
    }

    /// The feedback due at `at`, parsed back as the server would.
    fn sent(fb: &mut Feedback, at: Instant) -> Option<TransportLayerCc> {
        let out = fb.due(at);
        let wire = out.first()?.marshal().unwrap();
        Some(TransportLayerCc::unmarshal(&mut &wire[..]).unwrap())
    }

    fn received(fb: &TransportLayerCc) -> Vec<bool> {
        let mut got = Vec::new();
        for c in &fb.packet_chunks {
            match c {
                PacketStatusChunk::StatusVectorChunk(v) => got.extend(
                    v.symbol_list
                        .iter()
                        .map(|s| *s != SymbolTypeTcc::PacketNotReceived),
                ),
                PacketStatusChunk::RunLengthChunk(r) => got.extend(std::iter::repeat_n(
                    r.packet_status_symbol != SymbolTypeTcc::PacketNotReceived,
                    usize::from(r.run_length),
                )),
            }
        }
        got.truncate(usize::from(fb.packet_status_count));
        got
    }

    #[test]
    fn feedback_reads_back_as_what_arrived() {
        let t0 = Instant::now();
        let mut fb = Feedback::new(t0);
        // 65 534, 65 535, (0 lost), 1 across the wrap; 65 535 overtaken.
        arrive(&mut fb, &[(65_534, 10), (1, 14), (65_535, 12)]);
        let back = sent(&mut fb, t0 + TWCC_EVERY).unwrap();
        assert_eq!(back.base_sequence_number, 65_534);
        assert_eq!(back.packet_status_count, 4);
        assert_eq!(received(&back), vec![true, true, false, true]);
        let got: Vec<i64> = back.recv_deltas.iter().map(|d| d.delta).collect();
        assert_eq!(got, vec![10_000, 2_000, 2_000]);
        // Nothing new: no feedback; a second later, the receiver report.
        assert!(fb.due(t0 + 2 * TWCC_EVERY).is_empty());
        let rr = fb.due(t0 + REPORT_EVERY);
        let rr = rr[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .expect("a receiver report");
        // Highest 1 after one wrap; 4 expected, 3 received.
        assert_eq!(rr.reports[0].last_sequence_number, 0x1_0001);
        assert_eq!(rr.reports[0].total_lost, 1);
    }

    #[test]
    fn a_packet_overtaken_by_the_next_is_reported_in_order() {
        let t0 = Instant::now();
        let mut fb = Feedback::new(t0);
        // The first to arrive is 101; 100 comes 1 ms later.
        arrive(&mut fb, &[(101, 5), (100, 6), (102, 7)]);
        let back = sent(&mut fb, t0 + TWCC_EVERY).unwrap();
        assert_eq!(back.base_sequence_number, 100);
        assert_eq!(back.packet_status_count, 3);
        assert_eq!(received(&back), vec![true, true, true]);
        // 100 at 6 ms, 101 a millisecond earlier, 102 two later.
        let got: Vec<i64> = back.recv_deltas.iter().map(|d| d.delta).collect();
        assert_eq!(got, vec![6_000, -1_000, 2_000]);
    }

    #[test]
    fn a_loss_between_two_feedback_packets_is_reported() {
        let t0 = Instant::now();
        let mut fb = Feedback::new(t0);
        arrive(&mut fb, &[(1, 1), (2, 2), (3, 3)]);
        sent(&mut fb, t0 + TWCC_EVERY).unwrap();
        // 4 and 5 never come.
        arrive(&mut fb, &[(6, 101), (7, 102)]);
        let back = sent(&mut fb, t0 + 2 * TWCC_EVERY).unwrap();
        assert_eq!(back.base_sequence_number, 4);
        assert_eq!(received(&back), vec![false, false, true, true]);
        // 5 turns up late, after it was reported lost: nothing to say.
        arrive(&mut fb, &[(5, 150)]);
        assert!(sent(&mut fb, t0 + 3 * TWCC_EVERY).is_none());
        // And the next feedback goes on from 8, not from 5.
        arrive(&mut fb, &[(8, 250)]);
        let back = sent(&mut fb, t0 + 4 * TWCC_EVERY).unwrap();
        assert_eq!(back.base_sequence_number, 8);
        assert_eq!(back.packet_status_count, 1);
    }

    #[test]
    fn one_feedback_covers_at_most_what_the_server_reads() {
        let t0 = Instant::now();
        let mut fb = Feedback::new(t0);
        arrive(&mut fb, &[(0, 1)]);
        sent(&mut fb, t0 + TWCC_EVERY).unwrap();
        arrive(&mut fb, &[(10_000, 101)]);
        let back = sent(&mut fb, t0 + 2 * TWCC_EVERY).unwrap();
        assert_eq!(back.packet_status_count, MAX_SPAN);
        assert_eq!(back.base_sequence_number, 10_000 - (MAX_SPAN - 1));
    }

    #[test]
    fn gro_reads_split_into_their_datagrams() {
        let read = [1u8; 2_500];
        let sizes: Vec<usize> = datagrams(&read, Some(1_200)).map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![1_200, 1_200, 100]);
        assert_eq!(datagrams(&read, None).count(), 1);
    }
}
