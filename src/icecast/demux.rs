//! A source's byte stream cut into frames (MP3, ADTS) or pages (Ogg), and
//! the audio each one carries. Sans-I/O: bytes in, [`Frame`]s out.
//!
//! Each frame keeps the source's own bytes, which plain listeners get as
//! they came; the audio in it goes to the hub. A framer that loses sync
//! scans for the next frame; one that finds nothing valid in
//! [`MAX_RESYNC_BYTES`] gives up, and the connection ends.

use crate::codec::aac::{self, AdtsHeader};
use crate::codec::mp3::{self, Mp3Header};
use crate::codec::ogg;
use bytes::{Bytes, BytesMut};

/// Bytes without a valid frame before the stream counts as undecodable:
/// many frames' worth at any bitrate (an MP3 frame is at most 1441 bytes,
/// an ADTS frame 8191, an Ogg page 65307), so a burst of line noise is
/// survived and a stream of garbage is closed within a second or so.
pub const MAX_RESYNC_BYTES: usize = 128 * 1024;
/// An ID3v2 tag before (or between) MP3 frames is skipped if it is at most
/// this long; a tag that says it is longer counts as garbage. Cover art
/// makes tags large; 1 MiB takes the usual ones, and skipping needs no
/// buffer.
pub const MAX_ID3_BYTES: usize = 1 << 20;
/// The Ogg stream's header pages (ID and comment headers), which each new
/// listener is sent first, are kept in memory for the stream's life:
/// 64 KiB takes a comment header with every usual tag, not embedded cover
/// art.
pub const MAX_OGG_HEADER_BYTES: usize = 64 * 1024;
/// An Opus packet is at most 120 ms of 1275-byte frames (RFC 6716 3.2.5)
/// plus framing; a longer one is dropped.
pub const MAX_OPUS_PACKET: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mp3,
    Adts,
    OggOpus,
}

impl Format {
    /// The format a source's `Content-Type` names, if we take it.
    pub fn from_content_type(ct: &str) -> Option<Format> {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "audio/mpeg" | "audio/mp3" | "audio/mpeg3" => Some(Format::Mp3),
            "audio/aac" | "audio/aacp" | "audio/x-aac" => Some(Format::Adts),
            "application/ogg" | "audio/ogg" | "audio/opus" => Some(Format::OggOpus),
            _ => None,
        }
    }

    /// What plain listeners are told they get.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mp3 => "audio/mpeg",
            Format::Adts => "audio/aac",
            Format::OggOpus => "audio/ogg",
        }
    }
}

/// Where an Ogg page stands among the stream's headers, which a listener
/// that joins later is sent before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    /// Audio (or anything else): sent to listeners in order.
    None,
    /// The first header page of a (new) chain: the listeners' headers start
    /// over with it.
    First,
    /// A further header page of the same chain.
    More,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    None,
    /// The frame is `raw`, header included: what the decoder takes.
    Mp3(Mp3Header),
    /// One raw AAC-LC frame (the ADTS header and CRC removed).
    Aac {
        adts: AdtsHeader,
        frame: Bytes,
    },
    /// Opus packets that ended on this page, each with its length in
    /// samples at 48 kHz; `channels` from the stream's ID header.
    Opus {
        channels: u8,
        packets: Vec<(Bytes, u32)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub raw: Bytes,
    pub header: HeaderRole,
    pub audio: Audio,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error("no valid {0:?} frame in {MAX_RESYNC_BYTES} bytes: not what the content type says, or corrupt")]
    Undecodable(Format),
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Default)]
struct OggState {
    serial: Option<u32>,
    channels: u8,
    /// Header packets still to come in this chain (2, 1 or 0).
    headers_left: u8,
    header_bytes: usize,
    /// A packet continued from the previous page.
    partial: Vec<u8>,
    partial_open: bool,
    partial_too_big: bool,
}

