//! Just enough reading of an SDP offer to decide what to answer before
//! handing it to `rtc`: which H.264 and Opus formats the viewer offered, and
//! whether the offer is sane at all. `rtc` parses it fully afterwards.

/// WHIP/WHEP offers from browsers and OBS are a few KiB; 64 KiB leaves room for
/// many candidates while keeping a hostile body cheap to refuse.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// A viewer needs one video, one audio and one data m-line; a publisher with
/// simulcast a few more. More than this is not a client we serve.
pub const MAX_M_LINES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedFormat {
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
    pub rtcp_fb: Vec<String>,
}

impl OfferedFormat {
    fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k.eq_ignore_ascii_case(key)).then_some(v.trim())
        })
    }

    /// `packetization-mode`, 0 when absent (RFC 6184 8.1).
    pub fn packetization_mode(&self) -> u8 {
        self.fmtp_param("packetization-mode")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// profile_idc from `profile-level-id`; 0x42 (Baseline) when absent, the
    /// RFC 6184 default.
    pub fn profile_idc(&self) -> u8 {
        // Six hex digits; anything else (a multi-byte character, which the
        // fuzzer found would split a slice) is the default.
        self.fmtp_param("profile-level-id")
            .filter(|v| v.len() == 6 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|v| u8::from_str_radix(&v[0..2], 16).ok())
            .unwrap_or(0x42)
    }
}

/// The video codecs the SFU forwards. H.264 is what RTMP brings and what
/// HLS carries; VP8 comes from browsers that publish without H.264.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    #[default]
    H264,
    Vp8,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Offer {
    pub has_video: bool,
    pub has_audio: bool,
    pub has_data: bool,
    /// H.264 formats of the (first) video m-line.
    pub h264: Vec<OfferedFormat>,
    /// VP8 formats of the same m-line (browser publishers and viewers).
    pub vp8: Vec<OfferedFormat>,
    /// Opus formats of the (first) audio m-line.
    pub opus: Vec<OfferedFormat>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("offer is {0} bytes; the limit is {MAX_OFFER_BYTES}")]
    TooLarge(usize),
    #[error("body is not an SDP offer: {0}")]
    NotSdp(&'static str),
    #[error("offer has {0} m-lines; the limit is {MAX_M_LINES}")]
    TooManyMLines(usize),
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Section {
    Session,
    Video,
    Audio,
    Other,
}

/// Reads the parts of an offer that decide the answer.
pub fn read_offer(sdp: &str) -> Result<Offer, SdpError> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(SdpError::TooLarge(sdp.len()));
    }
    let mut lines = sdp.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(SdpError::NotSdp("it does not start with v=0"));
    }
    let mut offer = Offer::default();
    let mut section = Section::Session;
    let mut m_lines = 0;
    let mut seen_video = false;
    let mut seen_audio = false;
    // Formats of the current m-line: (pt, codec name, clock, channels).
    let mut rtpmaps: Vec<(u8, String, u32, u16)> = Vec::new();
    let mut fmtps: Vec<(u8, String)> = Vec::new();
    let mut fbs: Vec<(u8, String)> = Vec::new();
    let flush = |section: Section,
                 rtpmaps: &mut Vec<(u8, String, u32, u16)>,
                 fmtps: &mut Vec<(u8, String)>,
                 fbs: &mut Vec<(u8, String)>,
                 offer: &mut Offer| {
        for (pt, codec, clock, ch) in rtpmaps.iter() {
            let list = match section {
                Section::Video if codec.eq_ignore_ascii_case("H264") => &mut offer.h264,
                Section::Video if codec.eq_ignore_ascii_case("VP8") => &mut offer.vp8,
                Section::Audio if codec.eq_ignore_ascii_case("OPUS") => &mut offer.opus,
                _ => continue,
            };
            list.push(OfferedFormat {
                payload_type: *pt,
                clock_rate: *clock,
                channels: *ch,
                fmtp: fmtps
                    .iter()
                    .find(|(p, _)| p == pt)
                    .map(|(_, f)| f.clone())
                    .unwrap_or_default(),
                rtcp_fb: fbs
                    .iter()
                    .filter(|(p, _)| p == pt)
                    .map(|(_, f)| f.clone())
                    .collect(),
            });
        }
        rtpmaps.clear();
        fmtps.clear();
        fbs.clear();
    };
    for line in lines {
        let Some((kind, value)) = line.split_once('=') else {
            return Err(SdpError::NotSdp("a line is not of the form x=value"));
        };
        if kind.len() != 1 {
            return Err(SdpError::NotSdp("a line is not of the form x=value"));
        }
        if kind == "m" {
            flush(section, &mut rtpmaps, &mut fmtps, &mut fbs, &mut offer);
            m_lines += 1;
            if m_lines > MAX_M_LINES {
                return Err(SdpError::TooManyMLines(m_lines));
            }
            let media = value.split_whitespace().next().unwrap_or("");
            let port_zero = value.split_whitespace().nth(1) == Some("0");
            section = match media {
                "video" if !seen_video && !port_zero => {
                    seen_video = true;
                    offer.has_video = true;
                    Section::Video
                }
                "audio" if !seen_audio && !port_zero => {
                    seen_audio = true;
                    offer.has_audio = true;
                    Section::Audio
                }
                "application" => {
                    offer.has_data = true;
                    Section::Other
                }
                _ => Section::Other,
            };
            continue;
        }
        if kind != "a" || !matches!(section, Section::Video | Section::Audio) {
            continue;
        }
        if let Some(rest) = value.strip_prefix("rtpmap:") {
            let mut it = rest.splitn(2, ' ');
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let enc = it.next().unwrap_or("");
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or("").to_string();
            let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let ch = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            if let Some(pt) = pt {
                rtpmaps.push((pt, name, clock, ch));
            }
        } else if let Some(rest) = value.strip_prefix("fmtp:") {
            if let Some((pt, params)) = rest.split_once(' ') {
                if let Ok(pt) = pt.parse::<u8>() {
                    fmtps.push((pt, params.trim().to_string()));
                }
            }
        } else if let Some(rest) = value.strip_prefix("rtcp-fb:") {
            if let Some((pt, fb)) = rest.split_once(' ') {
                if let Ok(pt) = pt.parse::<u8>() {
                    fbs.push((pt, fb.trim().to_string()));
                }
            }
        }
    }
    flush(section, &mut rtpmaps, &mut fmtps, &mut fbs, &mut offer);
    if m_lines == 0 {
        return Err(SdpError::NotSdp("it has no m-line"));
    }
    Ok(offer)
}

