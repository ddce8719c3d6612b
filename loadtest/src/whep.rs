//! A real WebRTC viewer built on webrtc-rs's `rtc` core (ICE, DTLS, SRTP,
//! SCTP): it offers, POSTs to WHEP, counts what arrives and, when asked,
//! records it. The tests use it as their viewer; the load tool runs many.

use crate::http::try_http;
use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::{SettingEngine, SettingEngineBuilder};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

pub const VIDEO_PT: u8 = 102;
/// Redirects one offer follows: a site sends a viewer on once.
const MAX_REDIRECTS: u32 = 3;

/// Marks inbound RTCP for the application, so the test sees the server's
/// sender reports (the default chain consumes RTCP).
#[derive(Default)]
pub(crate) struct DeliverRtcp {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

impl Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()> for DeliverRtcp {
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, mut msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, rtc::interceptor::Packet::Rtcp(_)) {
            msg.message
                .add(rtc::interceptor::Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl rtc::interceptor::Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}
pub const AUDIO_PT: u8 = 111;

/// What a viewer counted, cheap enough to keep for thousands of viewers.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Counters {
    pub video_packets: u64,
    pub audio_packets: u64,
    /// Media payload bytes; a viewer that does not decrypt counts each
    /// packet's encrypted body (payload and SRTP tag: 16 bytes more with
    /// AES-GCM, 10 with AES-CM).
    pub bytes: u64,
    /// Packets never seen, from sequence-number gaps.
    pub lost: u64,
    /// The longest stretch without video once it had started, in ms: a
    /// freeze as a viewer would see it.
    pub longest_video_gap_ms: u64,
    /// Gaps in video longer than [`FREEZE_MS`].
    pub freezes: u64,
    /// Complete video frames (RTP packets with the marker bit).
    pub frames: u64,
    /// Glass-to-glass latency of stamped frames (see [`crate::stamp`]), in
    /// microseconds; at most [`MAX_LATENCY_SAMPLES`] per viewer.
    pub latency_us: Vec<u32>,
    /// This viewer's share of the rotating decode checks.
    pub decode: crate::decode::DecodeStats,
}

/// A pause in video a viewer would notice as a freeze.
pub const FREEZE_MS: u64 = 300;
/// Enough samples for a p99 per viewer, bounded however long a run is.
pub const MAX_LATENCY_SAMPLES: usize = 4096;

#[derive(Default, Debug)]
pub struct Received {
    pub counters: Counters,
    pub connected_after: Option<Duration>,
    pub video: Vec<rtc::rtp::packet::Packet>,
    pub audio: Vec<rtc::rtp::packet::Packet>,
    /// When the first video packet arrived, from the POST.
    pub first_video_after: Option<Duration>,
    /// When the last one did: a viewer whose video stopped for good shows
    /// it here, not in a gap between two packets.
    pub last_video_at: Option<Instant>,
    pub chat: Vec<String>,
    /// When each line of `chat` arrived.
    pub chat_at: Vec<Instant>,
    /// Sender reports: (ssrc, NTP time as seconds, RTP time), in arrival order.
    pub sender_reports: Vec<(u32, f64, u32)>,
    pub location: String,
    pub answer: String,
}

pub struct ViewerOptions {
    /// Keep every packet (tests); off, only [`Counters`] are kept.
    pub record: bool,
    /// End without closing or DELETE, like a phone losing its network.
    pub vanish: bool,
    /// Sent as `Authorization: Bearer` with the offer: who chats on the
    /// data channel.
    pub token: Option<String>,
    /// Address to bind the viewer's UDP socket to.
    pub bind: std::net::IpAddr,
    /// Its port; 0 for any.
    pub port: u16,
    pub video: bool,
    pub audio: bool,
    pub chat_message: Option<String>,
    /// More lines for the `chat` data channel, each sent this long after
    /// it opened (tests of what changes while a viewer stays connected).
    pub chat_later: Vec<(Duration, String)>,
    pub profile_level_id: &'static str,
    /// The SRTP protection profiles its DTLS offers, in order; empty for
    /// rtc's own list.
    pub srtp_profiles: Vec<rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile>,
    /// Count latency and freezes only from this instant on (the load
    /// tool's measurement window): a joining viewer's first frames come
    /// from the server's start-up buffer and say nothing about steady state.
    pub measure_from: Option<Instant>,
    /// Take part in the rotating decode checks as viewer number `.1`.
    pub decode: Option<(crate::decode::Rotation, usize)>,
    /// Counters kept up to date while the viewer plays, for a sampler
    /// that cannot wait for the end (the soak's victim).
    pub live: Option<std::sync::Arc<Live>>,
    /// Decrypt media (a browser's work). Off, the viewer counts it from the
    /// clear headers and sends the feedback itself ([`crate::clear`]):
    /// no latency stamps, decode checks or recording then.
    pub decrypt: bool,
}

/// What a viewer has seen so far, readable while it plays.
#[derive(Debug)]
pub struct Live {
    epoch: Instant,
    pub frames: AtomicU64,
    pub decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Longest gap between two video packets since [`Live::take_gap`],
    /// once per reader (a sampler and an attack runner read independently).
    gap_ms: [AtomicU64; Live::READERS],
    /// When the last video packet came, in ms after `epoch` (0: none yet).
    last_video_ms: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            epoch: Instant::now(),
            frames: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            gap_ms: [const { AtomicU64::new(0) }; Live::READERS],
            last_video_ms: AtomicU64::new(0),
        }
    }
}

