//! FLV tag bodies as RTMP carries them in video (type 9) and audio (type 8)
//! messages: Adobe "Video File Format Specification" v10.1, E.4.2.1
//! AUDIODATA, E.4.2.2 AACAUDIODATA, E.4.3.1 VIDEODATA, E.4.3.2
//! AVCVIDEOPACKET. Enhanced RTMP (veovera, v1/v2) tags are recognised and
//! refused with [`CodecError::EnhancedRtmp`].

use super::{invalid, truncated, CodecError};
use bytes::Bytes;

/// CodecID 7 (E.4.3.1): AVC.
pub const VIDEO_CODEC_AVC: u8 = 7;
/// SoundFormat 10 (E.4.2.1): AAC.
pub const AUDIO_FORMAT_AAC: u8 = 10;
/// SoundFormat 9 is "reserved" in FLV 10.1 and the ex-header marker in
/// Enhanced RTMP v2.
const AUDIO_FORMAT_EX_HEADER: u8 = 9;
/// Bit 7 of a video tag's first byte: IsExHeader (Enhanced RTMP v1).
const VIDEO_EX_HEADER_BIT: u8 = 0x80;

/// FrameType (E.4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Key,
    Inter,
    DisposableInter,
    GeneratedKey,
    /// Video info/command frame: carries no picture.
    Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// AVCPacketType 0: an AVCDecoderConfigurationRecord.
    SequenceHeader(Bytes),
    /// AVCPacketType 1: AVCC NAL units, and the signed composition time
    /// offset (pts - dts) in milliseconds.
    Nalus { composition_time: i32, data: Bytes },
    /// AVCPacketType 2: end of sequence; no data.
    EndOfSequence,
    /// FrameType 5: a video info/command frame; ignored by ingest.
    Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    pub frame_type: FrameType,
    pub packet: VideoPacket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// AACPacketType 0: an AudioSpecificConfig.
    SequenceHeader(Bytes),
    /// AACPacketType 1: one raw AAC frame.
    Raw(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    pub packet: AudioPacket,
}

/// A name for an FLV CodecID, for error messages (E.4.3.1 plus the
/// unofficial ids 12 and 13 some encoders use for HEVC and AV1).
pub fn video_codec_name(id: u8) -> &'static str {
    match id {
        1 => "JPEG",
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        7 => "AVC",
        12 => "HEVC (non-standard id)",
        13 => "AV1 (non-standard id)",
        _ => "unknown",
    }
}

/// A name for an FLV SoundFormat (E.4.2.1), for error messages.
pub fn audio_format_name(id: u8) -> &'static str {
    match id {
        0 => "Linear PCM",
        1 => "ADPCM",
        2 => "MP3",
        3 => "Linear PCM little endian",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        9 => "Enhanced RTMP ex-header",
        10 => "AAC",
        11 => "Speex",
        14 => "MP3 8 kHz",
        15 => "device-specific",
        _ => "unknown",
    }
}

/// The FourCC after an Enhanced RTMP ex-header byte, printable or escaped.
fn fourcc(data: &[u8]) -> String {
    match data.get(1..5) {
        Some(cc) => cc
            .iter()
            .map(|b| (*b as char).escape_default().to_string())
            .collect(),
        None => "(truncated)".into(),
    }
}

/// Parses a VIDEODATA body (E.4.3.1) carrying AVC (E.4.3.2). Slices of
/// `data` are shared, not copied.
pub fn parse_video_tag(data: &Bytes) -> Result<VideoTag, CodecError> {
    const WHAT: &str = "FLV video tag";
    let first = *data.first().ok_or_else(|| truncated(WHAT, 1, 0))?;
    if first & VIDEO_EX_HEADER_BIT != 0 {
        return Err(CodecError::EnhancedRtmp {
            kind: "video",
            fourcc: fourcc(data),
        });
    }
    let frame_type = match first >> 4 {
        1 => FrameType::Key,
        2 => FrameType::Inter,
        3 => FrameType::DisposableInter,
        4 => FrameType::GeneratedKey,
        5 => {
            return Ok(VideoTag {
                frame_type: FrameType::Command,
                packet: VideoPacket::Command,
            })
        }
        t => return Err(invalid(WHAT, format!("reserved FrameType {t}"))),
    };
    let codec = first & 0x0f;
    if codec != VIDEO_CODEC_AVC {
        return Err(CodecError::UnsupportedVideoCodec(codec));
    }
    let head = data
        .get(..5)
        .ok_or_else(|| truncated(WHAT, 5, data.len()))?;
    // CompositionTime is SI24: sign-extend through an i32 shift.
    let composition_time = i32::from_be_bytes([head[2], head[3], head[4], 0]) >> 8;
    let body = data.slice(5..);
    let packet = match head[1] {
        0 => VideoPacket::SequenceHeader(body),
        1 => VideoPacket::Nalus {
            composition_time,
            data: body,
        },
        2 => VideoPacket::EndOfSequence,
        t => return Err(invalid(WHAT, format!("reserved AVCPacketType {t}"))),
    };
    Ok(VideoTag { frame_type, packet })
}

