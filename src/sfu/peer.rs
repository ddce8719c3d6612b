//! One WebRTC peer, viewer or WHIP publisher, and what the driver needs to
//! route to it and feed it. A viewer is a lean [`Session`] (or, with
//! `--webrtc-engine rtc`, an `rtc` peer connection); a publisher is an
//! `rtc` peer connection.

use super::congestion::{Controller, Level};
use super::retransmit::{History, SentLog};
use super::sdp::VideoCodec;
use super::sender::{self, Stamp};
use super::seqmap::SeqMap;
use super::session::Session;
use super::transport::Wire;
use super::twcc::TwccLog;
use super::SfuError;
use crate::media::MediaKind;
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::RTCRtpSenderId;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Remote addresses one peer may use at once (host, reflexive, relay on
/// IPv4 and IPv6). Caps the routing map a client could grow.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// Packets written before the caller takes the datagrams out. Each layer of
/// rtc's handler chain queues messages by value in a `VecDeque` that never
/// shrinks: a whole fast-start GOP (hundreds of packets) written at once
/// left every viewer holding tens of kilobytes of empty queue.
const DRAIN_EVERY: u64 = 4;

pub type PeerId = u64;

/// A map keyed by [`PeerId`]. Ids are a driver's own counter, never a
/// client's choice, so they need no keyed (flood-resistant) hash, and the
/// fan-out looks one up per viewer per packet batch.
pub type PeerMap<V> = std::collections::HashMap<PeerId, V, BuildHasherDefault<IdHasher>>;

/// One multiply by an odd constant: a bijection that spreads consecutive
/// ids over the table's high bits (its control bytes) and low bits (its
/// buckets).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64((self.0 << 8) | u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Fast start's pace: a GOP goes out this many bytes per tick (20 Mbit/s),
/// not in one burst that a thin link, a TURN relay or a client's socket
/// buffer would drop. A 1 s GOP of 2.5 Mbit/s takes 125 ms.
const FAST_START_BYTES_PER_TICK: usize = 5_000;
const FAST_START_TICK: Duration = Duration::from_millis(2);

/// A fast start under way: the channel's GOP, a slice at a time.
struct CatchUp {
    /// The GOP it follows (see [`Peer::send_media`]'s `gop_epoch`).
    epoch: u64,
    /// The next packet of the GOP to send.
    next: usize,
    /// The GOP's length when it began: those frames are squeezed to one
    /// tick apart, ending at `last_ts`; what the GOP grew by since goes
    /// with its own timestamps.
    squeezed: usize,
    last_ts: u32,
    frames: u32,
    /// The frame (within the squeezed part) of the packet before `next`.
    frame: u32,
    /// When the next slice is due.
    at: Instant,
}

/// The addresses answers announce: UDP host candidates, and passive
/// ICE-TCP ones (RFC 6544) for networks that block UDP.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
}

/// The negotiated sending side of one track.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    /// rtc's sender, for a peer connection; a lean session has its own.
    pub id: Option<RTCRtpSenderId>,
    pub ssrc: u32,
    pub payload_type: u8,
}

/// The state machine behind a peer.
pub enum Conn {
    /// Boxed: a peer connection is kilobytes inline.
    Rtc(Box<RTCPeerConnection>),
    Lean(Box<Lean>),
}

/// A viewer on the lean session, and which of our sockets each of its
/// proven addresses reached.
pub struct Lean {
    /// Datagrams go in through [`Lean::handle`], which keeps the route.
    pub session: Session,
    /// (remote, local) for every address ICE proved, at most
    /// [`MAX_ADDRS_PER_PEER`].
    routes: Vec<(SocketAddr, SocketAddr)>,
    /// [`Lean::route`], worked out whenever ICE may have changed it: every
    /// packet to the viewer reads it, and working it out each time touched
    /// two more cache lines per viewer on the fan-out.
    route: Option<(SocketAddr, SocketAddr)>,
}

impl Lean {
    pub fn new(session: Session) -> Lean {
        Lean {
            session,
            routes: Vec::new(),
            route: None,
        }
    }

