//! One WHEP session to the server a channel is live on: an `rtc` peer
//! connection that offers to receive H.264 or VP8 and Opus, on a UDP socket of its
//! own, whose RTP is depacketized into this server's hub as a publish of
//! [`Source::Relay`] (the same path a WHIP publisher's media takes), from
//! its first packet to the session's end.

use crate::hub::{Hub, Source};
use crate::sfu::sdp::VideoCodec;
use crate::sfu::whip::{Ingest, PLI_INTERVAL};
use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// The header that names a request as another server of the site's.
pub const NODE_TOKEN_HEADER: &str = "x-onair-node";
/// Payload types of our offer; the answer keeps them. The origin answers
/// VP8 for a channel a browser publishes in VP8, else H.264.
const VIDEO_PT: u8 = 102;
const VP8_PT: u8 = 96;
const AUDIO_PT: u8 = 111;
/// A session that has not connected this long after its answer failed:
/// one server reaches another in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Nothing from the origin this long (it sends media while live, and
/// answers our consent checks every couple of seconds otherwise): it is
/// gone, killed or cut off, and the channel is looked up again.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(3);
/// The WHEP request, answer included.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest datagram read: media packets are about 1 200 bytes.
const MAX_DATAGRAM: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("the WHEP request failed: {0}")]
    Signal(String),
    #[error("the origin answered {0}: {1}")]
    Refused(u16, String),
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection did not come up in time")]
    NoConnection,
    #[error("the origin went silent")]
    Silent,
    #[error("the connection failed")]
    Failed,
    /// The origin sends this channel in VP8 (a browser publishing without
    /// H.264), which the hub does not carry: its viewers watch at the
    /// origin.
    #[error("the channel is VP8, which an edge does not relay")]
    Vp8,
}

fn rtc_err(e: impl std::fmt::Display) -> PullError {
    PullError::Rtc(e.to_string())
}

/// Where to pull from and as whom.
pub struct Origin<'a> {
    /// The origin's `--node-url`.
    pub url: &'a str,
    pub token: &'a str,
}

/// Pulls `channel` from `origin` into `hub` until `stop` is cancelled (then
/// the session is ended politely, with a DELETE) or it fails. `Ok` only
/// after `stop`. The relayed publish lasts while media flows: it starts
/// when the connection is up and ends with the session.
pub async fn pull(
    http: &reqwest::Client,
    hub: &Arc<Hub>,
    channel: &str,
    origin: Origin<'_>,
    stop: &CancellationToken,
) -> Result<(), PullError> {
    let target = target_addr(origin.url).await?;
    let socket = bind_towards(target)?;
    let local = socket.local_addr()?;
    let mut pc = peer_connection()?;
    let recv = || {
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        })
    };
    pc.add_transceiver_from_kind(RtpCodecKind::Audio, recv())
        .map_err(rtc_err)?;
    pc.add_transceiver_from_kind(RtpCodecKind::Video, recv())
        .map_err(rtc_err)?;
    let offer = offer_with_host(&mut pc, local)?;
    let (answer, location) = signal(http, &origin, channel, offer).await?;
    let video = answered_video(&answer);
    let result = if video.is_some_and(|(_, c)| c == VideoCodec::Vp8) {
        Err(PullError::Vp8)
    } else {
        pc.set_remote_description(
            Instant::now(),
            RTCSessionDescription::answer(answer).map_err(rtc_err)?,
        )
        .map_err(rtc_err)?;
        let result = run(&mut pc, &socket, local, hub, channel, video, stop).await;
        let _ = pc.close();
        flush(&mut pc, &socket).await;
        result
    };
    if let Some(location) = location {
        let _ = http
            .delete(location)
            .header(NODE_TOKEN_HEADER, origin.token)
            .timeout(SIGNAL_TIMEOUT)
            .send()
            .await;
    }
    result
}

/// The video format the origin's answer chose: its payload type and codec.
fn answered_video(answer: &str) -> Option<(u8, VideoCodec)> {
    let a = crate::sfu::sdp::read_offer(answer).ok()?;
    match (a.vp8.first(), a.h264.first()) {
        (Some(f), _) => Some((f.payload_type, VideoCodec::Vp8)),
        (None, Some(f)) => Some((f.payload_type, VideoCodec::H264)),
        (None, None) => None,
    }
}

/// The session's loop: datagrams in, the peer's timers, its RTP into the
/// hub, keyframe requests out.
async fn run(
    pc: &mut RTCPeerConnection,
    socket: &UdpSocket,
    local: SocketAddr,
    hub: &Arc<Hub>,
    channel: &str,
    video: Option<(u8, VideoCodec)>,
    stop: &CancellationToken,
) -> Result<(), PullError> {
    let started = Instant::now();
    let mut last_heard = started;
    let mut ingest: Option<Ingest> = None;
    let mut connected = false;
    let mut video_receiver = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        flush(pc, socket).await;
        while let Some(ev) = pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) => connected = true,
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
                    | RTCPeerConnectionState::Disconnected,
                ) => return Err(PullError::Failed),
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let video = pc
                        .rtp_receiver(init.receiver_id)
                        .is_some_and(|r| r.track().kind() == RtpCodecKind::Video);
                    if video {
                        video_receiver = Some(init.receiver_id);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        while let Some(m) = pc.poll_read() {
            let RTCMessage::RtpPacket(_, pkt) = m.message else {
                continue;
            };
            // Live here from the first packet on, not from the connection:
            // an origin restarting answers before its publisher is back.
            let ing = ingest.get_or_insert_with(|| {
                tracing::info!(channel, "pulling from the origin");
                Ingest::new(
                    hub.publish_from(channel, Source::Relay),
                    video,
                    Some(AUDIO_PT),
                )
            });
            let Some(kind) = ing.kind_of(&pkt).filter(|k| ing.payload_ok(*k, &pkt)) else {
                continue;
            };
            ing.on_rtp(kind, &pkt, now);
        }
        if let Some(ing) = ingest.as_mut() {
            if ing.publisher.stream().is_closed() {
                // Replaced here by a publish of this server's own (an
                // `all` server taking the channel): nothing to relay.
                return Ok(());
            }
            if ing.wants_keyframe {
                ask_keyframe(pc, ing, video_receiver, now);
            }
        }
        if !connected && now.duration_since(started) > CONNECT_TIMEOUT {
            return Err(PullError::NoConnection);
        }
        if now.duration_since(last_heard) > SILENCE_TIMEOUT {
            return Err(PullError::Silent);
        }
        let wake = pc
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(100))
            .min(now + Duration::from_millis(100));
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                last_heard = Instant::now();
                let _ = pc.handle_read(TaggedBytesMut {
                    now: last_heard,
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: from,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(&buf[..n]),
                });
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let _ = pc.handle_timeout(Instant::now());
            }
        }
    }
}