impl Live {
    pub const READERS: usize = 2;

    fn video(&self, now: Instant, gap: Option<Duration>, marker: bool) {
        let ms = now.duration_since(self.epoch).as_millis() as u64;
        self.last_video_ms.store(ms.max(1), Ordering::Relaxed);
        if let Some(g) = gap {
            for r in &self.gap_ms {
                r.fetch_max(g.as_millis() as u64, Ordering::Relaxed);
            }
        }
        self.frames.fetch_add(u64::from(marker), Ordering::Relaxed);
    }

    /// The longest video gap since `reader`'s last call (`reader` below
    /// [`Live::READERS`]), counting the time since the last packet (video
    /// that stopped for good shows here too); `None` before any video.
    pub fn take_gap(&self, now: Instant, reader: usize) -> Option<Duration> {
        let last = self.last_video_ms.load(Ordering::Relaxed);
        if last == 0 {
            return None;
        }
        let since = (now.duration_since(self.epoch).as_millis() as u64).saturating_sub(last);
        let gap = self.gap_ms[reader % Self::READERS]
            .swap(0, Ordering::Relaxed)
            .max(since);
        Some(Duration::from_millis(gap))
    }
}

impl Default for ViewerOptions {
    fn default() -> Self {
        ViewerOptions {
            record: true,
            vanish: false,
            token: None,
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            video: true,
            audio: true,
            chat_message: None,
            chat_later: Vec::new(),
            profile_level_id: "42e01f",
            srtp_profiles: Vec::new(),
            measure_from: None,
            decode: None,
            live: None,
            decrypt: true,
        }
    }
}

