//! Clients the documented-answers scenario (tests/accounts_openapi.rs)
//! uses besides plain requests: a streaming answer's head, a webrtc-rs
//! offer for WHIP or WHEP, and the files a playlist names.

use onair_loadtest::http::HttpResponse;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A streaming answer's status and headers only (HTTP-FLV lasts as long as
/// the broadcast).
pub async fn head_of_stream(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("a head within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: Vec::new(),
    }
}

/// A WebRTC offer from webrtc-rs: receive-only with a data channel, as a
/// WHEP viewer makes; or sending H.264 and Opus, as a WHIP publisher does.
pub fn offer(publish: bool) -> (rtc::peer_connection::RTCPeerConnection, String) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let mut pc = onair_loadtest::whep::peer_connection("42e01f", Default::default()).expect("peer");
    let kinds = [
        (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2),
        (RtpCodecKind::Video, MIME_TYPE_H264, 90_000, 0),
    ];
    for (i, (kind, mime, clock_rate, channels)) in kinds.into_iter().enumerate() {
        if !publish {
            let recv = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            };
            pc.add_transceiver_from_kind(kind, Some(recv))
                .expect("transceiver");
            continue;
        }
        let codec = RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(1000 + i as u32),
                ..Default::default()
            },
            codec,
            ..Default::default()
        };
        let label = format!("track{i}");
        pc.add_track(MediaStreamTrack::new(
            "openapi".into(),
            label.clone(),
            label,
            kind,
            vec![encoding],
        ))
        .expect("track");
    }
    if !publish {
        pc.create_data_channel("chat", None).expect("data channel");
    }
    let sdp = onair_loadtest::whep::offer_with_host_candidate(&mut pc, local).expect("offer");
    (pc, sdp)
}

/// Lines of a playlist naming files (`URI="..."` attributes and plain
/// lines), in order.
pub fn playlist_files(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    out
}
