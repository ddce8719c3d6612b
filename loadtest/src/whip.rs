//! A real WHIP publisher on webrtc-rs's `rtc` core: it offers H.264 and
//! Opus, POSTs to `/whip` with a stream key, and sends Annex B access units
//! and Opus frames paced in real time. The H.264 RTP is made by `rtc`'s own
//! packetizer, not the server's.

use crate::http::try_http;
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::setting_engine::SettingEngine;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp::packetizer::Packetizer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct PublishOptions {
    pub key: String,
    /// Access units in Annex B, sent at `fps` and looped. Empty: an
    /// audio-only publisher (a DJ), whose offer has no video m-line.
    pub video: Vec<Bytes>,
    pub fps: u32,
    /// Opus packets of 20 ms each, looped.
    pub audio: Vec<Bytes>,
    pub duration: Duration,
    /// Put a send-time stamp (see [`crate::stamp`]) in every access unit.
    pub stamp: bool,
    /// Hand-made video RTP sent instead of `video`: a hostile publisher.
    pub raw: Option<RawVideo>,
    /// Told the session's URL as soon as the server answers.
    pub on_session: Option<tokio::sync::oneshot::Sender<String>>,
}

/// Video RTP payloads as an attacker writes them, not as a packetizer would.
#[derive(Clone, Debug, Default)]
pub struct RawVideo {
    /// Each frame's payloads and marker bits, looped at `fps`.
    pub frames: Vec<Vec<(Bytes, bool)>>,
    /// RTP timestamp added per frame; 0 keeps one timestamp for ever.
    pub ts_step: u32,
}

#[derive(Debug, Default)]
pub struct Published {
    pub status: u16,
    pub error: String,
    pub location: String,
    pub connected_after: Option<Duration>,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Keyframe requests (PLI/FIR) the server sent us.
    pub keyframe_requests: u64,
    /// Video bytes sent (Annex B, before packetization).
    pub bytes: u64,
}

fn codec(mime: &str, clock: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate: clock,
        channels,
        sdp_fmtp_line: fmtp.into(),
        rtcp_feedback: vec![],
    }
}

/// Splits an Annex B H.264 stream into access units at AUD NAL units
/// (encode with `-x264-params aud=1`).
pub fn access_units(annexb: &[u8]) -> Vec<Bytes> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 4 < annexb.len() {
        if annexb[i..i + 4] == [0, 0, 0, 1] && annexb[i + 4] & 0x1f == 9 {
            starts.push(i);
        }
        i += 1;
    }
    starts.push(annexb.len());
    starts
        .windows(2)
        .map(|w| Bytes::copy_from_slice(&annexb[w[0]..w[1]]))
        .collect()
}

