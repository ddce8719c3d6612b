//! A viewer's offer and our answer, for the lean viewer session: the offer
//! is read with webrtc-rs's SDP parser (rtc-sdp) after our own size and
//! shape checks, and the answer is written here, since no `rtc` peer
//! connection is built for a viewer. The answer is ICE-lite, DTLS passive
//! (we are the DTLS server), bundled and rtcp-muxed: what every browser,
//! aiortc, werift and OBS accept.

use crate::sfu::sdp::{OfferedFormat, SdpError, MAX_M_LINES, MAX_OFFER_BYTES};
use rtc::sdp::description::session::SessionDescription;
use std::fmt::Write;
use std::net::SocketAddr;

/// An ICE username fragment or password longer than this is not from a
/// WebRTC stack (RFC 8839 5.4: 4-256 characters; browsers send 4-32).
const MAX_ICE_CREDENTIAL: usize = 256;
/// RTP header extensions and formats one m-line may declare.
const MAX_EXTMAPS: usize = 32;
const MAX_FORMATS: usize = 64;
/// The transport-wide congestion control header extension (TWCC).
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    Application,
    Other,
}

/// `a=setup` of the offer (RFC 8842): who starts DTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Actpass,
    Active,
    Passive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    pub mid: String,
    pub kind: Kind,
    /// Port 0 in the offer: the m-line is refused before we see it.
    pub rejected: bool,
    /// Whether the viewer will receive on it (recvonly or sendrecv).
    pub receives: bool,
    /// The formats this server can send, by codec (the first video and
    /// audio m-lines only).
    pub h264: Vec<OfferedFormat>,
    pub vp8: Vec<OfferedFormat>,
    pub opus: Vec<OfferedFormat>,
    /// (id, URI) of the RTP header extensions offered.
    pub extmaps: Vec<(u8, String)>,
    pub rtcp_rsize: bool,
    /// For the data channel m-line.
    pub sctp_port: Option<u16>,
    pub max_message_size: Option<u32>,
}

impl RemoteMedia {
    /// The id the viewer gave the TWCC header extension, if it offered it
    /// with one the one-byte header form can carry (1-14, RFC 8285 4.2:
    /// 15 ends the list and 0 is padding). Another id leaves TWCC out.
    pub fn twcc_id(&self) -> Option<u8> {
        self.extmaps
            .iter()
            .find(|(_, uri)| uri == TWCC_URI)
            .map(|(id, _)| *id)
            .filter(|id| (1..=14).contains(id))
    }
}

/// What the answer and the session need from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDescription {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `a=fingerprint`: the hash algorithm and the digest the viewer's
    /// DTLS certificate must match.
    pub fingerprint: (String, Vec<u8>),
    pub setup: Setup,
    pub media: Vec<RemoteMedia>,
    /// Candidates in the offer (`candidate:...`), for trickle-less clients.
    pub candidates: Vec<String>,
}

fn bad(why: &'static str) -> SdpError {
    SdpError::NotSdp(why)
}

/// `AA:BB:...` hex digest.
fn parse_fingerprint(v: &str) -> Result<(String, Vec<u8>), SdpError> {
    let (alg, hex) = v
        .trim()
        .split_once(' ')
        .ok_or(bad("a fingerprint has no digest"))?;
    let bytes = hex
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad("a fingerprint digest is not hex"))?;
    if !(16..=64).contains(&bytes.len()) {
        return Err(bad("a fingerprint digest has the wrong length"));
    }
    Ok((alg.to_ascii_lowercase(), bytes))
}

