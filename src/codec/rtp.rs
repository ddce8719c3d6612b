//! RTP payloads a publisher sends, received by code we own: every length is
//! checked before it is used, and nothing a sender does can grow memory past
//! the named limits.
//!
//! - [`H264Depacketizer`]: RFC 6184 packetization mode 1 (what WHIP
//!   negotiates): single NAL unit packets (5.6), STAP-A (5.7.1) and FU-A
//!   (5.8), into the NAL units of one access unit.
//! - [`check_opus`]: the packet rules of RFC 6716 3.4 (R1-R7), so only
//!   well-formed Opus reaches the transcoder and the recording.
//! - [`vp8_descriptor_len`]: the RFC 7741 4.2 payload descriptor's length,
//!   or why the packet is malformed.

use super::h264::MAX_NALUS_PER_AU;
use bytes::{Bytes, BytesMut};

/// The largest access unit we reassemble. A 4K keyframe from a hardware
/// encoder at a high bitrate is well under 2 MiB; anything bigger is an
/// attack or a broken sender, and is dropped rather than buffered.
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

/// RFC 6184 5.2 payload types (the NAL unit type field of the first byte).
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// Why a packet, or the access unit it belonged to, was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// An empty payload.
    Empty,
    /// A STAP-A or FU-A shorter than its own headers say.
    Truncated,
    /// A NAL unit with the forbidden_zero_bit set (RFC 6184 5.3).
    Forbidden,
    /// STAP-B, MTAP or FU-B: interleaved mode, which we never negotiate.
    Unsupported,
    /// An FU-A continuation whose start we never saw.
    FragmentWithoutStart,
    /// A new FU-A started before the last one ended.
    FragmentInterrupted,
    /// The access unit passed [`MAX_ACCESS_UNIT`] bytes.
    TooLarge,
    /// The access unit passed [`MAX_NALUS_PER_AU`] NAL units.
    TooManyNalus,
    /// The timestamp moved on before the last access unit's marker packet.
    Unterminated,
    /// A packet of the access unit was lost or refused: the unit is
    /// dropped whole, since a decoder cannot use part of it.
    Incomplete,
}

impl Dropped {
    /// For logs and the `onair_ingest_dropped_total{reason}` counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Empty => "empty",
            Dropped::Truncated => "truncated",
            Dropped::Forbidden => "forbidden_bit",
            Dropped::Unsupported => "unsupported_packetization",
            Dropped::FragmentWithoutStart => "fragment_without_start",
            Dropped::FragmentInterrupted => "fragment_interrupted",
            Dropped::TooLarge => "access_unit_too_large",
            Dropped::TooManyNalus => "too_many_nal_units",
            Dropped::Unterminated => "unterminated_access_unit",
            Dropped::Incomplete => "incomplete_access_unit",
        }
    }
}

/// What one packet did: maybe finished an access unit, maybe dropped
/// something (both can happen: a new timestamp drops the unterminated unit
/// before it, and the packet then starts the next one).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub unit: Option<AccessUnit>,
    pub dropped: Option<Dropped>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub timestamp: u32,
    pub nalus: Vec<Bytes>,
}

/// Reassembles one H.264 RTP stream's access units. Memory is bounded by
/// [`MAX_ACCESS_UNIT`] bytes and [`MAX_NALUS_PER_AU`] NAL units, and is
/// given back at every timestamp change.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    timestamp: Option<u32>,
    nalus: Vec<Bytes>,
    /// Bytes held: finished NAL units plus the fragment in progress.
    size: usize,
    fragment: Option<BytesMut>,
    /// Something of this access unit was lost or refused.
    broken: Option<Dropped>,
}

impl H264Depacketizer {
    /// A packet of this access unit went missing (a sequence gap): the unit
    /// will be dropped when it ends.
    pub fn lost(&mut self) {
        if self.broken.is_none() {
            self.nalus.clear();
            self.fragment = None;
            self.size = 0;
            self.broken = Some(Dropped::Incomplete);
        }
    }

