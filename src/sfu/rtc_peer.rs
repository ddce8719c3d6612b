//! Peers on webrtc-rs's generic peer connection: WHIP publishers, and
//! viewers under `--webrtc-engine rtc`. Built ICE-lite on our one port, as
//! DTLS server, with the shared certificate.

use super::peer::{random_token, Answer, Candidates, Conn, Peer, PeerId, Sender, SourceVideo};
use super::sdp::{self, Offer, VideoCodec};
use super::SfuError;
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
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ICE-lite only hears STUN from the viewer. aiortc sends consent checks
/// every 4-6 s, so the defaults would flap; these tolerate a late check and
/// reap a vanished viewer after ~30 s.
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(12);
const ICE_FAILED_AFTER: Duration = Duration::from_secs(18);

/// Largest data-channel message either side may send, and our SCTP receive
/// window (see `build_pc`).
const DC_MAX_MESSAGE: u32 = 8 * 1024;
const DC_RECEIVE_WINDOW: u32 = 64 * 1024;

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
            id: Some(id),
            ssrc,
            payload_type: pt,
        })
    };
    let video = negotiated(video);
    let audio = negotiated(audio);
    let mut peer = Peer::new(id, channel, ufrag, Conn::Rtc(Box::new(pc)), now);
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
    let peer = Peer::new(id, channel, ufrag, Conn::Rtc(Box::new(pc)), now);
    Ok(PublisherAnswer {
        answer: Answer { peer, sdp },
        video: video.map(|(f, kind)| (f.payload_type, kind)),
        audio_pt: opus.map(|f| f.payload_type),
    })
}

/// An `a=rtcp-fb` entry of a codec.
pub(crate) fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}