/// Cuts one source's stream into [`Frame`]s. See the module doc.
#[derive(Debug)]
pub struct Demuxer {
    format: Format,
    buf: BytesMut,
    /// Locked on: the last frame was valid and the next one starts at
    /// `buf[0]`. While searching, a candidate must be followed by another
    /// frame start before it is believed.
    locked: bool,
    skipped: usize,
    /// Bytes of an ID3 tag still to skip.
    skip_tag: usize,
    ogg: OggState,
    /// Saw MPEG audio headers of layer I or II: the error says so.
    other_layer: bool,
    /// Frames dropped as malformed while locked (a sign of a broken
    /// encoder, for the log).
    pub dropped: u64,
}

impl Demuxer {
    pub fn new(format: Format) -> Demuxer {
        Demuxer {
            format,
            buf: BytesMut::with_capacity(16 * 1024),
            locked: false,
            skipped: 0,
            skip_tag: 0,
            ogg: OggState::default(),
            other_layer: false,
            dropped: 0,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes held waiting for the rest of a frame: at most one frame or
    /// page plus the last push.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next bytes of the stream; appends every frame they
    /// complete to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) -> Result<(), DemuxError> {
        if self.skip_tag > 0 {
            let n = self.skip_tag.min(data.len());
            self.skip_tag -= n;
            data = data.get(n..).unwrap_or_default();
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.skip_tag > 0 {
                let n = self.skip_tag.min(self.buf.len());
                let _ = self.buf.split_to(n);
                self.skip_tag -= n;
                if self.skip_tag > 0 {
                    return Ok(());
                }
            }
            let step = match self.format {
                Format::Mp3 => self.next_mp3()?,
                Format::Adts => self.next_adts()?,
                Format::OggOpus => self.next_ogg()?,
            };
            match step {
                Step::Frame(f) => {
                    self.locked = true;
                    self.skipped = 0;
                    if let Some(f) = f {
                        out.push(f);
                    }
                }
                Step::NeedMore => return Ok(()),
                Step::Useless(n) => {
                    self.skipped += n;
                    if self.skipped > MAX_RESYNC_BYTES {
                        return Err(self.give_up());
                    }
                }
                Step::Skip(n) => {
                    self.locked = false;
                    let n = n.clamp(1, self.buf.len().max(1)).min(self.buf.len());
                    let _ = self.buf.split_to(n);
                    self.skipped += n;
                    if self.skipped > MAX_RESYNC_BYTES {
                        return Err(self.give_up());
                    }
                }
            }
        }
    }

    fn give_up(&self) -> DemuxError {
        if self.other_layer {
            DemuxError::Unsupported("MPEG audio layer I or II (MP2?); send MP3 (layer III)".into())
        } else {
            DemuxError::Undecodable(self.format)
        }
    }

    /// Bytes up to the next possible frame start at or after offset 1.
    fn to_next_candidate(&self, first: u8) -> usize {
        self.buf
            .iter()
            .skip(1)
            .position(|&b| b == first)
            .map_or(self.buf.len(), |p| p + 1)
    }

    fn next_mp3(&mut self) -> Result<Step, DemuxError> {
        if self.buf.len() < 10 {
            return Ok(Step::NeedMore);
        }
        if self.buf.starts_with(b"ID3") {
            // ID3v2 (id3.org, v2.4 3.1): a 10-byte header whose size is
            // four 7-bit bytes, then a footer of 10 more if flag bit 4.
            let b = &self.buf[..10];
            if b[6..10].iter().any(|x| x & 0x80 != 0) {
                return Ok(Step::Skip(1));
            }
            let size = b[6..10]
                .iter()
                .fold(0usize, |acc, &x| (acc << 7) | usize::from(x));
            let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
            let total = 10 + size + footer;
            if total > MAX_ID3_BYTES {
                return Ok(Step::Skip(1));
            }
            self.skip_tag = total;
            return Ok(Step::Frame(None));
        }
        let header = match mp3::parse_header(&self.buf) {
            Ok(h) => h,
            Err(_) => {
                if self.locked {
                    self.dropped += 1;
                }
                if matches!(mp3::layer(&self.buf), Some(1 | 2)) {
                    self.other_layer = true;
                }
                return Ok(Step::Skip(self.to_next_candidate(0xff)));
            }
        };
        let len = header.frame_len;
        if !self.locked {
            // A header in the middle of garbage is believed only if the
            // next frame starts where it says it ends.
            let Some(next) = self.buf.get(len..len + 4) else {
                return Ok(Step::NeedMore);
            };
            if mp3::parse_header(next).is_err() {
                return Ok(Step::Skip(self.to_next_candidate(0xff)));
            }
        }
        if self.buf.len() < len {
            return Ok(Step::NeedMore);
        }
        let raw = self.buf.split_to(len).freeze();
        Ok(Step::Frame(Some(Frame {
            raw,
            header: HeaderRole::None,
            audio: Audio::Mp3(header),
        })))
    }

    fn next_adts(&mut self) -> Result<Step, DemuxError> {
        if self.buf.len() < aac::ADTS_HEADER_LEN {
            return Ok(Step::NeedMore);
        }
        let adts = match aac::parse_adts(&self.buf) {
            Ok(h) => h,
            Err(_) => {
                if self.locked {
                    self.dropped += 1;
                }
                return Ok(Step::Skip(self.to_next_candidate(0xff)));
            }
        };
        let len = adts.frame_length;
        if !self.locked {
            let Some(next) = self.buf.get(len..len + aac::ADTS_HEADER_LEN) else {
                return Ok(Step::NeedMore);
            };
            if aac::parse_adts(next).is_err() {
                return Ok(Step::Skip(self.to_next_candidate(0xff)));
            }
        }
        if self.buf.len() < len {
            return Ok(Step::NeedMore);
        }
        if adts.object_type != 2 {
            let name = match adts.object_type {
                1 => "Main",
                3 => "SSR",
                _ => "LTP",
            };
            return Err(DemuxError::Unsupported(format!(
                "AAC {name} profile; send AAC-LC"
            )));
        }
        if !(1..=2).contains(&adts.channel_config) {
            return Err(DemuxError::Unsupported(format!(
                "AAC channel configuration {}; send mono or stereo",
                adts.channel_config
            )));
        }
        let raw = self.buf.split_to(len).freeze();
        if adts.raw_blocks != 1 {
            // Several raw data blocks in one frame need the block offsets
            // of the CRC'd variant; no streaming encoder writes them.
            self.dropped += 1;
            return Ok(Step::Frame(Some(Frame {
                raw,
                header: HeaderRole::None,
                audio: Audio::None,
            })));
        }
        let frame = raw.slice(adts.header_length..);
        Ok(Step::Frame(Some(Frame {
            raw,
            header: HeaderRole::None,
            audio: Audio::Aac { adts, frame },
        })))
    }

    fn next_ogg(&mut self) -> Result<Step, DemuxError> {
        let page = match ogg::parse_page(&self.buf) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Step::NeedMore),
            Err(_) => {
                if self.locked {
                    self.dropped += 1;
                }
                return Ok(Step::Skip(self.to_next_candidate(b'O')));
            }
        };
        let len = page.len;
        let header_type = page.header_type;
        let serial = page.serial;
        let body_start = len - page.body.len();
        // Runs as offsets into the page, so packets can be slices of the
        // page's bytes rather than copies.
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        let mut at = body_start;
        for (run, ends) in page.segments() {
            runs.push((at, at + run.len(), ends));
            at += run.len();
        }
        let raw = self.buf.split_to(len).freeze();
        let st = &mut self.ogg;
        let first_packet = runs.first().map(|&(a, b, _)| raw.slice(a..b));
        if header_type & ogg::BOS != 0 {
            let is_opus = first_packet
                .as_ref()
                .is_some_and(|p| p.starts_with(ogg::OPUS_HEAD));
            if !is_opus {
                if st.serial.is_none() {
                    return Err(DemuxError::Unsupported(
                        "an Ogg stream that is not Opus (Vorbis, FLAC?); send Opus in Ogg".into(),
                    ));
                }
                // Another logical stream multiplexed in: not ours.
                return Ok(Step::Frame(None));
            }
            let head = ogg::parse_opus_head(first_packet.as_deref().unwrap_or_default())
                .map_err(|e| DemuxError::Unsupported(e.to_string()))?;
            *st = OggState {
                serial: Some(serial),
                channels: head.channels,
                headers_left: 1,
                header_bytes: len,
                ..OggState::default()
            };
            return Ok(Step::Frame(Some(Frame {
                raw,
                header: HeaderRole::First,
                audio: Audio::None,
            })));
        }
        if st.serial != Some(serial) {
            if st.serial.is_none() {
                // A stream without its ID header: nothing here can be
                // decoded, and it counts towards giving up.
                return Ok(Step::Useless(len));
            }
            return Ok(Step::Frame(None));
        }
        if header_type & ogg::CONTINUED == 0 && st.partial_open {
            st.partial.clear();
            st.partial_open = false;
            st.partial_too_big = false;
        }
        let continued = header_type & ogg::CONTINUED != 0;
        // Pages up to the one where the comment header ends are headers;
        // audio starts on a fresh page (RFC 7845 section 3).
        let in_headers = st.headers_left > 0;
        let mut packets = Vec::new();
        for (i, &(a, b, ends)) in runs.iter().enumerate() {
            let piece = raw.slice(a..b);
            let packet = if i == 0 && continued {
                if !st.partial_open {
                    // The start of this packet was lost.
                    if !ends {
                        st.partial_open = true;
                        st.partial_too_big = true;
                    }
                    continue;
                }
                if st.partial.len() + piece.len() > MAX_OPUS_PACKET {
                    st.partial_too_big = true;
                    st.partial.clear();
                } else if !st.partial_too_big {
                    st.partial.extend_from_slice(&piece);
                }
                if !ends {
                    continue;
                }
                st.partial_open = false;
                let whole = Bytes::from(std::mem::take(&mut st.partial));
                if std::mem::take(&mut st.partial_too_big) {
                    None
                } else {
                    Some(whole)
                }
            } else if !ends {
                st.partial.clear();
                st.partial_open = true;
                st.partial_too_big = piece.len() > MAX_OPUS_PACKET;
                if !st.partial_too_big {
                    st.partial.extend_from_slice(&piece);
                }
                continue;
            } else {
                Some(piece)
            };
            if st.headers_left > 0 {
                st.headers_left -= 1;
                continue;
            }
            match packet {
                Some(p) if p.len() <= MAX_OPUS_PACKET => match ogg::opus_packet_samples(&p) {
                    Ok(n) => packets.push((p, n)),
                    Err(_) => self.dropped += 1,
                },
                _ => self.dropped += 1,
            }
        }
        let st = &mut self.ogg;
        let role = if in_headers {
            st.header_bytes += len;
            if st.header_bytes > MAX_OGG_HEADER_BYTES {
                return Err(DemuxError::Unsupported(format!(
                    "Ogg header pages over {MAX_OGG_HEADER_BYTES} bytes (embedded cover art?)"
                )));
            }
            HeaderRole::More
        } else {
            HeaderRole::None
        };
        Ok(Step::Frame(Some(Frame {
            raw,
            header: role,
            audio: if packets.is_empty() {
                Audio::None
            } else {
                Audio::Opus {
                    channels: self.ogg.channels,
                    packets,
                }
            },
        })))
    }
}

