//! A WHIP publisher's media into the hub: H.264 RTP depacketized into access
//! units and Opus packets as they are, for HLS, recording and thumbnails.
//! WebRTC viewers do not go through this: the driver forwards the
//! publisher's RTP to them as it came.

use super::sdp::VideoCodec;
use crate::codec::h264;
use crate::codec::rtp::{check_opus, vp8_descriptor_len, H264Depacketizer};
use crate::hub::Publisher;
use crate::media::{H264Config, MediaKind, OpusConfig, Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::Bytes;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keyframe requests to a publisher, at most this often per stream: each
/// one costs the encoder a large frame.
pub const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// RTP time -> stream time (90 kHz). Each track starts at its first packet's
/// arrival, relative to the publish: the tracks line up from the first
/// packet on, without waiting seconds for RTCP sender reports.
struct TrackClock {
    rate: i64,
    base_pts: i64,
    last_ts: u32,
    unwrapped: i64,
}

impl TrackClock {
    fn new(rate: i64, ts: u32, since_start: Duration) -> Self {
        TrackClock {
            rate,
            base_pts: (since_start.as_micros() as i64) * CLOCK_RATE / 1_000_000,
            last_ts: ts,
            unwrapped: 0,
        }
    }

    fn pts(&mut self, ts: u32) -> i64 {
        self.unwrapped += i64::from(ts.wrapping_sub(self.last_ts) as i32);
        self.last_ts = ts;
        self.base_pts + self.unwrapped * CLOCK_RATE / self.rate
    }
}

pub struct Ingest {
    pub publisher: Publisher,
    pub video_pt: Option<u8>,
    pub video_codec: VideoCodec,
    pub audio_pt: Option<u8>,
    pub video_ssrc: Option<u32>,
    pub video_receiver: Option<RTCRtpReceiverId>,
    pub last_pli: Option<Instant>,
    start: Instant,
    video_clock: Option<TrackClock>,
    audio_clock: Option<TrackClock>,
    depack: H264Depacketizer,
    last_video_seq: Option<u16>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    video_config: Option<Arc<TrackConfig>>,
    opus_config: Arc<TrackConfig>,
    /// Set when the decoder state is unknown (loss, no SPS yet): the caller
    /// should ask the publisher for a keyframe.
    pub wants_keyframe: bool,
    keyframes: KeyframeStarts,
}

impl Ingest {
    pub fn new(
        publisher: Publisher,
        video: Option<(u8, VideoCodec)>,
        audio_pt: Option<u8>,
    ) -> Self {
        let video_codec = video.map_or(VideoCodec::H264, |(_, c)| c);
        publisher.stream().update_health(|h| {
            h.video_codec = video.map(|(_, c)| match c {
                VideoCodec::H264 => "H.264 (WHIP)".into(),
                VideoCodec::Vp8 => "VP8 (WHIP)".into(),
            });
            h.audio_codec = audio_pt.map(|_| "Opus 48000 Hz (WHIP)".into());
            if video_codec == VideoCodec::Vp8 {
                h.warnings.push(
                    "HLS, recording and thumbnails are off: the publisher sends VP8 and they need H.264; WebRTC viewers that decode VP8 still watch. Publish H.264 to have them.".into(),
                );
            }
        });
        Ingest {
            publisher,
            video_pt: video.map(|(pt, _)| pt),
            video_codec,
            audio_pt,
            video_ssrc: None,
            video_receiver: None,
            last_pli: None,
            start: Instant::now(),
            video_clock: None,
            audio_clock: None,
            depack: H264Depacketizer::default(),
            last_video_seq: None,
            sps: None,
            pps: None,
            video_config: None,
            opus_config: Arc::new(TrackConfig::Opus(OpusConfig { channels: 2 })),
            wants_keyframe: false,
            keyframes: KeyframeStarts::default(),
        }
    }

    /// Whether a viewer may start at this forwarded packet: audio always,
    /// video at a keyframe's first packet (see [`KeyframeStarts`]).
    pub fn starts_keyframe(&mut self, kind: MediaKind, pkt: &Packet) -> bool {
        kind == MediaKind::Audio || self.keyframes.starts(self.video_codec, pkt)
    }

    /// The kind of a packet from the publisher, by payload type.
    pub fn kind_of(&self, pkt: &Packet) -> Option<MediaKind> {
        let pt = Some(pkt.header.payload_type);
        if pt == self.video_pt {
            Some(MediaKind::Video)
        } else if pt == self.audio_pt {
            Some(MediaKind::Audio)
        } else {
            None
        }
    }

    /// Whether a packet's payload is well-formed for its codec: only those
    /// are forwarded to viewers or read further.
    pub fn payload_ok(&self, kind: MediaKind, pkt: &Packet) -> bool {
        let ok = match (kind, self.video_codec) {
            (MediaKind::Audio, _) => check_opus(&pkt.payload).is_ok(),
            (MediaKind::Video, VideoCodec::Vp8) => vp8_descriptor_len(&pkt.payload).is_some(),
            // The depacketizer checks H.264 in full; an empty payload is
            // the one thing a viewer's decoder should not be handed.
            (MediaKind::Video, VideoCodec::H264) => !pkt.payload.is_empty(),
        };
        if !ok {
            crate::metrics::ingest_dropped(match kind {
                MediaKind::Audio => "malformed_opus",
                MediaKind::Video => "malformed_video",
            });
        }
        ok
    }

    /// Feeds one packet to the hub side.
    pub fn on_rtp(&mut self, kind: MediaKind, pkt: &Packet, now: Instant) {
        if self.video_codec == VideoCodec::Vp8 {
            // The hub's consumers (HLS, recordings, thumbnails) take H.264
            // only; a VP8 stream reaches WebRTC viewers by forwarding alone.
            // Keyframe requests still need the SSRC.
            if kind == MediaKind::Video {
                self.video_ssrc = Some(pkt.header.ssrc);
            }
            return;
        }
        match kind {
            MediaKind::Audio => {
                let since = now.saturating_duration_since(self.start);
                let clock = self
                    .audio_clock
                    .get_or_insert_with(|| TrackClock::new(48_000, pkt.header.timestamp, since));
                let pts = clock.pts(pkt.header.timestamp);
                self.publisher.write(Unit {
                    flv_body: Default::default(),
                    config: self.opus_config.clone(),
                    pts,
                    dts: pts,
                    keyframe: true,
                    payload: Payload::Opus(pkt.payload.clone()),
                });
            }
            MediaKind::Video => self.on_video(pkt, now),
        }
    }

    fn on_video(&mut self, pkt: &Packet, now: Instant) {
        self.video_ssrc = Some(pkt.header.ssrc);
        if let Some(prev) = self.last_video_seq {
            if pkt.header.sequence_number != prev.wrapping_add(1) {
                self.depack.lost();
            }
        }
        self.last_video_seq = Some(pkt.header.sequence_number);
        let pushed = self
            .depack
            .push(&pkt.payload, pkt.header.timestamp, pkt.header.marker);
        if let Some(why) = pushed.dropped {
            crate::metrics::ingest_dropped(why.as_str());
            // The decoder state is unknown until the next keyframe.
            self.wants_keyframe = true;
        }
        let Some(au) = pushed.unit else {
            return;
        };
        let nalus = au.nalus;
        let mut keyframe = false;
        let mut has_ps = false;
        for n in &nalus {
            match h264::nal_type(n) {
                Some(h264::NAL_SPS) => {
                    has_ps = true;
                    if self.sps.as_ref() != Some(n) {
                        self.sps = Some(n.clone());
                        self.video_config = None;
                    }
                }
                Some(h264::NAL_PPS) if self.pps.as_ref() != Some(n) => {
                    self.pps = Some(n.clone());
                    self.video_config = None;
                }
                Some(h264::NAL_IDR) => keyframe = true,
                _ => {}
            }
        }
        if self.video_config.is_none() {
            let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
                self.wants_keyframe = true;
                return;
            };
            let Ok(parsed) = h264::parse_sps(sps) else {
                self.wants_keyframe = true;
                return;
            };
            self.publisher.stream().update_health(|h| {
                h.width = Some(parsed.width);
                h.height = Some(parsed.height);
                h.video_codec = Some(format!(
                    "H.264 {} {}x{} (WHIP)",
                    parsed.profile_name(),
                    parsed.width,
                    parsed.height
                ));
            });
            self.video_config = Some(Arc::new(TrackConfig::H264(H264Config {
                sps: sps.clone(),
                pps: pps.clone(),
                width: parsed.width,
                height: parsed.height,
                profile_idc: parsed.profile_idc,
                constraint_flags: parsed.constraint_flags,
                level_idc: parsed.level_idc,
            })));
        }
        let Some(config) = self.video_config.clone() else {
            return;
        };
        let mut nalus = nalus;
        if keyframe && !has_ps {
            // Keyframes carry their parameter sets, as the hub promises readers.
            if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
                nalus.splice(0..0, [sps.clone(), pps.clone()]);
            }
        }
        let since = now.saturating_duration_since(self.start);
        let ts = pkt.header.timestamp;
        let pts = self
            .video_clock
            .get_or_insert_with(|| TrackClock::new(CLOCK_RATE, ts, since))
            .pts(ts);
        self.publisher.write(Unit {
            flv_body: Default::default(),
            config,
            pts,
            dts: pts,
            keyframe,
            payload: Payload::H264(nalus),
        });
    }
}