/// Watches `channel` for `dur` and returns what arrived.
pub async fn watch(
    http_addr: SocketAddr,
    channel: &str,
    dur: Duration,
    opts: ViewerOptions,
) -> anyhow::Result<Received> {
    let socket = bind_udp(SocketAddr::new(opts.bind, opts.port))?;
    let local = socket.local_addr()?;
    // Checks paced as RFC 8445's Ta (50 ms), as browsers do, for the
    // same 1.4 s: at rtc's default 200 ms the viewer nominates, and sends
    // its first ClientHello, only on its next tick, since an ICE-lite
    // server sends no checks of its own to wake it. That is 400 ms of a
    // join that no browser viewer waits.
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28));
    if !opts.srtp_profiles.is_empty() {
        settings = settings.with_srtp_protection_profiles(opts.srtp_profiles.clone());
    }
    let mut pc = peer_connection(opts.profile_level_id, settings.build())?;
    let recv = || {
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        })
    };
    if opts.audio {
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, recv())?;
    }
    if opts.video {
        pc.add_transceiver_from_kind(RtpCodecKind::Video, recv())?;
    }
    pc.create_data_channel("chat", None)?;
    let offer_sdp = crate::whep::offer_with_host_candidate(&mut pc, local)?;

    let started = Instant::now();
    let auth = opts.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    // Signalling comes from the viewer's own loopback address too, so the
    // server's per-address limits see one client per viewer.
    let from = opts.bind.is_loopback().then_some(opts.bind);
    // A server of a site may send the offer to another (307, the same
    // offer again there): followed, as players do.
    let (mut addr, mut path) = (http_addr, format!("/whep/{channel}"));
    let mut hops = 0;
    let resp = loop {
        let resp =
            crate::http::try_http_from(from, addr, "POST", &path, &headers, offer_sdp.as_bytes())
                .await?;
        if resp.status != 307 || hops == MAX_REDIRECTS {
            break resp;
        }
        hops += 1;
        let to = resp.header("location").unwrap_or_default();
        (addr, path) = crate::http::split_location(addr, to)?;
    };
    let http_addr = addr;
    anyhow::ensure!(
        resp.status == 201,
        "WHEP POST answered {}: {}",
        resp.status,
        resp.text()
    );
    let mut out = Received {
        location: resp.header("location").unwrap_or_default().to_string(),
        answer: resp.text(),
        ..Default::default()
    };
    pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(out.answer.clone())?,
    )?;

    // Room for a whole GRO read (a server's GSO run).
    let mut buf = vec![0u8; crate::clear::READ_BYTES];
    crate::clear::tune(&socket);
    let twcc_id = crate::clear::twcc_id(&out.answer);
    let mut feedback = (!opts.decrypt).then(|| crate::clear::Feedback::new(Instant::now()));
    let mut meter = Meter::default();
    // What a read held for the peer connection, fed to it one per turn.
    let mut for_peer = std::collections::VecDeque::new();
    let mut chat_id = None;
    let mut chat_opened: Option<Instant> = None;
    let mut chat_later = opts.chat_later.clone();
    chat_later.sort_by_key(|(after, _)| *after);
    let mut chat_later = std::collections::VecDeque::from(chat_later);
    let mut checker = opts
        .decode
        .map(|(rotation, me)| crate::decode::Checker::new(rotation, me));
    let deadline = started + dur;
    loop {
        flush(&mut pc, &socket).await;
        while let Some(ev) = pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) => {
                    out.connected_after = Some(started.elapsed());
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Failed,
                ) => {
                    anyhow::bail!("viewer connection failed");
                }
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                    chat_id = Some(id);
                    chat_opened = Some(Instant::now());
                    if let Some(m) = &opts.chat_message {
                        if let Some(mut dc) = pc.data_channel(id) {
                            dc.send_text(Instant::now(), m.clone())?;
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(m) = pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(_, p)
                    if p.header.payload_type == VIDEO_PT || p.header.payload_type == AUDIO_PT =>
                {
                    let video = p.header.payload_type == VIDEO_PT;
                    let now = Instant::now();
                    let h = &p.header;
                    let measuring = meter.packet(
                        &opts,
                        &mut out,
                        started,
                        now,
                        video,
                        h.sequence_number,
                        h.marker,
                        p.payload.len(),
                    );
                    if video {
                        let c = &mut out.counters;
                        // Stamps travel in SEI NAL units, alone or aggregated
                        // (STAP-A): only those packets are searched.
                        let nal = p.payload.first().map_or(0, |b| b & 0x1f);
                        if measuring
                            && (nal == 6 || nal == 24)
                            && c.latency_us.len() < MAX_LATENCY_SAMPLES
                        {
                            let now_us = crate::stamp::now_us();
                            for sent in crate::stamp::find_all(&p.payload) {
                                let d = now_us.saturating_sub(sent).min(u64::from(u32::MAX));
                                c.latency_us.push(d as u32);
                            }
                        }
                        if let Some(chk) = checker.as_mut() {
                            chk.packet(now, &p.payload, p.header.marker);
                            if let Some(l) = &opts.live {
                                l.decoded.store(chk.stats.frames, Ordering::Relaxed);
                                l.decode_errors.store(chk.stats.errors, Ordering::Relaxed);
                            }
                        }
                        if opts.record {
                            out.video.push(p);
                        }
                    } else if opts.record {
                        out.audio.push(p);
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for p in packets {
                        if let Some(sr) = p
                            .as_any()
                            .downcast_ref::<rtc::rtcp::sender_report::SenderReport>()
                        {
                            let ntp = (sr.ntp_time >> 32) as f64
                                + (sr.ntp_time & 0xffff_ffff) as f64 / 4_294_967_296.0;
                            out.sender_reports.push((sr.ssrc, ntp, sr.rtp_time));
                        }
                    }
                }
                RTCMessage::DataChannelMessage(id, msg) if Some(id) == chat_id => {
                    out.chat
                        .push(String::from_utf8_lossy(&msg.data).into_owned());
                    out.chat_at.push(Instant::now());
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Some(fb) = feedback.as_mut() {
            let due = fb.due(now);
            if !due.is_empty() {
                let id = pc.get_receivers().next();
                if let Some(mut r) = id.and_then(|id| pc.rtp_receiver(id)) {
                    let _ = r.write_rtcp(now, due);
                }
            }
        }
        let mut next_chat = None;
        if let (Some(id), Some(opened)) = (chat_id, chat_opened) {
            while let Some((after, _)) = chat_later.front() {
                let due = opened + *after;
                if due > now {
                    next_chat = Some(due);
                    break;
                }
                let (_, text) = chat_later.pop_front().expect("front exists");
                if let Some(mut dc) = pc.data_channel(id) {
                    dc.send_text(now, text)?;
                }
            }
        }
        let wake = pc
            .poll_timeout()
            .unwrap_or(deadline)
            .min(deadline)
            .min(next_chat.unwrap_or(deadline))
            .min(feedback.as_ref().map_or(deadline, |f| f.next()));
        // One datagram into the peer connection per turn, polled before the
        // next: it acts on some (the DTLS flight that keys SRTP) only when
        // polled, and a read can hold more than one (GRO joins a server's
        // last DTLS record and its first media packet when the GSO run has
        // them together), so media fed at once would be dropped.
        if let Some((at, from, data)) = for_peer.pop_front() {
            let _ = pc.handle_read(TaggedBytesMut {
                now: at,
                transport: TransportContext {
                    local_addr: local,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: data,
            });
            continue;
        }
        tokio::select! {
            r = socket.readable() => {
                r?;
                // Bounded, so a flood cannot hold the runtime; what is
                // left is read on the next turn.
                for _ in 0..MAX_READS_PER_TURN {
                    let read = match crate::clear::recv(&socket, &mut buf) {
                        Ok(r) => r,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    };
                    let now = Instant::now();
                    for d in crate::clear::datagrams(&buf[..read.len], read.segment) {
                        let clear = feedback.as_mut().and_then(|fb| {
                            let h = crate::clear::rtp_header(d, twcc_id)?;
                            let video = h.payload_type == VIDEO_PT;
                            (video || h.payload_type == AUDIO_PT).then_some((fb, h, video))
                        });
                        match clear {
                            Some((fb, h, video)) => {
                                fb.packet(read.arrived_us, usize::from(video), &h);
                                meter.packet(&opts, &mut out, started, now, video, h.seq, h.marker, h.body);
                            }
                            None => for_peer.push_back((now, read.from, BytesMut::from(d))),
                        }
                    }
                    if !for_peer.is_empty() {
                        break;
                    }
                }
            }
            _ = tokio::time::sleep(wake.saturating_duration_since(now)) => {
                let _ = pc.handle_timeout(Instant::now());
            }
        }
    }
    if let Some(chk) = checker {
        out.counters.decode = chk.stats;
    }
    if opts.vanish {
        return Ok(out);
    }
    // Leave politely, as a player closing its page does.
    hang_up(&mut pc, &socket, http_addr, &out.location).await;
    Ok(out)
}

/// Reads per wake-up of a viewer before it lets others run.
const MAX_READS_PER_TURN: usize = 64;

/// What a viewer counts of each media packet, decrypted or read from its
/// clear header: loss from sequence gaps, frames, freezes.
#[derive(Default)]
struct Meter {
    last_seq: [Option<u16>; 2],
    last_video: Option<Instant>,
}

impl Meter {
    /// Counts one packet; true once the measurement window is open.
    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        opts: &ViewerOptions,
        out: &mut Received,
        started: Instant,
        now: Instant,
        video: bool,
        seq: u16,
        marker: bool,
        bytes: usize,
    ) -> bool {
        let c = &mut out.counters;
        c.bytes += bytes as u64;
        let slot = &mut self.last_seq[usize::from(video)];
        if let Some(prev) = *slot {
            let d = seq.wrapping_sub(prev);
            if d > 1 && d < 0x8000 {
                c.lost += u64::from(d - 1);
            }
        }
        *slot = Some(seq);
        let measuring = opts.measure_from.is_none_or(|t| now >= t);
        if !video {
            c.audio_packets += 1;
            return measuring;
        }
        c.video_packets += 1;
        if let Some(l) = &opts.live {
            l.video(now, self.last_video.map(|t| now.duration_since(t)), marker);
        }
        if let Some(t) = self.last_video.filter(|_| measuring) {
            let gap = now.duration_since(t).as_millis() as u64;
            c.longest_video_gap_ms = c.longest_video_gap_ms.max(gap);
            c.freezes += u64::from(gap > FREEZE_MS);
        }
        c.frames += u64::from(marker);
        self.last_video = Some(now);
        out.last_video_at = self.last_video;
        out.first_video_after.get_or_insert(started.elapsed());
        measuring
    }
}

/// A peer connection with H.264 (`profile_level_id`) and Opus at the
/// payload types the server uses, and RTCP delivered to the caller: the
/// same for viewers and publishers, so both negotiate alike.
pub fn peer_connection(
    profile_level_id: &str,
    settings: SettingEngine,
) -> anyhow::Result<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
                ),
                rtcp_feedback: vec![],
            },
            payload_type: VIDEO_PT,
        },
        RtpCodecKind::Video,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            payload_type: AUDIO_PT,
        },
        RtpCodecKind::Audio,
    )?;
    let registry =
        Registry::new().with(rtc::interceptor::Slot::from(14_000), DeliverRtcp::default());
    let registry = register_default_interceptors(registry, &mut media)?;
    Ok(RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())?)
}

