//! AAC configuration: the AudioSpecificConfig RTMP sends as its AAC sequence
//! header (ISO/IEC 14496-3 1.6.2.1) and ADTS frame headers (1.A.2.2), which
//! MPEG-TS/HLS and some decoders want in front of raw frames.

use super::bits::BitReader;
use super::{invalid, truncated, CodecError};

/// Audio object types (ISO/IEC 14496-3 Table 1.1) that matter here.
pub const OBJECT_AAC_LC: u8 = 2;
/// HE-AAC v1 (SBR) when signalled explicitly.
pub const OBJECT_SBR: u8 = 5;
/// HE-AAC v2 (SBR + parametric stereo) when signalled explicitly.
pub const OBJECT_PS: u8 = 29;

/// samplingFrequencyIndex -> Hz (ISO/IEC 14496-3 Table 1.18). Index 15
/// means the rate follows as 24 bits; 13 and 14 are reserved.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The escape value of samplingFrequencyIndex: an explicit 24-bit rate follows.
const EXPLICIT_RATE_INDEX: u8 = 15;

/// An explicit rate above this is refused: no AAC profile goes past 96 kHz,
/// and a garbage 24-bit value would otherwise reach resamplers.
pub const MAX_EXPLICIT_SAMPLE_RATE: u32 = 192_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// audioObjectType as signalled: 2 for AAC-LC, 5/29 for explicit HE-AAC.
    pub object_type: u8,
    /// The core sample rate in Hz (for HE-AAC, half the output rate).
    pub sample_rate: u32,
    /// samplingFrequencyIndex, or `None` for an explicit rate.
    pub sampling_index: Option<u8>,
    /// channelConfiguration (Table 1.19); 0 means "in a program config element".
    pub channel_config: u8,
    /// For explicit HE-AAC: the underlying object type (normally 2) and the
    /// SBR output rate.
    pub base_object_type: Option<u8>,
    pub extension_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// Output channels for channelConfiguration 1..7 (Table 1.19; 7 is 7.1).
    pub fn channels(&self) -> u8 {
        match self.channel_config {
            7 => 8,
            c => c,
        }
    }

    /// Whether this is HE-AAC (v1 or v2), which an AAC-LC-only decoder can
    /// only half decode (the core, at half rate, mono for v2).
    pub fn is_he_aac(&self) -> bool {
        matches!(self.object_type, OBJECT_SBR | OBJECT_PS)
    }

    /// A name for logs and health: "AAC-LC", "HE-AAC", "HE-AACv2" or the
    /// object type number.
    pub fn profile_name(&self) -> String {
        match self.object_type {
            OBJECT_AAC_LC => "AAC-LC".into(),
            OBJECT_SBR => "HE-AAC".into(),
            OBJECT_PS => "HE-AACv2".into(),
            1 => "AAC Main".into(),
            t => format!("AAC object type {t}"),
        }
    }
}

/// GetAudioObjectType() (ISO/IEC 14496-3 1.6.2.1, Table 1.14): 5 bits, with
/// 31 escaping to 32 + 6 more bits.
fn object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let t = r.u8(5)?;
    if t == 31 {
        return Ok(32 + r.u8(6)?);
    }
    Ok(t)
}

fn sample_rate(r: &mut BitReader<'_>, what: &'static str) -> Result<(u32, Option<u8>), CodecError> {
    let index = r.u8(4)?;
    if index == EXPLICIT_RATE_INDEX {
        let rate = r.bits(24)?;
        if rate == 0 || rate > MAX_EXPLICIT_SAMPLE_RATE {
            return Err(invalid(what, format!("explicit sample rate {rate} Hz")));
        }
        return Ok((rate, None));
    }
    match SAMPLE_RATES.get(usize::from(index)) {
        Some(rate) => Ok((*rate, Some(index))),
        None => Err(invalid(
            what,
            format!("reserved samplingFrequencyIndex {index}"),
        )),
    }
}

