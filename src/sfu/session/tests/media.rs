//! A connected viewer's media sender (fast start, NACK, congestion steps,
//! keyframe gating) against rtc's peer as the viewer, over an in-memory
//! link that can lose, delay and reorder, on a simulated clock.

use super::*;

/// A viewer's peer on a connected session, its media going out through an
/// ICE-TCP connection we can read, and what that viewer decrypts of it.
struct Watched {
    pc: RTCPeerConnection,
    now: Instant,
    out: crate::sfu::udp::Batcher,
    tcp: std::collections::HashMap<SocketAddr, crate::sfu::tcp::FrameSender>,
    sent: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    scratch: Vec<u8>,
}

impl Watched {
    async fn new() -> (Watched, crate::sfu::peer::Peer) {
        use crate::sfu::peer::{Conn, Lean, Peer, Sender};
        let Wire { pc, s, now, .. } = connect();
        let video = s.video.as_ref().map(|t| Sender {
            id: None,
            ssrc: t.ssrc,
            payload_type: t.payload_type,
        });
        let mut lean = Lean::new(s);
        let (server, viewer): (SocketAddr, SocketAddr) =
            (SERVER.parse().unwrap(), VIEWER.parse().unwrap());
        assert_eq!(lean.learn(viewer, server), None);
        let mut peer = Peer::new(
            1,
            "demo".into(),
            "u".into(),
            Conn::Lean(Box::new(lean)),
            now,
        );
        peer.video = video;
        peer.video_codec = Some(VideoCodec::H264);
        peer.connected = true;
        let socket = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        socket.set_nonblocking(true).unwrap();
        let out = crate::sfu::udp::Batcher::new(&[(server, socket)]).unwrap();
        let (tx, sent) = tokio::sync::mpsc::channel(1024);
        let tcp = [(viewer, tx)].into_iter().collect();
        let w = Watched {
            pc,
            now,
            out,
            tcp,
            sent,
            scratch: Vec::new(),
        };
        (w, peer)
    }

    fn wire(&mut self) -> crate::sfu::transport::Wire<'_> {
        crate::sfu::transport::Wire {
            out: &mut self.out,
            tcp: &mut self.tcp,
            scratch: &mut self.scratch,
        }
    }

    /// One datagram of ours, read by the viewer.
    fn feed_viewer(&mut self, d: &[u8]) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now: self.now,
            transport: TransportContext {
                local_addr: VIEWER.parse().unwrap(),
                peer_addr: SERVER.parse().unwrap(),
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(d),
        });
    }

    /// What reached the viewer since the last call: (sequence, timestamp).
    fn received(&mut self) -> Vec<(u16, u32)> {
        let mut got = Vec::new();
        while let Ok(d) = self.sent.try_recv() {
            self.feed_viewer(&d);
            while let Some(m) = self.pc.poll_read() {
                if let RTCMessage::RtpPacket(_, p) = m.message {
                    got.push((p.header.sequence_number, p.header.timestamp));
                }
            }
        }
        got
    }
}

/// `frames` frames of `per_frame` 1 000-byte packets, numbered from `seq`.
fn gop(seq: u16, frames: u32, per_frame: u16) -> Vec<rtc::rtp::packet::Packet> {
    (0..frames as u16 * per_frame)
        .map(|i| {
            let mut p = rtc::rtp::packet::Packet::default();
            p.header.sequence_number = seq + i;
            p.header.timestamp = 1000 + 3000 * u32::from(i / per_frame);
            p.header.marker = i % per_frame == per_frame - 1;
            p.payload = Bytes::from(vec![0x41u8; 1000]);
            p
        })
        .collect()
}

