//! A driver: the task that owns one shard's peer connections (or the
//! ingest's WHIP publishers; see [`super::shard`]). Datagrams, commands and
//! media come in on channels; everything a peer wants to send leaves
//! through non-blocking sends on the shared sockets, so no viewer can make
//! the loop wait.

use super::congestion::Level;
use super::feedback;
use super::peer::{self, Conn, Peer, PeerId, MAX_ADDRS_PER_PEER};
use super::sdp::VideoCodec;
mod events;
mod fanout;
mod lean;
mod peers;
mod publish;
mod service;
use super::transport::Wire;

use super::feed::{Feeds, Subscription, GOP_MAX_PACKETS};
use super::shard::{self, Routes};
use super::udp::Batcher;
use super::whip::{self, Ingest};
use super::{lock_counts, stun, Arrived, Command, Media, SfuError, ViewerCounts, WhepSession};
use crate::hub::Hub;
use crate::isolate;
use crate::media::{Gop, MediaKind};
use bytes::BytesMut;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp::packet::Packet;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A limit on viewers per process, so a flood of offers runs out of this
/// before it runs out of memory (~100 KiB each).
pub const MAX_PEERS: usize = 20_000;
/// Viewer counts go to data channels at most this often, not on every join.
const VIEWER_EVENT_INTERVAL: Duration = Duration::from_secs(2);
/// RFC 3550 6.2 suggests 5 s; players sync faster with one a second, and
/// for a viewer it is two tiny packets.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// A viewer silent this long is gone (closed tab, lost network) and is
/// reaped. Browsers send consent checks every few seconds and RTCP every
/// second; aiortc's consent checks come every 4-6 s.
pub const PEER_SILENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that has not completed ICE and DTLS this long after its offer is
/// dropped: a real client connects in well under a second, and a slot must
/// not be held by one that never will.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Trickled ICE candidates one session may add (WHIP/WHEP PATCH). A browser
/// gathers a handful per interface; this leaves room for many interfaces
/// and an ICE restart, and bounds what a client makes the ICE agent hold
/// and check.
pub const MAX_TRICKLE_CANDIDATES: usize = 32;
/// PATCH requests one session may make: trickle sends about one per
/// candidate.
pub const MAX_PATCHES: u32 = 64;
/// The component panics are counted under.
const PEER: &str = "webrtc_peer";
/// The earliest a peer's next timer may fire, from now.
const MIN_TIMER: Duration = Duration::from_millis(1);
/// Datagrams one turn of the loop handles before it looks at its other
/// inputs again (and flushes what they made it send).
const MAX_DATAGRAMS_PER_TURN: usize = 256;
/// Chat text over the data channel, with JSON framing.
const MAX_DC_MESSAGE: usize = 4096;

/// What the driver reads: datagrams from the sockets, signalling commands,
/// media from the channels' egress tasks, chat lines for data channels.
pub struct Inputs {
    pub datagrams: shard::Datagrams,
    pub commands: mpsc::Receiver<Command>,
    pub media: mpsc::Receiver<Media>,
    pub chat: mpsc::Receiver<(String, Arc<str>)>,
}

pub struct Datagram {
    pub local: SocketAddr,
    pub from: SocketAddr,
    pub data: BytesMut,
    /// When the socket task read it: the start of server-added latency.
    pub at: Instant,
    /// Set when it came over ICE-TCP: where that peer's replies go.
    pub tcp: Option<super::tcp::FrameSender>,
}

struct ChannelState {
    /// Everyone the channel's media goes to, the relays among them.
    viewers: Vec<PeerId>,
    /// Of `viewers`, the other servers pulling the channel: not counted
    /// as viewers.
    relays: usize,
    /// The channel's media comes while this is held: dropped with the
    /// channel's last viewer here, or with the driver itself (a restart
    /// after a panic).
    _feed: Subscription,
    live: bool,
    counts_dirty: bool,
    /// The video RTP packets since the latest keyframe, so a viewer that
    /// connects mid-GOP shows a picture at once instead of waiting up to a
    /// keyframe interval. Its epoch tells a viewer's fast start that the
    /// GOP it follows is gone.
    gop: Gop<Packet>,
    gop_codec: VideoCodec,
    /// The live publish's media clock (see [`Media::Anchor`]).
    /// Per track (video, audio): at this instant the track's outgoing RTP
    /// clock read this value.
    anchor: [Option<(Instant, u32)>; 2],
    /// The full stream's video bitrate, what congestion control compares
    /// a viewer's REMB with: payload bits over the last window.
    video_bps: f64,
    video_bytes: u64,
    video_window: Instant,
    /// Recent video, once per channel: what viewers' NACKs are answered from.
    history: Box<super::retransmit::History>,
    /// The hub stream whose media is going out now.
    source: Option<u64>,
}