/// Parses an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) up to the
/// channel configuration, plus the explicit SBR/PS extension header. The
/// GASpecificConfig that follows is not needed by anything here.
pub fn parse_asc(data: &[u8]) -> Result<AudioSpecificConfig, CodecError> {
    const WHAT: &str = "AudioSpecificConfig";
    if data.len() < 2 {
        return Err(truncated(WHAT, 2, data.len()));
    }
    let mut r = BitReader::new(data, WHAT);
    let object = object_type(&mut r)?;
    if object == 0 {
        return Err(invalid(WHAT, "audio object type 0 (null)"));
    }
    let (rate, index) = sample_rate(&mut r, WHAT)?;
    let channel_config = r.u8(4)?;
    if channel_config > 7 {
        return Err(invalid(
            WHAT,
            format!("reserved channelConfiguration {channel_config}"),
        ));
    }
    let mut asc = AudioSpecificConfig {
        object_type: object,
        sample_rate: rate,
        sampling_index: index,
        channel_config,
        base_object_type: None,
        extension_sample_rate: None,
    };
    if matches!(object, OBJECT_SBR | OBJECT_PS) {
        // Explicit hierarchical signalling: extensionSamplingFrequencyIndex,
        // then the core object type.
        let (ext_rate, _) = sample_rate(&mut r, WHAT)?;
        asc.extension_sample_rate = Some(ext_rate);
        asc.base_object_type = Some(object_type(&mut r)?);
    }
    Ok(asc)
}

/// The fixed and variable ADTS header fields (ISO/IEC 14496-3 1.A.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsHeader {
    /// profile_ObjectType + 1: 1 Main, 2 LC, 3 SSR, 4 LTP.
    pub object_type: u8,
    pub sampling_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
    /// Header plus payload, in bytes.
    pub frame_length: usize,
    /// 7, or 9 with a CRC.
    pub header_length: usize,
    /// number_of_raw_data_blocks_in_frame + 1.
    pub raw_blocks: u8,
}

/// ADTS headers are 7 bytes, 9 with CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// frame_length is 13 bits.
pub const MAX_ADTS_FRAME_LEN: usize = (1 << 13) - 1;

/// Parses an ADTS header at the start of `data`.
pub fn parse_adts(data: &[u8]) -> Result<AdtsHeader, CodecError> {
    const WHAT: &str = "ADTS header";
    let h = data
        .get(..ADTS_HEADER_LEN)
        .ok_or_else(|| truncated(WHAT, ADTS_HEADER_LEN, data.len()))?;
    if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
        return Err(invalid(WHAT, "no syncword (or layer != 0)"));
    }
    let protection_absent = h[1] & 1 == 1;
    let object_type = (h[2] >> 6) + 1;
    let sampling_index = (h[2] >> 2) & 0x0f;
    let sample_rate = *SAMPLE_RATES
        .get(usize::from(sampling_index))
        .ok_or_else(|| invalid(WHAT, format!("samplingFrequencyIndex {sampling_index}")))?;
    let channel_config = ((h[2] & 1) << 2) | (h[3] >> 6);
    let frame_length =
        (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    let header_length = if protection_absent { 7 } else { 9 };
    if frame_length < header_length {
        return Err(invalid(
            WHAT,
            format!("frame_length {frame_length} shorter than the header"),
        ));
    }
    Ok(AdtsHeader {
        object_type,
        sampling_index,
        sample_rate,
        channel_config,
        frame_length,
        header_length,
        raw_blocks: (h[6] & 0x03) + 1,
    })
}