/// A joining viewer's GOP goes out 5 KB per 2 ms tick, not in one burst;
/// live video that comes meanwhile waits in the GOP and follows it in
/// order; the viewer decrypts one unbroken run of numbers with the GOP's
/// frames squeezed to one tick apart before the live frame.
#[tokio::test]
async fn fast_start_is_paced_and_live_video_follows_it_in_order() {
    let (mut w, mut p) = Watched::new().await;
    let mut g = gop(100, 4, 5);
    let mut now = w.now;
    p.fast_start(&g, 7, now, &mut w.wire());
    let first = w.received();
    assert_eq!(first.len(), 5, "one 5 KB slice at once: {first:?}");
    assert_eq!(
        p.catch_up_at(),
        Some(now + std::time::Duration::from_millis(2))
    );

    // Live video while the GOP is going out: into the GOP, not to the wire.
    let mut live = gop(120, 1, 1);
    live[0].header.timestamp = 13_000;
    g.extend(live.iter().cloned());
    assert_eq!(
        p.send_media(MediaKind::Video, false, &live, now, 7, &mut w.wire()),
        (0, 0)
    );
    assert!(w.received().is_empty());

    let mut all = first;
    let mut slices = 1;
    while p.catch_up_at().is_some() {
        // Not before its tick.
        p.catch_up(&g, 7, now, &mut w.wire());
        assert!(w.received().is_empty(), "a slice before its tick");
        now += std::time::Duration::from_millis(2);
        p.catch_up(&g, 7, now, &mut w.wire());
        all.extend(w.received());
        slices += 1;
    }
    assert_eq!(slices, 5, "21 packets of 1 000 bytes, 5 a slice");
    let seqs: Vec<u16> = all.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|x| x[1] == x[0].wrapping_add(1)),
        "one unbroken run: {seqs:?}"
    );
    let ts: Vec<u32> = all.iter().map(|(_, t)| *t).collect();
    assert_eq!(&ts[..5], &[9997; 5], "the keyframe, squeezed");
    assert_eq!(&ts[15..20], &[10_000; 5], "the GOP's last frame");
    assert_eq!(ts[20], 13_000, "then the live frame, as it was");

    // Done: live video goes straight out again.
    let next = gop(121, 1, 1);
    assert_eq!(
        p.send_media(MediaKind::Video, false, &next, now, 7, &mut w.wire())
            .0,
        1
    );
    assert_eq!(w.received().len(), 1);
}

/// A keyframe that starts a new GOP under a fast start cuts it: the rest
/// of the old GOP is never sent, the keyframe goes out at once, and the
/// viewer's numbers stay unbroken.
#[tokio::test]
async fn a_new_keyframe_cuts_a_fast_start_short() {
    let (mut w, mut p) = Watched::new().await;
    let g = gop(100, 4, 5);
    p.fast_start(&g, 7, w.now, &mut w.wire());
    let mut got = w.received();
    assert_eq!(got.len(), 5);
    let key = gop(120, 1, 3);
    assert_eq!(
        p.send_media(MediaKind::Video, true, &key, w.now, 8, &mut w.wire())
            .0,
        3
    );
    assert!(p.catch_up_at().is_none());
    got.extend(w.received());
    let seqs: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), 8);
    assert!(
        seqs.windows(2).all(|x| x[1] == x[0].wrapping_add(1)),
        "one unbroken run: {seqs:?}"
    );
}

/// A lossy, jittery link on a simulated clock: each datagram is lost with
/// probability `loss` %, or held back for one to three turns with
/// probability `late` %, from a fixed seed.
struct Link {
    rng: u64,
    loss: u64,
    late: u64,
    held: Vec<(u32, Vec<u8>)>,
}

impl Link {
    fn roll(&mut self, percent: u64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100 < percent
    }

    /// What of `sent` arrives at `turn`, with what was held for it.
    fn pass(&mut self, turn: u32, sent: Vec<Vec<u8>>, lossless: bool) -> Vec<Vec<u8>> {
        let mut now = Vec::new();
        for d in sent {
            if !lossless && self.roll(self.loss) {
                continue;
            }
            if !lossless && self.roll(self.late) {
                let wait = 1 + (self.rng % 3) as u32;
                self.held.push((turn + wait, d));
            } else {
                now.push(d);
            }
        }
        let (due, later) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(at, _)| *at <= turn);
        self.held = later;
        now.extend(due.into_iter().map(|(_, d)| d));
        now
    }
}

/// What the viewer wrote (its RTCP, sealed by its SRTCP), read by our
/// session and judged as the driver judges it: one outcome per compound
/// packet.
fn read_viewer_rtcp(
    w: &mut Watched,
    p: &mut crate::sfu::peer::Peer,
    now: Instant,
) -> Vec<crate::sfu::feedback::Outcome> {
    let viewer: SocketAddr = VIEWER.parse().unwrap();
    let media_ssrc = p.video.map(|v| v.ssrc);
    let crate::sfu::peer::Conn::Lean(lean) = &mut p.conn else {
        unreachable!("a lean peer")
    };
    while let Some(out) = w.pc.poll_write() {
        let mut d = out.message.to_vec();
        lean.handle(now, viewer, &mut d);
    }
    let mut outcomes = Vec::new();
    while let Some(ev) = lean.session.poll_event() {
        if let Event::Rtcp(packets) = ev {
            outcomes.push(crate::sfu::feedback::on_viewer_rtcp(
                &mut p.congestion,
                &mut p.twcc,
                media_ssrc,
                &packets,
                0.0,
                now,
            ));
        }
    }
    outcomes
}