/// One turn of a sans-IO peer's loop: feeds `pc` the next datagram, or
/// lets it run its timers if none comes within `wait`.
pub(crate) async fn step(
    pc: &mut RTCPeerConnection,
    socket: &UdpSocket,
    local: SocketAddr,
    buf: &mut [u8],
    wait: Duration,
) -> anyhow::Result<()> {
    tokio::select! {
        r = socket.recv_from(buf) => {
            let (n, from) = r?;
            let _ = pc.handle_read(TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext { local_addr: local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                message: BytesMut::from(&buf[..n]),
            });
        }
        _ = tokio::time::sleep(wait) => {
            let _ = pc.handle_timeout(Instant::now());
        }
    }
    Ok(())
}

/// Sends every datagram `pc` has queued.
pub(crate) async fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket) {
    while let Some(w) = pc.poll_write() {
        let _ = socket.send_to(&w.message, w.transport.peer_addr).await;
    }
}

/// Closes `pc`, sends what closing queued, and DELETEs the WHIP/WHEP
/// session at `location` (if the server gave one).
pub(crate) async fn hang_up(
    pc: &mut RTCPeerConnection,
    socket: &UdpSocket,
    http_addr: SocketAddr,
    location: &str,
) {
    let _ = pc.close();
    flush(pc, socket).await;
    if let Ok((addr, path)) = crate::http::split_location(http_addr, location) {
        if !path.is_empty() {
            let _ = try_http(addr, "DELETE", &path, &[], b"").await;
        }
    }
}

/// Creates the offer, sets it, and adds our one host candidate (the
/// socket's address) so the offer carries it: the server is ICE-lite and
/// needs the client's checks to learn the path.
pub fn offer_with_host_candidate(
    pc: &mut rtc::peer_connection::RTCPeerConnection,
    local: SocketAddr,
) -> anyhow::Result<String> {
    let offer = pc.create_offer(None)?;
    pc.set_local_description(Instant::now(), offer)?;
    let host = rtc::peer_connection::transport::CandidateHostConfig {
        base_config: rtc::peer_connection::transport::CandidateConfig {
            network: "udp".into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(
        rtc::peer_connection::transport::RTCIceCandidate::from(&host).to_json()?,
    )?;
    Ok(pc
        .local_description()
        .ok_or_else(|| anyhow::anyhow!("no local description"))?
        .sdp)
}

/// A peer's UDP socket with a 1 MiB receive buffer. Hundreds of peers share
/// this process's two cores: with the default ~200 KiB, a fast-start GOP
/// arriving while the runtime was busy elsewhere overflowed it, and a lost
/// DTLS flight cost that peer seconds of retransmission backoff, which the
/// report then blamed on the server.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = s.set_recv_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}