pub async fn publish(http_addr: SocketAddr, opts: PublishOptions) -> anyhow::Result<Published> {
    let socket = crate::whep::bind_udp(([127, 0, 0, 1], 0).into())?;
    let local = socket.local_addr()?;
    let mut pc = crate::whep::peer_connection("42e01f", SettingEngine::default())?;
    let (vssrc, assrc) = (rand_u32(), rand_u32());
    let mut add = |kind, c: RTCRtpCodec, ssrc: u32, label: &str| {
        pc.add_track(MediaStreamTrack::new(
            "onair-loadtest".into(),
            label.into(),
            label.into(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: c,
                ..Default::default()
            }],
        ))
    };
    let video_sender = if opts.video.is_empty() && opts.raw.is_none() {
        None
    } else {
        Some(add(
            RtpCodecKind::Video,
            codec(MIME_TYPE_H264, 90_000, 0, ""),
            vssrc,
            "video",
        )?)
    };
    let audio_sender = add(
        RtpCodecKind::Audio,
        codec(MIME_TYPE_OPUS, 48_000, 2, ""),
        assrc,
        "audio",
    )?;
    let sdp = crate::whep::offer_with_host_candidate(&mut pc, local)?;
    let started = Instant::now();
    let auth = format!("Bearer {}", opts.key);
    let resp = try_http(
        http_addr,
        "POST",
        "/whip",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &auth),
        ],
        sdp.as_bytes(),
    )
    .await?;
    let mut out = Published {
        status: resp.status,
        location: resp.header("location").unwrap_or_default().into(),
        ..Default::default()
    };
    if resp.status != 201 {
        out.error = resp.text();
        return Ok(out);
    }
    if let Some(tx) = opts.on_session {
        let _ = tx.send(out.location.clone());
    }
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(resp.text())?)?;

    let negotiated_pt = |pc: &mut rtc::peer_connection::RTCPeerConnection, id| {
        pc.rtp_sender(id).and_then(|mut s| {
            s.get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
        })
    };
    let vpt = video_sender
        .and_then(|id| negotiated_pt(&mut pc, id))
        .unwrap_or(102);
    let apt = negotiated_pt(&mut pc, audio_sender).unwrap_or(111);
    let mut vpack = rtc::rtp::packetizer::new_packetizer(
        Instant::now(),
        1200,
        vpt,
        vssrc,
        Box::new(rtc::rtp::codec::h264::H264Payloader::default()),
        Box::new(rtc::rtp::sequence::new_random_sequencer()),
        90_000,
    );
    let mut apack = rtc::rtp::packetizer::new_packetizer(
        Instant::now(),
        1200,
        apt,
        assrc,
        Box::new(rtc::rtp::codec::opus::OpusPayloader),
        Box::new(rtc::rtp::sequence::new_random_sequencer()),
        48_000,
    );
    let frame_every = Duration::from_secs(1) / opts.fps.max(1);
    let mut next_video = Instant::now();
    let mut next_audio = Instant::now();
    let (mut vi, mut ai) = (0usize, 0usize);
    let (mut raw_seq, mut raw_ts) = (rand_u32() as u16, rand_u32());
    let mut connected = false;
    let mut buf = vec![0u8; 2048];
    let deadline = started + opts.duration;
    loop {
        let now = Instant::now();
        if connected {
            while let Some(video_sender) = video_sender.filter(|_| now >= next_video) {
                if let Some(raw) = opts.raw.as_ref().filter(|r| !r.frames.is_empty()) {
                    let frame = &raw.frames[vi % raw.frames.len()];
                    vi += 1;
                    for (payload, marker) in frame {
                        let mut p = rtc::rtp::packet::Packet::default();
                        p.header.version = 2;
                        p.header.payload_type = vpt;
                        p.header.ssrc = vssrc;
                        p.header.sequence_number = raw_seq;
                        p.header.timestamp = raw_ts;
                        p.header.marker = *marker;
                        p.payload = payload.clone();
                        raw_seq = raw_seq.wrapping_add(1);
                        out.bytes += payload.len() as u64;
                        if let Some(mut s) = pc.rtp_sender(video_sender) {
                            let _ = s.write_rtp(now, p);
                        }
                    }
                    raw_ts = raw_ts.wrapping_add(raw.ts_step);
                    out.video_frames += 1;
                    next_video += frame_every;
                    continue;
                }
                let au = &opts.video[vi % opts.video.len()];
                vi += 1;
                let au = if opts.stamp {
                    Bytes::from(crate::stamp::stamp_annexb(au, crate::stamp::now_us()))
                } else {
                    au.clone()
                };
                out.bytes += au.len() as u64;
                for p in vpack.packetize(now, &au, 90_000 / opts.fps.max(1))? {
                    if let Some(mut s) = pc.rtp_sender(video_sender) {
                        let _ = s.write_rtp(now, p);
                    }
                }
                out.video_frames += 1;
                next_video += frame_every;
            }
            while now >= next_audio && !opts.audio.is_empty() {
                let frame = &opts.audio[ai % opts.audio.len()];
                ai += 1;
                for p in apack.packetize(now, frame, 960)? {
                    if let Some(mut s) = pc.rtp_sender(audio_sender) {
                        let _ = s.write_rtp(now, p);
                    }
                }
                out.audio_frames += 1;
                next_audio += Duration::from_millis(20);
            }
        }
        crate::whep::flush(&mut pc, &socket).await;
        while let Some(ev) = pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) => {
                    connected = true;
                    out.connected_after = Some(started.elapsed());
                    next_video = Instant::now();
                    next_audio = Instant::now();
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Failed,
                ) => {
                    anyhow::bail!("publisher connection failed");
                }
                _ => {}
            }
        }
        while let Some(m) = pc.poll_read() {
            if let rtc::peer_connection::message::RTCMessage::RtcpPacket(_, packets) = m.message {
                out.keyframe_requests += packets
                    .iter()
                    .filter(|p| {
                        p.as_any().is::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                    })
                    .count() as u64;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut wake = pc.poll_timeout().unwrap_or(deadline).min(deadline);
        if connected {
            // Only tracks that are sent: a deadline that never advances
            // would make this loop spin.
            if !opts.audio.is_empty() {
                wake = wake.min(next_audio);
            }
            if video_sender.is_some() {
                wake = wake.min(next_video);
            }
        }
        let wait = wake.saturating_duration_since(now);
        crate::whep::step(&mut pc, &socket, local, &mut buf, wait).await?;
    }
    crate::whep::hang_up(&mut pc, &socket, http_addr, &out.location).await;
    Ok(out)
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}
