//! Hub units to FLV bytes (Adobe "Video File Format Specification" v10.1):
//! the file header (E.2), then tags (E.4.1) whose bodies are the ones RTMP
//! carries ([`crate::codec::flv`]): an AVC or AAC sequence header whenever
//! the track's configuration changes, then the frames.
//!
//! Sans-I/O: units in, pieces of bytes out ([`Out`]): each frame's tag body
//! is made once per stream ([`Unit::flv_body`]) and shared by every reader;
//! a reader writes only its own tag headers. Times are
//! rebased so the first unit written plays at 0 ms; a new stream on the
//! same connection (a publisher reconnect) continues from where the last
//! one stopped, plus the wall time in between, so a player sees one stream
//! whose timestamps never go backwards.

use crate::codec::flv::{AUDIO_FORMAT_AAC, VIDEO_CODEC_AVC};
use crate::media::{Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::Arc;

/// TagType (E.4.1).
const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
/// Tag header: type, DataSize (UI24), Timestamp (UI24) + TimestampExtended,
/// StreamID (UI24, always 0).
const TAG_HEADER_LEN: usize = 11;
/// DataSize is a UI24: a larger unit cannot be carried and is skipped.
const MAX_TAG_BODY: usize = (1 << 24) - 1;
/// SoundFormat AAC, 44 kHz, 16-bit, stereo: the flags FLV fixes for AAC
/// whatever the stream is (E.4.2.1; the AudioSpecificConfig rules).
const AAC_FLAGS: u8 = (AUDIO_FORMAT_AAC << 4) | 0x0f;
const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;

/// The FLV header (E.2) and PreviousTagSize0: what a response starts with.
pub fn write_header(out: &mut BytesMut, has_audio: bool, has_video: bool) {
    out.put_slice(b"FLV");
    out.put_u8(1);
    out.put_u8((u8::from(has_audio) << 2) | u8::from(has_video));
    out.put_u32(9); // DataOffset: the header's own length
    out.put_u32(0);
}

/// What a reader has to send, in order: its own small bytes (headers,
/// sequence headers, tag sizes) and shared frame bodies.
#[derive(Debug, Default)]
pub struct Out {
    /// The reader's own bytes not yet cut into a piece; reused, so once
    /// hyper has written and dropped a piece its memory serves again.
    pub buf: BytesMut,
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces` and `buf`.
    len: usize,
}

impl Out {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the reader's own bytes.
    pub fn own(&mut self, f: impl FnOnce(&mut BytesMut)) {
        let before = self.buf.len();
        f(&mut self.buf);
        self.len += self.buf.len() - before;
    }

    fn shared(&mut self, body: Bytes) {
        if !self.buf.is_empty() {
            self.pieces.push_back(self.buf.split().freeze());
        }
        self.len += body.len();
        self.pieces.push_back(body);
    }

    /// The next piece to send, in order; `None` when all is sent.
    pub fn next_piece(&mut self) -> Option<Bytes> {
        let piece = match self.pieces.pop_front() {
            Some(p) => p,
            None if !self.buf.is_empty() => self.buf.split().freeze(),
            None => return None,
        };
        self.len -= piece.len();
        Some(piece)
    }
}

/// One connection's tag writer. See the module doc.
#[derive(Debug, Default)]
pub struct Muxer {
    /// Output time of `base`, in ms.
    offset_ms: i64,
    /// The decode time (hub ticks) that plays at `offset_ms`; set by the
    /// first unit of each stream.
    base: Option<i64>,
    /// The latest time written, in ms.
    last_ms: i64,
    video_config: Option<Arc<TrackConfig>>,
    audio_config: Option<Arc<TrackConfig>>,
    /// Video is skipped up to the next keyframe: at the start of every
    /// stream, P-frames are useless without the picture they refer to.
    need_keyframe: bool,
}

impl Muxer {
    pub fn new() -> Muxer {
        Muxer {
            need_keyframe: true,
            ..Muxer::default()
        }
    }

    /// Makes `dts` (hub ticks) the unit that plays at the current offset:
    /// the earliest unit of what is about to be written, so no time comes
    /// out negative.
    pub fn start_at(&mut self, dts: i64) {
        self.base = Some(dts);
    }

    /// A new stream on the same connection, `gap_ms` of wall time after
    /// the last unit written: its times continue from there. Sequence
    /// headers are sent again, as the new publisher may have changed them.
    pub fn next_stream(&mut self, gap_ms: i64) {
        self.offset_ms = self.last_ms + gap_ms.max(1);
        self.base = None;
        self.video_config = None;
        self.audio_config = None;
        self.need_keyframe = true;
    }

    /// The latest time written, in ms.
    pub fn last_ms(&self) -> i64 {
        self.last_ms
    }

    fn ms(&mut self, dts: i64) -> i64 {
        let base = *self.base.get_or_insert(dts);
        let ms = self.offset_ms + ((dts - base) * 1000).div_euclid(CLOCK_RATE);
        let ms = ms.max(self.offset_ms);
        self.last_ms = self.last_ms.max(ms);
        ms
    }

    /// Appends `unit`'s tags to `out` (with a sequence header first when
    /// its track's configuration is new). Returns whether it wrote
    /// anything: Opus (FLV carries AAC; the stream's AAC twin is taken
    /// instead), video before a keyframe and oversized units are skipped.
    pub fn push(&mut self, unit: &Unit, out: &mut Out) -> bool {
        match (&unit.payload, unit.config.as_ref()) {
            (Payload::H264(nalus), TrackConfig::H264(cfg)) => {
                if self.need_keyframe && !unit.keyframe {
                    return false;
                }
                let body: usize = 5 + nalus.iter().map(|n| 4 + n.len()).sum::<usize>();
                if body > MAX_TAG_BODY {
                    return false;
                }
                self.need_keyframe = false;
                let ms = self.ms(unit.dts);
                if !same(&self.video_config, &unit.config) {
                    self.video_config = Some(unit.config.clone());
                    out.own(|o| {
                        write_tag(o, TAG_VIDEO, ms, |o| {
                            // E.4.3.2: AVCPacketType 0, CompositionTime 0.
                            o.put_slice(&[(FRAME_KEY << 4) | VIDEO_CODEC_AVC, 0, 0, 0, 0]);
                            crate::codec::h264::write_avc_decoder_config(o, cfg);
                        })
                    });
                }
                let shared = unit.flv_body.get_or_init(|| {
                    // CompositionTime (SI24): pts - dts, in ms.
                    let cts = ((unit.pts - unit.dts) * 1000 / CLOCK_RATE)
                        .clamp(-(1 << 23), (1 << 23) - 1);
                    let frame = if unit.keyframe {
                        FRAME_KEY
                    } else {
                        FRAME_INTER
                    };
                    let mut o = BytesMut::with_capacity(body);
                    o.put_u8((frame << 4) | VIDEO_CODEC_AVC);
                    o.put_u8(1);
                    o.put_slice(&(cts as i32).to_be_bytes()[1..]);
                    for n in nalus {
                        o.put_u32(n.len() as u32);
                        o.put_slice(n);
                    }
                    o.freeze()
                });
                write_shared_tag(out, TAG_VIDEO, ms, shared);
                true
            }
            (Payload::Aac(frame), TrackConfig::Aac(cfg)) => {
                if 2 + frame.len() > MAX_TAG_BODY {
                    return false;
                }
                let ms = self.ms(unit.dts);
                if !same(&self.audio_config, &unit.config) {
                    self.audio_config = Some(unit.config.clone());
                    out.own(|o| {
                        write_tag(o, TAG_AUDIO, ms, |o| {
                            o.put_slice(&[AAC_FLAGS, 0]);
                            o.put_slice(&cfg.asc);
                        })
                    });
                }
                let shared = unit.flv_body.get_or_init(|| {
                    let mut o = BytesMut::with_capacity(2 + frame.len());
                    o.put_slice(&[AAC_FLAGS, 1]);
                    o.put_slice(frame);
                    o.freeze()
                });
                write_shared_tag(out, TAG_AUDIO, ms, shared);
                true
            }
            _ => false,
        }
    }
}

/// Whether `config` is the one last announced (the same `Arc`, or equal:
/// an RTMP publisher may repeat its sequence header unchanged).
fn same(sent: &Option<Arc<TrackConfig>>, config: &Arc<TrackConfig>) -> bool {
    sent.as_ref()
        .is_some_and(|s| Arc::ptr_eq(s, config) || s == config)
}

/// One tag (E.4.1) and the PreviousTagSize after it.
fn write_tag(out: &mut BytesMut, kind: u8, ms: i64, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    tag_header(out, kind, 0, ms);
    body(out);
    let size = out.len() - start - TAG_HEADER_LEN;
    out[start + 1..start + 4].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
    out.put_u32((TAG_HEADER_LEN + size) as u32);
}

/// A tag whose body is shared: this reader's header, the body as it is,
/// and the PreviousTagSize.
fn write_shared_tag(out: &mut Out, kind: u8, ms: i64, body: &Bytes) {
    out.own(|o| tag_header(o, kind, body.len(), ms));
    out.shared(body.clone());
    out.own(|o| o.put_u32((TAG_HEADER_LEN + body.len()) as u32));
}

fn tag_header(out: &mut BytesMut, kind: u8, size: usize, ms: i64) {
    let ts = ms as u32; // wraps after 49 days, as every FLV timestamp does
    out.put_u8(kind);
    out.put_slice(&(size as u32).to_be_bytes()[1..]);
    out.put_slice(&ts.to_be_bytes()[1..]);
    out.put_u8((ts >> 24) as u8);
    out.put_slice(&[0, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::flv::{parse_audio_tag, parse_video_tag, AudioPacket, VideoPacket};
    use crate::media::{AacConfig, H264Config};
    use bytes::Bytes;

    fn video_cfg() -> Arc<TrackConfig> {
        Arc::new(TrackConfig::H264(H264Config {
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xda]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 640,
            height: 360,
            profile_idc: 0x42,
            constraint_flags: 0xc0,
            level_idc: 0x1e,
        }))
    }

    fn audio_cfg() -> Arc<TrackConfig> {
        Arc::new(TrackConfig::Aac(AacConfig {
            asc: Bytes::from_static(&[0x11, 0x90]),
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
        }))
    }

    fn video(cfg: &Arc<TrackConfig>, ms: i64, keyframe: bool) -> Unit {
        Unit {
            flv_body: Default::default(),
            config: cfg.clone(),
            pts: (ms + 40) * 90,
            dts: ms * 90,
            keyframe,
            payload: Payload::H264(vec![
                Bytes::from_static(&[0x65, 1, 2]),
                Bytes::from_static(&[0x06, 9]),
            ]),
        }
    }

    fn audio(cfg: &Arc<TrackConfig>, ms: i64) -> Unit {
        Unit {
            flv_body: Default::default(),
            config: cfg.clone(),
            pts: ms * 90,
            dts: ms * 90,
            keyframe: true,
            payload: Payload::Aac(Bytes::from_static(&[0x21, 0x10, 0x04])),
        }
    }

    /// Everything `out` holds, in order.
    fn all(out: &mut Out) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(p) = out.next_piece() {
            v.extend_from_slice(&p);
        }
        assert_eq!(out.len(), 0);
        v
    }

    /// (type, timestamp ms, body) of every tag after the header.
    fn tags(out: &mut Out) -> Vec<(u8, u32, Bytes)> {
        let all = all(out);
        let mut b = &all[..];
        let mut out = Vec::new();
        while !b.is_empty() {
            let size = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
            let ts = u32::from_be_bytes([b[7], b[4], b[5], b[6]]);
            out.push((b[0], ts, Bytes::copy_from_slice(&b[11..11 + size])));
            let prev = u32::from_be_bytes(b[11 + size..15 + size].try_into().unwrap());
            assert_eq!(prev as usize, 11 + size, "PreviousTagSize");
            b = &b[15 + size..];
        }
        out
    }

    #[test]
    fn header_flags() {
        for (a, v, flags) in [(true, true, 5), (true, false, 4), (false, true, 1)] {
            let mut out = BytesMut::new();
            write_header(&mut out, a, v);
            assert_eq!(
                &out[..],
                &[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
            );
        }
    }

    #[test]
    fn sequence_headers_first_then_rebased_frames() {
        let (vc, ac) = (video_cfg(), audio_cfg());
        let mut m = Muxer::new();
        let mut out = Out::default();
        assert!(
            !m.push(&video(&vc, 10_000, false), &mut out),
            "P-frame before a keyframe"
        );
        m.start_at(90 * 10_000);
        assert!(m.push(&video(&vc, 10_000, true), &mut out));
        assert!(m.push(&audio(&ac, 10_010), &mut out));
        assert!(m.push(&video(&vc, 10_033, false), &mut out));
        assert!(m.push(&audio(&ac, 10_031), &mut out));
        let t = tags(&mut out);
        let kinds: Vec<(u8, u32)> = t.iter().map(|(k, ts, _)| (*k, *ts)).collect();
        assert_eq!(kinds, [(9, 0), (9, 0), (8, 10), (8, 10), (9, 33), (8, 31)]);
        let seq = parse_video_tag(&t[0].2).unwrap();
        let VideoPacket::SequenceHeader(rec) = seq.packet else {
            panic!("{seq:?}")
        };
        let rec = crate::codec::h264::parse_avc_decoder_config(&rec).unwrap();
        assert_eq!(
            (rec.nal_length_size, rec.sps.len(), rec.pps.len()),
            (4, 1, 1)
        );
        let key = parse_video_tag(&t[1].2).unwrap();
        assert_eq!(key.frame_type, crate::codec::flv::FrameType::Key);
        let VideoPacket::Nalus {
            composition_time,
            data,
        } = key.packet
        else {
            panic!()
        };
        assert_eq!(composition_time, 40);
        assert_eq!(&data[..], &[0, 0, 0, 3, 0x65, 1, 2, 0, 0, 0, 2, 0x06, 9]);
        assert_eq!(
            parse_audio_tag(&t[2].2).unwrap().packet,
            AudioPacket::SequenceHeader(Bytes::from_static(&[0x11, 0x90]))
        );
        assert_eq!(
            parse_audio_tag(&t[3].2).unwrap().packet,
            AudioPacket::Raw(Bytes::from_static(&[0x21, 0x10, 0x04]))
        );
    }

    #[test]
    fn a_new_stream_continues_the_timeline_and_repeats_sequence_headers() {
        let (vc, ac) = (video_cfg(), audio_cfg());
        let mut m = Muxer::new();
        let mut out = Out::default();
        m.push(&video(&vc, 500, true), &mut out);
        m.push(&video(&vc, 1_500, false), &mut out);
        assert_eq!(m.last_ms(), 1_000);
        all(&mut out);
        // The new publisher's clock starts over, 250 ms of wall time later.
        m.next_stream(250);
        assert!(!m.push(&video(&vc, 0, false), &mut out));
        m.push(&audio(&ac, 0), &mut out);
        m.push(&video(&vc, 20, true), &mut out);
        let kinds: Vec<(u8, u32)> = tags(&mut out).iter().map(|(k, ts, _)| (*k, *ts)).collect();
        assert_eq!(kinds, [(8, 1_250), (8, 1_250), (9, 1_270), (9, 1_270)]);
    }

    #[test]
    fn opus_and_unit_times_before_the_base_are_handled() {
        let ac = audio_cfg();
        let mut m = Muxer::new();
        let mut out = Out::default();
        let opus = Unit {
            flv_body: Default::default(),
            config: Arc::new(TrackConfig::Opus(crate::media::OpusConfig { channels: 2 })),
            pts: 0,
            dts: 0,
            keyframe: true,
            payload: Payload::Opus(Bytes::from_static(&[1])),
        };
        assert!(!m.push(&opus, &mut out));
        m.start_at(90 * 1_000);
        m.push(&audio(&ac, 990), &mut out);
        let kinds: Vec<(u8, u32)> = tags(&mut out).iter().map(|(k, ts, _)| (*k, *ts)).collect();
        assert_eq!(kinds, [(8, 0), (8, 0)], "never negative");
    }

    #[test]
    fn frame_bodies_are_made_once_and_shared_by_every_reader() {
        let vc = video_cfg();
        let unit = Arc::new(video(&vc, 0, true));
        let (mut a, mut b) = (Muxer::new(), Muxer::new());
        let (mut oa, mut ob) = (Out::default(), Out::default());
        a.push(&unit, &mut oa);
        b.push(&unit, &mut ob);
        let body = unit.flv_body.get().expect("made by the first reader");
        let pieces = |o: &mut Out| std::iter::from_fn(|| o.next_piece()).collect::<Vec<_>>();
        for (who, o) in [("first", &mut oa), ("second", &mut ob)] {
            let p = pieces(o);
            assert!(
                p.iter().any(|p| p.as_ptr() == body.as_ptr()),
                "the {who} reader sends the shared body, not a copy"
            );
        }
    }
}