/// Parses an AUDIODATA body (E.4.2.1) carrying AAC (E.4.2.2). The rate,
/// size and channel bits of the first byte are ignored: for AAC the
/// AudioSpecificConfig is authoritative (the spec fixes them at 44 kHz
/// stereo whatever the stream is).
pub fn parse_audio_tag(data: &Bytes) -> Result<AudioTag, CodecError> {
    const WHAT: &str = "FLV audio tag";
    let first = *data.first().ok_or_else(|| truncated(WHAT, 1, 0))?;
    let format = first >> 4;
    if format == AUDIO_FORMAT_EX_HEADER {
        return Err(CodecError::EnhancedRtmp {
            kind: "audio",
            fourcc: fourcc(data),
        });
    }
    if format != AUDIO_FORMAT_AAC {
        return Err(CodecError::UnsupportedAudioFormat(format));
    }
    let packet_type = *data.get(1).ok_or_else(|| truncated(WHAT, 2, data.len()))?;
    let body = data.slice(2..);
    let packet = match packet_type {
        0 => AudioPacket::SequenceHeader(body),
        1 => AudioPacket::Raw(body),
        t => return Err(invalid(WHAT, format!("reserved AACPacketType {t}"))),
    };
    Ok(AudioTag { packet })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, tag bytes, expected) for the video decode test and fuzz seeds.
    fn video_cases() -> Vec<(&'static str, &'static [u8], Result<VideoTag, &'static str>)> {
        let b = Bytes::from_static;
        vec![
            (
                "AVC seq header",
                &[0x17, 0, 0, 0, 0, 1, 0x42],
                Ok(VideoTag {
                    frame_type: FrameType::Key,
                    packet: VideoPacket::SequenceHeader(b(&[1, 0x42])),
                }),
            ),
            (
                "AVC keyframe NALU",
                &[0x17, 1, 0, 0, 0x21, 0, 0, 0, 1, 0x65],
                Ok(VideoTag {
                    frame_type: FrameType::Key,
                    packet: VideoPacket::Nalus {
                        composition_time: 0x21,
                        data: b(&[0, 0, 0, 1, 0x65]),
                    },
                }),
            ),
            (
                "negative composition time",
                &[0x27, 1, 0xff, 0xff, 0xfe],
                Ok(VideoTag {
                    frame_type: FrameType::Inter,
                    packet: VideoPacket::Nalus {
                        composition_time: -2,
                        data: b(&[]),
                    },
                }),
            ),
            (
                "end of sequence",
                &[0x17, 2, 0, 0, 0],
                Ok(VideoTag {
                    frame_type: FrameType::Key,
                    packet: VideoPacket::EndOfSequence,
                }),
            ),
            (
                "command frame",
                &[0x57, 0],
                Ok(VideoTag {
                    frame_type: FrameType::Command,
                    packet: VideoPacket::Command,
                }),
            ),
            ("empty", &[], Err("truncated")),
            ("short AVC header", &[0x17, 1, 0], Err("truncated")),
            ("VP6", &[0x24, 0, 0], Err("codec id 4")),
            ("HEVC id 12", &[0x1c, 0, 0, 0, 0], Err("codec id 12")),
            (
                "Enhanced RTMP hvc1",
                &[0x90, b'h', b'v', b'c', b'1'],
                Err("hvc1"),
            ),
            ("Enhanced RTMP truncated", &[0x90, b'a'], Err("truncated")),
            (
                "reserved AVCPacketType",
                &[0x17, 3, 0, 0, 0],
                Err("AVCPacketType 3"),
            ),
            (
                "reserved frame type",
                &[0x07, 0, 0, 0, 0],
                Err("FrameType 0"),
            ),
        ]
    }

    #[test]
    fn video_decode_table() {
        for (name, bytes, want) in video_cases() {
            let got = parse_video_tag(&Bytes::from_static(bytes));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn audio_decode_table() {
        let b = Bytes::from_static;
        let cases: Vec<(&str, &'static [u8], Result<AudioPacket, &str>)> = vec![
            (
                "AAC seq header",
                &[0xaf, 0, 0x11, 0x90],
                Ok(AudioPacket::SequenceHeader(b(&[0x11, 0x90]))),
            ),
            (
                "AAC raw",
                &[0xaf, 1, 0x21, 0x10],
                Ok(AudioPacket::Raw(b(&[0x21, 0x10]))),
            ),
            (
                "AAC mono flags ignored",
                &[0xa0, 1],
                Ok(AudioPacket::Raw(b(&[]))),
            ),
            ("MP3", &[0x2f, 0xff], Err("MP3")),
            ("Speex", &[0xb6, 0], Err("Speex")),
            (
                "ex-header Opus",
                &[0x90, b'O', b'p', b'u', b's'],
                Err("Opus"),
            ),
            ("AAC without packet type", &[0xaf], Err("truncated")),
            ("reserved AACPacketType", &[0xaf, 2], Err("AACPacketType 2")),
            ("empty", &[], Err("truncated")),
        ];
        for (name, bytes, want) in cases {
            let got = parse_audio_tag(&Bytes::from_static(bytes));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.packet, want, "{name}"),
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