    /// Feeds one packet. `marker` is the RTP marker bit: the last packet of
    /// an access unit (RFC 6184 5.1).
    pub fn push(&mut self, payload: &Bytes, timestamp: u32, marker: bool) -> Pushed {
        let mut out = Pushed::default();
        if self.timestamp.is_some_and(|t| t != timestamp) {
            // The last unit's marker packet never came.
            let had = self.size > 0 || self.broken.is_some() || self.fragment.is_some();
            self.reset();
            if had {
                out.dropped = Some(Dropped::Unterminated);
            }
        }
        self.timestamp = Some(timestamp);
        // Once broken, the unit will be dropped whole: what it held is
        // given back at once and the rest of its packets are not read.
        if self.broken.is_none() {
            if let Err(why) = self.take(payload) {
                self.nalus.clear();
                self.fragment = None;
                self.size = 0;
                self.broken = Some(why);
                out.dropped.get_or_insert(why);
            }
        }
        if marker {
            let unit = AccessUnit {
                timestamp,
                nalus: std::mem::take(&mut self.nalus),
            };
            let broken = self
                .broken
                .take()
                .or(self.fragment.is_some().then_some(Dropped::Incomplete));
            self.reset();
            match broken {
                Some(why) => {
                    out.dropped.get_or_insert(why);
                }
                None if unit.nalus.is_empty() => {}
                None => out.unit = Some(unit),
            }
        }
        out
    }

    fn reset(&mut self) {
        self.timestamp = None;
        self.nalus.clear();
        self.size = 0;
        self.fragment = None;
        self.broken = None;
    }

    fn take(&mut self, payload: &Bytes) -> Result<(), Dropped> {
        let Some(&first) = payload.first() else {
            return Err(Dropped::Empty);
        };
        if first & 0x80 != 0 {
            return Err(Dropped::Forbidden);
        }
        match first & 0x1f {
            // RFC 6184 5.4: reserved types are ignored by receivers.
            0 | 30 | 31 => Ok(()),
            1..=23 => self.add(payload.clone()),
            STAP_A => {
                // Every length is checked before any unit is kept, so a
                // malformed aggregate adds nothing.
                let mut units = Vec::new();
                let mut rest = &payload[1..];
                let mut at = 1;
                while !rest.is_empty() {
                    let [hi, lo, ..] = *rest else {
                        return Err(Dropped::Truncated);
                    };
                    let n = usize::from(u16::from_be_bytes([hi, lo]));
                    if n == 0 || rest.len() < 2 + n {
                        return Err(Dropped::Truncated);
                    }
                    if payload[at + 2] & 0x80 != 0 {
                        return Err(Dropped::Forbidden);
                    }
                    units.push(payload.slice(at + 2..at + 2 + n));
                    rest = &rest[2 + n..];
                    at += 2 + n;
                }
                if units.is_empty() {
                    return Err(Dropped::Truncated);
                }
                units.into_iter().try_for_each(|u| self.add(u))
            }
            FU_A => {
                let [indicator, header, ..] = payload[..] else {
                    return Err(Dropped::Truncated);
                };
                let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
                let data = &payload[2..];
                if start {
                    if self.fragment.is_some() {
                        return Err(Dropped::FragmentInterrupted);
                    }
                    self.grow(1 + data.len())?;
                    let mut nal = BytesMut::with_capacity(1 + data.len());
                    // The NAL header: F and NRI from the indicator, the
                    // type from the FU header (RFC 6184 5.8).
                    nal.extend_from_slice(&[(indicator & 0xe0) | (header & 0x1f)]);
                    nal.extend_from_slice(data);
                    self.fragment = Some(nal);
                } else {
                    if self.fragment.is_none() {
                        return Err(Dropped::FragmentWithoutStart);
                    }
                    self.grow(data.len())?;
                    if let Some(f) = self.fragment.as_mut() {
                        f.extend_from_slice(data);
                    }
                }
                if end {
                    if let Some(nal) = self.fragment.take() {
                        // Already counted in `size` as it grew.
                        if self.nalus.len() >= MAX_NALUS_PER_AU {
                            return Err(Dropped::TooManyNalus);
                        }
                        self.nalus.push(nal.freeze());
                    }
                }
                Ok(())
            }
            _ => Err(Dropped::Unsupported),
        }
    }

