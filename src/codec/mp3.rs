//! MPEG audio layer III (MP3) frame headers: enough to cut a byte stream
//! into frames, each of which the decoder takes as one packet, and to know
//! how much time each frame is worth. ISO/IEC 11172-3 2.4.1.3 and 2.4.2.3
//! (MPEG-1), ISO/IEC 13818-3 2.4.2.3 (MPEG-2 low sampling frequencies), and
//! the unofficial but universal MPEG-2.5 extension.

use super::{invalid, truncated, CodecError};

pub const MP3_HEADER_LEN: usize = 4;
/// The longest layer III frame: MPEG-1 at 320 kbit/s and 32 kHz with
/// padding (144000 * 320 / 32000 + 1). Anything a header announces is at
/// most this, so a framer never buffers more than one of these per frame.
pub const MAX_MP3_FRAME_LEN: usize = 1441;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    Mpeg1,
    Mpeg2,
    /// MPEG-2.5: 8 to 12 kHz.
    Mpeg25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Header {
    pub version: MpegVersion,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    pub channels: u8,
    /// Header included.
    pub frame_len: usize,
    /// Samples per channel the frame decodes to.
    pub samples: u32,
}

/// kbit/s by bitrate_index for layer III; index 0 is "free format" (no
/// frame length in the header: not supported, no streaming encoder uses
/// it) and 15 is forbidden.
const BITRATES_V1: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const BITRATES_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const RATES_V1: [u32; 3] = [44_100, 48_000, 32_000];
const RATES_V2: [u32; 3] = [22_050, 24_000, 16_000];
const RATES_V25: [u32; 3] = [11_025, 12_000, 8_000];

/// Whether `data` starts with the 11-bit frame sync, the cheap test a
/// framer scans with before parsing.
pub fn is_sync(data: &[u8]) -> bool {
    matches!(data, [0xff, b, ..] if b & 0xe0 == 0xe0)
}

/// The layer (1, 2 or 3) a header with a valid sync names, if any: lets a
/// caller tell an MP2 stream from garbage.
pub fn layer(data: &[u8]) -> Option<u8> {
    if !is_sync(data) {
        return None;
    }
    match (data.get(1)? >> 1) & 0x03 {
        0b01 => Some(3),
        0b10 => Some(2),
        0b11 => Some(1),
        _ => None,
    }
}

/// Parses the 4-byte header at the start of `data`. Only layer III is
/// accepted: a layer I or II stream is refused with a message saying so.
pub fn parse_header(data: &[u8]) -> Result<Mp3Header, CodecError> {
    const WHAT: &str = "MP3 frame header";
    let h = data
        .get(..MP3_HEADER_LEN)
        .ok_or_else(|| truncated(WHAT, MP3_HEADER_LEN, data.len()))?;
    if !is_sync(h) {
        return Err(invalid(WHAT, "no frame sync"));
    }
    let version = match (h[1] >> 3) & 0x03 {
        0b00 => MpegVersion::Mpeg25,
        0b10 => MpegVersion::Mpeg2,
        0b11 => MpegVersion::Mpeg1,
        _ => return Err(invalid(WHAT, "reserved MPEG version")),
    };
    match (h[1] >> 1) & 0x03 {
        0b01 => {}
        0b00 => return Err(invalid(WHAT, "reserved layer")),
        _ => {
            return Err(invalid(
                WHAT,
                "MPEG audio layer I or II; only layer III (MP3) is supported",
            ))
        }
    }
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0x03);
    let padding = usize::from((h[2] >> 1) & 0x01);
    let mono = (h[3] >> 6) == 0b11;
    let (bitrates, rates) = match version {
        MpegVersion::Mpeg1 => (&BITRATES_V1, &RATES_V1),
        MpegVersion::Mpeg2 => (&BITRATES_V2, &RATES_V2),
        MpegVersion::Mpeg25 => (&BITRATES_V2, &RATES_V25),
    };
    let bitrate_kbps = match bitrates.get(bitrate_index) {
        Some(0) => return Err(invalid(WHAT, "free-format bitrate")),
        Some(b) => *b,
        None => return Err(invalid(WHAT, "forbidden bitrate index")),
    };
    let sample_rate = *rates
        .get(rate_index)
        .ok_or_else(|| invalid(WHAT, "reserved sampling frequency"))?;
    // Slots of one byte; 1152 samples (MPEG-1) or 576 (MPEG-2/2.5) a frame.
    let (samples, coefficient) = match version {
        MpegVersion::Mpeg1 => (1152, 144_000),
        _ => (576, 72_000),
    };
    let frame_len = (coefficient * bitrate_kbps / sample_rate) as usize + padding;
    if frame_len <= MP3_HEADER_LEN {
        return Err(invalid(WHAT, "frame shorter than its header"));
    }
    Ok(Mp3Header {
        version,
        bitrate_kbps,
        sample_rate,
        channels: if mono { 1 } else { 2 },
        frame_len,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table for the parse test and the fuzz seeds: header bytes and
    /// (sample rate, channels, frame length, samples) or `None` for refused.
    /// Sample rate, channels, frame length, samples.
    type Expected = (u32, u8, usize, u32);

    pub const CASES: &[([u8; 4], Option<Expected>)] = [
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz, stereo, no padding.
        ([0xff, 0xfb, 0x90, 0x00], Some((44_100, 2, 417, 1152))),
        // Same with padding.
        ([0xff, 0xfb, 0x92, 0x00], Some((44_100, 2, 418, 1152))),
        // MPEG-1, 320 kbit/s, 32 kHz, padding: the longest frame.
        (
            [0xff, 0xfb, 0xea, 0x00],
            Some((32_000, 2, MAX_MP3_FRAME_LEN, 1152)),
        ),
        // MPEG-1, 64 kbit/s, 48 kHz, mono.
        ([0xff, 0xfb, 0x54, 0xc0], Some((48_000, 1, 192, 1152))),
        // MPEG-2, 64 kbit/s, 24 kHz.
        ([0xff, 0xf3, 0x84, 0x00], Some((24_000, 2, 192, 576))),
        // MPEG-2.5, 8 kbit/s, 8 kHz.
        ([0xff, 0xe3, 0x18, 0x00], Some((8_000, 2, 72, 576))),
        // Layer II.
        ([0xff, 0xfd, 0x90, 0x00], None),
        // Free format.
        ([0xff, 0xfb, 0x00, 0x00], None),
        // Forbidden bitrate.
        ([0xff, 0xfb, 0xf0, 0x00], None),
        // Reserved rate.
        ([0xff, 0xfb, 0x9c, 0x00], None),
        // Reserved version.
        ([0xff, 0xeb, 0x90, 0x00], None),
        // No sync.
        ([0xfe, 0xfb, 0x90, 0x00], None),
    ]
    .as_slice();

    #[test]
    fn headers() {
        for (bytes, want) in CASES {
            let got = parse_header(bytes)
                .ok()
                .map(|h| (h.sample_rate, h.channels, h.frame_len, h.samples));
            assert_eq!(got, *want, "{bytes:02x?}");
        }
        assert!(parse_header(&[0xff, 0xfb]).is_err());
    }

    #[test]
    fn no_header_announces_more_than_the_longest_frame() {
        for b2 in 0..=255u8 {
            for v in [0xe3u8, 0xf3, 0xfb, 0xe2, 0xf2, 0xfa] {
                if let Ok(h) = parse_header(&[0xff, v, b2, 0]) {
                    assert!(h.frame_len <= MAX_MP3_FRAME_LEN, "{v:02x} {b2:02x}");
                }
            }
        }
    }
}
