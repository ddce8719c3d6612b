//! Ogg pages (RFC 3533) and the Opus-in-Ogg headers (RFC 7845), plus the
//! duration of an Opus packet from its TOC byte (RFC 6716 3.1). Pure: a
//! page is parsed from a byte slice, never beyond it.

use super::{invalid, truncated, CodecError};

/// "OggS", version, header type, granule position (8), serial (4),
/// sequence (4), CRC (4), segment count (1): RFC 3533 section 6.
pub const OGG_HEADER_LEN: usize = 27;
/// The largest page the format can describe: 255 segments of 255 bytes.
pub const MAX_OGG_PAGE: usize = OGG_HEADER_LEN + 255 + 255 * 255;
pub const CAPTURE: &[u8; 4] = b"OggS";

/// header_type_flag bits (RFC 3533 section 6).
pub const CONTINUED: u8 = 0x01;
pub const BOS: u8 = 0x02;
pub const EOS: u8 = 0x04;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a> {
    pub header_type: u8,
    pub granule: i64,
    pub serial: u32,
    pub sequence: u32,
    /// The lacing values: a packet ends at the first value below 255.
    pub lacing: &'a [u8],
    pub body: &'a [u8],
    /// Header and body: exactly the page's bytes.
    pub len: usize,
}

impl Page<'_> {
    /// Each lacing run of the body: its bytes, and whether a packet ends
    /// with it (false for the last run when the packet goes on in the next
    /// page).
    pub fn segments(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        let mut at = 0usize;
        let mut start = 0usize;
        let mut i = 0usize;
        std::iter::from_fn(move || {
            while let Some(&l) = self.lacing.get(i) {
                i += 1;
                at += usize::from(l);
                if l < 255 {
                    let run = self.body.get(start..at).unwrap_or_default();
                    start = at;
                    return Some((run, true));
                }
            }
            if start < at {
                let run = self.body.get(start..at).unwrap_or_default();
                start = at;
                return Some((run, false));
            }
            None
        })
    }
}

/// Parses the page at the start of `data`: `Ok(None)` if more bytes are
/// needed, an error if it is not a valid page (no capture pattern, another
/// version, a CRC mismatch). The CRC is checked, so a framer that lost sync
/// does not take garbage that happens to start with "OggS" for a page.
pub fn parse_page(data: &[u8]) -> Result<Option<Page<'_>>, CodecError> {
    const WHAT: &str = "Ogg page";
    if data.len() < OGG_HEADER_LEN {
        return if CAPTURE.starts_with(data.get(..4.min(data.len())).unwrap_or_default()) {
            Ok(None)
        } else {
            Err(invalid(WHAT, "no capture pattern"))
        };
    }
    if data.get(..4) != Some(&CAPTURE[..]) {
        return Err(invalid(WHAT, "no capture pattern"));
    }
    let h = data
        .get(..OGG_HEADER_LEN)
        .ok_or_else(|| truncated(WHAT, OGG_HEADER_LEN, data.len()))?;
    if h[4] != 0 {
        return Err(invalid(WHAT, format!("stream structure version {}", h[4])));
    }
    let header_type = h[5];
    if header_type & !(CONTINUED | BOS | EOS) != 0 {
        return Err(invalid(WHAT, "reserved header type bits"));
    }
    let granule = i64::from_le_bytes(le8(&h[6..14]));
    let serial = u32::from_le_bytes(le4(&h[14..18]));
    let sequence = u32::from_le_bytes(le4(&h[18..22]));
    let crc = u32::from_le_bytes(le4(&h[22..26]));
    let segments = usize::from(h[26]);
    let Some(lacing) = data.get(OGG_HEADER_LEN..OGG_HEADER_LEN + segments) else {
        return Ok(None);
    };
    let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let len = OGG_HEADER_LEN + segments + body_len;
    let Some(page) = data.get(..len) else {
        return Ok(None);
    };
    if crc32(page) != crc {
        return Err(invalid(WHAT, "CRC mismatch"));
    }
    Ok(Some(Page {
        header_type,
        granule,
        serial,
        sequence,
        lacing,
        body: page.get(OGG_HEADER_LEN + segments..).unwrap_or_default(),
        len,
    }))
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0; 4];
    a.iter_mut().zip(b).for_each(|(x, y)| *x = *y);
    a
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0; 8];
    a.iter_mut().zip(b).for_each(|(x, y)| *x = *y);
    a
}