/// How often a channel's video bitrate is re-measured.
const BITRATE_WINDOW: Duration = Duration::from_secs(2);

/// What a driver shares with the others.
#[derive(Clone)]
pub struct Shared {
    /// This driver's number: its fan-out shard's, or the ingest's (the last).
    pub index: u8,
    pub routes: Arc<Routes>,
    pub feeds: Arc<Feeds>,
    /// Every driver's counts, this one's at `index`: `--max-viewers` holds
    /// for them all.
    pub counts: Arc<[ViewerCounts]>,
}

pub struct Driver {
    out: Batcher,
    shared: Shared,
    pub candidates: peer::Candidates,
    pub certificate: RTCCertificate,
    pub hub: Arc<Hub>,
    pub media_tx: mpsc::Sender<Media>,
    pub viewers: ViewerCounts,
    /// Boxed: a peer connection is kilobytes inline, and `service` takes a
    /// peer out of the map and puts it back for every datagram.
    peers: peer::PeerMap<Box<Peer>>,
    by_addr: HashMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    by_session: HashMap<String, PeerId>,
    channels: HashMap<Arc<str>, ChannelState>,
    timers: BTreeSet<(Instant, PeerId)>,
    next_id: PeerId,
    /// Arrival time of the datagram being handled, if any.
    rx_at: Option<Instant>,
    /// Where that datagram came from, and whether the peer's state machine
    /// accepted it as genuine (see `on_datagram`).
    rx_from: Option<SocketAddr>,
    rx_proved: bool,
    /// The WHIP publisher of each channel that has one.
    publishers: HashMap<Arc<str>, PeerId>,
    /// ICE-TCP peers' connections, by remote address (at most one entry per
    /// open connection: gone ones are dropped at the first failed send).
    tcp_out: HashMap<SocketAddr, super::tcp::FrameSender>,
    /// Tests only (`--fault-injection`): publishers' packets that start
    /// with a marker make the driver panic (see [`Driver::inject_fault`]).
    fault_injection: bool,
    /// `--max-viewers`.
    max_viewers: usize,
    /// Peers that are relays to other servers (see [`ChannelState::relays`]).
    relays: usize,
    /// Set by an injected engine fault, raised outside the peer's guard.
    engine_fault: bool,
    /// Where a datagram bound for ICE-TCP is written before framing.
    scratch: Vec<u8>,
}

/// The driver's outputs as one [`Wire`], borrowed field by field so the
/// peers stay usable beside it.
macro_rules! wire {
    ($d:expr) => {
        Wire {
            out: &mut $d.out,
            tcp: &mut $d.tcp_out,
            scratch: &mut $d.scratch,
        }
    };
}
pub(super) use wire;

impl Driver {
    /// The driver of WHIP publishers: the last, after the fan-out shards.
    fn is_ingest(&self) -> bool {
        usize::from(self.shared.index) + 1 == self.shared.counts.len()
    }