/// NACK over a bad link, on a simulated clock and no sockets: 210 packets
/// go to a viewer through 15 % loss and 20 % reordering (a packet held
/// back up to three packets' time, as jitter does), and resends cross the
/// same link. The viewer (rtc's peer, decrypting) NACKs what it misses
/// every 20 ms, as browsers do, through its own SRTCP. It ends with every
/// packet, and each is the payload first sent under its number: a resend
/// is the original, sealed again under its original index.
#[tokio::test]
async fn nack_recovers_loss_and_reordering_on_a_simulated_clock() {
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
        nack_pairs_from_sequence_numbers, TransportLayerNack,
    };
    const PACKETS: u16 = 210;
    let (mut w, mut p) = Watched::new().await;
    let media_ssrc = p.video.unwrap().ssrc;
    let receiver = w.pc.get_receivers().next().expect("a receiver");
    let mut history: Box<crate::sfu::retransmit::History> = Box::default();
    let mut link = Link {
        rng: 0x9e37_79b9_7f4a_7c15,
        loss: 15,
        late: 20,
        held: Vec::new(),
    };
    // What the viewer decrypted: its sequence number -> our packet index.
    let mut got: std::collections::HashMap<u16, u16> = Default::default();
    let (mut resent, mut nacks) = (0u64, 0u32);
    // Every datagram sent, and how many were sent again byte for byte.
    let mut datagrams: std::collections::HashSet<Vec<u8>> = Default::default();
    let mut repeated = 0u64;
    let mut now = w.now;
    for turn in 0..PACKETS as u32 + 60 {
        now += std::time::Duration::from_millis(10);
        w.now = now;
        if turn < u32::from(PACKETS) {
            let i = turn as u16;
            {
                let mut pkt = rtc::rtp::packet::Packet::default();
                pkt.header.sequence_number = 5000u16.wrapping_add(i);
                pkt.header.timestamp = 3000 * u32::from(i);
                pkt.header.marker = true;
                let mut payload = vec![0x41u8; 200];
                payload[1..3].copy_from_slice(&i.to_be_bytes());
                pkt.payload = Bytes::from(payload);
                history.push(&pkt);
                let sent = p.send_media(MediaKind::Video, i == 0, &[pkt], now, 1, &mut w.wire());
                assert_eq!(sent.0, 1, "packet {i} went out");
            }
        }
        // The first and last ten packets pass: a receiver can only miss
        // what lies between two it got.
        let lossless = turn < 10 || turn >= u32::from(PACKETS) - 10;
        let sent = std::iter::from_fn(|| w.sent.try_recv().ok()).map(|d| d.to_vec());
        let sent: Vec<Vec<u8>> = sent.collect();
        for d in &sent {
            // SRTP leaves the header clear: each copy carries its
            // transport-wide number (the viewer offered TWCC).
            assert!(d[0] & 0x10 != 0, "a TWCC header extension");
            if !datagrams.insert(d.clone()) {
                repeated += 1;
            }
        }
        for d in link.pass(turn, sent, lossless) {
            w.feed_viewer(&d);
            while let Some(m) = w.pc.poll_read() {
                if let RTCMessage::RtpPacket(_, r) = m.message {
                    let i = u16::from_be_bytes([r.payload[1], r.payload[2]]);
                    let before = got.insert(r.header.sequence_number, i);
                    assert!(
                        before.is_none_or(|b| b == i),
                        "two payloads under one number"
                    );
                }
            }
        }
        if turn % 2 == 1 {
            // The viewer's NACK: the gaps below the highest number it has.
            let (Some(lo), Some(hi)) = (got.keys().min(), got.keys().max()) else {
                continue;
            };
            let missing: Vec<u16> = (*lo..*hi).filter(|s| !got.contains_key(s)).collect();
            if missing.is_empty() {
                continue;
            }
            nacks += 1;
            let nack = TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&missing),
            };
            let mut r = w.pc.rtp_receiver(receiver).expect("the receiver");
            r.write_rtcp(now, vec![Box::new(nack)]).unwrap();
            let asked: Vec<u16> = read_viewer_rtcp(&mut w, &mut p, now)
                .into_iter()
                .flat_map(|o| o.nacked)
                .collect();
            assert!(!asked.is_empty(), "the viewer's NACK reached us");
            resent += p.resend(&history, &asked, now, &mut w.wire());
        }
    }
    // Every packet, each under one number that is its place in the run.
    let mut by_index: Vec<(u16, u16)> = got.iter().map(|(s, i)| (*i, *s)).collect();
    by_index.sort();
    let indexes: Vec<u16> = by_index.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        indexes,
        (0..PACKETS).collect::<Vec<_>>(),
        "every packet arrived"
    );
    let base = by_index[0].1;
    assert!(
        by_index.iter().all(|(i, s)| *s == base.wrapping_add(*i)),
        "numbered in order"
    );
    assert!(
        nacks > 5 && resent > 20,
        "the link lost enough to test: {nacks} NACKs, {resent} resends"
    );
    // A resend is its first sending's bytes, TWCC number and all: the
    // same plaintext under the same SRTP index.
    assert_eq!(repeated, resent, "every resend repeats a datagram exactly");
}