    fn grow(&mut self, by: usize) -> Result<(), Dropped> {
        if self.size + by > MAX_ACCESS_UNIT {
            return Err(Dropped::TooLarge);
        }
        self.size += by;
        Ok(())
    }

    fn add(&mut self, nal: Bytes) -> Result<(), Dropped> {
        if self.nalus.len() >= MAX_NALUS_PER_AU {
            return Err(Dropped::TooManyNalus);
        }
        self.grow(nal.len())?;
        self.nalus.push(nal);
        Ok(())
    }
}

/// Why an Opus packet is malformed (RFC 6716 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusError {
    /// R1: a packet has at least one byte.
    Empty,
    /// R2-R7: a frame length, count or padding that does not fit.
    Malformed(&'static str),
}

/// The longest frame RFC 6716 allows (R2).
const OPUS_MAX_FRAME: usize = 1275;
/// At most 120 ms of audio per packet (R5).
const OPUS_MAX_DURATION_US: u32 = 120_000;

/// Checks an Opus packet against RFC 6716 3.4: the TOC byte and, for codes
/// 1-3, every frame length, count and padding.
pub fn check_opus(p: &[u8]) -> Result<(), OpusError> {
    let malformed = OpusError::Malformed;
    let Some(&toc) = p.first() else {
        return Err(OpusError::Empty);
    };
    let body = &p[1..];
    match toc & 0x03 {
        // One frame: whatever follows (R2 bounds it).
        0 => (body.len() <= OPUS_MAX_FRAME)
            .then_some(())
            .ok_or(malformed("frame longer than 1275 bytes")),
        // Two frames of equal size (R3).
        1 => (body.len() % 2 == 0 && body.len() / 2 <= OPUS_MAX_FRAME)
            .then_some(())
            .ok_or(malformed("code 1 frames of unequal size")),
        // Two frames, the first's length coded (R4).
        2 => {
            let (n1, used) = frame_length(body).ok_or(malformed("code 2 length missing"))?;
            let rest = body.len() - used;
            (n1 <= rest && rest - n1 <= OPUS_MAX_FRAME)
                .then_some(())
                .ok_or(malformed("code 2 first frame past the end"))
        }
        // Any number of frames (R5-R7).
        _ => {
            let &fc = body
                .first()
                .ok_or(malformed("code 3 without a frame count"))?;
            let m = usize::from(fc & 0x3f);
            if m == 0 || frame_duration_us(toc) * m as u32 > OPUS_MAX_DURATION_US {
                return Err(malformed("code 3 frame count"));
            }
            let (vbr, padded) = (fc & 0x80 != 0, fc & 0x40 != 0);
            let mut i = 1;
            let mut padding = 0usize;
            if padded {
                // Each 255 adds 254 bytes and another length byte.
                loop {
                    let &b = body
                        .get(i)
                        .ok_or(malformed("padding length past the end"))?;
                    i += 1;
                    padding += if b == 255 { 254 } else { usize::from(b) };
                    if b != 255 {
                        break;
                    }
                }
            }
            let mut total = 0usize;
            if vbr {
                for _ in 0..m - 1 {
                    let (n, used) = frame_length(&body[i.min(body.len())..])
                        .ok_or(malformed("code 3 length past the end"))?;
                    i += used;
                    total += n;
                }
            }
            let data = body
                .len()
                .checked_sub(i + padding)
                .ok_or(malformed("padding past the end"))?;
            if vbr {
                let last = data
                    .checked_sub(total)
                    .ok_or(malformed("code 3 frames past the end"))?;
                (last <= OPUS_MAX_FRAME)
                    .then_some(())
                    .ok_or(malformed("code 3 last frame too long"))
            } else {
                (data % m == 0 && data / m <= OPUS_MAX_FRAME)
                    .then_some(())
                    .ok_or(malformed("code 3 CBR frames of unequal size"))
            }
        }
    }
}