/// Builds a CRC-less ADTS header for one raw frame of `payload_len` bytes
/// described by `asc`. ADTS can only carry object types 1..4 and indexed
/// sample rates; HE-AAC is written as its AAC-LC core (implicit signalling),
/// which is what decoders expect in ADTS.
pub fn write_adts(
    asc: &AudioSpecificConfig,
    payload_len: usize,
) -> Result<[u8; ADTS_HEADER_LEN], CodecError> {
    const WHAT: &str = "ADTS header";
    let object = asc.base_object_type.unwrap_or(asc.object_type);
    if !(1..=4).contains(&object) {
        return Err(invalid(
            WHAT,
            format!("object type {object} cannot be carried in ADTS"),
        ));
    }
    let index = asc
        .sampling_index
        .ok_or_else(|| invalid(WHAT, "explicit sample rates cannot be carried in ADTS"))?;
    let len = payload_len + ADTS_HEADER_LEN;
    if len > MAX_ADTS_FRAME_LEN {
        return Err(invalid(
            WHAT,
            format!("frame of {payload_len} bytes is too long"),
        ));
    }
    let ch = asc.channel_config;
    // All shifts below stay within the field widths checked above.
    Ok([
        0xff,
        0xf1, // MPEG-4, layer 0, protection_absent
        ((object - 1) << 6) | (index << 2) | (ch >> 2),
        ((ch & 3) << 6) | ((len >> 11) as u8 & 0x03),
        (len >> 3) as u8,
        (((len & 7) as u8) << 5) | 0x1f, // buffer fullness 0x7ff (VBR)
        0xfc,                            // rest of fullness, one raw data block
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AscCase {
        name: &'static str,
        bytes: &'static [u8],
        want: Option<(u8, u32, u8)>, // object type, rate, channel config
    }

    /// One table for decode, ADTS round trip and the fuzz seeds.
    const ASC_CASES: &[AscCase] = &[
        AscCase {
            name: "LC 48k stereo (ffmpeg aac)",
            bytes: &[0x11, 0x90],
            want: Some((2, 48000, 2)),
        },
        AscCase {
            name: "LC 44.1k stereo (OBS)",
            bytes: &[0x12, 0x10],
            want: Some((2, 44100, 2)),
        },
        AscCase {
            name: "LC 44.1k stereo, GASpecific trailer",
            bytes: &[0x12, 0x10, 0x56, 0xe5, 0x00],
            want: Some((2, 44100, 2)),
        },
        AscCase {
            name: "LC 8k mono",
            bytes: &[0x15, 0x88],
            want: Some((2, 8000, 1)),
        },
        AscCase {
            name: "HE-AAC explicit 24k core -> 48k",
            bytes: &[0x2b, 0x11, 0x88, 0x00],
            want: Some((5, 24000, 2)),
        },
        AscCase {
            name: "explicit 24-bit rate 48000",
            bytes: &[0x17, 0x80, 0x5d, 0xc0, 0x10],
            want: Some((2, 48000, 2)),
        },
        AscCase {
            name: "escaped object type 32+1",
            bytes: &[0xf8, 0x26, 0x40],
            want: Some((33, 48000, 2)),
        },
        AscCase {
            name: "reserved rate index 13",
            bytes: &[0x16, 0x90],
            want: None,
        },
        AscCase {
            name: "explicit rate too high",
            bytes: &[0x17, 0xff, 0xff, 0xff, 0x90],
            want: None,
        },
        AscCase {
            name: "object type 0",
            bytes: &[0x01, 0x90],
            want: None,
        },
        AscCase {
            name: "one byte",
            bytes: &[0x11],
            want: None,
        },
        AscCase {
            name: "explicit rate cut short",
            bytes: &[0x17, 0x80, 0x5d],
            want: None,
        },
    ];

    #[test]
    fn asc_decode_table() {
        for case in ASC_CASES {
            let got = parse_asc(case.bytes);
            match (&got, case.want) {
                (Ok(asc), Some((t, rate, ch))) => {
                    assert_eq!(
                        (asc.object_type, asc.sample_rate, asc.channel_config),
                        (t, rate, ch),
                        "{}",
                        case.name
                    )
                }
                (Err(_), None) => {}
                _ => panic!("{}: got {got:?}", case.name),
            }
        }
        let he = parse_asc(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert!(he.is_he_aac());
        assert_eq!(
            (he.extension_sample_rate, he.base_object_type),
            (Some(48000), Some(2))
        );
    }

    #[test]
    fn adts_roundtrip_table() {
        for case in ASC_CASES.iter().filter(|c| c.want.is_some()) {
            let asc = parse_asc(case.bytes).unwrap();
            match write_adts(&asc, 300) {
                Ok(h) => {
                    let back = parse_adts(&h).unwrap();
                    assert_eq!(back.sample_rate, asc.sample_rate, "{}", case.name);
                    assert_eq!(back.channel_config, asc.channel_config, "{}", case.name);
                    assert_eq!(back.frame_length, 307, "{}", case.name);
                    assert_eq!(
                        back.object_type,
                        asc.base_object_type.unwrap_or(asc.object_type)
                    );
                }
                // Explicit rates and escaped object types have no ADTS form.
                Err(_) => assert!(
                    asc.sampling_index.is_none() || asc.object_type > 4,
                    "{}",
                    case.name
                ),
            }
        }
    }

    #[test]
    fn adts_rejects_garbage() {
        let cases: &[(&str, &[u8])] = &[
            ("short", &[0xff, 0xf1, 0x50]),
            ("no sync", &[0xfe, 0xf1, 0x50, 0x80, 0x2f, 0x1f, 0xfc]),
            (
                "frame shorter than header",
                &[0xff, 0xf1, 0x50, 0x80, 0x00, 0x1f, 0xfc],
            ),
            (
                "reserved rate index",
                &[0xff, 0xf1, 0x74, 0x80, 0x2f, 0x1f, 0xfc],
            ),
        ];
        for (name, data) in cases {
            assert!(parse_adts(data).is_err(), "{name}");
        }
        let asc = parse_asc(&[0x11, 0x90]).unwrap();
        assert!(write_adts(&asc, MAX_ADTS_FRAME_LEN).is_err());
    }
}