/// Congestion steps and keyframe gating on a simulated clock, driven by
/// the viewer's own receiver reports (rtc's peer, through SRTCP): 20 %
/// loss on the link steps the viewer down to keyframes only; while there
/// it gets keyframes and nothing else; once the link is clean for
/// `UPGRADE_AFTER` it steps back up and resumes at a keyframe. Frames it
/// was never sent take no sequence numbers, so on the clean link what it
/// gets is one unbroken run: it has nothing to NACK.
#[tokio::test]
async fn loss_steps_a_viewer_down_to_keyframes_and_a_clean_link_back_up() {
    use crate::sfu::congestion::{Level, UPGRADE_AFTER};
    let (mut w, mut p) = Watched::new().await;
    let mut link = Link {
        rng: 0x2545_f491_4f6c_dd1d,
        loss: 20,
        late: 0,
        held: Vec::new(),
    };
    let frame_time = std::time::Duration::from_millis(33);
    let mut now = w.now;
    // (frame, level it changed to), and what the viewer got: (its
    // sequence number, frame, keyframe) while the link was clean.
    let mut changes: Vec<(u32, Level)> = Vec::new();
    let mut clean: Vec<(u16, u32, bool)> = Vec::new();
    let mut lossy = true;
    for f in 0..900u32 {
        now += frame_time;
        w.now = now;
        let key = f % 30 == 0;
        let packets: Vec<rtc::rtp::packet::Packet> = (0..2u16)
            .map(|k| {
                let mut pkt = rtc::rtp::packet::Packet::default();
                pkt.header.sequence_number = 100u16.wrapping_add((2 * f) as u16 + k);
                pkt.header.timestamp = 3000 * f;
                pkt.header.marker = k == 1;
                let mut payload = vec![if key { 0x65 } else { 0x41 }; 300];
                payload[1..5].copy_from_slice(&f.to_be_bytes());
                pkt.payload = Bytes::from(payload);
                pkt
            })
            .collect();
        p.send_media(MediaKind::Video, key, &packets, now, 1, &mut w.wire());
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| w.sent.try_recv().ok())
            .map(|d| d.to_vec())
            .collect();
        for d in link.pass(f, sent, !lossy) {
            w.feed_viewer(&d);
            while let Some(m) = w.pc.poll_read() {
                if let RTCMessage::RtpPacket(_, r) = m.message {
                    let frame = u32::from_be_bytes(r.payload[1..5].try_into().unwrap());
                    if !lossy {
                        clean.push((r.header.sequence_number, frame, r.payload[0] == 0x65));
                    }
                }
            }
        }
        // The viewer's reports, read as the driver reads them.
        let _ = w.pc.handle_timeout(now);
        let level = read_viewer_rtcp(&mut w, &mut p, now)
            .into_iter()
            .find_map(|o| o.level);
        if let Some(l) = level {
            changes.push((f, l));
            if l != Level::AudioOnly {
                p.wait_for_keyframe(now);
            }
            if l == Level::KeyframesOnly {
                // The link recovers the moment the viewer steps down.
                lossy = false;
            }
        }
        if changes
            .last()
            .is_some_and(|(at, l)| *l == Level::Full && f > at + 60)
        {
            break;
        }
    }
    let levels: Vec<Level> = changes.iter().map(|(_, l)| *l).collect();
    assert_eq!(
        levels,
        [Level::KeyframesOnly, Level::Full],
        "down on loss, up on a clean link: {changes:?}"
    );
    let (down, up) = (changes[0].0, changes[1].0);
    assert!(down < 150, "two bad report windows step down: frame {down}");
    let clean_for = frame_time * (up - down);
    assert!(
        clean_for >= UPGRADE_AFTER,
        "up only after {UPGRADE_AFTER:?} clean: {clean_for:?}"
    );
    // Keyframes only while stepped down; at the step up, the next
    // keyframe first, then every frame.
    let between: Vec<&(u16, u32, bool)> = clean.iter().filter(|(_, f, _)| *f < up).collect();
    assert!(
        !between.is_empty(),
        "keyframes still came while stepped down"
    );
    assert!(
        between.iter().all(|(_, f, key)| *key && f % 30 == 0),
        "nothing but keyframes while stepped down"
    );
    let after: Vec<u32> = clean
        .iter()
        .filter(|(_, f, _)| *f >= up)
        .map(|(_, f, _)| *f)
        .collect();
    let resume = after[0];
    assert_eq!(resume % 30, 0, "resumed at a keyframe");
    let mut frames = after.clone();
    frames.dedup();
    assert_eq!(
        frames,
        (resume..=*after.last().unwrap()).collect::<Vec<_>>()
    );
    // One unbroken run of numbers on the clean link.
    assert!(
        clean.windows(2).all(|x| x[1].0 == x[0].0.wrapping_add(1)),
        "skipped frames took no numbers"
    );
}