/// Picks the viewer's H.264 format to send with. Only packetization-mode 1
/// can carry frames larger than one packet. With the stream's profile known,
/// prefer the same profile; else prefer High, whose decoders also take the
/// Constrained Baseline and Main streams every common encoder makes.
pub fn choose_h264(
    offered: &[OfferedFormat],
    stream_profile: Option<u8>,
) -> Option<&OfferedFormat> {
    let usable = || {
        offered
            .iter()
            .filter(|f| f.packetization_mode() == 1 && f.clock_rate == 90_000)
    };
    if let Some(p) = stream_profile {
        if let Some(f) = usable().find(|f| f.profile_idc() == p) {
            return Some(f);
        }
    }
    let rank = |f: &OfferedFormat| match f.profile_idc() {
        0x64 => 0,
        0x4d => 1,
        0x42 => 2,
        _ => 3,
    };
    usable().min_by_key(|f| rank(f))
}

/// Candidate lines from a `application/trickle-ice-sdpfrag` body (RFC 8840).
pub fn frag_candidates(frag: &str) -> Vec<String> {
    frag.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 104 106\r\na=mid:1\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn a_profile_level_id_that_is_not_six_hex_digits_is_the_default() {
        let f = |v: &str| OfferedFormat {
            payload_type: 96,
            clock_rate: 90_000,
            channels: 1,
            fmtp: format!("packetization-mode=1;profile-level-id={v}"),
            rtcp_fb: Vec::new(),
        };
        assert_eq!(f("640c1f").profile_idc(), 0x64);
        // What the fuzzer sent: six bytes, one character of two among them.
        for bad in ["4\u{3da}01f", "6g0c1f", "640c1", "640c1f0", ""] {
            assert_eq!(f(bad).profile_idc(), 0x42, "{bad:?}");
        }
    }

    #[test]
    fn reads_a_browser_offer() {
        let o = read_offer(CHROME_LIKE).unwrap();
        assert!(o.has_audio && o.has_video && o.has_data);
        assert_eq!(o.h264.len(), 3);
        assert_eq!(o.vp8.len(), 1);
        assert_eq!((o.vp8[0].payload_type, o.vp8[0].clock_rate), (96, 90_000));
        assert_eq!(o.opus.len(), 1);
        assert_eq!(o.opus[0].payload_type, 111);
        assert_eq!(o.h264[0].rtcp_fb, vec!["nack", "nack pli"]);
        assert_eq!(choose_h264(&o.h264, None).unwrap().payload_type, 106);
        assert_eq!(choose_h264(&o.h264, Some(0x42)).unwrap().payload_type, 102);
        assert_eq!(choose_h264(&o.h264, Some(0x4d)).unwrap().payload_type, 106);
    }

    #[test]
    fn refuses_what_is_not_an_offer() {
        let cases: &[(&str, SdpError)] = &[
            ("hello", SdpError::NotSdp("it does not start with v=0")),
            (
                "{\"sdp\":1}",
                SdpError::NotSdp("it does not start with v=0"),
            ),
            ("v=0\r\ns=-\r\n", SdpError::NotSdp("it has no m-line")),
            (
                "v=0\r\nnonsense\r\n",
                SdpError::NotSdp("a line is not of the form x=value"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(read_offer(input).unwrap_err(), *want, "{input}");
        }
        let big = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_OFFER_BYTES));
        assert!(matches!(read_offer(&big), Err(SdpError::TooLarge(_))));
        let many = format!("v=0\r\n{}", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n".repeat(50));
        assert!(matches!(read_offer(&many), Err(SdpError::TooManyMLines(_))));
    }

    #[test]
    fn no_usable_h264() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 104\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:104 H264/90000\r\na=fmtp:104 packetization-mode=0\r\n";
        let o = read_offer(sdp).unwrap();
        assert!(choose_h264(&o.h264, None).is_none());
    }

    #[test]
    fn trickle_fragment() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";
        assert_eq!(
            frag_candidates(frag),
            vec!["candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host"]
        );
    }
}