/// The Ogg CRC: polynomial 0x04c11db7, initial value 0, not reflected, no
/// final XOR, over the whole page with the CRC field taken as zero
/// (RFC 3533 section 6, "CRC_checksum").
pub fn crc32(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for (i, &b) in page.iter().enumerate() {
        let b = if (22..26).contains(&i) { 0 } else { b };
        crc = (crc << 8) ^ CRC_TABLE[usize::from(((crc >> 24) as u8) ^ b)];
    }
    crc
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            k += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

/// Writes a page (for tests and the fuzz seeds): one packet per entry of
/// `packets`, the last one continued into the next page when `open_end`.
pub fn write_page(
    header_type: u8,
    granule: i64,
    serial: u32,
    sequence: u32,
    packets: &[&[u8]],
) -> Vec<u8> {
    let mut lacing = Vec::new();
    for p in packets {
        let mut n = p.len();
        while n >= 255 {
            lacing.push(255u8);
            n -= 255;
        }
        lacing.push(n as u8);
    }
    let mut page = Vec::with_capacity(OGG_HEADER_LEN + lacing.len());
    page.extend_from_slice(CAPTURE);
    page.push(0);
    page.push(header_type);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&serial.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    for p in packets {
        page.extend_from_slice(p);
    }
    let crc = crc32(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// The identification header (RFC 7845 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    pub channels: u8,
    /// Samples at 48 kHz the decoder drops at the start.
    pub pre_skip: u16,
    pub input_rate: u32,
}

pub const OPUS_HEAD: &[u8; 8] = b"OpusHead";
pub const OPUS_TAGS: &[u8; 8] = b"OpusTags";

/// Parses an ID header. Channel mapping family 0 only (mono or stereo):
/// what WebRTC carries and every DJ tool sends.
pub fn parse_opus_head(packet: &[u8]) -> Result<OpusHead, CodecError> {
    const WHAT: &str = "OpusHead";
    if packet.len() < 19 {
        return Err(truncated(WHAT, 19, packet.len()));
    }
    if packet.get(..8) != Some(&OPUS_HEAD[..]) {
        return Err(invalid(WHAT, "not an Opus ID header"));
    }
    let version = packet[8];
    if version & 0xf0 != 0 {
        return Err(invalid(WHAT, format!("version {version}")));
    }
    let channels = packet[9];
    let mapping = packet[18];
    if mapping != 0 || !(1..=2).contains(&channels) {
        return Err(invalid(
            WHAT,
            format!("{channels} channels with mapping family {mapping}; only mono or stereo"),
        ));
    }
    Ok(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        input_rate: u32::from_le_bytes(le4(&packet[12..16])),
    })
}

/// Samples at 48 kHz one Opus packet decodes to (RFC 6716 3.1 and 3.2.5),
/// or an error for a packet that cannot be valid (empty, a frame count of
/// zero, or over 120 ms).
pub fn opus_packet_samples(packet: &[u8]) -> Result<u32, CodecError> {
    const WHAT: &str = "Opus packet";
    let toc = *packet.first().ok_or_else(|| truncated(WHAT, 1, 0))?;
    let config = toc >> 3;
    // Frame size in 1/400 s (2.5 ms = 120 samples at 48 kHz).
    let units: u32 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1).ok_or_else(|| truncated(WHAT, 2, 1))? & 0x3f),
    };
    let samples = units * 120 * frames;
    if frames == 0 || samples > 5760 {
        return Err(invalid(
            WHAT,
            format!("{frames} frames of {units} x 2.5 ms"),
        ));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn head(channels: u8, mapping: u8) -> Vec<u8> {
        let mut h = OPUS_HEAD.to_vec();
        h.extend_from_slice(&[1, channels, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, mapping]);
        h
    }

    #[test]
    fn crc_matches_a_page_libogg_wrote() {
        // The first page of an Ogg/Opus file ffmpeg 5.1 wrote (`-fflags
        // +bitexact`, mono): its CRC is the muxer's, not ours.
        let real = hex("4f6767530002000000000000000000000000000000000228b57201134f707573486561640101380180bb0000000000");
        let parsed = parse_page(&real).unwrap().unwrap();
        assert_eq!(parsed.len, real.len());
        assert_eq!(parsed.header_type, BOS);
        assert_eq!(parse_opus_head(parsed.body).unwrap().channels, 1);
        let page = write_page(BOS, 0, 0, 0, &[parsed.body]);
        assert_eq!(page, real, "our writer makes the same page");
        let mut bad = page.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(parse_page(&bad).is_err(), "a flipped bit fails the CRC");
    }

    #[test]
    fn partial_pages_ask_for_more() {
        let page = write_page(0, 960, 1, 2, &[&[0xfc; 300], &[0xfc; 20]]);
        for cut in [0, 3, 10, 27, 28, page.len() - 1] {
            assert_eq!(parse_page(&page[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_page(b"Ogx").is_err());
        let p = parse_page(&page).unwrap().unwrap();
        let runs: Vec<(usize, bool)> = p.segments().map(|(b, end)| (b.len(), end)).collect();
        assert_eq!(runs, [(300, true), (20, true)]);
    }

    #[test]
    fn a_packet_continued_on_the_next_page() {
        let big = vec![7u8; 255 * 2];
        let mut page = write_page(0, 0, 1, 2, &[&big]);
        // Drop the terminating 0 lacing value: the packet goes on.
        page[26] -= 1;
        page.remove(OGG_HEADER_LEN + 2);
        let crc = crc32(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        let p = parse_page(&page).unwrap().unwrap();
        let runs: Vec<(usize, bool)> = p.segments().map(|(b, end)| (b.len(), end)).collect();
        assert_eq!(runs, [(510, false)]);
    }

    #[test]
    fn opus_heads() {
        assert_eq!(
            parse_opus_head(&head(1, 0)).unwrap(),
            OpusHead {
                channels: 1,
                pre_skip: 312,
                input_rate: 48_000
            }
        );
        assert!(parse_opus_head(&head(6, 1)).is_err());
        assert!(parse_opus_head(&head(0, 0)).is_err());
        assert!(parse_opus_head(&head(2, 0)[..18]).is_err());
    }

    #[test]
    fn packet_durations() {
        for (packet, want) in [
            (&[0xfc][..], Some(960)),        // CELT FB 20 ms, one frame
            (&[0xfd][..], Some(1920)),       // two frames
            (&[0xfb, 0x03][..], Some(2880)), // code 3: three 20 ms frames
            (&[0x78][..], Some(960)),        // hybrid FB 20 ms
            (&[0x18][..], Some(2880)),       // SILK 60 ms
            (&[0x1b, 0x02][..], Some(5760)), // SILK 60 ms x 2
            (&[0x1b, 0x03][..], None),       // 180 ms
            (&[0x03, 0x00][..], None),       // zero frames
            (&[0x03][..], None),
            (&[][..], None),
        ] {
            assert_eq!(opus_packet_samples(packet).ok(), want, "{packet:02x?}");
        }
    }
}
