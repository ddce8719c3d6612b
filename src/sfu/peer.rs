//! One WebRTC viewer: an `rtc` peer connection built from its offer, plus
//! what the driver needs to route to it and feed it.

use super::congestion::{Controller, Level};
use super::retransmit::{History, SentLog};
use super::sdp::{self, Offer, VideoCodec};
use super::seqmap::SeqMap;
use super::SfuError;
use crate::media::MediaKind;
use rtc::data_channel::RTCDataChannelId;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::Registry;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::{
    SctpMaxMessageSize, SettingEngineBuilder,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ICE-lite only hears STUN from the viewer. aiortc sends consent checks
/// every 4-6 s, so the defaults would flap; these tolerate a late check and
/// reap a vanished viewer after ~30 s.
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(12);
const ICE_FAILED_AFTER: Duration = Duration::from_secs(18);

/// Remote addresses one peer may use at once (host, reflexive, relay on
/// IPv4 and IPv6). Caps the routing map a client could grow.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// Largest data-channel message either side may send, and our SCTP receive
/// window (see `build_pc`).
const DC_MAX_MESSAGE: u32 = 8 * 1024;
const DC_RECEIVE_WINDOW: u32 = 64 * 1024;

/// Packets written before the caller takes the datagrams out. Each layer of
/// rtc's handler chain queues messages by value in a `VecDeque` that never
/// shrinks: a whole fast-start GOP (hundreds of packets) written at once
/// left every viewer holding tens of kilobytes of empty queue.
const DRAIN_EVERY: u64 = 4;

pub type PeerId = u64;

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
    pub id: RTCRtpSenderId,
    pub ssrc: u32,
    pub payload_type: u8,
}

pub struct Peer {
    pub id: PeerId,
    pub session: String,
    pub channel: Arc<str>,
    pub ufrag: String,
    pub pc: RTCPeerConnection,
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
    /// WHIP/WHEP PATCH requests so far, and the candidates they added.
    pub patches: u32,
    pub trickled: usize,
    /// The RTP timestamp of the keyframe being sent at keyframes-only
    /// level: WHIP marks only a keyframe's first packet, so the rest of
    /// the access unit is recognised by its timestamp.
    keyframe_ts: Option<u32>,
}