/// Reads an offer: everything a viewer session is built from.
pub fn read_remote(text: &str) -> Result<RemoteDescription, SdpError> {
    if text.len() > MAX_OFFER_BYTES {
        return Err(SdpError::TooLarge(text.len()));
    }
    // The checks and codec reading that the current peer shares.
    let shape = crate::sfu::sdp::read_offer(text)?;
    let m_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with("m="))
        .count();
    if m_lines > MAX_M_LINES {
        return Err(SdpError::TooManyMLines(m_lines));
    }
    let parsed = SessionDescription::unmarshal(&mut std::io::Cursor::new(text.as_bytes()))
        .map_err(|_| bad("the SDP parser refused it"))?;
    let session_attr = |key: &str| parsed.attribute(key).map(String::as_str);
    let mut ufrag = session_attr("ice-ufrag").map(str::to_string);
    let mut pwd = session_attr("ice-pwd").map(str::to_string);
    let mut fingerprint = session_attr("fingerprint").map(str::to_string);
    let mut setup = None;
    let mut media = Vec::new();
    let mut candidates = Vec::new();
    let mut video_seen = false;
    let mut audio_seen = false;
    for md in &parsed.media_descriptions {
        let value = |key: &str| md.attribute(key).flatten();
        ufrag = ufrag.or_else(|| value("ice-ufrag").map(str::to_string));
        pwd = pwd.or_else(|| value("ice-pwd").map(str::to_string));
        fingerprint = fingerprint.or_else(|| value("fingerprint").map(str::to_string));
        if setup.is_none() {
            setup = match value("setup") {
                Some("actpass") => Some(Setup::Actpass),
                Some("active") => Some(Setup::Active),
                Some("passive") => Some(Setup::Passive),
                _ => None,
            };
        }
        for a in &md.attributes {
            if a.key == "candidate" {
                if let Some(v) = &a.value {
                    candidates.push(format!("candidate:{v}"));
                }
            }
        }
        let kind = match md.media_name.media.as_str() {
            "audio" => Kind::Audio,
            "video" => Kind::Video,
            "application" => Kind::Application,
            _ => Kind::Other,
        };
        let rejected = md.media_name.port.value == 0;
        let receives = !(md.has_attribute("sendonly") || md.has_attribute("inactive"));
        let mut extmaps = Vec::new();
        for a in md.attributes.iter().filter(|a| a.key == "extmap") {
            let Some(v) = &a.value else { continue };
            let mut it = v.split_whitespace();
            let id = it
                .next()
                .and_then(|i| i.split('/').next())
                .and_then(|i| i.parse::<u8>().ok());
            if let (Some(id), Some(uri)) = (id, it.next()) {
                if extmaps.len() < MAX_EXTMAPS {
                    extmaps.push((id, uri.to_string()));
                }
            }
        }
        // The formats come from the shared reading, which takes the first
        // video and audio m-line.
        let take = |v: &[OfferedFormat]| v.iter().take(MAX_FORMATS).cloned().collect::<Vec<_>>();
        let (mut h264, mut vp8, mut opus) = (Vec::new(), Vec::new(), Vec::new());
        match kind {
            Kind::Video if !video_seen && !rejected => {
                video_seen = true;
                h264 = take(&shape.h264);
                vp8 = take(&shape.vp8);
            }
            Kind::Audio if !audio_seen && !rejected => {
                audio_seen = true;
                opus = take(&shape.opus);
            }
            _ => {}
        }
        media.push(RemoteMedia {
            mid: value("mid").unwrap_or("").to_string(),
            kind,
            rejected,
            receives,
            h264,
            vp8,
            opus,
            extmaps,
            rtcp_rsize: md.has_attribute("rtcp-rsize"),
            sctp_port: value("sctp-port").and_then(|p| p.parse().ok()),
            max_message_size: value("max-message-size").and_then(|p| p.parse().ok()),
        });
    }
    let ice_ufrag = ufrag.ok_or(bad("the offer has no ice-ufrag"))?;
    let ice_pwd = pwd.ok_or(bad("the offer has no ice-pwd"))?;
    if ice_ufrag.len() > MAX_ICE_CREDENTIAL || ice_pwd.len() > MAX_ICE_CREDENTIAL {
        return Err(bad("an ICE credential is too long"));
    }
    if ice_ufrag.is_empty() || ice_ufrag.contains(':') || ice_pwd.is_empty() {
        return Err(bad("an ICE credential is empty or has a colon"));
    }
    let fingerprint = parse_fingerprint(&fingerprint.ok_or(bad("the offer has no fingerprint"))?)?;
    // Every m-line needs a mid for BUNDLE (RFC 9143).
    if media.iter().any(|m| m.mid.is_empty() || m.mid.len() > 32) {
        return Err(bad("an m-line has no usable mid"));
    }
    Ok(RemoteDescription {
        ice_ufrag,
        ice_pwd,
        fingerprint,
        setup: setup.unwrap_or(Setup::Actpass),
        media,
        candidates,
    })
}

/// What we answer on one of the offer's m-lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// We send this format on it, from `ssrc`.
    Send {
        format: OfferedFormat,
        codec: &'static str,
        ssrc: u32,
        rtcp_fb: Vec<&'static str>,
        /// Negotiated TWCC header extension id, if any.
        twcc: Option<u8>,
    },
    /// The data channel, on this SCTP port.
    Data {
        sctp_port: u16,
        max_message_size: u32,
    },
    Rejected,
}

/// A host candidate we announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCandidate {
    pub addr: SocketAddr,
    /// Passive ICE-TCP (RFC 6544) rather than UDP.
    pub tcp: bool,
}

/// Our side of the answer.
pub struct Local<'a> {
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// `sha-256 AA:BB:...` of our certificate.
    pub fingerprint: &'a str,
    pub candidates: &'a [LocalCandidate],
    /// A stream label for `msid`, the channel's name.
    pub stream: &'a str,
}