enum Step {
    /// A frame (or `None`: bytes consumed, nothing to hand on).
    Frame(Option<Frame>),
    NeedMore,
    /// Not a frame start: drop this many bytes and look again.
    Skip(usize),
    /// A well-formed frame of this many bytes (already consumed) that is of
    /// no use: it counts towards giving up, like garbage.
    Useless(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP3: &[u8] = include_bytes!("../../tests/data/sine.mp3");
    const ADTS: &[u8] = include_bytes!("../../tests/data/sine.aac");
    const OGG: &[u8] = include_bytes!("../../tests/data/sine.opus");

    /// Feeds `data` in pieces of varying size, as a socket would.
    fn demux(format: Format, data: &[u8]) -> Result<Vec<Frame>, DemuxError> {
        let mut d = Demuxer::new(format);
        let mut out = Vec::new();
        let mut at = 0;
        let mut step = 1;
        while at < data.len() {
            let end = (at + step).min(data.len());
            d.push(&data[at..end], &mut out)?;
            at = end;
            step = step * 3 % 1031 + 1;
        }
        assert!(d.buffered() <= MAX_OGG_PAGE_LEN, "holds at most a frame");
        Ok(out)
    }

    const MAX_OGG_PAGE_LEN: usize = ogg::MAX_OGG_PAGE;

    fn mp3_samples(frames: &[Frame]) -> u32 {
        frames
            .iter()
            .map(|f| match &f.audio {
                Audio::Mp3(h) => h.samples,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn mp3_frames_after_the_id3_tag() {
        assert!(MP3.starts_with(b"ID3"));
        let frames = demux(Format::Mp3, MP3).unwrap();
        // One second at 44.1 kHz in 1152-sample frames, plus the encoder's
        // padding, less the last frame (held until the next would start).
        let samples = mp3_samples(&frames);
        assert!((43_000..=48_400).contains(&samples), "{samples}");
        for f in &frames {
            let Audio::Mp3(h) = &f.audio else { panic!() };
            assert_eq!(f.raw.len(), h.frame_len);
            assert!(mp3::is_sync(&f.raw));
        }
    }

    #[test]
    fn garbage_between_frames_is_skipped() {
        let clean = demux(Format::Mp3, MP3).unwrap();
        let mut dirty = b"\xff\xfb\x90garbage\xff".to_vec();
        let cut = MP3.len() / 2;
        dirty.extend_from_slice(&MP3[..cut]);
        dirty.extend_from_slice(&[0xff; 3000]);
        dirty.extend_from_slice(b"more noise \xff\xe0");
        dirty.extend_from_slice(&MP3[cut..]);
        let frames = demux(Format::Mp3, &dirty).unwrap();
        // At most the two frames cut in half are lost.
        assert!(mp3_samples(&frames) + 2 * 1152 >= mp3_samples(&clean));
    }

    #[test]
    fn garbage_alone_is_undecodable() {
        let mut junk = vec![0u8; MAX_RESYNC_BYTES + 1000];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i * 7919 % 251) as u8;
        }
        for format in [Format::Mp3, Format::Adts, Format::OggOpus] {
            assert_eq!(demux(format, &junk), Err(DemuxError::Undecodable(format)));
        }
        // MP2 says what it is.
        let mut mp2 = Vec::new();
        for _ in 0..200 {
            mp2.extend_from_slice(&[0xff, 0xfd, 0x90, 0x00]);
            mp2.extend_from_slice(&[0x55; 700]);
        }
        assert!(
            matches!(demux(Format::Mp3, &mp2), Err(DemuxError::Unsupported(m)) if m.contains("layer I or II"))
        );
    }

    #[test]
    fn adts_frames_lose_their_header() {
        let frames = demux(Format::Adts, ADTS).unwrap();
        assert!((45..=49).contains(&frames.len()), "{}", frames.len());
        for f in &frames {
            let Audio::Aac { adts, frame } = &f.audio else {
                panic!()
            };
            assert_eq!(adts.object_type, 2);
            assert_eq!(frame.len() + adts.header_length, f.raw.len());
        }
        // Main profile is refused with a reason.
        let mut main = ADTS.to_vec();
        main[2] &= 0x3f;
        assert!(
            matches!(demux(Format::Adts, &main), Err(DemuxError::Unsupported(m)) if m.contains("Main"))
        );
    }

    fn opus_samples(frames: &[Frame]) -> u32 {
        frames
            .iter()
            .map(|f| match &f.audio {
                Audio::Opus { packets, .. } => packets.iter().map(|p| p.1).sum(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn ogg_headers_then_opus_packets() {
        let frames = demux(Format::OggOpus, OGG).unwrap();
        assert_eq!(frames[0].header, HeaderRole::First);
        assert_eq!(frames[1].header, HeaderRole::More, "the comment header");
        assert!(frames[2..].iter().all(|f| f.header == HeaderRole::None));
        let samples = opus_samples(&frames);
        assert!((48_000..=49_000).contains(&samples), "{samples}");
        // A second chain (a new track from Liquidsoap or ices) starts the
        // listeners' headers over.
        let mut two = OGG.to_vec();
        two.extend_from_slice(OGG);
        let frames = demux(Format::OggOpus, &two).unwrap();
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.header == HeaderRole::First)
                .count(),
            2
        );
        assert!(opus_samples(&frames) >= 2 * 48_000);
    }

    #[test]
    fn ogg_that_is_not_opus_is_refused() {
        let vorbis = ogg::write_page(ogg::BOS, 0, 7, 0, &[b"\x01vorbis\x00\x00\x00\x00\x02"]);
        assert!(matches!(
            demux(Format::OggOpus, &vorbis),
            Err(DemuxError::Unsupported(_))
        ));
        // Pages of a stream whose ID header never came are garbage.
        let mut orphan = Vec::new();
        for seq in 0..100 {
            orphan.extend(ogg::write_page(
                0,
                seq * 960,
                9,
                seq as u32,
                &[&[0xfcu8; 2000][..]],
            ));
        }
        assert_eq!(
            demux(Format::OggOpus, &orphan),
            Err(DemuxError::Undecodable(Format::OggOpus))
        );
    }

    #[test]
    fn oversized_and_lost_packets_are_dropped_not_buffered() {
        let head = {
            let mut h = ogg::OPUS_HEAD.to_vec();
            h.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
            h
        };
        let mut s = ogg::write_page(ogg::BOS, 0, 3, 0, &[&head]);
        s.extend(ogg::write_page(0, 0, 3, 1, &[b"OpusTags\0\0\0\0\0\0\0\0"]));
        // A 20 000-byte packet: over MAX_OPUS_PACKET.
        let big = vec![0xfcu8; 20_000];
        s.extend(ogg::write_page(0, 960, 3, 2, &[&big]));
        s.extend(ogg::write_page(0, 1920, 3, 3, &[&[0xfc, 1, 2, 3][..]]));
        let mut d = Demuxer::new(Format::OggOpus);
        let mut out = Vec::new();
        d.push(&s, &mut out).unwrap();
        assert_eq!(opus_samples(&out), 960, "only the small packet");
        assert_eq!(d.dropped, 1);
        assert!(d.ogg.partial.len() <= MAX_OPUS_PACKET);
    }

    #[test]
    fn content_types() {
        for (ct, want) in [
            ("audio/mpeg", Some(Format::Mp3)),
            ("Audio/MPEG; charset=x", Some(Format::Mp3)),
            ("audio/aac", Some(Format::Adts)),
            ("application/ogg", Some(Format::OggOpus)),
            ("audio/ogg", Some(Format::OggOpus)),
            ("video/mp4", None),
            ("", None),
        ] {
            assert_eq!(Format::from_content_type(ct), want, "{ct}");
        }
    }
}