pub struct Answer {
    pub peer: Peer,
    pub sdp: String,
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the channel's source sends, which a viewer's answer follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceVideo {
    pub codec: VideoCodec,
    /// H.264 profile_idc, once known.
    pub profile: Option<u8>,
}

/// A WHIP publisher's answer, and what it negotiated to send.
pub struct PublisherAnswer {
    pub answer: Answer,
    /// Payload type and codec of its video.
    pub video: Option<(u8, VideoCodec)>,
    pub audio_pt: Option<u8>,
}

/// Builds a viewer's peer connection and its answer from an offer.
pub fn answer_viewer(
    id: PeerId,
    channel: Arc<str>,
    offer_sdp: String,
    candidates: &Candidates,
    certificate: &RTCCertificate,
    source: SourceVideo,
    now: Instant,
) -> Result<Answer, SfuError> {
    let SourceVideo {
        codec: source,
        profile: stream_profile,
    } = source;
    let offer: Offer =
        sdp::read_offer(&offer_sdp).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    // The channel's current codec when the viewer can decode it; else
    // H.264, which every source but a VP8 browser publisher sends.
    let video_fmt = if offer.has_video {
        let vp8 = offer.vp8.iter().find(|f| f.clock_rate == 90_000);
        match (source, vp8) {
            (VideoCodec::Vp8, Some(f)) => Some((f, VideoCodec::Vp8)),
            _ => Some(
                sdp::choose_h264(&offer.h264, stream_profile)
                    .map(|f| (f, VideoCodec::H264))
                    .ok_or_else(|| {
                        SfuError::NoCommonCodec(
                            "the offer's video has no H.264 with packetization-mode=1; this server sends H.264".into(),
                        )
                    })?,
            ),
        }
    } else {
        None
    };
    let opus = offer.opus.iter().find(|f| f.clock_rate == 48_000);
    if video_fmt.is_none() && opus.is_none() {
        return Err(SfuError::NoCommonCodec(
            "the offer has neither H.264 video nor Opus audio".into(),
        ));
    }

    let mut media = MediaEngine::default();
    let video_codec = video_fmt.map(|(f, kind)| RTCRtpCodec {
        mime_type: match kind {
            VideoCodec::H264 => MIME_TYPE_H264,
            VideoCodec::Vp8 => MIME_TYPE_VP8,
        }
        .to_owned(),
        clock_rate: 90_000,
        channels: 0,
        // Echo the viewer's own fmtp so the answer names exactly the profile
        // it offered.
        sdp_fmtp_line: f.fmtp.clone(),
        rtcp_feedback: vec![
            feedback("nack", ""),
            feedback("nack", "pli"),
            feedback("ccm", "fir"),
            // The viewer's estimate of its link, for congestion control
            // (see congestion.rs).
            feedback("goog-remb", ""),
        ],
    });
    if let (Some(codec), Some((f, _))) = (&video_codec, video_fmt) {
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec.clone(),
                    payload_type: f.payload_type,
                },
                RtpCodecKind::Video,
            )
            .map_err(|e| SfuError::Internal(format!("register H.264: {e}")))?;
    }
    let audio_codec = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    };
    // An audio m-line without a registered Opus is answered without ICE
    // credentials, which some stacks refuse; register it whenever audio is
    // offered.
    if offer.has_audio {
        let pt = opus.map(|f| f.payload_type).unwrap_or(111);
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: audio_codec.clone(),
                    payload_type: pt,
                },
                RtpCodecKind::Audio,
            )
            .map_err(|e| SfuError::Internal(format!("register Opus: {e}")))?;
    }
    // A viewer's interceptor chain is only our RTCP tap. Every interceptor
    // moves each outgoing packet through its own queue by value (the
    // largest user-space cost per packet in the profile), and the stock ones
    // have nothing to do for a peer that only receives: receiver reports and
    // TWCC feedback are about media we receive from it, and there is none.
    // NACKs are answered by the driver from the channel's one buffer
    // (`super::retransmit`; the codec's `nack` feedback above negotiates
    // them), and sender reports are ours (driver::send_sender_reports): the
    // stock ones map RTP time to the moment a packet was written, so ingest
    // jitter between audio and video would show up as lip-sync error.
    let registry = Registry::new().with(
        Slot::from(super::feedback::SLOT),
        super::feedback::DeliverRtcp::default(),
    );

    let (ufrag, mut pc) = build_pc(media, registry, certificate, now)?;

    let mut add = |kind: RtpCodecKind,
                   codec: RTCRtpCodec,
                   label: &str|
     -> Result<(RTCRtpSenderId, u32), SfuError> {
        let ssrc = rand::random::<u32>();
        let track = MediaStreamTrack::new(
            format!("onair-{channel}"),
            format!("{label}-{id}"),
            label.to_string(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let sender = pc
            .add_track(track)
            .map_err(|e| SfuError::Internal(format!("add track: {e}")))?;
        Ok((sender, ssrc))
    };
    let video = match video_codec {
        Some(c) => Some(add(RtpCodecKind::Video, c, "video")?),
        None => None,
    };
    let audio = match opus {
        Some(_) => Some(add(RtpCodecKind::Audio, audio_codec, "audio")?),
        None => None,
    };

    let sdp = finish_answer(&mut pc, offer_sdp, candidates, now)?;

    let mut negotiated = |sender: Option<(RTCRtpSenderId, u32)>| -> Option<Sender> {
        let (id, ssrc) = sender?;
        let mut s = pc.rtp_sender(id)?;
        let pt = s
            .get_parameters()
            .rtp_parameters
            .codecs
            .first()?
            .payload_type;
        Some(Sender {
            id,
            ssrc,
            payload_type: pt,
        })
    };
    let video = negotiated(video);
    let audio = negotiated(audio);
    let mut peer = Peer::new(id, channel, ufrag, pc, now);
    peer.video_codec = video.and(video_fmt.map(|(_, kind)| kind));
    peer.video = video;
    peer.audio = audio;
    Ok(Answer { peer, sdp })
}

/// A peer connection set up the way every onair peer is: ICE-lite on our
/// one port, our credentials, no mDNS, DTLS server, the shared certificate.
fn build_pc(
    media: MediaEngine,
    registry: Registry,
    certificate: &RTCCertificate,
    now: Instant,
) -> Result<(String, RTCPeerConnection), SfuError> {
    let ufrag = random_token(8);
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(ufrag.clone(), random_token(16))
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), None)
        // The data channel carries chat lines (at most 500 characters) and
        // small events. rtc allocates a working buffer of the message size
        // per peer (64 KiB by default), and the receive window bounds what
        // a peer can make us hold in reassembly (1 MiB by default).
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(DC_MAX_MESSAGE))
        .with_sctp_max_receive_buffer_size(DC_RECEIVE_WINDOW)
        .build();
    let config = RTCConfigurationBuilder::new()
        .with_certificates(vec![certificate.clone()])
        .build();
    let pc = RTCPeerConnectionBuilder::new()
        .with_configuration(config)
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(|e| SfuError::Internal(format!("peer connection: {e}")))?;
    Ok((ufrag, pc))
}