/// Maps one source's RTP numbering onto a channel's outgoing numbering, so
/// viewers see one continuous stream across publisher reconnects.
#[derive(Default)]
pub struct Continuity {
    last_out: Option<(u16, u32, Instant)>,
    /// (sequence offset, timestamp offset) for the current source.
    offsets: Option<(u16, u32)>,
    source: u64,
}

impl Continuity {
    /// Rewrites `pkt` from source `source` (a stream id) into the channel's
    /// numbering. `clock` is the track's RTP clock rate.
    pub fn map(&mut self, source: u64, clock: u32, pkt: &mut Packet) {
        self.rebase(source, clock, pkt, true);
        // Header extensions are the publisher's ids; viewers negotiated
        // none of them.
        pkt.header.extension = false;
        pkt.header.extensions.clear();
        pkt.header.extension_profile = 0;
    }

    /// Sequence numbers only, for packets whose timestamps are already the
    /// channel's (RTMP egress keeps its own clock continuous): a switch
    /// between WHIP and RTMP publishers must not make the numbering jump.
    pub fn map_sequence(&mut self, source: u64, pkt: &mut Packet) {
        self.rebase(source, 0, pkt, false);
    }

    fn rebase(&mut self, source: u64, clock: u32, pkt: &mut Packet, timestamps: bool) {
        if self.source != source || self.offsets.is_none() {
            self.source = source;
            let (seq, ts) = match self.last_out {
                Some((seq, ts, at)) => (
                    seq.wrapping_add(1),
                    ts.wrapping_add((at.elapsed().as_secs_f64() * f64::from(clock)) as u32 + 1),
                ),
                None => (rand::random(), rand::random()),
            };
            let ts_offset = if timestamps {
                ts.wrapping_sub(pkt.header.timestamp)
            } else {
                0
            };
            self.offsets = Some((seq.wrapping_sub(pkt.header.sequence_number), ts_offset));
        }
        let (so, to) = self.offsets.unwrap_or_default();
        pkt.header.sequence_number = pkt.header.sequence_number.wrapping_add(so);
        pkt.header.timestamp = pkt.header.timestamp.wrapping_add(to);
        self.last_out = Some((
            pkt.header.sequence_number,
            pkt.header.timestamp,
            Instant::now(),
        ));
    }
}