/// A PLI to the origin (which asks its publisher, or answers from its
/// cache), at most once per [`PLI_INTERVAL`].
fn ask_keyframe(
    pc: &mut RTCPeerConnection,
    ing: &mut Ingest,
    receiver: Option<rtc::rtp_transceiver::RTCRtpReceiverId>,
    now: Instant,
) {
    if ing
        .last_pli
        .is_some_and(|t| now.duration_since(t) < PLI_INTERVAL)
    {
        return;
    }
    let (Some(rid), Some(ssrc)) = (receiver, ing.video_ssrc) else {
        return;
    };
    ing.last_pli = Some(now);
    ing.wants_keyframe = false;
    if let Some(mut r) = pc.rtp_receiver(rid) {
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        let _ = r.write_rtcp(now, vec![Box::new(pli)]);
    }
}

/// POSTs the offer; the answer and the session's URL.
async fn signal(
    http: &reqwest::Client,
    origin: &Origin<'_>,
    channel: &str,
    offer: String,
) -> Result<(String, Option<String>), PullError> {
    let url = format!("{}/whep/{channel}", origin.url);
    let resp = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/sdp")
        .header(NODE_TOKEN_HEADER, origin.token)
        .body(offer)
        .timeout(SIGNAL_TIMEOUT)
        .send()
        .await
        .map_err(|e| PullError::Signal(e.to_string()))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| absolute(origin.url, l));
    let body = resp
        .text()
        .await
        .map_err(|e| PullError::Signal(e.to_string()))?;
    if status != 201 {
        return Err(PullError::Refused(status, body.chars().take(200).collect()));
    }
    Ok((body, location))
}

/// A session URL as the origin gave it, made absolute against its URL.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// The origin's HTTP address, which its WebRTC candidates share a host
/// with on any sane site; used only to pick our socket's interface.
async fn target_addr(url: &str) -> Result<SocketAddr, PullError> {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else if url.starts_with("https://") {
        format!("{host}:443")
    } else {
        format!("{host}:80")
    };
    tokio::net::lookup_host(with_port)
        .await?
        .next()
        .ok_or_else(|| PullError::Signal(format!("{url} does not resolve")))
}

/// A UDP socket on the interface that routes to `target`, so our one host
/// candidate is an address the origin can reach.
fn bind_towards(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let probe = std::net::UdpSocket::bind(match target {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    })?;
    probe.connect(target)?;
    let ip = probe.local_addr()?.ip();
    let s = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // A keyframe's burst arrives at once; the default buffer is small.
    let _ = s.set_recv_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    UdpSocket::from_std(s.into())
}

/// Receives H.264 (constrained baseline and high, as publishers send) or
/// VP8, and Opus, with the default interceptors: NACKs for what is lost,
/// receiver reports for the origin's congestion control.
fn peer_connection() -> Result<RTCPeerConnection, PullError> {
    let mut media = MediaEngine::default();
    let video = |mime: &str, pt: u8, fmtp: &str| RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    };
    let h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
    media
        .register_codec(video(MIME_TYPE_H264, VIDEO_PT, h264), RtpCodecKind::Video)
        .map_err(rtc_err)?;
    media
        .register_codec(video(MIME_TYPE_VP8, VP8_PT, ""), RtpCodecKind::Video)
        .map_err(rtc_err)?;
    media
        .register_codec(
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
        )
        .map_err(rtc_err)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(rtc_err)?;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(rtc_err)
}

/// The offer with our one host candidate in it: the origin is ICE-lite
/// and learns the path from our checks.
fn offer_with_host(pc: &mut RTCPeerConnection, local: SocketAddr) -> Result<String, PullError> {
    let offer = pc.create_offer(None).map_err(rtc_err)?;
    pc.set_local_description(Instant::now(), offer)
        .map_err(rtc_err)?;
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(rtc_err)?;
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json().map_err(rtc_err)?)
        .map_err(rtc_err)?;
    Ok(pc
        .local_description()
        .ok_or_else(|| PullError::Rtc("no local description".into()))?
        .sdp)
}

async fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket) {
    while let Some(w) = pc.poll_write() {
        let _ = socket.send_to(&w.message, w.transport.peer_addr).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_urls_are_made_absolute() {
        let base = "http://10.0.0.5:8080";
        assert_eq!(
            super::absolute(base, "/whep/demo/abc"),
            "http://10.0.0.5:8080/whep/demo/abc"
        );
        assert_eq!(
            super::absolute(base, "http://10.0.0.6:8080/whep/demo/abc"),
            "http://10.0.0.6:8080/whep/demo/abc"
        );
    }
}