/// Applies the offer, announces our host candidates and ends gathering, so
/// the answer is complete: OBS (30.2+) and other non-trickle clients get
/// every candidate in it.
fn finish_answer(
    pc: &mut RTCPeerConnection,
    offer_sdp: String,
    candidates: &Candidates,
    now: Instant,
) -> Result<String, SfuError> {
    let remote =
        RTCSessionDescription::offer(offer_sdp).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    pc.set_remote_description(now, remote)
        .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    let udp = candidates
        .udp
        .iter()
        .map(|a| (a, "udp", TcpType::Unspecified));
    let tcp = candidates.tcp.iter().map(|a| (a, "tcp", TcpType::Passive));
    for (addr, network, tcp_type) in udp.chain(tcp) {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: network.to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            tcp_type,
        }
        .new_candidate_host()
        .map_err(|e| SfuError::Internal(format!("candidate: {e}")))?;
        let init = RTCIceCandidate::from(&host)
            .to_json()
            .map_err(|e| SfuError::Internal(format!("candidate: {e}")))?;
        pc.add_local_candidate(init)
            .map_err(|e| SfuError::Internal(format!("candidate: {e}")))?;
    }
    pc.add_local_candidate(RTCIceCandidateInit::default())
        .map_err(|e| SfuError::Internal(format!("end of candidates: {e}")))?;
    let answer = pc
        .create_answer(None)
        .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    pc.set_local_description(now, answer)
        .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    pc.local_description()
        .map(|d| d.sdp)
        .ok_or_else(|| SfuError::Internal("no local description".into()))
}