/// A viewer whose address keeps changing keeps at most
/// `MAX_ADDRS_PER_PEER`, and the one its media goes to is never the one
/// forgotten.
#[test]
fn a_viewer_forgets_old_addresses_but_not_the_one_media_takes() {
    use crate::sfu::peer::{Lean, MAX_ADDRS_PER_PEER};
    let Wire { s, .. } = connect();
    let mut lean = Lean::new(s);
    let (server, viewer): (SocketAddr, SocketAddr) =
        (SERVER.parse().unwrap(), VIEWER.parse().unwrap());
    assert_eq!(lean.learn(viewer, server), None);
    assert_eq!(lean.route(), Some((server, viewer)));
    let other = |i: u16| SocketAddr::from(([198, 51, 100, 7], 4000 + i));
    for i in 1..MAX_ADDRS_PER_PEER as u16 {
        assert_eq!(lean.learn(other(i), server), None);
    }
    for i in MAX_ADDRS_PER_PEER as u16..40 {
        let gone = lean.learn(other(i), server);
        assert_eq!(gone, Some(other(i + 1 - MAX_ADDRS_PER_PEER as u16)));
        assert_eq!(lean.route(), Some((server, viewer)));
        assert_eq!(lean.local_for(other(i)), Some(server));
    }
}

/// A viewer that nominates another of its paths (a network change, a
/// relay) moves its media there, and its TWCC log measures the new path's
/// delay from a new floor. A check that only proves a path, a known path
/// checked again, or a stranger's datagram moves nothing.
#[test]
fn a_new_nomination_moves_the_media_and_starts_a_new_delay_floor() {
    use crate::sfu::peer::{Conn, Lean, LeanInput, Peer};
    use crate::sfu::session::ice::tests::check;
    use std::time::Duration;
    let w = connect();
    let (server, viewer): (SocketAddr, SocketAddr) =
        (SERVER.parse().unwrap(), VIEWER.parse().unwrap());
    let relay: SocketAddr = "198.51.100.20:3478".parse().unwrap();
    let provider = rtc::crypto::default_provider().unwrap();
    let crypto = provider.crypto();
    let checked = |nominate| check(&w.username, &w.pwd, nominate, crypto);
    let now = w.now;
    let ufrag = w.s.ufrag().to_owned();
    let lean = Conn::Lean(Box::new(Lean::new(w.s)));
    let mut peer = Peer::new(1, "demo".into(), ufrag, lean, now);
    let input = |peer: &mut Peer, at: u64, from, mut data: Vec<u8>| {
        let now = now + Duration::from_secs(at);
        peer.lean_input(now, from, server, &mut data).unwrap()
    };
    let seen = |new, moved| LeanInput {
        proved: true,
        gone: None,
        new,
        moved,
    };
    // The path the handshake proved, learned as the driver learns it.
    assert_eq!(
        input(&mut peer, 1, viewer, checked(true)),
        seen(true, false)
    );
    assert_eq!(peer.twcc.path_since(), Duration::ZERO);
    assert_eq!(
        input(&mut peer, 2, relay, checked(false)),
        seen(true, false)
    );
    assert_eq!(
        input(&mut peer, 3, viewer, checked(true)),
        seen(false, false)
    );
    let stranger = input(
        &mut peer,
        4,
        "203.0.113.5:9".parse().unwrap(),
        checked(true)[..20].to_vec(),
    );
    assert_eq!(stranger, LeanInput::default());
    assert_eq!(peer.twcc.path_since(), Duration::ZERO, "nothing moved");
    assert_eq!(input(&mut peer, 5, relay, checked(true)), seen(false, true));
    assert_eq!(peer.addrs, vec![viewer, relay]);
    assert_eq!(
        peer.twcc.path_since(),
        Duration::from_secs(5),
        "the relay's delay is measured from its own floor"
    );
}