/// Finds the one packet of each keyframe where a viewer may start. A
/// browser's H.264 keyframe comes as a STAP-A of SPS and PPS, then the IDR
/// in FU-As whose first also starts a keyframe; starting there would leave
/// the parameter sets behind. So a packet of the same access unit (its
/// timestamp) as the last start does not start one again, and one whose
/// STAP-A was lost still does.
#[derive(Default)]
pub struct KeyframeStarts {
    last: Option<u32>,
}

impl KeyframeStarts {
    pub fn starts(&mut self, codec: VideoCodec, pkt: &Packet) -> bool {
        let ts = pkt.header.timestamp;
        if self.last == Some(ts) || !starts_keyframe(codec, &pkt.payload) {
            return false;
        }
        self.last = Some(ts);
        true
    }
}

/// Whether this RTP payload starts a keyframe.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::H264 => starts_h264_keyframe(payload),
        VideoCodec::Vp8 => starts_vp8_keyframe(payload),
    }
}

/// RFC 7741 4.2 payload descriptor, then the VP8 frame tag (RFC 6386
/// 9.1): a keyframe starts in the packet with S=1 and partition 0 whose
/// frame tag has the P (inter-frame) bit clear.
fn starts_vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        i = 2;
        if x & 0x80 != 0 {
            // PictureID: 15 bits when its M bit is set, else 7.
            let wide = payload.get(2).is_some_and(|b| b & 0x80 != 0);
            i += if wide { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    payload.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

/// Whether this H.264 RTP payload starts a keyframe (an IDR, or the
/// parameter sets in front of one).
fn starts_h264_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < payload.len() {
                let n = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                if matches!(payload[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + n;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_starts_in_every_packetization() {
        let cases: &[(&[u8], bool)] = &[
            (&[0x65, 1, 2], true),
            (&[0x67, 0x42], true),
            (&[0x41, 1], false),
            (&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68], true),
            (&[0x78, 0, 2, 0x06, 0x05, 0, 1, 0x41], false),
            (&[0x7c, 0x85, 9], true),
            (&[0x7c, 0x05, 9], false),
            (&[0x7c], false),
            (&[], false),
            (&[0x78, 0xff, 0xff], false),
        ];
        for (p, want) in cases {
            assert_eq!(starts_keyframe(VideoCodec::H264, p), *want, "{p:02x?}");
        }
    }

    #[test]
    fn a_browser_keyframe_starts_once_at_its_parameter_sets() {
        let pkt = |ts: u32, payload: &'static [u8]| {
            let mut p = Packet::default();
            p.header.timestamp = ts;
            p.payload = Bytes::from_static(payload);
            p
        };
        // STAP-A of SPS and PPS, then the IDR's FU-As (start, middle, end).
        let stap = &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce][..];
        let (fu_start, fu_mid, fu_end) = (
            &[0x7c, 0x85, 1][..],
            &[0x7c, 0x05, 2][..],
            &[0x7c, 0x45, 3][..],
        );
        let p_frame = &[0x7c, 0x81, 4][..];
        let mut k = KeyframeStarts::default();
        let mut starts = |ts, payload| k.starts(VideoCodec::H264, &pkt(ts, payload));
        let got: Vec<bool> = [
            (1000, stap),
            (1000, fu_start),
            (1000, fu_mid),
            (1000, fu_end),
            (4000, p_frame),
            // The next keyframe, then one whose STAP-A was lost.
            (7000, stap),
            (7000, fu_start),
            (10000, fu_start),
            (10000, fu_mid),
        ]
        .into_iter()
        .map(|(ts, p)| starts(ts, p))
        .collect();
        assert_eq!(
            got,
            [true, false, false, false, false, true, false, true, false]
        );
    }

    #[test]
    fn vp8_keyframe_starts() {
        let cases: &[(&[u8], bool)] = &[
            // S=1, PID 0, no extensions; frame tag P=0 (key) / P=1.
            (&[0x10, 0x50, 0x2a], true),
            (&[0x10, 0x51, 0x2a], false),
            // Not the start of a partition, or not partition 0.
            (&[0x00, 0x50], false),
            (&[0x11, 0x50], false),
            // X=1 with I=1 and a 15-bit PictureID (Chrome's form), then the tag.
            (&[0x90, 0x80, 0x81, 0x23, 0x50], true),
            (&[0x90, 0x80, 0x81, 0x23, 0x51], false),
            // X=1 with a 7-bit PictureID, TL0PICIDX and TID.
            (&[0x90, 0xe0, 0x05, 0x01, 0x20, 0x50], true),
            (&[0x90], false),
            (&[0x90, 0x80, 0x81], false),
            (&[], false),
        ];
        for (p, want) in cases {
            assert_eq!(starts_keyframe(VideoCodec::Vp8, p), *want, "{p:02x?}");
        }
    }

    #[test]
    fn continuity_carries_across_sources() {
        let mut c = Continuity::default();
        let mut p = Packet::default();
        p.header.sequence_number = 100;
        p.header.timestamp = 1000;
        c.map(1, 90_000, &mut p);
        let (s1, t1) = (p.header.sequence_number, p.header.timestamp);
        let mut q = Packet::default();
        q.header.sequence_number = 7;
        q.header.timestamp = 5;
        c.map(2, 90_000, &mut q);
        assert_eq!(q.header.sequence_number, s1.wrapping_add(1));
        assert!(
            q.header.timestamp.wrapping_sub(t1) >= 1
                && q.header.timestamp.wrapping_sub(t1) < 90_000
        );
    }
}