    /// A datagram from the viewer, through its session (see
    /// [`Session::handle`]): true when it proved genuine.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]) -> bool {
        let proved = self.session.handle(now, from, data);
        self.reroute();
        proved
    }

    /// Remembers that `remote` reached our socket `local`. With its fill
    /// of addresses, the viewer forgets its oldest one that media does not
    /// take, as ICE does its paths: that one is returned, to be forgotten
    /// everywhere else too.
    pub fn learn(&mut self, remote: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
        let mut gone = None;
        if let Some(r) = self.routes.iter_mut().find(|r| r.0 == remote) {
            r.1 = local;
        } else {
            if self.routes.len() >= MAX_ADDRS_PER_PEER {
                let media = self.route.map(|(_, to)| to);
                let at = self.routes.iter().position(|r| Some(r.0) != media);
                gone = Some(self.routes.remove(at.unwrap_or(0)).0);
            }
            self.routes.push((remote, local));
        }
        self.reroute();
        gone
    }

    /// Our socket for `remote`.
    pub fn local_for(&self, remote: SocketAddr) -> Option<SocketAddr> {
        self.routes.iter().find(|r| r.0 == remote).map(|r| r.1)
    }

    /// Where media goes: (our socket, ICE's chosen path).
    pub fn route(&self) -> Option<(SocketAddr, SocketAddr)> {
        debug_assert_eq!(self.route, self.worked_out(), "a route change not followed");
        self.route
    }

    fn reroute(&mut self) {
        self.route = self.worked_out();
    }

    fn worked_out(&self) -> Option<(SocketAddr, SocketAddr)> {
        let to = self.session.destination()?;
        Some((self.local_for(to)?, to))
    }

    /// The session's control datagrams (STUN answers, DTLS, SCTP) out.
    pub fn flush(&mut self, wire: &mut Wire) {
        while let Some((to, data)) = self.session.poll_transmit() {
            if let Some(local) = self.local_for(to) {
                wire.send(local, to, &data);
            }
        }
    }
}

pub struct Peer {
    pub id: PeerId,
    pub session: String,
    pub channel: Arc<str>,
    pub ufrag: String,
    pub conn: Conn,
    pub video: Option<Sender>,
    /// What `video` carries: a viewer is sent only the video of its codec.
    pub video_codec: Option<VideoCodec>,
    pub audio: Option<Sender>,
    /// Video is withheld until a keyframe: P-frames without their reference
    /// only show as corruption.
    pub waiting_keyframe: bool,
    /// Since when it has been waiting (once connected).
    pub waiting_since: Option<Instant>,
    /// This viewer's sequence numbers per track: no gap where we chose not
    /// to send, and never one number for two packets.
    video_seq: SeqMap,
    audio_seq: SeqMap,
    /// Packets and payload octets sent per track, for sender reports.
    pub video_sent: (u32, u32),
    pub audio_sent: (u32, u32),
    pub chat: Option<RTCDataChannelId>,
    /// Where the chat data channel's events go, when chat is served.
    pub chat_tap: Option<super::ChatTap>,
    /// Another server of the site pulling the channel, not a viewer.
    pub relay: bool,
    pub addrs: Vec<SocketAddr>,
    pub connected: bool,
    pub created: Instant,
    /// The last datagram from this viewer. ICE-lite never declares a silent
    /// peer failed, so the driver reaps on this.
    pub last_rx: Instant,
    /// The deadline this peer is filed under in the driver's timer set.
    pub deadline: Option<Instant>,
    /// Set for a WHIP publisher: where its media goes.
    pub ingest: Option<Box<super::whip::Ingest>>,
    /// How much of the stream this viewer's link carries.
    pub congestion: Controller,
    /// What its recent video sequence numbers carried, for NACKs.
    sent: SentLog,
    /// Send times of its packets' transport-wide numbers, for its TWCC
    /// feedback.
    pub twcc: TwccLog,
    /// WHIP/WHEP PATCH requests so far, and the candidates they added.
    pub patches: u32,
    pub trickled: usize,
    /// The RTP timestamp of the keyframe being sent at keyframes-only
    /// level: WHIP marks only a keyframe's first packet, so the rest of
    /// the access unit is recognised by its timestamp.
    keyframe_ts: Option<u32>,
    /// Packets written to rtc since its queue was last drained.
    unflushed: u64,
    /// A paced fast start, while one is under way.
    catch_up: Option<CatchUp>,
}