/// Builds a WHIP publisher's peer connection and its answer. The publisher
/// sends; we receive H.264 (packetization-mode 1) or VP8, and Opus.
pub fn answer_publisher(
    id: PeerId,
    channel: Arc<str>,
    offer_sdp: String,
    candidates: &Candidates,
    certificate: &RTCCertificate,
    now: Instant,
) -> Result<PublisherAnswer, SfuError> {
    let offer: Offer =
        sdp::read_offer(&offer_sdp).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    // H.264 first: it is what HLS, recordings and every viewer can take.
    let video = sdp::choose_h264(&offer.h264, None)
        .map(|f| (f, VideoCodec::H264))
        .or_else(|| {
            offer
                .vp8
                .iter()
                .find(|f| f.clock_rate == 90_000)
                .map(|f| (f, VideoCodec::Vp8))
        });
    if offer.has_video && video.is_none() {
        return Err(SfuError::NoCommonCodec(
            "the offer's video has neither H.264 (packetization-mode=1) nor VP8; publish H.264 (set the encoder to x264 or NVENC H.264)".into(),
        ));
    }
    let opus = offer.opus.iter().find(|f| f.clock_rate == 48_000);
    if video.is_none() && opus.is_none() {
        return Err(SfuError::NoCommonCodec(
            "the offer has neither H.264 or VP8 video nor Opus audio".into(),
        ));
    }
    let mut media = MediaEngine::default();
    if let Some((f, kind)) = video {
        let codec = RTCRtpCodec {
            mime_type: match kind {
                VideoCodec::H264 => MIME_TYPE_H264,
                VideoCodec::Vp8 => MIME_TYPE_VP8,
            }
            .to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: f.fmtp.clone(),
            rtcp_feedback: vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
            ],
        };
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: f.payload_type,
                },
                RtpCodecKind::Video,
            )
            .map_err(|e| SfuError::Internal(format!("register video: {e}")))?;
    }
    if let Some(f) = opus {
        let codec = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: f.fmtp.clone(),
            rtcp_feedback: vec![],
        };
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: f.payload_type,
                },
                RtpCodecKind::Audio,
            )
            .map_err(|e| SfuError::Internal(format!("register Opus: {e}")))?;
    }
    // NACKs to the publisher for our own losses and receiver reports.
    let registry =
        rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors(
            Registry::new(),
            &mut media,
        )
        .map_err(|e| SfuError::Internal(format!("interceptors: {e}")))?;
    let (ufrag, mut pc) = build_pc(media, registry, certificate, now)?;
    let sdp = finish_answer(&mut pc, offer_sdp, candidates, now)?;
    let peer = Peer::new(id, channel, ufrag, pc, now);
    Ok(PublisherAnswer {
        answer: Answer { peer, sdp },
        video: video.map(|(f, kind)| (f.payload_type, kind)),
        audio_pt: opus.map(|f| f.payload_type),
    })
}

impl Peer {
    fn new(
        id: PeerId,
        channel: Arc<str>,
        ufrag: String,
        pc: RTCPeerConnection,
        now: Instant,
    ) -> Peer {
        Peer {
            id,
            session: random_token(16),
            channel,
            ufrag,
            pc,
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
        }
    }

    /// This viewer's copy of a shared packet: its own SSRC, payload type
    /// and sequence number `seq`. The payload is shared.
    fn rewrite(sender: Sender, seq: u16, pkt: &Packet) -> Packet {
        let mut pkt = pkt.clone();
        pkt.header.ssrc = sender.ssrc;
        pkt.header.payload_type = sender.payload_type;
        pkt.header.sequence_number = seq;
        pkt
    }