/// A candidate line (RFC 8839 5.1) for `c`, numbered `i`.
pub fn candidate_line(i: usize, c: &LocalCandidate) -> String {
    // Type preference 126 (host), local preference by order, component 1.
    let priority = (126u32 << 24) | ((65535 - i as u32) << 8) | 255;
    let ip = c.addr.ip();
    if c.tcp {
        format!(
            "candidate:{} 1 tcp {} {ip} {} typ host tcptype passive",
            1000 + i,
            priority - 1,
            c.addr.port()
        )
    } else {
        format!(
            "candidate:{} 1 udp {priority} {ip} {} typ host",
            1 + i,
            c.addr.port()
        )
    }
}

/// Writes the answer to `remote`, one section per offered m-line in its
/// order (RFC 8829 5.3.1), with `answers[i]` for m-line `i`.
pub fn write_answer(remote: &RemoteDescription, local: &Local, answers: &[Answered]) -> String {
    let mut o = String::with_capacity(2048);
    let session_id: u64 = rand::random::<u64>() >> 1;
    let _ = write!(
        o,
        "v=0\r\no=- {session_id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
    );
    let bundled: Vec<&str> = remote
        .media
        .iter()
        .zip(answers)
        .filter(|(_, a)| !matches!(a, Answered::Rejected))
        .map(|(m, _)| m.mid.as_str())
        .collect();
    if !bundled.is_empty() {
        let _ = write!(o, "a=group:BUNDLE {}\r\n", bundled.join(" "));
    }
    let _ = write!(o, "a=msid-semantic: WMS {}\r\n", local.stream);
    let mut first = true;
    for (m, a) in remote.media.iter().zip(answers) {
        match a {
            Answered::Rejected => {
                let (kind, proto, fmt) = match m.kind {
                    Kind::Application => ("application", "UDP/DTLS/SCTP", "webrtc-datachannel"),
                    Kind::Audio => ("audio", "UDP/TLS/RTP/SAVPF", "0"),
                    Kind::Video => ("video", "UDP/TLS/RTP/SAVPF", "0"),
                    Kind::Other => ("application", "UDP/DTLS/SCTP", "webrtc-datachannel"),
                };
                let _ = write!(
                    o,
                    "m={kind} 0 {proto} {fmt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\na=inactive\r\n",
                    m.mid
                );
                continue;
            }
            Answered::Send {
                format,
                codec,
                ssrc,
                rtcp_fb,
                twcc,
            } => {
                let kind = if m.kind == Kind::Audio {
                    "audio"
                } else {
                    "video"
                };
                let pt = format.payload_type;
                let _ = write!(
                    o,
                    "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\n"
                );
                transport(&mut o, local, &m.mid, first);
                first = false;
                let _ = write!(o, "a=sendonly\r\na=rtcp-mux\r\n");
                if m.rtcp_rsize {
                    o.push_str("a=rtcp-rsize\r\n");
                }
                if let Some(id) = twcc {
                    let _ = write!(o, "a=extmap:{id} {TWCC_URI}\r\n");
                }
                let clock = format.clock_rate;
                if m.kind == Kind::Audio {
                    let _ = write!(
                        o,
                        "a=rtpmap:{pt} {codec}/{clock}/{}\r\n",
                        format.channels.max(2)
                    );
                } else {
                    let _ = write!(o, "a=rtpmap:{pt} {codec}/{clock}\r\n");
                }
                for fb in rtcp_fb {
                    let _ = write!(o, "a=rtcp-fb:{pt} {fb}\r\n");
                }
                if !format.fmtp.is_empty() {
                    let _ = write!(o, "a=fmtp:{pt} {}\r\n", format.fmtp);
                }
                let _ = write!(
                    o,
                    "a=ssrc:{ssrc} cname:onair\r\na=ssrc:{ssrc} msid:{} {kind}\r\n",
                    local.stream
                );
            }
            Answered::Data {
                sctp_port,
                max_message_size,
            } => {
                o.push_str(
                    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n",
                );
                transport(&mut o, local, &m.mid, first);
                first = false;
                let _ = write!(
                    o,
                    "a=sctp-port:{sctp_port}\r\na=max-message-size:{max_message_size}\r\n"
                );
            }
        }
    }
    o
}