    pub fn new(
        out: Batcher,
        candidates: peer::Candidates,
        certificate: RTCCertificate,
        hub: Arc<Hub>,
        media_tx: mpsc::Sender<Media>,
        shared: Shared,
    ) -> Self {
        let viewers = shared.counts[usize::from(shared.index)].clone();
        Driver {
            out,
            shared,
            candidates,
            certificate,
            hub,
            media_tx,
            viewers,
            peers: peer::PeerMap::default(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_session: HashMap::new(),
            channels: HashMap::new(),
            timers: BTreeSet::new(),
            next_id: 0,
            rx_at: None,
            rx_from: None,
            rx_proved: false,
            publishers: HashMap::new(),
            tcp_out: HashMap::new(),
            fault_injection: false,
            max_viewers: MAX_PEERS,
            relays: 0,
            engine_fault: false,
            scratch: Vec::new(),
        }
    }

    /// `--max-viewers`, and [`Driver::inject_fault`] for tests.
    pub fn with_options(mut self, options: super::SfuOptions) -> Self {
        self.fault_injection = options.fault_injection;
        self.max_viewers = options.max_viewers.min(MAX_PEERS);
        self
    }

    /// For the fault-isolation tests: a WHIP packet whose payload starts
    /// with `onair-fault:peer` panics while that publisher is served, and
    /// `onair-fault:engine` panics the driver outside any peer's guard; so
    /// does a trickled candidate naming `onair-fault:shard`, in the
    /// session's own shard.
    fn inject_fault(&mut self, payload: &[u8]) {
        if payload.starts_with(b"onair-fault:peer") {
            panic!("injected fault: one WebRTC peer");
        }
        if payload.starts_with(b"onair-fault:engine") {
            self.engine_fault = true;
        }
    }

    /// Runs until `shutdown`. The inputs outlive a driver that panicked, so
    /// its replacement (see [`super::Sfu::start`]) reads on from them.
    pub async fn run(mut self, inputs: &mut Inputs, shutdown: CancellationToken) {
        let Inputs {
            datagrams,
            commands,
            media,
            chat,
        } = inputs;
        let mut ticker = tokio::time::interval(VIEWER_EVENT_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_ticker = tokio::time::interval(SENDER_REPORT_INTERVAL);
        report_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut picture_ticker = tokio::time::interval(whip::PLI_INTERVAL);
        picture_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Some(m) = media.recv() => {
                    self.on_media(m);
                    // Drain what is already queued before polling the rest:
                    // one wakeup per burst, not per packet.
                    for _ in 0..64 {
                        match media.try_recv() {
                            Ok(m) => self.on_media(m),
                            Err(_) => break,
                        }
                    }
                }
                Some(batch) = datagrams.recv() => {
                    let mut handled = batch.len();
                    batch.into_iter().for_each(|d| self.on_datagram(d));
                    while handled < MAX_DATAGRAMS_PER_TURN {
                        let Some(batch) = datagrams.try_recv() else {
                            break;
                        };
                        handled += batch.len();
                        batch.into_iter().for_each(|d| self.on_datagram(d));
                    }
                }
                Some((session, line)) = chat.recv() => {
                    self.on_chat_line(&session, &line);
                    for _ in 0..256 {
                        match chat.try_recv() {
                            Ok((session, line)) => self.on_chat_line(&session, &line),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep => self.on_timers(),
                _ = ticker.tick() => {
                    self.reap_silent();
                    self.end_closed_publishers();
                    self.tcp_out.retain(|_, conn| !conn.is_closed());
                    self.send_viewer_counts();
                }
                _ = report_ticker.tick() => self.send_sender_reports(),
                _ = picture_ticker.tick() => self.chase_pictures(),
            }
            // Whatever this turn queued, for every peer, in one batch.
            self.out.flush();
            if std::mem::take(&mut self.engine_fault) {
                panic!("injected fault: the WebRTC engine");
            }
        }
        self.channels.clear();
        for (pid, mut p) in std::mem::take(&mut self.peers) {
            // Its DTLS close_notify, so viewers learn at once.
            let mut wire = wire!(self);
            isolate::catch(PEER, &pid, || p.close(&mut wire));
        }
        self.out.flush();
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Whep {
                channel,
                answer,
                chat,
                relay,
                reply,
            } => {
                let _ = reply.send(self.add_viewer(channel, *answer, chat, relay));
            }
            Command::Whip {
                channel,
                key,
                offer,
                reply,
            } => {
                let _ = reply.send(self.add_publisher(channel, key, offer));
            }
            Command::Patch {
                session,
                candidates,
                reply,
            } => {
                let r = match self.by_session.get(&session).copied() {
                    Some(pid) => self.trickle(pid, candidates),
                    None => Err(SfuError::NotFound),
                };
                let _ = reply.send(r);
            }
            Command::Delete { session, reply } => {
                let r = match self.by_session.get(&session).copied() {
                    Some(pid) => {
                        self.remove_peer(pid, "deleted by client");
                        Ok(())
                    }
                    None => Err(SfuError::NotFound),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// Trickled candidates for a session, within its limits.
    fn trickle(&mut self, pid: PeerId, candidates: Vec<String>) -> Result<(), SfuError> {
        let Some(p) = self.peers.get_mut(&pid) else {
            return Err(SfuError::NotFound);
        };
        if self.fault_injection && candidates.iter().any(|c| c.contains("onair-fault:shard")) {
            self.engine_fault = true;
        }
        p.patches += 1;
        if p.patches > MAX_PATCHES {
            crate::metrics::limit_hit("max_patches");
            return Err(SfuError::Limit(format!(
                "at most {MAX_PATCHES} PATCH requests per session"
            )));
        }
        if p.trickled + candidates.len() > MAX_TRICKLE_CANDIDATES {
            crate::metrics::limit_hit("max_trickle_candidates");
            return Err(SfuError::Limit(format!(
                "at most {MAX_TRICKLE_CANDIDATES} trickled candidates per session"
            )));
        }
        p.trickled += candidates.len();
        // ICE-lite checks nothing itself: the viewer's checks find the
        // paths, so a lean session only counts what was trickled.
        let Conn::Rtc(pc) = &mut p.conn else {
            return Ok(());
        };
        let added = isolate::catch(PEER, &pid, || {
            for c in candidates {
                let init = RTCIceCandidateInit {
                    candidate: c,
                    ..Default::default()
                };
                if let Err(e) = pc.add_remote_candidate(init) {
                    tracing::debug!(session = p.session, "ignoring trickled candidate: {e}");
                }
            }
        });
        if added.is_none() {
            self.forget(pid, "panicked on a trickled candidate");
            return Err(SfuError::BadOffer("the candidate broke the session".into()));
        }
        self.service(pid, None);
        Ok(())
    }

    /// Files a viewer whose offer was answered on the caller's task (see
    /// [`super::super::signal`]).
    fn add_viewer(
        &mut self,
        channel: Arc<str>,
        answer: peer::Answer,
        chat: Option<super::ChatTap>,
        relay: bool,
    ) -> Result<WhepSession, SfuError> {
        // Every shard's viewers, relays not counted.
        let viewers: usize = self
            .shared
            .counts
            .iter()
            .map(|c| lock_counts(c).viewers.values().sum::<usize>())
            .sum();
        if self.peers.len() >= MAX_PEERS || (viewers >= self.max_viewers && !relay) {
            crate::metrics::limit_hit("max_viewers");
            return Err(SfuError::Busy);
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut answer = answer;
        answer.peer.id = id;
        answer.peer.chat_tap = chat;
        answer.peer.relay = relay;
        let session = self.index_peer(id, &mut answer.peer);
        self.peers.insert(id, Box::new(answer.peer));
        if !self.channels.contains_key(&channel) {
            let (feed, backlog) = self.shared.feeds.subscribe(&channel, self.media_tx.clone());
            let ch = ChannelState {
                viewers: Vec::new(),
                relays: 0,
                _feed: feed,
                live: false,
                counts_dirty: false,
                gop: Gop::new(GOP_MAX_PACKETS, GOP_MAX_PACKETS),
                gop_codec: VideoCodec::H264,
                anchor: [None, None],
                video_bps: 0.0,
                video_bytes: 0,
                video_window: Instant::now(),
                history: Box::default(),
                source: None,
            };
            self.channels.insert(channel.clone(), ch);
            // The channel as the other shards know it, GOP and all, before
            // this viewer connects and asks for a fast start.
            backlog.into_iter().for_each(|m| self.on_media(m));
        }
        let Some(ch) = self.channels.get_mut(&channel) else {
            unreachable!("filed just above");
        };
        ch.viewers.push(id);
        ch.relays += usize::from(relay);
        self.relays += usize::from(relay);
        ch.counts_dirty = true;
        self.set_count(&channel);
        self.service(id, None);
        let role = if relay {
            "relay to a server"
        } else {
            "WHEP viewer"
        };
        tracing::info!(channel = %channel, session, "{role} joined");
        Ok(WhepSession {
            session,
            sdp: answer.sdp,
        })
    }

    fn on_datagram(&mut self, d: Datagram) {
        let (pid, tentative) = match self.by_addr.get(&d.from) {
            Some(pid) => (*pid, false),
            None => {
                // Unknown address: only a STUN check naming one of our ufrags
                // may introduce it; anything else is dropped unread.
                let Some(pid) = stun::local_ufrag(&d.data).and_then(|u| self.by_ufrag.get(u))
                else {
                    return;
                };
                (*pid, true)
            }
        };
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        if let Conn::Lean(_) = p.conn {
            return self.on_lean_datagram(pid, d);
        }
        let Conn::Rtc(pc) = &mut p.conn else {
            return;
        };
        let transport_protocol = match d.tcp {
            Some(conn) => {
                self.tcp_out.entry(d.from).or_insert(conn);
                TransportProtocol::TCP
            }
            None => TransportProtocol::UDP,
        };
        let msg = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: d.local,
                peer_addr: d.from,
                ecn: None,
                transport_protocol,
            },
            message: d.data,
        };
        if isolate::catch(PEER, &pid, || pc.handle_read(msg)).is_none() {
            return self.forget(pid, "panicked on a datagram");
        }
        // Only what the peer's state machine authenticated keeps it alive,
        // and `handle_read` says nothing of that: a datagram proves the
        // peer when it yields something (SRTP and DTLS records pass their
        // authentication first) or is answered (a STUN check passes its
        // MESSAGE-INTEGRITY first). Anyone can send from a viewer's address.
        self.rx_at = Some(d.at);
        self.rx_from = Some(d.from);
        self.rx_proved = false;
        self.service(pid, tentative.then_some(d.from));
        if std::mem::take(&mut self.rx_proved) {
            if let Some(p) = self.peers.get_mut(&pid) {
                p.last_rx = Instant::now();
            }
        }
        self.rx_at = None;
        self.rx_from = None;
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        // Only what was due on entry: servicing a peer files its next
        // deadline, which must wait for the next turn of the loop.
        let mut due = Vec::new();
        while let Some(&(t, pid)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            due.push(pid);
        }
        for pid in due {
            if let Some(p) = self.peers.get_mut(&pid) {
                p.deadline = None;
                let fired = isolate::catch(PEER, &pid, || match &mut p.conn {
                    Conn::Rtc(pc) => {
                        let _ = pc.handle_timeout(now);
                    }
                    Conn::Lean(l) => l.session.handle_timeout(now),
                });
                if fired.is_none() {
                    self.forget(pid, "panicked in a timer");
                    continue;
                }
            }
            self.service(pid, None);
        }
    }

    fn on_media(&mut self, m: Media) {
        match m {
            Media::Live {
                channel,
                source,
                live,
            } => {
                let Some(ch) = self.channels.get_mut(&channel) else {
                    return;
                };
                ch.live = live;
                // Packets of this very source already went out (a WHIP
                // publisher's RTP can beat this event here): its viewers
                // may have their keyframe, and must not be sent back to
                // waiting for one that a browser publisher sends only when
                // asked.
                let known = live && ch.source == Some(source);
                if !known {
                    ch.source = live.then_some(source);
                    ch.gop.clear();
                    ch.history.clear();
                    // A new or ended publish: its clock is anchored anew.
                    ch.anchor = [None, None];
                }
                let msg = if live {
                    r#"{"type":"live"}"#
                } else {
                    r#"{"type":"offline"}"#
                };
                let viewers = ch.viewers.clone();
                let now = Instant::now();
                for pid in viewers {
                    if let (false, Some(p)) = (known, self.peers.get_mut(&pid)) {
                        // A new publisher's stream starts at a keyframe;
                        // wait for it rather than show a broken picture.
                        p.wait_for_keyframe(now);
                    }
                    self.send_event(pid, msg);
                }
                if live && !known {
                    self.request_keyframe(&channel);
                }
            }
            Media::Anchor {
                channel,
                wall,
                video_ts,
                audio_ts,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.anchor = [Some((wall, video_ts)), Some((wall, audio_ts))];
                }
            }
            Media::Batch {
                channel,
                source,
                kind,
                codec,
                keyframe,
                packets,
                at,
            } => {
                let Some(ch) = self.channels.get_mut(&channel) else {
                    return;
                };
                ch.source = Some(source);
                // Hub media comes after its anchor; a WHIP track is
                // anchored on its first packet, the same rule.
                if let Some(first) = packets.first() {
                    let i = usize::from(kind == MediaKind::Audio);
                    ch.anchor[i].get_or_insert((Instant::now(), first.header.timestamp));
                }
                self.rx_at = match at {
                    Some(Arrived::Datagram(t)) => Some(t),
                    _ => None,
                };
                self.fan_out(&channel, kind, codec, keyframe, &packets);
                self.rx_at = None;
                if let (Some(Arrived::Unit(t)), MediaKind::Video) = (at, kind) {
                    // Every viewer's copy of the access unit is with the
                    // kernel: `fan_out` flushed.
                    crate::metrics::frame_delivery(t.elapsed());
                }
            }
            Media::WantKeyframe { channel } => self.request_keyframe(&channel),
        }
    }
}
