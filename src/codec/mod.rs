//! Pure codec parsers: H.264 (AVCC, Annex B, SPS), AAC (AudioSpecificConfig,
//! ADTS), MP3 frame headers, Ogg pages with Opus, and the FLV tag bodies
//! RTMP carries. Sync, no I/O, no tokio: bytes
//! in, values out, so every function here is easy to test and to fuzz.
//!
//! Every parser takes untrusted input: it returns [`CodecError`] on anything
//! malformed and never panics or indexes out of bounds.

pub mod aac;
mod bits;
pub mod flv;
pub mod h264;
pub mod mp3;
pub mod ogg;
pub mod rtp;

/// Why some bytes could not be parsed. One enum for the three parsers, since
/// callers (RTMP ingest, WHIP, the fuzzers) mostly log it and move on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended before a field it announces.
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value the spec forbids, or one past our limits.
    #[error("{what}: invalid: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A bitstream (SPS, ASC) ended in the middle of a field.
    #[error("{what}: bitstream ended early")]
    BitstreamEnded { what: &'static str },
    /// FLV video with a legacy codec id other than AVC (7).
    #[error("unsupported FLV video codec id {0} ({name}); only H.264 (AVC, id 7) is supported", name = flv::video_codec_name(*.0))]
    UnsupportedVideoCodec(u8),
    /// FLV audio with a sound format other than AAC (10).
    #[error("unsupported FLV audio format {0} ({name}); only AAC (format 10) is supported", name = flv::audio_format_name(*.0))]
    UnsupportedAudioFormat(u8),
    /// Enhanced RTMP (veovera spec v1/v2): an ex-header with a FourCC codec
    /// (HEVC, AV1, VP9, Opus...). Not supported yet; the FourCC says which.
    #[error(
        "Enhanced RTMP {kind} with FourCC {fourcc:?} is not supported; send H.264/AAC (legacy FLV)"
    )]
    EnhancedRtmp { kind: &'static str, fourcc: String },
}

/// Shorthand for the common "not enough bytes" case.
pub(crate) fn truncated(what: &'static str, need: usize, have: usize) -> CodecError {
    CodecError::Truncated { what, need, have }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> CodecError {
    CodecError::Invalid {
        what,
        reason: reason.into(),
    }
}