/// The transport attributes of a bundled m-line; the first carries the
/// candidates (the others share its transport).
fn transport(o: &mut String, local: &Local, mid: &str, first: bool) {
    let _ = write!(
        o,
        "a=mid:{mid}\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\n\
         a=fingerprint:{}\r\na=setup:passive\r\n",
        local.ice_ufrag, local.ice_pwd, local.fingerprint
    );
    if first {
        for (i, c) in local.candidates.iter().enumerate() {
            let _ = write!(o, "a={}\r\n", candidate_line(i, c));
        }
        o.push_str("a=end-of-candidates\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_VIEWER: &str = include_str!("../../../fuzz/corpus/sdp_offer/chromium_viewer");

    #[test]
    fn reads_a_browser_viewer_offer() {
        let r = read_remote(CHROMIUM_VIEWER).unwrap();
        assert!(!r.ice_ufrag.is_empty() && !r.ice_pwd.is_empty());
        assert_eq!(r.fingerprint.0, "sha-256");
        assert_eq!(r.fingerprint.1.len(), 32);
        assert_eq!(r.setup, Setup::Actpass);
        let kinds: Vec<Kind> = r.media.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [Kind::Video, Kind::Audio, Kind::Application]);
        assert!(r.media[0].receives && !r.media[0].h264.is_empty() && !r.media[0].vp8.is_empty());
        assert!(!r.media[1].opus.is_empty());
        assert!(r.media[0].twcc_id().is_some(), "browsers offer TWCC");
        assert_eq!(r.media[2].sctp_port, Some(5000));
    }

    /// TWCC is taken only under an id the one-byte header form carries.
    #[test]
    fn twcc_needs_a_one_byte_extension_id() {
        let mut m = read_remote(CHROMIUM_VIEWER).unwrap().media.remove(0);
        let mut id_of = |id: u8| {
            m.extmaps = vec![(id, TWCC_URI.to_string())];
            m.twcc_id()
        };
        assert_eq!(id_of(1), Some(1));
        assert_eq!(id_of(14), Some(14));
        assert_eq!(id_of(0), None);
        assert_eq!(id_of(15), None);
        assert_eq!(id_of(16), None);
        assert_eq!(id_of(255), None);
    }

    #[test]
    fn refuses_offers_without_what_a_session_needs() {
        let without = |needle: &str| {
            CHROMIUM_VIEWER
                .split("\r\n")
                .filter(|l| !l.starts_with(needle))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        for (needle, what) in [
            ("a=ice-ufrag", "ice-ufrag"),
            ("a=ice-pwd", "ice-pwd"),
            ("a=fingerprint", "fingerprint"),
            ("a=mid", "mid"),
        ] {
            let e = read_remote(&without(needle)).unwrap_err();
            assert!(e.to_string().contains(what), "{needle}: {e}");
        }
        let long = CHROMIUM_VIEWER.replacen(
            "a=ice-ufrag:",
            &format!("a=ice-ufrag:{}", "x".repeat(300)),
            1,
        );
        assert!(read_remote(&long).is_err());
        let bad_fp =
            CHROMIUM_VIEWER.replacen("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ:", 1);
        assert!(read_remote(&bad_fp).is_err());
    }

    #[test]
    fn the_answer_follows_the_offer_and_rtc_reads_it() {
        let r = read_remote(CHROMIUM_VIEWER).unwrap();
        let h264 = r.media[0]
            .h264
            .iter()
            .find(|f| f.packetization_mode() == 1)
            .unwrap()
            .clone();
        let opus = r.media[1].opus[0].clone();
        let answers = vec![
            Answered::Send {
                format: h264,
                codec: "H264",
                ssrc: 11,
                rtcp_fb: vec!["nack", "nack pli", "ccm fir", "transport-cc"],
                twcc: r.media[0].twcc_id(),
            },
            Answered::Send {
                format: opus,
                codec: "opus",
                ssrc: 22,
                rtcp_fb: vec![],
                twcc: None,
            },
            Answered::Data {
                sctp_port: 5000,
                max_message_size: 8192,
            },
        ];
        let candidates = [
            LocalCandidate {
                addr: "192.0.2.2:8189".parse().unwrap(),
                tcp: false,
            },
            LocalCandidate {
                addr: "192.0.2.2:8189".parse().unwrap(),
                tcp: true,
            },
        ];
        let local = Local {
            ice_ufrag: "abcd1234",
            ice_pwd: "0123456789abcdef0123456789abcdef",
            fingerprint: "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
            candidates: &candidates,
            stream: "demo",
        };
        let sdp = write_answer(&r, &local, &answers);
        let mids: Vec<&str> = r.media.iter().map(|m| m.mid.as_str()).collect();
        assert!(
            sdp.contains(&format!("a=group:BUNDLE {}", mids.join(" "))),
            "{sdp}"
        );
        assert!(sdp.contains("a=ice-lite") && sdp.contains("a=setup:passive"));
        assert!(sdp.contains("typ host tcptype passive"));
        assert_eq!(sdp.matches("a=end-of-candidates").count(), 1);
        // webrtc-rs's own parser takes it, and reads back what we meant.
        let back =
            SessionDescription::unmarshal(&mut std::io::Cursor::new(sdp.as_bytes())).unwrap();
        assert_eq!(back.media_descriptions.len(), 3);
        assert!(back.media_descriptions[0].has_attribute("sendonly"));
        assert_eq!(
            back.media_descriptions[2].attribute("sctp-port"),
            Some(Some("5000"))
        );
    }
}