/// What one datagram did to a lean viewer (see [`Peer::lean_input`]).
#[derive(Debug, Default, PartialEq)]
pub struct LeanInput {
    /// It proved genuine: the viewer is alive.
    pub proved: bool,
    /// An address the viewer forgot, to forget everywhere else too.
    pub gone: Option<SocketAddr>,
    /// The address it came from is new to this viewer.
    pub new: bool,
    /// The viewer's media now takes another path.
    pub moved: bool,
}

pub struct Answer {
    pub peer: Peer,
    pub sdp: String,
}

pub(super) use super::session::random_token;

pub use super::rtc_peer::{answer_publisher, answer_viewer, PublisherAnswer};
/// What the channel's source sends, which a viewer's answer follows.
pub use super::session::Source as SourceVideo;

/// A viewer on the lean session, and its answer.
pub fn answer_lean(
    id: PeerId,
    channel: Arc<str>,
    offer: &str,
    config: &super::session::Config,
    source: SourceVideo,
    now: Instant,
) -> Result<Answer, SfuError> {
    let (session, sdp) = Session::answer(offer, source, config, &format!("onair-{channel}"))?;
    let sender = |t: &Option<super::session::Track>| {
        t.as_ref().map(|t| Sender {
            id: None,
            ssrc: t.ssrc,
            payload_type: t.payload_type,
        })
    };
    let (video, audio, video_codec) = (
        sender(&session.video),
        sender(&session.audio),
        session.video_codec,
    );
    let ufrag = session.ufrag().to_owned();
    let mut peer = Peer::new(
        id,
        channel,
        ufrag,
        Conn::Lean(Box::new(Lean::new(session))),
        now,
    );
    peer.video = video;
    peer.audio = audio;
    peer.video_codec = video.and(video_codec);
    Ok(Answer { peer, sdp })
}

impl Peer {
    pub(super) fn new(
        id: PeerId,
        channel: Arc<str>,
        ufrag: String,
        conn: Conn,
        now: Instant,
    ) -> Peer {
        Peer {
            id,
            session: random_token(16),
            channel,
            ufrag,
            conn,
            video: None,
            video_codec: None,
            audio: None,
            waiting_keyframe: true,
            waiting_since: None,
            video_seq: SeqMap::default(),
            audio_seq: SeqMap::default(),
            video_sent: (0, 0),
            audio_sent: (0, 0),
            chat: None,
            chat_tap: None,
            relay: false,
            addrs: Vec::new(),
            connected: false,
            created: now,
            last_rx: now,
            deadline: None,
            ingest: None,
            congestion: Controller::default(),
            keyframe_ts: None,
            patches: 0,
            trickled: 0,
            sent: SentLog::new(now),
            twcc: TwccLog::new(now),
            unflushed: 0,
            catch_up: None,
        }
    }

    /// Ends the connection, sending the viewer a DTLS close_notify.
    pub fn close(&mut self, wire: &mut Wire) {
        match &mut self.conn {
            Conn::Rtc(pc) => {
                let _ = rtc::sansio::Protocol::close(pc);
                wire.drain(pc);
            }
            Conn::Lean(lean) => {
                lean.session.close(Instant::now());
                lean.flush(wire);
            }
        }
    }