    /// Hands one access unit's (or audio frame's) packets to this viewer's
    /// connection; the caller drains `pc.poll_write()`. Returns the packets
    /// and payload bytes written.
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        keyframe: bool,
        packets: &[Packet],
        now: Instant,
        drain: &mut dyn FnMut(&mut RTCPeerConnection),
    ) -> (u64, u64) {
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
        let (sender, seqs) = match kind {
            MediaKind::Video => (self.video, &mut self.video_seq),
            MediaKind::Audio => (self.audio, &mut self.audio_seq),
        };
        if skip {
            packets
                .iter()
                .for_each(|p| seqs.skip(p.header.sequence_number));
            return (0, 0);
        }
        let Some(sender) = sender else { return (0, 0) };
        let (mut n, mut bytes) = (0u64, 0u64);
        for pkt in packets {
            let channel_seq = pkt.header.sequence_number;
            let seqs = match kind {
                MediaKind::Video => &mut self.video_seq,
                MediaKind::Audio => &mut self.audio_seq,
            };
            let Some(seq) = seqs.map(channel_seq) else {
                continue;
            };
            let pkt = Self::rewrite(sender, seq, pkt);
            if kind == MediaKind::Video {
                self.sent.record(
                    pkt.header.sequence_number,
                    channel_seq,
                    pkt.header.timestamp,
                );
            }
            let len = pkt.payload.len() as u64;
            let Some(mut rtp) = self.pc.rtp_sender(sender.id) else {
                return (n, bytes);
            };
            if rtp.write_rtp(now, pkt).is_ok() {
                n += 1;
                bytes += len;
            }
            if n % DRAIN_EVERY == 0 {
                drain(&mut self.pc);
            }
        }
        drain(&mut self.pc);
        let sent = match kind {
            MediaKind::Video => &mut self.video_sent,
            MediaKind::Audio => &mut self.audio_sent,
        };
        sent.0 = sent.0.wrapping_add(n as u32);
        sent.1 = sent.1.wrapping_add(bytes as u32);
        (n, bytes)
    }

    /// Sends a just-connected viewer the current GOP so its decoder starts
    /// now. The frames keep their order but are squeezed to one tick apart,
    /// ending at the live frame's timestamp: the player decodes them all and
    /// shows the latest, instead of replaying the last second and staying
    /// that far behind.
    pub fn fast_start(&mut self, gop: &[Packet], drain: &mut dyn FnMut(&mut RTCPeerConnection)) {
        let (Some(sender), Some(last)) = (self.video, gop.last()) else {
            return;
        };
        // The GOP is older than the live packets skipped while connecting.
        self.video_seq.restart_if_unsent();
        let frames = 1 + gop
            .windows(2)
            .filter(|w| w[0].header.timestamp != w[1].header.timestamp)
            .count() as u32;
        let now = Instant::now();
        let mut frame = 0u32;
        for (i, pkt) in gop.iter().enumerate() {
            if i > 0 && gop[i - 1].header.timestamp != pkt.header.timestamp {
                frame += 1;
            }
            let channel_seq = pkt.header.sequence_number;
            let Some(seq) = self.video_seq.map(channel_seq) else {
                continue;
            };
            let mut pkt = Self::rewrite(sender, seq, pkt);
            pkt.header.timestamp = last.header.timestamp.wrapping_sub(frames - 1 - frame);
            self.sent.record(
                pkt.header.sequence_number,
                channel_seq,
                pkt.header.timestamp,
            );
            if let Some(mut rtp) = self.pc.rtp_sender(sender.id) {
                let _ = rtp.write_rtp(now, pkt);
            }
            if (i + 1) % DRAIN_EVERY as usize == 0 {
                drain(&mut self.pc);
            }
        }
        drain(&mut self.pc);
        self.got_keyframe();
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
    /// Returns how many were resent.
    pub fn resend(
        &mut self,
        history: &History,
        seqs: &[u16],
        now: Instant,
        drain: &mut dyn FnMut(&mut RTCPeerConnection),
    ) -> u64 {
        let Some(sender) = self.video else { return 0 };
        let level = self.congestion.level();
        let mut n = 0;
        for &seq in seqs {
            let Some((channel_seq, timestamp)) = self.sent.lookup(seq) else {
                continue;
            };
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
            let mut pkt = Self::rewrite(sender, seq, orig);
            pkt.header.timestamp = timestamp;
            let Some(mut rtp) = self.pc.rtp_sender(sender.id) else {
                return n;
            };
            if rtp.write_rtp(now, pkt).is_ok() {
                n += 1;
                if n % DRAIN_EVERY == 0 {
                    drain(&mut self.pc);
                }
            }
        }
        drain(&mut self.pc);
        n
    }
}

/// An `a=rtcp-fb` entry of a codec.
pub(crate) fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}