/// A frame length of one or two bytes (RFC 6716 3.2.1): the length and
/// how many bytes coded it.
fn frame_length(b: &[u8]) -> Option<(usize, usize)> {
    let &b0 = b.first()?;
    match b0 {
        0..=251 => Some((usize::from(b0), 1)),
        _ => Some((usize::from(*b.get(1)?) * 4 + usize::from(b0), 2)),
    }
}

/// The frame duration a TOC byte's configuration names (RFC 6716 Table 2).
fn frame_duration_us(toc: u8) -> u32 {
    let config = toc >> 3;
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    }
}

/// The length of a VP8 payload descriptor (RFC 7741 4.2), or `None` when
/// the packet ends inside it or carries nothing after it.
pub fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let &b0 = p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let &x = p.get(1)?;
        i = 2;
        if x & 0x80 != 0 {
            // PictureID: 15 bits when its M bit is set, else 7.
            i += if p.get(2)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    (p.len() > i).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    /// One access unit's packets (payload, marker) and what must come out:
    /// the NAL units, or why it was dropped.
    struct Case {
        name: &'static str,
        packets: &'static [(&'static [u8], bool)],
        nalus: &'static [&'static [u8]],
        dropped: Option<Dropped>,
    }

    const CASES: &[Case] = &[
        Case {
            name: "single NAL unit",
            packets: &[(&[0x65, 1, 2, 3], true)],
            nalus: &[&[0x65, 1, 2, 3]],
            dropped: None,
        },
        Case {
            name: "STAP-A with SPS and PPS, then an IDR",
            packets: &[
                (&[0x78, 0, 3, 0x67, 0x42, 0x1f, 0, 2, 0x68, 0xce], false),
                (&[0x65, 9], true),
            ],
            nalus: &[&[0x67, 0x42, 0x1f], &[0x68, 0xce], &[0x65, 9]],
            dropped: None,
        },
        Case {
            name: "FU-A in three fragments",
            packets: &[
                (&[0x7c, 0x85, 1, 2], false),
                (&[0x7c, 0x05, 3], false),
                (&[0x7c, 0x45, 4], true),
            ],
            nalus: &[&[0x65, 1, 2, 3, 4]],
            dropped: None,
        },
        Case {
            name: "the STAP-A that stopped every viewer (zero-length unit)",
            packets: &[(&[0x18, 0, 0, 0], true)],
            nalus: &[],
            dropped: Some(Dropped::Truncated),
        },
        Case {
            name: "STAP-A whose length runs past the end",
            packets: &[(&[0x78, 0, 9, 0x65, 1], true)],
            nalus: &[],
            dropped: Some(Dropped::Truncated),
        },
        Case {
            name: "STAP-A with a dangling length byte",
            packets: &[(&[0x78, 0, 1, 0x65, 0], true)],
            nalus: &[],
            dropped: Some(Dropped::Truncated),
        },
        Case {
            name: "empty STAP-A",
            packets: &[(&[0x78], true)],
            nalus: &[],
            dropped: Some(Dropped::Truncated),
        },
        Case {
            name: "FU-A without its header",
            packets: &[(&[0x7c], true)],
            nalus: &[],
            dropped: Some(Dropped::Truncated),
        },
        Case {
            name: "FU-A continuation without a start",
            packets: &[(&[0x7c, 0x05, 1], false), (&[0x7c, 0x45, 2], true)],
            nalus: &[],
            dropped: Some(Dropped::FragmentWithoutStart),
        },
        Case {
            name: "FU-A restarted before it ended",
            packets: &[
                (&[0x7c, 0x85, 1], false),
                (&[0x7c, 0x85, 2], false),
                (&[0x7c, 0x45, 3], true),
            ],
            nalus: &[],
            dropped: Some(Dropped::FragmentInterrupted),
        },
        Case {
            name: "FU-A whose end never comes",
            packets: &[(&[0x7c, 0x85, 1], false), (&[0x7c, 0x05, 2], true)],
            nalus: &[],
            dropped: Some(Dropped::Incomplete),
        },
        Case {
            name: "forbidden bit",
            packets: &[(&[0xe5, 1], true)],
            nalus: &[],
            dropped: Some(Dropped::Forbidden),
        },
        Case {
            name: "forbidden bit inside a STAP-A",
            packets: &[(&[0x78, 0, 2, 0x85, 1], true)],
            nalus: &[],
            dropped: Some(Dropped::Forbidden),
        },
        Case {
            name: "empty payload",
            packets: &[(&[], true)],
            nalus: &[],
            dropped: Some(Dropped::Empty),
        },
        Case {
            name: "interleaved-mode types",
            packets: &[(&[0x79, 0, 0, 1, 0x65], true)],
            nalus: &[],
            dropped: Some(Dropped::Unsupported),
        },
        Case {
            name: "reserved types are ignored",
            packets: &[(&[0x1e, 1, 2], false), (&[0x41, 7], true)],
            nalus: &[&[0x41, 7]],
            dropped: None,
        },
    ];

    fn run(packets: &[(&[u8], bool)]) -> (Vec<AccessUnit>, Vec<Dropped>) {
        let mut d = H264Depacketizer::default();
        let (mut units, mut drops) = (Vec::new(), Vec::new());
        for (p, marker) in packets {
            let out = d.push(&b(p), 1000, *marker);
            units.extend(out.unit);
            drops.extend(out.dropped);
        }
        (units, drops)
    }

    #[test]
    fn depacketizes_every_case() {
        for c in CASES {
            let (units, drops) = run(c.packets);
            assert_eq!(drops.first().copied(), c.dropped, "{}", c.name);
            if c.dropped.is_some() {
                assert!(
                    units.is_empty(),
                    "{}: a damaged unit must not come out",
                    c.name
                );
            } else {
                assert_eq!(units.len(), 1, "{}", c.name);
                let got: Vec<&[u8]> = units[0].nalus.iter().map(|n| &n[..]).collect();
                assert_eq!(got, c.nalus, "{}", c.name);
            }
        }
    }

    #[test]
    fn a_good_unit_follows_a_bad_one() {
        let mut d = H264Depacketizer::default();
        let bad = d.push(&b(&[0x18, 0, 0, 0]), 1, true);
        assert_eq!(bad.dropped, Some(Dropped::Truncated));
        let good = d.push(&b(&[0x65, 1]), 2, true);
        assert_eq!(good.dropped, None);
        assert_eq!(good.unit.unwrap().nalus, vec![b(&[0x65, 1])]);
    }

    #[test]
    fn a_new_timestamp_drops_the_unterminated_unit() {
        let mut d = H264Depacketizer::default();
        assert_eq!(d.push(&b(&[0x7c, 0x85, 1]), 1, false), Pushed::default());
        let next = d.push(&b(&[0x65, 2]), 2, true);
        assert_eq!(next.dropped, Some(Dropped::Unterminated));
        assert_eq!(next.unit.unwrap().nalus, vec![b(&[0x65, 2])]);
    }

    #[test]
    fn a_loss_drops_the_whole_unit() {
        let mut d = H264Depacketizer::default();
        d.push(&b(&[0x41, 1]), 1, false);
        d.lost();
        let out = d.push(&b(&[0x41, 2]), 1, true);
        assert_eq!(out.dropped, Some(Dropped::Incomplete));
        assert!(out.unit.is_none());
    }

    #[test]
    fn endless_fragments_stop_at_the_cap_and_memory_is_given_back() {
        let mut d = H264Depacketizer::default();
        let mut frag = vec![0x7c, 0x05];
        frag.resize(1200, 0xab);
        let frag = Bytes::from(frag);
        let mut start = frag.to_vec();
        start[1] = 0x85;
        d.push(&Bytes::from(start), 7, false);
        let mut dropped = None;
        for _ in 0..(MAX_ACCESS_UNIT / 1198 + 10) {
            let out = d.push(&frag, 7, false);
            dropped = dropped.or(out.dropped);
            assert!(d.size <= MAX_ACCESS_UNIT);
        }
        // Past the cap the fragment is gone; what follows has no start.
        assert_eq!(dropped, Some(Dropped::TooLarge));
        assert!(d.fragment.is_none());
        let next = d.push(&b(&[0x65, 1]), 8, true);
        assert_eq!(next.dropped, Some(Dropped::Unterminated));
        assert!(next.unit.is_some(), "the next timestamp starts clean");
        assert_eq!(d.size, 0);
    }

    #[test]
    fn too_many_nal_units_are_refused() {
        let mut d = H264Depacketizer::default();
        let mut stap = vec![0x78];
        for _ in 0..=MAX_NALUS_PER_AU {
            stap.extend_from_slice(&[0, 1, 0x06]);
        }
        let out = d.push(&Bytes::from(stap), 1, true);
        assert_eq!(out.dropped, Some(Dropped::TooManyNalus));
        assert!(out.unit.is_none());
    }

    #[test]
    fn opus_packets_follow_rfc_6716() {
        let long = [0u8; 1300];
        let cases: &[(&[u8], bool)] = &[
            (&[], false),
            (&[0xfc], true),
            (&[0xfc, 1, 2, 3], true),
            (&long, false),
            // Code 1: two equal frames.
            (&[0xfd, 1, 2], true),
            (&[0xfd, 1, 2, 3], false),
            // Code 2: first length 1.
            (&[0xfe, 1, 9, 8, 7], true),
            (&[0xfe, 5, 9], false),
            (&[0xfe], false),
            (&[0xfe, 252], false),
            // Code 3 CBR: 2 frames of 2 bytes.
            (&[0xff, 0x02, 1, 2, 3, 4], true),
            (&[0xff, 0x02, 1, 2, 3], false),
            (&[0xff, 0x00], false),
            (&[0xff], false),
            // 20 ms CELT frames: 6 is 120 ms, 7 is too long.
            (&[0xff, 0x06], true),
            (&[0xff, 0x07], false),
            // Code 3 VBR: lengths 1 then the rest.
            (&[0xff, 0x82, 1, 9, 8, 7], true),
            (&[0xff, 0x82, 9, 9], false),
            // Code 3 with padding: 2 padding bytes.
            (&[0xff, 0x41, 2, 5, 0, 0], true),
            (&[0xff, 0x41, 9, 5], false),
            (&[0xff, 0x41, 255], false),
        ];
        for (p, ok) in cases {
            assert_eq!(check_opus(p).is_ok(), *ok, "{p:02x?}");
        }
    }

    #[test]
    fn vp8_descriptors() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (&[0x10, 0x50], Some(1)),
            (&[0x10], None),
            (&[], None),
            (&[0x90, 0x80, 0x81, 0x23, 0x50], Some(4)),
            (&[0x90, 0x80, 0x81, 0x23], None),
            (&[0x90, 0x80], None),
            (&[0x90, 0xe0, 0x05, 0x01, 0x20, 0x50], Some(5)),
        ];
        for (p, want) in cases {
            assert_eq!(vp8_descriptor_len(p), *want, "{p:02x?}");
        }
    }
}