    /// A datagram for a lean viewer, from `from` to our socket `local`.
    /// What proves genuine keeps its address (past the limit, the oldest
    /// one media does not take is forgotten) and may move its media to
    /// another path, whose delay is a new floor for its TWCC feedback, not
    /// a queue. `None` when this peer is not a lean viewer.
    pub fn lean_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: SocketAddr,
        data: &mut [u8],
    ) -> Option<LeanInput> {
        let Conn::Lean(lean) = &mut self.conn else {
            return None;
        };
        let path = lean.route();
        let mut input = LeanInput {
            proved: lean.handle(now, from, data),
            ..LeanInput::default()
        };
        if input.proved {
            input.gone = lean.learn(from, local);
            if let Some(gone) = input.gone {
                self.addrs.retain(|a| *a != gone);
            }
            input.new = !self.addrs.contains(&from);
            if input.new {
                self.addrs.push(from);
            }
        }
        input.moved = path.is_some() && lean.route() != path;
        if input.moved {
            self.twcc.new_path(now);
        }
        Some(input)
    }

    /// The rtc peer connection behind a publisher (or an rtc viewer).
    pub fn pc(&mut self) -> Option<&mut RTCPeerConnection> {
        match &mut self.conn {
            Conn::Rtc(pc) => Some(pc),
            Conn::Lean(_) => None,
        }
    }

    /// Sends this viewer its copy of one stream packet, stamped. True when
    /// it went to the wire (or to rtc's queue, drained every few packets).
    /// A copy without a transport-wide sequence number gets the next one
    /// when the viewer negotiated TWCC (a resend keeps the number it first
    /// had, so it is the same bytes under the same SRTP index).
    fn emit(
        &mut self,
        kind: MediaKind,
        pkt: &Packet,
        stamp: &mut Stamp,
        now: Instant,
        wire: &mut Wire,
    ) -> bool {
        match &mut self.conn {
            Conn::Lean(lean) => {
                let Some((local, to)) = lean.route() else {
                    return false;
                };
                let session = &mut lean.session;
                let fresh = stamp.twcc.is_none();
                if fresh {
                    stamp.twcc = session.twcc_next(kind);
                }
                let room = stamp.header_len() + pkt.payload.len() + session.rtp_overhead();
                let mut sealed = false;
                let written = *stamp;
                wire.write(local, to, room, |buf| {
                    let len = sender::write_rtp(buf, pkt, written)?;
                    let n = session.seal_rtp(kind, buf, len)?;
                    sealed = true;
                    Some(n)
                });
                match (sealed, stamp.twcc) {
                    // A resend keeps its first sending's time: the viewer
                    // may report either copy, and a time too late would
                    // read as a delay too low, a base every later window
                    // then stands above.
                    (true, Some((_, seq))) if fresh => {
                        session.twcc_sent();
                        self.twcc.record(seq, now);
                    }
                    (false, _) if fresh => stamp.twcc = None,
                    _ => {}
                }
                sealed
            }
            Conn::Rtc(pc) => {
                let Some(id) = (match kind {
                    MediaKind::Video => self.video,
                    MediaKind::Audio => self.audio,
                })
                .and_then(|s| s.id) else {
                    return false;
                };
                let mut copy = pkt.clone();
                copy.header.ssrc = stamp.ssrc;
                copy.header.payload_type = stamp.payload_type;
                copy.header.sequence_number = stamp.seq;
                copy.header.timestamp = stamp.timestamp;
                let Some(mut rtp) = pc.rtp_sender(id) else {
                    return false;
                };
                let ok = rtp.write_rtp(now, copy).is_ok();
                self.unflushed += 1;
                if self.unflushed % DRAIN_EVERY == 0 {
                    wire.drain(pc);
                }
                ok
            }
        }
    }

    /// What rtc still holds for the wire.
    fn drain(&mut self, wire: &mut Wire) {
        if let Conn::Rtc(pc) = &mut self.conn {
            wire.drain(pc);
        }
    }

    /// The fan-out's first look ahead: the peer itself, found by address
    /// alone (nothing of it is read yet).
    pub fn prefetch_peer(p: &Peer) {
        super::prefetch::lines(p, std::mem::size_of::<Peer>());
    }

    /// The fan-out's second look ahead, once the peer is in cache: what
    /// sending it a packet reads behind its pointers.
    pub fn prefetch_state(&self, kind: MediaKind) {
        if let Conn::Lean(lean) = &self.conn {
            super::prefetch::line(&lean.route);
            lean.session.prefetch(kind);
        }
    }

    /// Sends one access unit's (or audio frame's) packets to this viewer.
    /// `gop_epoch` numbers the channel's GOP buffer: it changes whenever
    /// the buffer starts over, and video already in it goes out through a
    /// fast start under way instead. Returns the packets and payload bytes
    /// sent.
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        keyframe: bool,
        packets: &[Packet],
        now: Instant,
        gop_epoch: u64,
        wire: &mut Wire,
    ) -> (u64, u64) {
        if let (MediaKind::Video, Some(cu)) = (kind, &self.catch_up) {
            if cu.epoch == gop_epoch {
                // In the GOP: the catch-up sends it, in order.
                return (0, 0);
            }
            self.cut_catch_up(now);
        }
        let level = self.congestion.level();
        let skip = !self.connected
            || match kind {
                MediaKind::Video if level == Level::AudioOnly => true,
                MediaKind::Video if level == Level::KeyframesOnly => {
                    let ts = packets.first().map(|p| p.header.timestamp);
                    if keyframe {
                        self.keyframe_ts = ts;
                        self.got_keyframe();
                    }
                    !keyframe && (ts.is_none() || ts != self.keyframe_ts)
                }
                MediaKind::Video if self.waiting_keyframe && !keyframe => true,
                MediaKind::Video => {
                    self.got_keyframe();
                    false
                }
                MediaKind::Audio => false,
            };
        let sender = match kind {
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
        };
        if skip {
            let seqs = self.seqs(kind);
            packets
                .iter()
                .for_each(|p| seqs.skip(p.header.sequence_number));
            return (0, 0);
        }
        let Some(sender) = sender else { return (0, 0) };
        let (mut n, mut bytes) = (0u64, 0u64);
        for pkt in packets {
            let channel_seq = pkt.header.sequence_number;
            let Some(seq) = self.seqs(kind).map(channel_seq) else {
                continue;
            };
            let mut stamp = Stamp {
                ssrc: sender.ssrc,
                payload_type: sender.payload_type,
                seq,
                timestamp: pkt.header.timestamp,
                twcc: None,
            };
            if self.emit(kind, pkt, &mut stamp, now, wire) {
                n += 1;
                bytes += pkt.payload.len() as u64;
            }
            if kind == MediaKind::Video {
                self.sent
                    .record(seq, channel_seq, stamp.timestamp, stamp.twcc);
            }
        }
        self.drain(wire);
        let sent = match kind {
            MediaKind::Video => &mut self.video_sent,
            MediaKind::Audio => &mut self.audio_sent,
        };
        sent.0 = sent.0.wrapping_add(n as u32);
        sent.1 = sent.1.wrapping_add(bytes as u32);
        (n, bytes)
    }

    fn seqs(&mut self, kind: MediaKind) -> &mut SeqMap {
        match kind {
            MediaKind::Video => &mut self.video_seq,
            MediaKind::Audio => &mut self.audio_seq,
        }
    }

    /// Starts sending a just-connected viewer the channel's current GOP, so
    /// its decoder starts now. The frames keep their order but are squeezed
    /// to one tick apart, ending at the live frame's timestamp: the player
    /// decodes them all and shows the latest, instead of replaying the last
    /// second and staying that far behind. They go out paced (see
    /// [`Peer::catch_up`]); live video waits in the GOP meanwhile. False
    /// when there is nothing to start from.
    pub fn fast_start(
        &mut self,
        gop: &[Packet],
        gop_epoch: u64,
        now: Instant,
        wire: &mut Wire,
    ) -> bool {
        let (Some(_), Some(last)) = (self.video, gop.last()) else {
            return false;
        };
        // The GOP is older than the live packets skipped while connecting.
        self.video_seq.restart_if_unsent();
        let frames = 1 + gop
            .windows(2)
            .filter(|w| w[0].header.timestamp != w[1].header.timestamp)
            .count() as u32;
        self.catch_up = Some(CatchUp {
            epoch: gop_epoch,
            next: 0,
            squeezed: gop.len(),
            last_ts: last.header.timestamp,
            frames,
            frame: 0,
            at: now,
        });
        self.got_keyframe();
        self.catch_up(gop, gop_epoch, now, wire);
        true
    }

    /// When the fast start under way wants its next slice.
    pub fn catch_up_at(&self) -> Option<Instant> {
        self.catch_up.as_ref().map(|c| c.at)
    }

    /// The next slice of a fast start, when it is due: at most
    /// [`FAST_START_BYTES_PER_TICK`] of the GOP.
    pub fn catch_up(&mut self, gop: &[Packet], gop_epoch: u64, now: Instant, wire: &mut Wire) {
        let Some(mut cu) = self.catch_up.take() else {
            return;
        };
        let Some(sender) = self.video else { return };
        if cu.epoch != gop_epoch || cu.next > gop.len() {
            // The GOP started over under it (a new source, the size cap).
            self.catch_up = Some(cu);
            return self.cut_catch_up(now);
        }
        if now < cu.at {
            self.catch_up = Some(cu);
            return;
        }
        let (mut n, mut bytes, mut budget) = (0u32, 0u32, FAST_START_BYTES_PER_TICK);
        while cu.next < gop.len() && budget > 0 {
            let i = cu.next;
            let pkt = &gop[i];
            cu.next += 1;
            let timestamp = if i < cu.squeezed {
                if i > 0 && gop[i - 1].header.timestamp != pkt.header.timestamp {
                    cu.frame += 1;
                }
                cu.last_ts.wrapping_sub(cu.frames - 1 - cu.frame)
            } else {
                pkt.header.timestamp
            };
            let channel_seq = pkt.header.sequence_number;
            let Some(seq) = self.video_seq.map(channel_seq) else {
                continue;
            };
            let mut stamp = Stamp {
                ssrc: sender.ssrc,
                payload_type: sender.payload_type,
                seq,
                timestamp,
                twcc: None,
            };
            budget = budget.saturating_sub(pkt.payload.len());
            if self.emit(MediaKind::Video, pkt, &mut stamp, now, wire) {
                n += 1;
                bytes = bytes.wrapping_add(pkt.payload.len() as u32);
            }
            self.sent.record(seq, channel_seq, timestamp, stamp.twcc);
        }
        self.drain(wire);
        self.video_sent.0 = self.video_sent.0.wrapping_add(n);
        self.video_sent.1 = self.video_sent.1.wrapping_add(bytes);
        if cu.next < gop.len() {
            cu.at = now + FAST_START_TICK;
            self.catch_up = Some(cu);
        }
    }

    /// A fast start whose GOP is gone: the rest of it is never sent, and the
    /// picture goes on from the next keyframe.
    fn cut_catch_up(&mut self, now: Instant) {
        if self.catch_up.take().is_some() {
            self.video_seq.interrupt();
            self.wait_for_keyframe(now);
        }
    }

    /// Video is withheld until the next keyframe (a new publish, a skip).
    pub fn wait_for_keyframe(&mut self, now: Instant) {
        if !self.waiting_keyframe || self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
        self.waiting_keyframe = true;
    }

    fn got_keyframe(&mut self) {
        self.waiting_keyframe = false;
        self.waiting_since = None;
    }

    /// Connected, meant to get the full picture, and still waiting for a
    /// keyframe since `now - longer`.
    pub fn waiting_longer_than(&self, longer: Duration, now: Instant) -> bool {
        self.connected
            && self.waiting_keyframe
            && self.video.is_some()
            && self.congestion.level() == Level::Full
            && self
                .waiting_since
                .is_some_and(|t| now.saturating_duration_since(t) > longer)
    }

    /// Answers a NACK: the video packets `seqs` (this viewer's numbers),
    /// rebuilt from the channel's history, as far as the viewer's budget
    /// and level allow. A viewer at audio only gets no video back, and one
    /// at keyframes only gets back only the keyframe it is being sent.
    /// A resend is the packet first sent under that number, byte for byte:
    /// the same SRTP index never seals two plaintexts. Returns how many
    /// were resent.
    pub fn resend(
        &mut self,
        history: &History,
        seqs: &[u16],
        now: Instant,
        wire: &mut Wire,
    ) -> u64 {
        let Some(sender) = self.video else { return 0 };
        let level = self.congestion.level();
        let mut n = 0;
        for &seq in seqs {
            let Some(logged) = self.sent.lookup(seq) else {
                continue;
            };
            let (channel_seq, timestamp) = (logged.channel_seq, logged.timestamp);
            let Some(orig) = history.get(channel_seq) else {
                continue;
            };
            let wanted = match level {
                Level::Full => true,
                Level::KeyframesOnly => self.keyframe_ts == Some(orig.header.timestamp),
                Level::AudioOnly => false,
            };
            if !wanted || !self.sent.allow(now) {
                continue;
            }
            let mut stamp = Stamp {
                ssrc: sender.ssrc,
                payload_type: sender.payload_type,
                seq,
                timestamp,
                twcc: logged.twcc,
            };
            if self.emit(MediaKind::Video, orig, &mut stamp, now, wire) {
                n += 1;
            }
        }
        self.drain(wire);
        n
    }
}
